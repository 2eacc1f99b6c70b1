"""The cluster controller's ledger: a one-instance reservation started and ended, at 10,000 nodes.

Both sides drive the same collaborators (the placement kernel with GREEDY over 10,000 nodes, the
MANAGED network's GroupNetworks kernel, an image cache that holds nothing), so the row measures
the ledger itself: the Cython kernel against its plain-Python twin, in the same run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyx.ledger as kernel
import pyx.twins.ledger as twin
from bench.table import Row
from bench.timing import rate
from pyx.netalloc import GroupNetworks
from pyx.placement import Placement
from pyx.presence import PresenceMap

UNIT = "start+end/s"
NODES = 10_000


def _loop(make: Callable[..., Any]) -> Callable[[], int]:
    placement = Placement([(1, 256, 5), (2, 512, 10)], "GREEDY")
    names = []
    for k in range(NODES):
        placement.add_node(32, 65536, 2000)
        names.append(f"node{k:05d}")
    nets = GroupNetworks(0x0A000000, 0xFF000000, 32, 10, 4095, "d0:0d")
    ledger = make(placement, PresenceMap(), names, {"m1.small": 0, "c1.medium": 1}, nets.attach, nets.release,
                  lambda *a: None, lambda *a: None, names.index)
    # A busy cluster: 20,000 instances running in 1,000 groups.
    for k in range(20_000):
        ledger.start([f"i-1{k:07X}"], "m1.small", 1, "", -1, f"g{k % 1000}", 0.0)
    ids = [[f"i-2{k:07X}"] for k in range(1000)]

    def run() -> int:
        start, end = ledger.start, ledger.end
        for one in ids:
            start(one, "m1.small", 1, "", -1, "g7", 1.0)
            end(one[0], 2.0)
        return len(ids)

    return run


def rows(quick: bool = False) -> list[Row]:
    repeats = 3 if quick else 7
    fast, slow = _loop(kernel.Ledger), _loop(twin.Ledger)
    return [Row("ledger start+end", f"{NODES:,} nodes, 20k running", rate(fast, repeats), rate(slow, repeats), UNIT)]
