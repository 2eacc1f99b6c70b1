"""Where a Storage Controller keeps its volumes' bytes: one small protocol, two back ends.

``overlay`` (the default) keeps each volume as a sparse file under the SC's data directory, as
Eucalyptus's overlay back end kept its loop files; a snapshot's point-in-time copy is a reflink
clone where the file system has them (XFS, Btrfs) and a hole-preserving copy elsewhere. ``das``
("direct attached storage") carves logical volumes out of an LVM volume group; its point-in-time
copy is an LVM snapshot (``lv-snap-...``), as Eucalyptus 2.0's SC made them.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

GIB = 1 << 30
FICLONE = 0x40049409  # linux/fs.h: _IOW(0x94, 9, int)
_NAME = re.compile(r"^(vol|snap)-[0-9A-Fa-f]{8}([0-9A-Fa-f]{9})?$")

# runs a command (argv), returns its standard output; raises StorageError when it fails
Runner = Callable[[Sequence[str]], str]


class StorageError(Exception):
    """The Storage Controller could not do what was asked; the message says which volume and why."""


def run_command(argv: Sequence[str]) -> str:
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise StorageError(f"{argv[0]}: {exc}") from None
    if done.returncode != 0:
        raise StorageError(f"{' '.join(argv)}: {done.stderr.strip() or f'exit {done.returncode}'}")
    return done.stdout


def _checked(name: str) -> str:
    if not _NAME.match(name):
        raise StorageError(f"not a volume or snapshot id: {name[:64]!r}")
    return name


class Backend(Protocol):
    """A volume's bytes: made blank, found by path (a file or a block device), cloned at a point in
    time for a snapshot, and removed."""

    name: str

    def create(self, volume_id: str, size_gb: int) -> Path: ...

    def path(self, volume_id: str) -> Path: ...

    def exists(self, volume_id: str) -> bool: ...

    def delete(self, volume_id: str) -> None: ...

    def clone(self, volume_id: str, clone_id: str) -> Path:
        """A point-in-time copy of the volume that later writes to it do not change."""
        ...

    def drop_clone(self, clone_id: str) -> None: ...

    def clones(self) -> list[str]:
        """The snapshot ids whose point-in-time copies exist (a crash can leave one behind)."""
        ...


class Overlay:
    """Sparse files: ``<root>/<vol-id>``; clones are ``<root>/<snap-id>.clone``."""

    name = "overlay"

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, volume_id: str) -> Path:
        return self.root / _checked(volume_id)

    def exists(self, volume_id: str) -> bool:
        return self.path(volume_id).exists()

    def create(self, volume_id: str, size_gb: int) -> Path:
        path = self.path(volume_id)
        with open(path, "xb") as f:  # a sparse file: dd seek=SIZE, as Eucalyptus made it
            f.truncate(size_gb * GIB)
        return path

    def delete(self, volume_id: str) -> None:
        self.path(volume_id).unlink(missing_ok=True)

    def clone(self, volume_id: str, clone_id: str) -> Path:
        source, target = self.path(volume_id), self.root / f"{_checked(clone_id)}.clone"
        target.unlink(missing_ok=True)
        with open(source, "rb") as src, open(target, "xb") as dst:
            try:
                fcntl.ioctl(dst.fileno(), FICLONE, src.fileno())
                return target
            except OSError as exc:
                if exc.errno not in (errno.EOPNOTSUPP, errno.EXDEV, errno.EINVAL, errno.ENOTTY, errno.EBADF):
                    raise
            sparse_copy(src.fileno(), dst.fileno())
        return target

    def drop_clone(self, clone_id: str) -> None:
        (self.root / f"{_checked(clone_id)}.clone").unlink(missing_ok=True)

    def clones(self) -> list[str]:
        return sorted(p.name[:-len(".clone")] for p in self.root.glob("snap-*.clone")
                      if _NAME.match(p.name[:-len(".clone")]))


def sparse_copy(src: int, dst: int, buffer: int = 1 << 20) -> None:
    """Copy the data extents of ``src`` to the same offsets of ``dst``, leaving its holes holes."""
    size = os.fstat(src).st_size
    os.ftruncate(dst, size)
    offset = 0
    while offset < size:
        try:
            start = os.lseek(src, offset, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:
                break  # only a hole is left
            raise
        end = os.lseek(src, start, os.SEEK_HOLE)
        _copy_range(src, dst, start, end, buffer)
        offset = end


def _copy_range(src: int, dst: int, start: int, end: int, buffer: int) -> None:
    """Bytes [start, end) of ``src`` to the same place in ``dst``: in the kernel (copy_file_range,
    as cp does) where the file system allows, through a buffer otherwise."""
    while start < end:
        try:
            copied = os.copy_file_range(src, dst, end - start, start, start)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOSYS):
                raise
            break
        if copied == 0:
            break
        start += copied
    while start < end:
        chunk = os.pread(src, min(buffer, end - start), start)
        if not chunk:
            break
        os.pwrite(dst, chunk, start)
        start += len(chunk)


class Das:
    """LVM logical volumes ``lv-<vol-id>`` in the volume group ``vg``; snapshots' clones are LVM
    snapshots ``lv-snap-<snap-id>`` sized at a tenth of their origin (at least 1 GiB)."""

    name = "das"

    def __init__(self, vg: str, run: Runner = run_command) -> None:
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9+_.-]*$", vg):
            raise StorageError(f"not a volume group name: {vg!r}")
        self.vg, self.run = vg, run

    def path(self, volume_id: str) -> Path:
        return Path("/dev") / self.vg / f"lv-{_checked(volume_id)}"

    def exists(self, volume_id: str) -> bool:
        names = self.run(["lvs", "--noheadings", "-o", "lv_name", self.vg]).split()
        return f"lv-{_checked(volume_id)}" in names

    def create(self, volume_id: str, size_gb: int) -> Path:
        self.run(["lvcreate", "--yes", "-n", f"lv-{_checked(volume_id)}", "-L", f"{size_gb}G", self.vg])
        return self.path(volume_id)

    def delete(self, volume_id: str) -> None:
        self.run(["lvremove", "-f", f"{self.vg}/lv-{_checked(volume_id)}"])

    def clone(self, volume_id: str, clone_id: str) -> Path:
        size = self.run(["lvs", "--noheadings", "--units", "g", "--nosuffix", "-o", "lv_size",
                         f"{self.vg}/lv-{_checked(volume_id)}"]).strip()
        cow = max(1, int(float(size or "10") / 10 + 0.999))
        self.run(["lvcreate", "--yes", "-s", "-n", f"lv-snap-{_checked(clone_id)}", "-L", f"{cow}G",
                  f"{self.vg}/lv-{volume_id}"])
        return Path("/dev") / self.vg / f"lv-snap-{clone_id}"

    def drop_clone(self, clone_id: str) -> None:
        self.run(["lvremove", "-f", f"{self.vg}/lv-snap-{_checked(clone_id)}"])

    def clones(self) -> list[str]:
        names = self.run(["lvs", "--noheadings", "-o", "lv_name", self.vg]).split()
        ids = (n[len("lv-snap-"):] for n in names if n.startswith("lv-snap-"))
        return sorted(i for i in ids if _NAME.match(i))
