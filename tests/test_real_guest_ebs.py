"""EBS on a real guest: volumes hot-plugged into QEMU guests over iSCSI, and an instance booted from
its root volume, through the cloud's EC2 API (boto3) and ``euca node-controller`` on libvirt.

The cloud runs in this process (tests/ec2_server.py) with a Storage Controller whose volumes tgtd
exports (tests/guest/iscsi.py: tgtd in the guests' network namespace, managed from the host); the
node controller is its own process, as ``euca node-controller --uri`` runs it, and fetches the
guest's images from the cloud's Walrus by presigned URL. The guest (tests/guest/guest.d/
60-volumes.sh) finds each disk whose serial is a volume id, writes a marker naming the volume and
itself (its SMBIOS serial is its instance id) unless one is there, and prints what the disk holds::

    euca-guest: volume vol-XXXXXXXX on vdb wrote EUCA-VOLUME vol-XXXXXXXX written-by=i-XXXXXXXX

so each step is proved by the bytes a guest read from the disk, read through GetConsoleOutput.

They need root and apt (CI); elsewhere they skip with the reason (see tests/guest/fixtures.py).
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.ec2_server import Box, running_box
from tests.guest import iscsi
from tests.guest.build_image import MARKER, GuestImage
from tests.guest.fixtures import BOOT_TIMEOUT
from tests.guest.libvirtd import Libvirtd
from tests.guest.procs import EC2_TIMEOUT, Process, free_port, run_instances, until

pytestmark = pytest.mark.real_guest

ZONE = "cluster01"
VOLUME_TIMEOUT = 60.0


@dataclass
class Cloud:
    box: Box
    ec2: Any
    nc: Process
    conn: Any
    instances: Path
    images: dict[str, str]  # machine, kernel, ramdisk -> id
    tgtd: iscsi.Tgtd
    nc_argv: list[str]
    restarts: int = 0

    def restart_node_controller(self) -> None:
        """Stop ``euca node-controller`` (its domains keep running) and start it again on the same port."""
        self.nc.stop()
        assert self.nc.proc.returncode is not None
        self.restarts += 1
        self.nc = Process("euca node-controller", self.nc_argv, self.nc.log.with_name(f"nc-{self.restarts}.log"))
        self.nc.wait_for("node controller on")

    def console(self, instance_id: str) -> str:
        out = str(self.ec2.get_console_output(InstanceId=instance_id).get("Output") or "")
        if "euca-guest" not in out:
            with contextlib.suppress(ValueError):
                out = base64.b64decode(out, validate=True).decode(errors="replace")
        return out

    def wait_console(self, instance_id: str, pattern: str, timeout: float = BOOT_TIMEOUT) -> re.Match[str]:
        found: list[re.Match[str]] = []

        def seen() -> bool:
            match = re.search(pattern, self.console(instance_id))
            if match:
                found.append(match)
            return match is not None

        try:
            until(f"{pattern!r} on {instance_id}'s console", seen, timeout, self.nc)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- {instance_id}'s console\n{self.console(instance_id)[-3000:]}\n"
                                 f"--- tgtd\n{self.tgtd.log_tail()}") from None
        return found[0]

    def state(self, instance_id: str) -> str:
        found = self.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
        return str(found[0]["Instances"][0]["State"]["Name"]) if found else "gone"

    def run(self, image_id: str, count: int = 1) -> list[str]:
        """RunInstances, retried until the cloud has heard from the node; waits until the guests booted."""
        ids = [str(i["InstanceId"]) for i in run_instances(self.ec2, image_id, self.nc, count=count)]
        until(f"{', '.join(ids)} running", lambda: all(self.state(i) == "running" for i in ids), EC2_TIMEOUT,
              self.nc)
        for iid in ids:
            self.wait_console(iid, re.escape(MARKER))
        return ids

    def volume_state(self, volume_id: str) -> str:
        return str(self.ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]["State"])

    def attached(self, volume_id: str) -> None:
        """Wait until AttachVolume's attachment, answered ``attaching``, is ``attached``."""
        def state() -> str:
            found = self.ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]["Attachments"]
            return str(found[0]["State"]) if found else ""
        until(f"{volume_id} attached", lambda: state() == "attached", VOLUME_TIMEOUT, self.nc)

    def new_volume(self, **kw: Any) -> str:
        volume_id = str(self.ec2.create_volume(AvailabilityZone=ZONE, **kw)["VolumeId"])
        until(f"{volume_id} available", lambda: self.volume_state(volume_id) == "available", VOLUME_TIMEOUT, self.nc)
        return volume_id

    def terminate(self, *ids: str) -> None:
        self.ec2.terminate_instances(InstanceIds=list(ids))
        until(f"{', '.join(ids)} destroyed", lambda: not set(ids) & {d.name() for d in self.conn.listAllDomains()},
              60.0, self.nc)


