"""Plain-Python twin of ``pyx.netalloc``, the network pools of ``pyx.vlans``, ``pyx.addrplan``,
``pyx.publicips``, ``pyx.macs`` and ``pyx.groupnets``: the oracle their property tests compare
against, and the baseline their benchmark measures.

Sets, dicts and lists, and "lowest free" found by ``min()`` or by a scan from the bottom, so that
each rule can be checked by reading it. Same API, same results, same exceptions and messages.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Iterable, Sequence
from typing import Any, SupportsIndex

from pyx.errors import Conflict, Exhausted

MAX_TAG = 4095
MAX_IPV4 = 0xFFFFFFFF
# Eucalyptus 3.x: VNET_ADDRSPERNET is a power of two from 16 to 2048.
MIN_ADDRS = 16
MAX_ADDRS = 2048

_MAC = re.compile(r"[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5}")
_MAC_PREFIX = re.compile(r"[0-9a-fA-F]{2}:[0-9a-fA-F]{2}")
_INSTANCE_ID = re.compile(r"i-[0-9a-fA-F]{8}")


def _dotted(value: int) -> str:
    if 0 <= value <= MAX_IPV4:
        return f"{value >> 24}.{(value >> 16) & 255}.{(value >> 8) & 255}.{value & 255}"
    return str(value)


def _check_mac_type(mac: object) -> str:
    if not isinstance(mac, str):
        raise TypeError(f"MAC must be a str, got {type(mac).__name__}")
    return mac


def _normalise_mac(mac: object) -> str:
    text = _check_mac_type(mac)
    if _MAC.fullmatch(text) is None:
        raise ValueError(f"{text!r} is not a MAC address (aa:bb:cc:dd:ee:ff)")
    return text.lower()


def _check_tag_range(lo: SupportsIndex, hi: SupportsIndex, lo_name: str, hi_name: str) -> tuple[int, int]:
    low, high = operator.index(lo), operator.index(hi)
    if not 1 <= low <= MAX_TAG:
        raise ValueError(f"{lo_name} must be within 1..4095, got {low}")
    if not low <= high <= MAX_TAG:
        raise ValueError(f"{hi_name} must be within {low}..4095, got {high}")
    return low, high


class VlanPool:
    """The VLAN tags a cluster may give security groups, lowest free first."""

    def __init__(self, lo: int, hi: int) -> None:
        self.lo, self.hi = _check_tag_range(lo, hi, "lo", "hi")
        self._free = set(range(self.lo, self.hi + 1))

    def _check(self, tag: int) -> int:
        t = operator.index(tag)
        if not self.lo <= t <= self.hi:
            raise ValueError(f"vlan tag {t} is outside {self.lo}..{self.hi}")
        return t

    def allocate(self) -> int:
        if not self._free:
            raise Exhausted("vlan tags")
        tag = min(self._free)
        self._free.remove(tag)
        return tag

    def take(self, tag: int) -> None:
        t = self._check(tag)
        if t not in self._free:
            raise Conflict(f"vlan tag {t} is already in use")
        self._free.remove(t)

    def release(self, tag: int) -> None:
        t = self._check(tag)
        if t in self._free:
            raise ValueError(f"vlan tag {t} is not in use")
        self._free.add(t)

    def held(self, tag: int) -> bool:
        t = operator.index(tag)
        return self.lo <= t <= self.hi and t not in self._free

    def in_use(self) -> list[int]:
        return [t for t in range(self.lo, self.hi + 1) if t not in self._free]

    @property
    def free_count(self) -> int:
        return len(self._free)

    def load(self, tags: Iterable[int]) -> list[tuple[int, str]]:
        items = [(tag, operator.index(tag)) for tag in tags]
        self._free = set(range(self.lo, self.hi + 1))
        refused: list[tuple[int, str]] = []
        for tag, t in items:
            if not self.lo <= t <= self.hi:
                refused.append((tag, "out of range"))
            elif t not in self._free:
                refused.append((tag, "duplicate"))
            else:
                self._free.remove(t)
        return refused


class AddressPlan:
    """VNET_SUBNET/VNET_NETMASK cut into networks of VNET_ADDRSPERNET addresses, one per VLAN."""

    def __init__(self, subnet: int, netmask: int, addrs_per_net: int, vlan_lo: int = 2, vlan_hi: int = 4095) -> None:
        s, m, a = operator.index(subnet), operator.index(netmask), operator.index(addrs_per_net)
        inverted = ~m & MAX_IPV4
        if not 0 <= m <= MAX_IPV4 or inverted & (inverted + 1):
            raise ValueError(f"VNET_NETMASK {_dotted(m)} is not a contiguous netmask")
        size = inverted + 1
        if not 0 <= s <= MAX_IPV4:
            raise ValueError(f"VNET_SUBNET {_dotted(s)} is not an IPv4 address")
        if s & inverted:
            raise ValueError(f"VNET_SUBNET {_dotted(s)} is not aligned to VNET_NETMASK {_dotted(m)}")
        if a not in [1 << k for k in range(4, 12)]:
            raise ValueError(f"VNET_ADDRSPERNET must be a power of two from 16 to 2048, got {a}")
        if a > size:
            raise ValueError(f"VNET_ADDRSPERNET {a} is larger than VNET_SUBNET/VNET_NETMASK ({size} addresses)")
        lo, hi = _check_tag_range(vlan_lo, vlan_hi, "vlan_lo", "vlan_hi")
        top = 2 + size // a - 1
        self.min_vlan = max(lo, 2)
        self.max_vlan = min(hi, top)
        if self.min_vlan > self.max_vlan:
            raise ValueError(
                f"VNET_SUBNET/VNET_NETMASK hold networks 2..{top} only, none within vlan_lo..vlan_hi ({lo}..{hi})"
            )
        self.subnet, self.netmask, self.addrs_per_net = s, m, a
        # Held host indices per network; networks with nothing held are absent.
        self._held: dict[int, set[int]] = {}

    def _base(self, v: int) -> int:
        return self.subnet + (v - 2) * self.addrs_per_net

    def _check_vlan(self, v: int) -> int:
        n = operator.index(v)
        if not self.min_vlan <= n <= self.max_vlan:
            raise ValueError(f"network {n} is outside {self.min_vlan}..{self.max_vlan}")
        return n

    def _locate(self, ip: int) -> tuple[int, int] | None:
        """(network, host index) of a host address of the plan, else None."""
        v = (ip - self.subnet) // self.addrs_per_net + 2
        index = ip - self._base(v)
        if not self.min_vlan <= v <= self.max_vlan or not 2 <= index <= self.addrs_per_net - 2:
            return None
        return (v, index)

    def network(self, v: int) -> tuple[int, int, int, int]:
        base = self._base(self._check_vlan(v))
        mask = MAX_IPV4 - (self.addrs_per_net - 1)
        return (base, mask, base + 1, base + self.addrs_per_net - 1)

    def allocate_host(self, v: int) -> int:
        n = self._check_vlan(v)
        held = self._held.setdefault(n, set())
        for index in range(2, self.addrs_per_net - 1):
            if index not in held:
                held.add(index)
                return self._base(n) + index
        raise Exhausted("private addresses")

    def take_host(self, ip: int) -> None:
        address = operator.index(ip)
        where = self._locate(address)
        if where is None:
            raise ValueError(
                f"{_dotted(address)} is not a host address of networks {self.min_vlan}..{self.max_vlan}"
            )
        v, index = where
        held = self._held.setdefault(v, set())
        if index in held:
            raise Conflict(f"private address {_dotted(address)} is already in use")
        held.add(index)

    def release_host(self, ip: int) -> None:
        address = operator.index(ip)
        where = self._locate(address)
        if where is None or where[1] not in self._held.get(where[0], set()):
            raise ValueError(f"private address {_dotted(address)} is not in use")
        self._held[where[0]].remove(where[1])

    def held(self, ip: int) -> bool:
        where = self._locate(operator.index(ip))
        return where is not None and where[1] in self._held.get(where[0], set())

    def network_of(self, ip: int) -> int:
        address = operator.index(ip)
        v = (address - self.subnet) // self.addrs_per_net + 2
        if not self.min_vlan <= v <= self.max_vlan:
            raise ValueError(
                f"{_dotted(address)} is outside networks {self.min_vlan}..{self.max_vlan} of VNET_SUBNET"
            )
        return v

    def hosts_in_use(self, v: int) -> list[int]:
        n = self._check_vlan(v)
        return [self._base(n) + index for index in sorted(self._held.get(n, set()))]

    def release_network(self, v: int) -> list[int]:
        freed = self.hosts_in_use(v)
        self._held.pop(operator.index(v), None)
        return freed

    def load(self, ips: Iterable[int]) -> list[tuple[int, str]]:
        items = [(ip, operator.index(ip)) for ip in ips]
        self._held = {}
        refused: list[tuple[int, str]] = []
        for ip, address in items:
            where = self._locate(address)
            if where is None:
                refused.append((ip, "not a host address"))
            elif where[1] in self._held.get(where[0], set()):
                refused.append((ip, "duplicate"))
            else:
                self._held.setdefault(where[0], set()).add(where[1])
        return refused


class PublicPool:
    """VNET_PUBLICIPS: public addresses for instances and elastic IPs, first free in listed order."""

    def __init__(self, addresses: Sequence[int]) -> None:
        self._addresses: list[int] = []
        self._members: set[int] = set()
        for item in addresses:
            address = operator.index(item)
            if not 0 <= address <= MAX_IPV4:
                raise ValueError(f"VNET_PUBLICIPS: {address} is not an IPv4 address")
            if address in self._members:
                raise ValueError(f"VNET_PUBLICIPS lists {_dotted(address)} twice")
            self._addresses.append(address)
            self._members.add(address)
        self._held: set[int] = set()

    def _check(self, ip: int) -> int:
        address = operator.index(ip)
        if address not in self._members:
            raise ValueError(f"{_dotted(address)} is not in VNET_PUBLICIPS")
        return address

    def allocate(self) -> int:
        for address in self._addresses:
            if address not in self._held:
                self._held.add(address)
                return address
        raise Exhausted("public addresses")

    def take(self, ip: int) -> None:
        address = self._check(ip)
        if address in self._held:
            raise Conflict(f"public address {_dotted(address)} is already in use")
        self._held.add(address)

    def release(self, ip: int) -> None:
        address = self._check(ip)
        if address not in self._held:
            raise ValueError(f"public address {_dotted(address)} is not in use")
        self._held.remove(address)

    def held(self, ip: int) -> bool:
        return operator.index(ip) in self._held

    def in_use(self) -> list[int]:
        return [address for address in self._addresses if address in self._held]

    @property
    def free_count(self) -> int:
        return len(self._addresses) - len(self._held)

    @property
    def size(self) -> int:
        return len(self._addresses)

    def load(self, ips: Iterable[int]) -> list[tuple[int, str]]:
        items = [(ip, operator.index(ip)) for ip in ips]
        self._held = set()
        refused: list[tuple[int, str]] = []
        for ip, address in items:
            if address not in self._members:
                refused.append((ip, "not in pool"))
            elif address in self._held:
                refused.append((ip, "duplicate"))
            else:
                self._held.add(address)
        return refused


class MacPool:
    """STATIC mode's VNET_MACMAP pairs, first free pair in listed order."""

    def __init__(self, pairs: Sequence[tuple[str, int]]) -> None:
        self._pairs: list[tuple[str, int]] = []
        self._ips: dict[str, int] = {}
        for raw_mac, raw_ip in pairs:
            text = _check_mac_type(raw_mac)
            if _MAC.fullmatch(text) is None:
                raise ValueError(f"VNET_MACMAP: {text!r} is not a MAC address (aa:bb:cc:dd:ee:ff)")
            mac = text.lower()
            ip = operator.index(raw_ip)
            if not 0 <= ip <= MAX_IPV4:
                raise ValueError(f"VNET_MACMAP: {ip} is not an IPv4 address")
            if mac in self._ips:
                raise ValueError(f"VNET_MACMAP lists MAC {mac} twice")
            if ip in self._ips.values():
                raise ValueError(f"VNET_MACMAP lists {_dotted(ip)} twice")
            self._pairs.append((mac, ip))
            self._ips[mac] = ip
        self._held: set[str] = set()

    def _ip_of(self, mac: str) -> int:
        if mac in self._ips:
            return self._ips[mac]
        raise ValueError(f"MAC {mac} is not in VNET_MACMAP")

    def allocate(self) -> tuple[str, int]:
        for mac, ip in self._pairs:
            if mac not in self._held:
                self._held.add(mac)
                return (mac, ip)
        raise Exhausted("addresses")

    def take(self, mac: str) -> int:
        norm = _normalise_mac(mac)
        ip = self._ip_of(norm)
        if norm in self._held:
            raise Conflict(f"MAC {norm} is already in use")
        self._held.add(norm)
        return ip

    def release(self, mac: str) -> None:
        norm = _normalise_mac(mac)
        self._ip_of(norm)
        if norm not in self._held:
            raise ValueError(f"MAC {norm} is not in use")
        self._held.remove(norm)

    def held(self, mac: str) -> bool:
        text = _check_mac_type(mac)
        return _MAC.fullmatch(text) is not None and text.lower() in self._held

    def in_use(self) -> list[str]:
        return [mac for mac, _ in self._pairs if mac in self._held]

    @property
    def free_count(self) -> int:
        return len(self._pairs) - len(self._held)

    @property
    def size(self) -> int:
        return len(self._pairs)

    def load(self, macs: Iterable[str]) -> list[tuple[str, str]]:
        items = [_check_mac_type(mac) for mac in macs]
        self._held = set()
        refused: list[tuple[str, str]] = []
        for text in items:
            if _MAC.fullmatch(text) is None:
                refused.append((text, "malformed"))
            elif text.lower() not in self._ips:
                refused.append((text, "not in pool"))
            elif text.lower() in self._held:
                refused.append((text, "duplicate"))
            else:
                self._held.add(text.lower())
        return refused


