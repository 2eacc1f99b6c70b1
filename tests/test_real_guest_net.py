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
network's gateway on the bridge) and STATIC (VNET_MACMAP's address; nothing filtered).

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
from pathlib import Path
from typing import Any

import pytest

from tests.guest.build_image import GuestImage
from tests.guest.fixtures import BOOT_TIMEOUT, wait_for_line
from tests.guest.libvirtd import Libvirtd
from tests.guest.procs import EC2_TIMEOUT, Process, euca, euca_libvirt_nodes, free_port, until
from tests.netns import Lab, net_tools

pytestmark = pytest.mark.real_guest
__all__ = ["euca_libvirt_nodes", "net_tools"]

PORT = 8080  # the guest's TCP service: it answers with its instance id
USER_DATA = "hello-from-user-data"
PUBLIC_RANGE = "203.0.113.0/27"  # VNET_PUBLICIPS: the host reaches them on its link to the node, by ARP


MODES = ("EDGE", "MANAGED-NOVLAN", "STATIC")
STATIC_MAC = "d0:0d:aa:00:00:01"


def _addresses() -> dict[str, str]:
    """This run's subnets, picked by PID so two runs on one machine do not fight over host routes."""
    n = os.getpid() % 50
    return {"subnet": f"10.{180 + n}.0.0", "router": f"10.{180 + n}.0.1", "static": f"10.{180 + n}.0.10",
            "host": f"10.250.{n}.1", "uplink": f"10.250.{n}.2", "client": f"10.251.{n}.2",
            "client_gw": f"10.251.{n}.1"}


@pytest.fixture(scope="module")
def node_links(libvirt_daemon: Libvirtd) -> Iterator[tuple[dict[str, str], str]]:
    """The node (libvirtd's namespace) linked to the host, which routes the instances' subnet into it,
    and a client namespace behind the node: the addresses, and the client's name."""
    a = _addresses()
    libvirt_daemon.link_to_host(f"{a['host']}/30", f"{a['uplink']}/30", [f"{a['subnet']}/16"], [PUBLIC_RANGE])
    client = libvirt_daemon.link_namespace(f"euca-gnet-{os.getpid()}", f"{a['client']}/30", a["client_gw"])
    yield a, client
    libvirt_daemon.unlink()


def _cloud_conf(mode: str, a: dict[str, str]) -> str:
    conf = (f'HYPERVISOR="qemu"\nNC_POLLING_FREQUENCY="6"\nVNET_SUBNET="{a["subnet"]}"\n'
            f'VNET_NETMASK="255.255.0.0"\nVNET_ROUTER="{a["router"]}"\nVNET_DNS="{a["router"]}"\n'
            f'VNET_CLOUDIP="{a["host"]}"\n')
    if mode == "STATIC":
        return conf + f'VNET_MODE="STATIC"\nVNET_MACMAP="{STATIC_MAC}={a["static"]}"\n'
    return conf + 'VNET_MODE="MANAGED-NOVLAN"\nVNET_PUBLICIPS="203.0.113.10-203.0.113.20"\n'


def _public_key() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate().public_key()
    return key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


def _run_instance(ec2: Any, image_id: str, *logs: Process, **extra: Any) -> dict[str, Any]:
    """RunInstances, retried while the node is DOWN: the cloud only learns of it at its first poll."""
    from botocore.exceptions import ClientError

    deadline = time.monotonic() + 60.0
    while True:
        try:
            found = ec2.run_instances(ImageId=image_id, MinCount=1, MaxCount=1, InstanceType="m1.small", **extra)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "InsufficientInstanceCapacity" or time.monotonic() > deadline:
                tails = "\n".join(f"--- {p.log.name}\n{p.output()[-3000:]}" for p in logs)
                raise AssertionError(f"RunInstances: {exc}\n{tails}") from exc
            time.sleep(1.0)
            continue
        return dict(found["Instances"][0])


def _from_host(ip: str) -> str | None:
    """What the guest's port answers to the host (upstream of the node), or None."""
    try:
        with socket.create_connection((ip, PORT), timeout=1.0) as conn:
            return conn.recv(64).decode().strip() or None
    except OSError:
        return None


def _open_and_close(ec2: Any, probe: Lab, client: str, ip: str, iid: str) -> tuple[float, float]:
    """The guest's port: closed, opened by a rule, closed again by its revocation, each within 2 s
    (``Lab.until`` fails beyond that); the seconds each took. While open, the guest's public
    address reaches it from the host: the node put it on its public interface and DNATs it."""
    assert probe.connect(client, ip, PORT) is None
    ec2.authorize_security_group_ingress(GroupName="web", IpProtocol="tcp", FromPort=PORT, ToPort=PORT,
                                         CidrIp="0.0.0.0/0")
    opened = probe.until(client, ip, True, port=PORT)
    assert probe.connect(client, ip, PORT) == iid
    described = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
    public = described.get("PublicIpAddress", "")
    assert public and ipaddress.IPv4Address(public) in ipaddress.IPv4Network(PUBLIC_RANGE), described
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