@pytest.fixture(scope="module")
def cloud(guest_image: GuestImage, libvirt_daemon: Libvirtd, tmp_path_factory: pytest.TempPathFactory,
          ) -> Iterator[Cloud]:
    import libvirt

    from euca.core.config import Config
    from euca.fleet.box import NodeSpec
    from euca.services.seed import import_files
    from euca.storage import Overlay, StorageController, Tgt
    from euca.store import Store

    try:
        iscsi.prepare()
    except iscsi.IscsiUnavailable as exc:
        if os.environ.get("EUCA_REQUIRE_REAL_GUEST") == "1":
            pytest.fail(f"real guest required but iSCSI is unavailable: {exc}", pytrace=False)
        pytest.skip(f"iSCSI unavailable: {exc}")
    tmp = tmp_path_factory.mktemp("ebs")
    data, instances = tmp / "data", tmp / "instances"
    data.mkdir()
    key, nc_port = secrets.token_hex(16), free_port()
    nc_conf = tmp / "nc.conf"
    nc_conf.write_text(f'HYPERVISOR="qemu"\nINSTANCE_PATH="{instances}"\nVNET_BRIDGE="br0"\nNC_PORT="{nc_port}"\n')
    tgtd = iscsi.Tgtd(libvirt_daemon)
    tgtd.start()
    sc_store = Store(str(data / "euca.db"))
    storage = StorageController(sc_store, Overlay(data / "volumes"), ZONE,
                                tgt=Tgt("127.0.0.1", tgtd.port, control_port=tgtd.control))
    nc_argv = ["-m", "euca.cli", "node-controller", "--config", str(nc_conf), "--uri", libvirt_daemon.uri,
               "--host", "127.0.0.1", "--port", str(nc_port), "--key", key]
    nc = Process("euca node-controller", nc_argv, tmp / "nc.log")
    conn = libvirt.open(libvirt_daemon.uri)
    try:
        nc.wait_for("node controller on")
        config = Config(hypervisor="qemu", nc_polling_frequency=2)
        node = NodeSpec("node01", url=f"http://127.0.0.1:{nc_port}", key=key)
        with running_box(data, nodes=0, config=config, extra_nodes=[node], storage=storage, zone=ZONE) as box:
            made = import_files(box.cloud.images, guest_image.root, kernel=guest_image.kernel,
                                ramdisk=guest_image.initrd, name="euca-test-guest")
            ec2 = box.client()
            made_cloud = Cloud(box, ec2, nc, conn, instances,
                               {"machine": made.machine, "kernel": made.kernel, "ramdisk": made.ramdisk}, tgtd,
                               nc_argv)
            try:
                yield made_cloud
            finally:
                left = [d.name() for d in conn.listAllDomains()]
                if left:
                    with contextlib.suppress(Exception):
                        ec2.terminate_instances(InstanceIds=left)
                    until("leftover domains destroyed", lambda: not conn.listAllDomains(), 60.0, made_cloud.nc)
                ec2.close()
                nc = made_cloud.nc
    finally:
        nc.stop()
        conn.close()
        tgtd.stop()
        sc_store.close()


