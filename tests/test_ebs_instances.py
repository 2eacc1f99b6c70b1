"""EBS-backed images and instances over the real EC2 API: an image registered from a snapshot,
instances whose root volume is restored from it, StopInstances / StartInstances through the
cluster controller, the attributes a stopped instance may change, and what termination does with
the root volume."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ec2_server import Box, refused, running_box, until

ROOT = "/dev/sda1"


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    with running_box(tmp_path_factory.mktemp("ebs-instances")) as b:
        yield b


def instance(ec2: Any, instance_id: str) -> dict[str, Any]:
    return dict(ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0])


def in_state(ec2: Any, instance_id: str, state: str) -> dict[str, Any]:
    return dict(until(lambda: (i := instance(ec2, instance_id))["State"]["Name"] == state and i))


def volume(ec2: Any, volume_id: str) -> dict[str, Any]:
    return dict(ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0])


def snapshot(ec2: Any) -> str:
    zone = ec2.describe_availability_zones()["AvailabilityZones"][0]["ZoneName"]
    vol_id = ec2.create_volume(Size=1, AvailabilityZone=zone)["VolumeId"]
    until(lambda: volume(ec2, vol_id)["State"] == "available")
    snap_id = str(ec2.create_snapshot(VolumeId=vol_id)["SnapshotId"])
    until(lambda: ec2.describe_snapshots(SnapshotIds=[snap_id])["Snapshots"][0]["State"] == "completed")
    ec2.delete_volume(VolumeId=vol_id)
    return snap_id


def root_disk(box: Box, instance_id: str) -> str:
    """The volume the instance's in-box node holds as its first disk."""
    placed = box.cloud.cc.instance(instance_id)
    assert placed is not None
    held = box.cloud.box.sims[placed.node].volumes[instance_id]["vda"]
    assert held.path == box.cloud.volumes.sc.local_path(held.volume_id)
    return str(held.volume_id)


def ebs_image(ec2: Any, snap_id: str, name: str, delete: bool | None = None) -> str:
    ebs: dict[str, Any] = {"SnapshotId": snap_id}
    if delete is not None:
        ebs["DeleteOnTermination"] = delete
    return str(ec2.register_image(Name=name, RootDeviceName=ROOT, Architecture="x86_64",
                                  BlockDeviceMappings=[{"DeviceName": ROOT, "Ebs": ebs}])["ImageId"])


