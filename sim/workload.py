"""Synthetic VM workloads fitted to published statistics of public-cloud VM traces.

The figures (Azure's public VM traces of 2017 and 2019 and the Resource Central paper) are in
``shared/reference/workload-statistics.md`` beside the project: VM sizes by cores and memory,
a heavy-tailed lifetime distribution (two thirds of VMs live under 1.5 h, a few percent for weeks),
and VMs arriving in deployments of several at once.

Everything is drawn from a ``numpy.random.Generator`` so a seed gives the same workload bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HOUR = 3600.0

# (cores, memory MB, share of VMs): the 2017 trace's core shares joined with its memory shares,
# the larger memory sizes going with the larger core counts.
AZURE_SIZES: tuple[tuple[int, int, float], ...] = (
    (1, 768, 0.02),
    (1, 1792, 0.48),
    (2, 3584, 0.25),
    (4, 7168, 0.11),
    (8, 14336, 0.10),
    (8, 28672, 0.04),
)

# Lifetime CDF points (seconds, fraction of VMs living at most that long): the 5-minute floor of the
# traces, the SOSP 2017 figures, and the 30-day cut of the trace window.
LIFETIME_CDF: tuple[tuple[float, float], ...] = (
    (300.0, 0.0),
    (1.5 * HOUR, 0.65),
    (4 * HOUR, 0.78),
    (12 * HOUR, 0.87),
    (24 * HOUR, 0.93),
    (48 * HOUR, 0.95),
    (168 * HOUR, 0.97),
    (720 * HOUR, 1.0),
)

# VMs per deployment (CDF, 2017 trace): 1: 20 %, <=2: 45 %, <=4: 60 %, <=10: 73 %, <=20: 85 %, <=50: 94 %.
DEPLOYMENT_CDF: tuple[tuple[int, float], ...] = (
    (1, 0.20), (2, 0.45), (4, 0.60), (10, 0.73), (20, 0.85), (50, 0.94), (100, 1.0),
)


@dataclass(frozen=True)
class VmRequests:
    """A batch of VM requests: arrival time (s), size class, lifetime (s), deployment number, image number.

    The first ``prefill`` requests arrive at time 0 and stand for the VMs already running when the
    observation starts (a warm start), so that measurements need no long warm-up.
    """

    arrival: np.ndarray
    size: np.ndarray
    lifetime: np.ndarray
    deployment: np.ndarray
    image: np.ndarray
    prefill: int = 0

    def __len__(self) -> int:
        return int(self.arrival.shape[0])


def sample_lifetimes(rng: np.random.Generator, n: int) -> np.ndarray:
    """Lifetimes in seconds, log-linear between the CDF points (heavy tailed, 5 min to 30 days)."""
    times = np.log([t for t, _ in LIFETIME_CDF])
    probs = np.array([p for _, p in LIFETIME_CDF])
    return np.asarray(np.exp(np.interp(rng.random(n), probs, times)))


def sample_deployment_sizes(rng: np.random.Generator, n: int) -> np.ndarray:
    """How many VMs each of n deployments asks for; uniform between the CDF's points."""
    u = rng.random(n)
    bounds = [0, *[k for k, _ in DEPLOYMENT_CDF]]
    probs = [0.0, *[p for _, p in DEPLOYMENT_CDF]]
    out = np.empty(n, dtype=np.int64)
    for i in range(1, len(bounds)):
        hit = (u >= probs[i - 1]) & (u < probs[i]) if i < len(bounds) - 1 else u >= probs[i - 1]
        low, high = bounds[i - 1] + 1, bounds[i]
        out[hit] = rng.integers(low, high + 1, size=int(hit.sum()))
    return out


def mean_cores(sizes: tuple[tuple[int, int, float], ...] = AZURE_SIZES) -> float:
    total = sum(share for _, _, share in sizes)
    return sum(cores * share for cores, _, share in sizes) / total


def mean_lifetime(rng: np.random.Generator | None = None, samples: int = 200_000) -> float:
    """The lifetime distribution's mean, estimated once from a fixed stream."""
    rng = rng or np.random.default_rng(12345)
    return float(sample_lifetimes(rng, samples).mean())


def poisson_workload(
    rng: np.random.Generator,
    n_vms: int,
    total_cores: int,
    load: float,
    *,
    n_images: int = 20,
    image_skew: float = 1.1,
    sizes: tuple[tuple[int, int, float], ...] = AZURE_SIZES,
    lifetime_mean: float | None = None,
    warm_start: bool = True,
) -> VmRequests:
    """``n_vms`` requests arriving in deployments as a Poisson process whose offered core demand is
    ``load`` times ``total_cores`` (offered load 1.0 = demand equals the cluster's cores).

    Images follow a Zipf-like popularity with exponent ``image_skew``. With ``warm_start`` the
    requests are preceded by the VMs an infinite cluster would be running in steady state: a
    Poisson number of them (rate x mean lifetime), each with the residual life of a length-biased
    lifetime, as renewal theory gives for a VM caught mid-life. Heavy-tailed lifetimes otherwise
    take weeks of simulated time to fill the cluster.
    """
    if n_vms < 1 or total_cores < 1 or load <= 0:
        raise ValueError("n_vms and total_cores must be >= 1 and load > 0")
    life_mean = lifetime_mean if lifetime_mean is not None else mean_lifetime()
    vm_rate = load * total_cores / (mean_cores(sizes) * life_mean)  # VMs per second
    deployments = sample_deployment_sizes(rng, n_vms)
    counts = deployments[np.cumsum(deployments) - deployments < n_vms]
    counts[-1] -= max(0, int(counts.sum()) - n_vms)
    deploy_rate = vm_rate / float(counts.mean())
    starts = np.cumsum(rng.exponential(1.0 / deploy_rate, size=counts.shape[0]))
    arrival = np.repeat(starts, counts)
    deployment = np.repeat(np.arange(counts.shape[0]), counts)
    shares = np.array([s for _, _, s in sizes])
    size = rng.choice(len(sizes), size=n_vms, p=shares / shares.sum())
    ranks = np.arange(1, n_images + 1, dtype=float)
    popularity = ranks ** -image_skew
    image = rng.choice(n_images, size=n_vms, p=popularity / popularity.sum())
    lifetime = sample_lifetimes(rng, n_vms)
    if not warm_start:
        return VmRequests(arrival, size, lifetime, deployment, image)
    n0 = int(rng.poisson(vm_rate * life_mean))
    pool = sample_lifetimes(rng, max(4 * n0, 1000))
    biased = rng.choice(pool, size=n0, p=pool / pool.sum())
    residual = biased * rng.random(n0)
    size0 = rng.choice(len(sizes), size=n0, p=shares / shares.sum())
    image0 = rng.choice(n_images, size=n0, p=popularity / popularity.sum())
    return VmRequests(
        np.concatenate([np.zeros(n0), arrival]),
        np.concatenate([size0, size]),
        np.concatenate([residual, lifetime]),
        np.concatenate([-1 - np.arange(n0), deployment]),  # each running VM its own deployment
        np.concatenate([image0, image]),
        prefill=n0,
    )
