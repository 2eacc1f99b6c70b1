"""The ``tree-sha256`` image digest against its hashlib twin, its documented layout, and its use."""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyx.digest import ALGORITHM, CHUNK_SIZE, tree_digest_bytes, tree_digest_file
from pyx.imagecache import CacheIndex
from pyx.twins import digest as twin


def _image(n: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(n)


def test_documented_layout_for_a_single_chunk() -> None:
    assert ALGORITHM == "tree-sha256" and CHUNK_SIZE == 4 * 1024 * 1024
    data = _image(1000)
    header = b"euca-tree-sha256\0" + CHUNK_SIZE.to_bytes(8, "big") + (1000).to_bytes(8, "big")
    expected = hashlib.sha256(header + hashlib.sha256(data).digest()).hexdigest()
    assert tree_digest_bytes(data) == expected
    empty = hashlib.sha256(b"euca-tree-sha256\0" + CHUNK_SIZE.to_bytes(8, "big") + bytes(8)).hexdigest()
    assert tree_digest_bytes(b"") == empty


def test_two_chunks_by_hand() -> None:
    data = _image(CHUNK_SIZE + 5, seed=1)
    header = b"euca-tree-sha256\0" + CHUNK_SIZE.to_bytes(8, "big") + len(data).to_bytes(8, "big")
    leaves = hashlib.sha256(data[:CHUNK_SIZE]).digest() + hashlib.sha256(data[CHUNK_SIZE:]).digest()
    assert tree_digest_bytes(data, threads=2) == hashlib.sha256(header + leaves).hexdigest()
    # Not plain SHA-256: a tree digest must never be mistaken for one.
    assert tree_digest_bytes(data) != hashlib.sha256(data).hexdigest()


# Lengths straddling chunk boundaries, and a batch boundary (32 chunks).
boundary_lengths = st.sampled_from([0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 2 * CHUNK_SIZE,
                                    3 * CHUNK_SIZE - 1, 3 * CHUNK_SIZE + 1])


@settings(max_examples=40, deadline=None)
@given(length=boundary_lengths | st.integers(0, 3 * CHUNK_SIZE), seed=st.integers(0, 2**32),
       threads=st.integers(1, 4))
def test_bytes_match_twin(length: int, seed: int, threads: int) -> None:
    data = _image(length, seed)
    want = twin.tree_digest_bytes(data)
    assert tree_digest_bytes(data, threads=threads) == want
    assert tree_digest_bytes(memoryview(bytearray(data)), threads=threads) == want


@settings(max_examples=40, deadline=None)
@given(data=st.binary(max_size=300))
def test_small_inputs_match_twin(data: bytes) -> None:
    assert tree_digest_bytes(data) == twin.tree_digest_bytes(data)


@settings(max_examples=20, deadline=None)
@given(length=boundary_lengths | st.integers(0, 3 * CHUNK_SIZE), seed=st.integers(0, 2**32),
       threads=st.integers(1, 3))
def test_file_matches_twin_and_bytes(tmp_path_factory: pytest.TempPathFactory, length: int, seed: int,
                                     threads: int) -> None:
    path = tmp_path_factory.mktemp("cache") / "emi-12345678"
    data = _image(length, seed)
    path.write_bytes(data)
    want = twin.tree_digest_file(path)
    assert tree_digest_file(path, threads=threads) == want
    assert tree_digest_file(str(path), threads=threads) == want == twin.tree_digest_bytes(data)


def test_many_batches_with_progress(tmp_path: Path) -> None:
    # 70 chunks: three batches, the last one short, ending in a short chunk.
    # A period that is not a multiple of the chunk size keeps every chunk distinct.
    data = (_image(CHUNK_SIZE + 4099, seed=7) * 70)[: 70 * CHUNK_SIZE + 123]
    path = tmp_path / "eki-00000001"
    path.write_bytes(data)
    seen: list[tuple[int, int]] = []
    digest = tree_digest_file(path, threads=2, progress=lambda done, total: seen.append((done, total)))
    assert digest == twin.tree_digest_bytes(data) == tree_digest_bytes(data, threads=3)
    assert [done for done, _ in seen] == [32 * CHUNK_SIZE, 64 * CHUNK_SIZE, len(data)]
    assert {total for _, total in seen} == {len(data)}


def test_progress_for_an_empty_file_and_errors_from_it(tmp_path: Path) -> None:
    empty = tmp_path / "eri-empty"
    empty.write_bytes(b"")
    seen: list[tuple[int, int]] = []
    assert tree_digest_file(empty, progress=lambda d, t: seen.append((d, t))) == tree_digest_bytes(b"")
    assert seen == [(0, 0)]

    def cancel(done: int, total: int) -> None:
        raise KeyboardInterrupt

    small = tmp_path / "emi-small"
    small.write_bytes(b"x" * 10)
    with pytest.raises(KeyboardInterrupt):
        tree_digest_file(small, progress=cancel)


def test_errors_name_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "emi-missing"
    with pytest.raises(FileNotFoundError) as info:
        tree_digest_file(missing)
    assert info.value.filename == str(missing) or info.value.filename == missing
    with pytest.raises(IsADirectoryError):
        tree_digest_file(tmp_path)
    with pytest.raises(IsADirectoryError):
        twin.tree_digest_file(tmp_path)
    if os.geteuid() != 0:
        locked = tmp_path / "emi-locked"
        locked.write_bytes(b"x")
        locked.chmod(0)
        with pytest.raises(PermissionError):
            tree_digest_file(locked)
    image = tmp_path / "emi-ok"
    image.write_bytes(b"x")
    with pytest.raises(ValueError):
        tree_digest_file(image, threads=0)
    with pytest.raises(ValueError):
        tree_digest_bytes(b"x", threads=0)


def test_corrupted_cached_image_is_detected_and_purged(tmp_path: Path) -> None:
    """The node's integrity check: a cached image whose bytes changed no longer matches its digest."""
    data = bytearray(_image(2 * CHUNK_SIZE + 17, seed=3))
    path = tmp_path / "emi-0a1b2c3d"
    path.write_bytes(data)
    recorded = tree_digest_file(path)
    cache = CacheIndex(1 << 30)
    cache.insert(5, len(data), now=0.0)
    assert tree_digest_file(path) == recorded

    for offset in (0, CHUNK_SIZE - 1, CHUNK_SIZE, len(data) - 1):
        flipped = bytearray(data)
        flipped[offset] ^= 0x01
        path.write_bytes(flipped)
        assert tree_digest_file(path) != recorded
    path.write_bytes(data + b"\0")
    assert tree_digest_file(path) != recorded
    path.write_bytes(data[:-1])
    assert tree_digest_file(path) != recorded

    if tree_digest_file(path) != recorded:
        cache.remove(5)
    assert not cache.contains(5)
