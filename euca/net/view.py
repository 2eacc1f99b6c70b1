"""The cluster's network view: the one document the agent acts on (Eucalyptus 4's
``global_network_info.xml``, as JSON).

::

    {"version": 1, "mode": "EDGE" | "MANAGED" | "MANAGED-NOVLAN" | "STATIC" | "SYSTEM",
     "network": {"subnet": "172.19.0.0", "netmask": "255.255.0.0", "router": "172.19.0.1",
                 "dns": "172.19.0.1", "domain": "eucalyptus.internal",
                 "metadata": "10.0.0.5:8773"},          # where 169.254.169.254:80 goes ("" = nowhere)
     "groups": [{"id": "sg-1a2b3c4d", "vlan": 10, "network": "172.19.0.0", "netmask": "255.255.255.224",
                 "gateway": "172.19.0.1",                # the managed modes' per-group network
                 "rules": [{"protocol": "tcp", "from": 22, "to": 22, "cidr": "0.0.0.0/0"},
                           {"protocol": "-1", "from": -1, "to": -1, "group": "sg-5e6f7a8b"}]}],
     "instances": [{"id": "i-3a4b5c6d", "mac": "d0:0d:3a:4b:5c:6d", "private_ip": "172.19.0.2",
                    "public_ip": "198.51.100.7", "groups": ["sg-1a2b3c4d"]}]}

Ingress rules only: egress is open, as in Eucalyptus's EDGE and managed modes. The document comes
over the network, so it is checked whole before anything is done with it; a bad one changes
nothing on the host and the reason names the field.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from typing import Any

MODES = ("EDGE", "MANAGED", "MANAGED-NOVLAN", "STATIC", "SYSTEM")
PROTOCOLS = ("tcp", "udp", "icmp", "-1")
_GROUP_ID = re.compile(r"sg-[0-9a-fA-F]{8,17}")
_INSTANCE_ID = re.compile(r"i-[0-9a-fA-F]{8,17}")
_MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")


class ViewError(ValueError):
    """A network view the agent will not apply."""


@dataclass(frozen=True)
class Rule:
    protocol: str
    low: int  # first port or ICMP type; -1: all
    high: int  # last port or ICMP code; -1: all
    cidr: str = ""  # one of cidr and group
    group: str = ""


@dataclass(frozen=True)
class GroupView:
    group_id: str
    rules: tuple[Rule, ...]
    vlan: int = -1
    network: str = ""
    netmask: str = ""
    gateway: str = ""


@dataclass(frozen=True)
class InstanceView:
    instance_id: str
    mac: str
    private_ip: str
    public_ip: str
    groups: tuple[str, ...]


@dataclass(frozen=True)
class NetView:
    mode: str
    subnet: str
    netmask: str
    router: str
    dns: str
    domain: str
    metadata: str  # "ip:port" or ""
    groups: tuple[GroupView, ...]
    instances: tuple[InstanceView, ...]


def _ip(value: Any, where: str, empty: bool = False) -> str:
    if empty and value in ("", None):
        return ""
    try:
        return str(ipaddress.IPv4Address(value))
    except (ValueError, TypeError):
        raise ViewError(f"{where}: not an IPv4 address: {str(value)[:40]!r}") from None


def _port(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not -1 <= value <= 65535:
        raise ViewError(f"{where}: not a port, ICMP type or -1: {str(value)[:20]!r}")
    return value


def _text(value: Any, where: str, pattern: re.Pattern[str]) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ViewError(f"{where}: malformed: {str(value)[:40]!r}")
    return value


def _rule(r: Any, where: str) -> Rule:
    if not isinstance(r, dict):
        raise ViewError(f"{where}: not an object")
    protocol = r.get("protocol")
    if protocol not in PROTOCOLS:
        raise ViewError(f"{where}.protocol: one of {', '.join(PROTOCOLS)}, not {str(protocol)[:10]!r}")
    low, high = _port(r.get("from", -1), f"{where}.from"), _port(r.get("to", -1), f"{where}.to")
    if protocol in ("tcp", "udp") and low > high:
        raise ViewError(f"{where}: port range {low}-{high} is backwards")
    if ("cidr" in r) == ("group" in r):
        raise ViewError(f"{where}: exactly one of cidr and group")
    if "cidr" in r:
        try:
            cidr = str(ipaddress.IPv4Network(r["cidr"], strict=False))
        except (ValueError, TypeError):
            raise ViewError(f"{where}.cidr: not an IPv4 CIDR: {str(r['cidr'])[:40]!r}") from None
        return Rule(protocol, low, high, cidr=cidr)
    return Rule(protocol, low, high, group=_text(r["group"], f"{where}.group", _GROUP_ID))


def parse_view(data: bytes | str | dict[str, Any]) -> NetView:
    try:
        doc = json.loads(data) if isinstance(data, (bytes, str)) else data
    except (ValueError, UnicodeDecodeError) as exc:
        raise ViewError(f"not JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("version") != 1:
        raise ViewError("not a version 1 network view")
    mode = doc.get("mode")
    if mode not in MODES:
        raise ViewError(f"mode: one of {', '.join(MODES)}, not {str(mode)[:20]!r}")
    net = doc.get("network") or {}
    if not isinstance(net, dict):
        raise ViewError("network: not an object")
    metadata = net.get("metadata") or ""
    if metadata:
        host, _, port = str(metadata).rpartition(":")
        _ip(host, "network.metadata")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ViewError(f"network.metadata: not ip:port: {str(metadata)[:40]!r}")
    domain = net.get("domain") or ""
    if not isinstance(domain, str) or not re.fullmatch(r"[A-Za-z0-9.-]{0,253}", domain):
        raise ViewError("network.domain: not a domain name")
    groups = []
    for n, g in enumerate(doc.get("groups") or []):
        where = f"groups[{n}]"
        if not isinstance(g, dict) or not isinstance(g.get("rules", []), list):
            raise ViewError(f"{where}: not a group")
        vlan = g.get("vlan", -1)
        if not isinstance(vlan, int) or not -1 <= vlan <= 16777215:
            raise ViewError(f"{where}.vlan: out of range")
        groups.append(GroupView(_text(g.get("id"), f"{where}.id", _GROUP_ID),
                                tuple(_rule(r, f"{where}.rules[{k}]") for k, r in enumerate(g.get("rules", []))),
                                vlan, _ip(g.get("network"), f"{where}.network", True),
                                _ip(g.get("netmask"), f"{where}.netmask", True),
                                _ip(g.get("gateway"), f"{where}.gateway", True)))
    known = {g.group_id for g in groups}
    if len(known) != len(groups):
        raise ViewError("groups: an id is listed twice")
    instances = []
    for n, i in enumerate(doc.get("instances") or []):
        where = f"instances[{n}]"
        if not isinstance(i, dict) or not isinstance(i.get("groups", []), list):
            raise ViewError(f"{where}: not an instance")
        member = tuple(_text(g, f"{where}.groups", _GROUP_ID) for g in i.get("groups", []))
        if not set(member) <= known:
            raise ViewError(f"{where}.groups: names a group the view does not have")
        instances.append(InstanceView(_text(i.get("id"), f"{where}.id", _INSTANCE_ID),
                                      _text(str(i.get("mac", "")).lower(), f"{where}.mac", _MAC),
                                      _ip(i.get("private_ip"), f"{where}.private_ip"),
                                      _ip(i.get("public_ip"), f"{where}.public_ip", True), member))
    for g in groups:
        for r in g.rules:
            if r.group and r.group not in known:
                raise ViewError(f"group {g.group_id}: a rule names {r.group}, which the view does not have")
    return NetView(mode, _ip(net.get("subnet", "0.0.0.0"), "network.subnet"),
                   _ip(net.get("netmask", "0.0.0.0"), "network.netmask"),
                   _ip(net.get("router"), "network.router", True),
                   _ip(net.get("dns"), "network.dns", True), domain, str(metadata), tuple(groups), tuple(instances))
