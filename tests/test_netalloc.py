"""The network allocators against their plain-Python twin, plus known answers from Eucalyptus's rules."""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pyx.netalloc as kernel
import pyx.twins.netalloc as twin
from pyx.errors import Conflict, Exhausted

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
IMPLS = [kernel, twin]


def ip(text: str) -> int:
    return int(ipaddress.IPv4Address(text))


def outcome(call: Callable[..., object], *args: object) -> tuple[str, object]:
    """What a call did, comparable across the kernel and the twin: its result or its error and message."""
    try:
        return ("ok", call(*args))
    except (ValueError, TypeError, Exhausted, Conflict) as error:
        return (type(error).__name__, str(error))


def held_pick() -> st.SearchStrategy[tuple[str, int]]:
    """An argument run_both replaces with one of the items the pool holds at that moment, so that
    releases and conflicting takes of held items are as common as the misses."""
    return st.tuples(st.just("@held"), st.integers(0, 1000))


def run_both(
    make: Callable[[Any], object],
    ops: Sequence[tuple[Any, ...]],
    snapshot: Callable[[Any], object],
    holding: Callable[[Any], list[Any]] = lambda pool: list(pool.in_use()),
) -> None:
    """Build the pool with both implementations, apply ops to each, demand identical results throughout."""
    built = outcome(lambda: make(kernel)), outcome(lambda: make(twin))
    assert (built[0][0], built[0][0] == "ok" or built[0][1]) == (built[1][0], built[1][0] == "ok" or built[1][1])
    if built[0][0] != "ok":
        return
    pools = (built[0][1], built[1][1])
    for step, (name, *drawn) in enumerate(ops):
        held = holding(pools[0])
        args = [
            (held[arg[1] % len(held)] if held else 0) if isinstance(arg, tuple) and arg[0] == "@held" else arg
            for arg in drawn
        ]
        got = [outcome(getattr(pool, name), *args) for pool in pools]
        assert got[0] == got[1], (step, name, args)
        assert snapshot(pools[0]) == snapshot(pools[1]), (step, name, args)


def test_twin_has_every_pool_the_face_hands_on() -> None:
    """pyx.netalloc gathers the pools of five modules; the oracle must keep covering all of them."""
    assert [name for name in kernel.__all__ if not hasattr(twin, name)] == []


# --- VlanPool ------------------------------------------------------------------------------------

@st.composite
def vlan_case(draw: st.DrawFn) -> tuple[int, int, list[tuple[Any, ...]]]:
    lo = draw(st.one_of(st.integers(1, 30), st.integers(4080, 4095)))
    hi = draw(st.integers(lo, min(lo + 40, 4095)))
    tag = st.one_of(st.integers(lo - 2, hi + 2), st.sampled_from([0, -1, 4096, 2**70, -(2**70)]))
    op = st.one_of(
        st.just(("allocate",)),
        st.tuples(st.just("take"), tag | held_pick()),
        st.tuples(st.just("release"), tag),
        st.tuples(st.just("release"), held_pick()),
        st.tuples(st.just("held"), tag | held_pick()),
        st.tuples(st.just("load"), st.lists(tag, max_size=12)),
    )
    return lo, hi, draw(st.lists(op, min_size=5, max_size=60))


def vlan_snapshot(pool: Any) -> object:
    return (pool.in_use(), pool.free_count, pool.lo, pool.hi)


@SETTINGS
@given(vlan_case())
def test_vlan_pool_matches_twin(case: tuple[int, int, list[tuple[Any, ...]]]) -> None:
    lo, hi, ops = case
    run_both(lambda impl: impl.VlanPool(lo, hi), ops, vlan_snapshot)


@SETTINGS
@given(st.integers(-5, 4100) | st.sampled_from([2**64, -(2**64)]), st.integers(-5, 4100))
def test_vlan_pool_bounds_match_twin(lo: int, hi: int) -> None:
    run_both(lambda impl: impl.VlanPool(lo, hi), [("allocate",)], vlan_snapshot)


