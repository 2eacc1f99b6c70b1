"""An instance's disks on its node: ``INSTANCE_PATH/<account>/<instance>/``.

The root disk is made from the cached emi: a copy-on-write clone (``FICLONE``, what
``cp --reflink`` does) where the file system shares extents (XFS, Btrfs), otherwise a full copy.
The kernel and ramdisk are cloned the same way. The ephemeral disk (Xen's ``sda2``) takes the rest
of the VM type's disk and the swap disk (``sda3``) SWAP_SIZE MB, skipped when the type leaves no
room for it, as Eucalyptus does; both are sparse files, so they cost nothing until the guest
writes. Everything goes when the instance is torn down; after a crash of the node controller the
directories of instances the hypervisor no longer runs are swept away at start-up.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from drivers.protocol import InstanceFiles

log = logging.getLogger("euca.node.disks")

MB = 1024 * 1024
GB = 1024 * MB
FICLONE = 0x40049409  # linux/fs.h: _IOW(0x94, 9, int)
CACHE_DIR = "eucalyptus"  # INSTANCE_PATH/eucalyptus/cache is the image cache, never an account


def clone_file(source: Path, target: Path) -> bool:
    """Copy ``source`` to ``target`` sharing its blocks when the file system can; True if it did."""
    with open(source, "rb") as src, open(target, "wb") as dst:
        try:
            fcntl.ioctl(dst.fileno(), FICLONE, src.fileno())
            return True
        except OSError:
            shutil.copyfileobj(src, dst, 4 * MB)
            return False


@dataclass(frozen=True)
class DiskPlan:
    """Bytes of the ephemeral and swap disks for a VM type's disk (GB) beside a root image."""

    ephemeral: int
    swap: int

    @classmethod
    def of(cls, disk_gb: int, root_bytes: int, swap_mb: int) -> DiskPlan:
        room = max(0, disk_gb * GB - root_bytes)
        swap = swap_mb * MB if swap_mb * MB <= room else 0
        return cls(room - swap, swap)


class InstanceDisks:
    """Builds and removes instances' directories under INSTANCE_PATH."""

    def __init__(self, instance_path: Path, swap_mb: int = 512) -> None:
        self.instance_path = instance_path
        self.swap_mb = swap_mb

    def files(self, account: str, instance_id: str) -> InstanceFiles:
        if not account or "/" in account or account in (".", "..", CACHE_DIR):
            raise ValueError(f"{instance_id}: {account!r} cannot name an account's directory")
        if "/" in instance_id or not instance_id.startswith("i-"):
            raise ValueError(f"{instance_id!r} is not an instance id")
        return InstanceFiles.of(self.instance_path, account, instance_id)

    def create(self, files: InstanceFiles, disk_gb: int, root: Path | None, kernel: Path | None = None,
               ramdisk: Path | None = None) -> DiskPlan:
        """``root`` None: the instance boots from an EBS volume, and has no root file here."""
        files.directory.mkdir(parents=True, exist_ok=True)
        if root is not None:
            clone_file(root, files.root)
        if kernel is not None:
            clone_file(kernel, files.kernel)
        if ramdisk is not None:
            clone_file(ramdisk, files.ramdisk)
        plan = DiskPlan.of(disk_gb, files.root.stat().st_size if root is not None else 0, self.swap_mb)
        for path, size in ((files.ephemeral, plan.ephemeral), (files.swap, plan.swap)):
            if size:
                with open(path, "wb") as f:
                    f.truncate(size)
        return plan

    def remove(self, files: InstanceFiles) -> None:
        shutil.rmtree(files.directory, ignore_errors=True)
        # The account's directory goes with its last instance; rmdir fails while others remain.
        with contextlib.suppress(OSError):
            files.directory.parent.rmdir()

    def leftovers(self, live: set[str]) -> list[InstanceFiles]:
        """Directories of instances not in ``live`` (what the hypervisor still runs)."""
        out: list[InstanceFiles] = []
        if not self.instance_path.is_dir():
            return out
        for account in sorted(os.scandir(self.instance_path), key=lambda e: e.name):
            if not account.is_dir() or account.name == CACHE_DIR:
                continue
            for inst in sorted(os.scandir(account.path), key=lambda e: e.name):
                if inst.is_dir() and inst.name.startswith("i-") and inst.name not in live:
                    out.append(InstanceFiles(Path(inst.path)))
        return out
