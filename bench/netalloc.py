"""The network allocators at steady state: allocate then release, in pools that are ~90 % held.

That is what a busy cluster controller does all day: an instance starts (a private address, maybe a
public IP, a VLAN for a new security group), another ends and gives them back. Each row times the
Cython kernel and its plain-Python twin in the same run on the same state.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

import pyx.netalloc as kernel
import pyx.twins.netalloc as twin
from bench.table import Row
from bench.timing import rate

HELD = 0.9
UNIT = "pairs/s"


class _TagOrAddressPool(Protocol):
    def allocate(self) -> int: ...
    def release(self, item: int, /) -> None: ...


class _Plan(Protocol):
    def allocate_host(self, v: int, /) -> int: ...
    def release_host(self, ip: int, /) -> None: ...


class _Macs(Protocol):
    def allocate(self) -> tuple[str, int]: ...
    def release(self, mac: str, /) -> None: ...


class _Groups(Protocol):
    def attach(self, instance_id: str, group: str, /) -> tuple[str, str, str, int, str]: ...
    def release(self, instance_id: str, /) -> tuple[str, str, str, int, str] | None: ...


Loop = Callable[[int], int]


def _pool_loop(pool: _TagOrAddressPool) -> Loop:
    def run(n: int) -> int:
        allocate, release = pool.allocate, pool.release
        for _ in range(n):
            release(allocate())
        return n

    return run


def _plan_loop(plan: _Plan, v: int) -> Loop:
    def run(n: int) -> int:
        allocate, release = plan.allocate_host, plan.release_host
        for _ in range(n):
            release(allocate(v))
        return n

    return run


def _mac_loop(pool: _Macs) -> Loop:
    def run(n: int) -> int:
        allocate, release = pool.allocate, pool.release
        for _ in range(n):
            release(allocate()[0])
        return n

    return run


def _groups_loop(nets: _Groups) -> Loop:
    def run(n: int) -> int:
        attach, release = nets.attach, nets.release
        for k in range(n):
            # A new member of a busy group, then one of a group it alone makes: both paths of a start.
            attach("i-0000ABCD", "alice-web")
            release("i-0000ABCD")
            attach("i-0000ABCE", f"g-{k & 7}")
            release("i-0000ABCE")
        return n

    return run


def _measure(loop: Loop, seconds: float, repeats: int) -> float:
    """Pairs per second, with the batch sized so one repeat takes about ``seconds``."""
    n = 16
    while True:
        start = time.perf_counter()
        loop(n)
        elapsed = time.perf_counter() - start
        if elapsed >= seconds / 4 or n >= 1 << 24:
            break
        n *= 4
    n = max(1, int(n * seconds / max(elapsed, 1e-9)))
    return rate(lambda: loop(n), repeats=repeats)


def _fill_pool(pool: _TagOrAddressPool, size: int) -> None:
    for _ in range(int(size * HELD)):
        pool.allocate()


def _vlan(impl_vlan: Callable[[int, int], _TagOrAddressPool]) -> Loop:
    pool = impl_vlan(10, 4095)
    _fill_pool(pool, 4086)
    return _pool_loop(pool)


def _plan(make: Callable[..., _Plan], subnet: int, netmask: int, addrs_per_net: int) -> Loop:
    plan = make(subnet, netmask, addrs_per_net)
    # A security group well inside the range, as full as a busy group gets.
    v = 100
    for _ in range(int((addrs_per_net - 3) * HELD)):
        plan.allocate_host(v)
    return _plan_loop(plan, v)


def _public(make: Callable[[list[int]], _TagOrAddressPool], size: int) -> Loop:
    # Two blocks listed out of order, as administrators write VNET_PUBLICIPS.
    first = 0xC6336400  # 198.51.100.0
    addresses = [first + 4096 + i for i in range(size // 2)] + [first + i for i in range(size - size // 2)]
    pool = make(addresses)
    _fill_pool(pool, size)
    return _pool_loop(pool)


def _macs(make: Callable[[list[tuple[str, int]]], _Macs], size: int) -> Loop:
    base = 0xC0A80100  # 192.168.1.0
    pool = make([(f"aa:dd:11:ce:{i >> 8:02x}:{i & 255:02x}", base + i) for i in range(size)])
    for _ in range(int(size * HELD)):
        pool.allocate()
    return _mac_loop(pool)


def _group_networks(make: Callable[..., _Groups]) -> Loop:
    nets = make(0x0A000000, 0xFF000000, 32, 10, 4095, "d0:0d")
    # 1,000 groups with instances, one of them nearly full.
    for k in range(1000):
        nets.attach(f"i-{k:08X}", f"group-{k}")
    for k in range(int(29 * HELD)):
        nets.attach(f"i-1{k:07X}", "alice-web")
    return _groups_loop(nets)


def cases() -> list[tuple[str, str, Loop, Loop]]:
    """(kernel, size, Cython loop, twin loop) per row; each loop runs n allocate+release pairs
    (GroupNetworks: n pairs of instance starts and ends)."""
    return [
        ("netalloc VlanPool", "4,086 tags", _vlan(kernel.VlanPool), _vlan(twin.VlanPool)),
        (
            "netalloc AddressPlan",
            "/16, 32 per net",
            _plan(kernel.AddressPlan, 0x0A000000, 0xFFFF0000, 32),
            _plan(twin.AddressPlan, 0x0A000000, 0xFFFF0000, 32),
        ),
        (
            "netalloc AddressPlan",
            "/8, 256 per net",
            _plan(kernel.AddressPlan, 0x0A000000, 0xFF000000, 256),
            _plan(twin.AddressPlan, 0x0A000000, 0xFF000000, 256),
        ),
        ("netalloc PublicPool", "256 addresses", _public(kernel.PublicPool, 256), _public(twin.PublicPool, 256)),
        ("netalloc PublicPool", "2,048 addresses", _public(kernel.PublicPool, 2048), _public(twin.PublicPool, 2048)),
        ("netalloc MacPool", "1,024 pairs", _macs(kernel.MacPool, 1024), _macs(twin.MacPool, 1024)),
        ("netalloc GroupNetworks", "1,000 groups, /8", _group_networks(kernel.GroupNetworks),
         _group_networks(twin.GroupNetworks)),
    ]


def rows(quick: bool = False) -> list[Row]:
    """Kernel vs twin for each allocator; quick mode takes a few seconds in all."""
    seconds, repeats = (0.01, 3) if quick else (0.1, 5)
    return [
        Row(kernel=name, size=size, cython=_measure(fast, seconds, repeats), python=_measure(slow, seconds, repeats),
            unit=UNIT)
        for name, size, fast, slow in cases()
    ]