def test_register_run_stop_modify_start_terminate(box: Box) -> None:
    ec2 = box.client("ebs-boot")
    snap_id = snapshot(ec2)
    image_id = ebs_image(ec2, snap_id, "ebs-root")
    image = ec2.describe_images(ImageIds=[image_id])["Images"][0]
    assert image["RootDeviceType"] == "ebs" and image["RootDeviceName"] == ROOT and image["State"] == "available"
    assert image["BlockDeviceMappings"][0]["DeviceName"] == ROOT
    ebs = image["BlockDeviceMappings"][0]["Ebs"]
    assert ebs["SnapshotId"] == snap_id and ebs["VolumeSize"] == 1 and ebs["DeleteOnTermination"] is True
    refused("InvalidSnapshot.InUse", ec2.delete_snapshot, SnapshotId=snap_id)
    refused("InvalidSnapshot.NotFound", ec2.register_image, Name="nope", RootDeviceName=ROOT,
            BlockDeviceMappings=[{"DeviceName": ROOT, "Ebs": {"SnapshotId": "snap-00000000"}}])
    refused("InvalidBlockDeviceMapping", ec2.register_image, Name="nope", RootDeviceName=ROOT,
            BlockDeviceMappings=[{"DeviceName": "/dev/sdb", "Ebs": {"SnapshotId": snap_id}}])

    made = ec2.run_instances(ImageId=image_id, MinCount=1, MaxCount=1, InstanceType="m1.small",
                             InstanceInitiatedShutdownBehavior="stop")["Instances"][0]
    instance_id = made["InstanceId"]
    assert made["RootDeviceType"] == "ebs" and made["RootDeviceName"] == ROOT
    root = made["BlockDeviceMappings"][0]
    vol_id = root["Ebs"]["VolumeId"]
    assert root["DeviceName"] == ROOT and root["Ebs"]["DeleteOnTermination"] is True
    vol = volume(ec2, vol_id)
    assert vol["State"] == "in-use" and vol["SnapshotId"] == snap_id and vol["Size"] == 1
    assert vol["Attachments"][0]["InstanceId"] == instance_id and vol["Attachments"][0]["Device"] == ROOT
    refused("OperationNotPermitted", ec2.detach_volume, VolumeId=vol_id, Force=True)
    running = in_state(ec2, instance_id, "running")
    assert running["PublicIpAddress"]
    assert root_disk(box, instance_id) == vol_id  # the in-box node holds the volume's file as vda
    assert ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="instanceInitiatedShutdownBehavior")[
        "InstanceInitiatedShutdownBehavior"]["Value"] == "stop"
    refused("IncorrectInstanceState", ec2.modify_instance_attribute, InstanceId=instance_id,
            InstanceType={"Value": "c1.medium"})

    # disableApiStop is enforced
    ec2.modify_instance_attribute(InstanceId=instance_id, DisableApiStop={"Value": True})
    refused("OperationNotPermitted", ec2.stop_instances, InstanceIds=[instance_id])
    ec2.modify_instance_attribute(InstanceId=instance_id, DisableApiStop={"Value": False})

    stopping = ec2.stop_instances(InstanceIds=[instance_id])["StoppingInstances"][0]
    assert stopping["PreviousState"] == {"Code": 16, "Name": "running"}
    assert stopping["CurrentState"] == {"Code": 64, "Name": "stopping"}
    stopped = in_state(ec2, instance_id, "stopped")
    assert stopped["State"]["Code"] == 80 and not stopped.get("PublicIpAddress")
    assert box.cloud.cc.instance(instance_id) is None  # its capacity went back to the cluster
    assert volume(ec2, vol_id)["State"] == "in-use"  # the root volume stays
    refused("IncorrectInstanceState", ec2.reboot_instances, InstanceIds=[instance_id])
    found = ec2.describe_instances(Filters=[{"Name": "root-device-type", "Values": ["ebs"]},
                                            {"Name": "instance-state-name", "Values": ["stopped"]},
                                            {"Name": "block-device-mapping.volume-id", "Values": [vol_id]}])
    assert [i["InstanceId"] for r in found["Reservations"] for i in r["Instances"]] == [instance_id]
    assert ec2.describe_images(Filters=[{"Name": "block-device-mapping.snapshot-id", "Values": [snap_id]}])[
        "Images"][0]["ImageId"] == image_id
    assert [i["InstanceId"] for i in ec2.describe_instance_status(InstanceIds=[instance_id],
                                                                  IncludeAllInstances=True)["InstanceStatuses"]] \
        == [instance_id]
    box.cloud.instances.reconcile()
    box.cloud.volumes.reconcile()  # housekeeping neither ends a stopped instance nor detaches its root
    assert instance(ec2, instance_id)["State"]["Name"] == "stopped"
    assert volume(ec2, vol_id)["State"] == "in-use"

    ec2.modify_instance_attribute(InstanceId=instance_id, InstanceType={"Value": "c1.medium"})
    ec2.modify_instance_attribute(InstanceId=instance_id, UserData={"Value": b"#!/bin/sh\necho again\n"})
    assert ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="instanceType")[
        "InstanceType"]["Value"] == "c1.medium"
    refused("InvalidParameterValue", ec2.modify_instance_attribute, InstanceId=instance_id,
            InstanceType={"Value": "m9.huge"})
    ec2.stop_instances(InstanceIds=[instance_id])  # stopping a stopped instance changes nothing

    starting = ec2.start_instances(InstanceIds=[instance_id])["StartingInstances"][0]
    assert starting["PreviousState"]["Name"] == "stopped" and starting["CurrentState"]["Name"] == "pending"
    again = in_state(ec2, instance_id, "running")
    assert again["InstanceType"] == "c1.medium" and again["PublicIpAddress"] and again["PrivateIpAddress"]
    placed = box.cloud.cc.instance(instance_id)
    assert placed is not None and placed.vmtype == "c1.medium"  # placed again, as the new type
    assert root_disk(box, instance_id) == vol_id
    assert ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="userData")["UserData"]["Value"]

    ended = ec2.terminate_instances(InstanceIds=[instance_id])["TerminatingInstances"][0]
    assert ended["PreviousState"]["Name"] == "running"
    refused("InvalidVolume.NotFound", ec2.describe_volumes, VolumeIds=[vol_id])  # DeleteOnTermination
    assert box.cloud.cc.instance(instance_id) is None


