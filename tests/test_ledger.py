"""The cluster controller's ledger against its plain-Python twin, and its all-or-nothing starts."""

from __future__ import annotations

import gc
from typing import Any, NamedTuple

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pyx.ledger as kernel
import pyx.placement as kernel_placement
import pyx.presence as kernel_presence
import pyx.twins.ledger as twin
import pyx.twins.placement as twin_placement
import pyx.twins.presence as twin_presence
from pyx.errors import Conflict, Exhausted, InsufficientCapacity

TYPES = {"m1.small": 0, "c1.medium": 1}
NEEDS = [(1, 256, 5), (2, 512, 10)]


class Net(NamedTuple):
    instance_id: str
    mac: str
    private_ip: str
    vlan: int
    group: str


class Launch(NamedTuple):
    instance_id: str
    node: str
    vmtype: str
    net: Net
    image_id: str
    node_index: int
    image_cached: bool


class World:
    """One ledger and the fakes it calls: a network of ``addresses`` hosts and a log of every call."""

    def __init__(self, impl: str, addresses: int, cached: list[tuple[int, int]]) -> None:
        placement_mod = kernel_placement if impl == "kernel" else twin_placement
        presence_mod = kernel_presence if impl == "kernel" else twin_presence
        ledger_mod = kernel if impl == "kernel" else twin
        self.placement = placement_mod.Placement(NEEDS, "GREEDY")
        self.presence = presence_mod.PresenceMap()
        self.names: list[str] = []
        for k in range(4):
            self.placement.add_node(4, 4096, 100)
            self.names.append(f"node-{k}")
        for node, image in cached:
            self.presence.set(node, image, True)
        self.free = list(range(addresses))
        self.held: dict[str, int] = {}
        self.log: list[tuple[Any, ...]] = []
        self.ledger = ledger_mod.Ledger(self.placement, self.presence, self.names, TYPES, self.attach, self.detach,
                                        self.use, self.unpin, self.names.index, Launch, Net, "zone-a")

    def attach(self, instance_id: str, key: str) -> Net:
        if not self.free:
            raise Exhausted("private addresses")
        host = self.free.pop(0)
        self.held[instance_id] = host
        self.log.append(("attach", instance_id))
        return Net(instance_id, f"d0:0d:00:00:00:{host:02x}", f"10.0.0.{host}", 10, key)

    def detach(self, instance_id: str) -> None:
        self.free.append(self.held.pop(instance_id))
        self.free.sort()
        self.log.append(("detach", instance_id))

    def use(self, node: int, image: int, now: float) -> None:
        self.log.append(("use", node, image, now))

    def unpin(self, node: int, image_id: str) -> None:
        self.log.append(("unpin", node, image_id))

    def snapshot(self) -> object:
        p = self.placement
        nodes = [(p.free(i), p.instances(i)) for i in range(p.n_nodes)]
        return (nodes, np.asarray(p.availability()).tolist(), self.free, sorted(self.held.items()), self.log,
                sorted(self.ledger.records()), len(self.ledger))


def outcome(call: Any, *args: Any) -> tuple[str, object]:
    try:
        return ("ok", call(*args))
    except (KeyError, Conflict, Exhausted, InsufficientCapacity) as error:
        return (type(error).__name__, str(error))


ID = st.integers(0, 30).map(lambda k: f"i-{k:08X}")


