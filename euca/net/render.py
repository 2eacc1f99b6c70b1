"""From a network view to the host state it asks for: iptables chains, ipsets, one ebtables table,
bridges and segments, DHCP host entries. A pure function of the view and the host's settings, so
the same view always renders the same text (and ``iptables-save`` after a restart matches).

Rules per security group live in one chain per group, named by the group id, and membership in one
hash:ip set of the same name, as Eucalyptus 4.3+'s EDGE has them, so a new member is a set entry,
not new rules:

- ``EUCA_FILTER_FWD`` (jumped to from FORWARD): established traffic passes; traffic to a member of
  group G goes through G's chain; what no chain accepted and is bound for an instance is dropped.
  Egress is open.
- ``G``: members of G reach each other; then one ACCEPT per ingress rule (a CIDR, or another
  group's set as the source).
- mangle ``EUCA_MANGLE_PRE``: requests to 169.254.169.254:80 get TTL 64 as they enter, so the
  metadata service measures its distance to the instance (its IMDSv2 hop limit).
- nat ``EUCA_NAT_PRE``/``EUCA_NAT_OUT``: 169.254.169.254:80 to the cloud's API; then both go
  through ``EUCA_NAT_ELASTIC``, where each public address is DNATed to its instance.
  ``EUCA_NAT_POST``: an instance with a public address leaves with it (its SNAT in
  ``EUCA_NAT_SNAT``, jumped to once for whatever is not bound for an instance), except towards
  other instances and the cloud's metadata port.
- the bridge table (nftables' ``bridge euca``, Eucalyptus's ebtables rules): a frame from an
  instance's port ``vn_<instance-id>`` must carry the instance's MAC, its IPv4 packets the
  instance's address (DHCP requests excepted) and its ARP the MAC and address; RARP is dropped.
  The pairs live in two sets, so the table has five rules however many instances there are.

Who does what, per mode (Eucalyptus's VNET_MODE):

- EDGE: every node enforces for its own instances: chains, sets, NAT, bridge table, DHCP, and the
  router's address on its bridge (and, with VNET_PUBINTERFACE, the public addresses it NATs on that
  interface, as Eucalyptus's CC adds each ``ip/32``).
- MANAGED-NOVLAN: the routing host (the CC's, ``HostConfig.router``) holds each group network's
  gateway on the one bridge, routes between them through the group chains, NATs the elastic
  addresses and serves DHCP; a node that only hosts instances keeps its bridge and the bridge table.
- MANAGED: as MANAGED-NOVLAN, with one layer-2 segment per group network (``eucabr<vlan>`` over
  an 802.1q sub-interface or a VXLAN with VNI = the tag) on the routing host and on every node.
- STATIC: DHCP of VNET_MACMAP's addresses, the router's address on the bridge and the metadata
  DNAT; no filtering and no other translation.
- SYSTEM: nothing: the addresses come from a DHCP server outside the cloud.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field

from euca.net.view import GroupView, InstanceView, NetView, Rule

METADATA_IP = "169.254.169.254"
ALL_PRIVATE = "EUCA_ALLPRIVATE"
FILTER_FWD = "EUCA_FILTER_FWD"
NAT_PRE, NAT_OUT, NAT_POST = "EUCA_NAT_PRE", "EUCA_NAT_OUT", "EUCA_NAT_POST"
NAT_ELASTIC = "EUCA_NAT_ELASTIC"  # the public addresses' DNATs, shared by PREROUTING and OUTPUT
NAT_SNAT = "EUCA_NAT_SNAT"  # the public addresses' SNATs, for traffic leaving the instances' network
MANGLE_PRE = "EUCA_MANGLE_PRE"  # metadata requests' TTL, set as they enter
BRIDGE_TABLE = "euca"  # nftables: table bridge euca
# built-in chain -> our chain it jumps to, per table
JUMPS = {"filter": (("FORWARD", FILTER_FWD),),
         "nat": (("PREROUTING", NAT_PRE), ("OUTPUT", NAT_OUT), ("POSTROUTING", NAT_POST)),
         "mangle": (("PREROUTING", MANGLE_PRE),)}
OURS = ("EUCA_", "sg-")  # chain and set names this agent owns
ENFORCING = ("EDGE", "MANAGED", "MANAGED-NOVLAN")


@dataclass(frozen=True)
class HostConfig:
    """This host's side of the settings (eucalyptus.conf on the node)."""

    bridge: str = "eucabr"  # EDGE / MANAGED-NOVLAN / STATIC: the instances' bridge (VNET_BRIDGE)
    priv_interface: str = "eth0"  # MANAGED: where segments leave the host (VNET_PRIVINTERFACE)
    segments: str = "vlan"  # MANAGED: "vlan" (802.1q sub-interfaces) or "vxlan" (VNI = the tag)
    vxlan_local: str = ""  # VXLAN: this host's address on the private interface
    vxlan_remotes: tuple[str, ...] = ()  # VXLAN: the other hosts (head-end replication)
    instance_prefix: str = "vn_"  # an instance's interface: prefix + instance id
    router: bool = True  # MANAGED / MANAGED-NOVLAN: this host routes the group networks (the CC's host)
    pub_interface: str = ""  # where the public addresses this host NATs are put, as /32s (VNET_PUBINTERFACE)
    lease_seconds: int = 1200  # Eucalyptus's euca-dhcp.conf lease
    dhcp_user: str = "root"  # VNET_DHCPUSER: dnsmasq re-reads its host files as this user on SIGHUP


