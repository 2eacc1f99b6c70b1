"""The synthetic workload: seeded, and shaped like the published traces."""

from __future__ import annotations

import numpy as np
import pytest

from sim.workload import (
    AZURE_SIZES,
    HOUR,
    mean_cores,
    poisson_workload,
    sample_deployment_sizes,
    sample_lifetimes,
)


def test_same_seed_same_workload_bit_for_bit() -> None:
    a = poisson_workload(np.random.default_rng(3), 2000, 640, 1.0)
    b = poisson_workload(np.random.default_rng(3), 2000, 640, 1.0)
    for field in ("arrival", "size", "lifetime", "deployment", "image"):
        assert np.array_equal(getattr(a, field), getattr(b, field))
    c = poisson_workload(np.random.default_rng(4), 2000, 640, 1.0)
    assert not np.array_equal(a.lifetime, c.lifetime)


def test_lifetimes_follow_the_published_cdf() -> None:
    life = sample_lifetimes(np.random.default_rng(0), 200_000)
    assert life.min() >= 300.0
    assert life.max() <= 720 * HOUR
    for limit, share in ((1.5 * HOUR, 0.65), (4 * HOUR, 0.78), (24 * HOUR, 0.93), (168 * HOUR, 0.97)):
        assert float((life <= limit).mean()) == pytest.approx(share, abs=0.01)


def test_deployment_sizes_follow_the_published_cdf() -> None:
    sizes = sample_deployment_sizes(np.random.default_rng(1), 100_000)
    assert float((sizes == 1).mean()) == pytest.approx(0.20, abs=0.01)
    assert float((sizes <= 10).mean()) == pytest.approx(0.73, abs=0.01)
    assert sizes.max() <= 100


def test_offered_load_and_size_mix() -> None:
    rng = np.random.default_rng(5)
    requests = poisson_workload(rng, 50_000, 3200, 1.0, warm_start=False)
    counts = np.bincount(requests.size, minlength=len(AZURE_SIZES)) / len(requests)
    for (_, _, share), got in zip(AZURE_SIZES, counts, strict=True):
        assert got == pytest.approx(share, abs=0.01)
    assert np.all(np.diff(requests.arrival) >= 0)
    # Offered core demand over the span ~ load x cores (Little's law with the realised sizes).
    rate = len(requests) / float(requests.arrival[-1])
    assert rate * mean_cores() * float(requests.lifetime.mean()) / 3200 == pytest.approx(1.0, rel=0.25)


def test_warm_start_prefills_the_steady_state_population() -> None:
    requests = poisson_workload(np.random.default_rng(6), 1000, 3200, 1.0)
    assert requests.prefill > 0
    assert np.all(requests.arrival[: requests.prefill] == 0.0)
    assert np.all(requests.deployment[: requests.prefill] < 0)
    assert len(requests) == 1000 + requests.prefill


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError):
        poisson_workload(np.random.default_rng(0), 0, 100, 1.0)
