"""The cluster controller's network manager: addresses, MACs and VLANs for instances, by VNET_MODE.

- SYSTEM: an outside DHCP server hands out addresses; euca only gives each instance its MAC, and
  reports 0.0.0.0 until it learns the address.
- STATIC: the next free MAC=IP pair of VNET_MACMAP, first come first served; public = private.
- MANAGED: every security group (``<account>-<group>``) gets a VLAN tag and a network of
  VNET_ADDRSPERNET addresses cut from VNET_SUBNET; instances get the lowest free host address of
  their group's network; elastic IPs come from VNET_PUBLICIPS.
- MANAGED-NOVLAN: as MANAGED, with per-group networks but no VLAN tags on the wire.

A group's network and tag are taken when its first instance starts and given back when its last
one ends. Every operation is all-or-nothing: an exhausted pool raises ``pyx.errors.Exhausted``
naming it, and nothing stays allocated.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NamedTuple

from euca.core.config import MANAGED_MODES, Config
from euca.core.ipnotation import int_to_ip, ip_to_int
from pyx.errors import Conflict, KernelError
from pyx.netalloc import GroupNetworks, MacPool, PublicPool, mac_for_instance

_HEX8 = re.compile(r"i-[0-9a-fA-F]{8}")
NO_ADDRESS = "0.0.0.0"


class NetAssignment(NamedTuple):
    """An instance's place on the network: what the NC puts on its NIC and the CC in DHCP.

    A named tuple rather than a frozen dataclass: one is made per instance start, and a frozen
    dataclass costs several times as much to build.
    """

    instance_id: str
    mac: str
    private_ip: str
    vlan: int = -1  # the group's network index (its tag in MANAGED); -1 outside the managed modes
    group: str = ""  # "<account>-<group>"


@dataclass(frozen=True)
class GroupNetwork:
    """A security group's network in the managed modes."""

    vlan: int
    network: str
    netmask: str
    gateway: str
    broadcast: str