def test_root_volume_kept_and_a_stopped_instance_terminated(box: Box) -> None:
    ec2 = box.client("ebs-keep")
    snap_id = snapshot(ec2)
    image_id = ebs_image(ec2, snap_id, "ebs-keep", delete=False)
    made = ec2.run_instances(ImageId=image_id, MinCount=2, MaxCount=2)["Instances"]
    ids = [i["InstanceId"] for i in made]
    vols = [i["BlockDeviceMappings"][0]["Ebs"]["VolumeId"] for i in made]
    assert len(set(vols)) == 2 and all(i["BlockDeviceMappings"][0]["Ebs"]["DeleteOnTermination"] is False
                                       for i in made)
    for instance_id in ids:
        in_state(ec2, instance_id, "running")
    ec2.stop_instances(InstanceIds=[ids[0]])
    in_state(ec2, ids[0], "stopped")
    ec2.terminate_instances(InstanceIds=ids)
    for instance_id in ids:
        in_state(ec2, instance_id, "terminated")
    for vol_id in vols:
        vol = volume(ec2, vol_id)
        assert vol["State"] == "available" and vol["Attachments"] == []
        ec2.delete_volume(VolumeId=vol_id)
    refused("IncorrectInstanceState", ec2.start_instances, InstanceIds=[ids[0]])

    # RunInstances may ask for the root to go with the instance after all
    overridden = ec2.run_instances(ImageId=image_id, MinCount=1, MaxCount=1, BlockDeviceMappings=[
        {"DeviceName": ROOT, "Ebs": {"DeleteOnTermination": True}}])["Instances"][0]
    vol_id = overridden["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]
    ec2.terminate_instances(InstanceIds=[overridden["InstanceId"]])
    refused("InvalidVolume.NotFound", ec2.describe_volumes, VolumeIds=[vol_id])
    ec2.deregister_image(ImageId=image_id)
    ec2.delete_snapshot(SnapshotId=snap_id)  # no image uses it now


def test_instance_store_instances_cannot_be_stopped(box: Box) -> None:
    ec2 = box.client("ebs-store")
    image = box.image()
    assert ec2.describe_images(ImageIds=[image])["Images"][0]["RootDeviceType"] == "instance-store"
    refused("InvalidParameterCombination", ec2.run_instances, ImageId=image, MinCount=1, MaxCount=1,
            InstanceInitiatedShutdownBehavior="stop")
    instance_id = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    message = refused("UnsupportedOperation", ec2.stop_instances, InstanceIds=[instance_id])
    assert message == (f"The instance '{instance_id}' does not have an 'ebs' root device type and cannot be "
                       "stopped.")
    refused("UnsupportedOperation", ec2.start_instances, InstanceIds=[instance_id])
    refused("IncorrectInstanceState", ec2.modify_instance_attribute, InstanceId=instance_id,
            InstanceType={"Value": "c1.medium"})
    refused("UnsupportedOperation", ec2.modify_instance_attribute, InstanceId=instance_id,
            InstanceInitiatedShutdownBehavior={"Value": "stop"})
    ec2.terminate_instances(InstanceIds=[instance_id])


def test_a_guest_that_shuts_itself_down_is_stopped_with_behavior_stop(box: Box) -> None:
    ec2 = box.client("ebs-halt")
    image_id = ebs_image(ec2, snapshot(ec2), "ebs-halt")
    ids = [ec2.run_instances(ImageId=image_id, MinCount=1, MaxCount=1, InstanceInitiatedShutdownBehavior=how)[
        "Instances"][0]["InstanceId"] for how in ("stop", "terminate")]
    for instance_id in ids:
        in_state(ec2, instance_id, "running")
        placed = box.cloud.cc.instance(instance_id)
        assert placed is not None
        box.cloud.box.fleet.nodes[placed.node].terminate(instance_id)  # the node tears down a powered-off guest
    until(lambda: box.cloud.instances.reconcile() or all(
        instance(ec2, i)["State"]["Name"] in ("stopping", "stopped", "shutting-down", "terminated") for i in ids))
    in_state(ec2, ids[0], "stopped")
    in_state(ec2, ids[1], "terminated")
    ec2.start_instances(InstanceIds=[ids[0]])
    in_state(ec2, ids[0], "running")
    ec2.terminate_instances(InstanceIds=[ids[0]])


def test_create_image_of_an_ebs_backed_instance(box: Box) -> None:
    ec2 = box.client("ebs-image")
    snap_id = snapshot(ec2)
    made = ec2.run_instances(ImageId=ebs_image(ec2, snap_id, "ebs-source"), MinCount=1, MaxCount=1)["Instances"][0]
    instance_id, root = made["InstanceId"], made["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]
    in_state(ec2, instance_id, "running")
    image_id = ec2.create_image(InstanceId=instance_id, Name="from-instance", Description="made", NoReboot=True)[
        "ImageId"]
    image = until(lambda: (i := ec2.describe_images(ImageIds=[image_id])["Images"][0])["State"] == "available" and i)
    assert image["RootDeviceType"] == "ebs" and image["RootDeviceName"] == ROOT and image["Description"] == "made"
    taken = image["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
    assert taken != snap_id
    snap = ec2.describe_snapshots(SnapshotIds=[taken])["Snapshots"][0]
    assert snap["VolumeId"] == root and snap["Description"].startswith(f"Created by CreateImage({instance_id})")
    refused("InvalidAMIName.Duplicate", ec2.create_image, InstanceId=instance_id, Name="from-instance")
    refused("InvalidSnapshot.InUse", ec2.delete_snapshot, SnapshotId=taken)

    child = ec2.run_instances(ImageId=image_id, MinCount=1, MaxCount=1)["Instances"][0]
    assert volume(ec2, child["BlockDeviceMappings"][0]["Ebs"]["VolumeId"])["SnapshotId"] == taken
    in_state(ec2, child["InstanceId"], "running")
    ec2.terminate_instances(InstanceIds=[instance_id, child["InstanceId"]])

    store = ec2.run_instances(ImageId=box.image(), MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    refused("UnsupportedOperation", ec2.create_image, InstanceId=store, Name="from-store")
    ec2.terminate_instances(InstanceIds=[store])


def test_stopped_and_running_ebs_instances_outlive_a_restart(tmp_path: Path) -> None:
    with running_box(tmp_path) as box:
        ec2 = box.client("ebs-restart")
        image_id = ebs_image(ec2, snapshot(ec2), "ebs-restart")
        made = ec2.run_instances(ImageId=image_id, MinCount=2, MaxCount=2)["Instances"]
        halted, kept = (i["InstanceId"] for i in made)
        root = made[0]["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]
        for instance_id in (halted, kept):
            in_state(ec2, instance_id, "running")
        ec2.stop_instances(InstanceIds=[halted])
        in_state(ec2, halted, "stopped")
    with running_box(tmp_path) as box:
        ec2 = box.client("ebs-restart")
        assert instance(ec2, halted)["State"]["Name"] == "stopped" and box.cloud.cc.instance(halted) is None
        in_state(ec2, kept, "running")
        assert volume(ec2, root)["State"] == "in-use"
        ec2.start_instances(InstanceIds=[halted])
        assert in_state(ec2, halted, "running")["BlockDeviceMappings"][0]["Ebs"]["VolumeId"] == root
        assert root_disk(box, halted) == root and root_disk(box, kept)
        ec2.terminate_instances(InstanceIds=[halted, kept])
        refused("InvalidVolume.NotFound", ec2.describe_volumes, VolumeIds=[root])


def test_the_metadata_service_follows_an_instance_through_stop_and_start(tmp_path: Path) -> None:
    from tests.test_metadata import STATIC, fetch

    with running_box(tmp_path, config=STATIC) as box:
        ec2 = box.client("ebs-md")
        image_id = ebs_image(ec2, snapshot(ec2), "ebs-md")
        instance_id = ec2.run_instances(ImageId=image_id, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
        first = in_state(ec2, instance_id, "running")["PrivateIpAddress"]
        assert fetch(box, first, "/latest/meta-data/instance-id")[1].decode() == instance_id
        ec2.stop_instances(InstanceIds=[instance_id])
        in_state(ec2, instance_id, "stopped")
        assert fetch(box, first, "/latest/meta-data/instance-id")[0] == 404
        other = ec2.run_instances(ImageId=box.image(), MinCount=1, MaxCount=1)["Instances"][0]
        taken = in_state(ec2, other["InstanceId"], "running")["PrivateIpAddress"]
        assert fetch(box, taken, "/latest/meta-data/instance-id")[1].decode() == other["InstanceId"]
        ec2.start_instances(InstanceIds=[instance_id])
        now = in_state(ec2, instance_id, "running")["PrivateIpAddress"]
        assert now != taken
        assert fetch(box, now, "/latest/meta-data/instance-id")[1].decode() == instance_id
        assert fetch(box, taken, "/latest/meta-data/instance-id")[1].decode() == other["InstanceId"]


def test_a_shared_ebs_image_launches_for_another_account(box: Box) -> None:
    owner, other = box.client("ebs-owner"), box.client("ebs-other")
    image_id = ebs_image(owner, snapshot(owner), "ebs-shared")
    other_account = box.cloud.accounts.get("ebs-other")
    assert other_account is not None
    refused("InvalidAMIID.NotFound", other.run_instances, ImageId=image_id, MinCount=1, MaxCount=1)
    owner.modify_image_attribute(ImageId=image_id, LaunchPermission={"Add": [{"UserId": other_account.account_id}]})
    made = other.run_instances(ImageId=image_id, MinCount=1, MaxCount=1)["Instances"][0]
    root = made["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]
    assert volume(other, root)["State"] == "in-use"  # the launching account's volume
    refused("InvalidVolume.NotFound", owner.describe_volumes, VolumeIds=[root])
    other.terminate_instances(InstanceIds=[made["InstanceId"]])


def test_private_addressing_holds_through_stop_and_start(box: Box) -> None:
    from tests.test_public_addresses import run_raw

    ec2 = box.client("alice")
    image_id = ebs_image(ec2, snapshot(ec2), "ebs-private")
    reply = run_raw(box, image_id, 1, "private")
    assert reply.status_code == 200, reply.text
    instance_id = re.search(r"<instanceId>(i-[0-9A-F]+)</instanceId>", reply.text).group(1)  # type: ignore[union-attr]
    assert "PublicIpAddress" not in in_state(ec2, instance_id, "running")
    ec2.stop_instances(InstanceIds=[instance_id])
    in_state(ec2, instance_id, "stopped")
    ec2.start_instances(InstanceIds=[instance_id])
    assert "PublicIpAddress" not in in_state(ec2, instance_id, "running")  # no dynamic address on restart either
    ec2.terminate_instances(InstanceIds=[instance_id])


def test_a_root_volume_the_storage_controller_cannot_export_ends_the_launch_with_its_reason(tmp_path: Path) -> None:
    """A remote node boots an EBS-backed instance from its root volume over iSCSI. This cloud's
    storage controller has no tgtd, so the export fails for real: the instance is terminated at
    once with the SC's reason as its StateReason, and its node never hears of it."""
    import secrets

    from euca.fleet.box import NodeSpec
    from tests.guest.procs import Process, free_port, run_instances

    key, port = secrets.token_hex(16), free_port()
    conf = tmp_path / "nc.conf"
    conf.write_text(f'INSTANCE_PATH="{tmp_path / "instances"}"\n')
    nc = Process("euca node-controller", ["-m", "euca.cli", "node-controller", "--sim", "--config", str(conf),
                                          "--host", "127.0.0.1", "--port", str(port), "--key", key],
                 tmp_path / "nc.log")
    try:
        nc.wait_for("node controller on")
        node = NodeSpec("node01", url=f"http://127.0.0.1:{port}", key=key)
        with running_box(tmp_path / "cloud", nodes=0, extra_nodes=[node]) as box:
            ec2 = box.client("ebs-no-export")
            image_id = ebs_image(ec2, snapshot(ec2), "ebs-remote")
            made = run_instances(ec2, image_id, nc)[0]
            instance_id, vol_id = made["InstanceId"], made["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]
            assert made["State"]["Name"] in ("shutting-down", "terminated")
            ended = in_state(ec2, instance_id, "terminated")
            reason = ended["StateReason"]
            assert reason["Code"] == "Server.InternalError"
            assert vol_id in reason["Message"] and "no iSCSI target (tgtd)" in reason["Message"]
            assert ended["StateTransitionReason"] == "Server initiated"
            found = ec2.describe_instances(Filters=[{"Name": "state-reason-code",
                                                     "Values": ["Server.InternalError"]}])
            assert [i["InstanceId"] for r in found["Reservations"] for i in r["Instances"]] == [instance_id]
            assert box.cloud.cc.instance(instance_id) is None  # its capacity went back to the cluster
            refused("InvalidVolume.NotFound", ec2.describe_volumes, VolumeIds=[vol_id])  # DeleteOnTermination
            # no ncRunInstance, so no refusal from the node ("no location given for emi-…") either
            assert box.cloud.box.fleet.sighting(instance_id) is None
            assert not list((tmp_path / "instances").glob(f"*/{instance_id}"))
    finally:
        nc.stop()
