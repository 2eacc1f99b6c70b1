"""The cluster controller around the kernels: nodes, policies, reservations, networks, power, restore."""

from __future__ import annotations

import pytest

from euca.cluster import ClusterController, Placed, ResourceReport, RunRequest, VmTypes
from euca.core.config import Config, load_config
from pyx.errors import Conflict, Exhausted, InsufficientCapacity

FULL = ResourceReport(4, 2048, 40, 4, 2048, 40, 0)  # an empty node: 4 cores, 2 GB, 40 GB


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def cluster(text: str = "", nodes: int = 3, clock: Clock | None = None,
            report: ResourceReport = FULL) -> ClusterController:
    cc = ClusterController(load_config(text=text), clock=clock or Clock())
    for i in range(nodes):
        cc.nodes.register(f"node-{i}", report=report)
    return cc


def ids(n: int, start: int = 0) -> list[str]:
    return [f"i-{start + k:08X}" for k in range(n)]


def free_counts(cc: ClusterController) -> dict[str, int]:
    return {a.name: a.free for a in cc.availability()}


def test_a_node_is_down_until_it_reports_and_overrides_replace_its_maximum() -> None:
    cc = ClusterController(load_config(text='MAX_CORES="2"\nMAX_MEM="1024"'))
    cc.nodes.register("node-a")
    assert cc.nodes.state("node-a") == "DOWN"
    assert free_counts(cc)["m1.small"] == 0
    cc.nodes.report("node-a", ResourceReport(8, 4096, 40, 7, 3840, 35, 1), now=1.0)
    assert cc.nodes.state("node-a") == "UP"
    # MAX_* replace the detected maximum; what is in use (1 core, 256 MB, 5 GB) stays in use.
    assert cc.placement.max(0) == (2, 1024, 40)
    assert cc.placement.free(0) == (1, 768, 35)
    cc.nodes.unreachable("node-a", now=2.0)
    assert cc.nodes.state("node-a") == "DOWN"
    with pytest.raises(ValueError, match="already registered"):
        cc.nodes.register("node-a")


def test_schedpolicy_roundrobin_takes_turns_and_greedy_fills_the_first_node() -> None:
    rr = cluster('SCHEDPOLICY="ROUNDROBIN"')
    launches = rr.run(RunRequest(ids(4), "m1.small", min_count=4))
    assert [launch.node for launch in launches] == ["node-0", "node-1", "node-2", "node-0"]
    greedy = cluster('SCHEDPOLICY="GREEDY"')
    launches = greedy.run(RunRequest(ids(5), "m1.small", min_count=5))
    assert [launch.node for launch in launches] == ["node-0"] * 4 + ["node-1"]


def test_a_reservation_below_its_minimum_takes_nothing() -> None:
    cc = cluster()
    before = free_counts(cc)
    with pytest.raises(InsufficientCapacity, match="Not enough resources"):
        cc.run(RunRequest(ids(7), "c1.xlarge", min_count=7))  # 2 GB each: one per node
    assert free_counts(cc) == before
    assert cc.running() == []
    launches = cc.run(RunRequest(ids(7), "c1.xlarge", min_count=2))
    assert len(launches) == 3
    assert free_counts(cc)["c1.xlarge"] == 0


def test_terminate_gives_capacity_back() -> None:
    cc = cluster()
    before = free_counts(cc)
    launches = cc.run(RunRequest(ids(3), "m1.large", min_count=3))
    assert free_counts(cc) != before
    for launch in launches:
        cc.terminate(launch.instance_id)
    assert free_counts(cc) == before
    with pytest.raises(KeyError):
        cc.terminate(launches[0].instance_id)


def test_managed_mode_gives_each_group_a_vlan_and_network() -> None:
    cc = cluster('VNET_MODE="MANAGED"')
    web = cc.run(RunRequest(ids(2), "m1.small", 2, account="alice", group="web"))
    db = cc.run(RunRequest(ids(1, 10), "m1.small", 1, account="alice", group="db"))
    # VLAN v owns SUBNET + (v - 2) * ADDRSPERNET; the first tag is 10; hosts start at index 2.
    assert [(launch.net.vlan, launch.net.private_ip) for launch in web] == [(10, "172.19.1.2"), (10, "172.19.1.3")]
    assert (db[0].net.vlan, db[0].net.private_ip) == (11, "172.19.1.34")
    net = cc.network.group_network("alice", "web")
    assert net is not None
    assert (net.network, net.gateway, net.broadcast) == ("172.19.1.0", "172.19.1.1", "172.19.1.31")
    assert web[0].net.mac == "d0:0d:00:00:00:00"
    for launch in web:
        cc.terminate(launch.instance_id)
    assert cc.network.group_network("alice", "web") is None
    again = cc.run(RunRequest(ids(1, 20), "m1.small", 1, account="bob", group="default"))
    assert again[0].net.vlan == 10


