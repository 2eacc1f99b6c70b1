"""EBS over the real EC2 API: volumes on the box's simulated nodes (real sparse files under the
data directory), attachments, and snapshots really in Walrus, restored byte for byte."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from euca.core.s3errors import S3Error
from tests.durability_kit import client, euca_up
from tests.ec2_server import Box, free_port, refused, running_box, until

GIB = 1 << 30


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    with running_box(tmp_path_factory.mktemp("ebs")) as b:
        yield b


def volume(ec2: Any, volume_id: str) -> dict[str, Any]:
    return dict(ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0])


def available(ec2: Any, volume_id: str) -> dict[str, Any]:
    return dict(until(lambda: (v := volume(ec2, volume_id))["State"] == "available" and v))


def attached(ec2: Any, volume_id: str) -> dict[str, Any]:
    """The volume once its attachment, answered ``attaching``, is ``attached``."""
    return dict(until(lambda: (v := volume(ec2, volume_id))["Attachments"]
                      and v["Attachments"][0]["State"] == "attached" and v))


def running(box: Box, ec2: Any) -> str:
    image = box.image()
    instance_id = str(ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"])
    until(lambda: ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["State"]["Name"]
          == "running")
    return instance_id


def test_volume_lifecycle_attach_and_detach(box: Box) -> None:
    ec2 = box.client("ebs-user")
    zone = ec2.describe_availability_zones()["AvailabilityZones"][0]["ZoneName"]
    made = ec2.create_volume(Size=1, AvailabilityZone=zone,
                             TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": "role", "Value": "db"}]}])
    vol_id = made["VolumeId"]
    assert vol_id.startswith("vol-") and made["State"] == "creating" and made["Size"] == 1
    shown = available(ec2, vol_id)
    assert shown["Tags"] == [{"Key": "role", "Value": "db"}] and shown["AvailabilityZone"] == zone
    path = box.data_dir / "volumes" / vol_id
    assert path.stat().st_size == GIB and path.stat().st_blocks == 0  # a sparse file
    assert [v["VolumeId"] for v in ec2.describe_volumes(Filters=[{"Name": "tag:role", "Values": ["db"]}])["Volumes"]] \
        == [vol_id]
    assert ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [vol_id]}])["Tags"][0]["ResourceType"] \
        == "volume"
    refused("InvalidZone.NotFound", ec2.create_volume, Size=1, AvailabilityZone="elsewhere")
    refused("MissingParameter", ec2.create_volume, AvailabilityZone=zone)
    refused("VolumeLimitExceeded", ec2.create_volume, Size=101, AvailabilityZone=zone)
    refused("InvalidVolume.NotFound", ec2.describe_volumes, VolumeIds=["vol-00000000"])
    refused("InvalidVolumeID.Malformed", ec2.describe_volumes, VolumeIds=["vol-xyz"])

    instance_id = running(box, ec2)
    refused("InvalidParameterValue", ec2.attach_volume, VolumeId=vol_id, InstanceId=instance_id, Device="/dev/sda")
    refused("InvalidParameterValue", ec2.attach_volume, VolumeId=vol_id, InstanceId=instance_id, Device="x")
    refused("IncorrectState", ec2.detach_volume, VolumeId=vol_id)
    answer = ec2.attach_volume(VolumeId=vol_id, InstanceId=instance_id, Device="/dev/sdf")
    assert answer["State"] == "attaching" and answer["Device"] == "/dev/sdf"
    shown = attached(ec2, vol_id)
    assert shown["State"] == "in-use"
    assert shown["Attachments"][0]["State"] == "attached" and shown["Attachments"][0]["InstanceId"] == instance_id
    node = box.cloud.cc.instance(instance_id)
    assert node is not None
    held = box.cloud.box.sims[node.node].volumes[instance_id]["vdf"]
    assert held.volume_id == vol_id and held.path == str(path)
    refused("VolumeInUse", ec2.delete_volume, VolumeId=vol_id)
    refused("VolumeInUse", ec2.attach_volume, VolumeId=vol_id, InstanceId=instance_id, Device="/dev/sdg")
    other = ec2.create_volume(Size=1, AvailabilityZone=zone)["VolumeId"]
    available(ec2, other)
    assert "Already have a device attached to" in refused(
        "InvalidParameterValue", ec2.attach_volume, VolumeId=other, InstanceId=instance_id, Device="/dev/sdf")
    assert [v["VolumeId"] for v in ec2.describe_volumes(
        Filters=[{"Name": "attachment.instance-id", "Values": [instance_id]}])["Volumes"]] == [vol_id]
    page = ec2.describe_volumes(MaxResults=1)
    assert len(page["Volumes"]) == 1 and page["NextToken"]
    status = ec2.describe_volume_status(VolumeIds=[vol_id])["VolumeStatuses"][0]
    assert status["VolumeStatus"]["Status"] == "ok"
    assert ec2.describe_volume_attribute(VolumeId=vol_id, Attribute="autoEnableIO")["AutoEnableIO"]["Value"] is False
    ec2.modify_volume_attribute(VolumeId=vol_id, AutoEnableIO={"Value": True})
    assert ec2.describe_volume_attribute(VolumeId=vol_id, Attribute="autoEnableIO")["AutoEnableIO"]["Value"] is True

    refused("InvalidAttachment.NotFound", ec2.detach_volume, VolumeId=vol_id, InstanceId="i-00000000")
    assert ec2.detach_volume(VolumeId=vol_id)["State"] == "detaching"
    assert available(ec2, vol_id)["Attachments"] == []
    assert instance_id not in box.cloud.box.sims[node.node].volumes

    # an instance that ends lets its volumes go
    ec2.attach_volume(VolumeId=other, InstanceId=instance_id, Device="/dev/sdh")
    attached(ec2, other)
    ec2.terminate_instances(InstanceIds=[instance_id])
    until(lambda: volume(ec2, other)["State"] == "available")
    refused("IncorrectState", ec2.attach_volume, VolumeId=other, InstanceId=instance_id, Device="/dev/sdh")
    ec2.delete_volume(VolumeId=other)
    ec2.delete_volume(VolumeId=vol_id)
    assert not path.exists()
    refused("InvalidVolume.NotFound", ec2.describe_volumes, VolumeIds=[vol_id])


def test_a_detach_the_node_refuses_stays_attached_unless_forced(box: Box) -> None:
    """DetachVolume answers ``detaching``; a node that will not let the disk go puts the
    attachment back to ``attached`` (the guest still has it), and Force lets the volume go."""
    ec2 = box.client("ebs-force")
    zone = ec2.describe_availability_zones()["AvailabilityZones"][0]["ZoneName"]
    vol_id = ec2.create_volume(Size=1, AvailabilityZone=zone)["VolumeId"]
    available(ec2, vol_id)
    instance_id = running(box, ec2)
    ec2.attach_volume(VolumeId=vol_id, InstanceId=instance_id, Device="/dev/sdf")
    attached(ec2, vol_id)
    node = box.cloud.cc.instance(instance_id)
    assert node is not None
    held = box.cloud.box.sims[node.node].volumes[instance_id]
    del held["vdf"]  # the node no longer knows the disk: its detach is refused
    assert ec2.detach_volume(VolumeId=vol_id)["State"] == "detaching"
    shown = attached(ec2, vol_id)
    assert shown["State"] == "in-use" and shown["Attachments"][0]["InstanceId"] == instance_id
    assert ec2.detach_volume(VolumeId=vol_id, Force=True)["State"] == "detaching"
    assert available(ec2, vol_id)["Attachments"] == []
    ec2.delete_volume(VolumeId=vol_id)


def test_snapshot_to_walrus_and_back(box: Box) -> None:
    ec2 = box.client("snap-user")
    zone = ec2.describe_availability_zones()["AvailabilityZones"][0]["ZoneName"]
    vol_id = ec2.create_volume(Size=1, AvailabilityZone=zone)["VolumeId"]
    available(ec2, vol_id)
    path = box.data_dir / "volumes" / vol_id
    payload = {0: os.urandom(4096), 300 << 20: b"middle" * 1000, GIB - 4096: b"\xff" * 4096}
    with open(path, "r+b") as f:
        for offset, data in payload.items():
            f.seek(offset)
            f.write(data)
    snap = ec2.create_snapshot(VolumeId=vol_id, Description="before",
                               TagSpecifications=[{"ResourceType": "snapshot", "Tags": [{"Key": "k", "Value": "v"}]}])
    snap_id = snap["SnapshotId"]
    assert snap_id.startswith("snap-") and snap["State"] == "pending" and snap["Progress"].endswith("%")
    with open(path, "r+b") as f:  # a write after the snapshot began is not in it
        f.write(b"later")
    done = until(lambda: (s := ec2.describe_snapshots(SnapshotIds=[snap_id])["Snapshots"][0])["State"] == "completed"
                 and s, 60)
    assert done["Progress"] == "100%" and done["VolumeSize"] == 1 and done["Tags"] == [{"Key": "k", "Value": "v"}]
    assert box.walrus is not None
    admin = box.walrus.directory.admin()
    info = box.walrus.head_object(admin, box.cloud.snapshots.bucket, snap_id)
    assert 0 < info.size < 16 << 20  # gzip: the volume's holes cost next to nothing
    assert [s["SnapshotId"] for s in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]] == [snap_id]
    assert ec2.describe_snapshots(Filters=[{"Name": "volume-id", "Values": [vol_id]}])["Snapshots"][0]["SnapshotId"] \
        == snap_id

    restored = ec2.create_volume(SnapshotId=snap_id, AvailabilityZone=zone)
    assert restored["SnapshotId"] == snap_id and restored["Size"] == 1
    available(ec2, restored["VolumeId"])
    copy = box.data_dir / "volumes" / restored["VolumeId"]
    with open(copy, "rb") as f:
        for offset, data in payload.items():
            f.seek(offset)
            assert f.read(len(data)) == data
        f.seek(0)
        assert f.read(5) != b"later"
    assert copy.stat().st_blocks * 512 < 64 << 20  # zero runs stayed holes
    refused("InvalidParameterValue", ec2.create_volume, SnapshotId=snap_id, Size=0, AvailabilityZone=zone)

    copied = ec2.copy_snapshot(SourceSnapshotId=snap_id, SourceRegion="eucalyptus", Description="copy")["SnapshotId"]
    until(lambda: ec2.describe_snapshots(SnapshotIds=[copied])["Snapshots"][0]["State"] == "completed")
    refused("InvalidParameterValue", ec2.copy_snapshot, SourceSnapshotId=snap_id, SourceRegion="us-west-2")

    # createVolumePermission shares it with another account
    other = box.client("snap-friend")
    friend_id = box.cloud.accounts.get("snap-friend").account_id  # type: ignore[union-attr]
    refused("InvalidSnapshot.NotFound", other.describe_snapshots, SnapshotIds=[snap_id])
    ec2.modify_snapshot_attribute(SnapshotId=snap_id, Attribute="createVolumePermission", OperationType="add",
                                  UserIds=[friend_id])
    perms = ec2.describe_snapshot_attribute(SnapshotId=snap_id, Attribute="createVolumePermission")
    assert perms["CreateVolumePermissions"] == [{"UserId": friend_id}]
    assert [s["SnapshotId"] for s in other.describe_snapshots(RestorableByUserIds=["self"])["Snapshots"]] == [snap_id]
    assert other.describe_snapshots(OwnerIds=["self"])["Snapshots"] == []
    theirs = other.create_volume(SnapshotId=snap_id, AvailabilityZone=zone)["VolumeId"]
    available(other, theirs)
    refused("InvalidSnapshot.NotFound", other.delete_snapshot, SnapshotId=snap_id)
    ec2.reset_snapshot_attribute(SnapshotId=snap_id, Attribute="createVolumePermission")
    refused("InvalidSnapshot.NotFound", other.describe_snapshots, SnapshotIds=[snap_id])

    ec2.delete_snapshot(SnapshotId=snap_id)
    refused("InvalidSnapshot.NotFound", ec2.describe_snapshots, SnapshotIds=[snap_id])
    with pytest.raises(S3Error):
        box.walrus.head_object(admin, box.cloud.snapshots.bucket, snap_id)
    refused("InvalidSnapshotID.Malformed", ec2.delete_snapshot, SnapshotId="snap-zz")


def test_another_accounts_volumes_and_snapshots_are_not_found(box: Box) -> None:
    alice, bob = box.client("ebs-alice"), box.client("ebs-bob")
    zone = alice.describe_availability_zones()["AvailabilityZones"][0]["ZoneName"]
    vol_id = alice.create_volume(Size=1, AvailabilityZone=zone)["VolumeId"]
    available(alice, vol_id)
    snap_id = alice.create_snapshot(VolumeId=vol_id)["SnapshotId"]
    until(lambda: alice.describe_snapshots(SnapshotIds=[snap_id])["Snapshots"][0]["State"] == "completed")
    assert vol_id not in {v["VolumeId"] for v in bob.describe_volumes()["Volumes"]}
    assert snap_id not in {s["SnapshotId"] for s in bob.describe_snapshots()["Snapshots"]}
    for call, kw in ((bob.describe_volumes, {"VolumeIds": [vol_id]}), (bob.delete_volume, {"VolumeId": vol_id}),
                     (bob.create_snapshot, {"VolumeId": vol_id}),
                     (bob.detach_volume, {"VolumeId": vol_id}),
                     (bob.describe_volume_attribute, {"VolumeId": vol_id, "Attribute": "autoEnableIO"}),
                     (bob.create_tags, {"Resources": [vol_id], "Tags": [{"Key": "a", "Value": "b"}]})):
        refused("InvalidVolume.NotFound", call, **kw)
    for call, kw in ((bob.describe_snapshots, {"SnapshotIds": [snap_id]}),
                     (bob.delete_snapshot, {"SnapshotId": snap_id}),
                     (bob.create_volume, {"SnapshotId": snap_id, "AvailabilityZone": zone}),
                     (bob.copy_snapshot, {"SourceSnapshotId": snap_id, "SourceRegion": "eucalyptus"}),
                     (bob.modify_snapshot_attribute, {"SnapshotId": snap_id, "Attribute": "createVolumePermission",
                                                      "OperationType": "add", "GroupNames": ["all"]}),
                     (bob.create_tags, {"Resources": [snap_id], "Tags": [{"Key": "a", "Value": "b"}]})):
        refused("InvalidSnapshot.NotFound", call, **kw)
    assert volume(alice, vol_id)["State"] == "available"


def test_tag_specifications_of_another_resource_type_are_refused_and_make_nothing(box: Box) -> None:
    ec2 = box.client("ebs-tagspec")
    zone = ec2.describe_availability_zones()["AvailabilityZones"][0]["ZoneName"]
    wrong = [{"ResourceType": "snapshot", "Tags": [{"Key": "k", "Value": "v"}]}]
    message = refused("InvalidParameterValue", ec2.create_volume, Size=1, AvailabilityZone=zone,
                      TagSpecifications=wrong)
    assert "'snapshot' is not a valid taggable resource type" in message
    assert ec2.describe_volumes()["Volumes"] == []
    vol_id = ec2.create_volume(Size=1, AvailabilityZone=zone)["VolumeId"]
    available(ec2, vol_id)
    message = refused("InvalidParameterValue", ec2.create_snapshot, VolumeId=vol_id,
                      TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": "k", "Value": "v"}]}])
    assert "'volume' is not a valid taggable resource type" in message
    assert ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"] == []


def test_a_restarted_cloud_knows_its_volumes_and_attaches_them_again(tmp_path: Path) -> None:
    with running_box(tmp_path) as box:
        ec2 = box.client("restart-user")
        zone = ec2.describe_availability_zones()["AvailabilityZones"][0]["ZoneName"]
        vol_id = ec2.create_volume(Size=1, AvailabilityZone=zone)["VolumeId"]
        available(ec2, vol_id)
        instance_id = running(box, ec2)
        ec2.attach_volume(VolumeId=vol_id, InstanceId=instance_id, Device="/dev/sdf")
        attached(ec2, vol_id)
    with running_box(tmp_path) as box:
        ec2 = box.client("restart-user")
        shown = volume(ec2, vol_id)
        assert shown["State"] == "in-use" and shown["Attachments"][0]["InstanceId"] == instance_id
        node = box.cloud.cc.instance(instance_id)
        assert node is not None and vol_id == box.cloud.box.sims[node.node].volumes[instance_id]["vdf"].volume_id


def test_a_restarted_cloud_undoes_an_attach_and_finishes_a_detach_a_crash_cut_off(tmp_path: Path) -> None:
    """A crash between recording ``attaching`` (or ``detaching``) and the worker's outcome: the
    restarted cloud lets the half-made attachment go, finishes the detach, and keeps what was
    attached."""
    from euca.store import Store

    with running_box(tmp_path) as box:
        ec2 = box.client("restart-pending")
        zone = ec2.describe_availability_zones()["AvailabilityZones"][0]["ZoneName"]
        kept, cut, gone = (ec2.create_volume(Size=1, AvailabilityZone=zone)["VolumeId"] for _ in range(3))
        for vol_id in (kept, cut, gone):
            available(ec2, vol_id)
        instance_id = running(box, ec2)
        for vol_id, device in ((kept, "/dev/sdf"), (gone, "/dev/sdg")):
            ec2.attach_volume(VolumeId=vol_id, InstanceId=instance_id, Device=device)
            attached(ec2, vol_id)
    # what the store holds when the cloud stopped in the middle of AttachVolume of cut and
    # DetachVolume of gone: the request's record, not the worker's outcome
    store = Store(str(tmp_path / "euca.db"))
    try:
        bodies = {id_: (account, body) for id_, account, body in store.load("volume")}
        with store.transaction() as tx:
            account, body = bodies[cut]
            tx.put("volume", cut, account, {**body, "state": "in-use", "instance_id": instance_id,
                                            "device": "/dev/sdh", "attach_state": "attaching",
                                            "attach_time": time.time(), "node": bodies[kept][1]["node"]})
            account, body = bodies[gone]
            tx.put("volume", gone, account, {**body, "attach_state": "detaching"})
    finally:
        store.close()
    with running_box(tmp_path) as box:
        ec2 = box.client("restart-pending")
        for vol_id in (cut, gone):
            assert available(ec2, vol_id)["Attachments"] == []
        shown = attached(ec2, kept)
        assert shown["State"] == "in-use" and shown["Attachments"][0]["InstanceId"] == instance_id
        node = box.cloud.cc.instance(instance_id)
        assert node is not None
        assert {d: v.volume_id for d, v in box.cloud.box.sims[node.node].volumes[instance_id].items()} \
            == {"vdf": kept}
        until(lambda: ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["State"]
              ["Name"] == "running")
        ec2.attach_volume(VolumeId=cut, InstanceId=instance_id, Device="/dev/sdh")  # attachable again
        assert attached(ec2, cut)["Attachments"][0]["Device"] == "/dev/sdh"


def test_eucalyptus_4_limits_a_volume_to_100_gib_and_an_account_to_500(box: Box) -> None:
    ec2, other = box.client("ebs-big"), box.client("ebs-big-other")
    zone = ec2.describe_availability_zones()["AvailabilityZones"][0]["ZoneName"]
    assert "100 GiB" in refused("VolumeLimitExceeded", ec2.create_volume, Size=101, AvailabilityZone=zone)
    made = [ec2.create_volume(Size=100, AvailabilityZone=zone)["VolumeId"] for _ in range(5)]
    for vol_id in made:
        assert available(ec2, vol_id)["Size"] == 100
    assert (box.data_dir / "volumes" / made[0]).stat().st_size == 100 * GIB
    before = {v["VolumeId"] for v in ec2.describe_volumes()["Volumes"]}
    assert "500 GiB" in refused("VolumeLimitExceeded", ec2.create_volume, Size=1, AvailabilityZone=zone)
    assert {v["VolumeId"] for v in ec2.describe_volumes()["Volumes"]} == before  # the refusal made nothing
    theirs = other.create_volume(Size=100, AvailabilityZone=zone)["VolumeId"]  # the total is per account
    available(other, theirs)
    ec2.delete_volume(VolumeId=made.pop())
    made.append(ec2.create_volume(Size=100, AvailabilityZone=zone)["VolumeId"])  # deleting made room
    available(ec2, made[-1])
    for vol_id in made:
        ec2.delete_volume(VolumeId=vol_id)
    other.delete_volume(VolumeId=theirs)


def test_a_failed_volume_is_shown_as_error_then_removed(box: Box) -> None:
    ec2 = box.client("ebs-failed")
    zone = ec2.describe_availability_zones()["AvailabilityZones"][0]["ZoneName"]
    vol_id = ec2.create_volume(Size=1, AvailabilityZone=zone)["VolumeId"]
    available(ec2, vol_id)
    snap_id = ec2.create_snapshot(VolumeId=vol_id)["SnapshotId"]
    until(lambda: ec2.describe_snapshots(SnapshotIds=[snap_id])["Snapshots"][0]["State"] == "completed")
    assert box.walrus is not None
    admin = box.walrus.directory.admin()
    assert admin is not None
    box.walrus.delete_object(admin, box.cloud.snapshots.bucket, snap_id)  # its bytes are gone: restoring fails
    broken = ec2.create_volume(SnapshotId=snap_id, AvailabilityZone=zone)["VolumeId"]
    assert until(lambda: volume(ec2, broken)["State"] == "error")
    assert ec2.describe_volume_status(VolumeIds=[broken])["VolumeStatuses"][0]["VolumeStatus"]["Status"] == "impaired"
    sc_status = {v["volume_id"]: v["status"] for v in box.cloud.volumes.sc.describe()}
    assert sc_status[broken] == "failed"
    time.sleep(1)
    assert volume(ec2, broken)["State"] == "error"  # kept ten minutes by default, to be seen
    box.cloud.volumes.failed_ttl = 0.5
    try:
        until(lambda: broken not in {v["VolumeId"] for v in ec2.describe_volumes()["Volumes"]})
    finally:
        box.cloud.volumes.failed_ttl = 600.0
    refused("InvalidVolume.NotFound", ec2.describe_volumes, VolumeIds=[broken])
    assert broken not in {v["volume_id"] for v in box.cloud.volumes.sc.describe()}
    assert not (box.data_dir / "volumes" / broken).exists()
    assert volume(ec2, vol_id)["State"] == "available"  # only the failed one went
    ec2.delete_snapshot(SnapshotId=snap_id)
    ec2.delete_volume(VolumeId=vol_id)


def test_euca_up_killed_mid_snapshot_and_mid_restore(tmp_path: Path) -> None:
    """The Storage Controller in euca up's process dies with it (kill -9): after the restart the
    snapshot is error, the restored volume error (then removed), the copy the snapshot was read
    from is gone, and the volume still holds its bytes."""
    port = free_port()
    pieces = {GIB * i // 4: os.urandom(96 << 20) for i in range(4)}
    with euca_up(tmp_path, port) as proc:
        ec2 = client(tmp_path, port)
        zone = ec2.describe_availability_zones()["AvailabilityZones"][0]["ZoneName"]
        vol_id = ec2.create_volume(Size=2, AvailabilityZone=zone)["VolumeId"]
        until(lambda: volume(ec2, vol_id)["State"] == "available")
        path = tmp_path / "volumes" / vol_id
        with open(path, "r+b") as f:
            for offset, data in pieces.items():
                f.seek(offset)
                f.write(data)
        done = ec2.create_snapshot(VolumeId=vol_id)["SnapshotId"]
        until(lambda: ec2.describe_snapshots(SnapshotIds=[done])["Snapshots"][0]["State"] == "completed", 120)
        restoring = ec2.create_volume(SnapshotId=done, AvailabilityZone=zone)["VolumeId"]
        cut = ec2.create_snapshot(VolumeId=vol_id)["SnapshotId"]
        until(lambda: ec2.describe_snapshots(SnapshotIds=[cut])["Snapshots"][0]["Progress"] != "0%")
        assert volume(ec2, restoring)["State"] == "creating"
        proc.kill()
        proc.wait(10)
    assert list((tmp_path / "volumes").glob("*.clone"))
    with euca_up(tmp_path, port):
        ec2 = client(tmp_path, port)
        assert ec2.describe_snapshots(SnapshotIds=[cut])["Snapshots"][0]["State"] == "error"
        assert ec2.describe_snapshots(SnapshotIds=[done])["Snapshots"][0]["State"] == "completed"
        assert volume(ec2, restoring)["State"] == "error"
        assert volume(ec2, vol_id)["State"] == "available"
        assert not list((tmp_path / "volumes").glob("*.clone"))
        again = ec2.create_volume(SnapshotId=done, AvailabilityZone=zone)["VolumeId"]
        until(lambda: volume(ec2, again)["State"] == "available", 120)
        with open(tmp_path / "volumes" / again, "rb") as f:
            for offset, data in pieces.items():
                f.seek(offset)
                assert f.read(len(data)) == data
        ec2.delete_snapshot(SnapshotId=cut)
        for volume_id in (restoring, again):
            ec2.delete_volume(VolumeId=volume_id)
        assert not (tmp_path / "volumes" / restoring).exists()
