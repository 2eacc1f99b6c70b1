"""Object bytes on disk: one file per object version or upload part, named by an internal id.

A body is written to ``tmp/<id>`` as it arrives, fsynced, and renamed to ``objects/<id[:2]>/<id>``
before the metadata that names it is committed; a blob is deleted only after the commit that stops
naming it. So a crash at any point leaves, besides whole objects, only files nothing names: the
start-up sweep (``sweep``) deletes those. As MinIO and Walrus do it.

A version completed from a multipart upload keeps its parts' files: its blob is a manifest
(``+id:size,id:size,...``, the parts in order) and a read streams across them, so completion moves
no bytes (as S3 and MinIO keep a multipart object as its parts). The manifest commits in the same
transaction that forgets the upload, so a crash leaves the parts named either by the upload or by
the object, never by neither.

A read opens every file it needs (for a manifest, each part the range touches) before it starts:
a version replaced or deleted mid-read has its files unlinked, and an unlinked file stays readable
through a descriptor already open, so a reader gets the old bytes whole, as with a one-file object.
A file already gone when the read starts raises ``Gone``: the caller looks the object up again.
A read of an n-part object holds n descriptors (parts are at least 5 MiB, so 10,000 of them only
for an object of 50 GB or more); the process's soft limit on open files is raised to its hard
limit when a blob directory is opened, and a read refused for want of descriptors answers 503.

A file is given its final name with ``link`` (refused when the name exists), never ``rename``
(which would silently replace another object's bytes), and names come from the OS's generator,
which nothing in the process can seed or rewind.

``fsync``: whether a body (and its directory entry) is forced to disk before its metadata commits.
A killed server loses nothing either way (the page cache outlives the process); a power cut needs
the fsync. ``euca up`` ties it to the store's own choice (``--sync full``), since an object is
only as durable as the commit that names it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
import resource
import secrets
import shutil
import time
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from euca.core.s3errors import InsufficientStorage, ServiceUnavailable

BUFFER = 1 << 20  # bytes read or copied at a time
INLINE = 64 << 10  # an object body up to this size is kept in the store beside its metadata
INLINE_MARK = "="  # how an inline blob's id starts (a file's id is hex)
MANIFEST_MARK = "+"  # how the blob of a version made of its multipart upload's part files starts
SPACE_EVERY_BYTES = 64 << 20  # free space is looked at again after this many bytes written ...
SPACE_EVERY_SECONDS = 1.0  # ... or this long


def new_id() -> str:
    """128 random bits from the OS, in hex: a file's name. Not ``random``, whose process-wide
    generator anything may seed (test frameworks do, per example), making names repeat."""
    return secrets.token_hex(16)


class Gone(Exception):
    """A file of a blob was deleted before a read could open it: the version was replaced or
    deleted since it was looked up. Look it up again."""


Run = tuple[int, int, int]  # (open descriptor, offset, length): bytes of one file to read


def close_runs(runs: list[Run]) -> None:
    for fd, _, _ in runs:
        os.close(fd)


def raise_open_files_limit() -> None:
    """Lift the soft limit on open files to the hard one: a read holds one descriptor per part."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard and (hard == resource.RLIM_INFINITY or soft < hard):
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def is_inline(blob: str) -> bool:
    return blob.startswith(INLINE_MARK)


def is_manifest(blob: str) -> bool:
    return blob.startswith(MANIFEST_MARK)


def manifest(parts: Iterable[tuple[str, int]]) -> str:
    """The blob of a version made of these (file id, size) parts, in order."""
    return MANIFEST_MARK + ",".join(f"{blob}:{size}" for blob, size in parts)


def pieces(blob: str) -> list[tuple[str, int]]:
    """A manifest's (file id, size) parts in order."""
    found = []
    for entry in blob[1:].split(","):
        name, _, size = entry.partition(":")
        found.append((name, int(size)))
    return found


def files(blob: str) -> list[str]:
    """The ids of the files a blob names: none (inline or a delete marker), one, or a manifest's parts."""
    if not blob or is_inline(blob):
        return []
    if is_manifest(blob):
        return [name for name, _ in pieces(blob)]
    return [blob]