@dataclass(frozen=True)
class Segment:
    """MANAGED: one group's layer-2 segment: bridge ``eucabr<vlan>`` and its uplink device."""

    vlan: int
    bridge: str
    uplink: str  # "<priv>.<vlan>" (802.1q) or "vx<vlan>" (VXLAN)
    gateway: str  # "a.b.c.d/n" put on the bridge


@dataclass
class Desired:
    mode: str
    filter: dict[str, list[str]] = field(default_factory=dict)  # chain -> its rules, in order
    nat: dict[str, list[str]] = field(default_factory=dict)
    mangle: dict[str, list[str]] = field(default_factory=dict)
    sets: dict[str, tuple[str, ...]] = field(default_factory=dict)  # ipset -> members
    bridge_filter: str = ""  # the nft script that replaces our bridge table whole ("": no table)
    bridge_addresses: dict[str, tuple[str, ...]] = field(default_factory=dict)  # bridge -> "ip/n" addresses
    segments: tuple[Segment, ...] = ()
    public_addresses: tuple[str, str, tuple[str, ...]] | None = None  # (device, label, the /32s) or None
    dhcp_hosts: str = ""  # dnsmasq --dhcp-hostsfile
    dhcp_opts: str = ""  # dnsmasq --dhcp-optsfile
    dhcp_range: tuple[str, str] | None = None  # (network, netmask) that dnsmasq serves statically


def _prefix(netmask: str) -> int:
    return ipaddress.IPv4Network(f"0.0.0.0/{netmask}").prefixlen


def _match(r: Rule) -> str:
    if r.protocol == "-1":
        return ""
    if r.protocol == "icmp":
        if r.low == -1:
            return " -p icmp -m icmp --icmp-type any"
        return f" -p icmp -m icmp --icmp-type {r.low}" + ("" if r.high == -1 else f"/{r.high}")
    if r.low == -1 or (r.low == 0 and r.high == 65535):
        return f" -p {r.protocol}"
    ports = str(r.low) if r.low == r.high else f"{r.low}:{r.high}"
    return f" -p {r.protocol} -m {r.protocol} --dport {ports}"


def _group_chain(g: GroupView) -> list[str]:
    c = g.group_id
    lines = [f"-A {c} -m set --match-set {c} src -j ACCEPT"]
    for r in g.rules:
        source = f" -s {r.cidr}" if r.cidr else f" -m set --match-set {r.group} src"
        if r.cidr == "0.0.0.0/0":
            source = ""
        lines.append(f"-A {c}{source}{_match(r)} -j ACCEPT")
    return lines


def _bridge_filter(view: NetView, host: HostConfig) -> str:
    """One nft transaction that replaces ``table bridge euca`` whole (declaring it first makes the
    delete safe when it is not there yet)."""
    instances = sorted(view.instances, key=lambda i: i.instance_id)
    ports = ", ".join(f'"{host.instance_prefix}{i.instance_id}" . {i.mac} . {i.private_ip}' for i in instances)
    macs = ", ".join(f'"{host.instance_prefix}{i.instance_id}" . {i.mac}' for i in instances)
    wildcard = f'"{host.instance_prefix}*"'
    return "\n".join([
        f"table bridge {BRIDGE_TABLE}", f"delete table bridge {BRIDGE_TABLE}", f"table bridge {BRIDGE_TABLE} {{",
        "  set ports { type ifname . ether_addr . ipv4_addr;" + (f" elements = {{ {ports} }};" if ports else "") + " }",
        "  set macs { type ifname . ether_addr;" + (f" elements = {{ {macs} }};" if macs else "") + " }",
        "  chain forward {", "    type filter hook forward priority -200; policy accept;",
        f"    iifname {wildcard} jump ports", "  }",
        "  chain input {", "    type filter hook input priority -200; policy accept;",
        f"    iifname {wildcard} jump ports", "  }",
        "  chain ports {",
        "    iifname . ether saddr != @macs drop",
        "    ether type ip ip saddr 0.0.0.0 udp dport 67 accept",
        "    ether type ip iifname . ether saddr . ip saddr != @ports drop",
        "    ether type arp iifname . arp saddr ether . arp saddr ip != @ports drop",
        "    ether type 0x8035 drop",
        "  }", "}"]) + "\n"


