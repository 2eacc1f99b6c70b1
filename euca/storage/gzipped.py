"""A volume as one gzip stream, made at the speed of its data rather than of its size.

The stream is an ordinary gzip member (``gunzip`` and ``zlib`` read it; Walrus stores it as is),
built from independent deflate segments, each ending byte-aligned on a sync flush and referring
to nothing before it, so segments can be made apart and laid end to end:

- a hole (``SEEK_HOLE``), or a MiB that reads as zeros, is a deflate segment of zeros made once
  and repeated, and its CRC is carried over it arithmetically, without reading a byte;
- a MiB of data is deflated at level 1 on a worker thread (the compressor lets go of the GIL):
  by ISA-L (``isal``) where it is installed, four times zlib's speed for the same size; with
  zlib, a MiB whose sample will not shrink is stored as is (compressed or random data: zlib's
  level 1 would spend 20 times as long to save nothing).

The end is an empty final block, then the CRC-32 and the length, as RFC 1952 has them. Any gzip
stream is restored by :func:`unpack`, its zero runs left holes, its writes made on a thread of
their own while the next MiB is inflated.
"""

from __future__ import annotations

import errno
import os
import struct
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from functools import cache
from typing import Any

from euca.storage.backends import StorageError

_fast: Any
try:
    from isal import isal_zlib as _fast
except ImportError:  # pragma: no cover - isal is a dependency; a build without it falls back to zlib
    _fast = None

CHUNK = 1 << 20
SAMPLE = 32 << 10
STORE_ABOVE = 0.8  # a sample compressing to more than this fraction is stored
WORKERS = 2
AHEAD = 6  # MiB being compressed ahead of the one being sent
HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03"  # gzip, deflate, no name, no mtime, Unix
FINAL = b"\x03\x00"  # an empty final block with fixed codes


def _segment(data: bytes, level: int, codec: Any = zlib) -> bytes:
    packer = codec.compressobj(level, codec.DEFLATED, -15)
    return bytes(packer.compress(data) + packer.flush(codec.Z_SYNC_FLUSH))


def deflated(data: bytes) -> bytes:
    """One segment for ``data``: deflated at level 1 (ISA-L's, or zlib's unless a sample says it
    will not shrink: then stored)."""
    if _fast is not None:
        return _segment(data, 1, _fast)
    sample = data[:SAMPLE]
    if len(zlib.compress(sample, 1)) > STORE_ABOVE * len(sample):
        return _segment(data, 0)
    return _segment(data, 1)


def inflater() -> Any:
    """A gzip decompressor with zlib's interface (``decompress(data, max_length)``,
    ``unconsumed_tail``, ``eof``): ISA-L's where installed (twice zlib's speed), else zlib's."""
    return (_fast or zlib).decompressobj(31)


@cache
def _zeros(n: int) -> bytes:
    return _segment(bytes(n), 1)


@cache
def _zero_crc() -> tuple[int, tuple[int, ...]]:
    """CRC-32 over a MiB of zeros is affine in the CRC before it: crc(c) = crc(0) ^ M.c over GF(2).
    Returns crc(0) and M's columns."""
    zero = bytes(CHUNK)
    base = zlib.crc32(zero, 0)
    return base, tuple(zlib.crc32(zero, 1 << i) ^ base for i in range(32))


def crc_over_zeros(crc: int, n: int) -> int:
    """``zlib.crc32(bytes(n), crc)`` without the bytes."""
    base, columns = _zero_crc()
    for _ in range(n // CHUNK):
        out = base
        bits = crc
        for column in columns:
            if bits & 1:
                out ^= column
            bits >>= 1
            if not bits:
                break
        crc = out
    return zlib.crc32(bytes(n % CHUNK), crc) if n % CHUNK else crc


def extents(fd: int, size: int) -> Iterator[tuple[int, int]]:
    """The data extents of the first ``size`` bytes of ``fd``: (start, end). A file that cannot say
    where its holes are (a block device) is one extent."""
    offset = 0
    while offset < size:
        try:
            start = os.lseek(fd, offset, os.SEEK_DATA)
            end = min(size, os.lseek(fd, start, os.SEEK_HOLE))
        except OSError as exc:
            if exc.errno == errno.ENXIO:
                return  # only a hole is left
            if exc.errno not in (errno.EINVAL, errno.EOPNOTSUPP):
                raise
            start, end = offset, size
        if start >= size:
            return
        if end <= start:  # a device that answers SEEK_HOLE with its (zero) length
            end = size
        yield start, end
        offset = end


def pack(fd: int, size: int) -> Iterator[tuple[int, bytes]]:
    """The first ``size`` bytes of ``fd`` as gzip, in steps of (bytes of the volume read so far,
    gzip bytes); steps over holes carry little or nothing."""
    crc = 0
    done = 0
    pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="gzip")
    pending: deque[tuple[int, Future[bytes] | bytes]] = deque()
    zero = bytes(CHUNK)

    def hole(n: int) -> Iterator[bytes]:
        whole, rest = divmod(n, CHUNK)
        for _ in range(whole):
            yield _zeros(CHUNK)
        if rest:
            yield _zeros(rest)

    try:
        yield 0, HEADER
        for start, end in extents(fd, size):
            if start > done:
                crc = crc_over_zeros(crc, start - done)
                for segment in hole(start - done):
                    done += min(CHUNK, start - done)
                    yield done, segment
                done = start
            offset = start
            while offset < end or pending:
                while offset < end and len(pending) < AHEAD:
                    data = os.pread(fd, min(CHUNK, end - offset), offset)
                    if not data:
                        raise OSError(errno.EIO, f"the volume ended at {offset} of {size} bytes")
                    offset += len(data)
                    if data == zero[:len(data)]:
                        crc = crc_over_zeros(crc, len(data))
                        pending.append((len(data), _zeros(len(data))))
                    else:
                        crc = zlib.crc32(data, crc)
                        pending.append((len(data), pool.submit(deflated, data)))
                length, made = pending.popleft()
                done += length
                yield done, made if isinstance(made, bytes) else made.result()
        if size > done:
            crc = crc_over_zeros(crc, size - done)
            for segment in hole(size - done):
                done += min(CHUNK, size - done)
                yield done, segment
        yield size, FINAL + struct.pack("<II", crc & 0xFFFFFFFF, size & 0xFFFFFFFF)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def unpack(source: Iterable[bytes], fd: int, size: int, progress: Callable[[int, int], None] | None = None) -> None:
    """Write a gzip stream into the (sparse, ``size``-byte) file ``fd``; runs of zeros stay holes.
    Output is bounded per step, so a small stream cannot make a large buffer."""
    unpacker = inflater()
    offset = 0
    zero = bytes(CHUNK)
    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gunzip")
    writes: deque[Future[int]] = deque()

    def put(data: bytes) -> None:
        nonlocal offset
        if offset + len(data) > size:
            raise StorageError("the snapshot is larger than the volume")
        if data and data != (zero if len(data) == CHUNK else bytes(len(data))):
            writes.append(writer.submit(os.pwrite, fd, data, offset))
            if len(writes) > AHEAD:
                writes.popleft().result()
        offset += len(data)
        if progress is not None:
            progress(offset, size)

    try:
        for compressed in source:
            put(unpacker.decompress(compressed, CHUNK))
            while unpacker.unconsumed_tail:
                put(unpacker.decompress(unpacker.unconsumed_tail, CHUNK))
        put(unpacker.flush())
        while writes:
            writes.popleft().result()
    finally:
        writer.shutdown(wait=True, cancel_futures=True)
    if not unpacker.eof:
        raise StorageError("the snapshot's stream ended early")