def test_vlan_pool_hands_out_lowest_free_tag_first() -> None:
    pool = kernel.VlanPool(10, 4095)
    assert [pool.allocate() for _ in range(5)] == [10, 11, 12, 13, 14]
    pool.release(12)
    pool.release(10)
    assert pool.allocate() == 10
    assert pool.allocate() == 12
    assert pool.allocate() == 15
    assert pool.in_use() == [10, 11, 12, 13, 14, 15]
    assert pool.free_count == 4086 - 6


def test_vlan_pool_exhaustion_and_errors_change_nothing() -> None:
    pool = kernel.VlanPool(4094, 4095)
    assert (pool.allocate(), pool.allocate()) == (4094, 4095)
    with pytest.raises(Exhausted, match=r"^Not enough resources available: vlan tags$"):
        pool.allocate()
    with pytest.raises(Conflict):
        pool.take(4094)
    with pytest.raises(ValueError, match="outside"):
        pool.take(10)
    pool.release(4095)
    with pytest.raises(ValueError, match="not in use"):
        pool.release(4095)
    assert pool.in_use() == [4094] and pool.free_count == 1
    with pytest.raises(ValueError, match=r"^lo"):
        kernel.VlanPool(0, 10)
    with pytest.raises(ValueError, match=r"^hi"):
        kernel.VlanPool(10, 4096)


def test_vlan_pool_load_keeps_the_good_and_reports_the_rest() -> None:
    pool = kernel.VlanPool(10, 4095)
    pool.allocate()
    assert pool.load([11, 12, 11, 9, 5000]) == [(11, "duplicate"), (9, "out of range"), (5000, "out of range")]
    assert pool.in_use() == [11, 12]
    assert pool.allocate() == 10
    with pytest.raises(TypeError):
        pool.load([13, "14"])  # type: ignore[list-item]
    assert pool.in_use() == [10, 11, 12]


# --- AddressPlan ---------------------------------------------------------------------------------

SUBNETS = [ip("10.0.0.0"), ip("192.168.0.0"), ip("10.0.1.0"), ip("10.0.0.16"), 2**32, -1]
MASKS = [ip(f"255.255.255.{x}") for x in (0, 128, 192, 224, 240)] + [ip("255.255.0.0"), ip("255.255.255.1"), 2**33]


@st.composite
def plan_args(draw: st.DrawFn) -> tuple[int, int, int, int, int]:
    return (
        draw(st.sampled_from(SUBNETS)),
        draw(st.sampled_from(MASKS)),
        draw(st.sampled_from([8, 15, 16, 32, 64, 128, 256, 512, 2048, 4096, 2**70])),
        draw(st.integers(0, 12) | st.just(4095)),
        draw(st.integers(0, 16) | st.just(4095) | st.just(4096)),
    )


