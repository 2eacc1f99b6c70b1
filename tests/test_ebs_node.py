"""A node controller's volumes: hot-plugged through its driver, refused when they cannot be, and
found again by a node controller that restarts (INSTANCE_PATH/eucalyptus/volumes.json)."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.protocol import InstanceSpec, NodeError, VolumeAttachment
from drivers.sim import NodeShape, SimNode
from euca.node import LocalFiles, NodeController, NodeStorage


def test_attach_detach_and_a_restart_finds_the_attachments(tmp_path: Path) -> None:
    sim = SimNode("node1", NodeShape(boot_time=0))
    files = tmp_path / "vol-0A0B0C0D"
    files.write_bytes(b"")
    nc = NodeController(sim, NodeStorage(tmp_path / "instances", LocalFiles()), name="node1")
    spec = InstanceSpec("i-0A0B0C0D", "r-0A0B0C0D", "alice", "m1.small", 1, 256, 1, "")
    sim.start(spec)
    nc.adopt(spec)
    volume = VolumeAttachment("vol-0A0B0C0D", "vdf", path=str(files))
    nc.attach_volume("i-0A0B0C0D", volume)
    nc.attach_volume("i-0A0B0C0D", volume)  # again: already there
    with pytest.raises(NodeError, match="already in use"):
        nc.attach_volume("i-0A0B0C0D", VolumeAttachment("vol-01020304", "vdf", path=str(files)))
    with pytest.raises(NodeError, match="no such file"):
        nc.attach_volume("i-0A0B0C0D", VolumeAttachment("vol-01020304", "vdg", path=str(tmp_path / "gone")))
    with pytest.raises(NodeError, match="no such running instance"):
        nc.attach_volume("i-99999999", volume)
    assert sim.volumes["i-0A0B0C0D"]["vdf"] == volume

    restarted = NodeController(sim, NodeStorage(tmp_path / "instances", LocalFiles()), name="node1")
    restarted.recover()
    assert restarted.volumes() == {"i-0A0B0C0D": [volume]}
    restarted.adopt(spec)
    restarted.detach_volume("i-0A0B0C0D", "vol-0A0B0C0D")
    assert restarted.volumes() == {} and "i-0A0B0C0D" not in sim.volumes
    with pytest.raises(NodeError, match="not attached"):
        restarted.detach_volume("i-0A0B0C0D", "vol-0A0B0C0D")
    restarted.attach_volume("i-0A0B0C0D", volume)
    restarted.terminate("i-0A0B0C0D")
    assert restarted.volumes() == {} and sim.volumes == {}


def test_a_restarted_node_controller_attaches_to_an_instance_that_outlived_it(tmp_path: Path) -> None:
    """No adopt() by hand: the new controller finds the instance from what its predecessor kept
    beside the instance's disks, and attaches, detaches and tears down as the old one would have."""
    store = tmp_path / "store"
    store.mkdir()
    (store / "root.img").write_bytes(b"R" * 4096)
    (store / "vmlinuz").write_bytes(b"K" * 512)
    locations = {"emi-00000001": str(store / "root.img"), "eki-00000001": str(store / "vmlinuz")}
    sim = SimNode("node1", NodeShape(boot_time=0))
    first = NodeController(sim, NodeStorage(tmp_path / "instances", LocalFiles()), name="node1")
    spec = InstanceSpec("i-0A0B0C0D", "r-0A0B0C0D", "alice", "m1.small", 1, 256, 1, "emi-00000001",
                        "eki-00000001", user_data=b"\x00hello", groups=("default",))
    first.run(spec, locations, wait=True)
    one, two = (tmp_path / "vol-00000001", tmp_path / "vol-00000002")
    for f in (one, two):
        f.write_bytes(b"")
    before = VolumeAttachment("vol-00000001", "vdf", path=str(one))
    first.attach_volume(spec.instance_id, before)
    first.close()

    restarted = NodeController(sim, NodeStorage(tmp_path / "instances", LocalFiles()), name="node1")
    assert restarted.recover() == []
    after = VolumeAttachment("vol-00000002", "vdg", path=str(two))
    restarted.attach_volume(spec.instance_id, after)
    assert sim.volumes[spec.instance_id] == {"vdf": before, "vdg": after}
    with pytest.raises(NodeError, match="already in use"):
        restarted.attach_volume(spec.instance_id, VolumeAttachment("vol-00000003", "vdf", path=str(one)))
    restarted.detach_volume(spec.instance_id, "vol-00000001")
    assert sim.volumes[spec.instance_id] == {"vdg": after}
    home = tmp_path / "instances" / "alice" / spec.instance_id
    assert home.is_dir()
    restarted.terminate(spec.instance_id)  # the adopted spec names the account: its files go too
    assert not home.exists() and restarted.volumes() == {} and sim.volumes == {}

    # an instance the hypervisor runs with no record of it is left alone, not adopted under a guess
    stranger = spec._replace(instance_id="i-01020304")
    sim.start(stranger)
    third = NodeController(sim, NodeStorage(tmp_path / "instances", LocalFiles()), name="node1")
    third.recover()
    with pytest.raises(NodeError, match="no such running instance"):
        third.attach_volume("i-01020304", after)