def bridge_filter_removal() -> str:
    return f"table bridge {BRIDGE_TABLE}\ndelete table bridge {BRIDGE_TABLE}\n"


def _dhcp(view: NetView, instances: list[InstanceView], desired: Desired, networks: dict[str, GroupView]) -> None:
    """Fixed addresses by MAC (Eucalyptus's ``host node-<ip> { hardware ethernet; fixed-address; }``),
    with each managed group's router and netmask through a tag, so a new group is a file rewrite
    and SIGHUP, never a restart."""
    hosts, opts = [], []
    for i in instances:
        group = networks.get(i.groups[0]) if i.groups else None
        if group is not None and group.gateway and view.mode in ("MANAGED", "MANAGED-NOVLAN"):
            hosts.append(f"{i.mac},set:{group.group_id},{i.private_ip}")
        else:
            hosts.append(f"{i.mac},{i.private_ip}")
    for g in sorted(networks.values(), key=lambda g: g.group_id):
        if g.gateway and view.mode in ("MANAGED", "MANAGED-NOVLAN"):
            opts += [f"tag:{g.group_id},option:router,{g.gateway}", f"tag:{g.group_id},option:netmask,{g.netmask}"]
    if view.router and view.mode in ("EDGE", "STATIC"):
        opts.append(f"option:router,{view.router}")
    if view.dns:
        opts.append(f"option:dns-server,{view.dns}")
    if view.domain:
        opts.append(f"option:domain-name,{view.domain}")
    desired.dhcp_hosts = "".join(line + "\n" for line in hosts)
    desired.dhcp_opts = "".join(line + "\n" for line in opts)
    desired.dhcp_range = (view.subnet, view.netmask)


def public_label(device: str) -> str:
    """The label that marks the public addresses this agent put on ``device`` (``eth0:eu``), so a
    restarted agent finds its own and never touches another's. A label starts with its device's
    name and has at most 15 characters: "" when the name is too long to make one (no addresses
    are put there then)."""
    return f"{device}:eu" if len(device) <= 12 else ""


# Every request to the metadata service leaves this host with the TTL 64 less the routers on its
# way, whoever sent it, so the service counts the routers from the instance, not from a container
# behind it, and the IMDSv2 hop limit holds (euca.api.metadata).
_METADATA_TTL = f"-A {MANGLE_PRE} -d {METADATA_IP}/32 -p tcp -m tcp --dport 80 -j TTL --ttl-set 64"


def _metadata_nat(metadata: str) -> tuple[list[str], list[str]]:
    """PREROUTING's DNAT of 169.254.169.254:80 to the cloud's API ("ip:port"), and POSTROUTING's
    exemption of that traffic from any SNAT: the API knows the caller by its source address."""
    meta_ip, _, meta_port = metadata.rpartition(":")
    return ([f"-A {NAT_PRE} -d {METADATA_IP}/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination {metadata}"],
            [f"-A {NAT_POST} -d {meta_ip}/32 -p tcp -m tcp --dport {meta_port} -j RETURN"])


