"""The network agent in each of Eucalyptus's modes, with a cloud in a box supplying the view.

- MANAGED over VXLAN, for real: a routing host (the CC's: gateways, group chains, elastic NAT,
  DHCP) and two nodes, joined by a private network; each group a segment ``eucabr<vlan>`` with
  VNI = its tag. Members of a group reach each other across nodes; other groups only through a rule.
- MANAGED over 802.1q: this kernel has no 8021q, so the exact commands are checked instead.
- MANAGED-NOVLAN: the group chains on the routing host, every group network's gateway on one bridge.
- STATIC: each MAC of VNET_MACMAP gets exactly its address by DHCP; nothing is filtered, only the
  metadata address translated.
- SYSTEM: the agent does nothing.

Instances take their addresses with busybox's udhcpc from the agent's dnsmasq.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from euca.core.config import Config
from euca.net.agent import Agent
from euca.net.dhcp import Dhcp
from euca.net.host import CommandError, Host
from euca.net.render import NAT_POST, NAT_PRE, HostConfig, render
from euca.net.view import NetView, parse_view
from tests.agent_kit import Running, run_agent, view_of
from tests.ec2_server import Box, running_box
from tests.netns import Lab, lab, net_tools, sh

__all__ = ["net_tools"]
PUBLIC = "198.51.100.1-198.51.100.8"


@pytest.fixture
def agents() -> Iterator[list[Running]]:
    started: list[Running] = []
    yield started
    for running in started:
        running.end()


def start_agent(box: Box, ns: str, config: HostConfig, state: Path, started: list[Running]) -> Running:
    started.append(run_agent(lambda: view_of(box), ns, config, state))
    return started[-1]


def launch(box: Box, group: str, image: str) -> dict[str, Any]:
    ec2 = box.client("alice")
    return dict(ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, SecurityGroups=[group])["Instances"][0])


def mac_of(box: Box, instance_id: str) -> str:
    inst = box.cloud.instances.live(instance_id)
    assert inst is not None
    return inst.mac


def network_of(box: Box, instance_id: str) -> tuple[int, str, str]:
    """(vlan, netmask, gateway) of the instance's group network, from the view."""
    view = view_of(box)
    inst = next(i for i in view.instances if i.instance_id == instance_id)
    group = next(g for g in view.groups if g.group_id == inst.groups[0])
    return group.vlan, group.netmask, group.gateway


def eventually(what: str, check: Any, seconds: float = 2.0) -> float:
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > seconds:
            raise AssertionError(f"{what}: not within {seconds} s")
        time.sleep(0.05)
    return time.monotonic() - started


def groups_and_instances(box: Box) -> tuple[dict[str, dict[str, Any]], Any]:
    ec2 = box.client("alice")
    for name in ("web", "db"):
        ec2.create_security_group(GroupName=name, Description=name)
    image = box.image()
    made = {"web1": launch(box, "web", image), "web2": launch(box, "web", image), "db1": launch(box, "db", image)}
    return made, ec2