class Staged:
    """A body being written; ``md5`` (and ``sha256`` when asked for) as it goes.

    With ``inline``, the first ``INLINE`` bytes gather in a fixed buffer, and a body that ends
    there never touches the disk: ``place`` hands back an inline id and ``data``, which the
    caller commits into the store with the metadata (MinIO inlines small objects in ``xl.meta``
    the same way). A longer body goes to ``tmp/<id>`` as before, the buffer first."""

    def __init__(self, blobs: Blobs, with_sha256: bool = False, inline: bool = False) -> None:
        self.blobs = blobs
        self.id = new_id()
        self.size = 0
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.sha256 = hashlib.sha256() if with_sha256 else None
        self._buffer: bytearray | None = bytearray() if inline else None
        self._fd = -1 if inline else self._open()
        self.placed = False
        self.data: bytes | None = None  # an inline body, once placed

    @property
    def path(self) -> Path:
        """Where the bytes are written (a body kept inline never gets there)."""
        return self.blobs.tmp / self.id

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)

    def write(self, chunk: bytes | memoryview) -> None:
        self.md5.update(chunk)
        if self.sha256 is not None:
            self.sha256.update(chunk)
        self.size += len(chunk)
        self.blobs.written(len(chunk))
        if self._buffer is not None:
            if self.size <= INLINE:
                self._buffer += chunk
                return
            self._fd = self._open()
            self._write(self._buffer)
            self._buffer = None
        self._write(chunk)

    def _write(self, chunk: bytes | bytearray | memoryview) -> None:
        view = memoryview(chunk)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    def write_all(self, chunks: Iterable[bytes]) -> None:
        for chunk in chunks:
            self.write(chunk)

    def place(self) -> str:
        """Make the bytes durable and move them to their final name; the blob id to commit."""
        if self._buffer is not None:
            self.data = bytes(self._buffer)
            self._buffer = None
            self.placed = True
            return INLINE_MARK + self.id
        try:
            if self.blobs.fsync:
                os.fsync(self._fd)
        finally:
            os.close(self._fd)
            self._fd = -1
        final = self.blobs.path(self.id)
        # link, not rename: a name already taken (FileExistsError) is refused, never replaced
        try:
            os.link(self.path, final)
        except FileNotFoundError:
            final.parent.mkdir(exist_ok=True)
            os.link(self.path, final)
        os.unlink(self.path)
        if self.blobs.fsync:
            directory = os.open(final.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        self.placed = True
        return self.id

    def discard(self) -> None:
        """Drop the bytes: the request failed before (or while) committing them."""
        self._buffer = None
        if self.data is not None:
            self.data = None
            return
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        with contextlib.suppress(FileNotFoundError):
            (self.blobs.path(self.id) if self.placed else self.path).unlink()


class Blobs:
    """The blob directory of one Walrus: ``<data-dir>/walrus``."""

    def __init__(self, root: Path, min_free: float = 0.10, fsync: bool = True) -> None:
        self.root = root
        self.tmp = root / "tmp"
        self.objects = root / "objects"
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.objects.mkdir(parents=True, exist_ok=True)
        for n in range(256):
            (self.objects / f"{n:02x}").mkdir(exist_ok=True)
        self._min_free = min_free
        self.fsync = fsync
        self._full = False  # what the last look at the disk found
        self._looked = -SPACE_EVERY_SECONDS  # when (monotonic)
        self._since = 0  # bytes written since
        raise_open_files_limit()

    @property
    def min_free(self) -> float:
        """The fraction of the disk that must stay free for a write to start."""
        return self._min_free

    @min_free.setter
    def min_free(self, value: float) -> None:
        self._min_free = value
        self._looked = -SPACE_EVERY_SECONDS  # look again at the next write

    def path(self, blob: str) -> Path:
        return self.objects / blob[:2] / blob

    def written(self, size: int) -> None:
        self._since += size

    def check_space(self) -> None:
        """Refuse a write when the disk is nearly full. The disk is looked at (statvfs) at most once
        a second or every ``SPACE_EVERY_BYTES`` written, not per request."""
        now = time.monotonic()
        if now - self._looked >= SPACE_EVERY_SECONDS or self._since >= SPACE_EVERY_BYTES:
            usage = shutil.disk_usage(self.root)
            self._full = bool(usage.total) and usage.free / usage.total < self._min_free
            self._looked, self._since = now, 0
        if self._full:
            raise InsufficientStorage()

    def stage(self, with_sha256: bool = False, inline: bool = False) -> Staged:
        return Staged(self, with_sha256, inline)

    def segments(self, blob: str, first: int, length: int) -> list[tuple[Path, int, int]]:
        """The (file, offset, length) runs holding ``length`` bytes of a file blob from ``first``: one
        for a plain blob, one per part touched for a manifest."""
        if not is_manifest(blob):
            return [(self.path(blob), first, length)]
        runs: list[tuple[Path, int, int]] = []
        start = 0
        for name, size in pieces(blob):
            if length <= 0:
                break
            if first < start + size:
                offset = max(0, first - start)
                take = min(size - offset, length)
                runs.append((self.path(name), offset, take))
                length -= take
                first += take
            start += size
        return runs

    def open_runs(self, blob: str, first: int, length: int) -> list[Run]:
        """``segments`` with every file open (the caller closes them: ``close_runs``), all before
        any byte is read, so that the read sees these files whatever replaces them. ``Gone`` when a
        file is already deleted; ServiceUnavailable when the process is out of descriptors."""
        runs: list[Run] = []
        try:
            for path, offset, take in self.segments(blob, first, length):
                runs.append((os.open(path, os.O_RDONLY | os.O_CLOEXEC), offset, take))
        except BaseException as exc:
            close_runs(runs)
            if isinstance(exc, FileNotFoundError):
                raise Gone(blob) from None
            if isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE):
                raise ServiceUnavailable("Too many objects are being read at once; try again") from None
            raise
        return runs

    def open(self, blob: str, size: int) -> BinaryIO:
        """A file blob's bytes as one readable file (the caller closes it); ``Gone`` as ``open_runs``."""
        if not is_manifest(blob):
            try:
                return open(self.path(blob), "rb")
            except FileNotFoundError:
                raise Gone(blob) from None
        return io.BufferedReader(_Joined(self.open_runs(blob, 0, size)), BUFFER)

    def copy_range(self, blob: str, first: int, last: int, data: bytes | None = None) -> Staged:
        """A new staged body holding bytes first..last (inclusive) of a blob (a copy); ``data``:
        the bytes of an inline blob. Every file is opened before the copy starts (``Gone`` as
        ``open_runs``), so a version replaced or deleted meanwhile is copied whole."""
        runs = [] if data is not None else self.open_runs(blob, first, last - first + 1)
        try:
            staged = self.stage()
        except BaseException:
            close_runs(runs)
            raise
        try:
            if data is not None:
                staged.write(data[first:last + 1])
                return staged
            for fd, offset, left in runs:
                while left > 0:
                    chunk = os.pread(fd, min(BUFFER, left), offset)
                    if not chunk:
                        raise OSError(f"a file of blob {blob} ended early")
                    staged.write(chunk)
                    offset += len(chunk)
                    left -= len(chunk)
        except BaseException:
            staged.discard()
            raise
        finally:
            close_runs(runs)
        return staged

    def delete_all(self, blobs: list[str]) -> None:
        for blob in blobs:
            self.delete(blob)

    def delete(self, blob: str) -> None:
        """Delete a blob's files (an inline blob goes with its row, in the store's transaction)."""
        for name in files(blob):
            with contextlib.suppress(FileNotFoundError):
                self.path(name).unlink()

    def sweep(self, referenced: set[str]) -> int:
        """Delete every temporary file and every blob nothing names; how many went."""
        gone = 0
        for path in self.tmp.iterdir():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                gone += 1
        for directory in self.objects.iterdir():
            for path in directory.iterdir():
                if path.name not in referenced:
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
                        gone += 1
        return gone


class _Joined(io.RawIOBase):
    """Open runs read one after another; it closes them."""

    def __init__(self, runs: list[Run]) -> None:
        self._runs = runs
        self._at = 0
        self._offset, self._left = (runs[0][1], runs[0][2]) if runs else (0, 0)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while self._left <= 0:
            self._at += 1
            if self._at >= len(self._runs):
                return 0
            _, self._offset, self._left = self._runs[self._at]
        view = memoryview(buffer)
        got = os.preadv(self._runs[self._at][0], [view[:min(len(view), self._left)]], self._offset)
        if got == 0:
            raise OSError("a part of the object ended early")
        self._offset += got
        self._left -= got
        return got

    def close(self) -> None:
        if not self.closed:
            runs, self._runs = self._runs, []
            close_runs(runs)
        super().close()
