"""Typed face of ``pyx/digest.pyx``: the ``tree-sha256`` digest of a node's cached images."""

import os
from collections.abc import Callable

ALGORITHM: str
CHUNK_SIZE: int

def tree_digest_file(
    path: str | os.PathLike[str],
    threads: int = 2,
    progress: Callable[[int, int], None] | None = None,
) -> str: ...
def tree_digest_bytes(data: bytes | bytearray | memoryview, threads: int = 1) -> str: ...