class NetworkManager:
    """Hands out and takes back instance addresses, group networks and public (elastic) IPs."""

    def __init__(self, config: Config) -> None:
        self.mode = config.vnet_mode
        self.mac_prefix = config.vnet_macprefix
        self._prefix = mac_for_instance("i-00000000", self.mac_prefix)[:5]
        self.tagged = self.mode == "MANAGED"
        self._public_owner: dict[int, str | None] = {}  # held public ip -> instance it is associated with
        self._public_of: dict[str, int] = {}  # instance -> its public ip (the reverse of the above)
        self._dynamic: set[int] = set()  # held public ips that are dynamic: they live while their instance does
        self._macs: MacPool | None = None
        self._groups: GroupNetworks | None = None  # the managed modes' tags, networks and hosts
        self._public = PublicPool(config.public_ips if self.mode in MANAGED_MODES else [])
        if self.mode == "STATIC":
            self._macs = MacPool(config.macmap)
        elif self.mode in MANAGED_MODES:
            subnet = ip_to_int(config.vnet_subnet)
            netmask = ip_to_int(config.vnet_netmask)
            self._groups = GroupNetworks(subnet, netmask, config.vnet_addrspernet, config.vnet_vlanmin,
                                         config.vnet_vlanmax, self.mac_prefix, NetAssignment)
        # Assignments as plain tuples (a NetAssignment's fields): the collector stops tracking plain
        # tuples of plain values, never named tuples, and there is one per running instance. In the
        # managed modes it is the kernel's own table, kept by its attach and release: clear it,
        # never rebind it.
        self._instances: dict[str, tuple[str, str, str, int, str]] = (
            {} if self._groups is None else self._groups.assigned
        )
        # ``attach`` for the group named ``<account>-<group>``. The CC's ledger binds it once and
        # calls it per instance start: in the managed modes it is the kernel's method itself, so a
        # start costs no Python frame here.
        self.attach_key: Callable[[str, str], NetAssignment] = (
            self._attach_unmanaged if self._groups is None else self._groups.attach
        )

    # --- instances --------------------------------------------------------------------------------

    def attach(self, instance_id: str, account: str, group: str) -> NetAssignment:
        """Give a starting instance its MAC and private address (and its group a network if it has none)."""
        return self.attach_key(instance_id, f"{account}-{group}")

    def _attach_unmanaged(self, instance_id: str, key: str) -> NetAssignment:
        """SYSTEM and STATIC modes' ``attach_key``: the MAC from the instance id, and the address
        from VNET_MACMAP (STATIC) or none yet (SYSTEM)."""
        instances = self._instances
        if instance_id in instances:
            raise Conflict(f"{instance_id} already has a network assignment")
        mac = self._mac(instance_id)
        if self._macs is not None:
            mac, ip = self._macs.allocate()
            assignment = NetAssignment(instance_id, mac, int_to_ip(ip), -1, key)
        else:
            assignment = NetAssignment(instance_id, mac, NO_ADDRESS, -1, key)
        instances[instance_id] = tuple(assignment)  # type: ignore[assignment]
        return assignment

    def _mac(self, instance_id: str) -> str:
        """Eucalyptus's instId2mac, with the prefix checked once at start-up rather than per instance."""
        if len(instance_id) != 10 or not _HEX8.fullmatch(instance_id):
            return mac_for_instance(instance_id, self.mac_prefix)  # raises, naming the bad id
        d = instance_id[2:].lower()
        return f"{self._prefix}:{d[0:2]}:{d[2:4]}:{d[4:6]}:{d[6:8]}"

    def detach(self, instance_id: str) -> list[str]:
        """An instance is gone: free its address, its group's network if it was the last member, and
        disassociate any public address from it. Returns the public addresses it had."""
        if self._groups is not None:
            if self._groups.release(instance_id) is None:
                return []
        else:
            assignment = self._instances.pop(instance_id, None)
            if assignment is None:
                return []
            if self._macs is not None:
                self._macs.release(assignment[1])
        if not self._public_of:
            return []
        public = self._public_of.pop(instance_id, None)
        if public is None:
            return []
        if public in self._dynamic:
            self._dynamic.discard(public)
            del self._public_owner[public]
            self._public.release(public)
        else:
            self._public_owner[public] = None
        return [int_to_ip(public)]

    def assignment(self, instance_id: str) -> NetAssignment | None:
        fields = self._instances.get(instance_id)
        return None if fields is None else NetAssignment(*fields)

    def group_network(self, account: str, group: str) -> GroupNetwork | None:
        if self._groups is None:
            return None
        vlan = self._groups.vlan_of(f"{account}-{group}")
        if vlan is None:
            return None
        network, netmask, gateway, broadcast = self._groups.plan.network(vlan)
        return GroupNetwork(vlan, int_to_ip(network), int_to_ip(netmask), int_to_ip(gateway), int_to_ip(broadcast))

    # --- public (elastic) addresses -----------------------------------------------------------------

    def allocate_public(self, ip: str | None = None) -> str:
        """Take a public address from VNET_PUBLICIPS (the first free one, or the one named)."""
        if self.mode not in MANAGED_MODES:
            raise KernelError(f"public addresses need a MANAGED networking mode, not {self.mode}")
        value = self._public.allocate() if ip is None else self._take_public(ip)
        self._public_owner[value] = None
        return int_to_ip(value)

    def give_dynamic(self, instance_id: str) -> str:
        """doDynamicPublicAddresses: a public address for a starting instance, associated with it
        and given back to the pool when it ends (``detach``). Raises Exhausted naming the pool."""
        if instance_id not in self._instances:
            raise KernelError(f"{instance_id} has no network assignment")
        if instance_id in self._public_of:
            raise Conflict(f"{instance_id} already has a public address")
        ip = self.allocate_public()
        value = ip_to_int(ip)
        self._public_owner[value] = instance_id
        self._public_of[instance_id] = value
        self._dynamic.add(value)
        return ip

    def is_dynamic(self, ip: str) -> bool:
        return ip_to_int(ip) in self._dynamic

    def holds_public(self, ip: str) -> bool:
        return ip_to_int(ip) in self._public_owner

    def _take_public(self, ip: str) -> int:
        value = ip_to_int(ip)
        self._public.take(value)
        return value

    def release_public(self, ip: str) -> None:
        value = ip_to_int(ip)
        self._public.release(value)
        self._dynamic.discard(value)
        owner = self._public_owner.pop(value, None)
        if owner is not None:
            del self._public_of[owner]

    def associate(self, ip: str, instance_id: str) -> str | None:
        """Point a held public address at an instance (DNAT/SNAT). Returns the instance it pointed at before."""
        value = ip_to_int(ip)
        if value not in self._public_owner:
            raise KernelError(f"public address {ip} is not allocated")
        if instance_id not in self._instances:
            raise KernelError(f"{instance_id} has no network assignment")
        before = self._public_owner[value]
        if before is not None:
            del self._public_of[before]
        # An instance has one public address: associating another frees the old one.
        old = self._public_of.pop(instance_id, None)
        if old is not None:
            self._public_owner[old] = None
        self._public_owner[value] = instance_id
        self._public_of[instance_id] = value
        return before

    def disassociate(self, ip: str) -> str | None:
        value = ip_to_int(ip)
        if value not in self._public_owner:
            raise KernelError(f"public address {ip} is not allocated")
        before = self._public_owner[value]
        self._public_owner[value] = None
        if before is not None:
            del self._public_of[before]
        return before

    def public_of(self, instance_id: str) -> str | None:
        value = self._public_of.get(instance_id)
        return None if value is None else int_to_ip(value)

    # --- state store ------------------------------------------------------------------------------

    def rebuild(
        self,
        instances: Iterable[NetAssignment],
        publics: Iterable[tuple[str, str | None] | tuple[str, str | None, bool]] = (),
    ) -> list[str]:
        """Rebuild every pool from what the state store holds: instance assignments and the held
        public addresses as (ip, instance or None[, dynamic]). Assignments that clash with one
        already loaded (a second owner of an address, tag or MAC) are skipped and reported; a
        dynamic address whose instance is gone goes back to the pool."""
        problems: list[str] = []
        self._instances.clear()
        self._public_owner, self._public_of, self._dynamic = {}, {}, set()
        if self._macs is not None:
            self._macs.load([])
        if self._groups is not None:
            self._groups.reset()
        self._public.load([])
        for a in instances:
            try:
                self._restore(a)
            except (KernelError, ValueError) as exc:
                problems.append(f"{a.instance_id}: {exc}")
        for held in publics:
            address, owner, dynamic = held[0], held[1], len(held) > 2 and bool(held[2])
            try:
                value = self._take_public(address)
            except (KernelError, ValueError) as exc:
                problems.append(f"public address {address}: {exc}")
                continue
            if dynamic:
                if owner is not None and owner in self._instances and owner not in self._public_of:
                    self._public_owner[value] = owner
                    self._public_of[owner] = value
                    self._dynamic.add(value)
                else:
                    self._public.release(value)
                    problems.append(f"dynamic address {address}: instance {owner} is gone; back in the pool")
                continue
            if owner is None:
                self._public_owner[value] = None
            elif owner not in self._instances:
                self._public_owner[value] = None
                problems.append(f"public address {address}: instance {owner} has no network assignment")
            elif owner in self._public_of:
                self._public_owner[value] = None
                problems.append(f"public address {address}: instance {owner} already has "
                                f"{int_to_ip(self._public_of[owner])}")
            else:
                self._public_owner[value] = owner
                self._public_of[owner] = value
        return problems

    def _restore(self, a: NetAssignment) -> None:
        if a.instance_id in self._instances:
            raise Conflict("listed twice")
        if self._macs is not None:
            if self._macs.take(a.mac) != ip_to_int(a.private_ip):
                self._macs.release(a.mac)
                raise Conflict(f"{a.mac} maps to another address than {a.private_ip}")
        elif self._groups is not None:
            vlan = self._groups.vlan_of(a.group)
            if vlan is not None and vlan != a.vlan:
                raise Conflict(f"group {a.group} is on VLAN {vlan}, not {a.vlan}")
            ip = ip_to_int(a.private_ip)
            if self._groups.plan.network_of(ip) != a.vlan:
                raise Conflict(f"{a.private_ip} is not in network {a.vlan}")
            # Stored addresses may be written loosely (" 10.0.0.2"); take records the canonical form.
            self._groups.take(a.instance_id, a.mac, ip, a.vlan, a.group)
            return
        self._instances[a.instance_id] = tuple(a)  # type: ignore[assignment]

    # --- reporting --------------------------------------------------------------------------------

    def usage(self) -> dict[str, tuple[int, int]]:
        """(in use, total) for every pool of the mode: what a planner watches run out."""
        out: dict[str, tuple[int, int]] = {}
        if self._groups is not None:
            vlans = self._groups.vlans
            total = vlans.hi - vlans.lo + 1
            out["vlans"] = (total - vlans.free_count, total)
            out["private addresses"] = (len(self._instances), -1)
        if self._macs is not None:
            held = len(self._macs.in_use())
            out["addresses"] = (held, held + self._macs.free_count)
        if self.mode in MANAGED_MODES:
            out["public addresses"] = (self._public.size - self._public.free_count, self._public.size)
        return out
