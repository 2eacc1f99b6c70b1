"""pytest-benchmark cases for the network allocators (``pytest -m bench tests/test_bench_netalloc.py``).

Each case is 1,000 allocate+release pairs in a pool ~90 % held, for the Cython kernel and its twin.
"""

from __future__ import annotations

from functools import cache

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from bench.netalloc import Loop, cases

PAIRS = 1_000
# In the order of bench.netalloc.cases().
IDS = ["VlanPool-4086", "AddressPlan-16-A32", "AddressPlan-8-A256", "PublicPool-256", "PublicPool-2048", "MacPool-1024",
       "GroupNetworks-1000"]


@cache
def _loops() -> list[tuple[Loop, Loop]]:
    # Filling the pools takes a moment, so only when a bench case actually runs.
    return [(fast, slow) for _, _, fast, slow in cases()]


@pytest.mark.bench
@pytest.mark.parametrize("case", range(len(IDS)), ids=IDS)
@pytest.mark.parametrize("side", ["cython", "python"])
def test_allocate_release_pairs(benchmark: BenchmarkFixture, case: int, side: str) -> None:
    assert len(_loops()) == len(IDS)
    fast, slow = _loops()[case]
    benchmark.group = IDS[case]
    assert benchmark(fast if side == "cython" else slow, PAIRS) == PAIRS