@pytest.mark.parametrize("mode", MODES)
def test_guest_gets_dhcp_metadata_and_groups_from_the_agent(
        mode: str, guest_image: GuestImage, libvirt_daemon: Libvirtd, euca_libvirt_nodes: None, net_tools: None,
        node_links: tuple[dict[str, str], str], tmp_path: Path) -> None:
    import boto3
    import libvirt

    a, client = node_links

    data, instances = tmp_path / "data", tmp_path / "instances"
    key = secrets.token_hex(16)
    nc_port, api_port = free_port(), free_port()
    nc_conf = tmp_path / "nc.conf"
    nc_conf.write_text(f'HYPERVISOR="qemu"\nINSTANCE_PATH="{instances}"\nVNET_BRIDGE="br0"\nNC_PORT="{nc_port}"\n')
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
    up: Process | None = None
    agent: Process | None = None
    conn = libvirt.open(libvirt_daemon.uri)
    try:
        nc.wait_for("node controller on")
        up = Process("euca up", ["-m", "euca.cli", "up", "--data-dir", str(data), "--host", a["host"],
                                 "--port", str(api_port), "--config", str(cloud_conf)], tmp_path / "up.log")
        up.wait_for("EC2 API on")
        # the node's network agent, in the node's (libvirtd's) network namespace
        agent = Process("euca network-agent", [
            "-c", "import os,sys; os.execvp(sys.argv[1], sys.argv[1:])",
            *libvirt_daemon.in_netns(sys.executable, "-m", "euca.cli", "network-agent", "--cloud", api,
                                     "--node", "node01", "--key", key, "--bridge", "br0",
                                     "--state-dir", str(tmp_path / "agent"), "--poll", "0.3",
                                     "--pub-interface", "uplink0",
                                     *(["--mode", "EDGE"] if mode == "EDGE" else []))],
            tmp_path / "agent.log")
        env = dict(line.removeprefix("export ").split("=", 1)
                   for line in (data / "eucarc").read_text().splitlines() if line.startswith("export "))
        ec2 = boto3.client("ec2", endpoint_url=api, region_name="eucalyptus",
                           aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                           aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])
        logs = (nc, up, agent)
        try:
            public_key = _public_key()
            ec2.import_key_pair(KeyName="guest-key", PublicKeyMaterial=public_key.encode())
            ec2.create_security_group(GroupName="web", Description="the guest's port")
            started = time.monotonic()
            inst = _run_instance(ec2, emi.group(1), *logs, KeyName="guest-key", UserData=USER_DATA,
                                 SecurityGroups=["web"])
            iid, private_ip = inst["InstanceId"], inst["PrivateIpAddress"]
            until(f"{iid}'s console", lambda: any(instances.glob(f"*/{iid}/console.log")), EC2_TIMEOUT, *logs)
            console = next(instances.glob(f"*/{iid}/console.log"))
            dom = conn.lookupByName(iid)
            text = wait_for_line(console, "euca-net: done", BOOT_TIMEOUT + 60, alive=lambda: bool(dom.isActive()))
            served = time.monotonic() - started

            # DHCP: the address the cloud gave it, and its gateway: the cluster's router, or in
            # MANAGED-NOVLAN its group network's (its first address) on the node as routing host
            lease = re.search(r"euca-net: lease ip=(\S+) mask=(\S+) router=(\S*)", text)
            assert lease, text[-3000:]
            if mode == "MANAGED-NOVLAN":
                network = ipaddress.IPv4Network(f"{private_ip}/27", strict=False)
                assert lease.groups() == (private_ip, "27", str(network.network_address + 1)), text[-3000:]
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
            if mode == "STATIC":  # no groups: nothing is filtered
                probe.until(client, private_ip, True, port=PORT)
                assert probe.connect(client, private_ip, PORT) == iid
                opened = closed = 0.0
            else:
                opened, closed = _open_and_close(ec2, probe, client, private_ip, iid)

            ec2.terminate_instances(InstanceIds=[iid])
            until(f"{iid}'s domain destroyed", lambda: iid not in {d.name() for d in conn.listAllDomains()},
                  60.0, *logs)
            leases = tmp_path / "agent" / "dhcp-hosts"
            until("the ended instance's DHCP entry removed", lambda: private_ip not in leases.read_text(), 10.0,
                  *logs)
            if mode != "STATIC":
                assert "sg-" not in subprocess.run(libvirt_daemon.in_netns("ipset", "list", "-n"),
                                                   capture_output=True, text=True, check=False).stdout
            rules = "" if mode == "STATIC" else f"; port opened in {opened:.2f} s, closed in {closed:.2f} s"
            print(f"{mode}: DHCP lease, metadata v1 + v2 {served:.1f} s after RunInstances{rules}")
        finally:
            ec2.close()
    finally:
        for proc in (agent, up, nc):
            if proc is not None:
                proc.stop()
        conn.close()