def _marker_line(volume_id: str, device: str, how: str, origin: str, writer: str) -> str:
    """The console line of 60-volumes.sh for ``volume_id`` on ``device``: the marker of ``origin``
    (the volume it was first written on) by ``writer``."""
    return (rf"euca-guest: volume {volume_id} on ({device}) {how} "
            rf"EUCA-VOLUME {origin} written-by={writer}\b")


def test_a_volume_carries_its_bytes_between_real_guests_and_through_a_snapshot(cloud: Cloud) -> None:
    started = time.monotonic()
    first, second = cloud.run(cloud.images["machine"], count=2)
    booted = time.monotonic() - started
    assert {d.name() for d in cloud.conn.listAllDomains()} >= {first, second}

    volume = cloud.new_volume(Size=1)
    cloud.ec2.attach_volume(VolumeId=volume, InstanceId=first, Device="/dev/sdf")
    cloud.attached(volume)
    # the guest found the disk by its serial, wrote its marker and read it back from the disk
    on_first = cloud.wait_console(first, _marker_line(volume, r"vd[b-z]", "wrote", volume, first), 60.0)
    xml = cloud.conn.lookupByName(first).XMLDesc(0)
    assert f"<serial>{volume}</serial>" in xml and "protocol='iscsi'" in xml, xml

    cloud.ec2.detach_volume(VolumeId=volume)
    until(f"{volume} available", lambda: cloud.volume_state(volume) == "available", VOLUME_TIMEOUT, cloud.nc)
    cloud.wait_console(first, rf"euca-guest: volume {volume} left {on_first.group(1)}\b", 60.0)
    assert f"<serial>{volume}</serial>" not in cloud.conn.lookupByName(first).XMLDesc(0)

    cloud.ec2.attach_volume(VolumeId=volume, InstanceId=second, Device="/dev/sdf")
    # the second guest reads what the first one wrote: the same bytes, over a new iSCSI session
    cloud.wait_console(second, _marker_line(volume, r"vd[b-z]", "found", volume, first), 60.0)
    assert not re.search(rf"volume {volume} on \S+ wrote", cloud.console(second))

    snapshot = str(cloud.ec2.create_snapshot(VolumeId=volume)["SnapshotId"])

    def snapshot_state() -> str:
        return str(cloud.ec2.describe_snapshots(SnapshotIds=[snapshot])["Snapshots"][0]["State"])

    until(f"{snapshot} completed", lambda: snapshot_state() == "completed", VOLUME_TIMEOUT, cloud.nc)
    restored = cloud.new_volume(SnapshotId=snapshot)
    cloud.ec2.attach_volume(VolumeId=restored, InstanceId=first, Device="/dev/sdg")
    # a volume made from the snapshot holds the marker the first guest wrote on the original
    cloud.wait_console(first, _marker_line(restored, r"vd[b-z]", "found", volume, first), 60.0)

    cloud.terminate(first, second)
    until("the volumes released", lambda: {cloud.volume_state(v) for v in (volume, restored)} == {"available"},
          VOLUME_TIMEOUT, cloud.nc)
    assert not list(cloud.instances.glob(f"*/{first}")) and not list(cloud.instances.glob(f"*/{second}"))
    print(f"two guests booted in {booted:.1f} s; attach, detach, re-attach, snapshot and restore "
          f"{time.monotonic() - started - booted:.1f} s more")


