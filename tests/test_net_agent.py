"""The network agent for real, in network namespaces this test makes: a node namespace the agent
runs against, instances as namespaces on its bridge, a public client routed through it. A cloud
in a box (MANAGED-NOVLAN addresses, enforced EDGE-style on the node) supplies the view; the agent
polls it in a thread, as ``euca network-agent`` does."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from euca.core.config import Config
from euca.net.render import HostConfig
from tests.agent_kit import Running, run_agent, view_of
from tests.ec2_server import Box, running_box
from tests.netns import Lab, lab, net_tools, saved, sh

__all__ = ["net_tools"]
CONFIG = dataclasses.replace(Config(), vnet_subnet="10.77.0.0", vnet_netmask="255.255.0.0",
                             vnet_publicips="198.51.100.1-198.51.100.8", vnet_cloudip="127.0.0.1")
HOSTCONF = HostConfig(bridge="eucabr")


def start_agent(box: Box, lab_: Lab, state: Path) -> Running:
    return run_agent(lambda: view_of(box), lab_.host, HOSTCONF, state, mode="EDGE")


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Box]:
    with running_box(tmp_path / "cloud", config=CONFIG) as b:
        yield b


_images: dict[int, str] = {}


def launch(box: Box, group: str) -> dict[str, Any]:
    ec2 = box.client("alice")
    image = _images.get(id(box)) or _images.setdefault(id(box), box.image())
    return dict(ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, SecurityGroups=[group])["Instances"][0])


def mac_of(box: Box, instance_id: str) -> str:
    inst = box.cloud.instances.live(instance_id)
    assert inst is not None
    return inst.mac


def test_edge_groups_spoofing_elastic_ips_and_restart(net_tools: None, box: Box, tmp_path: Path) -> None:
    ec2 = box.client("alice")
    for name in ("web", "db"):
        ec2.create_security_group(GroupName=name, Description=name)
    web1, web2, db1 = launch(box, "web"), launch(box, "web"), launch(box, "db")
    with lab(f"eu{id(box) % 10000}") as net:
        running = start_agent(box, net, tmp_path / "agent")
        try:
            spaces = {}
            for inst in (web1, web2, db1):
                spaces[inst["InstanceId"]] = net.plug(inst["InstanceId"], mac_of(box, inst["InstanceId"]),
                                                      inst["PrivateIpAddress"], 16, "10.77.0.1", "eucabr")
            w1, _, d1 = (spaces[i["InstanceId"]] for i in (web1, web2, db1))
            ip = {k: i["PrivateIpAddress"] for k, i in (("web1", web1), ("web2", web2), ("db1", db1))}

            # closed until a rule opens it, and again after Revoke, each within two seconds
            assert net.connect(net.public, ip["web1"]) is None
            ec2.authorize_security_group_ingress(GroupName="web", IpProtocol="tcp", FromPort=8080, ToPort=8080,
                                                 CidrIp="0.0.0.0/0")
            assert net.until(net.public, ip["web1"], True) < 2.0
            ec2.revoke_security_group_ingress(GroupName="web", IpProtocol="tcp", FromPort=8080, ToPort=8080,
                                              CidrIp="0.0.0.0/0")
            assert net.until(net.public, ip["web1"], False) < 2.0

            # members of a group reach each other; other groups only through a rule naming them
            assert net.connect(w1, ip["web2"]) is not None
            assert net.connect(w1, ip["db1"]) is None
            ec2.authorize_security_group_ingress(GroupName="db", IpPermissions=[{
                "IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8080, "UserIdGroupPairs": [{"GroupName": "web"}]}])
            assert net.until(w1, ip["db1"], True) < 2.0
            assert net.connect(d1, ip["web1"]) is None
            assert net.connect(net.public, ip["db1"]) is None

            # a spoofed source address, then a spoofed MAC, are dropped at the bridge
            net.in_ns(w1, "ip", "addr", "add", "10.77.200.200/16", "dev", "eth0")
            assert net.connect(w1, ip["web2"], source="10.77.200.200") is None
            assert net.connect(w1, ip["web2"]) is not None
            net.in_ns(w1, "ip", "link", "set", "eth0", "address", "d0:0d:00:00:be:ef")
            net.in_ns(w1, "ip", "neigh", "flush", "all")
            assert net.connect(w1, ip["web2"]) is None
            net.in_ns(w1, "ip", "link", "set", "eth0", "address", mac_of(box, web1["InstanceId"]))

            # an elastic address reaches its instance from outside, and moves with AssociateAddress
            ec2.authorize_security_group_ingress(GroupName="web", IpProtocol="tcp", FromPort=8080, ToPort=8080,
                                                 CidrIp="192.0.2.0/24")
            net.until(net.public, ip["web1"], True)
            elastic = ec2.allocate_address()["PublicIp"]
            ec2.associate_address(PublicIp=elastic, InstanceId=web1["InstanceId"])
            deadline = time.monotonic() + 2
            while (net.connect(net.public, elastic) or "").split(" ")[0] != web1["InstanceId"]:
                assert time.monotonic() < deadline, "the elastic address did not reach web1 in 2 s"
            assert net.connect(net.public, elastic) == f"{web1['InstanceId']} 192.0.2.2"
            ec2.associate_address(PublicIp=elastic, InstanceId=web2["InstanceId"])
            deadline = time.monotonic() + 2
            while (net.connect(net.public, elastic) or "").split(" ")[0] != web2["InstanceId"]:
                assert time.monotonic() < deadline, "the elastic address did not move to web2 in 2 s"

            # an unchanged view changes nothing; a new agent rebuilds the same state
            before = saved(net)
            assert running.agent.step() is True and running.agent.host.commands == 0
            running.end()
            restarted = start_agent(box, net, tmp_path / "agent")
            assert saved(net) == before
            assert net.connect(net.public, elastic) is not None

            hosts = (tmp_path / "agent" / "dhcp-hosts").read_text()
            assert f"{mac_of(box, db1['InstanceId'])},{ip['db1']}" in hosts
            # when the instances end, their rules, sets and DHCP entries go
            ec2.terminate_instances(InstanceIds=[i["InstanceId"] for i in (web1, web2, db1)])
            deadline = time.monotonic() + 2
            while "sg-" in net.in_ns(net.host, "ipset", "list", "-n"):
                assert time.monotonic() < deadline, "group sets still there 2 s after the instances ended"
                time.sleep(0.05)
            assert ":sg-" not in net.in_ns(net.host, "iptables-save")
            assert "vn_i-" not in net.in_ns(net.host, "nft", "list", "ruleset", "bridge")
            assert (tmp_path / "agent" / "dhcp-hosts").read_text() == ""
            assert "198.51.100" not in net.in_ns(net.host, "iptables-save", "-t", "nat")
            restarted.end()
        finally:
            running.end()


def test_the_view_over_http_needs_a_registered_node_key(box: Box) -> None:
    from euca.net.agent import HttpView
    from euca.services.common import ADMIN

    with box.cloud.store.transaction() as tx:
        tx.put("node", "nc-agent", ADMIN, {"cores": 1, "memory": 512, "disk": 1, "url": "http://127.0.0.1:9",
                                           "key": "s3cret"})
        tx.changed("node")
    source = HttpView(box.url, "nc-agent", "s3cret")
    got = source()
    assert got is not None and got.mode == "MANAGED-NOVLAN" and got.metadata == "127.0.0.1:8773"
    assert source() is None  # unchanged: 304
    with pytest.raises(Exception, match="403"):
        HttpView(box.url, "nc-agent", "wrong")()


def test_an_address_reused_at_once_is_leased_to_its_new_instance(net_tools: None, box: Box, tmp_path: Path) -> None:
    """Private addresses are reused as soon as an instance ends; the ended one's lease must not keep
    the address from the next instance's MAC (dnsmasq refuses a configured address another MAC holds)."""
    ec2 = box.client("alice")
    first = launch(box, "default")
    with lab(f"lr{id(box) % 10000}") as net:
        running = start_agent(box, net, tmp_path / "agent")
        try:
            first_mac = mac_of(box, first["InstanceId"])
            ns = net.plug(first["InstanceId"], first_mac, "", 0, "", "eucabr")
            assert net.dhcp(ns).get("ip") == first["PrivateIpAddress"]
            leases = tmp_path / "agent" / "dnsmasq.leases"
            assert first_mac.lower() in leases.read_text()
            ec2.terminate_instances(InstanceIds=[first["InstanceId"]])
            deadline = time.monotonic() + 5
            while box.cloud.instances.live(first["InstanceId"]) is not None:
                assert time.monotonic() < deadline, "the first instance did not end"
                time.sleep(0.05)
            net.unplug(first["InstanceId"], ns)

            second = launch(box, "default")
            assert second["PrivateIpAddress"] == first["PrivateIpAddress"]  # the lowest free address again
            mac = mac_of(box, second["InstanceId"])
            deadline = time.monotonic() + 2
            while mac not in (tmp_path / "agent" / "dhcp-hosts").read_text():
                assert time.monotonic() < deadline, "the agent did not pick up the second instance"
                time.sleep(0.05)
            ns2 = net.plug(second["InstanceId"], mac, "", 0, "", "eucabr", ns_name="second")
            assert net.dhcp(ns2).get("ip") == second["PrivateIpAddress"]
            assert first_mac.lower() not in leases.read_text()
            assert running.agent.dhcp is not None and running.agent.dhcp.pruned == 1
        finally:
            running.end()


