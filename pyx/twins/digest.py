"""Plain-Python twin of ``pyx.digest``: the ``tree-sha256`` image digest with hashlib alone.

One thread, streaming one chunk at a time. The property tests demand the same hex digest from the
Cython kernel for every input, and ``bench/digest.py`` measures both against plain
``hashlib.sha256``.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Iterable

ALGORITHM = "tree-sha256"
CHUNK_SIZE = 4 * 1024 * 1024
_HEADER_TAG = b"euca-tree-sha256\0"


def _tree(total: int, chunks: Iterable[bytes | memoryview]) -> str:
    outer = hashlib.sha256(_HEADER_TAG + CHUNK_SIZE.to_bytes(8, "big") + total.to_bytes(8, "big"))
    for chunk in chunks:
        outer.update(hashlib.sha256(chunk).digest())
    return outer.hexdigest()


def tree_digest_bytes(data: bytes | memoryview) -> str:
    """The ``tree-sha256`` hex digest of an image held in memory."""
    view = memoryview(data).cast("B")
    return _tree(len(view), (view[i : i + CHUNK_SIZE] for i in range(0, len(view), CHUNK_SIZE)))


def tree_digest_file(path: str | os.PathLike[str]) -> str:
    """The ``tree-sha256`` hex digest of an image file, read one chunk at a time."""
    with open(path, "rb") as image:
        st = os.fstat(image.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EIO, "not a regular file", path)
        total = st.st_size

        def chunks() -> Iterable[bytes]:
            for offset in range(0, total, CHUNK_SIZE):
                chunk = image.read(min(CHUNK_SIZE, total - offset))
                if len(chunk) < min(CHUNK_SIZE, total - offset):
                    raise OSError(errno.EIO, "image file shrank while its digest was computed", path)
                yield chunk

        return _tree(total, chunks())
