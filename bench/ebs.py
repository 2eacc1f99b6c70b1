"""EBS through the EC2 API of ``euca up`` (its Storage Controller in-process, snapshots in Walrus):
1 GiB volumes created and deleted per second, and a 1 GiB volume's snapshot and restore beside
``cp --sparse=always`` and ``dd`` of the same file in the same run.

The volume holds real data, partly sparse: text-like runs (gzip halves them), random runs (gzip
cannot shrink them) and holes between them, as a used file system leaves its disk. A snapshot is
timed from CreateSnapshot to ``completed`` (its bytes read from the volume, compressed and stored
in Walrus as a multipart upload), a restore from CreateVolume to ``available``; the copies are
timed from their start to their exit. Ratios are the copy's time over ours: 1.0 is as fast as cp.
"""

from __future__ import annotations

import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from bench.api import _free_port, _process, eucarc

GIB = 1 << 30
MIB = 1 << 20


@dataclass(frozen=True)
class Figures:
    data_mib: int
    volumes_per_s: float
    snapshot_s: float
    restore_s: float
    cp_s: float
    dd_s: float
    stored_mib: float
    pack_s: float  # the SC's gzip stream alone, no Walrus
    unpack_s: float  # the stream written back into a sparse file, no Walrus


@contextmanager
def _cloud() -> Iterator[tuple[Any, Path]]:
    with tempfile.TemporaryDirectory(dir="/var/tmp") as tmp:
        port = _free_port()
        cmd = [sys.executable, "-m", "euca.cli", "up", "--data-dir", tmp, "--port", str(port), "--nodes", "1",
               "--log-level", "warning"]
        with _process(cmd, port):
            env = eucarc(Path(tmp))
            ec2 = boto3.client("ec2", endpoint_url=f"http://127.0.0.1:{port}", region_name="eucalyptus",
                               aws_access_key_id=env["EC2_ACCESS_KEY"], aws_secret_access_key=env["EC2_SECRET_KEY"])
            yield ec2, Path(tmp)


def _until(check: Callable[[], bool], timeout: float = 600.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out")
        time.sleep(0.05)


def _volume_state(ec2: Any, volume_id: str) -> str:
    return str(ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]["State"])


def _available(ec2: Any, volume_id: str) -> None:
    def ready() -> bool:
        state = _volume_state(ec2, volume_id)
        if state == "error":
            raise RuntimeError(f"{volume_id} failed")
        return state == "available"
    _until(ready)


def _completed(ec2: Any, snapshot_id: str) -> None:
    def ready() -> bool:
        state = ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"][0]["State"]
        if state == "error":
            raise RuntimeError(f"{snapshot_id} failed")
        return bool(state == "completed")
    _until(ready)


def _text(rng: random.Random, size: int) -> bytes:
    """Log-like lines of words from a small vocabulary: gzip at level 1 keeps about a third."""
    vocabulary = ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(2, 10))) for _ in range(2000)]
    lines, length = [], 0
    while length < size:
        line = f"{rng.randint(0, 1 << 30):010d} {' '.join(rng.choices(vocabulary, k=rng.randint(4, 14)))}\n"
        lines.append(line)
        length += len(line)
    return "".join(lines).encode()[:size]