def test_public_addresses_go_on_the_public_interface(net_tools: None, box: Box, tmp_path: Path) -> None:
    """With VNET_PUBINTERFACE the node puts each public address it NATs there, so a client on that
    network reaches it by ARP, with no route to the node; the address goes when the instance ends,
    and addresses the agent did not put there stay."""
    ec2 = box.client("alice")
    ec2.create_security_group(GroupName="web", Description="web")
    ec2.authorize_security_group_ingress(GroupName="web", IpProtocol="tcp", FromPort=8080, ToPort=8080,
                                         CidrIp="192.0.2.0/24")
    inst = launch(box, "web")
    iid = inst["InstanceId"]
    public = box.cloud.cc.network.public_of(iid)
    assert public
    config = dataclasses.replace(HOSTCONF, pub_interface="up0")
    with lab(f"pa{id(box) % 10000}") as net:
        net.in_ns(net.host, "ip", "addr", "add", "198.51.100.200/32", "dev", "up0")  # the admin's, not ours
        running = run_agent(lambda: view_of(box), net.host, config, tmp_path, mode="EDGE")
        try:
            net.plug(iid, mac_of(box, iid), inst["PrivateIpAddress"], 16, "10.77.0.1", "eucabr")
            # the client knows no router for the public range: the addresses are on its link
            net.in_ns(net.public, "ip", "route", "del", "default")
            net.in_ns(net.public, "ip", "route", "add", "198.51.100.0/24", "dev", "eth0")
            assert f"{public}/32" in net.in_ns(net.host, "ip", "-4", "addr", "show", "dev", "up0", "label", "up0:eu")
            assert net.connect(net.public, public) == f"{iid} 192.0.2.2"

            ec2.terminate_instances(InstanceIds=[iid])
            deadline = time.monotonic() + 2
            while f"{public}/32" in net.in_ns(net.host, "ip", "-4", "addr", "show", "dev", "up0"):
                assert time.monotonic() < deadline, "the public address stayed 2 s after its instance ended"
                time.sleep(0.05)
            assert "198.51.100.200/32" in net.in_ns(net.host, "ip", "-4", "addr", "show", "dev", "up0")
        finally:
            running.end()


