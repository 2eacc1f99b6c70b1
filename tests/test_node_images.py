"""The node's image cache against an object store whose bytes go bad on the way: the ``tree-sha256``
digest the store announces is checked after every download, so a damaged copy never reaches an
instance's disk nor stays in the cache for the next start."""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import pytest

from drivers.protocol import InstanceFiles, InstanceSpec, NcState, NodeError
from drivers.sim import NodeShape, SimNode
from euca.node import ImageCache, NodeController, NodeStorage, SourceImage
from euca.node.images import DIGEST, IMAGE, ImageLocation
from pyx.digest import CHUNK_SIZE, tree_digest_bytes, tree_digest_file

EMI, EKI, ERI = "emi-00000001", "eki-00000001", "eri-00000001"
ROOT = bytes(range(256)) * ((CHUNK_SIZE + CHUNK_SIZE // 2) // 256) + b"tail-of-the-root"  # two digest chunks

Damage = Callable[[bytes], bytes]


def flip(at: int) -> Damage:
    def damage(data: bytes) -> bytes:
        bad = bytearray(data)
        bad[at] ^= 0x01
        return bytes(bad)
    return damage


def truncate(data: bytes) -> bytes:
    return data[:-1]


def append(data: bytes) -> bytes:
    return data + b"\0"


DAMAGES = {"flip-first-chunk": flip(7), "flip-last-chunk": flip(-3), "truncate": truncate, "append": append}


class Transit:
    """An object store serving files as streams, with the true size and digest, whose stream damages
    the images named in ``bad`` on the way for their first ``times`` downloads (``None``: every one)."""

    def __init__(self, damage: Damage, bad: set[str], times: int | None = None) -> None:
        self.damage, self.bad, self.times = damage, bad, times
        self.sent: dict[str, int] = {}

    def open(self, image_id: str, location: ImageLocation) -> SourceImage:
        data = Path(location.location).read_bytes()

        def stream() -> BinaryIO:
            sent = self.sent[image_id] = self.sent.get(image_id, 0) + 1
            spoiled = image_id in self.bad and (self.times is None or sent <= self.times)
            return io.BytesIO(self.damage(data) if spoiled else data)

        return SourceImage(image_id, len(data), tree_digest_bytes(data), stream=stream)


def images(tmp_path: Path) -> dict[str, str]:
    store = tmp_path / "store"
    store.mkdir()
    (store / "root.img").write_bytes(ROOT)
    (store / "vmlinuz").write_bytes(b"K" * 4096)
    (store / "initrd").write_bytes(b"I" * 2048)
    return {EMI: str(store / "root.img"), EKI: str(store / "vmlinuz"), ERI: str(store / "initrd")}


def cache(tmp_path: Path, source: Transit) -> ImageCache:
    return ImageCache(tmp_path / "cache", 100, source, threading.Semaphore(2))


def spec(n: int) -> InstanceSpec:
    return InstanceSpec(f"i-0000{n:04X}", "r-00000001", "alice", "m1.small", 1, 128, 1, EMI, EKI, ERI)


def node(tmp_path: Path, source: Transit) -> NodeController:
    storage = NodeStorage(tmp_path / "instances", source, cache_size_mb=100, concurrent_disk_ops=2, swap_mb=16)
    return NodeController(SimNode("node01", NodeShape(boot_time=0.0)), storage, name="node01")


def state(nc: NodeController, instance_id: str, want: NcState, timeout: float = 10) -> NcState | None:
    deadline = time.monotonic() + timeout
    while True:
        got = {s.instance_id: s.state for s in nc.describe_instances()}.get(instance_id)
        if got is want or time.monotonic() > deadline:
            return got
        time.sleep(0.01)


def leftovers(root: Path, image_id: str) -> list[str]:
    return sorted(p.name for p in (root / image_id).rglob("*")) if (root / image_id).exists() else []


@pytest.mark.parametrize("damage", DAMAGES.values(), ids=DAMAGES.keys())
def test_a_download_damaged_every_time_is_refused_and_nothing_of_it_is_kept(tmp_path: Path, damage: Damage) -> None:
    locations = images(tmp_path)
    source = Transit(damage, {EMI})
    images_ = cache(tmp_path, source)
    for attempt in (1, 2):
        with pytest.raises(NodeError, match=f"^{EMI}: .*digest"):
            images_.acquire(EMI, locations[EMI])
        # nothing was cached, so the second start downloads again instead of using a bad copy
        assert source.sent[EMI] == attempt
        assert images_.cached() == [] and images_.fetches == 0
        assert leftovers(images_.root, EMI) == []
    # a node controller started again on the same cache finds nothing to serve either
    assert cache(tmp_path, source).cached() == []


def test_a_node_never_starts_an_instance_from_a_damaged_download(tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    locations = images(tmp_path)
    # the ramdisk is fetched last: the root and kernel were cached and pinned by then, and are let go
    source = Transit(flip(100), {ERI})
    nc = node(tmp_path, source)
    assert nc.storage is not None
    with pytest.raises(NodeError, match=f"^{ERI}: .*digest"):
        nc.storage.stage(spec(1), locations)
    with caplog.at_level(logging.WARNING, logger="euca.node"):
        nc.run(spec(2), locations, wait=True)
    assert state(nc, spec(2).instance_id, NcState.TEARDOWN) is NcState.TEARDOWN
    assert any(ERI in r.getMessage() and "digest" in r.getMessage() for r in caplog.records)
    for n in (1, 2):
        assert not InstanceFiles.of(tmp_path / "instances", "alice", spec(n).instance_id).directory.exists()
    cached = nc.storage.cache
    assert sorted(cached.cached()) == [EKI, EMI] and leftovers(cached.root, ERI) == []
    assert cached.index.pins(0) == 0 and cached.index.pins(1) == 0  # the root's and the kernel's slots
    assert nc.describe_resources().instances == 0
    nc.close()


@pytest.mark.parametrize("damage", DAMAGES.values(), ids=DAMAGES.keys())
def test_a_download_damaged_once_is_fetched_again_by_the_next_start(tmp_path: Path, damage: Damage) -> None:
    locations = images(tmp_path)
    source = Transit(damage, {EMI}, times=1)
    nc = node(tmp_path, source)
    assert nc.storage is not None
    cached = nc.storage.cache
    nc.run(spec(1), locations, wait=True)
    assert state(nc, spec(1).instance_id, NcState.TEARDOWN) is NcState.TEARDOWN
    assert EMI not in cached.cached()

    nc.run(spec(2), locations, wait=True)
    assert state(nc, spec(2).instance_id, NcState.RUNNING) is NcState.RUNNING
    assert source.sent[EMI] == 2 and cached.fetches == 3  # the root twice, the kernel and ramdisk once
    true = tree_digest_bytes(ROOT)
    assert tree_digest_file(cached.path(EMI)) == true
    assert (cached.root / EMI / DIGEST).read_text().strip() == true
    assert cached.path(EMI).read_bytes() == ROOT
    assert leftovers(cached.root, EMI) == sorted([DIGEST, IMAGE])
    files = InstanceFiles.of(tmp_path / "instances", "alice", spec(2).instance_id)
    assert files.root.read_bytes() == ROOT

    # and the next start is served from the cache, its digest checked, without a download
    nc.run(spec(3), locations, wait=True)
    assert state(nc, spec(3).instance_id, NcState.RUNNING) is NcState.RUNNING
    assert source.sent[EMI] == 2 and cached.fetches == 3
    nc.close()
