"""drivers.libvirt against libvirt's in-process test driver: one ``test:///<tmp>/nodeN.xml`` per node."""

from __future__ import annotations

import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from drivers.protocol import InstanceFiles, InstanceSpec, NcState, NodeError
from tests.libvirt_setup import libvirt_fixture  # noqa: F401  (registers the libvirt_module fixture)

NODE_XML = """<node>
  <cpu><mhz>2400</mhz><model>x86_64</model><active>{cores}</active><nodes>1</nodes>
       <sockets>1</sockets><cores>{cores}</cores><threads>1</threads></cpu>
  <memory>{kib}</memory>
</node>
"""


@pytest.fixture
def lv(libvirt_module: ModuleType) -> Any:
    import drivers.libvirt

    return drivers.libvirt


def node_uri(tmp_path: Path, name: str = "node1", cores: int = 8, memory_mb: int = 16384) -> str:
    path = tmp_path / f"{name}.xml"
    path.write_text(NODE_XML.format(cores=cores, kib=memory_mb * 1024))
    return f"test://{path}"


def spec(n: int = 1, **kw: Any) -> InstanceSpec:
    base = dict(instance_id=f"i-3A4B5C{n:02X}", reservation_id="r-00000001", account="alice", vmtype="m1.small",
                cores=1, memory=256, disk=5, image_id="emi-00000001", kernel_id="eki-00000001",
                ramdisk_id="eri-00000001")
    base.update(kw)
    return InstanceSpec(**base)  # type: ignore[arg-type]


def files_for(tmp_path: Path, s: InstanceSpec, xen: bool = False) -> InstanceFiles:
    files = InstanceFiles.of(tmp_path / "instances", s.account, s.instance_id)
    files.directory.mkdir(parents=True, exist_ok=True)
    for path in (files.root, files.kernel, files.ramdisk) + ((files.ephemeral, files.swap) if xen else ()):
        path.write_bytes(b"")
    return files


