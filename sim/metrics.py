"""What the planner measures, kept as running sums so that no measurement scans the nodes.

Every change of the cluster (an instance starts or ends, a node sleeps, wakes, fails or is
repaired) first calls ``advance(now)``, which integrates the current sums over the time since the
last change (core-seconds, joules, powered node-seconds) and takes a sample for the utilisation
series when one is due.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

PERCENTILES = (50.0, 90.0, 95.0, 99.0)


@dataclass
class Meter:
    """Running sums of one cluster: resources in use, powered nodes, power draw, rejections.

    ``total_*`` are the capacity utilisation is measured against: what the CC may schedule
    (MAX_CORES / MAX_MEM / MAX_DISK applied), which ``sim.cloud.Cloud`` works out. ``powered_s``
    integrates the nodes awake (UP or WAKING; a node counts from its wake-on-LAN to its power-down)
    and ``joules`` the power draw."""

    total_cores: int
    total_memory: int
    total_disk: int
    powered: int
    watts: float
    sample_every: float
    network_usage: Callable[[], dict[str, tuple[int, int]]]
    cores: int = 0
    memory: int = 0
    disk: int = 0
    instances: int = 0
    last: float = 0.0
    core_s: float = 0.0
    memory_s: float = 0.0
    disk_s: float = 0.0
    powered_s: float = 0.0
    joules: float = 0.0
    next_sample: float = 0.0
    samples: list[tuple[float, ...]] = field(default_factory=list)
    peaks: dict[str, int] = field(default_factory=dict)
    requested: int = 0
    accepted: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    first_exhausted: dict[str, float] = field(default_factory=dict)
    prefill_requested: int = 0
    prefill_rejected: int = 0
    hit_latency: list[float] = field(default_factory=list)
    miss_latency: list[float] = field(default_factory=list)
    lost: int = 0
    failures: int = 0
    sleeps: int = 0
    wakes: int = 0
    wake_timeouts: int = 0
    fetches: int = 0
    evictions: int = 0

    def advance(self, now: float) -> None:
        dt = now - self.last
        if dt > 0:
            self.core_s += self.cores * dt
            self.memory_s += self.memory * dt
            self.disk_s += self.disk * dt
            self.powered_s += self.powered * dt
            self.joules += self.watts * dt
            self.last = now
        if now >= self.next_sample:
            self.sample(now)

    def sample(self, now: float) -> None:
        """One point of the series: resources in use, powered nodes, watts and the network pools."""
        usage = self.network_usage()
        for pool, (held, _) in usage.items():
            if held > self.peaks.get(pool, 0):
                self.peaks[pool] = held
        self.samples.append((now, self.cores / self.total_cores, self.memory / self.total_memory,
                             self.disk / self.total_disk, float(self.powered), self.watts, float(self.instances),
                             float(usage.get("vlans", (0, 0))[0]), float(usage.get("public addresses", (0, 0))[0]),
                             float(usage.get("private addresses", (0, 0))[0])))
        self.next_sample = now + self.sample_every

    def reject(self, count: int, reason: str, now: float, counted: bool) -> None:
        """``count`` VMs of a reservation were refused, for Eucalyptus's ``reason``."""
        if not counted:
            self.prefill_rejected += count
            return
        self.rejected[reason] = self.rejected.get(reason, 0) + count
        self.first_exhausted.setdefault(reason, now)


# Resources in use are fractions of the schedulable capacity (MAX_CORES / MAX_MEM / MAX_DISK applied).
SERIES_COLUMNS = ("time_s", "cores_used_of_schedulable", "memory_used_of_schedulable", "disk_used_of_schedulable",
                  "powered_nodes", "watts", "instances",
                  "vlans", "public_addresses", "private_addresses")


def latency_summary(values: list[float]) -> dict[str, float]:
    """Count, mean and percentiles of boot latencies (seconds from request to Running)."""
    if not values:
        return {"count": 0}
    a = np.asarray(values)
    out = {"count": float(a.shape[0]), "mean": float(a.mean())}
    for p, v in zip(PERCENTILES, np.percentile(a, PERCENTILES), strict=True):
        out[f"p{p:g}"] = float(v)
    return out


def latency_cdf(values: list[float], points: int = 101) -> list[float]:
    """The latency at each of ``points`` evenly spaced quantiles (0 to 100 %), for plotting a CDF."""
    if not values:
        return []
    return [float(v) for v in np.percentile(np.asarray(values), np.linspace(0, 100, points))]
