"""The placement kernel against its plain-Python twin, and each policy against answers worked by hand."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from pyx import placement as kernel
from pyx.errors import InsufficientCapacity
from pyx.placement import ASLEEP, DOWN, POLICIES, UP, WAKING, Placement
from pyx.presence import PresenceMap
from pyx.twins import placement as twin

# Eucalyptus 3.3+ defaults: m1.small, c1.medium, m1.large, m1.xlarge, c1.xlarge.
EUCA_TYPES = [(1, 256, 5), (2, 512, 10), (2, 512, 10), (2, 1024, 10), (2, 2048, 10)]
FALLBACKS = [p for p in POLICIES if p != "CACHEAWARE"]


def cluster(policy: str, nodes: list[tuple[int, int, int]], types: list[tuple[int, int, int]] | None = None,
            fallback: str = "BESTFIT") -> Placement:
    p = Placement(types or EUCA_TYPES, policy, fallback)
    for cores, mem, disk in nodes:
        p.add_node(cores, mem, disk)
    return p


def snapshot(p: Any) -> tuple[object, ...]:
    """Everything a caller can observe about a scheduler."""
    nodes = [(p.free(i), p.max(i), p.state(i), p.instances(i)) for i in range(p.n_nodes)]
    return (p.n_nodes, p.n_types, p.rr_position, nodes, np.asarray(p.availability()).tolist())


# -- the kernel and the twin agree, step by step, under every policy ----------------------------------

amounts = st.integers(0, 8)
memory = st.sampled_from([0, 128, 256, 512, 768, 1024, 2048, 4096])
vmtype_rows = st.tuples(st.integers(0, 4), st.sampled_from([0, 128, 256, 512, 1024]), st.integers(0, 6)).filter(
    lambda row: any(row))
vmtype_tables = st.lists(vmtype_rows, min_size=1, max_size=4)
bad_rows = st.tuples(st.integers(-1, 2), st.integers(-1, 2), st.integers(-1, 2))
times = st.integers(0, 1000).map(float)


class Agreement(RuleBasedStateMachine):
    """Random cluster histories run on both implementations; every answer and every state must match."""

    policy = "GREEDY"

    def __init__(self) -> None:
        super().__init__()
        self.presence = PresenceMap(0, 0)
        self.kernel: Placement | None = None
        self.twin: twin.Placement | None = None
        self.placed: list[tuple[int, int]] = []

    def both(self, call: Callable[[Any], object]) -> object:
        outcomes: list[tuple[str, object]] = []
        for side in (self.kernel, self.twin):
            try:
                result = call(side)
            except Exception as exc:  # the point is to compare whatever either side raises
                outcomes.append(("raised", type(exc)))
            else:
                if isinstance(result, np.ndarray):
                    result = (result.dtype.name, result.shape, result.tolist())
                outcomes.append(("returned", result))
        assert outcomes[0] == outcomes[1]
        return outcomes[0][1]

    @initialize(types=vmtype_tables, fallback=st.sampled_from(FALLBACKS),
                nodes=st.lists(st.tuples(amounts, memory, amounts, st.sampled_from([UP, UP, DOWN, ASLEEP])),
                               max_size=6))
    def build(self, types: list[tuple[int, int, int]], fallback: str,
              nodes: list[tuple[int, int, int, int]]) -> None:
        self.kernel = Placement(types, self.policy, fallback)
        self.twin = twin.Placement(types, self.policy, fallback)
        for cores, mem, disk, state in nodes:
            self.both(lambda p, c=cores, m=mem, d=disk, s=state: p.add_node(c, m, d, s))
        self.kernel.attach_presence(self.presence)
        self.twin.attach_presence(self.presence)

    @property
    def n_nodes(self) -> int:
        assert self.kernel is not None
        return self.kernel.n_nodes

    @rule(cores=amounts, mem=memory, disk=amounts, state=st.integers(-1, 4), now=times)
    def add_node(self, cores: int, mem: int, disk: int, state: int, now: float) -> None:
        self.both(lambda p: p.add_node(cores, mem, disk, state, now))

    @rule(vmtype=st.integers(-1, 4), image=st.integers(-1, 3), now=times)
    def place(self, vmtype: int, image: int, now: float) -> None:
        node = self.both(lambda p: p.place(vmtype, image, now))
        if isinstance(node, int) and node >= 0:
            self.placed.append((node, vmtype))

    @rule(vmtype=st.integers(-1, 4), lo=st.integers(-1, 5), extra=st.integers(-1, 5), image=st.integers(-1, 3),
          now=times)
    def place_many(self, vmtype: int, lo: int, extra: int, image: int, now: float) -> None:
        nodes = self.both(lambda p: p.place_many(vmtype, lo, lo + extra, image, now))
        if isinstance(nodes, list):
            self.placed.extend((node, vmtype) for node in nodes)

    @precondition(lambda self: self.placed)
    @rule(data=st.data(), now=times)
    def release_placed(self, data: st.DataObject, now: float) -> None:
        node, vmtype = self.placed.pop(data.draw(st.integers(0, len(self.placed) - 1)))
        self.both(lambda p: p.release(node, vmtype, now))

    @rule(node=st.integers(-1, 9), vmtype=st.integers(-1, 4), now=times)
    def release_any(self, node: int, vmtype: int, now: float) -> None:
        self.both(lambda p: p.release(node, vmtype, now))

    @rule(node=st.integers(-1, 9), cores=st.integers(-1, 9), mem=memory, disk=amounts, count=st.integers(-1, 4))
    def report(self, node: int, cores: int, mem: int, disk: int, count: int) -> None:
        self.both(lambda p: p.report(node, cores, mem, disk, count))

    @rule(node=st.integers(-1, 9), state=st.integers(-1, 4), now=times)
    def set_state(self, node: int, state: int, now: float) -> None:
        self.both(lambda p: p.set_state(node, state, now))

    @rule(node=st.integers(-1, 9), cores=st.integers(-1, 9), mem=memory, disk=amounts)
    def set_max(self, node: int, cores: int, mem: int, disk: int) -> None:
        self.both(lambda p: p.set_max(node, cores, mem, disk))

    @rule(now=st.integers(0, 3000).map(float), idle=st.integers(0, 1000).map(float),
          wake=st.integers(0, 1000).map(float))
    def power_tick(self, now: float, idle: float, wake: float) -> None:
        self.both(lambda p: p.power_tick(now, idle, wake))

    @rule(types=st.one_of(vmtype_tables, st.lists(bad_rows, max_size=2)))
    def set_vmtypes(self, types: list[tuple[int, int, int]]) -> None:
        self.both(lambda p: p.set_vmtypes(types))

    @rule(node=st.integers(0, 9), image=st.integers(0, 3), present=st.booleans())
    def cache_changes(self, node: int, image: int, present: bool) -> None:
        self.presence.set(node, image, present)

    @rule(attached=st.booleans())
    def attach(self, attached: bool) -> None:
        self.both(lambda p: p.attach_presence(self.presence if attached else None))

    @invariant()
    def same_state(self) -> None:
        if self.kernel is not None and self.twin is not None:
            assert snapshot(self.kernel) == snapshot(self.twin)


AGREEMENT = settings(max_examples=45, stateful_step_count=35, deadline=None,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def _agreement_case(policy: str) -> type[Any]:
    machine = type(f"Agreement{policy.title()}", (Agreement,), {"policy": policy})
    case: type[Any] = machine.TestCase
    case.settings = AGREEMENT
    return case


TestAgreementGreedy = _agreement_case("GREEDY")
TestAgreementRoundrobin = _agreement_case("ROUNDROBIN")
TestAgreementPowersave = _agreement_case("POWERSAVE")
TestAgreementBestfit = _agreement_case("BESTFIT")
TestAgreementSpread = _agreement_case("SPREAD")
TestAgreementAligned = _agreement_case("ALIGNED")
TestAgreementCacheaware = _agreement_case("CACHEAWARE")


@pytest.mark.parametrize("policy", POLICIES)
def test_agreement_on_a_large_cluster(policy: str) -> None:
    """Thousands of nodes: multi-word and summary-level bitsets, deep trees, scale changes."""
    rng = random.Random(policy)
    presence = PresenceMap(0, 0)
    sides: list[Any] = [Placement(EUCA_TYPES, policy, "SPREAD"), twin.Placement(EUCA_TYPES, policy, "SPREAD")]
    for i in range(4200):
        presence.set(i, i % 3, rng.random() < 0.05)
        spec = (rng.choice([8, 16]), rng.choice([16384, 32768]), rng.choice([500, 1000]),
                rng.choice([UP, UP, UP, DOWN, ASLEEP]))
        for side in sides:
            side.add_node(*spec)
    for side in sides:
        side.attach_presence(presence)
    placed: list[tuple[int, int]] = []
    for step in range(500):
        roll = rng.random()
        if roll < 0.6:
            vmtype, image = rng.randrange(len(EUCA_TYPES)), rng.randrange(-1, 3)
            nodes = [side.place(vmtype, image, float(step)) for side in sides]
            assert nodes[0] == nodes[1]
            if nodes[0] >= 0:
                placed.append((nodes[0], vmtype))
        elif roll < 0.85 and placed:
            node, vmtype = placed.pop(rng.randrange(len(placed)))
            for side in sides:
                side.release(node, vmtype, float(step))
        elif roll < 0.9:
            node, state = rng.randrange(4200), rng.choice([UP, DOWN, ASLEEP, WAKING])
            for side in sides:
                side.set_state(node, state, float(step))
        elif roll < 0.95:
            node, caps = rng.randrange(4200), (rng.choice([8, 16, 32]), 32768, rng.choice([500, 1000, 2000]))
            for side in sides:
                side.set_max(node, *caps)
        else:
            node = rng.randrange(4200)
            free = (rng.randrange(17), rng.randrange(32769), rng.randrange(1001), rng.randrange(5))
            for side in sides:
                side.report(node, *free)
        assert sides[0].rr_position == sides[1].rr_position
        if step % 50 == 0:
            assert sides[0].availability().tolist() == sides[1].availability().tolist()
    assert snapshot(sides[0]) == snapshot(sides[1])


# -- each policy on a hand-worked cluster ---------------------------------------------------------------


def test_roundrobin_wraps_and_skips_down_nodes() -> None:
    p = cluster("ROUNDROBIN", [(4, 2048, 100)] * 4)
    p.set_state(3, DOWN)
    assert [p.place(0) for _ in range(4)] == [0, 1, 2, 0]
    assert p.rr_position == 1
    p.set_state(3, UP)
    p.set_state(2, DOWN)
    assert [p.place(0) for _ in range(3)] == [1, 3, 0]


def test_roundrobin_wakes_an_asleep_node_and_keeps_its_place_on_failure() -> None:
    p = cluster("ROUNDROBIN", [(1, 256, 5)] * 3)
    p.set_state(1, ASLEEP)
    assert p.place(0, now=7.0) == 0
    assert p.place(0, now=7.0) == 1
    assert p.state(1) == WAKING
    assert p.rr_position == 2
    assert p.place(0) == 2
    assert p.rr_position == 0
    assert p.place(0) == -1
    assert p.rr_position == 0


def test_greedy_takes_the_first_awake_node_that_fits() -> None:
    p = cluster("GREEDY", [(1, 256, 5), (4, 4096, 100), (4, 4096, 100), (4, 4096, 100)])
    p.set_state(1, ASLEEP)
    p.set_state(2, DOWN)
    assert p.place(1) == 3
    assert p.place(0) == 0
    p.set_state(3, WAKING)
    assert p.place(0) == 3
    assert p.state(1) == ASLEEP


def test_powersave_wakes_the_first_asleep_node_only_when_no_awake_node_fits() -> None:
    p = cluster("POWERSAVE", [(1, 256, 5), (2, 512, 10), (2, 512, 10), (2, 512, 10)])
    p.set_state(1, ASLEEP)
    p.set_state(2, ASLEEP)
    assert p.place(0) == 0
    assert p.place(0) == 3
    assert p.state(1) == ASLEEP
    assert p.place(1, now=42.0) == 1
    assert p.state(1) == WAKING
    assert p.state(2) == ASLEEP
    assert p.power_tick(342.0, 300.0, 300.0) == ([], [])
    assert p.power_tick(342.5, 300.0, 300.0) == ([], [1])


def test_bestfit_picks_the_fullest_node_that_fits() -> None:
    p = cluster("BESTFIT", [(8, 8192, 100), (2, 1024, 20), (1, 256, 5), (2, 1024, 20)])
    assert p.place(1) == 1
    assert p.place(0) == 2
    assert p.place(3) == 3
    assert p.place(3) == 0


def test_spread_picks_the_emptiest_node_and_breaks_ties_by_index() -> None:
    p = cluster("SPREAD", [(4, 4096, 40), (8, 8192, 80), (8, 8192, 80)])
    assert [p.place(0) for _ in range(3)] == [1, 2, 1]


def test_aligned_prefers_the_node_rich_where_the_type_is_demanding() -> None:
    types = [(1, 4096, 1), (4, 256, 1)]
    p = cluster("ALIGNED", [(8, 1024, 10), (1, 8192, 10)], types)
    assert p.place(0) == 1
    assert p.place(1) == 0


@pytest.mark.parametrize("impl", [kernel, twin], ids=["kernel", "twin"])
def test_aligned_keeps_the_slot_a_large_type_needs(impl: Any) -> None:
    """A small VM on node 0 would strand its 3 cores left for the large type (4 cores, 4 GB), so
    ALIGNED puts it on node 1, where a large one still fits after; BESTFIT takes the fuller node 0
    and then has room for one large VM, not two."""
    types = [(4, 4096, 1), (1, 1024, 1)]
    nodes = [(4, 4096, 10), (5, 8192, 10)]
    aligned = impl.Placement(types, "ALIGNED")
    bestfit = impl.Placement(types, "BESTFIT")
    for p in (aligned, bestfit):
        for node in nodes:
            p.add_node(*node)
    assert [aligned.place(1), aligned.place(0), aligned.place(0)] == [1, 0, 1]
    assert [bestfit.place(1), bestfit.place(0), bestfit.place(0)] == [0, 1, -1]


@pytest.mark.parametrize("impl", [kernel, twin], ids=["kernel", "twin"])
def test_aligned_leaves_cores_and_memory_in_step(impl: Any) -> None:
    """Where nothing is stranded, the node whose leftover cores and memory stay in proportion wins:
    a memory-heavy VM goes to the node with memory to spare, not to node 0 (as full by BESTFIT's
    measure, and its pick), which it would leave with 7 cores and half its memory."""
    types = [(1, 4096, 1), (1, 256, 1)]
    p = impl.Placement(types, "ALIGNED")
    p.add_node(8, 8192, 10)
    p.add_node(4, 16384, 10)
    assert p.place(0) == 1


@settings(max_examples=60, deadline=None)
@given(nodes=st.lists(st.tuples(st.integers(1, 16), st.sampled_from([1024, 2048, 4096, 8192, 16384]),
                                st.integers(5, 50)), min_size=1, max_size=12),
       types=vmtype_tables, picks=st.lists(st.integers(0, 3), max_size=25))
def test_aligned_agrees_with_the_twin_on_long_fills(nodes: list[tuple[int, int, int]],
                                                   types: list[tuple[int, int, int]], picks: list[int]) -> None:
    """Filling a cluster to the brim: every choice and every free vector the same, bit for bit."""
    sides: list[Any] = [Placement(types, "ALIGNED"), twin.Placement(types, "ALIGNED")]
    for side in sides:
        for node in nodes:
            side.add_node(*node)
    for pick in picks:
        vmtype = pick % len(types)
        assert sides[0].place(vmtype) == sides[1].place(vmtype)
    assert snapshot(sides[0]) == snapshot(sides[1])


def test_cacheaware_prefers_holders_then_falls_back() -> None:
    presence = PresenceMap(4, 2)
    p = cluster("CACHEAWARE", [(8, 8192, 100), (4, 4096, 50), (8, 8192, 100), (2, 2048, 20)], fallback="GREEDY")
    assert p.place(0, image=0) == 0
    p.attach_presence(presence)
    presence.set(2, 0, True)
    presence.set(1, 0, True)
    presence.set(0, 1, True)
    assert p.place(0, image=0) == 1
    p.set_state(1, DOWN)
    assert p.place(0, image=0) == 2
    assert p.place(0, image=-1) == 0
    assert p.place(0, image=7) == 0
    p.set_state(2, ASLEEP)
    assert p.place(0, image=0) == 0
    assert p.state(2) == ASLEEP


def test_reservation_is_all_or_nothing() -> None:
    p = cluster("ROUNDROBIN", [(2, 1024, 20), (2, 1024, 20), (2, 1024, 20)])
    p.set_state(2, ASLEEP)
    assert p.place(0) == 0
    before = snapshot(p)
    with pytest.raises(InsufficientCapacity):
        p.place_many(1, 3, 5, now=9.0)
    assert snapshot(p) == before
    assert p.state(2) == ASLEEP
    assert p.power_tick(100.0, 10.0, 10.0) == ([1], [])
    assert p.place_many(1, 2, 5) == [1, 2]
    assert p.state(2) == WAKING
    assert p.place_many(0, 0, 0) == []
    with pytest.raises(ValueError):
        p.place_many(0, 2, 1)
    with pytest.raises(IndexError):
        p.place_many(9, 0, 1)


def test_availability_counts_copies_like_describe_availability_zones() -> None:
    # Two nodes of 4 cores, 2048 MB, 20 GB, one DOWN. m1.small (1/256/5): min(4, 8, 4) = 4 per node.
    p = cluster("GREEDY", [(4, 2048, 20), (4, 2048, 20), (4, 2048, 20)])
    p.set_state(2, DOWN)
    assert p.availability().tolist() == [[8, 8], [4, 4], [4, 4], [4, 4], [2, 2]]
    assert p.availability().dtype == np.int64
    assert p.place(4) == 0  # leaves 2 cores, 0 MB, 10 GB: no copy of anything fits there now
    assert p.availability().tolist() == [[4, 8], [2, 4], [2, 4], [2, 4], [1, 2]]
    p.set_state(1, ASLEEP)
    assert p.availability().tolist() == [[4, 8], [2, 4], [2, 4], [2, 4], [1, 2]]
    p.set_state(2, UP)
    assert p.availability().tolist() == [[8, 12], [4, 6], [4, 6], [4, 6], [2, 3]]


def test_power_tick_thresholds_are_strict_and_follow_instances() -> None:
    p = cluster("POWERSAVE", [(2, 1024, 10), (2, 1024, 10)])
    assert p.power_tick(300.0, 300.0, 300.0) == ([], [])
    assert p.power_tick(300.5, 300.0, 300.0) == ([0, 1], [])
    assert p.place(0, now=10.0) == 0
    assert p.power_tick(301.0, 300.0, 300.0) == ([1], [])
    p.release(0, 0, now=200.0)
    assert p.power_tick(500.0, 300.0, 300.0) == ([1], [])
    assert p.power_tick(500.5, 300.0, 300.0) == ([0, 1], [])
    p.set_state(1, ASLEEP)
    p.set_state(1, WAKING, now=600.0)
    p.set_state(1, WAKING, now=800.0)  # already waking: the clock keeps running
    assert p.power_tick(900.5, 300.0, 300.0) == ([0], [1])
    p.set_state(1, UP, now=900.0)
    assert p.power_tick(1200.0, 300.0, 300.0) == ([0], [])


def test_capacity_changes_keep_what_is_in_use() -> None:
    p = cluster("GREEDY", [(4, 2048, 20)])
    p.place(3)
    assert p.free(0) == (2, 1024, 10)
    p.set_max(0, 8, 1024, 40)
    assert (p.max(0), p.free(0)) == ((8, 1024, 40), (6, 0, 30))
    p.report(0, 99, 512, 3, 5)
    assert (p.free(0), p.instances(0)) == ((8, 512, 3), 5)
    p.release(0, 1)
    assert (p.free(0), p.instances(0)) == ((8, 1024, 13), 4)


def test_release_never_goes_below_zero_or_above_max() -> None:
    p = cluster("GREEDY", [(4, 2048, 20)])
    p.release(0, 4)
    assert (p.free(0), p.instances(0)) == ((4, 2048, 20), 0)


def test_set_vmtypes_rebuilds_the_counts() -> None:
    p = cluster("BESTFIT", [(4, 2048, 20), (2, 1024, 10)])
    p.set_vmtypes([(4, 2048, 20)])
    assert p.n_types == 1
    assert p.availability().tolist() == [[1, 1]]
    assert p.place(0) == 0
    assert p.place(0) == -1
    with pytest.raises(IndexError):
        p.place(1)


@pytest.mark.parametrize("impl", [kernel, twin], ids=["kernel", "twin"])
def test_bad_input_is_refused_and_changes_nothing(impl: Any) -> None:
    with pytest.raises(ValueError, match="VM type 0"):
        impl.Placement([(0, 0, 0)])
    with pytest.raises(ValueError, match="memory"):
        impl.Placement([(1, -1, 0)])
    with pytest.raises(ValueError, match="at least one"):
        impl.Placement([])
    with pytest.raises(ValueError, match="policy"):
        impl.Placement(EUCA_TYPES, "FIRSTFIT")
    with pytest.raises(ValueError, match="fallback"):
        impl.Placement(EUCA_TYPES, "CACHEAWARE", "CACHEAWARE")
    p = impl.Placement(EUCA_TYPES, "ROUNDROBIN")
    assert (p.policy, p.fallback, p.n_nodes, p.n_types, p.rr_position) == ("ROUNDROBIN", "BESTFIT", 0, 5, 0)
    assert p.place(0) == -1
    p.add_node(4, 2048, 20)
    before = snapshot(p)
    for call, error in [
        (lambda: p.add_node(-1, 1, 1), ValueError),
        (lambda: p.add_node(1, 1, 1, state=4), ValueError),
        (lambda: p.set_state(0, -1), ValueError),
        (lambda: p.set_state(1, UP), IndexError),
        (lambda: p.set_max(0, 1, -5, 1), ValueError),
        (lambda: p.report(0, 1, 1, 1, -1), ValueError),
        (lambda: p.report(-1, 1, 1, 1, 0), IndexError),
        (lambda: p.place(5), IndexError),
        (lambda: p.place(-1), IndexError),
        (lambda: p.release(0, 5), IndexError),
        (lambda: p.release(1, 0), IndexError),
        (lambda: p.free(1), IndexError),
        (lambda: p.set_vmtypes([(1, 2)]), ValueError),
        (lambda: p.place_many(0, -1, 1), ValueError),
    ]:
        with pytest.raises(error):
            call()
        assert snapshot(p) == before
