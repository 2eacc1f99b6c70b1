"""Elastic (public) addresses, EC2-Classic style: the public IP is the address's only name.

The cluster controller's network manager owns the VNET_PUBLICIPS pool and the DNAT/SNAT
associations; this service adds ownership, the per-account limit (maxUserPublicAddresses, 5) and
durability.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from euca.api.errors import (
    AddressLimitExceeded,
    InsufficientAddressCapacity,
    InvalidAddressMalformed,
    InvalidAddressNotFound,
    InvalidInstanceIDNotFound,
    InvalidParameterValue,
)
from euca.cluster import ClusterController
from euca.services.common import Caller, matches, wanted
from euca.store import Store, Tx
from pyx.errors import KernelError

MAX_USER_PUBLIC_ADDRESSES = 5


@dataclass
class Address:
    ip: str
    account: str
    instance: str | None = None


class Addresses:
    def __init__(self, store: Store, cc: ClusterController, limit: int = MAX_USER_PUBLIC_ADDRESSES) -> None:
        self._store, self._cc, self.limit = store, cc, limit
        self._addresses: dict[str, Address] = {}
        # instance id -> (account, private ip) of a live instance; set by the instances service
        self.live: Callable[[str], tuple[str, str] | None] = lambda instance_id: None
        for ip, account, body in store.load("address"):
            self._addresses[ip] = Address(ip, account, body.get("instance"))

    def restore_list(self) -> list[tuple[str, str | None]]:
        return [(a.ip, a.instance) for a in self._addresses.values()]

    def _check_ip(self, ip: str) -> str:
        try:
            return str(ipaddress.IPv4Address(ip))
        except ValueError:
            raise InvalidAddressMalformed(f"Invalid address: {ip[:64]}") from None

    def _mine(self, caller: Caller, ip: str | None) -> Address:
        if not ip:
            raise InvalidParameterValue("PublicIp is required (EC2-Classic addresses have no allocation id)")
        a = self._addresses.get(self._check_ip(ip))
        if a is None or not caller.sees(a.account):
            raise InvalidAddressNotFound(f"Address '{ip}' not found.")
        return a

    def allocate(self, caller: Caller) -> dict[str, Any]:
        held = sum(1 for a in self._addresses.values() if a.account == caller.account)
        if not caller.admin and held >= self.limit:
            raise AddressLimitExceeded("Too many addresses allocated")
        try:
            ip = self._cc.network.allocate_public()
        except KernelError as exc:
            raise InsufficientAddressCapacity(f"{exc} (try --addressing private)") from None
        try:
            with self._store.transaction() as tx:
                tx.put("address", ip, caller.account, {"instance": None})
        except BaseException:
            self._cc.network.release_public(ip)
            raise
        self._addresses[ip] = Address(ip, caller.account)
        return {"PublicIp": ip, "Domain": "standard"}

    def release(self, caller: Caller, ip: str | None) -> None:
        a = self._mine(caller, ip)
        with self._store.transaction() as tx:
            tx.delete("address", a.ip)
        if a.instance is not None:
            self._cc.network.disassociate(a.ip)
        self._cc.network.release_public(a.ip)
        del self._addresses[a.ip]

    def associate(self, caller: Caller, ip: str | None, instance_id: str | None) -> None:
        a = self._mine(caller, ip)
        if not instance_id:
            raise InvalidParameterValue("InstanceId is required")
        live = self.live(instance_id)
        if live is None or not caller.sees(live[0]) or self._cc.network.assignment(instance_id) is None:
            raise InvalidInstanceIDNotFound(f"The instance ID '{instance_id[:64]}' does not exist")
        previous = self._cc.network.public_of(instance_id)
        with self._store.transaction() as tx:
            if previous is not None and previous != a.ip:
                tx.put("address", previous, self._addresses[previous].account, {"instance": None})
            tx.put("address", a.ip, a.account, {"instance": instance_id})
        if previous is not None and previous != a.ip:
            self._cc.network.disassociate(previous)
            self._addresses[previous].instance = None
        self._cc.network.associate(a.ip, instance_id)
        a.instance = instance_id

    def disassociate(self, caller: Caller, ip: str | None) -> None:
        a = self._mine(caller, ip)
        if a.instance is None:
            return
        with self._store.transaction() as tx:
            tx.put("address", a.ip, a.account, {"instance": None})
        self._cc.network.disassociate(a.ip)
        a.instance = None

    def unbind(self, tx: Tx, instance_id: str) -> list[str]:
        """Inside the transaction that ends an instance: its addresses are no longer associated."""
        freed = [a.ip for a in self._addresses.values() if a.instance == instance_id]
        for ip in freed:
            tx.put("address", ip, self._addresses[ip].account, {"instance": None})
        return freed

    def unbound(self, ips: list[str]) -> None:
        for ip in ips:
            self._addresses[ip].instance = None

    def public_of(self, instance_id: str) -> str | None:
        return self._cc.network.public_of(instance_id)

    def describe(self, caller: Caller, ips: list[str] | None, filters: Any) -> list[dict[str, Any]]:
        chosen = wanted(filters, ("public-ip", "instance-id", "domain", "private-ip-address"))
        visible = [a for a in self._addresses.values() if caller.sees(a.account)]
        if ips:
            for ip in ips:
                if not any(a.ip == self._check_ip(ip) for a in visible):
                    raise InvalidAddressNotFound(f"Address '{ip}' not found.")
            visible = [a for a in visible if a.ip in ips]
        out = []
        for a in sorted(visible, key=lambda a: ipaddress.IPv4Address(a.ip)):
            live = self.live(a.instance) if a.instance else None
            private = live[1] if live else None
            fields = {"public-ip": [a.ip], "instance-id": [a.instance or ""], "domain": ["standard"],
                      "private-ip-address": [private or ""]}
            if matches(chosen, lambda n, f=fields: f.get(n, [])):  # type: ignore[misc]
                out.append({"PublicIp": a.ip, "InstanceId": a.instance, "Domain": "standard",
                            "PrivateIpAddress": private})
        return out