TOKEN = ("import http.client,sys\nc=http.client.HTTPConnection('169.254.169.254',80,timeout=3)\ntry:\n"
         " c.request(sys.argv[1],sys.argv[2],headers={'X-aws-ec2-metadata-token-ttl-seconds':'60'})\n"
         " r=c.getresponse();print(r.status,r.read().decode())\nexcept OSError as e: print('no',type(e).__name__)\n")


def test_imdsv2_tokens_go_no_further_than_the_hop_limit(net_tools: None, tmp_path: Path) -> None:
    """HttpPutResponseHopLimit as EC2 has it: the token's packets die that many routers past the
    instance. A container behind the instance (its namespace routed and masqueraded by the
    instance, as Docker does) is one router further: no token with the default limit of 1, one
    with 2; IMDSv1's GETs are not limited. The API is ``euca up`` on the host, routers away: its
    replies' TTL counts them from each request's SYN, whose TTL the node's agent sets as it enters."""
    import boto3

    from euca.net.agent import HttpView
    from tests.guest.procs import Process, euca, free_port

    n = os.getpid() % 50
    host_ip, node_ip, subnet = f"10.252.{n}.1", f"10.252.{n}.2", f"10.{130 + n}.0.0"
    conf = tmp_path / "eucalyptus.conf"
    conf.write_text(f'VNET_MODE="MANAGED-NOVLAN"\nVNET_SUBNET="{subnet}"\nVNET_NETMASK="255.255.0.0"\n'
                    f'VNET_CLOUDIP="{host_ip}"\nVNET_PUBLICIPS="203.0.113.30-203.0.113.40"\n')
    data, port, key = tmp_path / "data", free_port(), "hop-limit-key"
    with lab(f"hl{n}") as net:
        uplink = f"lvq{os.getpid()}"[:15]
        sh("ip", "link", "add", uplink, "type", "veth", "peer", "name", "up1", "netns", net.host)
        up: Process | None = None
        running: Running | None = None
        try:
            sh("ip", "addr", "add", f"{host_ip}/30", "dev", uplink)
            sh("ip", "link", "set", uplink, "up")
            sh("ip", "-n", net.host, "addr", "add", f"{node_ip}/30", "dev", "up1")
            sh("ip", "-n", net.host, "link", "set", "up1", "up")
            sh("ip", "-n", net.host, "route", "add", "default", "via", host_ip)
            sh("ip", "route", "add", f"{subnet}/16", "via", node_ip, "dev", uplink)
            up = Process("euca up", ["-m", "euca.cli", "up", "--data-dir", str(data), "--host", host_ip,
                                     "--port", str(port), "--config", str(conf), "--nodes", "1",
                                     "--boot-time", "0.2"], tmp_path / "up.log")
            up.wait_for("EC2 API on")
            added = euca("node", "add", "agent", "--url", "http://127.0.0.1:9", "--key", key,
                         "--data-dir", str(data))
            assert added.returncode == 0, added.stderr
            env = dict(line.removeprefix("export ").split("=", 1)
                       for line in (data / "eucarc").read_text().splitlines() if line.startswith("export "))
            api = f"http://{host_ip}:{port}"
            ec2 = boto3.client("ec2", endpoint_url=api, region_name="eucalyptus",
                               aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                               aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])
            iid = ec2.run_instances(ImageId=env["EUCA_DEFAULT_IMAGE"], MinCount=1, MaxCount=1)["Instances"][0][
                "InstanceId"]
            running = run_agent(HttpView(api, "agent", key), net.host, HOSTCONF, tmp_path / "agent", mode="EDGE")
            seen = HttpView(api, "agent", key)()
            assert seen is not None
            mac = next(i.mac for i in seen.instances if i.instance_id == iid)
            inst = net.plug(iid, mac, "", 0, "", "eucabr")
            assert net.dhcp(inst)
            container = net.ns("ctr")
            sh("ip", "-n", inst, "link", "add", "c0", "type", "veth", "peer", "name", "eth0", "netns", container)
            sh("ip", "-n", inst, "addr", "add", "172.31.255.1/30", "dev", "c0")
            sh("ip", "-n", inst, "link", "set", "c0", "up")
            net.in_ns(inst, "sysctl", "-qw", "net.ipv4.ip_forward=1")
            net.in_ns(inst, "iptables", "-t", "nat", "-A", "POSTROUTING", "-s", "172.31.255.0/30", "-j", "MASQUERADE")
            sh("ip", "-n", container, "addr", "add", "172.31.255.2/30", "dev", "eth0")
            sh("ip", "-n", container, "link", "set", "eth0", "up")
            sh("ip", "-n", container, "route", "add", "default", "via", "172.31.255.1")

            def ask(ns: str, method: str = "PUT", path: str = "/latest/api/token") -> str:
                return net.in_ns(ns, "python3", "-c", TOKEN, method, path).strip()

            assert ask(inst).startswith("200 ")
            assert ask(container) == "no TimeoutError"
            assert ask(container, "GET", "/latest/meta-data/instance-id") == f"200 {iid}"
            ec2.modify_instance_metadata_options(InstanceId=iid, HttpPutResponseHopLimit=2)
            assert ask(container).startswith("200 ")
        finally:
            if running is not None:
                running.end()
            if up is not None:
                up.stop()
            sh("ip", "link", "del", uplink, check=False)


