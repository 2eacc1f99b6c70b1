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
