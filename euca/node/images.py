"""A node controller's image cache: emi/eki/eri files fetched from the object store, kept for the next start.

Eucalyptus keeps each image under ``INSTANCE_PATH/eucalyptus/cache/<imageId>/`` with its digest
beside it; a ``-staging`` marker says a download is in progress, and a second start of the same
image waits for it instead of fetching twice. The cache is bounded by NC_CACHE_SIZE (MB, LRU,
images of starting or running instances pinned; 0 turns caching off) and at most
CONCURRENT_DISK_OPS copies, digests and disk builds run at once. At every start the cached copy is
checked against its recorded ``tree-sha256`` digest (``pyx.digest``); a copy that went bad on
disk, or an image re-registered with other bytes, is purged and fetched again.

Where images come from is an :class:`ImageSource`. The cloud keeps every image in Walrus and hands
the node, for each of an instance's emi, eki and eri, an :class:`ImageLocation`: a presigned GET URL
(valid for three hours, as Eucalyptus 4 gave its nodes) with the image's size and ``tree-sha256``
digest as the cloud recorded them. :class:`HttpImages` streams such a URL to disk; :class:`LocalFiles`
reads a file on this host (records from before Walrus, and tests); :class:`ImageSources` picks by
the location's form.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol, cast

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
FETCH_TIMEOUT = 60.0  # s without a byte from Walrus before a download is given up


@dataclass(frozen=True)
class ImageLocation:
    """Where a node fetches one image and what it must get: ``location`` is a presigned Walrus
    URL (or a file on the node); ``size`` (bytes, -1 unknown) and ``digest`` (``tree-sha256``,
    "" unknown) are what the cloud recorded when it stored the image."""

    location: str
    size: int = -1
    digest: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"location": self.location, "size": self.size, "digest": self.digest}

    @classmethod
    def from_json(cls, value: object) -> ImageLocation:
        """A location as ncRunInstance carries it: an object, or bare text (a file path)."""
        if isinstance(value, str):
            return cls(value)
        if isinstance(value, dict) and isinstance(value.get("location"), str):
            size, digest = value.get("size", -1), value.get("digest", "")
            if isinstance(size, int) and not isinstance(size, bool) and isinstance(digest, str):
                return cls(value["location"], size, digest)
        raise ValueError("an image location is text or {location, size, digest}")


Locations = Mapping[str, "ImageLocation | str"]  # image id -> where; bare text is a file path


def as_location(value: ImageLocation | str) -> ImageLocation:
    return value if isinstance(value, ImageLocation) else ImageLocation(value)


def shown(location: str) -> str:
    """A location fit for a log or an error: a URL without its query (the signature)."""
    return location.split("?", 1)[0]


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
    """Where a node fetches images from: what the cloud handed it for the image (no bytes are
    read yet; the cache opens ``stream`` or copies ``path`` only when it has no good copy)."""

    def open(self, image_id: str, location: ImageLocation) -> SourceImage: ...


class LocalFiles:
    """Images that are files on this host (the cloud's data directory). A file's digest is computed
    once and kept beside it (``<file>.tree-sha256``), valid while its size and mtime stay the same."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root
        self._lock = threading.Lock()

    def open(self, image_id: str, location: ImageLocation) -> SourceImage:
        path = Path(location.location)
        if not path.is_absolute() and self.root is not None:
            path = self.root / path
        try:
            st = path.stat()
        except OSError:
            raise NodeError(f"{image_id}: image file {location.location!r} is not on this node") from None
        if not path.is_file():
            raise NodeError(f"{image_id}: {location.location!r} is not an image file")
        if location.digest:  # what the cloud recorded: the copy is checked against it
            return SourceImage(image_id, st.st_size, location.digest, path=path)
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


class HttpImages:
    """Images downloaded from the URLs the cloud hands out (presigned Walrus GETs): nothing is
    fetched until the cache asks for the stream, which it copies to disk through a fixed buffer.
    A refused URL (expired, tampered with, the object gone) is a NodeError naming the image and
    Walrus's answer; the URL's signature never appears in a message."""

    def __init__(self, timeout: float = FETCH_TIMEOUT) -> None:
        self.timeout = timeout

    def open(self, image_id: str, location: ImageLocation) -> SourceImage:
        if location.size < 0 or not location.digest:
            raise NodeError(f"{image_id}: the cloud gave no size and digest for {shown(location.location)}")

        def stream() -> BinaryIO:
            log.info("%s: downloading %s (%d bytes)", image_id, shown(location.location), location.size)
            try:
                answer = urllib.request.urlopen(location.location, timeout=self.timeout)
            except urllib.error.HTTPError as exc:
                with exc:
                    said = exc.read(4096).decode(errors="replace")
                code = re.search(r"<Code>([^<]*)</Code>", said)
                message = re.search(r"<Message>([^<]*)</Message>", said)
                why = ": ".join(m.group(1) for m in (code, message) if m) or exc.reason
                raise NodeError(f"{image_id}: Walrus refused the download of {shown(location.location)} "
                                f"(HTTP {exc.code}: {why})") from None
            except (urllib.error.URLError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                raise NodeError(f"{image_id}: cannot download {shown(location.location)}: {reason}") from None
            return cast(BinaryIO, answer)

        return SourceImage(image_id, location.size, location.digest, stream=stream)


class ImageSources:
    """A node's sources by the location's form: ``http(s)://`` from Walrus, anything else a file."""

    def __init__(self, files: ImageSource | None = None, http: ImageSource | None = None) -> None:
        self.files = files or LocalFiles()
        self.http = http or HttpImages()

    def open(self, image_id: str, location: ImageLocation) -> SourceImage:
        web = location.location.startswith(("http://", "https://"))
        return (self.http if web else self.files).open(image_id, location)


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

    def acquire(self, image_id: str, location: ImageLocation | str) -> Path:
        """The image's file in the cache, verified and pinned until :meth:`release`. Waits while
        another start stages the same image."""
        location = as_location(location)
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
                try:
                    with source.stream() as src, open(partial, "wb") as dst:
                        shutil.copyfileobj(src, dst, 1 * MB)
                except NodeError:
                    partial.unlink(missing_ok=True)
                    raise
                except OSError as exc:  # the connection dropped mid-way, or the disk filled
                    partial.unlink(missing_ok=True)
                    raise NodeError(f"{image_id}: download failed: {exc}") from None
            else:
                raise NodeError(f"{image_id}: the image source gave neither a file nor a stream")
            got = self._digest(image_id, partial)
            if got != source.digest or (source.size >= 0 and partial.stat().st_size != source.size):
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