def test_running_out_of_group_addresses_rolls_the_reservation_back() -> None:
    cc = cluster('VNET_MODE="MANAGED-NOVLAN"\nVNET_ADDRSPERNET="16"', nodes=4)
    before = free_counts(cc)
    with pytest.raises(Exhausted, match="private addresses"):
        cc.run(RunRequest(ids(14), "m1.small", min_count=14))  # hosts 2..14: 13 per network
    assert free_counts(cc) == before
    assert cc.network.usage()["vlans"][0] == 0
    launches = cc.run(RunRequest(ids(14), "m1.small", min_count=5))
    assert len(launches) == 13
    assert free_counts(cc)["m1.small"] == before["m1.small"] - 13


def test_vlan_tags_run_out_with_eucalyptus_message() -> None:
    cc = cluster('VNET_MODE="MANAGED"\nVNET_VLANMIN="10"\nVNET_VLANMAX="11"')
    cc.run(RunRequest(ids(1), "m1.small", 1, group="a"))
    cc.run(RunRequest(ids(1, 1), "m1.small", 1, group="b"))
    with pytest.raises(Exhausted, match="Not enough resources available: vlan tags"):
        cc.run(RunRequest(ids(1, 2), "m1.small", 1, group="c"))
    assert len(cc.running()) == 2


def test_static_mode_hands_out_macmap_pairs_first_come() -> None:
    cc = cluster('VNET_MODE="STATIC"\nVNET_MACMAP="AA:DD:11:CE:FF:ED=192.168.1.3 AA:DD:11:CE:FF:EE=192.168.1.4"')
    launches = cc.run(RunRequest(ids(2), "m1.small", 2))
    assert [(launch.net.mac, launch.net.private_ip) for launch in launches] == [
        ("aa:dd:11:ce:ff:ed", "192.168.1.3"), ("aa:dd:11:ce:ff:ee", "192.168.1.4")]
    with pytest.raises(Exhausted):
        cc.run(RunRequest(ids(1, 5), "m1.small", 1))
    cc.terminate(launches[0].instance_id)
    assert cc.run(RunRequest(ids(1, 6), "m1.small", 1))[0].net.private_ip == "192.168.1.3"


def test_system_mode_leaves_addresses_to_outside_dhcp() -> None:
    cc = cluster('VNET_MODE="SYSTEM"')
    launch = cc.run(RunRequest(["i-3A4B5C6D"], "m1.small", 1))[0]
    assert (launch.net.mac, launch.net.private_ip) == ("d0:0d:3a:4b:5c:6d", "0.0.0.0")
    with pytest.raises(Exception, match="MANAGED"):
        cc.network.allocate_public()


def test_public_addresses_associate_and_follow_their_instance() -> None:
    cc = cluster('VNET_PUBLICIPS="198.51.100.10-11"')
    launch = cc.run(RunRequest(ids(1), "m1.small", 1))[0]
    first = cc.network.allocate_public()
    assert first == "198.51.100.10"
    assert cc.network.allocate_public() == "198.51.100.11"
    with pytest.raises(Exhausted, match="public addresses"):
        cc.network.allocate_public()
    cc.network.associate(first, launch.instance_id)
    assert cc.network.public_of(launch.instance_id) == first
    cc.terminate(launch.instance_id)
    assert cc.network.public_of(launch.instance_id) is None
    cc.network.release_public(first)
    assert cc.network.allocate_public() == first


