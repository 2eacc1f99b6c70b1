"""A real guest on a network the cloud runs: its address by DHCP from the network agent's dnsmasq,
its metadata from 169.254.169.254 (IMDSv1 and IMDSv2), a port of its reachable only while a
security group rule allows it.

The guest's bridge lives in the test libvirtd's network namespace, which plays the node. The
network agent runs in that namespace (``nsenter --net``), as it runs on a node; the API (``euca
up``) and the node controller run on the host. A veth pair links the two, the host routing the
instances' subnet into the namespace, so the metadata DNAT to the API keeps the guest's own source
address, which is how the metadata service knows the caller. A client namespace one router (the
node) away tries the guest's port. The guest's side is ``tests/guest/guest.d/50-network.sh``: every
line it prints on the console starts with ``euca-net:``.

Per mode: EDGE (the agent enforcing on the node over a MANAGED-NOVLAN cluster's addresses, its
gateway VNET_ROUTER on the bridge), MANAGED-NOVLAN (the node as the routing host: the group
network's gateway on the bridge), STATIC (VNET_MACMAP's address; nothing filtered), MANAGED (the
node only carries the group's segment, ``eucabr<vlan>`` over a VXLAN with VNI = the tag, to a
routing host: a namespace of the test's on the node's private link, running the agent as the CC's
host does: the gateway, DHCP, the group chains, the metadata DNAT and the elastic address's NAT) and
SYSTEM (the agent installs nothing; the guest still boots on the node's bridge).

Root and apt (CI) only; elsewhere it skips with the reason (see tests/guest/fixtures.py).
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from tests.guest.build_image import MARKER, GuestImage
from tests.guest.fixtures import BOOT_TIMEOUT, wait_for_line
from tests.guest.libvirtd import Libvirtd
from tests.guest.procs import EC2_TIMEOUT, Process, euca, euca_libvirt_nodes, free_port, run_instances, until
from tests.netns import Lab, net_tools

pytestmark = pytest.mark.real_guest
__all__ = ["euca_libvirt_nodes", "net_tools"]

PORT = 8080  # the guest's TCP service: it answers with its instance id
USER_DATA = "hello-from-user-data"
PUBLIC_RANGE = "203.0.113.0/27"  # VNET_PUBLICIPS: the host reaches them on its link to the node, by ARP
MANAGED_PUBLIC = "203.0.113.64/27"  # MANAGED's: the host routes them to the node, the node to the routing host


MODES = ("EDGE", "MANAGED-NOVLAN", "STATIC", "MANAGED", "SYSTEM")
STATIC_MAC = "d0:0d:aa:00:00:01"


def _addresses() -> dict[str, str]:
    """This run's subnets, picked by PID so two runs on one machine do not fight over host routes."""
    n = os.getpid() % 50
    return {"subnet": f"10.{180 + n}.0.0", "router": f"10.{180 + n}.0.1", "static": f"10.{180 + n}.0.10",
            "managed": f"10.{130 + n}.0.0", "host": f"10.250.{n}.1", "uplink": f"10.250.{n}.2",
            "client": f"10.251.{n}.2", "client_gw": f"10.251.{n}.1",
            "priv": f"10.252.{n}.0/30", "node_priv": f"10.252.{n}.1", "router_priv": f"10.252.{n}.2"}


@pytest.fixture(scope="module")
def node_links(libvirt_daemon: Libvirtd) -> Iterator[tuple[dict[str, str], str]]:
    """The node (libvirtd's namespace) linked to the host, which routes the instances' subnets into it,
    and the node's private network (MANAGED's routing host is on it), and a client namespace behind
    the node: the addresses, and the client's name."""
    a = _addresses()
    libvirt_daemon.link_to_host(f"{a['host']}/30", f"{a['uplink']}/30",
                                [f"{a['subnet']}/16", f"{a['managed']}/16", MANAGED_PUBLIC, a["priv"]], [PUBLIC_RANGE])
    client = libvirt_daemon.link_namespace(f"euca-gnet-{os.getpid()}", f"{a['client']}/30", a["client_gw"])
    yield a, client
    libvirt_daemon.unlink()


