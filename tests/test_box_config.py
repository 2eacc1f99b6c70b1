"""The box's network plan without a eucalyptus.conf grows with its nodes, up to Eucalyptus's caps."""

from __future__ import annotations

from euca.cluster import CLOUD_VMTYPES, ClusterController, VmTypes
from euca.fleet.box import NodeSpec, box_config


def test_a_small_box_keeps_eucalyptus_defaults_and_a_large_one_is_capped() -> None:
    types = VmTypes(CLOUD_VMTYPES)
    small = box_config([NodeSpec(f"n{i}") for i in range(4)], types)  # 4 x 8 cores: 32 instances
    assert small.vnet_addrspernet == 64 and len(small.public_ips) == 508
    big = box_config([NodeSpec(f"n{i}", cores=256, memory=262144, disk=10000) for i in range(8)], types)
    assert big.vnet_addrspernet == 2048 and len(big.public_ips) == 2032
    ClusterController(big, types)  # a plan the network manager takes
    remote = box_config([NodeSpec("far", url="http://far:8775", key="k")], types)
    assert remote.vnet_addrspernet == 32  # remote nodes report their own size; the plan stays Eucalyptus's
