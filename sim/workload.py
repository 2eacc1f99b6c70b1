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
    """A batch of VM requests: arrival time (s), size class, lifetime (s), deployment number, image number,
    and optionally the security group each request runs in.

    The first ``prefill`` requests arrive at time 0 and stand for the VMs already running when the
    observation starts (a warm start), so that measurements need no long warm-up.
    """

    arrival: np.ndarray
    size: np.ndarray
    lifetime: np.ndarray
    deployment: np.ndarray
    image: np.ndarray
    prefill: int = 0
    group: np.ndarray | None = None  # security group number per request (None: one group for all)

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


DAY = 24 * HOUR
WEEK = 7 * DAY


def cycle_factor(t: np.ndarray, daily: float, weekly: float, peak_hour: float = 14.0) -> np.ndarray:
    """The relative arrival rate at times ``t`` (s from a Monday 00:00): a daily swing of +/- ``daily``
    peaking at ``peak_hour``, times a weekly swing of +/- ``weekly`` peaking mid-week. Its mean over a
    week is 1, so the offered load is unchanged on average."""
    day = 1.0 + daily * np.cos(2 * np.pi * (t - peak_hour * HOUR) / DAY)
    week = 1.0 + weekly * np.cos(2 * np.pi * (t - 2.5 * DAY) / WEEK)
    return np.asarray(day * week)


def zipf_choice(rng: np.random.Generator, n_items: int, skew: float, size: int) -> np.ndarray:
    """Item numbers 0..n_items-1 with Zipf-like popularity (item k weighted (k+1) ** -skew)."""
    weights = np.arange(1, n_items + 1, dtype=float) ** -skew
    return np.asarray(rng.choice(n_items, size=size, p=weights / weights.sum()))


def nhpp_workload(
    rng: np.random.Generator,
    n_vms: int,
    total_cores: int,
    load: float,
    *,
    daily: float = 0.3,
    weekly: float = 0.15,
    n_images: int = 20,
    image_skew: float = 1.1,
    n_groups: int = 50,
    group_skew: float = 1.0,
    sizes: tuple[tuple[int, int, float], ...] = AZURE_SIZES,
    lifetime_mean: float | None = None,
    warm_start: bool = True,
) -> VmRequests:
    """Deployments arriving as a non-homogeneous Poisson process with daily and weekly cycles
    (``cycle_factor``), drawn by thinning; otherwise as ``poisson_workload``: the mean offered core
    demand is ``load`` times ``total_cores``. Each deployment runs in one security group, the groups
    (and the images) following Zipf-like popularity, so a few groups hold many instances and VLAN
    tags, private and public addresses can each run out first.
    """
    if n_vms < 1 or total_cores < 1 or load <= 0:
        raise ValueError("n_vms and total_cores must be >= 1 and load > 0")
    if not (0 <= daily < 1 and 0 <= weekly < 1):
        raise ValueError("daily and weekly swings must be in [0, 1)")
    if n_images < 1 or n_groups < 1:
        raise ValueError("n_images and n_groups must be >= 1")
    life_mean = lifetime_mean if lifetime_mean is not None else mean_lifetime()
    vm_rate = load * total_cores / (mean_cores(sizes) * life_mean)
    deployments = sample_deployment_sizes(rng, n_vms)
    counts = deployments[np.cumsum(deployments) - deployments < n_vms]
    counts[-1] -= max(0, int(counts.sum()) - n_vms)
    n_dep = counts.shape[0]
    peak_rate = vm_rate / float(counts.mean()) * (1 + daily) * (1 + weekly)
    starts = np.empty(0)
    t0 = 0.0
    while starts.shape[0] < n_dep:  # thinning: candidates at the peak rate, kept in proportion to the rate
        want = 2 * (n_dep - starts.shape[0]) + 16
        cand = t0 + np.cumsum(rng.exponential(1.0 / peak_rate, size=want))
        keep = rng.random(want) * (1 + daily) * (1 + weekly) < cycle_factor(cand, daily, weekly)
        starts = np.concatenate([starts, cand[keep]])
        t0 = float(cand[-1])
    starts = starts[:n_dep]
    arrival = np.repeat(starts, counts)
    deployment = np.repeat(np.arange(n_dep), counts)
    group = np.repeat(zipf_choice(rng, n_groups, group_skew, n_dep), counts)
    shares = np.array([s for _, _, s in sizes])
    size = rng.choice(len(sizes), size=n_vms, p=shares / shares.sum())
    image = zipf_choice(rng, n_images, image_skew, n_vms)
    lifetime = sample_lifetimes(rng, n_vms)
    if not warm_start:
        return VmRequests(arrival, size, lifetime, deployment, image, 0, group)
    n0 = int(rng.poisson(vm_rate * life_mean))
    pool = sample_lifetimes(rng, max(4 * n0, 1000))
    residual = rng.choice(pool, size=n0, p=pool / pool.sum()) * rng.random(n0)
    return VmRequests(
        np.concatenate([np.zeros(n0), arrival]),
        np.concatenate([rng.choice(len(sizes), size=n0, p=shares / shares.sum()), size]),
        np.concatenate([residual, lifetime]),
        np.concatenate([-1 - np.arange(n0), deployment]),
        np.concatenate([zipf_choice(rng, n_images, image_skew, n0), image]),
        prefill=n0,
        group=np.concatenate([zipf_choice(rng, n_groups, group_skew, n0), group]),
    )


def exponential_workload(
    rng: np.random.Generator,
    n_vms: int,
    total_cores: int,
    load: float,
    *,
    mean_life: float = HOUR,
    n_images: int = 1,
    image_skew: float = 1.1,
    warm_start: bool = True,
) -> VmRequests:
    """Single one-core VMs arriving as a Poisson process with exponential lifetimes: offered load
    ``load`` x ``total_cores`` Erlangs. On identical one-slot nodes this is the M/M/c/c loss system
    whose blocking probability is Erlang's B formula."""
    if n_vms < 1 or total_cores < 1 or load <= 0 or mean_life <= 0:
        raise ValueError("n_vms and total_cores must be >= 1, load and mean_life > 0")
    rate = load * total_cores / mean_life
    arrival = np.cumsum(rng.exponential(1.0 / rate, size=n_vms))
    lifetime = rng.exponential(mean_life, size=n_vms)
    image = zipf_choice(rng, n_images, image_skew, n_vms)
    size = np.zeros(n_vms, dtype=np.int64)
    n0 = int(rng.poisson(rate * mean_life)) if warm_start else 0
    return VmRequests(
        np.concatenate([np.zeros(n0), arrival]),
        np.concatenate([np.zeros(n0, dtype=np.int64), size]),
        np.concatenate([rng.exponential(mean_life, size=n0), lifetime]),  # memoryless: residual life is alike
        np.concatenate([-1 - np.arange(n0), np.arange(n_vms)]),
        np.concatenate([zipf_choice(rng, n_images, image_skew, n0), image]),
        prefill=n0,
    )