@pytest.fixture(scope="module")
def routing_host(libvirt_daemon: Libvirtd, node_links: tuple[dict[str, str], str]) -> str:
    """MANAGED's routing host (the CC's): a namespace on the node's private link (``eth0`` there,
    ``priv0`` on the node), the node routing MANAGED's subnet and public addresses to it. Its name;
    ``Libvirtd.unlink`` deletes it."""
    a, _ = node_links
    name = libvirt_daemon.link_namespace(f"euca-grt-{os.getpid()}", f"{a['router_priv']}/30", a["node_priv"],
                                         inside="priv0")
    for argv in (["sysctl", "-qw", "net.ipv4.ip_forward=1"],
                 ["ip", "route", "add", f"{a['managed']}/16", "via", a["router_priv"]],
                 ["ip", "route", "add", MANAGED_PUBLIC, "via", a["router_priv"]]):
        subprocess.run(libvirt_daemon.in_netns(*argv), check=True, capture_output=True)
    return name


def _cloud_conf(mode: str, a: dict[str, str]) -> str:
    subnet = a["managed"] if mode == "MANAGED" else a["subnet"]
    conf = (f'HYPERVISOR="qemu"\nNC_POLLING_FREQUENCY="6"\nVNET_SUBNET="{subnet}"\n'
            f'VNET_NETMASK="255.255.0.0"\nVNET_ROUTER="{a["router"]}"\nVNET_DNS="{a["router"]}"\n'
            f'VNET_CLOUDIP="{a["host"]}"\n')
    if mode == "STATIC":
        return conf + f'VNET_MODE="STATIC"\nVNET_MACMAP="{STATIC_MAC}={a["static"]}"\n'
    if mode == "SYSTEM":
        return conf + 'VNET_MODE="SYSTEM"\n'
    if mode == "MANAGED":
        return conf + 'VNET_MODE="MANAGED"\nVNET_PUBLICIPS="203.0.113.70-203.0.113.80"\n'
    return conf + 'VNET_MODE="MANAGED-NOVLAN"\nVNET_PUBLICIPS="203.0.113.10-203.0.113.20"\n'


def _agent_argv(mode: str, a: dict[str, str], role: str) -> list[str]:
    """The network agent's options beyond the cloud's, node and state directory: ``role`` "node" on
    the guest's node, "router" on the routing host (MANAGED) or on a node that routes itself."""
    if mode == "MANAGED":
        here, there = (a["node_priv"], a["router_priv"]) if role == "node" else (a["router_priv"], a["node_priv"])
        argv = ["--role", role, "--segments", "vxlan", "--priv-interface", "priv0" if role == "node" else "eth0",
                "--vxlan-local", here, "--vxlan-remote", there]
        return argv + (["--pub-interface", "eth0"] if role == "router" else [])
    return ["--pub-interface", "uplink0", *(["--mode", "EDGE"] if mode == "EDGE" else [])]


def _ruleset(libvirt_daemon: Libvirtd) -> tuple[str, str]:
    """iptables-save (without its comments and counters) and ``nft list ruleset`` in the node's namespace."""
    def out(*argv: str) -> str:
        return subprocess.run(libvirt_daemon.in_netns(*argv), capture_output=True, text=True, check=False).stdout

    tables = "\n".join(re.sub(r"\[\d+:\d+\]", "[0:0]", line)
                       for line in out("iptables-save").splitlines() if not line.startswith("#"))
    return tables, out("nft", "list", "ruleset")


def _public_key() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate().public_key()
    return key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


def _from_host(ip: str) -> str | None:
    """What the guest's port answers to the host (upstream of the node), or None."""
    try:
        with socket.create_connection((ip, PORT), timeout=1.0) as conn:
            return conn.recv(64).decode().strip() or None
    except OSError:
        return None


