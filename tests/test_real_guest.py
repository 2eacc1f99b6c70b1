"""A real Linux guest under QEMU software emulation, through a libvirtd of the test's own.

The first test uses libvirt-python alone, with the KVM domain layout Eucalyptus's node controller
writes (``gen_kvm_libvirt_xml``: hvm, ``root=/dev/sda1 console=ttyS0``, ACPI, disk ``sda``, an e1000
NIC on a bridge, the serial console logged to ``console.log``), to prove the guest, the daemon and the
namespaces work. The others run instances through euca end to end (``euca up`` and ``euca
node-controller --uri``): one of an image from ``euca image import``, one of a bundle made with
``euca bundle-image`` and ``euca upload-bundle`` and registered; either way the image lives in
Walrus and the node downloads it by presigned URL. EBS volumes and EBS-backed instances on the
real guest are in tests/test_real_guest_ebs.py.

They need root and apt (CI); elsewhere they skip with the reason (see tests/guest/fixtures.py).
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import pytest

from tests.guest.build_image import MARKER, ROOT_LABEL, GuestImage
from tests.guest.fixtures import BOOT_TIMEOUT, wait_for_line
from tests.guest.procs import EC2_TIMEOUT, Process, euca, euca_libvirt_nodes, free_port, run_instances, until

pytestmark = pytest.mark.real_guest
__all__ = ["euca_libvirt_nodes"]  # a fixture

SHUTDOWN_TIMEOUT = 60.0


def kvm_domain_xml(name: str, image: GuestImage, root: Path, console_log: Path, bridge: str = "br0",
                   mac: str = "d0:0d:12:34:56:78", memory_mb: int = 256) -> str:
    """The KVM layout of the reference (section 4), with domain type 'qemu': /dev/kvm cannot run guests here.

    The root disk is ``sda`` on a virtio-scsi controller: the real QEMU driver takes no partition targets,
    and the cloud kernel drives virtio-scsi (not the default LSI controller).
    """
    e = escape
    return f"""<domain type='qemu'>
  <name>{e(name)}</name>
  <memory unit='KiB'>{memory_mb * 1024}</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64'>hvm</type>
    <kernel>{e(str(image.kernel))}</kernel>
    <initrd>{e(str(image.initrd))}</initrd>
    <cmdline>root=/dev/sda1 console=ttyS0 euca.instance={e(name)}</cmdline>
  </os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <controller type='scsi' index='0' model='virtio-scsi'/>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='{e(str(root))}'/>
      <target dev='sda' bus='scsi'/>
    </disk>
    <interface type='bridge'>
      <source bridge='{e(bridge)}'/>
      <mac address='{e(mac)}'/>
      <model type='e1000'/>
    </interface>
    <serial type='pty'>
      <log file='{e(str(console_log))}' append='off'/>
      <target port='0'/>
    </serial>
    <console type='pty'><target type='serial' port='0'/></console>
  </devices>
