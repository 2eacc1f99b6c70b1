"""Instance types, instance attributes, status checks, monitoring, zones, regions and account
attributes, through boto3 against a real server, as EC2 answers them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import botocore.exceptions
import pytest

from tests.ec2_server import Box, running_box


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    with running_box(tmp_path_factory.mktemp("types"), nodes=2, cores=8, memory=32768, disk=500,
                     zone="us-east-1a", region="us-east-1") as b:
        yield b


@pytest.fixture(scope="module")
def ec2(box: Box) -> Any:
    return box.client("alice")


def code(exc: pytest.ExceptionInfo[botocore.exceptions.ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def running(ec2: Any, image: str, **kw: Any) -> str:
    instance_id = str(ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, **kw)["Instances"][0]["InstanceId"])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        state = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["State"]["Name"]
        if state == "running":
            return instance_id
        time.sleep(0.1)
    raise AssertionError(f"{instance_id} did not run")


@pytest.fixture(scope="module")
def image(box: Box) -> str:
    return box.image()


def test_instance_types_come_from_the_vm_types(ec2: Any) -> None:
    types = {t["InstanceType"]: t for t in ec2.describe_instance_types()["InstanceTypes"]}
    assert {"m1.small", "t1.micro", "t2.micro", "t3.small", "m5.large"} <= set(types)
    micro = types["t2.micro"]
    assert micro["VCpuInfo"]["DefaultVCpus"] == 1 and micro["MemoryInfo"]["SizeInMiB"] == 1024
    assert micro["BurstablePerformanceSupported"] and micro["FreeTierEligible"] and micro["CurrentGeneration"]
    assert not types["m1.small"]["CurrentGeneration"]
    assert types["m1.small"]["InstanceStorageInfo"]["TotalSizeInGB"] == 5
    one = ec2.describe_instance_types(InstanceTypes=["m5.large"])["InstanceTypes"]
    assert [t["InstanceType"] for t in one] == ["m5.large"]
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ec2.describe_instance_types(InstanceTypes=["x9.huge"])
    assert code(exc) == "InvalidInstanceType" and "x9.huge" in exc.value.response["Error"]["Message"]
    two_vcpu = ec2.describe_instance_types(Filters=[{"Name": "vcpu-info.default-vcpus", "Values": ["2"]}])
    assert all(t["VCpuInfo"]["DefaultVCpus"] == 2 for t in two_vcpu["InstanceTypes"]) and two_vcpu["InstanceTypes"]
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ec2.describe_instance_types(Filters=[{"Name": "no-such", "Values": ["x"]}])
    assert code(exc) == "InvalidParameterValue"
    # paging: every type exactly once
    seen, token = [], None
    while True:
        kw = {"NextToken": token} if token else {}
        reply = ec2.describe_instance_types(MaxResults=5, **kw)
        seen += [t["InstanceType"] for t in reply["InstanceTypes"]]
        token = reply.get("NextToken")
        if not token:
            break
    assert sorted(seen) == sorted(types)


def test_offerings_by_region_and_zone(ec2: Any) -> None:
    region = ec2.describe_instance_type_offerings()["InstanceTypeOfferings"]
    assert {o["Location"] for o in region} == {"us-east-1"} and {o["LocationType"] for o in region} == {"region"}
    zone = ec2.describe_instance_type_offerings(
        LocationType="availability-zone", Filters=[{"Name": "instance-type", "Values": ["t2.*"]}])
    assert {o["Location"] for o in zone["InstanceTypeOfferings"]} == {"us-east-1a"}
    assert all(o["InstanceType"].startswith("t2.") for o in zone["InstanceTypeOfferings"])
    by_id = ec2.describe_instance_type_offerings(LocationType="availability-zone-id")["InstanceTypeOfferings"]
    assert {o["Location"] for o in by_id} == {"use1-az1"}


def test_aws_type_names_run_on_the_same_scheduler(ec2: Any, image: str) -> None:
    reply = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType="t3.small")
    assert reply["Instances"][0]["InstanceType"] == "t3.small"
    assert reply["Instances"][0]["Placement"]["AvailabilityZone"] == "us-east-1a"
    assert reply["Instances"][0]["CpuOptions"] == {"CoreCount": 2, "ThreadsPerCore": 1}


def test_zones_regions_and_account_attributes(ec2: Any) -> None:
    zones = ec2.describe_availability_zones()["AvailabilityZones"]
    assert [(z["ZoneName"], z["ZoneId"], z["OptInStatus"], z["RegionName"]) for z in zones] == [
        ("us-east-1a", "use1-az1", "opt-in-not-required", "us-east-1")]
    assert ec2.describe_availability_zones(ZoneIds=["use1-az1"])["AvailabilityZones"][0]["ZoneName"] == "us-east-1a"
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ec2.describe_availability_zones(ZoneNames=["us-west-2b"])
    assert code(exc) == "InvalidParameterValue"
    regions = ec2.describe_regions(AllRegions=True)["Regions"]
    assert [(r["RegionName"], r["OptInStatus"]) for r in regions] == [("us-east-1", "opt-in-not-required")]
    attributes = {a["AttributeName"]: [v["AttributeValue"] for v in a["AttributeValues"]]
                  for a in ec2.describe_account_attributes()["AccountAttributes"]}
    assert attributes["supported-platforms"] == ["EC2"] and attributes["default-vpc"] == ["none"]
    one = ec2.describe_account_attributes(AttributeNames=["default-vpc"])["AccountAttributes"]
    assert [a["AttributeName"] for a in one] == ["default-vpc"]


def test_disable_api_termination_is_enforced(ec2: Any, image: str) -> None:
    instance_id = running(ec2, image, DisableApiTermination=True)
    attr = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="disableApiTermination")
    assert attr["DisableApiTermination"]["Value"] is True
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ec2.terminate_instances(InstanceIds=[instance_id])
    assert code(exc) == "OperationNotPermitted"
    assert ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["State"]["Name"] \
        == "running"
    ec2.modify_instance_attribute(InstanceId=instance_id, DisableApiTermination={"Value": False})
    assert ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="disableApiTermination")[
        "DisableApiTermination"]["Value"] is False
    ec2.terminate_instances(InstanceIds=[instance_id])


def test_attributes_of_an_instance_store_instance(ec2: Any, image: str) -> None:
    instance_id = running(ec2, image, InstanceType="m1.small")
    assert ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="instanceType")["InstanceType"][
        "Value"] == "m1.small"
    assert ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="rootDeviceName")["RootDeviceName"][
        "Value"] == "/dev/sda1"
    groups = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="groupSet")["Groups"]
    assert [g["GroupName"] for g in groups] == ["default"] and groups[0]["GroupId"].startswith("sg-")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ec2.modify_instance_attribute(InstanceId=instance_id, InstanceType={"Value": "m1.large"})
    assert code(exc) == "IncorrectInstanceState"
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="noSuchThing")
    assert code(exc) == "InvalidParameterValue"
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ec2.describe_instance_attribute(InstanceId="i-00000000", Attribute="instanceType")
    assert code(exc) == "InvalidInstanceID.NotFound"
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ec2.reset_instance_attribute(InstanceId=instance_id, Attribute="kernel")
    assert code(exc) == "IncorrectInstanceState"
    ec2.terminate_instances(InstanceIds=[instance_id])


def test_status_follows_the_node_and_monitoring_and_credits(box: Box, ec2: Any, image: str) -> None:
    instance_id = running(ec2, image, InstanceType="t2.micro")
    status = ec2.describe_instance_status(InstanceIds=[instance_id])["InstanceStatuses"][0]
    assert status["InstanceStatus"]["Status"] == "ok" and status["SystemStatus"]["Status"] == "ok"
    assert status["AvailabilityZone"] == "us-east-1a"
    node = box.cloud.instances.visible(box.cloud.accounts.get("alice").caller, [instance_id])[0].node  # type: ignore[union-attr]
    box.cloud.cc.nodes.unreachable(node, box.cloud.cc.clock(), "test: the node stopped answering")
    try:
        status = ec2.describe_instance_status(InstanceIds=[instance_id])["InstanceStatuses"][0]
        assert status["SystemStatus"]["Status"] == "impaired"
        impaired = ec2.describe_instance_status(Filters=[{"Name": "system-status.status", "Values": ["impaired"]}])
        assert instance_id in [s["InstanceId"] for s in impaired["InstanceStatuses"]]
    finally:
        box.cloud.box.fleet.apply(box.cloud.cc)  # the in-box node answers its next poll: UP again
    assert ec2.monitor_instances(InstanceIds=[instance_id])["InstanceMonitorings"][0]["Monitoring"]["State"] \
        == "pending"
    shown = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    assert shown["Monitoring"]["State"] == "enabled"
    ec2.unmonitor_instances(InstanceIds=[instance_id])
    shown = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    assert shown["Monitoring"]["State"] == "disabled"
    credits = ec2.describe_instance_credit_specifications(InstanceIds=[instance_id])
    assert credits["InstanceCreditSpecifications"] == [{"InstanceId": instance_id, "CpuCredits": "standard"}]
    ec2.terminate_instances(InstanceIds=[instance_id])
    every = ec2.describe_instance_status(InstanceIds=[instance_id], IncludeAllInstances=True)["InstanceStatuses"]
    assert every[0]["InstanceState"]["Name"] in ("shutting-down", "terminated")
    assert ec2.describe_instance_status(InstanceIds=[instance_id])["InstanceStatuses"] == []


def test_addresses_are_ec2_classic_only(ec2: Any) -> None:
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ec2.allocate_address(Domain="vpc")
    assert code(exc) == "Unsupported"
    assert ec2.describe_addresses()["Addresses"] == []
    assert ec2.allocate_address(Domain="standard")["Domain"] == "standard"


def test_addresses_have_allocation_and_association_ids(ec2: Any, image: str) -> None:
    allocated = ec2.allocate_address()
    allocation = allocated["AllocationId"]
    assert allocation.startswith("eipalloc-") and len(allocation) == len("eipalloc-") + 17
    instance_id = running(ec2, image)
    association = ec2.associate_address(AllocationId=allocation, InstanceId=instance_id)["AssociationId"]
    assert association.startswith("eipassoc-")
    shown = ec2.describe_addresses(AllocationIds=[allocation])["Addresses"]
    assert [(a["PublicIp"], a["InstanceId"], a["AssociationId"]) for a in shown] == [
        (allocated["PublicIp"], instance_id, association)]
    by_filter = ec2.describe_addresses(Filters=[{"Name": "association-id", "Values": [association]}])["Addresses"]
    assert [a["AllocationId"] for a in by_filter] == [allocation]
    ec2.disassociate_address(AssociationId=association)
    assert "AssociationId" not in ec2.describe_addresses(AllocationIds=[allocation])["Addresses"][0]
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ec2.disassociate_address(AssociationId=association)
    assert code(exc) == "InvalidAssociationID.NotFound"
    ec2.release_address(AllocationId=allocation)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ec2.describe_addresses(AllocationIds=[allocation])
    assert code(exc) == "InvalidAllocationID.NotFound"
    ec2.terminate_instances(InstanceIds=[instance_id])
