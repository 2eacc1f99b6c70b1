"""A snapshot's stream from a Storage Controller on another host: the gzip bytes in frames that
also say how much of the volume has been read, so the cloud's ``Progress`` follows the SC's
reading rather than jumping from 0 to 100%, and an end frame, so a stream cut off (the SC killed,
the network gone) is known to be short instead of being stored as a whole snapshot.

A frame is a 13-byte header, ``kind`` (``D`` data, ``E`` end), the payload's length and the bytes
of the volume read so far (big-endian 32 and 64 bits), then the payload. The response names the
volume's size in bytes in the ``x-euca-volume-size`` header.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Iterator

HEADER = struct.Struct(">cIQ")
DATA, END = b"D", b"E"
SIZE_HEADER = "x-euca-volume-size"
MEDIA_TYPE = "application/x-euca-snapshot-frames"
MAX_PAYLOAD = 64 << 20


class ShortStream(Exception):
    """The stream ended, or broke, before its end frame."""


def framed(steps: Iterable[tuple[int, bytes]], size: int) -> Iterator[bytes]:
    """Frames for (bytes read, gzip bytes) steps; the end frame follows the last."""
    done = 0
    for done, data in steps:
        yield HEADER.pack(DATA, len(data), done) + data
    yield HEADER.pack(END, 0, max(done, size))


def unframed(read: Callable[[int], bytes], size: int,
             progress: Callable[[int, int], None] | None = None) -> Iterator[bytes]:
    """The gzip bytes of a framed stream read with ``read(n)`` (at most n bytes, b"" at its end),
    calling ``progress(read so far, size)`` as frames arrive. Raises :class:`ShortStream` when the
    stream stops before its end frame or is not frames at all."""
    while True:
        header = _exactly(read, HEADER.size)
        kind, length, done = HEADER.unpack(header)
        if kind not in (DATA, END) or length > MAX_PAYLOAD:
            raise ShortStream("not a snapshot stream")
        if kind == END:
            if progress is not None:
                progress(done, size)
            return
        payload = _exactly(read, length) if length else b""
        if progress is not None:
            progress(done, size)
        if payload:
            yield payload


def _exactly(read: Callable[[int], bytes], n: int) -> bytes:
    parts, want = [], n
    while want:
        chunk = read(want)
        if not chunk:
            raise ShortStream(f"the stream ended {want} bytes into a frame of {n}" if want < n
                              else "the stream ended before its end frame")
        parts.append(chunk)
        want -= len(chunk)
    return parts[0] if len(parts) == 1 else b"".join(parts)
