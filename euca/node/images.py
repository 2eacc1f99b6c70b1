"""A node controller's image cache: emi/eki/eri files fetched from the object store, kept for the next start.

Eucalyptus keeps each image under ``INSTANCE_PATH/eucalyptus/cache/<imageId>/`` with its digest
beside it; a ``-staging`` marker says a download is in progress, and a second start of the same
image waits for it instead of fetching twice. The cache is bounded by NC_CACHE_SIZE (MB, LRU,
images of starting or running instances pinned; 0 turns caching off) and at most
CONCURRENT_DISK_OPS copies, digests and disk builds run at once. At every start the cached copy is
checked against its recorded ``tree-sha256`` digest (``pyx.digest``); a copy that went bad on
disk, or an image re-registered with other bytes, is purged and fetched again.

Where images come from is an :class:`ImageSource`: today the data directory's files that
``euca image import`` registered (:class:`LocalFiles`); Walrus slots in behind the same call.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from drivers.protocol import NodeError
from euca.core.clock import Clock, wall
from pyx.digest import tree_digest_file
from pyx.imagecache import CacheIndex

log = logging.getLogger("euca.node.images")

MB = 1024 * 1024
STAGING_WAIT = 180.0  # s another start waits for a download in progress (Eucalyptus)
PROGRESS_FROM = 256 * MB  # images at least this large log their digest progress
IMAGE, DIGEST, STAGING = "image", "image-digest", "image-staging"

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class SourceImage:
    """One image as the object store hands it out: a file path or an opener of a byte stream, its
    size in bytes and its ``tree-sha256`` digest."""

    image_id: str
    size: int
    digest: str
    path: Path | None = None
    stream: Callable[[], BinaryIO] | None = None


class ImageSource(Protocol):
    """Where a node fetches images from. ``location`` is what the image was registered with (a file
    that ``euca image import`` wrote, later a Walrus bucket/manifest)."""

    def open(self, image_id: str, location: str) -> SourceImage: ...


class LocalFiles:
    """Images that are files on this host (the cloud's data directory). A file's digest is computed
    once and kept beside it (``<file>.tree-sha256``), valid while its size and mtime stay the same."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root
        self._lock = threading.Lock()

    def open(self, image_id: str, location: str) -> SourceImage:
        path = Path(location)
        if not path.is_absolute() and self.root is not None:
            path = self.root / path
        try:
            st = path.stat()
        except OSError:
            raise NodeError(f"{image_id}: image file {location!r} is not on this node") from None
        if not path.is_file():
            raise NodeError(f"{image_id}: {location!r} is not an image file")
        stamp = f"{st.st_size} {st.st_mtime_ns}"
        sidecar = path.with_name(path.name + ".tree-sha256")
        with self._lock:
            try:
                recorded_stamp, digest = sidecar.read_text().split("\n")[:2]
                if recorded_stamp == stamp:
                    return SourceImage(image_id, st.st_size, digest, path=path)
            except (OSError, ValueError):
                pass
            digest = tree_digest_file(path)
            # A read-only image store still works; it only digests again next time.
            with contextlib.suppress(OSError):
                sidecar.write_text(f"{stamp}\n{digest}\n")
        return SourceImage(image_id, st.st_size, digest, path=path)


class ImageCache:
    """``INSTANCE_PATH/eucalyptus/cache``: acquire an image for a starting instance (fetching or
    verifying it), release it when the instance is gone."""

    def __init__(self, root: Path, capacity_mb: int, source: ImageSource, disk_ops: threading.Semaphore,
                 clock: Clock = wall, progress: Progress | None = None) -> None:
        if capacity_mb < 0:
            raise ValueError("NC_CACHE_SIZE must be >= 0")
        self.root = root
        self.source = source
        self.disk_ops = disk_ops
        self.clock = clock
        self.progress = progress or _log_progress
        self.index = CacheIndex(capacity_mb * MB)
        self.fetches = 0  # downloads from the object store, for tests and benchmarks
        self.purges = 0  # cached copies found bad and thrown away
        self._slots: dict[str, int] = {}
        self._ids: list[str] = []
        self._staging: set[str] = set()
        self._uncached: dict[str, int] = {}  # images too large to cache: used once, by pin count
        self._cond = threading.Condition()
        root.mkdir(parents=True, exist_ok=True)
        self._load()

    def path(self, image_id: str) -> Path:
        return self.root / image_id / IMAGE

    def acquire(self, image_id: str, location: str) -> Path:
        """The image's file in the cache, verified and pinned until :meth:`release`. Waits while
        another start stages the same image."""
        slot = self._slot(image_id)
        deadline = time.monotonic() + STAGING_WAIT
        with self._cond:
            while image_id in self._staging:
                left = deadline - time.monotonic()
                if left <= 0 or not self._cond.wait(left):
                    raise NodeError(f"{image_id}: gave up waiting {STAGING_WAIT:.0f} s for its download")
            self._staging.add(image_id)
            cached = self.index.contains(slot) and self.path(image_id).exists()
        marker = self.root / image_id / STAGING
        try:
            source = self.source.open(image_id, location)
            carried = 0  # pins of running instances, kept across a purge (each has its own disk copy)
            if cached and not self._intact(image_id, source):
                carried = self._purge(image_id)
                cached = False
            if not cached:
                marker.parent.mkdir(parents=True, exist_ok=True)
                marker.touch()
                self._fetch(image_id, source)
            with self._cond:
                now = self.clock()
                if self.index.contains(slot):
                    self.index.lookup(slot, now)
                    self.index.pin(slot)
                else:
                    evicted = self.index.insert(slot, source.size, now)
                    if evicted is None:
                        self._uncached[image_id] = self._uncached.get(image_id, 0) + 1
                    else:
                        for _ in range(carried + 1):
                            self.index.pin(slot)
                        for gone in evicted:
                            self._remove_files(self._image_of(gone))
        except BaseException:
            if not self.index.contains(slot) and image_id not in self._uncached:
                self._remove_files(image_id)
            raise
        finally:
            marker.unlink(missing_ok=True)
            with self._cond:
                self._staging.discard(image_id)
                self._cond.notify_all()
        return self.path(image_id)

    def release(self, image_id: str) -> None:
        """An instance started from the image is gone: unpin it (an uncached one is deleted)."""
        with self._cond:
            left = self._uncached.get(image_id, 0)
            if left:
                if left == 1:
                    del self._uncached[image_id]
                    self._remove_files(image_id)
                else:
                    self._uncached[image_id] = left - 1
                return
            slot = self._slots.get(image_id)
            if slot is not None and self.index.contains(slot) and self.index.pins(slot) > 0:
                self.index.unpin(slot)

    def cached(self) -> list[str]:
        with self._cond:
            return [self._image_of(s) for s in self.index.images()]

    # --- internals ----------------------------------------------------------------------------------

    def _intact(self, image_id: str, source: SourceImage) -> bool:
        """Does the cached copy still hold the bytes the store has (same recorded digest, same content)?"""
        try:
            recorded = (self.root / image_id / DIGEST).read_text().strip()
        except OSError:
            return False
        if recorded != source.digest:
            log.warning("%s: the store's image changed; fetching it again", image_id)
            return False
        with self.disk_ops:
            actual = self._digest(image_id, self.path(image_id))
        if actual != recorded:
            log.warning("%s: cached copy does not match its digest; purging it", image_id)
            return False
        return True

    def _fetch(self, image_id: str, source: SourceImage) -> None:
        target = self.path(image_id)
        partial = target.with_name(IMAGE + ".part")
        with self.disk_ops:
            if source.path is not None:
                shutil.copyfile(source.path, partial)
            elif source.stream is not None:
                with source.stream() as src, open(partial, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 * MB)
            else:
                raise NodeError(f"{image_id}: the image source gave neither a file nor a stream")
            got = self._digest(image_id, partial)
            if got != source.digest:
                partial.unlink(missing_ok=True)
                raise NodeError(f"{image_id}: downloaded image does not match its digest")
            (target.parent / DIGEST).write_text(source.digest + "\n")
            os.replace(partial, target)
        self.fetches += 1

    def _digest(self, image_id: str, path: Path) -> str:
        size = path.stat().st_size
        if size < PROGRESS_FROM:
            return tree_digest_file(path)
        return tree_digest_file(path, progress=lambda done, total: self.progress(image_id, done, total))

    def _purge(self, image_id: str) -> int:
        """Drop the image from the index and the disk; returns the pins it had."""
        self.purges += 1
        pins = 0
        with self._cond:
            slot = self._slots[image_id]
            if self.index.contains(slot):
                pins = self.index.pins(slot)
                for _ in range(pins):
                    self.index.unpin(slot)
                self.index.remove(slot)
        self._remove_files(image_id)
        return pins

    def _remove_files(self, image_id: str) -> None:
        shutil.rmtree(self.root / image_id, ignore_errors=True)

    def _slot(self, image_id: str) -> int:
        with self._cond:
            slot = self._slots.get(image_id)
            if slot is None:
                slot = self._slots[image_id] = len(self._ids)
                self._ids.append(image_id)
            return slot

    def _image_of(self, slot: int) -> str:
        return self._ids[slot]

    def _load(self) -> None:
        """Index what a previous run left in the cache; half-done downloads (a marker or a partial
        file, from a node that died mid-copy) are thrown away."""
        for entry in sorted(self.root.iterdir()):
            if not entry.is_dir():
                continue
            image, digest = entry / IMAGE, entry / DIGEST
            if (entry / STAGING).exists() or not image.exists() or not digest.exists():
                shutil.rmtree(entry, ignore_errors=True)
                continue
            st = image.stat()
            evicted = self.index.insert(self._slot(entry.name), st.st_size, st.st_mtime)
            if evicted is None:
                shutil.rmtree(entry, ignore_errors=True)
                continue
            for gone in evicted:
                self._remove_files(self._image_of(gone))


def _log_progress(image_id: str, done: int, total: int) -> None:
    log.info("%s: checking digest, %d of %d MB", image_id, done // MB, total // MB)
