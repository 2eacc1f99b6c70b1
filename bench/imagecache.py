"""The node's image cache index against its plain-Python twin.

Each workload is what a busy node controller sees once its cache is full: instances starting from
cached images (lookup hits) with, now and then, a fresh image fetched from Walrus whose insert
evicts the least recently used ones. The op sequence is generated once, checked against the kernel
so every lookup really hits, and replayed on a freshly filled cache for each repeat.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from typing import Protocol

from bench.table import Row
from pyx.imagecache import CacheIndex
from pyx.twins import imagecache as twin

# (is_lookup, image, size, now)
Op = tuple[bool, int, int, float]


class _Cache(Protocol):
    def lookup(self, image: int, now: float) -> bool: ...

    def insert(self, image: int, size: int, now: float) -> list[int] | None: ...


def _workload(n_images: int, n_ops: int, insert_share: float, seed: int = 1) -> tuple[int, list[Op], list[Op]]:
    """(capacity, fill ops, timed ops) for a cache of about ``n_images`` images of 1-8 units."""
    rng = random.Random(seed)
    fill: list[Op] = [(False, i, rng.randint(1, 8), float(i)) for i in range(n_images)]
    capacity = sum(op[2] for op in fill)
    probe = CacheIndex(capacity)
    cached: list[int] = []
    where: dict[int, int] = {}
    for _, image, size, now in fill:
        probe.insert(image, size, now)
        where[image] = len(cached)
        cached.append(image)
    ops: list[Op] = []
    next_image = n_images
    for k in range(n_ops):
        now = float(n_images + k)
        if rng.random() >= insert_share:
            image = cached[rng.randrange(len(cached))]
            ops.append((True, image, 0, now))
            probe.lookup(image, now)
            continue
        size = rng.randint(1, 8)
        evicted = probe.insert(next_image, size, now)
        assert evicted is not None
        for victim in evicted:
            i = where.pop(victim)
            last = cached.pop()
            if last != victim:
                cached[i] = last
                where[last] = i
        where[next_image] = len(cached)
        cached.append(next_image)
        ops.append((False, next_image, size, now))
        next_image += 1
    return capacity, fill, ops


def _replay(cache: _Cache, ops: list[Op]) -> None:
    lookup, insert = cache.lookup, cache.insert
    for is_lookup, image, size, now in ops:
        if is_lookup:
            lookup(image, now)
        else:
            insert(image, size, now)


def _rate(make: Callable[[int], _Cache], capacity: int, fill: list[Op], ops: list[Op], repeats: int) -> float:
    rates = []
    for _ in range(repeats):
        cache = make(capacity)
        _replay(cache, fill)
        start = time.perf_counter()
        _replay(cache, ops)
        elapsed = time.perf_counter() - start
        rates.append(len(ops) / elapsed if elapsed > 0 else float("inf"))
    return statistics.median(rates)


def rows(quick: bool = False) -> list[Row]:
    """Lookup-hit and lookup+insert mixes over 1,000 and 100,000 cached images, kernel vs twin."""
    out: list[Row] = []
    repeats = 3
    for n_images in (1_000, 100_000):
        size = f"{n_images:,} images"
        for kernel, insert_share in (("imagecache lookup hit", 0.0), ("imagecache lookup+insert", 0.1)):
            # The twin scans every image per eviction, so it gets fewer ops to stay within seconds.
            n_fast = 20_000 if quick else 200_000
            n_slow = n_fast if insert_share == 0 else max(200, n_fast * 100 // n_images)
            capacity, fill, ops = _workload(n_images, n_fast, insert_share)
            fast = _rate(CacheIndex, capacity, fill, ops, repeats)
            slow = _rate(twin.CacheIndex, capacity, fill, ops[:n_slow], repeats)
            out.append(Row(kernel=kernel, size=size, cython=fast, python=slow))
    return out