def test_an_ebs_backed_instance_stages_only_its_kernel_and_ramdisk(tmp_path: Path) -> None:
    from drivers.protocol import InstanceFiles

    store = tmp_path / "store"
    store.mkdir()
    (store / "vmlinuz").write_bytes(b"K" * 512)
    (store / "initrd").write_bytes(b"I" * 256)
    root = VolumeAttachment("vol-0A0B0C0D", "sda1", "iqn.2009-06.com.eucalyptus.cluster01:vol-0a0b0c0d",
                            "192.0.2.7", 3260, 1)
    spec = InstanceSpec("i-0A0B0C0D", "r-0A0B0C0D", "alice", "m1.small", 1, 256, 1, "emi-0E0B5000",
                        "eki-00000001", "eri-00000001", root_volume=root)
    sim = SimNode("node1", NodeShape(boot_time=0))
    storage = NodeStorage(tmp_path / "instances", LocalFiles())
    nc = NodeController(sim, storage, name="node1")
    # the EBS image has no bytes, so no location: only the kernel's and the ramdisk's are needed
    nc.run(spec, {"eki-00000001": str(store / "vmlinuz"), "eri-00000001": str(store / "initrd")}, wait=True)
    files = InstanceFiles.of(tmp_path / "instances", "alice", spec.instance_id)
    assert files.kernel.read_bytes() == b"K" * 512 and files.ramdisk.read_bytes() == b"I" * 256
    assert not files.root.exists()
    assert sorted(storage.cache.cached()) == ["eki-00000001", "eri-00000001"]
    assert storage.recorded(spec.instance_id) == spec  # the root volume is kept with the rest
    nc.terminate(spec.instance_id)
    assert not files.directory.exists()
    nc.close()


def test_the_wire_carries_a_root_volume_and_refuses_a_malformed_one() -> None:
    from euca.node import wire

    root = VolumeAttachment("vol-0A0B0C0D", "vda", "iqn.2009-06.com.eucalyptus.cluster01:vol-0a0b0c0d",
                            "192.0.2.7", 3260, 1)
    spec = InstanceSpec("i-0A0B0C0D", "r-0A0B0C0D", "alice", "m1.small", 1, 256, 1, "emi-0E0B5000",
                        root_volume=root)
    assert wire.spec_from_json(wire.spec_to_json(spec)) == spec
    plain = spec._replace(root_volume=None)
    assert wire.spec_from_json(wire.spec_to_json(plain)) == plain
    body = wire.spec_to_json(spec)
    for bad, message in (({"volume_id": "vol-0A0B0C0D"}, "needs device"),
                         ({**body["root_volume"], "port": "3260"}, "port must be an integer"),
                         ({**body["root_volume"], "lun": True}, "lun must be an integer"),
                         ({**body["root_volume"], "extra": 1}, "unknown volume fields: extra"),
                         ("vol-0A0B0C0D", "must be a JSON object")):
        with pytest.raises(ValueError, match=message):
            wire.spec_from_json({**body, "root_volume": bad})
