"""The cluster's network view for the nodes' network agents (``euca.net.view`` documents the
JSON): every live instance with its MAC, addresses and groups, every group they are in (and every
group a rule of theirs names) with its ingress rules and, in the managed modes, its network.

It is rebuilt from the services on each request and compared by content: its ETag is a digest of
the document, so an agent polling an unchanged cloud gets 304 and does nothing.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from euca.services.cloud import Cloud

API_PORT = 8773


def network_view(cloud: Cloud, metadata: str = "", mode: str | None = None) -> dict[str, Any]:
    """``metadata``: "ip:port" of this cloud's API for the 169.254.169.254 DNAT (VNET_CLOUDIP:8773
    when empty and VNET_CLOUDIP is set). ``mode``: EDGE, to have the agents enforce on each node
    over the cluster's addresses."""
    network = cloud.cc.network
    config = cloud.cc.config
    live = cloud.instances.live_instances()
    wanted: dict[tuple[str, str], Any] = {}
    for inst in live:
        for name in inst.groups:
            g = cloud.groups.get(inst.account, name)
            if g is not None:
                wanted[(inst.account, name)] = g
    for g in list(wanted.values()):
        for r in g.rules:
            if r.kind == "group" and not r.egress:
                account, _, name = r.peer.partition("/")
                peer = cloud.groups.get(account, name)
                if peer is not None:
                    wanted.setdefault((account, name), peer)
    groups = []
    for (account, name), g in sorted(wanted.items(), key=lambda kv: kv[1].group_id):
        rules = []
        for r in g.rules:
            if r.egress:
                continue
            entry: dict[str, Any] = {"protocol": r.protocol, "from": r.low, "to": r.high}
            if r.kind == "group":
                peer_account, _, peer_name = r.peer.partition("/")
                peer = cloud.groups.get(peer_account, peer_name)
                if peer is None:
                    continue
                entry["group"] = peer.group_id
            else:
                entry["cidr"] = r.peer
            rules.append(entry)
        doc: dict[str, Any] = {"id": g.group_id, "rules": rules}
        net = network.group_network(account, name)
        if net is not None:
            doc |= {"vlan": net.vlan, "network": net.network, "netmask": net.netmask, "gateway": net.gateway}
        groups.append(doc)
    instances = []
    for inst in sorted(live, key=lambda i: i.instance_id):
        if inst.private_ip == "0.0.0.0":
            continue  # SYSTEM: the outside DHCP server has not told us yet
        ids = [g.group_id for name in inst.groups if (g := cloud.groups.get(inst.account, name)) is not None]
        instances.append({"id": inst.instance_id, "mac": inst.mac, "private_ip": inst.private_ip,
                          "public_ip": network.public_of(inst.instance_id) or "", "groups": ids})
    if not metadata and config.vnet_cloudip:
        metadata = f"{config.vnet_cloudip}:{API_PORT}"
    return {"version": 1, "mode": mode or config.vnet_mode,
            "network": {"subnet": config.vnet_subnet, "netmask": config.vnet_netmask,
                        "router": config.vnet_router, "dns": config.vnet_dns, "domain": config.vnet_domainname,
                        "metadata": metadata},
            "groups": groups, "instances": instances}


def render_view(view: dict[str, Any]) -> tuple[bytes, str]:
    """The document's bytes and its ETag."""
    body = json.dumps(view, sort_keys=True, separators=(",", ":")).encode()
    return body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
