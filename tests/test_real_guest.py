"""A real Linux guest under QEMU software emulation, through a libvirtd of the test's own.

The first test uses libvirt-python alone, with the KVM domain layout Eucalyptus's node controller
writes (``gen_kvm_libvirt_xml``: hvm, ``root=/dev/sda1 console=ttyS0``, ACPI, disk ``sda``, an e1000
NIC on a bridge, the serial console logged to ``console.log``), to prove the guest, the daemon and the
namespaces work. The second runs an instance through euca end to end.

They need root and apt (CI); elsewhere they skip with the reason (see tests/guest/fixtures.py).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from xml.sax.saxutils import escape

import pytest

from tests.guest.build_image import MARKER, ROOT_LABEL, GuestImage
from tests.guest.fixtures import BOOT_TIMEOUT, wait_for_line

pytestmark = pytest.mark.real_guest

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