</domain>
"""


def test_guest_boots_and_powers_off_through_libvirt(guest_image: GuestImage, libvirt_uri: str,
                                                    tmp_path: Path) -> None:
    import libvirt

    root = tmp_path / "root"
    shutil.copyfile(guest_image.root, root)  # the guest may write to its disk; the cached image stays clean
    console = tmp_path / "console.log"
    name = "euca-real-guest-a"
    conn = libvirt.open(libvirt_uri)
    try:
        dom = conn.defineXML(kvm_domain_xml(name, guest_image, root, console))
        try:
            started = time.monotonic()
            dom.create()
            text = wait_for_line(console, MARKER, BOOT_TIMEOUT, alive=lambda: bool(dom.isActive()))
            booted = time.monotonic() - started
            assert f"{MARKER} root=/dev/sda1 console=ttyS0 euca.instance={name}" in text
            assert f"label={ROOT_LABEL.decode()}" in text, "the guest did not see its root disk"

            dom.shutdown()  # the ACPI power button: the guest must power itself off
            deadline = time.monotonic() + SHUTDOWN_TIMEOUT
            while dom.isActive() and time.monotonic() < deadline:
                time.sleep(0.25)
            assert not dom.isActive(), f"no ACPI poweroff within {SHUTDOWN_TIMEOUT:.0f} s"
            assert "euca-guest: power button" in console.read_text(errors="replace")
            print(f"booted to the marker in {booted:.1f} s, powered off {time.monotonic() - started:.1f} s after start")
        finally:
            if dom.isActive():
                dom.destroy()
            dom.undefine()
        assert name not in [d.name() for d in conn.listAllDomains()]
    finally:
        conn.close()


# --- end to end through euca --------------------------------------------------------------------------

@dataclass
class EucaCloud:
    """``euca up`` and ``euca node-controller --uri`` on the session's libvirtd, with the guest imported."""

    ec2: Any
    env: dict[str, str]  # what eucarc exports
    images: dict[str, str]  # machine, kernel, ramdisk -> id, from ``euca image import``
    nc: Process
    up: Process
    conn: Any
    instances: Path
    api_port: int
    tmp: Path

    def state(self, iid: str) -> str:
        found = self.ec2.describe_instances(InstanceIds=[iid])["Reservations"]
        return str(found[0]["Instances"][0]["State"]["Name"]) if found else "gone"

    def console(self, iid: str) -> str:
        out = str(self.ec2.get_console_output(InstanceId=iid).get("Output") or "")
        if MARKER not in out:
            with contextlib.suppress(ValueError):
                out = base64.b64decode(out, validate=True).decode(errors="replace")
        return out

    def boot(self, image_id: str) -> tuple[str, float, float]:
        """RunInstances until the guest's marker is on its console: the id, and the seconds to
        running and to the marker."""
        started = time.monotonic()
        iid = str(run_instances(self.ec2, image_id, self.nc, self.up)[0]["InstanceId"])
        until(f"{iid} running", lambda: self.state(iid) == "running", EC2_TIMEOUT, self.nc, self.up)
        running = time.monotonic() - started
        until(f"{MARKER!r} in {iid}'s console", lambda: MARKER in self.console(iid), BOOT_TIMEOUT, self.nc, self.up)
        return iid, running, time.monotonic() - started

    def terminate(self, iid: str, home: Path) -> None:
        self.ec2.terminate_instances(InstanceIds=[iid])
        until(f"{iid}'s domain destroyed", lambda: iid not in {d.name() for d in self.conn.listAllDomains()},
              60.0, self.nc, self.up)
        until(f"{iid}'s files removed", lambda: not home.exists(), 60.0, self.nc, self.up)
        assert self.state(iid) in ("shutting-down", "terminated")


@pytest.fixture(scope="module")
def euca_cloud(guest_image: GuestImage, libvirt_uri: str, euca_libvirt_nodes: None,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[EucaCloud]:
    import boto3
    import libvirt

    tmp_path = tmp_path_factory.mktemp("euca")
    data = tmp_path / "data"
    instances = tmp_path / "instances"
    key = secrets.token_hex(16)
    nc_port, api_port = free_port(), free_port()
    nc_conf = tmp_path / "nc.conf"
    nc_conf.write_text(f'HYPERVISOR="qemu"\nINSTANCE_PATH="{instances}"\nVNET_BRIDGE="br0"\nNC_PORT="{nc_port}"\n')
    cloud_conf = tmp_path / "eucalyptus.conf"
    cloud_conf.write_text('HYPERVISOR="qemu"\nNC_POLLING_FREQUENCY="6"\n')

    added = euca("node", "add", "node01", "--url", f"http://127.0.0.1:{nc_port}", "--key", key,
                 "--data-dir", str(data))
    assert added.returncode == 0, added.stderr
    imported = euca("image", "import", "--kernel", str(guest_image.kernel), "--ramdisk", str(guest_image.initrd),
                    "--root", str(guest_image.root), "--name", "euca-test-guest", "--data-dir", str(data))
    assert imported.returncode == 0, imported.stderr
    ids = {kind: re.search(rf"IMAGE\s+({prefix}-[0-9A-Fa-f]{{8}})\s+{kind}", imported.stdout)
           for kind, prefix in (("machine", "emi"), ("kernel", "eki"), ("ramdisk", "eri"))}
    assert all(ids.values()), imported.stdout

    nc = Process("euca node-controller",
                 ["-m", "euca.cli", "node-controller", "--config", str(nc_conf), "--uri", libvirt_uri,
                  "--host", "127.0.0.1", "--port", str(nc_port), "--key", key], tmp_path / "nc.log")
    up: Process | None = None
    conn = libvirt.open(libvirt_uri)
    try:
        nc.wait_for("node controller on")
        up = Process("euca up", ["-m", "euca.cli", "up", "--data-dir", str(data), "--port", str(api_port),
                                 "--config", str(cloud_conf)], tmp_path / "up.log")
        up.wait_for("EC2 API on")
        env = dict(line.removeprefix("export ").split("=", 1)
                   for line in (data / "eucarc").read_text().splitlines() if line.startswith("export "))
        ec2 = boto3.client("ec2", endpoint_url=f"http://127.0.0.1:{api_port}", region_name="eucalyptus",
                           aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                           aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])
        try:
            yield EucaCloud(ec2, env, {k: m.group(1) for k, m in ids.items() if m}, nc, up, conn, instances,
                            api_port, tmp_path)
        finally:
            ec2.close()
    finally:
        for proc in (up, nc):
            if proc is not None:
                proc.stop()
        conn.close()


