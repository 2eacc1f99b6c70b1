"""Placement decisions per second: the Cython kernel against its plain-Python twin, per SCHEDPOLICY.

Each cluster is built the same way for both sides: identical nodes (16 cores, 32 GB, 1 TB) filled in
``NODES`` order with a mix of Eucalyptus VM types until about 87 % of all cores are in use, so the
early nodes are full and a first-fit scan has to walk most of the cluster before it finds room. The
timed loop is the steady state of a busy cloud: an instance starts (``place``) and one ends
(``release``) on the same cluster, over and over.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Protocol

from bench.table import Row
from bench.timing import rate
from pyx.placement import POLICIES, Placement
from pyx.presence import PresenceMap
from pyx.twins import placement as twin

NODE = (16, 32768, 1000)
# m1.small, c1.medium, m1.large, m1.xlarge, c1.xlarge, t1.micro, m1.medium (Eucalyptus 3.3+).
VMTYPES = ((1, 256, 5), (2, 512, 10), (2, 512, 10), (2, 1024, 10), (2, 2048, 10), (1, 256, 5), (1, 512, 10))
FILL = 0.87
IMAGE = 0
# One node in this many holds the benchmark's image in its cache (what CACHEAWARE looks for).
CACHE_EVERY = 37

SIZES = (100, 1_000, 10_000, 100_000)
QUICK_SIZES = (100, 1_000)


class Scheduler(Protocol):
    def add_node(self, cores: int, mem: int, disk: int, state: int = 0, now: float = 0.0) -> int: ...
    def report(self, node: int, free_cores: int, free_mem: int, free_disk: int, instances: int) -> None: ...
    def attach_presence(self, presence: PresenceMap | None) -> None: ...
    def place(self, vmtype: int, image: int = -1, now: float = 0.0) -> int: ...
    def release(self, node: int, vmtype: int, now: float = 0.0) -> None: ...


@functools.cache
def fill_plan(nodes: int) -> tuple[tuple[int, int, int, int, int], ...]:
    """(node, free cores, free MB, free GB, instances) for every node the prefill leaves in use:
    nodes filled first to last with the VM type mix until FILL of all cores are in use."""
    target = int(FILL * nodes * NODE[0])
    used = 0
    kind = 0
    plan = []
    for node in range(nodes):
        free = list(NODE)
        count = 0
        misses = 0
        # Fill the node until no type in the mix fits, so a full node is full for every type.
        while used < target and misses < len(VMTYPES):
            need = VMTYPES[kind % len(VMTYPES)]
            kind += 1
            if any(free[d] < need[d] for d in range(3)):
                misses += 1
                continue
            misses = 0
            for d in range(3):
                free[d] -= need[d]
            used += need[0]
            count += 1
        if count:
            plan.append((node, free[0], free[1], free[2], count))
    return tuple(plan)


def prefill(scheduler: Scheduler, nodes: int, presence: PresenceMap) -> None:
    """A cluster of identical nodes, all UP, in use as ``fill_plan`` says; CACHEAWARE reads ``presence``."""
    for _ in range(nodes):
        scheduler.add_node(*NODE)
    for node, cores, mem, disk, count in fill_plan(nodes):
        scheduler.report(node, cores, mem, disk, count)
    scheduler.attach_presence(presence)


def presence_for(nodes: int) -> PresenceMap:
    presence = PresenceMap(nodes, IMAGE + 1)
    for node in range(0, nodes, CACHE_EVERY):
        presence.set(node, IMAGE, True)
    return presence


def churn(scheduler: Scheduler, pairs: int) -> Callable[[], int]:
    """A timed run: ``pairs`` instances started and ended, cycling through the VM types."""
    place, release = scheduler.place, scheduler.release
    kinds = len(VMTYPES)

    def run() -> int:
        for i in range(pairs):
            kind = i % kinds
            node = place(kind, IMAGE)
            if node >= 0:
                release(node, kind)
        return pairs

    return run


def _pairs(nodes: int, python: bool, quick: bool) -> int:
    if not python:
        return 5_000 if quick else 20_000
    budget = 60_000 if quick else 200_000  # node visits per repeat for the scanning twin
    return max(4, min(2_000, budget // nodes))


def rows(quick: bool = False, policies: Sequence[str] = POLICIES) -> list[Row]:
    """One row per policy and cluster size: place+release pairs per second, kernel and twin."""
    out = []
    repeats = 3 if quick else 5
    for nodes in QUICK_SIZES if quick else SIZES:
        presence = presence_for(nodes)
        for policy in policies:
            kernel = Placement(VMTYPES, policy, "BESTFIT")
            prefill(kernel, nodes, presence)
            reference = twin.Placement(VMTYPES, policy, "BESTFIT")
            prefill(reference, nodes, presence)
            fast = rate(churn(kernel, _pairs(nodes, False, quick)), repeats)
            slow = rate(churn(reference, _pairs(nodes, True, quick)), 3 if nodes >= 10_000 else repeats)
            out.append(Row(kernel=f"placement {policy}", size=f"{nodes:,} nodes", cython=fast, python=slow,
                           unit="place+release/s"))
    return out
