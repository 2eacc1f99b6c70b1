"""pytest-benchmark cases for the node's image cache index and image digests (run with ``-m bench``)."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from bench.imagecache import _replay, _workload
from pyx.digest import CHUNK_SIZE, tree_digest_bytes, tree_digest_file
from pyx.imagecache import CacheIndex
from pyx.twins import digest as digest_twin
from pyx.twins import imagecache as cache_twin

pytestmark = pytest.mark.bench


@pytest.mark.parametrize("n_images", [1_000, 100_000])
def test_cache_lookup_insert_mix(benchmark: BenchmarkFixture, n_images: int) -> None:
    capacity, fill, ops = _workload(n_images, 50_000, insert_share=0.1)

    def setup() -> tuple[tuple[CacheIndex], dict[str, object]]:
        cache = CacheIndex(capacity)
        _replay(cache, fill)
        return (cache,), {}

    benchmark.pedantic(lambda cache: _replay(cache, ops), setup=setup, rounds=5)  # type: ignore[no-untyped-call]


def test_cache_lookup_insert_mix_twin(benchmark: BenchmarkFixture) -> None:
    capacity, fill, ops = _workload(1_000, 2_000, insert_share=0.1)

    def setup() -> tuple[tuple[cache_twin.CacheIndex], dict[str, object]]:
        cache = cache_twin.CacheIndex(capacity)
        _replay(cache, fill)
        return (cache,), {}

    benchmark.pedantic(lambda cache: _replay(cache, ops), setup=setup, rounds=5)  # type: ignore[no-untyped-call]


@pytest.fixture(scope="module")
def image_bytes() -> bytes:
    return random.Random(11).randbytes(16 * CHUNK_SIZE)


@pytest.mark.parametrize("threads", [1, 2])
def test_digest_file(benchmark: BenchmarkFixture, tmp_path: Path, image_bytes: bytes, threads: int) -> None:
    path = tmp_path / "emi-bench"
    path.write_bytes(image_bytes)
    assert benchmark(tree_digest_file, path, threads) == digest_twin.tree_digest_bytes(image_bytes)


def test_digest_bytes_two_threads(benchmark: BenchmarkFixture, image_bytes: bytes) -> None:
    benchmark(tree_digest_bytes, image_bytes, 2)


def test_hashlib_sha256_baseline(benchmark: BenchmarkFixture, image_bytes: bytes) -> None:
    benchmark(lambda: hashlib.sha256(image_bytes).hexdigest())
