"""The ``tree-sha256`` image digest against plain ``hashlib.sha256`` on one core.

A node digests every image it caches; a plain SHA-256 cannot use more than one core, the tree
digest can. The image file is written to a temporary directory, read once so it sits in the page
cache (the node just wrote it while fetching from Walrus), and each side hashes the same bytes; the
repeats interleave the sides so load from other processes falls on all of them alike.
"""

from __future__ import annotations

import hashlib
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.table import Row
from pyx.digest import CHUNK_SIZE, tree_digest_file

_BLOCK = 4 * 1024 * 1024


def _write_image(path: Path, size: int) -> None:
    # A random 64 MiB pattern shifted by a byte per copy: incompressible enough, cheap to make.
    pattern = random.Random(5).randbytes(64 * 1024 * 1024 + 1)
    with open(path, "wb") as out:
        written = 0
        while written < size:
            n = min(size - written, len(pattern) - 1)
            shift = (written // len(pattern)) % 251
            out.write(pattern[shift : shift + n])
            written += n


def _warm(path: Path) -> None:
    with open(path, "rb") as image:
        while image.read(_BLOCK):
            pass


def _hashlib_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    buffer = bytearray(_BLOCK)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as image:
        while n := image.readinto(buffer):
            digest.update(view[:n])
    return digest.hexdigest()


def _seconds(run: Callable[[], str]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def rows(quick: bool = False) -> list[Row]:
    """MB/s of tree_digest_file on two cores and on one, beside hashlib.sha256 on one; medians of 3."""
    size = (64 if quick else 1024) * 1024 * 1024
    label = "64 MiB" if quick else "1 GiB"
    assert size % CHUNK_SIZE == 0
    times: dict[str, list[float]] = {"two": [], "one": [], "hashlib": []}
    with tempfile.TemporaryDirectory(prefix="euca-bench-digest-") as tmp:
        path = Path(tmp) / "emi-bench"
        _write_image(path, size)
        try:
            _warm(path)
            for _ in range(3):
                times["two"].append(_seconds(lambda: tree_digest_file(path, threads=2)))
                times["one"].append(_seconds(lambda: tree_digest_file(path, threads=1)))
                times["hashlib"].append(_seconds(lambda: _hashlib_sha256(path)))
        finally:
            os.remove(path)
    mb_s = {side: size / statistics.median(t) / 1e6 for side, t in times.items()}
    return [
        Row(kernel="digest tree-sha256 (2 threads) vs hashlib.sha256", size=label,
            cython=mb_s["two"], python=mb_s["hashlib"], unit="MB/s"),
        Row(kernel="digest tree-sha256 (1 thread) vs hashlib.sha256", size=label,
            cython=mb_s["one"], python=mb_s["hashlib"], unit="MB/s"),
    ]