def test_the_node_controller_runs_the_network_agent_beside_it(net_tools: None, tmp_path: Path) -> None:
    """``euca node-controller --network-agent``: the agent runs on the node controller's host (here
    a namespace), with the node's key and its eucalyptus.conf's settings: in MANAGED-NOVLAN a
    node's role, on VNET_BRIDGE (the bridge made, no address on it, the ports' bridge table, no
    group chains: the routing host has those). It ends with the node controller; in SYSTEM none runs."""
    import re
    import signal
    import sys

    from tests.guest.procs import Process, euca, free_port, until

    n = os.getpid() % 50
    host_ip, node_ip = f"10.253.{n}.1", f"10.253.{n}.2"
    cloud_conf = tmp_path / "eucalyptus.conf"
    cloud_conf.write_text(f'VNET_MODE="MANAGED-NOVLAN"\nVNET_SUBNET="10.{130 + n}.0.0"\nVNET_NETMASK="255.255.0.0"\n'
                          f'VNET_PUBLICIPS="203.0.113.30-203.0.113.40"\n')
    data, port, nc_port, key = tmp_path / "data", free_port(), free_port(), "nc-agent-key"
    with lab(f"nc{n}") as net:
        uplink = f"lvn{os.getpid()}"[:15]
        sh("ip", "link", "add", uplink, "type", "veth", "peer", "name", "up1", "netns", net.host)
        procs: list[Process] = []
        try:
            sh("ip", "addr", "add", f"{host_ip}/30", "dev", uplink)
            sh("ip", "link", "set", uplink, "up")
            sh("ip", "-n", net.host, "addr", "add", f"{node_ip}/30", "dev", "up1")
            sh("ip", "-n", net.host, "link", "set", "up1", "up")
            procs.append(Process("euca up", ["-m", "euca.cli", "up", "--data-dir", str(data), "--host", host_ip,
                                             "--port", str(port), "--config", str(cloud_conf)], tmp_path / "up.log"))
            procs[-1].wait_for("EC2 API on")
            added = euca("node", "add", "nc1", "--url", f"http://{node_ip}:{nc_port}", "--key", key,
                         "--data-dir", str(data))
            assert added.returncode == 0, added.stderr

            def node_controller(mode: str) -> Process:
                conf = tmp_path / f"nc-{mode}.conf"
                conf.write_text(f'VNET_MODE="{mode}"\nVNET_BRIDGE="eucabr"\nINSTANCE_PATH="{tmp_path / "inst"}"\n')
                return Process(f"euca node-controller ({mode})", [
                    "-c", "import os,sys; os.execvp(sys.argv[1], sys.argv[1:])",
                    "ip", "netns", "exec", net.host, sys.executable, "-m", "euca.cli", "node-controller", "--sim",
                    "--config", str(conf), "--host", node_ip, "--port", str(nc_port), "--key", key,
                    "--network-agent", f"http://{host_ip}:{port}", "--node-name", "nc1",
                    "--network-agent-args", "--poll 0.2 --state-dir " + str(tmp_path / "agent")],
                    tmp_path / f"nc-{mode}.log")

            nc = node_controller("MANAGED-NOVLAN")
            procs.append(nc)
            nc.wait_for("node controller on")
            pid = int(re.findall(r"network agent started \(pid (\d+)\)", nc.output())[0])
            until("the agent's first view", lambda: "network view applied (MANAGED-NOVLAN)" in nc.output(), 20.0,
                  *procs)
            assert "inet " not in net.in_ns(net.host, "ip", "-4", "addr", "show", "dev", "eucabr")
            assert "chain ports" in net.in_ns(net.host, "nft", "list", "table", "bridge", "euca")
            assert "EUCA_" not in net.in_ns(net.host, "iptables-save")
            nc.proc.send_signal(signal.SIGINT)
            nc.proc.wait(timeout=30)
            assert not os.path.exists(f"/proc/{pid}")  # ended and reaped with the node controller

            system = node_controller("SYSTEM")
            procs.append(system)
            system.wait_for("node controller on")
            assert "VNET_MODE is SYSTEM: no network agent" in system.output()
            assert "network agent started" not in system.output()
        finally:
            for proc in reversed(procs):
                proc.stop()
            sh("ip", "link", "del", uplink, check=False)