def test_powersave_sleeps_idle_nodes_and_wakes_one_only_when_needed() -> None:
    clock = Clock()
    cc = cluster('SCHEDPOLICY="POWERSAVE"', nodes=2, clock=clock, report=ResourceReport(4, 4096, 40, 4, 4096, 40))
    launch = cc.run(RunRequest(ids(1), "m1.large", 1))[0]
    assert launch.node == "node-0"
    clock.now = 301.0
    plan = cc.tick()
    assert plan.sleep == (1,)
    assert cc.nodes.state("node-1") == "ASLEEP"
    # node-0 still has room for a small instance: node-1 stays asleep.
    assert cc.run(RunRequest(ids(1, 1), "m1.small", 1))[0].node == "node-0"
    assert cc.nodes.state("node-1") == "ASLEEP"
    # No awake node has the two cores of a c1.xlarge: the sleeping node is woken for it.
    assert cc.run(RunRequest(ids(1, 2), "c1.xlarge", 1))[0].node == "node-1"
    assert cc.nodes.state("node-1") == "WAKING"
    clock.now = 700.0
    assert cc.tick().down == (1,)
    assert cc.nodes.state("node-1") == "DOWN"
    cc.nodes.report("node-1", ResourceReport(4, 2048, 40, 2, 0, 30, 1), now=clock.now)
    assert cc.nodes.state("node-1") == "UP"


def test_other_policies_never_power_nodes_down() -> None:
    clock = Clock()
    cc = cluster('SCHEDPOLICY="GREEDY"', nodes=2, clock=clock)
    clock.now = 10_000.0
    assert cc.tick().sleep == ()
    assert cc.nodes.state("node-1") == "UP"


def test_cacheaware_prefers_a_node_that_holds_the_image() -> None:
    cc = cluster('SCHEDPOLICY="CACHEAWARE"\nSCHEDPOLICY_FALLBACK="GREEDY"')
    assert cc.images.fetched(2, "emi-12345678", 100 * 1024 * 1024, now=0.0) == []
    launch = cc.run(RunRequest(ids(1), "m1.small", 1, image_id="emi-12345678"))[0]
    assert (launch.node, launch.image_cached) == ("node-2", True)
    other = cc.run(RunRequest(ids(1, 1), "m1.small", 1, image_id="emi-87654321"))[0]
    assert (other.node, other.image_cached) == ("node-0", False)


def test_describe_lines_use_the_eucalyptus_format() -> None:
    cc = cluster(nodes=2)
    lines = cc.describe_lines()
    assert lines[0] == "cluster01"
    small = next(line for line in lines if "m1.small" in line)
    # 2 nodes x min(4 cores, 2048/256 MB, 40/5 GB) = 8
    assert small == "|- m1.small      0008 / 0008   1    256     5"
    xlarge = next(line for line in lines if "c1.xlarge" in line)
    assert xlarge == "|- c1.xlarge     0002 / 0002   2   2048    10"


def test_restore_rebuilds_capacity_and_networks_and_reports_clashes() -> None:
    cc = cluster('VNET_MODE="MANAGED"')
    cc.run(RunRequest(ids(3), "m1.small", 3, group="web"))
    records = cc.running()
    expected = free_counts(cc)
    fresh = cluster('VNET_MODE="MANAGED"')
    clash = Placed("i-000000FF", "node-0", "m1.small", records[0].net.__class__(
        "i-000000FF", "d0:0d:00:00:00:ff", records[0].net.private_ip, 10, "admin-web"))
    problems = fresh.restore([*records, clash, records[0]])
    assert free_counts(fresh) == expected
    assert len(fresh.running()) == 3
    assert len(problems) == 2
    # The restored pools go on where the old ones stopped: no address is handed out twice.
    nxt = fresh.run(RunRequest(ids(1, 50), "m1.small", 1, group="web"))[0]
    assert nxt.net.private_ip not in {r.net.private_ip for r in records}


def test_duplicate_instance_ids_are_refused() -> None:
    cc = cluster()
    cc.run(RunRequest(ids(1), "m1.small", 1))
    with pytest.raises(Conflict):
        cc.run(RunRequest(ids(1), "m1.small", 1))
    with pytest.raises(KeyError, match="unknown VM type"):
        cc.run(RunRequest(ids(1, 9), "m9.huge", 1))


def test_default_config_and_vmtypes() -> None:
    cc = ClusterController()
    assert cc.config == Config()
    assert [t.name for t in cc.vmtypes] == [t.name for t in VmTypes()]
    assert cc.scheduler.policy == "ROUNDROBIN"


def test_restored_addresses_written_loosely_are_freed_at_termination() -> None:
    cc = cluster('VNET_MODE="MANAGED"')
    records = cc.run(RunRequest(ids(1), "m1.small", 1, group="web"))
    loose = [r._replace(net=r.net._replace(private_ip=f" {r.net.private_ip} ")) for r in records]
    fresh = cluster('VNET_MODE="MANAGED"')
    assert fresh.restore(loose) == []
    fresh.terminate(records[0].instance_id)
    assert fresh.network.usage()["vlans"][0] == 0