def check_groups_and_elastic_ip(box: Box, net: Lab, ec2: Any, spaces: dict[str, str],
                                made: dict[str, dict[str, Any]]) -> None:
    """Members of one group reach each other, other groups only through a rule naming them, and an
    elastic address reaches its instance from outside with the caller's own address; going out, the
    instance leaves with its elastic address, towards other instances with its own."""
    ip = {k: str(i["PrivateIpAddress"]) for k, i in made.items()}
    assert net.connect(spaces["web1"], ip["web2"]) == f"{made['web2']['InstanceId']} {ip['web1']}"
    assert net.connect(spaces["web1"], ip["db1"]) is None
    ec2.authorize_security_group_ingress(GroupName="db", IpPermissions=[{
        "IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8080, "UserIdGroupPairs": [{"GroupName": "web"}]}])
    assert net.until(spaces["web1"], ip["db1"], True) < 2.0
    assert net.connect(spaces["db1"], ip["web1"]) is None
    assert net.connect(net.public, ip["web1"]) is None

    ec2.authorize_security_group_ingress(GroupName="web", IpProtocol="tcp", FromPort=8080, ToPort=8080,
                                         CidrIp="192.0.2.0/24")
    elastic = ec2.allocate_address()["PublicIp"]
    ec2.associate_address(PublicIp=elastic, InstanceId=made["web1"]["InstanceId"])
    eventually("the elastic address reaching web1",
               lambda: net.connect(net.public, elastic, timeout=0.3) == f"{made['web1']['InstanceId']} 192.0.2.2")
    assert net.connect(net.public, ip["db1"]) is None
    net.listen(net.public, 8081, "outside")
    eventually("a listener outside", lambda: net.connect(spaces["db1"], "192.0.2.2", 8081) is not None)
    assert net.connect(spaces["web1"], "192.0.2.2", 8081) == f"outside {elastic}"
    db1 = ec2.describe_instances(InstanceIds=[made["db1"]["InstanceId"]])["Reservations"][0]["Instances"][0]
    assert net.connect(spaces["db1"], "192.0.2.2", 8081) == f"outside {db1.get('PublicIpAddress', ip['db1'])}"
    assert net.connect(spaces["web1"], ip["web2"]) == f"{made['web2']['InstanceId']} {ip['web1']}"


# --- MANAGED over VXLAN ----------------------------------------------------------------------------

MANAGED = dataclasses.replace(Config(), vnet_mode="MANAGED", vnet_subnet="10.78.0.0", vnet_netmask="255.255.0.0",
                              vnet_addrspernet=32, vnet_publicips=PUBLIC, vnet_cloudip="127.0.0.1")
UNDERLAY = {"cc": "10.99.0.1", "n1": "10.99.0.2", "n2": "10.99.0.3"}


def test_managed_segments_over_vxlan_between_two_nodes(net_tools: None, tmp_path: Path,
                                                       agents: list[Running]) -> None:
    with running_box(tmp_path / "cloud", config=MANAGED) as box, lab(f"mv{os.getpid() % 1000}") as net:
        made, ec2 = groups_and_instances(box)
        # the private network: the routing host bridges the nodes' private interfaces
        cc = net.host
        sh("ip", "-n", cc, "link", "add", "priv", "type", "bridge")
        sh("ip", "-n", cc, "link", "set", "priv", "up")
        sh("ip", "-n", cc, "addr", "add", f"{UNDERLAY['cc']}/24", "dev", "priv")
        nodes = {}
        for name in ("n1", "n2"):
            nodes[name] = net.ns(name)
            sh("ip", "-n", nodes[name], "link", "add", "eth1", "type", "veth", "peer", "name", f"p{name}", "netns", cc)
            sh("ip", "-n", cc, "link", "set", f"p{name}", "master", "priv", "up")
            sh("ip", "-n", nodes[name], "addr", "add", f"{UNDERLAY[name]}/24", "dev", "eth1")
            sh("ip", "-n", nodes[name], "link", "set", "eth1", "up")

        def host_config(name: str) -> HostConfig:
            return HostConfig(priv_interface="priv" if name == "cc" else "eth1", segments="vxlan",
                              vxlan_local=UNDERLAY[name], router=name == "cc",
                              vxlan_remotes=tuple(a for n, a in sorted(UNDERLAY.items()) if n != name))

        start_agent(box, cc, host_config("cc"), tmp_path / "cc", agents)
        for name, ns in nodes.items():
            start_agent(box, ns, host_config(name), tmp_path / name, agents)

        # each group in use is a segment on every host; only the routing host holds its gateway
        tags = {k: network_of(box, i["InstanceId"]) for k, i in made.items()}
        assert tags["web1"][0] == tags["web2"][0] != tags["db1"][0]
        for ns in (cc, *nodes.values()):
            links = sh("ip", "-n", ns, "-d", "link", "show")
            for vlan, _, _ in tags.values():
                assert f"vx{vlan}:" in links and f"vxlan id {vlan} " in links and f"eucabr{vlan}:" in links
        for vlan, _, gateway in tags.values():
            assert gateway in sh("ip", "-n", cc, "-4", "addr", "show", "dev", f"eucabr{vlan}")
            for ns in nodes.values():
                assert "inet " not in sh("ip", "-n", ns, "-4", "addr", "show", "dev", f"eucabr{vlan}")
        assert ":sg-" not in sh("ip", "netns", "exec", nodes["n1"], "iptables-save")

        # web1 on one node, web2 and db1 on the other; each takes its address by DHCP across the segment
        where = {"web1": "n1", "web2": "n2", "db1": "n2"}
        spaces = {}
        for k, inst in made.items():
            iid = inst["InstanceId"]
            spaces[k] = net.plug(iid, mac_of(box, iid), "", 0, "", f"eucabr{tags[k][0]}", node=nodes[where[k]])
            lease = net.dhcp(spaces[k])
            assert lease.get("ip") == inst["PrivateIpAddress"], lease
            assert lease["router"] == tags[k][2] and lease["subnet"] == tags[k][1] == "255.255.255.224"
        check_groups_and_elastic_ip(box, net, ec2, spaces, made)

        # when a group's last instance ends, its segment goes from every host
        ec2.terminate_instances(InstanceIds=[made["db1"]["InstanceId"]])
        db_bridge = f"eucabr{tags['db1'][0]}"
        for ns in (cc, *nodes.values()):
            eventually(f"{db_bridge} removed", lambda ns=ns: db_bridge not in sh("ip", "-n", ns, "link", "show"))


# --- MANAGED over 802.1q: the commands ----------------------------------------------------------------

class Recorder:
    """A host that records the commands it is given; devices come and go with ``ip link add/del``."""

    def __init__(self, devices: Sequence[str] = ("eth1",)) -> None:
        self.devices = set(devices)
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str], stdin: str = "") -> str:
        argv = list(argv)
        self.calls.append(argv)
        if argv[:3] == ["ip", "link", "show"]:
            if argv[-1] not in self.devices:
                raise CommandError(f"Device \"{argv[-1]}\" does not exist.")
        elif argv[:4] == ["ip", "-o", "link", "show"]:
            return "".join(f"{n}: {d}: <BROADCAST,UP>\n" for n, d in enumerate(sorted(self.devices))
                           if d.startswith("eucabr"))
        elif argv[:3] == ["ip", "link", "add"]:
            self.devices.add(argv[argv.index("name") + 1] if "name" in argv else argv[3])
        elif argv[:3] == ["ip", "link", "del"]:
            self.devices.discard(argv[3])
        return ""

    def links(self) -> list[list[str]]:
        """The commands that change links and addresses."""
        return [c for c in self.calls if c[0] == "ip" and c[1:3] != ["link", "show"] and c[1] not in ("-o",)]


def managed_view(groups: int) -> NetView:
    doc: dict[str, Any] = {"version": 1, "mode": "MANAGED",
                           "network": {"subnet": "10.78.0.0", "netmask": "255.255.0.0"}, "groups": [], "instances": []}
    for g in range(groups):
        doc["groups"].append({"id": f"sg-0000000{g}", "vlan": 10 + g, "network": f"10.78.0.{32 * g}",
                              "netmask": "255.255.255.224", "gateway": f"10.78.0.{32 * g + 1}", "rules": []})
        doc["instances"].append({"id": f"i-0000000{g}", "mac": f"d0:0d:00:00:00:0{g}", "private_ip":
                                 f"10.78.0.{32 * g + 2}", "groups": [f"sg-0000000{g}"]})
    return parse_view(doc)


@pytest.mark.parametrize("router", [True, False])
def test_managed_over_8021q_runs_exactly_these_commands(router: bool, tmp_path: Path) -> None:
    recorder = Recorder()
    config = HostConfig(priv_interface="eth1", segments="vlan", router=router)
    agent = Agent(lambda: None, Host(recorder), config, None)
    agent.apply(managed_view(2))
    expected = []
    for tag in (10, 11):
        expected += [["ip", "link", "add", "link", "eth1", "name", f"eth1.{tag}", "type", "vlan", "id", str(tag)],
                     ["ip", "link", "add", f"eucabr{tag}", "type", "bridge", "stp_state", "0", "forward_delay", "200"],
                     ["ip", "link", "set", f"eth1.{tag}", "master", f"eucabr{tag}", "up"]]
    for tag, gateway in ((10, "10.78.0.1/27"), (11, "10.78.0.33/27")):
        expected.append(["ip", "link", "set", f"eucabr{tag}", "up"])
        if router:
            expected.append(["ip", "addr", "add", gateway, "dev", f"eucabr{tag}"])
    assert recorder.links() == expected
    assert any(c[0] == "iptables-restore" for c in recorder.calls) is router
    assert any(c[:2] == ["nft", "-f"] for c in recorder.calls)  # the ports' bridge table, on either

    # the second group's last instance ends: its sub-interface and bridge go, nothing else changes
    recorder.calls.clear()
    agent.apply(managed_view(1))
    assert [c for c in recorder.links() if c[2] == "del"] == [["ip", "link", "del", "eth1.11"],
                                                              ["ip", "link", "del", "eucabr11"]]
    assert ["ip", "link", "add", "link", "eth1", "name", "eth1.10", "type", "vlan", "id", "10"] not in recorder.calls


# --- MANAGED-NOVLAN -------------------------------------------------------------------------------

NOVLAN = dataclasses.replace(MANAGED, vnet_mode="MANAGED-NOVLAN", vnet_subnet="10.76.0.0")


def test_managed_novlan_routes_between_group_networks_on_one_bridge(net_tools: None, tmp_path: Path,
                                                                    agents: list[Running]) -> None:
    with running_box(tmp_path / "cloud", config=NOVLAN) as box, lab(f"mn{os.getpid() % 1000}") as net:
        made, ec2 = groups_and_instances(box)
        start_agent(box, net.host, HostConfig(bridge="eucabr"), tmp_path / "agent", agents)
        spaces = {}
        for k, inst in made.items():
            iid = inst["InstanceId"]
            spaces[k] = net.plug(iid, mac_of(box, iid), "", 0, "", "eucabr")
            lease = net.dhcp(spaces[k])
            _, netmask, gateway = network_of(box, iid)
            assert lease.get("ip") == inst["PrivateIpAddress"], lease
            assert (lease["router"], lease["subnet"]) == (gateway, netmask) and netmask == "255.255.255.224"
        addresses = sh("ip", "-n", net.host, "-4", "addr", "show", "dev", "eucabr")
        assert all(network_of(box, i["InstanceId"])[2] in addresses for i in made.values())
        assert "eucabr1" not in sh("ip", "-n", net.host, "link", "show")  # no segments
        check_groups_and_elastic_ip(box, net, ec2, spaces, made)


# --- STATIC ----------------------------------------------------------------------------------------

MACMAP = {"d0:0d:aa:00:00:01": "10.75.0.10", "d0:0d:aa:00:00:02": "10.75.0.11"}
STATIC = dataclasses.replace(Config(), vnet_mode="STATIC", vnet_subnet="10.75.0.0", vnet_netmask="255.255.255.0",
                             vnet_router="10.75.0.1", vnet_dns="10.75.0.1",
                             vnet_macmap=" ".join(f"{m}={i}" for m, i in MACMAP.items()))


def test_static_gives_each_mac_its_address_by_dhcp(net_tools: None, tmp_path: Path, agents: list[Running]) -> None:
    with running_box(tmp_path / "cloud", config=STATIC) as box, lab(f"st{os.getpid() % 1000}") as net:
        made = launch(box, "default", box.image())
        iid = made["InstanceId"]
        mac = mac_of(box, iid)
        assert MACMAP[mac] == made["PrivateIpAddress"]
        start_agent(box, net.host, HostConfig(bridge="eucabr"), tmp_path / "agent", agents)
        ns = net.plug(iid, mac, "", 0, "", "eucabr")
        lease = net.dhcp(ns)
        assert lease.get("ip") == MACMAP[mac], lease
        assert (lease["subnet"], lease["router"], lease["dns"]) == ("255.255.255.0", "10.75.0.1", "10.75.0.1")
        assert net.connect(net.host, MACMAP[mac]) == f"{iid} 10.75.0.1"
        # a MAC no running instance has gets nothing, even one VNET_MACMAP names
        other = next(m for m in MACMAP if m != mac)
        stranger = net.plug("i-0badf00d", other, "", 0, "", "eucabr")
        assert net.dhcp(stranger, timeout=3) == {}
        # nothing is filtered or translated
        assert "EUCA_" not in sh("ip", "netns", "exec", net.host, "iptables-save")
        assert "sg-" not in sh("ip", "netns", "exec", net.host, "ipset", "list", "-n")
        # but with VNET_CLOUDIP the instances reach the metadata service, with their own address
        desired = render(dataclasses.replace(view_of(box), metadata="10.75.0.254:8773"), HostConfig())
        assert desired.nat[NAT_PRE] == [f"-A {NAT_PRE} -d 169.254.169.254/32 -p tcp -m tcp --dport 80 "
                                        "-j DNAT --to-destination 10.75.0.254:8773"]
        assert desired.nat[NAT_POST] == [f"-A {NAT_POST} -d 10.75.0.254/32 -p tcp -m tcp --dport 8773 -j RETURN"]
        assert not desired.filter and not desired.sets and not desired.bridge_filter


# --- SYSTEM ----------------------------------------------------------------------------------------

def test_system_mode_does_nothing(tmp_path: Path) -> None:
    recorder = Recorder()
    view = parse_view({"version": 1, "mode": "SYSTEM", "network": {}, "groups": [{"id": "sg-00000001"}],
                       "instances": [{"id": "i-00000001", "mac": "d0:0d:00:00:00:01", "private_ip": "10.0.0.5",
                                      "groups": ["sg-00000001"]}]})
    config = HostConfig()
    dhcp = Dhcp(tmp_path / "dhcp", config)
    agent = Agent(lambda: view, Host(recorder), config, dhcp)
    assert agent.step() is True
    assert recorder.calls == [] and dhcp.process is None and not (tmp_path / "dhcp").exists()
