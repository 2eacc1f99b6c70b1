"""The node controller core over drivers.sim: image staging, the cache's digest check, instance disks, recovery."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from drivers.protocol import InstanceFiles, InstanceSpec, NcState, NodeError
from drivers.sim import NodeShape, SimNode
from euca.node import LocalFiles, NodeController, NodeStorage
from euca.node.disks import GB, MB, DiskPlan
from euca.node.images import ImageLocation, ImageSource, SourceImage


class SlowFiles:
    """LocalFiles that take a while per open, so concurrent starts overlap; counts the opens."""

    def __init__(self, inner: ImageSource, delay: float) -> None:
        self.inner, self.delay, self.opens = inner, delay, 0

    def open(self, image_id: str, location: ImageLocation) -> SourceImage:
        self.opens += 1
        time.sleep(self.delay)
        return self.inner.open(image_id, location)


def images(tmp_path: Path) -> dict[str, str]:
    store = tmp_path / "store"
    store.mkdir()
    (store / "root.img").write_bytes(b"R" * (3 * MB + 17))
    (store / "vmlinuz").write_bytes(b"K" * 4096)
    (store / "initrd").write_bytes(b"I" * 2048)
    return {"emi-00000001": str(store / "root.img"), "eki-00000001": str(store / "vmlinuz"),
            "eri-00000001": str(store / "initrd")}


def spec(n: int, account: str = "alice", disk: int = 1) -> InstanceSpec:
    return InstanceSpec(f"i-0000{n:04X}", "r-00000001", account, "m1.small", 1, 128, disk, "emi-00000001",
                        "eki-00000001", "eri-00000001")


def node(tmp_path: Path, source: ImageSource | None = None, cache_mb: int = 100) -> NodeController:
    storage = NodeStorage(tmp_path / "instances", source or LocalFiles(), cache_size_mb=cache_mb,
                          concurrent_disk_ops=2, swap_mb=512)
    return NodeController(SimNode("node01", NodeShape(boot_time=0.0)), storage, name="node01")


def wait_state(nc: NodeController, instance_id: str, state: NcState, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while True:
        states = {s.instance_id: s.state for s in nc.describe_instances()}
        if states.get(instance_id) is state:
            return
        assert time.monotonic() < deadline, f"{instance_id} is {states.get(instance_id)}, not {state}"
        time.sleep(0.01)


def test_concurrent_starts_of_one_image_fetch_it_once(tmp_path: Path) -> None:
    locations = images(tmp_path)
    source = SlowFiles(LocalFiles(), 0.05)
    nc = node(tmp_path, source)
    starts = [threading.Thread(target=nc.run, args=(spec(n), locations), kwargs={"wait": True}) for n in range(6)]
    for t in starts:
        t.start()
    for t in starts:
        t.join()
    assert nc.storage is not None
    assert nc.storage.cache.fetches == 3  # emi, eki and eri once each, for six instances
    assert sorted(nc.storage.cache.cached()) == sorted(locations)
    assert {s.state for s in nc.describe_instances()} == {NcState.RUNNING}
    nc.close()


def test_instance_disks_are_made_from_the_cache_and_removed_at_teardown(tmp_path: Path) -> None:
    locations = images(tmp_path)
    nc = node(tmp_path)
    s = spec(1, disk=1)
    nc.run(s, locations, wait=True)
    files = InstanceFiles.of(tmp_path / "instances", "alice", s.instance_id)
    assert files.root.read_bytes() == Path(locations["emi-00000001"]).read_bytes()
    assert files.kernel.stat().st_size == 4096 and files.ramdisk.stat().st_size == 2048
    plan = DiskPlan.of(1, 3 * MB + 17, 512)
    assert files.swap.stat().st_size == 512 * MB and files.ephemeral.stat().st_size == GB - (3 * MB + 17) - 512 * MB
    assert files.ephemeral.stat().st_blocks == 0  # sparse: nothing written
    assert plan.swap == 512 * MB and DiskPlan.of(0, 0, 512) == DiskPlan(0, 0)  # no room: no swap
    r = nc.describe_resources()
    assert r.instances == 1
    nc.terminate(s.instance_id)
    assert not files.directory.exists() and not files.directory.parent.exists()
    assert {x.instance_id: x.state for x in nc.describe_instances()}[s.instance_id] is NcState.TEARDOWN
    assert nc.storage is not None and nc.storage.cache.index.pins(0) == 0  # the emi is no longer pinned
    nc.close()


def test_a_cached_copy_that_went_bad_is_purged_and_fetched_again(tmp_path: Path) -> None:
    locations = images(tmp_path)
    nc = node(tmp_path)
    nc.run(spec(1), locations, wait=True)
    assert nc.storage is not None
    cache = nc.storage.cache
    cached = cache.path("emi-00000001")
    data = bytearray(cached.read_bytes())
    data[5] ^= 0xFF
    cached.write_bytes(bytes(data))
    nc.run(spec(2), locations, wait=True)
    assert cache.purges == 1 and cache.fetches == 4
    assert cached.read_bytes() == Path(locations["emi-00000001"]).read_bytes()
    files = InstanceFiles.of(tmp_path / "instances", "alice", spec(2).instance_id)
    assert files.root.read_bytes() == Path(locations["emi-00000001"]).read_bytes()
    nc.close()


def test_a_failed_staging_is_teardown_and_leaves_nothing(tmp_path: Path) -> None:
    locations = images(tmp_path) | {"emi-00000001": str(tmp_path / "nowhere.img")}
    nc = node(tmp_path)
    s = spec(1)
    nc.run(s, locations, wait=True)
    assert {x.instance_id: x.state for x in nc.describe_instances()} == {s.instance_id: NcState.TEARDOWN}
    assert not InstanceFiles.of(tmp_path / "instances", "alice", s.instance_id).directory.exists()
    assert nc.describe_resources().instances == 0
    with pytest.raises(NodeError, match="no such running"):
        nc.terminate(s.instance_id)
    nc.close()


def test_after_a_crash_leftover_instance_directories_are_swept(tmp_path: Path) -> None:
    locations = images(tmp_path)
    first = node(tmp_path)
    for n in (1, 2):
        first.run(spec(n, account=f"acct{n}"), locations, wait=True)
    # the node controller dies with its instances; a new one starts on the same INSTANCE_PATH
    second = node(tmp_path)
    assert sorted(second.recover()) == [spec(1).instance_id, spec(2).instance_id]
    assert not any((tmp_path / "instances" / f"acct{n}" / spec(n).instance_id).exists() for n in (1, 2))
    assert second.storage is not None
    assert sorted(second.storage.cache.cached()) == sorted(locations)  # the cache survives
    second.run(spec(3), locations, wait=True)
    assert second.storage.cache.fetches == 0  # and serves the next start (its digest checked)
    first.close()
    second.close()


def test_a_terminate_while_staging_cancels_the_start(tmp_path: Path) -> None:
    locations = images(tmp_path)
    nc = node(tmp_path, SlowFiles(LocalFiles(), 0.2))
    s = spec(1)
    nc.run(s, locations)
    assert {x.instance_id: x.state for x in nc.describe_instances()} == {s.instance_id: NcState.STAGING}
    assert nc.describe_resources().free_cores == NodeShape().cores - 1  # its room is held while it stages
    nc.terminate(s.instance_id)
    wait_state(nc, s.instance_id, NcState.TEARDOWN)
    assert not InstanceFiles.of(tmp_path / "instances", "alice", s.instance_id).directory.exists()
    nc.close()