def validate(tmp_path: Path, xml: str) -> None:
    path = tmp_path / "domain.xml"
    path.write_text(xml)
    done = subprocess.run(["virt-xml-validate", str(path), "domain"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr + done.stdout


def test_xen_domain_is_paravirtual_with_three_partitions_on_the_xen_bus(lv: Any, tmp_path: Path) -> None:
    s = spec(mac="d0:0d:3A:4B:5C:01")
    files = files_for(tmp_path, s, xen=True)
    layout = lv.DomainLayout("xen", bridge="eucabr10")
    xml = layout.xml(s, files)
    validate(tmp_path, xml)
    dom = ET.fromstring(xml)
    assert dom.get("type") == "xen" and dom.findtext("name") == s.instance_id
    assert dom.findtext("os/type") == "linux"
    assert dom.findtext("os/kernel") == str(files.kernel) and dom.findtext("os/initrd") == str(files.ramdisk)
    assert dom.findtext("os/root") == "/dev/sda1" and dom.findtext("os/cmdline") == " ro"
    assert dom.find("memory").get("unit") == "KiB" and dom.findtext("memory") == str(256 * 1024)  # type: ignore[union-attr]
    assert dom.findtext("vcpu") == "1"
    disks = [(d.find("source").get("file"), d.find("target").get("dev"), d.find("target").get("bus"))  # type: ignore[union-attr]
             for d in dom.iter("disk")]
    assert disks == [(str(files.root), "sda1", "xen"), (str(files.ephemeral), "sda2", "xen"),
                     (str(files.swap), "sda3", "xen")]
    nic = dom.find("devices/interface")
    assert nic is not None and nic.get("type") == "bridge"
    assert nic.find("source").get("bridge") == "eucabr10"  # type: ignore[union-attr]
    assert nic.find("mac").get("address") == "d0:0d:3A:4B:5C:01"  # type: ignore[union-attr]
    assert nic.find("script").get("path") == "/etc/xen/scripts/vif-bridge"  # type: ignore[union-attr]
    assert nic.find("target").get("dev") == f"vn_{s.instance_id}"  # type: ignore[union-attr]
    # no swap room: sda3 is left out; no MAC given: derived from the id as Eucalyptus does
    lean = ET.fromstring(layout.xml(spec(mac=""), files, swap=False))
    assert [t.get("dev") for t in lean.iterfind("devices/disk/target")] == ["sda1", "sda2"]
    assert lean.find("devices/interface/mac").get("address") == "d0:0d:3A:4B:5C:01"  # type: ignore[union-attr]
    # and the test driver takes it
    driver = lv.LibvirtDriver(node_uri(tmp_path), layout=layout, instance_path=tmp_path / "instances", events=False)
    driver.start(s)
    assert driver.connection.lookupByName(s.instance_id).OSType() == "linux"


@pytest.mark.parametrize(("hypervisor", "nic"), [("kvm", "e1000"), ("qemu", "virtio")])
def test_kvm_domain_is_hvm_with_one_disk_and_a_logged_serial_console(lv: Any, tmp_path: Path, hypervisor: str,
                                                                      nic: str) -> None:
    s = spec()
    files = files_for(tmp_path, s)
    xml = lv.DomainLayout(hypervisor, nic_model=nic).xml(s, files)
    validate(tmp_path, xml)
    dom = ET.fromstring(xml)
    assert dom.get("type") == hypervisor
    assert dom.findtext("os/type") == "hvm" and dom.find("features/acpi") is not None
    assert dom.findtext("os/kernel") == str(files.kernel)
    assert dom.findtext("os/cmdline") == "root=/dev/vda console=ttyS0"
    assert [d.find("source").get("file") for d in dom.iter("disk")] == [str(files.root)]  # type: ignore[union-attr]
    assert dom.find("devices/interface/model").get("type") == nic  # type: ignore[union-attr]
    assert dom.find("devices/interface").get("type") == "user"  # type: ignore[union-attr]
    assert dom.find("devices/interface/target") is None  # no VNET_BRIDGE: no tap device to name
    bridged = ET.fromstring(lv.DomainLayout(hypervisor, bridge="eucabr", nic_model=nic).xml(s, files))
    validate(tmp_path, ET.tostring(bridged, encoding="unicode"))
    assert bridged.find("devices/interface/target").get("dev") == f"vn_{s.instance_id}"  # type: ignore[union-attr]
    log = dom.find("devices/serial/log")
    assert dom.find("devices/serial").get("type") == "pty"  # type: ignore[union-attr]
    assert log is not None and log.get("file") == str(files.console_log)
    # without a kernel it boots the disk
    assert ET.fromstring(lv.DomainLayout(hypervisor).xml(spec(kernel_id="", ramdisk_id=""), files)).find(
        "os/boot") is not None
    driver = lv.LibvirtDriver(node_uri(tmp_path), layout=lv.DomainLayout(hypervisor),
                              instance_path=tmp_path / "instances", events=False)
    driver.start(s)
    assert [i.instance_id for i in driver.instances()] == [s.instance_id]


def test_states_follow_the_hypervisor_and_a_vanished_domain_is_shutoff_after_five_lookups(
        lv: Any, tmp_path: Path) -> None:
    clock = [1000.0]
    driver = lv.LibvirtDriver(node_uri(tmp_path), instance_path=tmp_path / "instances", events=False,
                              clock=lambda: clock[0])
    a, b = spec(1), spec(2)
    driver.start(a)
    driver.start(b)
    states = {i.instance_id: i.state for i in driver.instances()}
    assert states == {a.instance_id: NcState.RUNNING, b.instance_id: NcState.RUNNING}
    driver.connection.lookupByName(a.instance_id).suspend()
    assert {i.instance_id: i.state for i in driver.instances()}[a.instance_id] is NcState.PAUSED
    driver.connection.lookupByName(a.instance_id).resume()
    driver.connection.lookupByName(b.instance_id).destroy()  # behind the node controller's back
    for _ in range(4):
        assert {i.instance_id: i.state for i in driver.instances()}[b.instance_id] is NcState.RUNNING
    assert {i.instance_id: i.state for i in driver.instances()}[b.instance_id] is NcState.SHUTOFF
    assert NcState.SHUTOFF.cloud_state == "running" and NcState.TEARDOWN.cloud_state == "shutting-down"
    driver.terminate(a.instance_id)
    driver.terminate(b.instance_id)  # already gone from the hypervisor: still torn down
    assert {i.state for i in driver.instances()} == {NcState.TEARDOWN}
    assert driver.connection.numOfDomains() == 0
    clock[0] += 181
    assert driver.instances() == []
    assert lv.nc_state(lv.driver.libvirt.VIR_DOMAIN_CRASHED) is NcState.CRASHED
    assert lv.nc_state(lv.driver.libvirt.VIR_DOMAIN_NOSTATE, NcState.BOOTING) is NcState.BOOTING


def test_lifecycle_events_report_a_destroyed_domain_without_waiting_for_lookups(lv: Any, tmp_path: Path) -> None:
    driver = lv.LibvirtDriver(node_uri(tmp_path), instance_path=tmp_path / "instances", events=True)
    s = spec()
    driver.start(s)
    driver.connection.lookupByName(s.instance_id).destroy()
    deadline = time.monotonic() + 5
    while driver.instances()[0].state is not NcState.SHUTOFF:
        assert time.monotonic() < deadline, "no lifecycle event arrived"
        time.sleep(0.02)
    driver.close()


def test_resources_come_from_the_hypervisor_less_instances_and_max_overrides(lv: Any, tmp_path: Path) -> None:
    kvm = lv.LibvirtDriver(node_uri(tmp_path, cores=8, memory_mb=16384), instance_path=tmp_path / "instances",
                           events=False)
    r = kvm.describe_resources()
    assert (r.max_cores, r.max_memory) == (8, 16384 - 256)  # a KVM host keeps 256 MB
    assert r.max_disk > 0 and r.free_cores == 8 and r.instances == 0
    kvm.start(spec(1, cores=2, memory=1024, disk=10))
    r = kvm.describe_resources()
    assert (r.free_cores, r.free_memory, r.free_disk, r.instances) == (6, 16384 - 256 - 1024, r.max_disk - 10, 1)
    xen = lv.LibvirtDriver(node_uri(tmp_path, "node2", cores=4, memory_mb=8192), layout=lv.DomainLayout("xen"),
                           instance_path=tmp_path / "instances", overrides=(2, 0, 40), events=False)
    r = xen.describe_resources()
    assert (r.max_cores, r.max_memory, r.max_disk) == (2, 8192, 40)


def test_console_is_the_newest_64_kib_of_the_serial_log(lv: Any, tmp_path: Path) -> None:
    driver = lv.LibvirtDriver(node_uri(tmp_path), instance_path=tmp_path / "instances", events=False)
    s = spec()
    files = files_for(tmp_path, s)
    driver.start(s)
    assert driver.console_output(s.instance_id) == ""  # nothing logged yet
    lines = [f"[{n:8d}] boot message {n}\n" for n in range(20000)]
    files.console_log.write_text("".join(lines) + f"{s.instance_id} login: ")
    out = driver.console_output(s.instance_id)
    assert len(out.encode()) == lv.CONSOLE_LIMIT
    assert out.endswith(f"{s.instance_id} login: ") and "boot message 0\n" not in out


def test_every_failure_is_a_node_error_naming_the_instance_and_libvirt_s_reason(lv: Any, tmp_path: Path) -> None:
    with pytest.raises(NodeError, match="cannot connect"):
        lv.LibvirtDriver(f"test://{tmp_path}/missing.xml", events=False)
    driver = lv.LibvirtDriver(node_uri(tmp_path), instance_path=tmp_path / "instances", events=False)
    s = spec()
    driver.start(s)
    with pytest.raises(NodeError, match=f"{s.instance_id}: already"):
        driver.start(s)
    with pytest.raises(NodeError, match="i-DEADBEEF: no such running instance"):
        driver.terminate("i-DEADBEEF")
    with pytest.raises(NodeError, match="i-DEADBEEF"):
        driver.console_output("i-DEADBEEF")
    with pytest.raises(NodeError, match=r"i-3A4B5C02: cannot start the domain: .*(MAC|mac)"):
        driver.start(spec(2, mac="d0:0d:zz:00:00:00"))
    with pytest.raises(NodeError, match="i-3A4B5C03: a domain needs"):
        driver.start(spec(3, memory=0))
    with pytest.raises(ValueError, match="HYPERVISOR"):
        lv.DomainLayout("vmware")


def test_an_ebs_backed_instance_boots_from_its_root_volume_over_iscsi(lv: Any, tmp_path: Path) -> None:
    from drivers.protocol import VolumeAttachment

    iqn = "iqn.2009-06.com.eucalyptus.cluster01:vol-0a0b0c0d"
    s = spec(root_volume=VolumeAttachment("vol-0A0B0C0D", "sda1", iqn, "192.0.2.7", 3260, 1))
    files = files_for(tmp_path, s)
    xml = lv.DomainLayout("qemu", bridge="br0").xml(s, files)
    validate(tmp_path, xml)
    dom = ET.fromstring(xml)
    disks = list(dom.iter("disk"))
    assert len(disks) == 1 and disks[0].get("type") == "network"  # no file of the image's on the node
    source = disks[0].find("source")
    assert source is not None and source.get("protocol") == "iscsi" and source.get("name") == f"{iqn}/1"
    assert disks[0].find("source/host").get("name") == "192.0.2.7"  # type: ignore[union-attr]
    assert disks[0].find("target").get("dev") == "vda"  # type: ignore[union-attr]  # the first disk, as ever
    assert disks[0].findtext("serial") == "vol-0A0B0C0D"
    assert dom.findtext("os/kernel") == str(files.kernel)
    with pytest.raises(ValueError, match="needs a KVM or QEMU node"):
        lv.DomainLayout("xen").xml(s, files)


def test_the_guest_learns_its_instance_id_from_smbios(lv: Any, tmp_path: Path) -> None:
    s = spec()
    dom = ET.fromstring(lv.DomainLayout("kvm").xml(s, files_for(tmp_path, s)))
    assert dom.find("os/smbios").get("mode") == "sysinfo"  # type: ignore[union-attr]
    entries = {e.get("name"): e.text for e in dom.iterfind("sysinfo[@type='smbios']/system/entry")}
    assert entries["serial"] == s.instance_id and entries["manufacturer"] == "Eucalyptus"