@st.composite
def cases(draw: st.DrawFn) -> tuple[int, list[tuple[int, int]], list[tuple[Any, ...]]]:
    addresses = draw(st.integers(0, 12))
    cached = draw(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2)), max_size=6))
    start = st.tuples(st.just("start"), st.lists(ID, min_size=1, max_size=5), st.sampled_from(sorted(TYPES)),
                      st.integers(0, 5), st.sampled_from(["", "emi-00000001", "emi-00000002"]),
                      st.integers(-1, 3), st.sampled_from(["a-web", "b-db"]), st.floats(0, 100))
    op = st.one_of(start, start,
                   st.tuples(st.just("end"), ID, st.floats(0, 100)),
                   st.tuples(st.just("get"), ID),
                   st.tuples(st.just("mark_cached"), ID),
                   st.tuples(st.just("add"), ID, st.integers(0, 3)))
    return addresses, cached, draw(st.lists(op, min_size=1, max_size=40))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_ledger_matches_twin(case: tuple[int, list[tuple[int, int]], list[tuple[Any, ...]]]) -> None:
    addresses, cached, ops = case
    worlds = [World("kernel", addresses, cached), World("twin", addresses, cached)]
    for step, (name, *args) in enumerate(ops):
        if name == "start":
            ids, vmtype, low, image_id, image, key, now = args
            args = [ids, vmtype, min(low, len(ids)), image_id, image, key, now]
        elif name == "add":
            instance_id, node = args
            args = [Launch(instance_id, f"node-{node}", "m1.small", Net(instance_id, "m", "10.9.9.9", 10, "k"),
                           "", -1, False)]
        got = [outcome(getattr(w.ledger, name), *args) for w in worlds]
        assert got[0] == got[1], (step, name, args)
        if got[0][0] == "ok" and name in ("start", "end", "get"):
            values = got[0][1] if name == "start" else [got[0][1]]
            assert all(v is None or (type(v) is Launch and type(v.net) is Net) for v in values)  # type: ignore[union-attr]
        assert worlds[0].snapshot() == worlds[1].snapshot(), (step, name, args)


@pytest.mark.parametrize("impl", ["kernel", "twin"])
def test_a_start_short_of_addresses_is_all_or_nothing_below_min_count(impl: str) -> None:
    w = World(impl, 2, [])
    before = w.snapshot()
    with pytest.raises(Exhausted, match="private addresses"):
        w.ledger.start(["i-00000001", "i-00000002", "i-00000003"], "m1.small", 3, "", -1, "a-web", 1.0)
    # The two addresses handed out went back, and so did the capacity of all three.
    assert w.free == [0, 1] and len(w.ledger) == 0
    assert [(w.placement.free(i), w.placement.instances(i)) for i in range(4)] == \
        [(n[0], n[1]) for n in before[0]]  # type: ignore[index]
    # At MinCount 1 the same request starts the two that got addresses and skips the third.
    launches = w.ledger.start(["i-00000001", "i-00000002", "i-00000003"], "m1.small", 1, "", -1, "a-web", 1.0)
    assert [launch.instance_id for launch in launches] == ["i-00000001", "i-00000002"]
    assert w.placement.instances(0) == 2 and len(w.ledger) == 2


@pytest.mark.parametrize("impl", ["kernel", "twin"])
def test_ids_must_be_new_and_an_end_gives_everything_back(impl: str) -> None:
    w = World(impl, 8, [(0, 1)])
    [launch] = w.ledger.start(["i-00000001"], "c1.medium", 1, "emi-00000002", 1, "a-web", 5.0)
    assert launch == Launch("i-00000001", "node-0", "c1.medium", Net("i-00000001", "d0:0d:00:00:00:00",
                                                                      "10.0.0.0", 10, "a-web"),
                            "emi-00000002", 0, True)
    assert ("use", 0, 1, 5.0) in w.log
    with pytest.raises(Conflict):
        w.ledger.start(["i-00000001"], "m1.small", 1, "", -1, "a-web", 5.0)
    with pytest.raises(Conflict):
        w.ledger.start(["i-00000002", "i-00000002"], "m1.small", 1, "", -1, "a-web", 5.0)
    assert w.ledger.end("i-00000001", 9.0) == launch
    assert w.log[-2:] == [("detach", "i-00000001"), ("unpin", 0, "emi-00000002")]
    assert w.placement.free(0) == (4, 4096, 100) and w.free[0] == 0
    with pytest.raises(KeyError, match="i-00000001 is not running in zone-a"):
        w.ledger.end("i-00000001", 9.0)


def test_the_collector_stops_tracking_what_the_ledger_keeps() -> None:
    w = World("kernel", 50, [])
    for k in range(15):
        w.ledger.start([f"i-{k:08X}"], "m1.small", 1, "", -1, "a-web", 0.0)
    gc.collect()
    [table] = [o for o in gc.get_referents(w.ledger) if isinstance(o, dict) and "i-00000000" in o]
    assert len(table) == 15 and not any(gc.is_tracked(record) for record in table.values())
    # ... while the named tuples it hands out would stay tracked for good.
    kept = [w.ledger.get(f"i-{k:08X}") for k in range(15)]
    gc.collect()
    assert all(gc.is_tracked(launch) for launch in kept)
    assert len(w.ledger) == 15