@st.composite
def plan_case(draw: st.DrawFn) -> tuple[tuple[int, int, int, int, int], list[tuple[Any, ...]]]:
    subnet = ip("10.0.0.0")
    prefix = draw(st.integers(24, 27))
    size = 1 << (32 - prefix)
    a = draw(st.sampled_from([16, 32, 64]).filter(lambda a: a <= size))
    top = 1 + size // a
    lo = draw(st.integers(1, min(4, top)))
    first = max(lo, 2)
    hi = draw(st.integers(first, 20) | st.just(4095))
    last = min(hi, top)
    # Mostly networks and addresses the plan holds, some just outside it.
    v = st.integers(first, last) | st.integers(0, top + 2)
    address = st.one_of(
        st.builds(lambda v, i: subnet + (v - 2) * a + i, st.integers(first, last), st.integers(0, a - 1)),
        st.integers(subnet - 3, subnet + size + 3),
        st.sampled_from([-1, 2**40]),
    )
    op = st.one_of(
        st.tuples(st.just("allocate_host"), v),
        st.tuples(st.just("allocate_host"), st.integers(first, last)),
        st.tuples(st.just("take_host"), address | held_pick()),
        st.tuples(st.just("release_host"), address),
        st.tuples(st.just("release_host"), held_pick()),
        st.tuples(st.just("held"), address | held_pick()),
        st.tuples(st.just("network_of"), address | held_pick()),
        st.tuples(st.just("network"), v),
        st.tuples(st.just("hosts_in_use"), v),
        st.tuples(st.just("release_network"), v),
        st.tuples(st.just("load"), st.lists(address, max_size=10)),
    )
    mask = (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF
    return (subnet, mask, a, lo, hi), draw(st.lists(op, min_size=5, max_size=80))


def plan_snapshot(plan: Any) -> object:
    return (
        [plan.hosts_in_use(v) for v in range(plan.min_vlan, plan.max_vlan + 1)],
        plan.min_vlan,
        plan.max_vlan,
        plan.addrs_per_net,
    )


def plan_holding(plan: Any) -> list[int]:
    return [host for v in range(plan.min_vlan, plan.max_vlan + 1) for host in plan.hosts_in_use(v)]


@SETTINGS
@given(plan_case())
def test_address_plan_matches_twin(case: tuple[tuple[int, int, int, int, int], list[tuple[Any, ...]]]) -> None:
    args, ops = case
    run_both(lambda impl: impl.AddressPlan(*args), ops, plan_snapshot, plan_holding)


@SETTINGS
@given(plan_args())
def test_address_plan_validation_matches_twin(args: tuple[int, int, int, int, int]) -> None:
    run_both(lambda impl: impl.AddressPlan(*args), [("network", 2), ("allocate_host", 2)], plan_snapshot, plan_holding)


def test_address_plan_known_answers() -> None:
    plan = kernel.AddressPlan(ip("10.0.0.0"), ip("255.255.0.0"), 32)
    assert plan.network(10) == (ip("10.0.1.0"), ip("255.255.255.224"), ip("10.0.1.1"), ip("10.0.1.31"))
    assert plan.network(2)[0] == ip("10.0.0.0")
    assert plan.allocate_host(10) == ip("10.0.1.2")
    assert plan.allocate_host(10) == ip("10.0.1.3")
    assert plan.network_of(ip("10.0.1.31")) == 10
    assert (plan.min_vlan, plan.max_vlan) == (2, 2049)
    assert kernel.AddressPlan(ip("10.0.0.0"), ip("255.255.255.0"), 32).max_vlan == 9
    assert kernel.AddressPlan(ip("10.0.0.0"), ip("255.0.0.0"), 256, 10, 4095).max_vlan == 4095
    assert kernel.AddressPlan(ip("192.168.0.0"), ip("255.255.255.0"), 64, 3, 4).min_vlan == 3


def test_address_plan_fills_a_network_then_refuses() -> None:
    plan = kernel.AddressPlan(ip("10.0.0.0"), ip("255.255.255.0"), 16)
    hosts = [plan.allocate_host(5) for _ in range(13)]
    base = ip("10.0.0.48")
    assert hosts == [base + i for i in range(2, 15)]
    with pytest.raises(Exhausted, match=r"^Not enough resources available: private addresses$"):
        plan.allocate_host(5)
    plan.release_host(base + 7)
    assert plan.allocate_host(5) == base + 7
    for not_a_host in (base, base + 1, base + 15):
        with pytest.raises(ValueError, match=r"not a host address"):
            plan.take_host(not_a_host)
        assert not plan.held(not_a_host)
    with pytest.raises(Conflict):
        plan.take_host(base + 2)
    assert plan.release_network(5) == hosts
    assert plan.hosts_in_use(5) == [] and plan.allocate_host(5) == base + 2


def test_address_plan_validation_names_the_variable() -> None:
    with pytest.raises(ValueError, match="VNET_NETMASK"):
        kernel.AddressPlan(ip("10.0.0.0"), ip("255.0.255.0"), 32)
    with pytest.raises(ValueError, match="VNET_SUBNET"):
        kernel.AddressPlan(ip("10.0.0.1"), ip("255.255.0.0"), 32)
    for bad in (8, 24, 4096):
        with pytest.raises(ValueError, match="VNET_ADDRSPERNET"):
            kernel.AddressPlan(ip("10.0.0.0"), ip("255.255.0.0"), bad)
    with pytest.raises(ValueError, match="VNET_ADDRSPERNET"):
        kernel.AddressPlan(ip("10.0.0.0"), ip("255.255.255.240"), 32)


def test_address_plan_networks_are_independent_at_scale() -> None:
    # A /8 of 16-address networks: 4,094 VLANs, of which only the touched ones cost memory.
    plan = kernel.AddressPlan(ip("10.0.0.0"), ip("255.0.0.0"), 16)
    assert plan.max_vlan == 4095
    last = plan.allocate_host(4095)
    assert last == ip("10.0.0.0") + (4095 - 2) * 16 + 2
    assert plan.network_of(last) == 4095 and plan.held(last)
    assert plan.allocate_host(2) == ip("10.0.0.2")
    assert plan.hosts_in_use(3) == []
    assert plan.load([last, last, ip("10.0.0.1")]) == [(last, "duplicate"), (ip("10.0.0.1"), "not a host address")]
    assert plan.hosts_in_use(2) == [] and plan.hosts_in_use(4095) == [last]


# --- PublicPool ----------------------------------------------------------------------------------

UNIVERSE = [ip("203.0.113.0") + i for i in range(40)]


@st.composite
def public_case(draw: st.DrawFn) -> tuple[list[int], list[tuple[Any, ...]]]:
    addresses = draw(st.lists(st.sampled_from(UNIVERSE), unique=True, max_size=30))
    listed = st.sampled_from(addresses) if addresses else st.nothing()
    address = st.one_of(listed, st.sampled_from(UNIVERSE), st.sampled_from([-1, 0, 2**32, 2**80]))
    op = st.one_of(
        st.just(("allocate",)),
        st.tuples(st.just("take"), address | held_pick()),
        st.tuples(st.just("release"), address),
        st.tuples(st.just("release"), held_pick()),
        st.tuples(st.just("held"), address),
        st.tuples(st.just("load"), st.lists(address, max_size=12)),
    )
    return addresses, draw(st.lists(op, min_size=5, max_size=60))


def public_snapshot(pool: Any) -> object:
    return (pool.in_use(), pool.free_count, pool.size)


@SETTINGS
@given(public_case())
def test_public_pool_matches_twin(case: tuple[list[int], list[tuple[Any, ...]]]) -> None:
    addresses, ops = case
    run_both(lambda impl: impl.PublicPool(addresses), ops, public_snapshot)


@SETTINGS
@given(st.lists(st.sampled_from([*UNIVERSE[:5], -3, 2**32, 2**70]), max_size=8))
def test_public_pool_construction_matches_twin(addresses: list[int]) -> None:
    run_both(lambda impl: impl.PublicPool(addresses), [("allocate",)], public_snapshot)


def expand(notation: str) -> list[int]:
    """A VNET_PUBLICIPS token expanded as the config loader does: single IP, a.b.c.d/N hosts, or a-b."""
    if "/" in notation:
        return [int(host) for host in ipaddress.IPv4Network(notation).hosts()]
    if "-" in notation:
        start, end = notation.split("-")
        return list(range(ip(start), ip(end) + 1))
    return [ip(notation)]


def test_public_pool_over_the_three_notations() -> None:
    listed = expand("198.51.100.7") + expand("192.0.2.0/29") + expand("203.0.113.10-203.0.113.12")
    pool = kernel.PublicPool(listed)
    assert pool.size == 1 + 6 + 3
    assert pool.allocate() == ip("198.51.100.7")
    assert pool.allocate() == ip("192.0.2.1")
    pool.take(ip("203.0.113.12"))
    pool.release(ip("198.51.100.7"))
    assert pool.allocate() == ip("198.51.100.7")
    assert pool.in_use() == [ip("198.51.100.7"), ip("192.0.2.1"), ip("203.0.113.12")]
    assert pool.load([ip("203.0.113.11"), ip("203.0.113.11"), ip("192.0.2.0")]) == [
        (ip("203.0.113.11"), "duplicate"),
        (ip("192.0.2.0"), "not in pool"),
    ]
    with pytest.raises(ValueError, match="not in VNET_PUBLICIPS"):
        pool.take(ip("192.0.2.7"))
    with pytest.raises(ValueError, match="twice"):
        kernel.PublicPool([*listed, ip("192.0.2.3")])
    full = kernel.PublicPool([])
    with pytest.raises(Exhausted, match=r"^Not enough resources available: public addresses$"):
        full.allocate()


def test_public_pool_large_shuffled_pool_matches_twin() -> None:
    # Enough addresses, in a scrambled order, to make the address-to-slot table collide.
    rng = random.Random(7)
    addresses = rng.sample(range(ip("100.64.0.0"), ip("100.64.0.0") + 50_000), 6_000)
    pools = kernel.PublicPool(addresses), twin.PublicPool(addresses)
    for _ in range(3_000):
        assert pools[0].allocate() == pools[1].allocate()
    for address in rng.sample(addresses, 2_000):
        results = [outcome(p.release, address) for p in pools]
        assert results[0] == results[1]
    for _ in range(1_500):
        assert pools[0].allocate() == pools[1].allocate()
    assert pools[0].in_use() == pools[1].in_use()
    assert all(pools[0].held(a) == pools[1].held(a) for a in addresses)


# --- MacPool -------------------------------------------------------------------------------------

MACS = [f"d0:0d:00:00:00:{i:02x}" for i in range(12)]


def case_variants(mac: str) -> st.SearchStrategy[str]:
    return st.sampled_from([mac, mac.upper(), mac[:6] + mac[6:].upper()])


@st.composite
def mac_case(draw: st.DrawFn) -> tuple[list[tuple[str, int]], list[tuple[Any, ...]]]:
    macs = draw(st.lists(st.sampled_from(MACS), unique=True, max_size=10))
    pairs = [(draw(case_variants(mac)), ip("192.168.1.10") + i) for i, mac in enumerate(macs)]
    listed = st.sampled_from(macs).flatmap(case_variants) if macs else st.nothing()
    mac = st.one_of(
        listed,
        st.sampled_from(MACS).flatmap(case_variants),
        st.sampled_from(["d0:0d:00:00:00", "zz:0d:00:00:00:01", "d0-0d-00-00-00-01", "", "d0:0d:00:00:00:01\n", 7]),
    )
    op = st.one_of(
        st.just(("allocate",)),
        st.tuples(st.just("take"), mac | held_pick()),
        st.tuples(st.just("release"), mac),
        st.tuples(st.just("release"), held_pick()),
        st.tuples(st.just("held"), mac),
        st.tuples(st.just("load"), st.lists(mac, max_size=8)),
    )
    return pairs, draw(st.lists(op, min_size=5, max_size=60))


def mac_snapshot(pool: Any) -> object:
    return (pool.in_use(), pool.free_count, pool.size)


@SETTINGS
@given(mac_case())
def test_mac_pool_matches_twin(case: tuple[list[tuple[str, int]], list[tuple[Any, ...]]]) -> None:
    pairs, ops = case
    run_both(lambda impl: impl.MacPool(pairs), ops, mac_snapshot)


@SETTINGS
@given(
    st.lists(
        st.tuples(
            st.sampled_from([*MACS[:3], MACS[0].upper(), "AA:DD:CE:FF:EE", "not a mac"]),
            st.sampled_from([ip("192.168.1.3"), ip("192.168.1.4"), -1, 2**32]),
        ),
        max_size=5,
    )
)
def test_mac_pool_construction_matches_twin(pairs: list[tuple[str, int]]) -> None:
    run_both(lambda impl: impl.MacPool(pairs), [("allocate",)], mac_snapshot)


def test_mac_pool_static_mode_first_come() -> None:
    pool = kernel.MacPool([("AA:DD:11:CE:FF:ED", ip("192.168.1.3")), ("aa:dd:11:ce:ff:ee", ip("192.168.1.4"))])
    assert pool.allocate() == ("aa:dd:11:ce:ff:ed", ip("192.168.1.3"))
    assert pool.take("AA:DD:11:CE:FF:EE") == ip("192.168.1.4")
    with pytest.raises(Exhausted, match=r"^Not enough resources available: addresses$"):
        pool.allocate()
    pool.release("AA:DD:11:CE:FF:ED")
    assert pool.in_use() == ["aa:dd:11:ce:ff:ee"] and pool.free_count == 1
    with pytest.raises(ValueError, match="AA:DD:CE:FF:EE"):
        kernel.MacPool([("AA:DD:CE:FF:EE", ip("192.168.1.4"))])
    with pytest.raises(ValueError, match="twice"):
        kernel.MacPool([("aa:dd:11:ce:ff:ed", 1), ("AA:DD:11:CE:FF:ED", 2)])
    with pytest.raises(ValueError, match=r"192\.168\.1\.3 twice"):
        kernel.MacPool([("aa:dd:11:ce:ff:ed", ip("192.168.1.3")), ("aa:dd:11:ce:ff:ee", ip("192.168.1.3"))])


# --- mac_for_instance ----------------------------------------------------------------------------

def test_mac_for_instance_known_answers() -> None:
    for impl in IMPLS:
        assert impl.mac_for_instance("i-3A4B5C6D") == "d0:0d:3a:4b:5c:6d"
        assert impl.mac_for_instance("i-0000abcd", prefix="D0:0E") == "d0:0e:00:00:ab:cd"
        for bad_id in ("i-3A4B5C6", "i-3A4B5C6DE", "r-3A4B5C6D", "i-3A4B5C6G", "i-3A4B5C6D\n"):
            with pytest.raises(ValueError, match="instance id"):
                impl.mac_for_instance(bad_id)
        with pytest.raises(ValueError, match="VNET_MACPREFIX"):
            impl.mac_for_instance("i-3A4B5C6D", prefix="d0:0d:00")


@SETTINGS
@given(
    st.one_of(st.text("i-0123456789abcdefABCDEFg", max_size=12), st.from_regex(r"i-[0-9a-fA-F]{8}", fullmatch=True)),
    st.one_of(st.just("d0:0d"), st.text("0123456789abcdefABz:", max_size=7)),
)
def test_mac_for_instance_matches_twin(instance_id: str, prefix: str) -> None:
    assert outcome(lambda: kernel.mac_for_instance(instance_id, prefix)) == outcome(
        lambda: twin.mac_for_instance(instance_id, prefix)
    )


# --- GroupNetworks -------------------------------------------------------------------------------

GROUPS = ["alice-web", "alice-db", "bob-default", "carol-x"]


class Record(tuple[Any, ...]):
    """Stands in for the CC's NetAssignment: GroupNetworks builds whatever record it is given."""


@st.composite
def group_case(draw: st.DrawFn) -> tuple[tuple[int, int, str], list[tuple[Any, ...]]]:
    # 10.0.0.0/24 in networks of 16: tags 2..17, 13 hosts each; a narrow tag range runs out of tags.
    lo = draw(st.integers(2, 17))
    hi = draw(st.integers(lo, min(lo + 3, 17)))
    prefix = draw(st.sampled_from(["d0:0d", "AA:0e"]))
    # A few ids come up again and again, so that starts of running instances and ends of ended ones
    # are as common as the fresh ones.
    instance_id = st.one_of(st.from_regex(r"i-[0-9a-fA-F]{8}", fullmatch=True),
                            st.sampled_from([f"i-0000000{k}" for k in range(6)]),
                            st.sampled_from(["i-3A4B5C6", "i-3A4B5C6G", "r-00000001", "i-0000000\u00e9"]))
    group = st.sampled_from(GROUPS)
    mac = st.sampled_from(["d0:0d:00:00:00:01", "AA:0E:3A:4B:5C:6D"])
    address = st.integers(0x0A000000 - 2, 0x0A000100 + 2)
    # A host address and the network it lies in, as the state store records a running instance.
    stored = st.builds(lambda v, i: (0x0A000000 + (v - 2) * 16 + i, v), st.integers(lo, hi), st.integers(0, 15))
    op = st.one_of(
        st.tuples(st.just("attach"), instance_id | held_pick(), group),
        st.tuples(st.just("attach"), instance_id, group),
        st.tuples(st.just("release"), instance_id | held_pick()),
        st.tuples(st.just("@release"), st.integers(0, 1000)),
        st.tuples(st.just("take"), instance_id | held_pick(), mac, address, st.integers(0, 19), group),
        st.builds(lambda i, m, s, g: ("take", i, m, *s, g), instance_id, mac, stored, group),
        st.tuples(st.just("reset")),
        st.tuples(st.just("vlan_of"), group),
        st.tuples(st.just("members"), group),
    )
    return (lo, hi, prefix), draw(st.lists(op, min_size=5, max_size=60))


def _text(value: int) -> str:
    return f"{value >> 24}.{(value >> 16) & 255}.{(value >> 8) & 255}.{value & 255}"


def _group_snapshot(nets: Any) -> object:
    tags = nets.vlans.in_use()
    return (nets.groups(), tags, [nets.plan.hosts_in_use(t) for t in tags], nets.vlans.free_count,
            sorted(nets.assigned.items()))


@SETTINGS
@given(group_case())
def test_group_networks_match_twin(case: tuple[tuple[int, int, str], list[tuple[Any, ...]]]) -> None:
    (lo, hi, prefix), ops = case
    nets = [impl.GroupNetworks(0x0A000000, 0xFFFFFF00, 16, lo, hi, prefix, Record) for impl in IMPLS]
    # What every start and restore handed out, less every end: the table both must keep.
    running: dict[str, tuple[str, str, str, int, str]] = {}
    for step, (name, *drawn) in enumerate(ops):
        held = sorted(running)
        args = [(held[arg[1] % len(held)] if held else "i-00000000") if isinstance(arg, tuple) else arg
                for arg in drawn]
        if name == "@release":
            if not held:
                continue
            name, args = "release", [held[args[0] % len(held)]]
        got = [outcome(getattr(n, name), *args) for n in nets]
        assert got[0] == got[1], (step, name, args)
        if name == "attach" and got[0][0] == "ok":
            assert type(got[0][1]) is Record
            running[args[0]] = tuple(got[0][1])  # type: ignore[arg-type]
        elif name == "take" and got[0][0] == "ok":
            instance_id, mac, address, vlan, group = args
            running[instance_id] = (instance_id, mac, _text(address), vlan, group)
        elif name == "release":
            assert got[0] == ("ok", running.pop(args[0], None)), (step, args)
            assert got[0][1] is None or type(got[0][1]) is tuple
        elif name == "reset":
            running.clear()
        assert all(dict(n.assigned) == running for n in nets), (step, name, args)
        assert all(type(record) is tuple for n in nets for record in n.assigned.values())
        assert _group_snapshot(nets[0]) == _group_snapshot(nets[1]), (step, name, args)


def test_group_networks_tag_per_group_until_the_last_member_leaves() -> None:
    for impl in IMPLS:
        nets = impl.GroupNetworks(ip("192.168.0.0"), ip("255.255.0.0"), 32, 10, 4095)
        web = [nets.attach(f"i-0000000{k}", "alice-web") for k in range(3)]
        db = nets.attach("i-3A4B5C6D", "alice-db")
        assert web[0] == ("i-00000000", "d0:0d:00:00:00:00", "192.168.1.2", 10, "alice-web")
        assert [w[2] for w in web] == ["192.168.1.2", "192.168.1.3", "192.168.1.4"]
        assert db == ("i-3A4B5C6D", "d0:0d:3a:4b:5c:6d", "192.168.1.34", 11, "alice-db")
        assert nets.groups() == [("alice-web", 10, 3), ("alice-db", 11, 1)]
        assert nets.assigned == {w[0]: w for w in [*web, db]}
        assert [nets.release(w[0]) for w in web[:2]] == web[:2]
        assert nets.vlan_of("alice-web") == 10 and nets.members("alice-web") == 1
        assert nets.release(web[2][0]) == web[2]
        assert nets.vlan_of("alice-web") is None and nets.members("alice-web") == 0
        assert nets.attach("i-00000009", "bob-default")[2:4] == ("192.168.1.2", 10)
        assert nets.release(web[0][0]) is None and nets.release("i-0000FFFF") is None
        assert sorted(nets.assigned) == ["i-00000009", "i-3A4B5C6D"]
        assert nets.groups() == [("bob-default", 10, 1), ("alice-db", 11, 1)]


def test_group_networks_refuse_a_second_assignment_and_change_nothing() -> None:
    for impl in IMPLS:
        nets = impl.GroupNetworks(ip("192.168.0.0"), ip("255.255.0.0"), 32, 10, 4095, "d0:0d", Record)
        first = nets.attach("i-3A4B5C6D", "alice-db")
        with pytest.raises(Conflict, match=r"^i-3A4B5C6D already has a network assignment$"):
            nets.attach("i-3A4B5C6D", "alice-web")
        with pytest.raises(Conflict, match=r"^i-3A4B5C6D already has a network assignment$"):
            nets.take("i-3A4B5C6D", "d0:0d:3a:4b:5c:6d", ip("192.168.1.66"), 12, "alice-web")
        assert nets.groups() == [("alice-db", 10, 1)] and nets.vlans.in_use() == [10]
        assert nets.plan.hosts_in_use(10) == [ip("192.168.1.2")]
        assert nets.assigned == {"i-3A4B5C6D": tuple(first)}
        assert type(nets.assigned["i-3A4B5C6D"]) is tuple and type(first) is Record


def test_group_networks_take_restores_an_instance_as_stored() -> None:
    for impl in IMPLS:
        nets = impl.GroupNetworks(ip("192.168.0.0"), ip("255.255.0.0"), 32, 10, 4095)
        nets.take("i-0000ABCD", "d0:0d:00:00:ab:cd", ip("192.168.1.36"), 11, "alice-db")
        assert nets.assigned == {"i-0000ABCD": ("i-0000ABCD", "d0:0d:00:00:ab:cd", "192.168.1.36", 11, "alice-db")}
        assert nets.groups() == [("alice-db", 11, 1)]
        with pytest.raises(Conflict, match=r"^group alice-db is on VLAN 11, not 12$"):
            nets.take("i-0000ABCE", "d0:0d:00:00:ab:ce", ip("192.168.1.66"), 12, "alice-db")
        with pytest.raises(Conflict, match=r"^192\.168\.1\.66 is not in network 11$"):
            nets.take("i-0000ABCE", "d0:0d:00:00:ab:ce", ip("192.168.1.66"), 11, "alice-db")
        with pytest.raises(Conflict, match=r"private address 192\.168\.1\.36 is already in use"):
            nets.take("i-0000ABCE", "d0:0d:00:00:ab:ce", ip("192.168.1.36"), 11, "alice-db")
        assert list(nets.assigned) == ["i-0000ABCD"] and nets.members("alice-db") == 1
        # The next start of the group goes on from the restored address, not over it.
        assert nets.attach("i-0000ABCE", "alice-db")[2:4] == ("192.168.1.34", 11)
        assert nets.release("i-0000ABCD") == ("i-0000ABCD", "d0:0d:00:00:ab:cd", "192.168.1.36", 11, "alice-db")
        assert nets.release("i-0000ABCE") is not None and nets.groups() == [] and nets.vlans.in_use() == []
        nets.take("i-0000ABCD", "d0:0d:00:00:ab:cd", ip("192.168.1.36"), 11, "alice-db")
        nets.reset()
        assert nets.assigned == {} and nets.groups() == [] and nets.plan.hosts_in_use(11) == []