def _open_and_close(ec2: Any, probe: Lab, client: str, ip: str, iid: str,
                    public_range: str = PUBLIC_RANGE) -> tuple[float, float]:
    """The guest's port: closed, opened by a rule, closed again by its revocation, each within 2 s
    (``Lab.until`` fails beyond that); the seconds each took. While open, the guest's public
    address reaches it from the host: the node put it on its public interface and DNATs it (in
    MANAGED the routing host does, the host routing the addresses to it through the node)."""
    assert probe.connect(client, ip, PORT) is None
    ec2.authorize_security_group_ingress(GroupName="web", IpProtocol="tcp", FromPort=PORT, ToPort=PORT,
                                         CidrIp="0.0.0.0/0")
    opened = probe.until(client, ip, True, port=PORT)
    assert probe.connect(client, ip, PORT) == iid
    described = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
    public = described.get("PublicIpAddress", "")
    assert public and ipaddress.IPv4Address(public) in ipaddress.IPv4Network(public_range), described
    assert _from_host(public) == iid
    ec2.revoke_security_group_ingress(GroupName="web", IpProtocol="tcp", FromPort=PORT, ToPort=PORT,
                                      CidrIp="0.0.0.0/0")
    return opened, probe.until(client, ip, False, port=PORT)


def _lines(console: str, prefix: str) -> dict[str, str]:
    """``euca-net: <prefix> <key> <value>`` lines as {key: value}."""
    found = {}
    for line in console.replace("\r", "").splitlines():
        head = f"euca-net: {prefix} "
        if line.startswith(head):
            key, _, value = line[len(head):].partition(" ")
            found[key] = value
    return found


def _ns_out(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=False).stdout


def _absent(text: str, argv: list[str]) -> bool:
    return text not in _ns_out(argv)


def _check_segment(libvirt_daemon: Libvirtd, router_ns: str, iid: str, gateway: str) -> int:
    """MANAGED: the guest's port is on its group's segment on the node, ``eucabr<vlan>`` with the
    VXLAN ``vx<vlan>`` (VNI = the tag) and no address; the routing host has the same segment and
    holds the gateway. The tag."""
    port = _ns_out(libvirt_daemon.in_netns("ip", "-o", "link", "show", "dev", f"vn_{iid}"))
    found = re.search(r" master eucabr(\d+) ", port)
    assert found, port
    vlan = int(found.group(1))
    for where in (libvirt_daemon.in_netns("ip"), ["ip", "-n", router_ns]):
        vx = _ns_out([*where, "-d", "link", "show", "dev", f"vx{vlan}"])
        assert f"master eucabr{vlan} " in vx and f"vxlan id {vlan} " in vx, vx
    assert "inet " not in _ns_out(libvirt_daemon.in_netns("ip", "-4", "addr", "show", "dev", f"eucabr{vlan}"))
    assert f"inet {gateway}/27 " in _ns_out(["ip", "-n", router_ns, "-4", "addr", "show", "dev", f"eucabr{vlan}"])
    return vlan