def render(view: NetView, host: HostConfig) -> Desired:
    desired = Desired(view.mode)
    if view.mode == "SYSTEM":
        return desired
    if host.pub_interface and public_label(host.pub_interface):
        desired.public_addresses = (host.pub_interface, public_label(host.pub_interface), ())  # none unless NATed
    instances = sorted(view.instances, key=lambda i: i.instance_id)
    groups = sorted(view.groups, key=lambda g: g.group_id)
    members: dict[str, list[str]] = {g.group_id: [] for g in groups}
    for i in instances:
        for group_id in i.groups:
            members[group_id].append(i.private_ip)
    segments = []
    if view.mode == "MANAGED":  # a segment per group network in use, on every host
        for group in groups:
            if not group.gateway or group.vlan < 0 or not members[group.group_id]:
                continue
            tag = group.vlan
            uplink = f"vx{tag}" if host.segments == "vxlan" else f"{host.priv_interface}.{tag}"
            segments.append(Segment(tag, f"eucabr{tag}", uplink, f"{group.gateway}/{_prefix(group.netmask)}"))
        desired.segments = tuple(segments)
    if view.mode in ("MANAGED", "MANAGED-NOVLAN") and not host.router:
        # a node: its instances' ports on bridges without addresses; the routing host does the rest
        desired.bridge_filter = _bridge_filter(view, host)
        for bridge in [s.bridge for s in segments] or [host.bridge]:
            desired.bridge_addresses[bridge] = ()
        return desired

    networks = {g.group_id: g for g in groups}
    _dhcp(view, instances, desired, networks)
    prefix = _prefix(view.netmask)
    if view.mode == "STATIC":
        if view.router:
            desired.bridge_addresses[host.bridge] = (f"{view.router}/{prefix}",)
        if view.metadata:  # no NAT of addresses, but the instances still reach their metadata
            pre, post = _metadata_nat(view.metadata)
            desired.nat = {NAT_PRE: pre, NAT_OUT: [], NAT_POST: post}
            desired.mangle = {MANGLE_PRE: [_METADATA_TTL]}
        return desired

    desired.sets[ALL_PRIVATE] = tuple(sorted({i.private_ip for i in instances}, key=ipaddress.IPv4Address))
    for g in groups:
        desired.sets[g.group_id] = tuple(sorted(set(members[g.group_id]), key=ipaddress.IPv4Address))
    forward = [f"-A {FILTER_FWD} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"]
    for g in groups:
        forward.append(f"-A {FILTER_FWD} -m set --match-set {g.group_id} dst -j {g.group_id}")
        desired.filter[g.group_id] = _group_chain(g)
    forward.append(f"-A {FILTER_FWD} -m set --match-set {ALL_PRIVATE} dst -j DROP")
    desired.filter[FILTER_FWD] = forward

    pre, post = _metadata_nat(view.metadata) if view.metadata else ([], [])
    if view.metadata:
        desired.mangle = {MANGLE_PRE: [_METADATA_TTL]}
    out: list[str] = []
    elastic: list[str] = []
    snat: list[str] = []
    for i in instances:
        if i.public_ip and i.public_ip != i.private_ip:
            elastic.append(f"-A {NAT_ELASTIC} -d {i.public_ip}/32 -j DNAT --to-destination {i.private_ip}")
            snat.append(f"-A {NAT_SNAT} -s {i.private_ip}/32 -j SNAT --to-source {i.public_ip}")
    if elastic:
        pre.append(f"-A {NAT_PRE} -j {NAT_ELASTIC}")
        out.append(f"-A {NAT_OUT} -j {NAT_ELASTIC}")
        # one set lookup for all the SNATs, not one per rule
        post.append(f"-A {NAT_POST} -m set ! --match-set {ALL_PRIVATE} dst -j {NAT_SNAT}")
    desired.nat = {NAT_ELASTIC: elastic, NAT_SNAT: snat, NAT_PRE: pre, NAT_OUT: out, NAT_POST: post}
    if desired.public_addresses is not None:
        # on the public interface, so the hosts upstream reach them by ARP without a route to this host
        publics = {i.public_ip for i in instances if i.public_ip and i.public_ip != i.private_ip}
        desired.public_addresses = (*desired.public_addresses[:2],
                                    tuple(f"{ip}/32" for ip in sorted(publics, key=ipaddress.IPv4Address)))

    if view.mode == "EDGE":
        desired.bridge_filter = _bridge_filter(view, host)
        router = view.router or str(ipaddress.IPv4Address(view.subnet) + 1)
        desired.bridge_addresses[host.bridge] = (f"{router}/{prefix}",)
    elif view.mode == "MANAGED-NOVLAN":
        desired.bridge_filter = _bridge_filter(view, host)  # the routing host may host instances too
        desired.bridge_addresses[host.bridge] = tuple(sorted(
            {f"{g.gateway}/{_prefix(g.netmask)}" for g in groups if g.gateway and members[g.group_id]}))
    else:
        for s in segments:
            desired.bridge_addresses[s.bridge] = (s.gateway,)
    return desired


def restore_text(table: str, chains: dict[str, list[str]], stale: Sequence[str] = ()) -> str:
    """iptables-restore --noflush input that replaces these chains whole (declaring one flushes it)
    and deletes the stale ones, in one transaction."""
    lines = [f"*{table}"]
    lines += [f":{name} - [0:0]" for name in [*chains, *stale]]
    for rules in chains.values():
        lines += rules
    lines += [f"-X {name}" for name in stale]
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"
