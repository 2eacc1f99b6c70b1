"""Describe filters as EC2 documents them, through boto3 against one real server: a filter narrows
the answer to what its value names, ``*`` and ``?`` are wildcards, a filter's values are OR-ed and
filters AND-ed, and a name EC2 does not document for the action is InvalidParameterValue."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import botocore.exceptions
import pytest

from tests.ec2_server import Box, running_box, until

Case = tuple[list[tuple[str, list[str]]], set[str]]


@dataclass
class World:
    ec2: Any
    account_id: str
    web: str  # an instance: t1.micro, a key pair, role=web
    db: str  # an instance: m1.small, no key, IMDSv2 required, monitored, role=db
    gone: str  # an instance, terminated
    image: str
    kernel: str
    ramdisk: str
    small: str  # a 1 GiB volume, role=db
    big: str  # a 2 GiB volume
    nightly: str  # a snapshot of the small volume, role=db
    weekly: str  # a snapshot of the big volume
    group: str
    key: str

    def shown(self, action: str, listed: str, key: str, filters: list[tuple[str, list[str]]], **kw: Any) -> set[str]:
        reply = getattr(self.ec2, action)(Filters=[{"Name": n, "Values": v} for n, v in filters], **kw)
        return {item[key] for item in reply[listed]}

    def instances(self, filters: list[tuple[str, list[str]]]) -> set[str]:
        reply = self.ec2.describe_instances(Filters=[{"Name": n, "Values": v} for n, v in filters])
        return {i["InstanceId"] for r in reply["Reservations"] for i in r["Instances"]}


def ec2_time(t: datetime) -> str:
    return f"{t:%Y-%m-%dT%H:%M:%S}.{t.microsecond // 1000:03d}Z"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with running_box(tmp_path_factory.mktemp("filters")) as box:
        yield _world(box)


def _world(box: Box) -> World:
    ec2 = box.client()
    image = box.image()
    shown = ec2.describe_images(ImageIds=[image])["Images"][0]
    ec2.create_tags(Resources=[image], Tags=[{"Key": "os", "Value": "linux"}])
    key = ec2.create_key_pair(KeyName="filters", TagSpecifications=[
        {"ResourceType": "key-pair", "Tags": [{"Key": "role", "Value": "login"}]}])["KeyPairId"]
    group = ec2.create_security_group(GroupName="filtered", Description="filters")["GroupId"]
    ec2.create_tags(Resources=[group], Tags=[{"Key": "role", "Value": "fw"}])

    def run(role: str, **kw: Any) -> str:
        tagged = [{"ResourceType": "instance", "Tags": [{"Key": "role", "Value": role}]}]
        made = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, TagSpecifications=tagged, **kw)
        return str(made["Instances"][0]["InstanceId"])

    web = run("web", InstanceType="t1.micro", KeyName="filters")
    db = run("db", InstanceType="m1.small", MetadataOptions={"HttpTokens": "required"}, Monitoring={"Enabled": True})
    gone = run("gone", InstanceType="m1.small")
    ec2.terminate_instances(InstanceIds=[gone])
    zone = ec2.describe_availability_zones()["AvailabilityZones"][0]["ZoneName"]
    small = ec2.create_volume(Size=1, AvailabilityZone=zone, TagSpecifications=[
        {"ResourceType": "volume", "Tags": [{"Key": "role", "Value": "db"}]}])["VolumeId"]
    big = ec2.create_volume(Size=2, AvailabilityZone=zone)["VolumeId"]
    until(lambda: {v["State"] for v in ec2.describe_volumes(VolumeIds=[small, big])["Volumes"]} == {"available"})
    nightly = ec2.create_snapshot(VolumeId=small, Description="nightly db", TagSpecifications=[
        {"ResourceType": "snapshot", "Tags": [{"Key": "role", "Value": "db"}]}])["SnapshotId"]
    weekly = ec2.create_snapshot(VolumeId=big, Description="weekly")["SnapshotId"]
    until(lambda: {s["State"] for s in ec2.describe_snapshots(SnapshotIds=[nightly, weekly])["Snapshots"]}
          == {"completed"}, 60)

    def state(instance_id: str) -> str:
        reply = ec2.describe_instances(InstanceIds=[instance_id])
        return str(reply["Reservations"][0]["Instances"][0]["State"]["Name"])
    until(lambda: state(web) == state(db) == "running" and state(gone) == "terminated")
    account = box.cloud.accounts.get("admin")
    assert account is not None
    return World(ec2, account.account_id, web, db, gone, image, shown["KernelId"], shown["RamdiskId"], small, big,
                 nightly, weekly, group, key)


def refused(call: Callable[..., Any], name: str, **kw: Any) -> None:
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        call(Filters=[{"Name": name, "Values": ["x"]}], **kw)
    assert exc.value.response["Error"]["Code"] == "InvalidParameterValue"
    assert f"The filter '{name}' is invalid" in exc.value.response["Error"]["Message"]


def test_describe_instances(world: World) -> None:
    w = world
    web = w.ec2.describe_instances(InstanceIds=[w.web])["Reservations"][0]["Instances"][0]
    cases: list[Case] = [
        ([("instance-type", ["t1.micro"])], {w.web}),
        ([("instance-type", ["t1.*", "m1.small"]), ("instance-state-name", ["running"])], {w.web, w.db}),
        ([("instance-type", ["m1.small"]), ("instance-state-code", ["48"])], {w.gone}),
        ([("tag:role", ["w?b"])], {w.web}),
        ([("tag-key", ["role"]), ("tag-value", ["db", "gone"])], {w.db, w.gone}),
        ([("key-name", ["*"])], {w.web}),
        ([("image-id", [w.image]), ("kernel-id", [w.kernel]), ("ramdisk-id", [w.ramdisk])], {w.web, w.db, w.gone}),
        ([("owner-id", [w.account_id]), ("monitoring-state", ["enabled"])], {w.db}),
        ([("metadata-options.http-tokens", ["required"])], {w.db}),
        ([("metadata-options.http-put-response-hop-limit", ["1"]), ("instance-state-name", ["running"])],
         {w.web, w.db}),
        ([("launch-time", [ec2_time(web["LaunchTime"])])], {w.web}),
        ([("launch-time", [f"{web['LaunchTime']:%Y}-*"]), ("tag:role", ["web", "db"])], {w.web, w.db}),
        ([("private-ip-address", [web["PrivateIpAddress"]])], {w.web}),
        ([("network-interface.addresses.private-ip-address", [web["PrivateIpAddress"]])], {w.web}),
        ([("private-dns-name", ["*"])], {w.web, w.db}),
        ([("state-reason-code", ["Client.UserInitiatedShutdown"])], {w.gone}),
        ([("reason", ["User initiated*"])], {w.gone}),
        ([("availability-zone", [web["Placement"]["AvailabilityZone"]]), ("tenancy", ["default"]),
          ("root-device-type", ["instance-store"]), ("root-device-name", ["/dev/sda1"]), ("hypervisor", ["xen"]),
          ("virtualization-type", ["paravirtual"]), ("architecture", ["x86_64"]), ("source-dest-check", ["true"]),
          ("platform-details", ["Linux/UNIX"]), ("tag:role", ["web"])], {w.web}),
        ([("source-dest-check", ["false"])], set()),
        ([("platform", ["windows"])], set()),
        ([("subnet-id", ["*"])], set()),
        ([("vpc-id", ["*"])], set()),
        ([("iam-instance-profile.arn", ["*"])], set()),
        ([("block-device-mapping.device-name", ["*"])], set()),
        ([("spot-instance-request-id", ["*"])], set()),
        ([("network-interface.tag:role", ["*"])], set()),
        ([("operator.managed", ["false"]), ("tag:role", ["web"])], {w.web}),
        ([("operator.principal", ["*"])], set()),
    ]
    for filters, expected in cases:
        assert w.instances(filters) == expected, filters
    for name in ("instance-state", "tags", "tag", "network-interface", "image"):
        refused(w.ec2.describe_instances, name)


def test_describe_images(world: World) -> None:
    w = world
    ours = [w.image, w.kernel, w.ramdisk]
    dates = {i["ImageId"]: i["CreationDate"] for i in w.ec2.describe_images(ImageIds=ours)["Images"]}
    created = dates[w.image]
    cases: list[Case] = [
        ([("image-type", ["kernel"])], {w.kernel}),
        ([("image-type", ["kernel", "ramdisk"])], {w.kernel, w.ramdisk}),
        ([("kernel-id", ["*"])], {w.image}),
        ([("kernel-id", [w.kernel]), ("ramdisk-id", [w.ramdisk])], {w.image}),
        ([("is-public", ["true"]), ("state", ["available"]), ("owner-id", [w.account_id])], set(ours)),
        ([("is-public", ["false"])], set()),
        ([("creation-date", [created])], {i for i, d in dates.items() if d == created}),
        ([("creation-date", [created[:4] + "-*"]), ("image-type", ["machine"])], {w.image}),
        ([("tag:os", ["lin?x"])], {w.image}),
        ([("tag-key", ["os"])], {w.image}),
        ([("tag-value", ["linux"]), ("image-type", ["kernel"])], set()),
        ([("root-device-type", ["instance-store"]), ("root-device-name", ["/dev/sda1"]), ("hypervisor", ["xen"]),
          ("virtualization-type", ["paravirtual"]), ("architecture", ["x86_64"]), ("ena-support", ["false"]),
          ("owner-alias", ["admin"]), ("image-id", ["emi-*"])], {w.image}),
        ([("manifest-location", [f"*{w.kernel}*"])], {w.kernel}),
        ([("description", ["*"])], set()),
        ([("state-reason-code", ["*"])], set()),
        ([("platform", ["windows"])], set()),
        ([("sriov-net-support", ["simple"])], set()),
        ([("product-code", ["*"])], set()),
    ]
    for filters, expected in cases:
        assert w.shown("describe_images", "Images", "ImageId", filters, ImageIds=ours) == expected, filters
    for name in ("image-name", "owner", "tags", "instance-type"):
        refused(w.ec2.describe_images, name)


def test_describe_tags(world: World) -> None:
    w = world
    cases: list[Case] = [
        ([("resource-type", ["instance"])], {w.web, w.db, w.gone}),
        ([("resource-type", ["volume", "snapshot"])], {w.small, w.nightly}),
        ([("resource-type", ["security-group"])], {w.group}),
        ([("resource-type", ["key-pair"])], {w.key}),
        ([("resource-type", ["image"])], {w.image}),
        ([("key", ["role"]), ("value", ["d*"])], {w.db, w.small, w.nightly}),
        ([("resource-id", [w.web, w.group])], {w.web, w.group}),
        ([("resource-id", ["vol-*"])], {w.small}),
        ([("tag:role", ["db"]), ("resource-type", ["volume"])], {w.small}),
        ([("tag:os", ["*"])], {w.image}),
        ([("value", ["nothing"])], set()),
    ]
    for filters, expected in cases:
        assert w.shown("describe_tags", "Tags", "ResourceId", filters) == expected, filters
    for name in ("resource", "tag-key", "key-name", "tags"):
        refused(w.ec2.describe_tags, name)


def test_describe_volumes(world: World) -> None:
    w = world
    small = w.ec2.describe_volumes(VolumeIds=[w.small])["Volumes"][0]
    cases: list[Case] = [
        ([("size", ["1"])], {w.small}),
        ([("size", ["1", "2"]), ("status", ["available"])], {w.small, w.big}),
        ([("volume-id", ["vol-*"]), ("tag:role", ["d?"])], {w.small}),
        ([("tag-key", ["role"])], {w.small}),
        ([("tag-value", ["db"])], {w.small}),
        ([("create-time", [ec2_time(small["CreateTime"])])], {w.small}),
        ([("availability-zone", [small["AvailabilityZone"]]), ("encrypted", ["false"]),
          ("multi-attach-enabled", ["false"]), ("fast-restored", ["false"]), ("volume-type", ["standard"])],
         {w.small, w.big}),
        ([("encrypted", ["true"])], set()),
        ([("attachment.instance-id", ["*"])], set()),
        ([("snapshot-id", ["*"])], set()),
        ([("operator.managed", ["false"]), ("size", ["2"])], {w.big}),
        ([("operator.principal", ["*"])], set()),
    ]
    for filters, expected in cases:
        assert w.shown("describe_volumes", "Volumes", "VolumeId", filters) == expected, filters
    for name in ("volume-size", "state", "tags", "instance-id"):
        refused(w.ec2.describe_volumes, name)


def test_describe_snapshots(world: World) -> None:
    w = world
    nightly = w.ec2.describe_snapshots(SnapshotIds=[w.nightly])["Snapshots"][0]
    cases: list[Case] = [
        ([("description", ["nightly*"])], {w.nightly}),
        ([("volume-id", [w.big])], {w.weekly}),
        ([("volume-size", ["1", "2"]), ("status", ["completed"]), ("progress", ["100%"])], {w.nightly, w.weekly}),
        ([("tag:role", ["db"])], {w.nightly}),
        ([("tag-key", ["role"]), ("tag-value", ["d?"])], {w.nightly}),
        ([("start-time", [ec2_time(nightly["StartTime"])])], {w.nightly}),
        ([("start-time", [f"{nightly['StartTime']:%Y}-*"])], {w.nightly, w.weekly}),
        ([("owner-id", [w.account_id]), ("encrypted", ["false"]), ("storage-tier", ["standard"])],
         {w.nightly, w.weekly}),
        ([("snapshot-id", [w.weekly, "snap-0000000?"])], {w.weekly}),
        ([("encrypted", ["true"])], set()),
    ]
    for filters, expected in cases:
        assert w.shown("describe_snapshots", "Snapshots", "SnapshotId", filters, OwnerIds=["self"]) == expected, \
            filters
    for name in ("size", "state", "tags", "volume-type"):
        refused(w.ec2.describe_snapshots, name)


def test_describe_instance_and_volume_status(world: World) -> None:
    w = world
    cases: list[Case] = [
        ([("operator.managed", ["false"]), ("instance-state-name", ["running"])], {w.web, w.db}),
        ([("instance-state-code", ["16"]), ("availability-zone", ["*"])], {w.web, w.db}),
        ([("event.not-before-deadline", ["*"])], set()),
        ([("operator.principal", ["*"])], set()),
    ]
    for filters, expected in cases:
        assert w.shown("describe_instance_status", "InstanceStatuses", "InstanceId", filters,
                       InstanceIds=[w.web, w.db]) == expected, filters
    refused(w.ec2.describe_instance_status, "instance-type")
    cases = [
        ([("volume-status.status", ["ok"]), ("volume-status.details-name", ["io-*"])], {w.small, w.big}),
        ([("event.event-id", ["*"])], set()),
        ([("action.description", ["*"])], set()),
    ]
    for filters, expected in cases:
        assert w.shown("describe_volume_status", "VolumeStatuses", "VolumeId", filters,
                       VolumeIds=[w.small, w.big]) == expected, filters
    refused(w.ec2.describe_volume_status, "status")


def test_describe_addresses(world: World) -> None:
    w = world
    bound, free = (w.ec2.allocate_address()["PublicIp"] for _ in range(2))
    w.ec2.associate_address(PublicIp=bound, InstanceId=w.web)
    cases: list[Case] = [
        ([("instance-id", [w.web])], {bound}),
        ([("instance-id", ["*"])], {bound}),
        ([("association-id", ["eipassoc-*"])], {bound}),
        ([("public-ip", [free, "10.255.255.25?"]), ("domain", ["standard"])], {free}),
        ([("allocation-id", ["eipalloc-*"])], {bound, free}),
        ([("network-interface-id", ["*"])], set()),
        ([("tag-key", ["*"])], set()),
        ([("tag:role", ["*"])], set()),
    ]
    for filters, expected in cases:
        assert w.shown("describe_addresses", "Addresses", "PublicIp", filters, PublicIps=[bound, free]) == expected, \
            filters
    refused(w.ec2.describe_addresses, "instance")
    w.ec2.disassociate_address(PublicIp=bound)
    assert w.shown("describe_addresses", "Addresses", "PublicIp", [("instance-id", ["*"])],
                   PublicIps=[bound, free]) == set()


def test_ebs_backed_root_devices(world: World) -> None:
    """Last, as its root volume is one more volume: the root device and block device mapping
    filters follow what an EBS-backed image and instance show."""
    w = world
    image = w.ec2.register_image(Name="filters-ebs", RootDeviceName="/dev/sda1", Architecture="x86_64",
                                 BlockDeviceMappings=[{"DeviceName": "/dev/sda1",
                                                       "Ebs": {"SnapshotId": w.nightly}}])["ImageId"]
    cases: list[Case] = [
        ([("root-device-type", ["ebs"])], {image}),
        ([("root-device-type", ["instance-store"])], {w.image}),
        ([("block-device-mapping.snapshot-id", [w.nightly]), ("block-device-mapping.volume-size", ["1"]),
          ("block-device-mapping.device-name", ["/dev/sd?1"]), ("block-device-mapping.encrypted", ["false"]),
          ("block-device-mapping.delete-on-termination", ["true"])], {image}),
        ([("block-device-mapping.device-name", ["*"])], {image}),
    ]
    for filters, expected in cases:
        assert w.shown("describe_images", "Images", "ImageId", filters, ImageIds=[image, w.image]) == expected, \
            filters
    instance = w.ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    shown = until(lambda: (i := w.ec2.describe_instances(InstanceIds=[instance])["Reservations"][0]["Instances"][0])[
        "State"]["Name"] == "running" and i)
    root = shown["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]
    cases = [
        ([("root-device-type", ["ebs"])], {instance}),
        ([("block-device-mapping.volume-id", [root]), ("block-device-mapping.status", ["attached"]),
          ("block-device-mapping.device-name", ["/dev/sda1"]), ("block-device-mapping.delete-on-termination", ["true"]),
          ("block-device-mapping.attach-time", [f"{shown['LaunchTime']:%Y}-*"])], {instance}),
        ([("block-device-mapping.volume-id", ["*"]), ("instance-id", [w.web, w.db, instance])], {instance}),
    ]
    for filters, expected in cases:
        assert w.instances(filters) == expected, filters
    assert w.shown("describe_volumes", "Volumes", "VolumeId", [("attachment.instance-id", [instance])]) == {root}
