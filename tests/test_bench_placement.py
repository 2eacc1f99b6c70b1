"""pytest-benchmark cases for the placement kernel (run with ``pytest -m bench``)."""

from __future__ import annotations

from typing import Any

import pytest

from bench.placement import VMTYPES, churn, prefill, presence_for
from pyx.placement import Placement
from pyx.twins import placement as twin

pytestmark = pytest.mark.bench

NODES = 10_000


@pytest.mark.parametrize("policy", ["GREEDY", "ROUNDROBIN", "BESTFIT", "CACHEAWARE"])
def test_kernel_place_release(benchmark: Any, policy: str) -> None:
    scheduler = Placement(VMTYPES, policy)
    prefill(scheduler, NODES, presence_for(NODES))
    before = scheduler.availability().tolist()
    assert benchmark(churn(scheduler, 1_000)) == 1_000
    assert scheduler.availability().tolist() == before


def test_twin_place_release_greedy(benchmark: Any) -> None:
    scheduler = twin.Placement(VMTYPES, "GREEDY")
    prefill(scheduler, NODES, presence_for(NODES))
    assert benchmark.pedantic(churn(scheduler, 5), rounds=3) == 5
