"""One planning run: a scenario and a replication number in, a result out, the same bit for bit.

Random streams come from ``numpy.random.SeedSequence(seed, spawn_key=(replication,))`` (the
replication-th child of the scenario's seed, as ``SeedSequence.spawn`` gives it), split into a
workload stream, an image stream and a failure stream. None depends on the policy or the cluster
size, so runs that compare policies or sizes see the same requests: common random numbers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from itertools import pairwise
from typing import Any

import numpy as np
import simpy

from euca.cluster import DEFAULT_VMTYPES
from sim.cloud import Cloud, image_sizes
from sim.gctuning import paused_gc, quiet_gc
from sim.metrics import SERIES_COLUMNS, latency_cdf, latency_summary
from sim.processes import Reservation, node_host, power_manager, users
from sim.scenario import Scenario
from sim.trace import Demand, read_trace
from sim.workload import (
    AZURE_SIZES,
    VmRequests,
    exponential_workload,
    mean_lifetime,
    nhpp_workload,
    poisson_workload,
    zipf_choice,
)


@dataclass(frozen=True)
class RunResult:
    """A run's summary (JSON-ready, deterministic) and its utilisation series (``SERIES_COLUMNS``)."""

    summary: dict[str, Any]
    series: list[tuple[float, ...]]
    wall_seconds: float


def streams(seed: int, replication: int) -> tuple[np.random.Generator, np.random.Generator, np.random.SeedSequence]:
    """(workload, images, failures) streams of one replication."""
    workload, images, failures = np.random.SeedSequence(seed, spawn_key=(replication,)).spawn(3)
    return np.random.default_rng(workload), np.random.default_rng(images), failures


def make_demand(scenario: Scenario, rng: np.random.Generator) -> Demand:
    """The requests of a run, from the synthetic generators or a trace file."""
    w = scenario.workload
    vmtypes = scenario.vmtypes()
    if w.kind == "trace":
        return read_trace(w.trace, vmtypes)
    cores = w.reference_cores or scenario.total_cores
    # Synthetic size classes are VM types: the Azure ones follow Eucalyptus's in the table.
    first = len(DEFAULT_VMTYPES) if w.vm_types == "azure" else 0
    sizes = AZURE_SIZES if first else tuple((t.cores, t.memory, 1.0) for t in DEFAULT_VMTYPES)
    n_images = scenario.images.count
    groups: tuple[str, ...] = ("default",)
    if w.kind == "exponential":
        requests = exponential_workload(rng, w.requests, cores, w.load, mean_life=w.lifetime_mean_s,
                                        n_images=n_images, image_skew=scenario.images.skew, warm_start=w.warm_start)
    elif w.kind == "poisson":
        requests = poisson_workload(rng, w.requests, cores, w.load, n_images=n_images, image_skew=scenario.images.skew,
                                    sizes=sizes, lifetime_mean=mean_lifetime() * w.lifetime_scale,
                                    warm_start=w.warm_start)
        deployments, member = np.unique(requests.deployment, return_inverse=True)
        group_of = zipf_choice(rng, w.groups, w.group_skew, deployments.shape[0])[member]
        requests = replace(requests, group=group_of)
        groups = tuple(f"g{k}" for k in range(w.groups))
    else:
        requests = nhpp_workload(rng, w.requests, cores, w.load, daily=w.daily, weekly=w.weekly, n_images=n_images,
                                 image_skew=scenario.images.skew, n_groups=w.groups, group_skew=w.group_skew,
                                 sizes=sizes, lifetime_mean=mean_lifetime() * w.lifetime_scale,
                                 warm_start=w.warm_start)
        groups = tuple(f"g{k}" for k in range(w.groups))
    scale = w.lifetime_scale if w.kind != "exponential" else 1.0
    requests = VmRequests(requests.arrival, requests.size + first, requests.lifetime * scale,
                          requests.deployment, requests.image, requests.prefill, requests.group)
    images = tuple(f"emi-{k + 1:08X}" for k in range(n_images))
    return Demand(requests, vmtypes, images, groups)


def reservations(demand: Demand) -> list[Reservation]:
    """Requests grouped into RunInstances reservations: one per deployment and VM type, in submit order."""
    r = demand.requests
    group = r.group if r.group is not None else np.zeros(len(r), dtype=np.int64)
    order = np.lexsort((r.size, r.deployment, r.arrival))
    arrival, size, deployment = r.arrival[order], r.size[order], r.deployment[order]
    new = np.ones(len(r), dtype=bool)
    new[1:] = (arrival[1:] != arrival[:-1]) | (deployment[1:] != deployment[:-1]) | (size[1:] != size[:-1])
    starts = np.flatnonzero(new)
    first = order[starts]  # each reservation's first request
    lifetimes = r.lifetime[order].tolist()
    each = [lifetimes[a:b] for a, b in pairwise([*starts.tolist(), len(r)])]
    return list(zip(arrival[starts].tolist(), size[starts].tolist(), r.image[first].tolist(), group[first].tolist(),
                    each, (first >= r.prefill).tolist(), strict=True))


def _draw(rng: np.random.Generator, mean: float, distribution: str, shape: float) -> float:
    if distribution == "fixed":
        return mean
    if distribution == "weibull":
        from math import gamma
        return float(mean / gamma(1 + 1 / shape) * rng.weibull(shape))
    return float(rng.exponential(mean))


PROGRESS_STEPS = 50


