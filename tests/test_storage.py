"""The Storage Controller: its back ends' commands, tgt for real (export, write through QEMU's own
iSCSI initiator, unexport), its HTTP service and the cloud's client, and the disk a node hot-plugs."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from drivers.libvirt.domain import volume_xml
from drivers.protocol import VolumeAttachment
from euca.core.s3errors import S3Error
from euca.storage import (
    IQN_PREFIX,
    Das,
    Limits,
    Overlay,
    RemoteStorage,
    StorageController,
    StorageError,
    Tgt,
    VolumeLimit,
    gzipped,
    iqn_of,
)
from euca.storage.service import create_app
from euca.store import Store
from tests.durability_kit import client, euca_up
from tests.ec2_server import Box, free_port, refused, running_box, until

GIB = 1 << 30
IQN = "iqn.2009-06.com.eucalyptus.cluster01:vol-0a0b0c0d"


class Commands:
    """A runner that records the commands and answers from a script."""

    def __init__(self, answers: dict[str, str] | None = None) -> None:
        self.ran: list[list[str]] = []
        self.answers = answers or {}

    def __call__(self, argv: Sequence[str]) -> str:
        self.ran.append(list(argv))
        line = " ".join(argv)
        return next((out for key, out in self.answers.items() if key in line), "")


def test_das_runs_lvm_commands() -> None:
    run = Commands({"lv_size": "  4.00\n", "lv_name": "  lv-vol-0A0B0C0D\n  lv-snap-snap-0E0F1011\n  lv-snap-x\n"})
    das = Das("vg-euca", run)
    assert das.create("vol-0A0B0C0D", 4) == Path("/dev/vg-euca/lv-vol-0A0B0C0D")
    assert das.exists("vol-0A0B0C0D")
    assert das.clones() == ["snap-0E0F1011"]  # what an interrupted snapshot left, found at start-up
    assert das.clone("vol-0A0B0C0D", "snap-01020304") == Path("/dev/vg-euca/lv-snap-snap-01020304")
    das.drop_clone("snap-01020304")
    das.delete("vol-0A0B0C0D")
    assert run.ran == [
        ["lvcreate", "--yes", "-n", "lv-vol-0A0B0C0D", "-L", "4G", "vg-euca"],
        ["lvs", "--noheadings", "-o", "lv_name", "vg-euca"],
        ["lvs", "--noheadings", "-o", "lv_name", "vg-euca"],
        ["lvs", "--noheadings", "--units", "g", "--nosuffix", "-o", "lv_size", "vg-euca/lv-vol-0A0B0C0D"],
        ["lvcreate", "--yes", "-s", "-n", "lv-snap-snap-01020304", "-L", "1G", "vg-euca/lv-vol-0A0B0C0D"],
        ["lvremove", "-f", "vg-euca/lv-snap-snap-01020304"],
        ["lvremove", "-f", "vg-euca/lv-vol-0A0B0C0D"],
    ]
    with pytest.raises(StorageError):
        das.create("vol-../../x", 1)
    with pytest.raises(StorageError):
        Das("vg; rm -rf /", run)


def test_tgt_commands_one_target_per_volume() -> None:
    run = Commands({"--op show": "Target 1: iqn.other\n    System information:\n"})
    export = Tgt(run=run).export(IQN, Path("/v/vol-0a0b0c0d"), "192.0.2.5")
    assert (export.iqn, export.tid, export.lun, export.port) == (IQN, 2, 1, 3260)
    assert run.ran[1:] == [
        ["tgtadm", "--lld", "iscsi", "--op", "new", "--mode", "target", "--tid", "2", "-T", IQN],
        ["tgtadm", "--lld", "iscsi", "--op", "new", "--mode", "logicalunit", "--tid", "2", "--lun", "1",
         "-b", "/v/vol-0a0b0c0d"],
        ["tgtadm", "--lld", "iscsi", "--op", "bind", "--mode", "target", "--tid", "2", "-I", "192.0.2.5"],
    ]


def test_limits_snapshot_stream_and_restore(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "euca.db"))
    sc = StorageController(store, Overlay(tmp_path / "volumes"), "cluster01", limits=Limits(1, 2))
    with pytest.raises(VolumeLimit):
        sc.admit("vol-00000001", 2)
    sc.admit("vol-00000001", 1)
    sc.admit("vol-00000002", 1)
    with pytest.raises(VolumeLimit):
        sc.admit("vol-00000003", 1)
    sc.fill("vol-00000001")
    path = tmp_path / "volumes" / "vol-00000001"
    with open(path, "r+b") as f:
        f.seek(GIB // 2 + 12345)
        f.write(b"hello volume")
    seen: list[int] = []
    stream = sc.snapshot("vol-00000001", "snap-00000001", lambda done, total: seen.append(done * 100 // total))
    with open(path, "r+b") as f:
        f.write(b"after")  # the clone was taken before: not in the stream
    data = b"".join(stream)
    assert seen[-1] == 100 and not (tmp_path / "volumes" / "snap-00000001.clone").exists()
    with pytest.raises(StorageError, match="ended early"):
        sc.fill("vol-00000002", iter([data[:len(data) // 2]]))
    store.close()
    # a restarted SC knows its volumes; a failed one no longer counts
    store = Store(str(tmp_path / "euca.db"))
    again = StorageController(store, Overlay(tmp_path / "volumes"), "cluster01", limits=Limits(1, 2))
    assert {v["volume_id"]: v["status"] for v in again.describe()} == {"vol-00000001": "available",
                                                                      "vol-00000002": "failed"}
    again.admit("vol-00000003", 1)
    again.fill("vol-00000003", iter([data[i:i + 1000] for i in range(0, len(data), 1000)]))
    copy = tmp_path / "volumes" / "vol-00000003"
    with open(copy, "rb") as f:
        assert f.read(5) == bytes(5)
        f.seek(GIB // 2 + 12345)
        assert f.read(12) == b"hello volume"
    assert copy.stat().st_blocks * 512 < 1 << 20
    store.close()


@pytest.mark.parametrize("codec", ["isal", "zlib"])
def test_a_volumes_gzip_stream_is_made_from_its_data_and_reads_back_with_gunzip(
        codec: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if codec == "zlib":
        monkeypatch.setattr(gzipped, "_fast", None)  # as where ISA-L is not installed
    else:
        pytest.importorskip("isal")
    assert gzipped.crc_over_zeros(12345, (3 << 20) + 4096) == zlib.crc32(bytes((3 << 20) + 4096), 12345)
    path = tmp_path / "vol-0000F00D"
    size = 64 << 20
    random_run, text_run = os.urandom(3 << 20), text_like(2 << 20, 3)
    with open(path, "wb") as f:
        f.truncate(size)
        f.seek(5 << 20)
        f.write(random_run)
        f.seek(20 << 20)
        f.write(bytes(1 << 20) + text_run)  # written zeros, then text
        f.seek(size - 100)
        f.write(b"tail")
    fd = os.open(path, os.O_RDONLY)
    try:
        steps = list(gzipped.pack(fd, size))
    finally:
        os.close(fd)
    done = [d for d, _ in steps]
    assert done == sorted(done) and done[-1] == size
    stream = b"".join(data for _, data in steps)
    assert len(stream) < len(random_run) + len(text_run) * 0.7 + (256 << 10)  # random stored, text shrunk
    (tmp_path / "snap.gz").write_bytes(stream)
    done_ = subprocess.run(["gzip", "-t", str(tmp_path / "snap.gz")], capture_output=True, check=False)
    assert done_.returncode == 0, done_.stderr  # a plain gzip member, CRC and length right
    unpacker = gzipped.inflater()
    with open(path, "rb") as f:
        for offset in range(0, len(stream), 65536):
            out = unpacker.decompress(stream[offset:offset + 65536])
            assert f.read(len(out)) == out
        assert unpacker.flush() == b"" and unpacker.eof and f.read() == b""


@pytest.fixture
def sc_service(tmp_path: Path) -> Iterator[tuple[StorageController, RemoteStorage]]:
    store = Store(str(tmp_path / "euca.db"))
    sc = StorageController(store, Overlay(tmp_path / "volumes"), "cluster01")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(sc, "sc-key"), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        yield sc, RemoteStorage(f"http://127.0.0.1:{port}", "sc-key")
    finally:
        server.should_exit = True
        thread.join(10)
        store.close()


def test_the_cloud_drives_a_remote_storage_controller(sc_service: tuple[StorageController, RemoteStorage],
                                                      tmp_path: Path) -> None:
    _, remote = sc_service
    remote.admit("vol-0000000A", 1)
    remote.fill("vol-0000000A")
    with open(tmp_path / "volumes" / "vol-0000000A", "r+b") as f:
        f.write(b"remote bytes")
    stream = b"".join(remote.snapshot("vol-0000000A", "snap-0000000A"))
    remote.admit("vol-0000000B", 1)
    remote.fill("vol-0000000B", iter([stream[:100], stream[100:]]))
    with open(tmp_path / "volumes" / "vol-0000000B", "rb") as f:
        assert f.read(12) == b"remote bytes"
    with pytest.raises(VolumeLimit):
        remote.admit("vol-0000000C", 101)
    with pytest.raises(StorageError, match="no iSCSI target"):
        remote.export("vol-0000000A")
    assert {v["volume_id"] for v in remote.describe()} == {"vol-0000000A", "vol-0000000B"}
    remote.delete("vol-0000000B")
    assert not (tmp_path / "volumes" / "vol-0000000B").exists()
    with pytest.raises(StorageError, match="refused"):
        RemoteStorage(remote.url, "wrong-key").describe()


def test_volume_disk_xml_is_valid_libvirt(tmp_path: Path) -> None:
    xml = volume_xml(VolumeAttachment("vol-0A0B0C0D", "vdf", IQN, "127.0.0.1", 3260, 1))
    assert "<source protocol=\"iscsi\" name=\"" + IQN + "/1\">" in xml and "<serial>vol-0A0B0C0D</serial>" in xml
    with pytest.raises(ValueError):
        volume_xml(VolumeAttachment("vol-0A0B0C0D", "vdf"))
    if not shutil.which("virt-xml-validate"):
        pytest.skip("virt-xml-validate is not installed")
    domain = tmp_path / "domain.xml"
    domain.write_text("<domain type='qemu'><name>i-0A0B0C0D</name><memory>65536</memory>"
                      "<os><type>hvm</type></os><devices>" + xml
                      + volume_xml(VolumeAttachment("vol-01020304", "vdg", path="/tmp/v")) + "</devices></domain>")
    done = subprocess.run(["virt-xml-validate", str(domain), "domain"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr + done.stdout


# --- tgt for real ------------------------------------------------------------------------------------

def _tools() -> str | None:
    """None when tgtd, tgtadm and qemu-io (with its iSCSI driver) are here, else why not."""
    wanted = ("tgtd", "tgtadm", "qemu-io")
    if all(shutil.which(t) for t in wanted):
        return None
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "tgt and qemu-utils are missing and installing them needs root and apt-get"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    done = subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "tgt", "qemu-utils",
                           "qemu-block-extra"], env=env, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0 or not all(shutil.which(t) for t in wanted):
        return f"could not install tgt: {done.stderr.strip()[-300:]}"
    return None


@contextlib.contextmanager
def tgt_daemon(control: int) -> Iterator[int]:
    """A tgtd of the test's own on control port ``control`` and an iSCSI port of its own, stopped
    at the end: ``control * 100000 + port``."""
    why = _tools()
    if why:
        pytest.skip(why)
    port = free_port()
    daemon = subprocess.Popen(["tgtd", "-f", "-C", str(control), "--iscsi", f"portal=127.0.0.1:{port}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while subprocess.run(["tgtadm", "-C", str(control), "--lld", "iscsi", "--op", "show", "--mode", "target"],
                         capture_output=True, check=False).returncode != 0:
        if time.monotonic() > deadline or daemon.poll() is not None:
            daemon.kill()
            pytest.skip(f"tgtd did not start: {daemon.stderr.read().decode()[-300:] if daemon.stderr else ''}")
        time.sleep(0.1)
    try:
        yield control * 100000 + port
    finally:
        # tgtd leaves on its own command, not on SIGTERM while it has targets
        subprocess.run(["tgtadm", "-C", str(control), "--op", "delete", "--mode", "system"], capture_output=True,
                       check=False, timeout=10)
        try:
            daemon.wait(5)
        except subprocess.TimeoutExpired:
            daemon.send_signal(signal.SIGKILL)
            daemon.wait()
        if daemon.stderr is not None:
            daemon.stderr.close()


@pytest.fixture(scope="module")
def tgtd() -> Iterator[int]:
    """A tgtd of the test's own, on its own control port and iSCSI port."""
    with tgt_daemon(7000 + os.getpid() % 1000) as both:
        yield both