def fill_like_a_disk(path: Path, data_mib: int, seed: int = 7) -> None:
    """``data_mib`` MiB of data in 16 MiB runs spread over the volume, half text-like, half random."""
    rng = random.Random(seed)
    text = _text(rng, 8 * MIB)
    size = path.stat().st_size
    runs = max(1, data_mib // 16)
    stride = size // runs
    with open(path, "r+b") as f:
        for n in range(runs):
            f.seek(n * stride)
            for _ in range(16):
                start = rng.randrange(0, 7 * MIB)
                f.write(text[start:start + MIB] if n % 2 == 0 else rng.randbytes(MIB))


def _sc_alone(path: Path, scratch: Path) -> tuple[float, float]:
    """The Storage Controller's own part: the volume to its gzip stream, and that stream back into a
    sparse file of the same size, in this process, with no Walrus between."""
    from euca.storage.gzipped import pack, unpack

    size = path.stat().st_size
    fd = os.open(path, os.O_RDONLY)
    try:
        started = time.perf_counter()
        stream = [data for _, data in pack(fd, size)]
        packed = time.perf_counter() - started
    finally:
        os.close(fd)
    with open(scratch, "wb") as f:
        f.truncate(size)
        started = time.perf_counter()
        unpack(stream, f.fileno(), size)
        unpacked = time.perf_counter() - started
    scratch.unlink()
    return packed, unpacked


def _timed(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True)
    return time.perf_counter() - started


def measure(quick: bool = False) -> Figures:
    repeats = 1 if quick else 3
    cycles = 5 if quick else 30
    data_mib = 128 if quick else 384
    with _cloud() as (ec2, data_dir):
        zone = ec2.describe_availability_zones()["AvailabilityZones"][0]["ZoneName"]
        started = time.perf_counter()
        for _ in range(cycles):
            volume_id = ec2.create_volume(Size=1, AvailabilityZone=zone)["VolumeId"]
            _available(ec2, volume_id)
            ec2.delete_volume(VolumeId=volume_id)
        volumes_per_s = cycles / (time.perf_counter() - started)

        volume_id = ec2.create_volume(Size=1, AvailabilityZone=zone)["VolumeId"]
        _available(ec2, volume_id)
        path = data_dir / "volumes" / volume_id
        fill_like_a_disk(path, data_mib)
        copy = data_dir / "copy"
        snapshot_s, restore_s, cp_s, dd_s, pack_s, unpack_s = [], [], [], [], [], []
        stored = 0.0
        snapshot_id = ""
        for _ in range(repeats):
            cp_s.append(_timed(["cp", "--sparse=always", str(path), str(copy)]))
            copy.unlink()
            dd_s.append(_timed(["dd", f"if={path}", f"of={copy}", "bs=1M", "status=none"]))
            copy.unlink()
            packed, unpacked = _sc_alone(path, copy)
            pack_s.append(packed)
            unpack_s.append(unpacked)
            if snapshot_id:
                ec2.delete_snapshot(SnapshotId=snapshot_id)
            started = time.perf_counter()
            snapshot_id = ec2.create_snapshot(VolumeId=volume_id)["SnapshotId"]
            _completed(ec2, snapshot_id)
            snapshot_s.append(time.perf_counter() - started)
            stored = sum(p.stat().st_size for p in (data_dir / "walrus").rglob("*") if p.is_file()) / MIB \
                if (data_dir / "walrus").exists() else 0.0
            started = time.perf_counter()
            restored = ec2.create_volume(SnapshotId=snapshot_id, AvailabilityZone=zone)["VolumeId"]
            _available(ec2, restored)
            restore_s.append(time.perf_counter() - started)
            ec2.delete_volume(VolumeId=restored)
        return Figures(data_mib, volumes_per_s, statistics.median(snapshot_s), statistics.median(restore_s),
                       statistics.median(cp_s), statistics.median(dd_s), stored, statistics.median(pack_s),
                       statistics.median(unpack_s))


def format_report(f: Figures) -> str:
    mb = GIB / 1e6

    def line(what: str, ours: float, theirs: float, name: str) -> str:
        return (f"  {what:<9} {mb / ours:8.0f} MB/s ({ours:5.2f} s)   {name:<20} {mb / theirs:8.0f} MB/s "
                f"({theirs:5.2f} s)   ratio {theirs / ours:4.2f}")

    return "\n".join([
        f"  create + delete of a 1 GiB volume: {f.volumes_per_s:.1f} per second",
        f"  a 1 GiB volume holding {f.data_mib} MiB of data (half text-like, half random), the rest holes; "
        f"its snapshot in Walrus ~{f.stored_mib:.0f} MiB",
        line("snapshot", f.snapshot_s, f.cp_s, "cp --sparse=always"),
        line("snapshot", f.snapshot_s, f.dd_s, "dd bs=1M"),
        line("restore", f.restore_s, f.cp_s, "cp --sparse=always"),
        line("restore", f.restore_s, f.dd_s, "dd bs=1M"),
        "  the Storage Controller's part alone (no API, no Walrus):",
        line("gzip", f.pack_s, f.cp_s, "cp --sparse=always"),
        line("gunzip", f.unpack_s, f.cp_s, "cp --sparse=always"),
    ])


def main(argv: list[str] | None = None) -> int:
    quick = "--quick" in (argv if argv is not None else sys.argv[1:])
    print(format_report(measure(quick)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
