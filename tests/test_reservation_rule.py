"""The cloud and the simulator reserve through one rule: the cluster controller places, addresses and
gives each instance its dynamic public address (doDynamicPublicAddresses), and when the public pool
runs dry both cut a reservation short past MinCount and refuse it below, with Eucalyptus's words."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import botocore.exceptions
import numpy as np
import pytest
import simpy

from euca.cluster import DEFAULT_VMTYPES, VmTypes
from sim.cloud import Cloud as SimCloud
from sim.scenario import NodeClass, Scenario
from sim.trace import Demand
from sim.workload import VmRequests
from tests.ec2_server import running_box

NO_ADDRESSES = "Not enough resources available: addresses (try --addressing private)"
SCENARIO = Scenario(
    nodes=(NodeClass(count=2, cores=8, memory_mb=16384, disk_gb=500),),
    eucalyptus_conf={"VNET_MODE": "MANAGED-NOVLAN", "VNET_SUBNET": "172.19.0.0", "VNET_NETMASK": "255.255.0.0",
                     "VNET_ADDRSPERNET": "64", "VNET_PUBLICIPS": "198.51.100.1-198.51.100.3"},
)
# (MinCount, MaxCount) of each reservation in turn: the pool of three runs dry in the first
REQUESTS = [(1, 5), (1, 1), (2, 2)]


def simulated() -> list[tuple[int, str]]:
    """(instances started, why the rest were not) per reservation, in the simulator."""
    types = VmTypes(DEFAULT_VMTYPES)
    empty = np.zeros(0)
    demand = Demand(VmRequests(empty, empty.astype(int), empty, empty.astype(int), empty.astype(int)),
                    types, ("emi-00000001",), ("default",))
    cloud = SimCloud(simpy.Environment(), SCENARIO, demand, [1 << 20])
    outcome = []
    for low, high in REQUESTS:
        cloud.all_or_none = low == high  # the workload's min_count: "all" or "one"
        before = dict(cloud.meter.rejected)
        started = cloud.instances
        cloud.reserve(types.index("m1.small"), 0, 0, [3600.0] * high, counted=True)
        why = [r for r, n in cloud.meter.rejected.items() if n != before.get(r, 0)]
        outcome.append((cloud.instances - started, why[0] if why else ""))
    return outcome


def in_the_cloud(tmp_path: Path) -> list[tuple[int, str]]:
    outcome = []
    with running_box(tmp_path, nodes=2, cores=8, memory=16384, disk=500, config=SCENARIO.config()) as box:
        ec2: Any = box.client("alice")
        emi = box.image()
        for low, high in REQUESTS:
            try:
                started = len(ec2.run_instances(ImageId=emi, MinCount=low, MaxCount=high)["Instances"])
            except botocore.exceptions.ClientError as exc:
                assert exc.response["Error"]["Code"] == "InsufficientAddressCapacity"
                outcome.append((0, exc.response["Error"]["Message"]))
                continue
            outcome.append((started, NO_ADDRESSES if started < high else ""))
        ec2.close()
    return outcome


def test_a_dry_public_pool_ends_a_reservation_alike_in_the_cloud_and_the_simulator(tmp_path: Path) -> None:
    expected = [(3, NO_ADDRESSES), (0, NO_ADDRESSES), (0, NO_ADDRESSES)]
    assert simulated() == expected
    assert in_the_cloud(tmp_path) == expected


def test_nothing_stays_taken_when_a_reservation_is_refused_for_addresses() -> None:
    from euca.cluster import ClusterController, ResourceReport, RunRequest
    from pyx.errors import Exhausted

    cc = ClusterController(SCENARIO.config(), VmTypes(DEFAULT_VMTYPES))
    cc.nodes.register("n1", report=ResourceReport(8, 16384, 500, 8, 16384, 500))
    before = cc.availability()
    with pytest.raises(Exhausted, match="addresses"):
        cc.run(RunRequest([f"i-0000000{k}" for k in range(1, 6)], "m1.small", 4, "alice", "default", "", True))
    assert cc.availability() == before and cc.running() == [] and cc.network.usage()["public addresses"][0] == 0
    launches = cc.run(RunRequest([f"i-0000000{k}" for k in range(1, 6)], "m1.small", 2, "alice", "default", "", True))
    assert len(launches) == 3
    assert sorted(cc.network.public_of(launch.instance_id) or "" for launch in launches) == [
        "198.51.100.1", "198.51.100.2", "198.51.100.3"]
    cc.terminate(launches[0].instance_id)
    assert cc.network.usage()["public addresses"][0] == 2  # a dynamic address ends with its instance