def run_scenario(scenario: Scenario, replication: int = 0, observe: Callable[[Cloud], None] | None = None,
                 on_progress: Callable[[float, float], None] | None = None) -> RunResult:
    """Simulate the scenario from its first request to its last and summarise what happened.
    ``observe`` sees the model before the first request (to watch or log what the CC is asked);
    ``on_progress(simulated, horizon)`` hears how far the clock has got, PROGRESS_STEPS times.
    Reporting costs nothing per event and changes nothing: the run pauses at each step's time
    before that time's events, then goes on."""
    started = time.perf_counter()
    scenario.validate()
    with paused_gc():  # set-up builds what lives for the whole run: nothing to collect yet
        workload_rng, image_rng, failure_seq = streams(scenario.seed, replication)
        demand = make_demand(scenario, workload_rng)
        im = scenario.images
        n_images = max(len(demand.images), 1)
        sizes = image_sizes(image_rng, n_images, im.size_mb_min, im.size_mb_max)
        env = simpy.Environment()
        cloud = Cloud(env, scenario, demand, sizes)
        if im.prestaged:
            cloud.prestage(list(range(min(im.prestaged, n_images))))
        if observe is not None:
            observe(cloud)
        plan = reservations(demand)
        horizon = plan[-1][0] if plan else 0.0
        cloud.meter.sample_every = horizon / (scenario.samples - 1) if horizon > 0 else 1.0
        arrivals = env.process(users(env, cloud, plan))
        if scenario.policy == "POWERSAVE":
            env.process(power_manager(env, cloud, scenario.power_tick_s))
        f = scenario.failures
        if f.mtbf_hours > 0:
            for n, seq in enumerate(failure_seq.spawn(len(cloud.nodes))):
                rng = np.random.default_rng(seq)

                def uptime(rng: np.random.Generator = rng) -> float:
                    return _draw(rng, f.mtbf_hours * 3600, f.distribution, f.weibull_shape)

                def repair(rng: np.random.Generator = rng) -> float:
                    return _draw(rng, f.mttr_hours * 3600, f.distribution, f.weibull_shape)

                env.process(node_host(env, cloud, n, uptime, repair))
    with quiet_gc():
        if on_progress is not None and horizon > 0:
            for step in range(1, PROGRESS_STEPS):
                env.run(until=horizon * step / PROGRESS_STEPS)
                on_progress(env.now, horizon)
        env.run(until=arrivals)
        if on_progress is not None:
            on_progress(horizon, horizon)
    cloud.meter.advance(horizon)
    if not cloud.meter.samples or cloud.meter.samples[-1][0] < horizon:
        cloud.meter.sample(horizon)
    return RunResult(summarise(scenario, replication, cloud, horizon), list(cloud.meter.samples),
                     time.perf_counter() - started)


def summarise(scenario: Scenario, replication: int, cloud: Cloud, horizon: float) -> dict[str, Any]:
    m = cloud.meter
    span = horizon if horizon > 0 else 1.0
    rejected = sum(m.rejected.values())
    first = sorted(m.first_exhausted.items(), key=lambda kv: (kv[1], kv[0]))
    series = np.asarray(m.samples) if m.samples else np.zeros((1, len(SERIES_COLUMNS)))
    usage = cloud.cc.network.usage()
    w = scenario.workload
    return {
        "scenario": scenario.name,
        "policy": scenario.policy,
        "nodes": len(cloud.nodes),
        "seed": scenario.seed,
        "replication": replication,
        "load": w.load,
        "offered_cores": w.load * (w.reference_cores or scenario.total_cores),
        "requests": m.requested,
        "accepted": m.accepted,
        "rejected": rejected,
        "rejection_rate": rejected / m.requested if m.requested else 0.0,
        "rejected_by_reason": dict(sorted(m.rejected.items())),
        "first_exhausted_at_s": dict(first),
        "ran_out_first": first[0][0].split(": ", 1)[-1] if first else None,
        "warm_start": {"instances": m.prefill_requested, "rejected": m.prefill_rejected},
        "schedulable_capacity": {"cores": m.total_cores, "memory_mb": m.total_memory, "disk_gb": m.total_disk,
                                 "hardware_cores": scenario.total_cores},
        # Utilisation is of the schedulable capacity (MAX_CORES / MAX_MEM / MAX_DISK applied).
        "utilisation": {"cores": m.core_s / span / m.total_cores, "memory": m.memory_s / span / m.total_memory,
                        "disk": m.disk_s / span / m.total_disk},
        "peak_utilisation": {"cores": float(series[:, 1].max()), "memory": float(series[:, 2].max()),
                             "disk": float(series[:, 3].max())},
        "power": {"energy_kwh": m.joules / 3.6e6, "node_hours_awake": m.powered_s / 3600,
                  "mean_powered_nodes": m.powered_s / span,
                  "sleeps": m.sleeps, "wakes": m.wakes, "wake_timeouts": m.wake_timeouts},
        "boot_latency_s": {"hit": latency_summary(m.hit_latency), "miss": latency_summary(m.miss_latency)},
        "boot_latency_cdf_s": {"hit": latency_cdf(m.hit_latency), "miss": latency_cdf(m.miss_latency)},
        "images": {"fetches": m.fetches, "evictions": m.evictions,
                   "hit_rate": len(m.hit_latency) / max(1, len(m.hit_latency) + len(m.miss_latency))},
        "network": {"mode": cloud.cc.network.mode, "peak_in_use": dict(sorted(m.peaks.items())),
                    "pool_sizes": {k: v[1] for k, v in sorted(usage.items()) if v[1] >= 0}},
        "failures": {"node_failures": m.failures, "instances_lost": m.lost},
        "simulated_hours": horizon / 3600,
    }