def test_instance_runs_on_a_real_guest_end_to_end(euca_cloud: EucaCloud) -> None:
    cloud = euca_cloud
    emi = cloud.images["machine"]
    # euca image import keeps the image in Walrus: the cloud's own bucket, one object per image
    location = cloud.ec2.describe_images(ImageIds=[emi])["Images"][0]["ImageLocation"]
    assert location == f"euca-images/{emi}", location

    iid, running, booted = cloud.boot(emi)
    dom = cloud.conn.lookupByName(iid)
    assert dom.isActive()
    homes = list(cloud.instances.glob(f"*/{iid}"))
    assert len(homes) == 1, f"instance dir for {iid}: {homes}"
    assert "euca-guest: disk vda" in cloud.console(iid), cloud.console(iid)
    assert f"label={ROOT_LABEL.decode()}" in cloud.console(iid)
    # and the node downloaded it from Walrus over HTTP by the presigned URL the cloud handed it
    walrus = f"http://127.0.0.1:{cloud.api_port}/services/Walrus/euca-images/"
    for image_id in cloud.images.values():
        assert f"{image_id}: downloading {walrus}{image_id} (" in cloud.nc.output(), cloud.nc.output()[-3000:]

    cloud.terminate(iid, homes[0])
    print(f"running after {running:.1f} s, console marker after {booted:.1f} s")


BUNDLED_LABEL = b"EUCA-BUNDLED-RT"  # as long as ROOT_LABEL: the guest shows the root disk's first 15 bytes


def test_a_bundled_image_uploaded_to_walrus_boots_on_a_real_guest(euca_cloud: EucaCloud, guest_image: GuestImage,
                                                                 ) -> None:
    """``euca bundle-image`` + ``euca upload-bundle`` with eucarc's credentials, RegisterImage: the cloud
    decrypts the bundle into Walrus, the node downloads it, and the guest boots from those bytes."""
    cloud = euca_cloud
    root = cloud.tmp / "bundled.img"
    shutil.copyfile(guest_image.root, root)
    with open(root, "r+b") as f:
        f.write(BUNDLED_LABEL)
    env = {**os.environ, **cloud.env}
    bundled = subprocess.run([sys.executable, "-m", "euca.cli", "bundle-image", "-i", str(root),
                              "-d", str(cloud.tmp / "bundle"), "-r", "x86_64"],
                             capture_output=True, text=True, env=env, timeout=120, check=False)
    assert bundled.returncode == 0, bundled.stderr
    manifest = cloud.tmp / "bundle" / "bundled.img.manifest.xml"
    uploaded = subprocess.run([sys.executable, "-m", "euca.cli", "upload-bundle", "-b", "guests/v1",
                               "-m", str(manifest)], capture_output=True, text=True, env=env, timeout=120, check=False)
    assert uploaded.returncode == 0, uploaded.stderr
    assert "Uploaded guests/v1/bundled.img.manifest.xml" in uploaded.stdout

    image_id = str(cloud.ec2.register_image(ImageLocation="guests/v1/bundled.img.manifest.xml", Name="bundled-guest",
                                            KernelId=cloud.images["kernel"],
                                            RamdiskId=cloud.images["ramdisk"])["ImageId"])

    def image_state() -> str:
        return str(cloud.ec2.describe_images(ImageIds=[image_id])["Images"][0]["State"])

    until(f"{image_id} available", lambda: image_state() in ("available", "failed"), 60.0, cloud.up)
    assert image_state() == "available", cloud.ec2.describe_images(ImageIds=[image_id])["Images"][0]

    iid, _, booted = cloud.boot(image_id)
    console = cloud.console(iid)
    assert f"label={BUNDLED_LABEL.decode()}" in console, console
    walrus = f"http://127.0.0.1:{cloud.api_port}/services/Walrus/euca-images/{image_id}"
    assert f"{image_id}: downloading {walrus} (" in cloud.nc.output()
    cloud.terminate(iid, next(cloud.instances.glob(f"*/{iid}")))
    cloud.ec2.deregister_image(ImageId=image_id)
    print(f"bundled image registered and booted to the marker in {booted:.1f} s")