_DOTTED = re.compile(r"(0|[1-9][0-9]{0,2})\.(0|[1-9][0-9]{0,2})\.(0|[1-9][0-9]{0,2})\.(0|[1-9][0-9]{0,2})")


def _parse_ip(text: object) -> int:
    match = _DOTTED.fullmatch(text) if isinstance(text, str) and text.isascii() else None
    if match is None or any(int(octet) > 255 for octet in match.groups()):
        raise ValueError(f"{text!r} is not an IPv4 address")
    value = 0
    for octet in match.groups():
        value = (value << 8) | int(octet)
    return value


class GroupNetworks:
    """MANAGED mode's security groups: a tag and network per group with instances, and their hosts."""

    def __init__(
        self,
        subnet: int,
        netmask: int,
        addrs_per_net: int,
        vlan_lo: int = 2,
        vlan_hi: int = 4095,
        mac_prefix: str = "d0:0d",
        record: type[tuple[Any, ...]] | None = None,
    ) -> None:
        mac_for_instance("i-00000000", mac_prefix)
        self.plan = AddressPlan(subnet, netmask, addrs_per_net, vlan_lo, vlan_hi)
        self.vlans = VlanPool(self.plan.min_vlan, self.plan.max_vlan)
        self.mac_prefix = mac_prefix
        self._record = record
        self._vlan: dict[str, int] = {}
        self._members: dict[str, int] = {}
        self.assigned: dict[str, tuple[str, str, str, int, str]] = {}

    def attach(self, instance_id: str, group: str) -> Any:
        if instance_id in self.assigned:
            raise Conflict(f"{instance_id} already has a network assignment")
        vlan = self._vlan.get(group)
        mac = mac_for_instance(instance_id, self.mac_prefix)
        if vlan is None:
            tag = self.vlans.allocate()
            try:
                ip = self.plan.allocate_host(tag)
            except Exhausted:
                self.vlans.release(tag)
                raise
            self._vlan[group], self._members[group] = tag, 0
        else:
            tag = vlan
            ip = self.plan.allocate_host(tag)
        self._members[group] += 1
        out = (instance_id, mac, _dotted(ip), tag, group)
        self.assigned[instance_id] = out
        return out if self._record is None else tuple.__new__(self._record, out)

    def release(self, instance_id: str) -> tuple[str, str, str, int, str] | None:
        out = self.assigned.pop(instance_id, None)
        if out is None:
            return None
        _, _, private_ip, vlan, group = out
        self.plan.release_host(_parse_ip(private_ip))
        self._members[group] -= 1
        if not self._members[group]:
            self.plan.release_network(vlan)
            self.vlans.release(vlan)
            del self._vlan[group], self._members[group]
        return out

    def take(self, instance_id: str, mac: str, ip: int, vlan: int, group: str) -> None:
        if instance_id in self.assigned:
            raise Conflict(f"{instance_id} already has a network assignment")
        held = self._vlan.get(group)
        if held is not None and held != vlan:
            raise Conflict(f"group {group} is on VLAN {held}, not {vlan}")
        if self.plan.network_of(ip) != vlan:
            raise Conflict(f"{_dotted(ip)} is not in network {vlan}")
        if held is None:
            self.vlans.take(vlan)
        try:
            self.plan.take_host(ip)
        except (ValueError, Conflict):
            if held is None:
                self.vlans.release(vlan)
            raise
        tag = operator.index(vlan)
        self._vlan[group] = tag
        self._members[group] = self._members.get(group, 0) + 1
        self.assigned[instance_id] = (instance_id, mac, _dotted(operator.index(ip)), tag, group)

    def reset(self) -> None:
        self.plan.load([])
        self.vlans.load([])
        self._vlan, self._members = {}, {}
        self.assigned.clear()

    def vlan_of(self, group: str) -> int | None:
        return self._vlan.get(group)

    def members(self, group: str) -> int:
        return self._members.get(group, 0)

    def groups(self) -> list[tuple[str, int, int]]:
        return sorted(((g, v, self._members[g]) for g, v in self._vlan.items()), key=lambda item: item[1])


def mac_for_instance(instance_id: str, prefix: str = "d0:0d") -> str:
    """Eucalyptus's instId2mac: VNET_MACPREFIX then the instance id's 8 hex digits in pairs."""
    if not isinstance(instance_id, str):
        raise TypeError(f"instance id must be a str, got {type(instance_id).__name__}")
    if not isinstance(prefix, str):
        raise TypeError(f"VNET_MACPREFIX must be a str, got {type(prefix).__name__}")
    if _INSTANCE_ID.fullmatch(instance_id) is None:
        raise ValueError(f"{instance_id!r} is not an instance id (i- and 8 hex digits)")
    if _MAC_PREFIX.fullmatch(prefix) is None:
        raise ValueError(f"VNET_MACPREFIX {prefix!r} is not two hex octets (d0:0d)")
    digits = instance_id[2:].lower()
    pairs = [digits[i : i + 2] for i in range(0, 8, 2)]
    return ":".join([prefix.lower(), *pairs])
