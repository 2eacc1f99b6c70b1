"""The libvirt domain an instance becomes, after Eucalyptus's ``gen_libvirt_xml`` and ``gen_kvm_libvirt_xml``.

HYPERVISOR decides the layout:

- ``xen``: a paravirtual guest (``type='xen'``, OS ``linux``) booted from the instance's kernel and
  ramdisk with root ``/dev/sda1`` and command line `` ro``; its disks are partitions on the Xen bus,
  ``sda1`` root, ``sda2`` ephemeral, ``sda3`` swap; a bridged NIC with the instance's MAC, plugged
  by ``vif-bridge``.
- ``kvm``: a full-virtualised guest (``hvm``) with ACPI (so a shutdown powers it off), one disk
  holding the root file system, a virtio or e1000 NIC, and the first serial port logged to the
  instance's ``console.log``, which is what GetConsoleOutput reads. With a kernel it boots that
  kernel and ramdisk directly with ``root=/dev/vda console=ttyS0``.
- ``qemu``: the KVM layout under software emulation (``type='qemu'``), for hosts without usable
  hardware virtualisation.

The XML is built with ElementTree, so ids, paths and bridge names are escaped, never pasted.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, replace

from drivers.protocol import HYPERVISORS, InstanceFiles, InstanceSpec, VolumeAttachment

NIC_MODELS = ("virtio", "e1000")
XEN_BRIDGE = "xenbr0"
TAP_PREFIX = "vn_"  # the node's network agent knows an instance's port on the bridge by this name
VIF_SCRIPT = "/etc/xen/scripts/vif-bridge"
_HEX8 = re.compile(r"^[0-9A-Fa-f]{8}$")


def instance_mac(instance_id: str, prefix: str = "d0:0d") -> str:
    """Eucalyptus's ``instId2mac``: the prefix and the id's 8 hex digits in pairs (i-3A4B5C6D -> d0:0d:3A:4B:5C:6D)."""
    digits = instance_id.split("-", 1)[-1]
    if not _HEX8.match(digits):
        raise ValueError(f"{instance_id}: an instance id needs 8 hex digits to derive a MAC")
    return prefix + "".join(f":{digits[i:i + 2]}" for i in range(0, 8, 2))


def tap_name(instance_id: str) -> str:
    """The instance's port on the bridge, ``vn_<instance-id>``: the network agent's anti-spoofing rules
    and physdev matches name it (Eucalyptus's EDGE does the same)."""
    name = TAP_PREFIX + instance_id
    if len(name) > 15:  # IFNAMSIZ - 1
        raise ValueError(f"{instance_id}: too long for an interface name {name!r}")
    return name


def volume_disk(volume: VolumeAttachment, bus: str = "virtio") -> ET.Element:
    """The ``<disk>`` of an EBS volume: a network disk QEMU's own iSCSI initiator reaches (``iqn/lun``
    on the SC's target), or, for a volume beside the node, its file. The serial is the volume id,
    so the guest finds it by that (``/sys/block/*/serial``, ``/dev/disk/by-id``)."""
    if volume.iqn:
        disk = ET.Element("disk", type="network", device="disk")
        ET.SubElement(disk, "driver", name="qemu", type="raw", cache="none")
        source = ET.SubElement(disk, "source", protocol="iscsi", name=f"{volume.iqn}/{volume.lun}")
        ET.SubElement(source, "host", name=volume.host, port=str(volume.port))
    elif volume.path:
        disk = ET.Element("disk", type="file", device="disk")
        ET.SubElement(disk, "driver", name="qemu", type="raw", cache="none")
        ET.SubElement(disk, "source", file=volume.path)
    else:
        raise ValueError(f"{volume.volume_id}: neither an iSCSI target nor a file to attach")
    if not re.match(r"^(vd|sd|xvd|hd)[a-z]{1,2}$", volume.device):
        raise ValueError(f"{volume.volume_id}: not a disk name: {volume.device[:16]!r}")
    ET.SubElement(disk, "target", dev=volume.device, bus=bus)
    ET.SubElement(disk, "serial").text = volume.volume_id
    return disk


def volume_xml(volume: VolumeAttachment, bus: str = "virtio") -> str:
    """The ``<disk>`` an EBS volume is hot-plugged as (:func:`volume_disk`), as text."""
    return ET.tostring(volume_disk(volume, bus), encoding="unicode")


@dataclass(frozen=True)
class DomainLayout:
    """How a node's domains look: the hypervisor, the bridge (VNET_BRIDGE), the KVM NIC model and disk bus."""

    hypervisor: str = "kvm"
    bridge: str = ""
    vlan_bridges: bool = False  # MANAGED: each instance on its group's segment, eucabr<vlan>, not on ``bridge``
    nic_model: str = "virtio"
    network: bool = True

    def __post_init__(self) -> None:
        if self.hypervisor not in HYPERVISORS:
            raise ValueError(f"HYPERVISOR must be one of {', '.join(HYPERVISORS)}, not {self.hypervisor!r}")
        if self.nic_model not in NIC_MODELS:
            raise ValueError(f"the NIC model must be one of {', '.join(NIC_MODELS)}, not {self.nic_model!r}")

    def xml(self, spec: InstanceSpec, files: InstanceFiles, *, ephemeral: bool = True, swap: bool = True) -> str:
        """The domain for one instance. ``ephemeral``/``swap``: whether those Xen disks exist (the node
        skips swap when the VM type leaves no room for it)."""
        if spec.memory < 1 or spec.cores < 1:
            raise ValueError(f"{spec.instance_id}: a domain needs at least one core and 1 MB of memory")
        domain = self._xen(spec, files, ephemeral, swap) if self.hypervisor == "xen" else self._kvm(spec, files)
        ET.indent(domain)
        return ET.tostring(domain, encoding="unicode")

    # --- Xen paravirtual ----------------------------------------------------------------------------

    def _xen(self, spec: InstanceSpec, files: InstanceFiles, ephemeral: bool, swap: bool) -> ET.Element:
        if spec.root_volume is not None:
            raise ValueError(f"{spec.instance_id}: an EBS-backed instance needs a KVM or QEMU node")
        domain = self._head("xen", spec)
        os_ = ET.SubElement(domain, "os")
        ET.SubElement(os_, "type").text = "linux"
        ET.SubElement(os_, "kernel").text = str(files.kernel)
        if spec.ramdisk_id:
            ET.SubElement(os_, "initrd").text = str(files.ramdisk)
        ET.SubElement(os_, "root").text = "/dev/sda1"
        ET.SubElement(os_, "cmdline").text = " ro"
        devices = ET.SubElement(domain, "devices")
        disks = [(files.root, "sda1")]
        if ephemeral:
            disks.append((files.ephemeral, "sda2"))
        if swap:
            disks.append((files.swap, "sda3"))
        for path, target in disks:
            disk = ET.SubElement(devices, "disk", type="file", device="disk")
            ET.SubElement(disk, "source", file=str(path))
            # Partition targets are only valid on the Xen bus (or virtio); any other bus collides.
            ET.SubElement(disk, "target", dev=target, bus="xen")
        if self.network:
            nic = ET.SubElement(devices, "interface", type="bridge")
            ET.SubElement(nic, "source", bridge=self._bridge(spec) or XEN_BRIDGE)
            ET.SubElement(nic, "mac", address=spec.mac or instance_mac(spec.instance_id))
            ET.SubElement(nic, "target", dev=tap_name(spec.instance_id))
            ET.SubElement(nic, "script", path=VIF_SCRIPT)
        return domain

    # --- KVM / QEMU ---------------------------------------------------------------------------------

    def _kvm(self, spec: InstanceSpec, files: InstanceFiles) -> ET.Element:
        domain = self._head(self.hypervisor, spec)
        os_ = ET.SubElement(domain, "os")
        ET.SubElement(os_, "type").text = "hvm"
        if spec.kernel_id:
            ET.SubElement(os_, "kernel").text = str(files.kernel)
            if spec.ramdisk_id:
                ET.SubElement(os_, "initrd").text = str(files.ramdisk)
            ET.SubElement(os_, "cmdline").text = "root=/dev/vda console=ttyS0"
        else:
            ET.SubElement(os_, "boot", dev="hd")
        # SMBIOS tells the guest which instance it is (dmidecode, /sys/class/dmi/id), as clouds do
        ET.SubElement(os_, "smbios", mode="sysinfo")
        sysinfo = ET.SubElement(domain, "sysinfo", type="smbios")
        system = ET.SubElement(sysinfo, "system")
        for name, value in (("manufacturer", "Eucalyptus"), ("product", "Eucalyptus instance"),
                            ("serial", spec.instance_id)):
            ET.SubElement(system, "entry", name=name).text = value
        features = ET.SubElement(domain, "features")
        ET.SubElement(features, "acpi")
        ET.SubElement(domain, "on_poweroff").text = "destroy"
        ET.SubElement(domain, "on_reboot").text = "restart"
        ET.SubElement(domain, "on_crash").text = "destroy"
        devices = ET.SubElement(domain, "devices")
        if spec.root_volume is not None:
            # EBS-backed: the root volume is the first disk, whatever device the image names
            devices.append(volume_disk(replace(spec.root_volume, device="vda")))
        else:
            disk = ET.SubElement(devices, "disk", type="file", device="disk")
            ET.SubElement(disk, "driver", name="qemu", type="raw")
            ET.SubElement(disk, "source", file=str(files.root))
            ET.SubElement(disk, "target", dev="vda", bus="virtio")
        if self.network:
            mac = spec.mac or instance_mac(spec.instance_id)
            bridge = self._bridge(spec)
            if bridge:
                nic = ET.SubElement(devices, "interface", type="bridge")
                ET.SubElement(nic, "source", bridge=bridge)
                ET.SubElement(nic, "target", dev=tap_name(spec.instance_id))
            else:
                # No VNET_BRIDGE: user-mode networking needs no host set-up (a test or a laptop node).
                nic = ET.SubElement(devices, "interface", type="user")
            ET.SubElement(nic, "mac", address=mac)
            ET.SubElement(nic, "model", type=self.nic_model)
        serial = ET.SubElement(devices, "serial", type="pty")
        ET.SubElement(serial, "log", file=str(files.console_log), append="off")
        ET.SubElement(serial, "target", port="0")
        console = ET.SubElement(devices, "console", type="pty")
        ET.SubElement(console, "target", type="serial", port="0")
        return domain

    def _bridge(self, spec: InstanceSpec) -> str:
        return f"eucabr{spec.vlan}" if self.vlan_bridges and spec.vlan >= 0 else self.bridge

    @staticmethod
    def _head(kind: str, spec: InstanceSpec) -> ET.Element:
        domain = ET.Element("domain", type=kind)
        ET.SubElement(domain, "name").text = spec.instance_id
        ET.SubElement(domain, "memory", unit="KiB").text = str(spec.memory * 1024)
        ET.SubElement(domain, "vcpu").text = str(spec.cores)
        return domain