def test_exports_made_at_once_get_a_target_each(tgtd: int, tmp_path: Path) -> None:
    """A new target's id is read from tgtd, then taken: threads exporting together must not pick the same one."""
    from concurrent.futures import ThreadPoolExecutor

    control, port = divmod(tgtd, 100000)
    tgt = Tgt("127.0.0.1", port, control_port=control)
    files = []
    for n in range(8):
        f = tmp_path / f"vol-{n:08X}"
        f.write_bytes(b"\0" * 4096)
        files.append(f)
    iqns = [iqn_of("cluster01", f.name) for f in files]
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            exports = list(pool.map(lambda pair: tgt.export(pair[0], pair[1]), zip(iqns, files, strict=True)))
        assert len({e.tid for e in exports}) == len(files)
        assert set(iqns) <= set(tgt.targets())
    finally:
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(tgt.unexport, iqns))
    assert not set(iqns) & set(tgt.targets())


def test_a_volume_exported_by_tgt_is_written_through_qemus_initiator(tgtd: int, tmp_path: Path) -> None:
    control, port = divmod(tgtd, 100000)
    store = Store(str(tmp_path / "euca.db"))
    sc = StorageController(store, Overlay(tmp_path / "volumes"), "cluster01",
                           tgt=Tgt("127.0.0.1", port, control_port=control))
    sc.admit("vol-0A0B0C0D", 1)
    sc.fill("vol-0A0B0C0D")
    export = sc.export("vol-0A0B0C0D")
    assert export.iqn == IQN and export.lun == 1
    done = subprocess.run(["qemu-io", "-f", "raw", "-c", "write -P 0x41 4096 4096",
                           f"iscsi://127.0.0.1:{port}/{export.iqn}/1"], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr + done.stdout
    with open(tmp_path / "volumes" / "vol-0A0B0C0D", "rb") as f:
        f.seek(4096)
        assert f.read(4096) == b"A" * 4096
    # a restarted SC exports what was exported (tgtd forgot it here, as when tgtd restarts)
    Tgt("127.0.0.1", port, control_port=control).unexport(IQN)
    again = StorageController(store, Overlay(tmp_path / "volumes"), "cluster01",
                              tgt=Tgt("127.0.0.1", port, control_port=control))
    assert again.restore() == ["vol-0A0B0C0D"]
    assert IQN in Tgt(port=port, control_port=control).targets()
    again.unexport("vol-0A0B0C0D")
    assert IQN not in Tgt(port=port, control_port=control).targets()
    store.close()


# --- a Storage Controller of its own process: progress, kill -9, euca up --storage-controller ---------

KEY = "sc-process-key"


class ScProcess:
    """``euca storage-controller`` as its own process, on its own SQLite file and data directory,
    that a test kills (SIGKILL) and starts again."""

    def __init__(self, root: Path, *extra: str) -> None:
        self.root, self.port, self.extra = root, free_port(), extra
        root.mkdir(parents=True, exist_ok=True)
        self.key_file = root / "sc.key"
        self.key_file.write_text(KEY + "\n")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def volumes(self) -> Path:
        return self.root / "volumes"

    def client(self) -> RemoteStorage:
        return RemoteStorage(self.url, KEY, timeout=30)

    def start(self) -> None:
        with open(self.root / "sc.log", "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "euca.cli", "storage-controller", "--database", str(self.root / "sc.db"),
                 "--data-dir", str(self.volumes), "--host", "127.0.0.1", "--port", str(self.port),
                 "--key-file", str(self.key_file), "--log-level", "info", *self.extra],
                stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + 20
        while True:
            try:
                self.client().describe()
                return
            except StorageError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the storage controller did not start: {self.log()[-2000:]}") from None
                time.sleep(0.05)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return (self.root / "sc.log").read_text(errors="replace")


@contextlib.contextmanager
def sc_process(root: Path, *extra: str) -> Iterator[ScProcess]:
    sc = ScProcess(root, *extra)
    sc.start()
    try:
        yield sc
    finally:
        sc.stop()


def text_like(size: int, seed: int) -> bytes:
    """Bytes that compress about as well as logs or source (half their size): gzip has work to do."""
    rng = random.Random(seed)
    alphabet = bytes(rng.sample(range(32, 127), 16))
    table = bytes(alphabet[b % 16] for b in range(256))
    return rng.randbytes(size).translate(table)


def write_at(path: Path, pieces: dict[int, bytes]) -> None:
    with open(path, "r+b") as f:
        for offset, data in pieces.items():
            f.seek(offset)
            f.write(data)


def read_at(path: Path, pieces: dict[int, bytes]) -> bool:
    with open(path, "rb") as f:
        for offset, data in pieces.items():
            f.seek(offset)
            if f.read(len(data)) != data:
                return False
    return True


def test_a_remote_storage_controller_reports_a_snapshots_progress_as_it_reads(tmp_path: Path) -> None:
    with sc_process(tmp_path / "sc", "--no-iscsi", "--failed-ttl", "2") as sc:
        remote = sc.client()
        remote.admit("vol-00000A01", 1, "acct")
        remote.fill("vol-00000A01")
        pieces = {0: text_like(8 << 20, 1), 600 << 20: text_like(8 << 20, 2), GIB - 4096: b"\xee" * 4096}
        write_at(sc.volumes / "vol-00000A01", pieces)
        seen: list[tuple[int, int]] = []
        stream = b"".join(remote.snapshot("vol-00000A01", "snap-00000A01", lambda d, t: seen.append((d, t))))
        done = [d for d, _ in seen]
        assert {t for _, t in seen} == {GIB} and done == sorted(done) and done[-1] == GIB
        assert len(set(done)) > 100 and 0 < done[len(done) // 2] < GIB  # read by read, not 0 then 100%
        assert not list(sc.volumes.glob("*.clone"))
        remote.admit("vol-00000A02", 1, "acct")
        remote.fill("vol-00000A02", iter([stream[i:i + 65536] for i in range(0, len(stream), 65536)]))
        assert read_at(sc.volumes / "vol-00000A02", pieces)
        assert [v["account"] for v in remote.describe()] == ["acct", "acct"]
        # a fill cut short fails the volume; the SC removes it (and its bytes) after --failed-ttl
        remote.admit("vol-00000A03", 1, "acct")
        with pytest.raises(StorageError, match="ended early"):
            remote.fill("vol-00000A03", iter([stream[:len(stream) // 2]]))
        assert {v["volume_id"]: v["status"] for v in remote.describe()}["vol-00000A03"] == "failed"
        until(lambda: "vol-00000A03" not in {v["volume_id"] for v in remote.describe()}, 20)
        assert not (sc.volumes / "vol-00000A03").exists() and (sc.volumes / "vol-00000A02").exists()


def remote_box(tmp_path: Path, sc: ScProcess) -> contextlib.AbstractContextManager[Box]:
    return running_box(tmp_path / "cloud", storage=sc.client())


def test_a_storage_controller_killed_mid_snapshot_fails_the_snapshot_and_keeps_the_volume(tmp_path: Path) -> None:
    with sc_process(tmp_path / "sc", "--no-iscsi") as sc, remote_box(tmp_path, sc) as box:
        ec2 = box.client("sc-kill")
        zone = ec2.describe_availability_zones()["AvailabilityZones"][0]["ZoneName"]
        vol_id = ec2.create_volume(Size=2, AvailabilityZone=zone)["VolumeId"]
        until(lambda: ec2.describe_volumes(VolumeIds=[vol_id])["Volumes"][0]["State"] == "available")
        assert not (box.data_dir / "volumes" / vol_id).exists()  # the SC's host holds it, not the cloud's
        pieces = {GIB * i // 4: text_like(128 << 20, i) for i in range(4)}
        write_at(sc.volumes / vol_id, pieces)
        snap_id = ec2.create_snapshot(VolumeId=vol_id)["SnapshotId"]

        def progress() -> int:
            shown = ec2.describe_snapshots(SnapshotIds=[snap_id])["Snapshots"][0]
            assert shown["State"] == "pending", shown
            return int(shown["Progress"].rstrip("%"))

        partway = until(lambda: (p := progress()) > 0 and p, 60)
        assert partway < 100  # DescribeSnapshots follows the SC's reading
        sc.kill()
        failed = until(lambda: (s := ec2.describe_snapshots(SnapshotIds=[snap_id])["Snapshots"][0])["State"]
                       != "pending" and s)
        assert failed["State"] == "error"
        assert box.walrus is not None
        admin = box.walrus.directory.admin()
        with pytest.raises(S3Error):
            box.walrus.head_object(admin, box.cloud.snapshots.bucket, snap_id)  # the upload was aborted
        assert list(sc.volumes.glob("*.clone"))  # what the killed SC left behind ...
        before = ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]
        refused("Unavailable", ec2.create_snapshot, VolumeId=vol_id)  # an SC away is said so ...
        assert ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"] == before  # ... and nothing is made
        sc.start()
        assert not list(sc.volumes.glob("*.clone"))  # ... is gone once it is back
        assert {v["volume_id"]: v["status"] for v in sc.client().describe()} == {vol_id: "available"}
        assert ec2.describe_volumes(VolumeIds=[vol_id])["Volumes"][0]["State"] == "available"
        again = ec2.create_snapshot(VolumeId=vol_id)["SnapshotId"]
        done = until(lambda: (s := ec2.describe_snapshots(SnapshotIds=[again])["Snapshots"][0])["State"]
                     == "completed" and s, 120)
        assert done["Progress"] == "100%"
        restored = ec2.create_volume(SnapshotId=again, AvailabilityZone=zone)["VolumeId"]
        until(lambda: ec2.describe_volumes(VolumeIds=[restored])["Volumes"][0]["State"] == "available", 120)
        assert read_at(sc.volumes / restored, pieces)  # nothing the volume held was lost
        ec2.delete_snapshot(SnapshotId=snap_id)  # a failed snapshot can be deleted
        for snapshot in (again,):
            ec2.delete_snapshot(SnapshotId=snapshot)
        for volume_id in (vol_id, restored):
            ec2.delete_volume(VolumeId=volume_id)
        assert sc.client().describe() == []


def snapshot_stored(box: Box, key: str) -> bool:
    objects = box.cloud.snapshots.objects
    assert objects is not None
    try:
        next(iter(objects.read(key)), None)
    except S3Error:
        return False
    return True


def test_create_image_whose_registration_fails_leaves_no_snapshot(tmp_path: Path) -> None:
    """CreateImage snapshots the root volume, then registers the image. While its snapshot waits
    on a stopped SC (the API answers nothing meanwhile: one request runs at a time), the image
    service itself is given an image of the same name, so CreateImage's registration fails: the
    snapshot it began is deleted, record and object, and nothing is left to clean up by hand."""
    with sc_process(tmp_path / "sc", "--no-iscsi") as sc, remote_box(tmp_path, sc) as box:
        ec2 = box.client("sc-image")
        zone = ec2.describe_availability_zones()["AvailabilityZones"][0]["ZoneName"]
        vol_id = ec2.create_volume(Size=1, AvailabilityZone=zone)["VolumeId"]
        until(lambda: ec2.describe_volumes(VolumeIds=[vol_id])["Volumes"][0]["State"] == "available")
        base = ec2.create_snapshot(VolumeId=vol_id)["SnapshotId"]
        until(lambda: ec2.describe_snapshots(SnapshotIds=[base])["Snapshots"][0]["State"] == "completed")
        mapping = [{"DeviceName": "/dev/sda1", "Ebs": {"SnapshotId": base}}]
        image = ec2.register_image(Name="base", RootDeviceName="/dev/sda1", BlockDeviceMappings=mapping)["ImageId"]
        instance_id = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
        until(lambda: ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
              ["State"]["Name"] == "running")
        account = box.cloud.accounts.get("sc-image")
        assert account is not None

        def begun() -> list[str]:
            return [s["SnapshotId"] for s in box.cloud.snapshots.describe(account.caller, {})["Snapshots"]
                    if s["Description"].startswith(f"Created by CreateImage({instance_id})")]

        assert sc.proc is not None
        answers: list[str] = []
        creating = threading.Thread(target=lambda: answers.append(refused(
            "InvalidAMIName.Duplicate", ec2.create_image, InstanceId=instance_id, Name="taken")))
        sc.proc.send_signal(signal.SIGSTOP)
        try:
            creating.start()
            # recorded, and waiting on the SC for its bytes: CreateImage has yet to register its image
            taken = until(lambda: begun())[0]
            box.cloud.images.register_ebs(account.caller, {"Name": "taken", "RootDeviceName": "/dev/sda1",
                                                           "BlockDeviceMappings": mapping})
        finally:
            sc.proc.send_signal(signal.SIGCONT)
        creating.join(60)
        assert answers and "taken" in answers[0]
        assert begun() == []
        refused("InvalidSnapshot.NotFound", ec2.describe_snapshots, SnapshotIds=[taken])
        # its upload went on to the end: what it stored is deleted then
        until(lambda: not snapshot_stored(box, taken), 30)
        assert snapshot_stored(box, base)
        assert [i["Name"] for i in ec2.describe_images(Owners=["self"])["Images"]].count("taken") == 1


def tgt_args(tgtd: int) -> tuple[str, ...]:
    control, port = divmod(tgtd, 100000)
    return "--iscsi-port", str(port), "--tgt-control-port", str(control)


def targets(tgtd: int) -> set[str]:
    control, port = divmod(tgtd, 100000)
    return {iqn for iqn in Tgt(port=port, control_port=control).targets() if iqn.startswith(IQN_PREFIX)}


def unread_requests(port: int) -> int:
    """Connections to the local server on ``port`` with bytes it has not read (ss's Recv-Q)."""
    shown = subprocess.run(["ss", "-tnH", "state", "established", f"( sport = :{port} )"], capture_output=True,
                           text=True, check=True).stdout
    return sum(1 for line in shown.splitlines() if int(line.split()[0]) > 0)


def attached(ec2: Any, *volume_ids: str) -> list[dict[str, Any]]:
    """The volumes once each attachment, answered ``attaching``, is ``attached`` (and in use)."""
    def shown() -> list[dict[str, Any]] | None:
        vols = ec2.describe_volumes(VolumeIds=list(volume_ids))["Volumes"]
        done = all(v["State"] == "in-use" and v["Attachments"] and v["Attachments"][0]["State"] == "attached"
                   for v in vols)
        return sorted(vols, key=lambda v: volume_ids.index(v["VolumeId"])) if done else None
    return list(until(shown, 30))


def released(ec2: Any, *volume_ids: str) -> None:
    """Wait until the volumes, answered ``detaching``, are ``available`` with no attachment."""
    until(lambda: all(v["State"] == "available" and not v["Attachments"]
                      for v in ec2.describe_volumes(VolumeIds=list(volume_ids))["Volumes"]), 30)


def test_a_storage_controller_killed_mid_attach_leaks_no_export_and_keeps_what_was_attached(
        tgtd: int, tmp_path: Path) -> None:
    control, port = divmod(tgtd, 100000)
    with sc_process(tmp_path / "sc", *tgt_args(tgtd)) as sc, remote_box(tmp_path, sc) as box:
        ec2 = box.client("sc-attach")
        zone = ec2.describe_availability_zones()["AvailabilityZones"][0]["ZoneName"]
        kept, cut, other = (ec2.create_volume(Size=1, AvailabilityZone=zone)["VolumeId"] for _ in range(3))
        until(lambda: {v["State"] for v in ec2.describe_volumes(VolumeIds=[kept, cut, other])["Volumes"]}
              == {"available"})
        image = box.image()
        instance_id = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
        until(lambda: ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
              ["State"]["Name"] == "running")
        ec2.attach_volume(VolumeId=kept, InstanceId=instance_id, Device="/dev/sdf")
        ec2.attach_volume(VolumeId=other, InstanceId=instance_id, Device="/dev/sdg")
        attached(ec2, kept, other)
        assert targets(tgtd) == {iqn_of("cluster01", kept), iqn_of("cluster01", other)}
        node = box.cloud.cc.instance(instance_id)
        assert node is not None
        held = box.cloud.box.sims[node.node].volumes[instance_id]
        assert held["vdf"].iqn == iqn_of("cluster01", kept) and held["vdf"].path == ""  # by iSCSI, not by file

        # the SC dies with an attach in flight: the attach fails and nothing is left exported
        assert sc.proc is not None
        sc.proc.send_signal(signal.SIGSTOP)
        assert ec2.attach_volume(VolumeId=cut, InstanceId=instance_id, Device="/dev/sdh")["State"] == "attaching"
        account = box.cloud.accounts.get("sc-attach")
        assert account is not None
        # in flight for certain: the attach recorded the export it is asking for (no other call to
        # the SC is under way), and the request's bytes wait unread in the stopped SC's socket
        until(lambda: box.cloud.volumes.visible(account.caller, cut).exported and unread_requests(sc.port) > 0, 20)
        sc.kill()
        shown = until(lambda: (v := ec2.describe_volumes(VolumeIds=[cut])["Volumes"][0])["State"] == "available"
                      and v, 30)
        assert shown["Attachments"] == []
        # a detach while the SC is away: the node lets the disk go; the export is ended once the SC is back
        ec2.detach_volume(VolumeId=other)
        until(lambda: ec2.describe_volumes(VolumeIds=[other])["Volumes"][0]["State"] == "available", 30)
        # and a target an SC killed between tgtadm and its record would leave
        stray = iqn_of("cluster01", "vol-0000dead")
        Tgt("127.0.0.1", port, control_port=control).export(stray, sc.volumes / kept)
        sc.start()
        assert stray not in targets(tgtd)
        until(lambda: targets(tgtd) == {iqn_of("cluster01", kept)}, 30)
        shown = ec2.describe_volumes(VolumeIds=[kept])["Volumes"][0]  # what was attached stays attached
        assert shown["State"] == "in-use" and shown["Attachments"][0]["State"] == "attached"
        assert {v["volume_id"]: bool(v["export"]) for v in sc.client().describe()} == {
            kept: True, cut: False, other: False}
        # all is usable again: attach, detach, delete
        ec2.attach_volume(VolumeId=cut, InstanceId=instance_id, Device="/dev/sdh")
        attached(ec2, cut)
        assert iqn_of("cluster01", cut) in targets(tgtd)
        for vol_id in (kept, cut):
            ec2.detach_volume(VolumeId=vol_id)
        released(ec2, kept, cut)
        assert targets(tgtd) == set()
        for vol_id in (kept, cut, other):
            ec2.delete_volume(VolumeId=vol_id)
        assert sc.client().describe() == [] and not list(sc.volumes.iterdir())


def test_the_api_answers_everyone_while_a_paused_storage_controller_holds_an_attach_or_a_detach(
        tgtd: int, tmp_path: Path) -> None:
    """AttachVolume and DetachVolume answer ``attaching`` and ``detaching`` at once; the SC's export
    (or unexport) is a worker's, so a stopped SC (SIGSTOP) holds up no one's request, and the
    attachment is made (or ended) once the SC runs again (SIGCONT)."""
    from botocore.config import Config

    with sc_process(tmp_path / "sc", *tgt_args(tgtd)) as sc, remote_box(tmp_path, sc) as box:
        # a request held for the SC would wait its 60 s timeout: these clients give up long before,
        # and do not try again
        quick = Config(connect_timeout=5, read_timeout=5, retries={"max_attempts": 1})
        ec2, other = box.client("sc-paused", config=quick), box.client("sc-paused-other", config=quick)
        zone = ec2.describe_availability_zones()["AvailabilityZones"][0]["ZoneName"]
        vol_id = ec2.create_volume(Size=1, AvailabilityZone=zone)["VolumeId"]
        until(lambda: ec2.describe_volumes(VolumeIds=[vol_id])["Volumes"][0]["State"] == "available")
        instance_id = ec2.run_instances(ImageId=box.image(), MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
        until(lambda: ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
              ["State"]["Name"] == "running")
        theirs = other.run_instances(ImageId=box.image(), MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
        assert sc.proc is not None

        sc.proc.send_signal(signal.SIGSTOP)
        try:
            answer = ec2.attach_volume(VolumeId=vol_id, InstanceId=instance_id, Device="/dev/sdf")
            assert answer["State"] == "attaching" and answer["InstanceId"] == instance_id
            # the worker's export waits unread in the stopped SC's socket: the attach is pending
            until(lambda: unread_requests(sc.port) > 0, 20)
            shown = ec2.describe_volumes(VolumeIds=[vol_id])["Volumes"][0]
            assert shown["State"] == "in-use" and shown["Attachments"][0]["State"] == "attaching"
            assert other.describe_volumes()["Volumes"] == []
            assert [r["Instances"][0]["InstanceId"] for r in other.describe_instances()["Reservations"]] == [theirs]
            refused("VolumeInUse", ec2.attach_volume, VolumeId=vol_id, InstanceId=instance_id, Device="/dev/sdg")
            refused("IncorrectState", ec2.detach_volume, VolumeId=vol_id)  # not attached yet
            refused("VolumeInUse", ec2.delete_volume, VolumeId=vol_id)
            assert targets(tgtd) == set()
        finally:
            sc.proc.send_signal(signal.SIGCONT)
        shown = attached(ec2, vol_id)[0]
        assert shown["Attachments"][0]["InstanceId"] == instance_id
        assert targets(tgtd) == {iqn_of("cluster01", vol_id)}
        node = box.cloud.cc.instance(instance_id)
        assert node is not None
        assert box.cloud.box.sims[node.node].volumes[instance_id]["vdf"].iqn == iqn_of("cluster01", vol_id)

        sc.proc.send_signal(signal.SIGSTOP)
        try:
            assert ec2.detach_volume(VolumeId=vol_id)["State"] == "detaching"
            until(lambda: unread_requests(sc.port) > 0, 20)  # the node let go; the unexport waits
            assert ec2.describe_volumes(VolumeIds=[vol_id])["Volumes"][0]["Attachments"][0]["State"] == "detaching"
            assert other.describe_volumes()["Volumes"] == []
            assert [r["Instances"][0]["InstanceId"] for r in other.describe_instances()["Reservations"]] == [theirs]
            refused("VolumeInUse", ec2.attach_volume, VolumeId=vol_id, InstanceId=instance_id, Device="/dev/sdf")
            assert ec2.detach_volume(VolumeId=vol_id)["State"] == "detaching"  # asked again: under way
        finally:
            sc.proc.send_signal(signal.SIGCONT)
        released(ec2, vol_id)
        assert targets(tgtd) == set() and instance_id not in box.cloud.box.sims[node.node].volumes
        assert {v["volume_id"]: bool(v["export"]) for v in sc.client().describe()} == {vol_id: False}


def test_an_attach_whose_export_fails_leaves_the_volume_available(tmp_path: Path) -> None:
    """An SC with no iSCSI target cannot export: AttachVolume still answers ``attaching``, and the
    worker's failed export leaves the volume ``available`` with no attachment, attachable again."""
    with sc_process(tmp_path / "sc", "--no-iscsi") as sc, remote_box(tmp_path, sc) as box:
        ec2 = box.client("sc-no-export")
        zone = ec2.describe_availability_zones()["AvailabilityZones"][0]["ZoneName"]
        vol_id = ec2.create_volume(Size=1, AvailabilityZone=zone)["VolumeId"]
        until(lambda: ec2.describe_volumes(VolumeIds=[vol_id])["Volumes"][0]["State"] == "available")
        instance_id = ec2.run_instances(ImageId=box.image(), MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
        until(lambda: ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
              ["State"]["Name"] == "running")
        for _ in range(2):  # a failed attach leaves nothing behind that would refuse the next one
            answer = ec2.attach_volume(VolumeId=vol_id, InstanceId=instance_id, Device="/dev/sdf")
            assert answer["State"] == "attaching"
            released(ec2, vol_id)
        node = box.cloud.cc.instance(instance_id)
        assert node is not None and instance_id not in box.cloud.box.sims[node.node].volumes
        assert {v["volume_id"]: bool(v["export"]) for v in sc.client().describe()} == {vol_id: False}
        refused("IncorrectState", ec2.detach_volume, VolumeId=vol_id)
        ec2.delete_volume(VolumeId=vol_id)
        assert sc.client().describe() == []


def test_euca_up_with_a_remote_storage_controller(tgtd: int, tmp_path: Path) -> None:
    """Two processes as on two hosts: euca up with --storage-controller, and euca storage-controller."""
    with sc_process(tmp_path / "sc", *tgt_args(tgtd)) as sc:
        data_dir, port = tmp_path / "cloud", free_port()
        bad = subprocess.run([sys.executable, "-m", "euca.cli", "up", "--data-dir", str(data_dir),
                              "--storage-controller", sc.url], capture_output=True, text=True, timeout=60,
                             env={k: v for k, v in os.environ.items() if k != "EUCA_SC_KEY"}, check=False)
        assert bad.returncode == 2 and "--storage-key" in bad.stderr
        with euca_up(data_dir, port, None, "--storage-controller", sc.url, "--storage-key-file", str(sc.key_file)):
            ec2 = client(data_dir, port)
            image = next(line.split("=", 1)[1] for line in (data_dir / "eucarc").read_text().splitlines()
                         if line.startswith("export EUCA_DEFAULT_IMAGE="))
            zone = ec2.describe_availability_zones()["AvailabilityZones"][0]["ZoneName"]
            assert "100 GiB" in refused("VolumeLimitExceeded", ec2.create_volume, Size=101, AvailabilityZone=zone)
            vol_id = ec2.create_volume(Size=1, AvailabilityZone=zone)["VolumeId"]
            until(lambda: ec2.describe_volumes(VolumeIds=[vol_id])["Volumes"][0]["State"] == "available")
            assert (sc.volumes / vol_id).exists() and not (data_dir / "volumes" / vol_id).exists()
            pieces = {4096: b"written on the SC's host", 700 << 20: text_like(1 << 20, 7)}
            write_at(sc.volumes / vol_id, pieces)
            instance_id = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
            until(lambda: ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
                  ["State"]["Name"] == "running")
            ec2.attach_volume(VolumeId=vol_id, InstanceId=instance_id, Device="/dev/sdf")
            shown = attached(ec2, vol_id)[0]
            assert shown["State"] == "in-use" and shown["Attachments"][0]["InstanceId"] == instance_id
            assert targets(tgtd) == {iqn_of("cluster01", vol_id)}  # the box's node was given an iSCSI target
            snap_id = ec2.create_snapshot(VolumeId=vol_id)["SnapshotId"]
            done = until(lambda: (s := ec2.describe_snapshots(SnapshotIds=[snap_id])["Snapshots"][0])["State"]
                         == "completed" and s, 60)
            assert done["Progress"] == "100%"
            restored = ec2.create_volume(SnapshotId=snap_id, AvailabilityZone=zone)["VolumeId"]
            until(lambda: ec2.describe_volumes(VolumeIds=[restored])["Volumes"][0]["State"] == "available", 60)
            assert read_at(sc.volumes / restored, pieces)
            ec2.detach_volume(VolumeId=vol_id)
            released(ec2, vol_id)
            assert targets(tgtd) == set()
            ec2.delete_snapshot(SnapshotId=snap_id)
            for volume_id in (vol_id, restored):
                ec2.delete_volume(VolumeId=volume_id)
            assert ec2.describe_volumes()["Volumes"] == [] and sc.client().describe() == []
            assert not list(sc.volumes.iterdir())


def test_a_stopped_ebs_instance_whose_root_cannot_be_exported_stays_stopped_with_the_reason(
        tmp_path: Path) -> None:
    """StartInstances of an EBS-backed instance on a remote node: the SC exports its root volume
    again, bound to that node. With the SC's tgtd stopped the export fails for real: the instance
    is stopped again, its StateReason the SC's reason, and no node is asked to start it."""
    from euca.fleet.box import NodeSpec
    from tests.guest.procs import Process, run_instances
    from tests.test_ebs_instances import ebs_image, in_state, snapshot

    key, nc_port = "restart-key", free_port()
    conf = tmp_path / "nc.conf"
    conf.write_text(f'INSTANCE_PATH="{tmp_path / "instances"}"\n')
    nc = Process("euca node-controller", ["-m", "euca.cli", "node-controller", "--sim", "--config", str(conf),
                                          "--host", "127.0.0.1", "--port", str(nc_port), "--key", key],
                 tmp_path / "nc.log")
    data = tmp_path / "cloud"
    data.mkdir()
    sc_store = Store(str(data / "euca.db"))
    try:
        with contextlib.ExitStack() as daemon:
            control, port = divmod(daemon.enter_context(tgt_daemon(8000 + os.getpid() % 1000)), 100000)
            sc = StorageController(sc_store, Overlay(data / "volumes"), "cluster01",
                                   tgt=Tgt("127.0.0.1", port, control_port=control))
            nc.wait_for("node controller on")
            node = NodeSpec("node01", url=f"http://127.0.0.1:{nc_port}", key=key)
            with running_box(data, nodes=0, extra_nodes=[node], storage=sc) as box:
                ec2 = box.client("ebs-restart")
                made = run_instances(ec2, ebs_image(ec2, snapshot(ec2), "ebs-restart"), nc)[0]
                instance_id, vol_id = made["InstanceId"], made["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]
                in_state(ec2, instance_id, "running")
                assert iqn_of("cluster01", vol_id) in Tgt(port=port, control_port=control).targets()
                ec2.stop_instances(InstanceIds=[instance_id])
                assert in_state(ec2, instance_id, "stopped")["StateReason"]["Code"] == "Client.UserInitiatedShutdown"

                daemon.close()  # the SC's tgtd stops: its next export fails
                ec2.start_instances(InstanceIds=[instance_id])
                stopped = in_state(ec2, instance_id, "stopped")
                assert stopped["StateReason"]["Code"] == "Server.InternalError"
                assert vol_id in stopped["StateReason"]["Message"]
                assert box.cloud.cc.instance(instance_id) is None  # its capacity went back to the cluster
                shown = ec2.describe_volumes(VolumeIds=[vol_id])["Volumes"][0]
                assert shown["State"] == "in-use" and shown["Attachments"][0]["InstanceId"] == instance_id
                ec2.terminate_instances(InstanceIds=[instance_id])
                in_state(ec2, instance_id, "terminated")
    finally:
        nc.stop()
        sc_store.close()