@pytest.mark.parametrize("mode", MODES)
def test_guest_gets_dhcp_metadata_and_groups_from_the_agent(
        mode: str, guest_image: GuestImage, libvirt_daemon: Libvirtd, euca_libvirt_nodes: None, net_tools: None,
        node_links: tuple[dict[str, str], str], request: pytest.FixtureRequest, tmp_path: Path) -> None:
    import boto3
    import libvirt

    a, client = node_links
    router_ns = str(request.getfixturevalue("routing_host")) if mode == "MANAGED" else ""

    data, instances = tmp_path / "data", tmp_path / "instances"
    key = secrets.token_hex(16)
    nc_port, api_port = free_port(), free_port()
    nc_conf = tmp_path / "nc.conf"
    nc_conf.write_text(f'HYPERVISOR="qemu"\nINSTANCE_PATH="{instances}"\nVNET_BRIDGE="br0"\nNC_PORT="{nc_port}"\n'
                       + (f'VNET_MODE="MANAGED"\nVNET_SUBNET="{a["managed"]}"\nVNET_NETMASK="255.255.0.0"\n'
                          if mode == "MANAGED" else ""))  # MANAGED: the node plugs a guest into its segment
    cloud_conf = tmp_path / "eucalyptus.conf"
    cloud_conf.write_text(_cloud_conf(mode, a))
    added = euca("node", "add", "node01", "--url", f"http://127.0.0.1:{nc_port}", "--key", key,
                 "--data-dir", str(data))
    assert added.returncode == 0, added.stderr
    imported = euca("image", "import", "--kernel", str(guest_image.kernel), "--ramdisk", str(guest_image.initrd),
                    "--root", str(guest_image.root), "--name", "euca-test-guest", "--data-dir", str(data))
    assert imported.returncode == 0, imported.stderr
    emi = re.search(r"IMAGE\s+(emi-[0-9A-Fa-f]{8})\s+machine", imported.stdout)
    assert emi, imported.stdout

    api = f"http://{a['host']}:{api_port}"
    nc = Process("euca node-controller",
                 ["-m", "euca.cli", "node-controller", "--config", str(nc_conf), "--uri", libvirt_daemon.uri,
                  "--host", "127.0.0.1", "--port", str(nc_port), "--key", key], tmp_path / "nc.log")
    procs = [nc]
    conn = libvirt.open(libvirt_daemon.uri)
    try:
        nc.wait_for("node controller on")
        up = Process("euca up", ["-m", "euca.cli", "up", "--data-dir", str(data), "--host", a["host"],
                                 "--port", str(api_port), "--config", str(cloud_conf)], tmp_path / "up.log")
        procs.append(up)
        up.wait_for("EC2 API on")
        before = _ruleset(libvirt_daemon)
        agent_argv = [sys.executable, "-m", "euca.cli", "network-agent", "--cloud", api, "--node", "node01",
                      "--key", key, "--bridge", "br0", "--poll", "0.3"]
        # the node's network agent, in the node's (libvirtd's) network namespace
        agent = Process("euca network-agent", [
            "-c", "import os,sys; os.execvp(sys.argv[1], sys.argv[1:])",
            *libvirt_daemon.in_netns(*agent_argv, "--state-dir", str(tmp_path / "agent"),
                                     *_agent_argv(mode, a, "node" if mode == "MANAGED" else "router"))],
            tmp_path / "agent.log")
        procs.append(agent)
        if mode == "MANAGED":  # and the routing host's
            procs.append(Process("euca network-agent (routing host)", [
                "-c", "import os,sys; os.execvp(sys.argv[1], sys.argv[1:])",
                "ip", "netns", "exec", router_ns, *agent_argv, "--state-dir", str(tmp_path / "router"),
                *_agent_argv(mode, a, "router")], tmp_path / "router.log"))
        env = dict(line.removeprefix("export ").split("=", 1)
                   for line in (data / "eucarc").read_text().splitlines() if line.startswith("export "))
        ec2 = boto3.client("ec2", endpoint_url=api, region_name="eucalyptus",
                           aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                           aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])
        logs = tuple(procs)
        try:
            public_key = _public_key()
            ec2.import_key_pair(KeyName="guest-key", PublicKeyMaterial=public_key.encode())
            ec2.create_security_group(GroupName="web", Description="the guest's port")
            started = time.monotonic()
            inst = run_instances(ec2, emi.group(1), *logs, KeyName="guest-key", UserData=USER_DATA,
                                 SecurityGroups=["web"])[0]
            iid, private_ip = inst["InstanceId"], inst.get("PrivateIpAddress", "")  # SYSTEM: none known
            until(f"{iid}'s console", lambda: any(instances.glob(f"*/{iid}/console.log")), EC2_TIMEOUT, *logs)
            console = next(instances.glob(f"*/{iid}/console.log"))
            dom = conn.lookupByName(iid)
            if mode == "SYSTEM":
                _check_system(ec2, libvirt_daemon, console, dom, iid, before, agent, tmp_path / "agent", logs)
                return
            text = wait_for_line(console, "euca-net: done", BOOT_TIMEOUT + 60, alive=lambda: bool(dom.isActive()))
            served = time.monotonic() - started

            # DHCP: the address the cloud gave it, and its gateway: the cluster's router, or in
            # MANAGED-NOVLAN and MANAGED its group network's (its first address) on the routing host
            lease = re.search(r"euca-net: lease ip=(\S+) mask=(\S+) router=(\S*)", text)
            assert lease, text[-3000:]
            gateway = str(ipaddress.IPv4Network(f"{private_ip}/27", strict=False).network_address + 1)
            if mode in ("MANAGED-NOVLAN", "MANAGED"):
                assert lease.groups() == (private_ip, "27", gateway), text[-3000:]
            else:
                assert lease.groups() == (private_ip, "16", a["router"]), text[-3000:]
            if mode == "STATIC":
                assert private_ip == a["static"]
            # metadata, both ways, answered for this instance by its source address
            v1, v2 = _lines(text, "v1"), _lines(text, "v2")
            want = {"instance-id": iid, "openssh-key": f"{public_key} guest-key", "user-data": USER_DATA}
            assert v1 == want, text[-3000:]
            assert int(v2["token-length"]) > 20, text[-3000:]
            assert {k: v2[k] for k in v1} == v1, text[-3000:]
            assert v2["forged"] == "token refused", text[-3000:]
            assert "euca-net: listening 8080" in text

            probe = Lab("gnet")
            # where the group chains, sets and NAT are: on the node, or MANAGED's routing host
            rules_at = ["ip", "netns", "exec", router_ns] if mode == "MANAGED" else libvirt_daemon.in_netns()
            if mode == "STATIC":  # no groups: nothing is filtered
                probe.until(client, private_ip, True, port=PORT)
                assert probe.connect(client, private_ip, PORT) == iid
                opened = closed = 0.0
            elif mode == "MANAGED":
                vlan = _check_segment(libvirt_daemon, router_ns, iid, gateway)
                elastic = ec2.allocate_address()["PublicIp"]
                ec2.associate_address(PublicIp=elastic, InstanceId=iid)
                dnat = f"-d {elastic}/32 -j DNAT --to-destination {private_ip}"
                until(f"{elastic} NATed on the routing host", lambda: dnat in _ns_out([*rules_at, "iptables-save"]),
                      10.0, *logs)
                assert elastic not in _ns_out(libvirt_daemon.in_netns("iptables-save"))
                assert ":sg-" not in _ns_out(libvirt_daemon.in_netns("iptables-save"))  # the node filters nothing
                opened, closed = _open_and_close(ec2, probe, client, private_ip, iid, MANAGED_PUBLIC)
            else:
                opened, closed = _open_and_close(ec2, probe, client, private_ip, iid)

            ec2.terminate_instances(InstanceIds=[iid])
            until(f"{iid}'s domain destroyed", lambda: iid not in {d.name() for d in conn.listAllDomains()},
                  60.0, *logs)
            leases = tmp_path / ("router" if mode == "MANAGED" else "agent") / "dhcp-hosts"
            until("the ended instance's DHCP entry removed", lambda: private_ip not in leases.read_text(), 10.0,
                  *logs)
            if mode != "STATIC":
                assert "sg-" not in _ns_out([*rules_at, "ipset", "list", "-n"])
            if mode == "MANAGED":  # the group's last instance ended: its segment goes from both hosts
                for links in (libvirt_daemon.in_netns("ip", "link", "show"), ["ip", "-n", router_ns, "link", "show"]):
                    until(f"eucabr{vlan} removed", partial(_absent, f"eucabr{vlan}", links), 10.0, *logs)
            rules = "" if mode == "STATIC" else f"; port opened in {opened:.2f} s, closed in {closed:.2f} s"
            print(f"{mode}: DHCP lease, metadata v1 + v2 {served:.1f} s after RunInstances{rules}")
        finally:
            ec2.close()
    finally:
        for proc in reversed(procs):
            proc.stop()
        conn.close()


def _check_system(ec2: Any, libvirt_daemon: Libvirtd, console: Path, dom: Any, iid: str, before: tuple[str, str],
                  agent: Process, state: Path, logs: tuple[Process, ...]) -> None:
    """SYSTEM: the guest boots on the node's bridge and runs; the agent applied the views and ran
    nothing: the node's iptables and nftables rules are as they were before it started, and it
    started no dnsmasq."""
    wait_for_line(console, MARKER, BOOT_TIMEOUT, alive=lambda: bool(dom.isActive()))
    until(f"{iid} running", lambda: ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
          ["State"]["Name"] == "running", EC2_TIMEOUT, *logs)
    # its first view, and the one with the instance's group
    until("the agent's second view", lambda: agent.output().count("network view applied") >= 2, 10.0, *logs)
    applied = re.findall(r"network view applied \((\S+)\): (\d+) commands", agent.output())
    assert applied and all(found == ("SYSTEM", "0") for found in applied), agent.output()[-3000:]
    assert _ruleset(libvirt_daemon) == before
    assert not state.exists()  # no dnsmasq, no files
    assert dom.isActive()
    ec2.terminate_instances(InstanceIds=[iid])
    print(f"SYSTEM: booted to the marker; the agent applied {len(applied)} views with no commands")