def test_an_ebs_backed_instance_boots_from_its_root_volume_and_keeps_it_over_stop_and_start(cloud: Cloud) -> None:
    ec2 = cloud.ec2
    blank = cloud.new_volume(Size=1)
    snapshot = str(ec2.create_snapshot(VolumeId=blank)["SnapshotId"])
    until(f"{snapshot} completed",
          lambda: ec2.describe_snapshots(SnapshotIds=[snapshot])["Snapshots"][0]["State"] == "completed",
          VOLUME_TIMEOUT, cloud.nc)
    image_id = str(ec2.register_image(
        Name=f"ebs-guest-{secrets.token_hex(3)}", Architecture="x86_64", RootDeviceName="/dev/sda1",
        KernelId=cloud.images["kernel"], RamdiskId=cloud.images["ramdisk"],
        BlockDeviceMappings=[{"DeviceName": "/dev/sda1", "Ebs": {"SnapshotId": snapshot}}])["ImageId"])
    assert ec2.describe_images(ImageIds=[image_id])["Images"][0]["RootDeviceType"] == "ebs"

    started = time.monotonic()
    (iid,) = cloud.run(image_id)
    found = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
    assert found["RootDeviceType"] == "ebs"
    root = str(found["BlockDeviceMappings"][0]["Ebs"]["VolumeId"])
    # the guest's first disk is the 1 GiB root volume, reached over iSCSI: no copy of an image on the node
    assert "euca-guest: disk vda sectors=2097152 " in cloud.console(iid)
    xml = cloud.conn.lookupByName(iid).XMLDesc(0)
    assert f"<serial>{root}</serial>" in xml and "protocol='iscsi'" in xml and "<target dev='vda'" in xml, xml
    home = next(cloud.instances.glob(f"*/{iid}"))
    assert (home / "kernel").is_file() and not (home / "root").exists()
    cloud.wait_console(iid, _marker_line(root, "vda", "wrote", root, iid), 60.0)

    ec2.stop_instances(InstanceIds=[iid])
    until(f"{iid} stopped", lambda: cloud.state(iid) == "stopped", EC2_TIMEOUT, cloud.nc)
    until(f"{iid}'s domain destroyed", lambda: iid not in {d.name() for d in cloud.conn.listAllDomains()},
          60.0, cloud.nc)
    assert cloud.volume_state(root) == "in-use"

    ec2.start_instances(InstanceIds=[iid])
    until(f"{iid} running again", lambda: cloud.state(iid) == "running", EC2_TIMEOUT, cloud.nc)
    # the new domain's guest reads what the first boot wrote on the root volume
    cloud.wait_console(iid, _marker_line(root, "vda", "found", root, iid))
    assert not re.search(rf"volume {root} on vda wrote", cloud.console(iid))
    restarted = time.monotonic() - started

    cloud.terminate(iid)

    def root_deleted() -> bool:
        return root not in {v["VolumeId"] for v in ec2.describe_volumes()["Volumes"]}

    until(f"{root} deleted with its instance", root_deleted, VOLUME_TIMEOUT, cloud.nc)
    ec2.deregister_image(ImageId=image_id)
    ec2.delete_snapshot(SnapshotId=snapshot)
    ec2.delete_volume(VolumeId=blank)
    print(f"EBS-backed: booted, wrote, stopped, started and read back in {restarted:.1f} s")


def test_a_restarted_node_controller_attaches_volumes_to_the_guests_that_outlived_it(cloud: Cloud) -> None:
    (iid,) = cloud.run(cloud.images["machine"])
    home = next(cloud.instances.glob(f"*/{iid}"))
    cloud.restart_node_controller()
    assert cloud.conn.lookupByName(iid).isActive()  # the guest ran on meanwhile
    assert f"{iid}: adopted" in cloud.nc.output(), cloud.nc.output()[-3000:]

    volume = cloud.new_volume(Size=1)
    cloud.ec2.attach_volume(VolumeId=volume, InstanceId=iid, Device="/dev/sdf")
    on = cloud.wait_console(iid, _marker_line(volume, r"vd[b-z]", "wrote", volume, iid), 60.0)
    cloud.attached(volume)
    cloud.ec2.detach_volume(VolumeId=volume)
    cloud.wait_console(iid, rf"euca-guest: volume {volume} left {on.group(1)}\b", 60.0)
    until(f"{volume} available", lambda: cloud.volume_state(volume) == "available", VOLUME_TIMEOUT, cloud.nc)

    cloud.terminate(iid)
    until(f"{iid}'s files removed", lambda: not home.exists(), 60.0, cloud.nc)
    cloud.ec2.delete_volume(VolumeId=volume)
