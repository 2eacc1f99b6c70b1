"""Public addresses, EC2-Classic style: the public IP is the address's only name.

The cluster controller's network manager owns the VNET_PUBLICIPS pool and the DNAT/SNAT
associations; this service adds ownership, the per-account limit (maxUserPublicAddresses, 5) and
durability.

Two kinds come from the one pool. An elastic address is allocated by an account and kept until it
releases it. A dynamic address (Eucalyptus's doDynamicPublicAddresses, on by default) is handed to
every instance as it starts, unless it was run with ``--addressing private``, and taken back when
it ends; an elastic address associated with the instance replaces it, and disassociating the
elastic one gives the instance a fresh dynamic one. Dynamic addresses belong to no account and are
not listed by DescribeAddresses.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from euca.cluster import ClusterController
from euca.core.config import MANAGED_MODES
from euca.core.errors import (
    AddressLimitExceeded,
    InsufficientAddressCapacity,
    InvalidAddressMalformed,
    InvalidAddressNotFound,
    InvalidAllocationIDNotFound,
    InvalidAssociationIDNotFound,
    InvalidInstanceIDNotFound,
    InvalidParameterValue,
    MissingParameter,
    Unsupported,
)
from euca.core.text import quoted
from euca.services.common import Caller, Ids, matches, present, wanted
from euca.store import Store, Tx
from pyx.errors import Exhausted, KernelError

MAX_USER_PUBLIC_ADDRESSES = 5
SYSTEM = ""  # the owner of dynamic addresses (Eucalyptus shows them as "nobody")
NO_ADDRESSES = "Not enough resources available: addresses (try --addressing private)"


@dataclass
class Address:
    ip: str
    account: str
    instance: str | None = None
    dynamic: bool = False
    allocation: str = ""  # eipalloc-: clients of today's EC2 name an address by it
    association: str = ""  # eipassoc-, while associated

    def body(self, instance: str | None, association: str = "") -> dict[str, Any]:
        return {"instance": instance, "allocation": self.allocation, "association": association}


class Addresses:
    def __init__(self, store: Store, cc: ClusterController, limit: int = MAX_USER_PUBLIC_ADDRESSES,
                 dynamic: bool = True, ids: Ids | None = None, region: str = "eucalyptus") -> None:
        self.region = region
        self._store, self._cc, self.limit = store, cc, limit
        self._ids = ids or Ids(store)
        # doDynamicPublicAddresses; only the MANAGED modes have a public pool to take them from
        self.dynamic = dynamic and cc.network.mode in MANAGED_MODES
        self._addresses: dict[str, Address] = {}
        # instance id -> (account, private ip) of a live instance; set by the instances service
        self.live: Callable[[str], tuple[str, str] | None] = lambda instance_id: None
        for ip, account, body in store.load("address"):
            self._addresses[ip] = Address(ip, account, body.get("instance"), bool(body.get("dynamic")),
                                          body.get("allocation") or "", body.get("association") or "")

    def restore_list(self) -> list[tuple[str, str | None, bool]]:
        return [(a.ip, a.instance, a.dynamic) for a in self._addresses.values()]

    def _check_ip(self, ip: str) -> str:
        try:
            return str(ipaddress.IPv4Address(ip))
        except ValueError:
            raise InvalidAddressMalformed(f"Invalid address: {ip[:64]}") from None

    def _mine(self, caller: Caller, ip: str | None, allocation: str | None = None,
              association: str | None = None) -> Address:
        """The caller's elastic address by public IP, allocation id or association id."""
        if allocation:
            found = next((a for a in self._addresses.values() if a.allocation == allocation), None)
            if found is None or found.dynamic or not caller.sees(found.account):
                raise InvalidAllocationIDNotFound(f"The allocation ID '{quoted(allocation)}' does not exist")
            return found
        if association:
            found = next((a for a in self._addresses.values() if a.association == association), None)
            if found is None or found.dynamic or not caller.sees(found.account):
                raise InvalidAssociationIDNotFound(f"The association ID '{quoted(association)}' does not exist")
            return found
        if not ip:
            raise MissingParameter("The request must contain the parameter PublicIp or AllocationId")
        a = self._addresses.get(self._check_ip(ip))
        if a is None or a.dynamic or not caller.sees(a.account):
            raise InvalidAddressNotFound(f"Address '{ip}' not found.")
        return a

    def allocate(self, caller: Caller, domain: str | None = None) -> dict[str, Any]:
        if domain not in (None, "standard"):
            # EC2-Classic addresses only: a cloud without VPCs has no vpc domain to allocate in
            raise Unsupported(f"The domain '{quoted(domain)}' is not supported: this cloud has no VPC")
        held = sum(1 for a in self._addresses.values() if a.account == caller.account and not a.dynamic)
        if not caller.admin and held >= self.limit:
            raise AddressLimitExceeded("Too many addresses allocated")
        try:
            ip = self._cc.network.allocate_public()
        except KernelError as exc:
            raise InsufficientAddressCapacity(f"{exc} (try --addressing private)") from None
        try:
            with self._store.transaction() as tx:
                a = Address(ip, caller.account, allocation=self._ids.new_long("eipalloc", tx))
                tx.put("address", ip, caller.account, a.body(None))
        except BaseException:
            self._cc.network.release_public(ip)
            raise
        self._addresses[ip] = a
        return {"PublicIp": ip, "Domain": "standard", "AllocationId": a.allocation,
                "NetworkBorderGroup": self.region, "PublicIpv4Pool": "amazon"}

    def release(self, caller: Caller, ip: str | None, allocation: str | None = None) -> None:
        a = self._mine(caller, ip, allocation)
        instance = a.instance
        with self._store.transaction() as tx:
            tx.delete("address", a.ip)
            if instance is not None:
                self._cc.network.disassociate(a.ip)
                tx.on_rollback(lambda: self._cc.network.associate(a.ip, instance))
                self._give_dynamic(tx, [instance])
        self._cc.network.release_public(a.ip)
        del self._addresses[a.ip]

    def associate(self, caller: Caller, ip: str | None, instance_id: str | None,
                  allocation: str | None = None) -> dict[str, Any]:
        a = self._mine(caller, ip, allocation)
        if not instance_id:
            raise InvalidParameterValue("InstanceId is required")
        live = self.live(instance_id)
        if live is None or not caller.sees(live[0]) or self._cc.network.assignment(instance_id) is None:
            raise InvalidInstanceIDNotFound(f"The instance ID '{instance_id[:64]}' does not exist")
        previous = self._cc.network.public_of(instance_id)
        replaced = self._addresses.get(previous) if previous is not None and previous != a.ip else None
        elsewhere = a.instance if a.instance not in (None, instance_id) else None
        with self._store.transaction() as tx:
            if replaced is not None:
                if replaced.dynamic:
                    tx.delete("address", replaced.ip)
                else:
                    tx.put("address", replaced.ip, replaced.account, replaced.body(None))
            association = self._ids.new_long("eipassoc", tx)
            tx.put("address", a.ip, a.account, a.body(instance_id, association))
            if elsewhere is not None:
                # the instance it leaves gets a dynamic address of its own again
                self._cc.network.disassociate(a.ip)
                tx.on_rollback(lambda: self._cc.network.associate(a.ip, elsewhere))
                self._give_dynamic(tx, [elsewhere])
        if replaced is not None:
            self._cc.network.disassociate(replaced.ip)
            replaced.instance, replaced.association = None, ""
            if replaced.dynamic:
                self._cc.network.release_public(replaced.ip)
                del self._addresses[replaced.ip]
        self._cc.network.associate(a.ip, instance_id)
        a.instance, a.association = instance_id, association
        return {"AssociationId": association}

    def disassociate(self, caller: Caller, ip: str | None, association: str | None = None) -> None:
        a = self._mine(caller, ip, association=association)
        instance = a.instance
        if instance is None:
            return
        with self._store.transaction() as tx:
            tx.put("address", a.ip, a.account, a.body(None))
            self._cc.network.disassociate(a.ip)
            tx.on_rollback(lambda: self._cc.network.associate(a.ip, instance))
            self._give_dynamic(tx, [instance])
        a.instance, a.association = None, ""

    def launched(self, tx: Tx, instance_ids: list[str]) -> None:
        """Inside the transaction that records new instances: the dynamic public addresses the
        cluster controller gave them at the start (``RunRequest.public``) are recorded."""
        taken: list[Address] = []
        for instance_id in instance_ids:
            ip = self._cc.network.public_of(instance_id)
            if ip is not None:
                taken.append(Address(ip, SYSTEM, instance_id, dynamic=True))
                tx.put("address", ip, SYSTEM, {"instance": instance_id, "dynamic": True})
        tx.on_commit(lambda: self._addresses.update((a.ip, a) for a in taken))

    def _give_dynamic(self, tx: Tx, instance_ids: list[str]) -> None:
        """An instance left without a public address (its elastic one went) gets a dynamic one
        again, durably with ``tx``; with the pool empty it goes without."""
        if not self.dynamic:
            return
        network = self._cc.network
        taken: list[Address] = []

        def give_back() -> None:
            for a in taken:
                network.release_public(a.ip)

        try:
            for instance_id in instance_ids:
                ip = network.give_dynamic(instance_id)
                taken.append(Address(ip, SYSTEM, instance_id, dynamic=True))
                tx.put("address", ip, SYSTEM, {"instance": instance_id, "dynamic": True})
        except Exhausted:
            pass
        except BaseException:
            give_back()
            raise
        tx.on_rollback(give_back)
        tx.on_commit(lambda: self._addresses.update((a.ip, a) for a in taken))

    def unbind(self, tx: Tx, instance_id: str) -> list[str]:
        """Inside the transaction that ends an instance: its elastic addresses are no longer
        associated, its dynamic one is given back."""
        freed = [a for a in self._addresses.values() if a.instance == instance_id]
        for a in freed:
            if a.dynamic:
                tx.delete("address", a.ip)
            else:
                tx.put("address", a.ip, a.account, a.body(None))
        return [a.ip for a in freed]

    def unbound(self, ips: list[str]) -> None:
        """After that transaction: the dynamic addresses are forgotten (the cluster controller gave
        them back to the pool when the instance ended, or at restore when it was already gone)."""
        for ip in ips:
            a = self._addresses.get(ip)
            if a is None:
                continue
            a.instance, a.association = None, ""
            if a.dynamic:
                del self._addresses[ip]
                if self._cc.network.holds_public(ip):
                    self._cc.network.release_public(ip)

    def public_of(self, instance_id: str) -> str | None:
        return self._cc.network.public_of(instance_id)

    def describe(self, caller: Caller, ips: list[str] | None, filters: Any,
                 allocations: list[str] | None = None) -> list[dict[str, Any]]:
        # an address here has no network interface and takes no tags: those filters match nothing
        chosen = wanted(filters, ("public-ip", "instance-id", "domain", "private-ip-address", "allocation-id",
                                  "association-id", "network-border-group", "public-ipv4-pool",
                                  "network-interface-id", "network-interface-owner-id", "tag-key"))
        visible = [a for a in self._addresses.values() if not a.dynamic and caller.sees(a.account)]
        if ips:
            for ip in ips:
                if not any(a.ip == self._check_ip(ip) for a in visible):
                    raise InvalidAddressNotFound(f"Address '{ip}' not found.")
            visible = [a for a in visible if a.ip in ips]
        if allocations:
            for allocation in allocations:
                if not any(a.allocation == allocation for a in visible):
                    raise InvalidAllocationIDNotFound(f"The allocation ID '{quoted(allocation)}' does not exist")
            visible = [a for a in visible if a.allocation in allocations]
        out = []
        for a in sorted(visible, key=lambda a: ipaddress.IPv4Address(a.ip)):
            live = self.live(a.instance) if a.instance else None
            private = live[1] if live else None
            fields = {"public-ip": [a.ip], "instance-id": present(a.instance or ""), "domain": ["standard"],
                      "private-ip-address": present(private or ""), "allocation-id": present(a.allocation),
                      "association-id": present(a.association), "network-border-group": [self.region],
                      "public-ipv4-pool": ["amazon"]}
            if matches(chosen, lambda n, f=fields: f.get(n, [])):  # type: ignore[misc]
                out.append({"PublicIp": a.ip, "InstanceId": a.instance, "Domain": "standard",
                            "PrivateIpAddress": private, "AllocationId": a.allocation or None,
                            "AssociationId": a.association or None, "NetworkBorderGroup": self.region,
                            "PublicIpv4Pool": "amazon"})
        return out
