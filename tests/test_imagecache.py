"""The node's image cache index against its plain-Python twin, and the NC behaviour it encodes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyx.imagecache import CacheIndex
from pyx.presence import PresenceMap
from pyx.twins import imagecache as twin

N_IMAGES = 12
NODE = 3


def test_evicts_least_recently_used_then_smaller_then_lower_id() -> None:
    cache = CacheIndex(100)
    assert cache.insert(7, 30, now=1.0) == []
    assert cache.insert(5, 30, now=1.0) == []
    assert cache.insert(2, 20, now=1.0) == []
    assert cache.lookup(2, now=2.0)
    # Tied at t=1: 5 and 7 are the same size, so the lower id goes first.
    assert cache.images() == [5, 7, 2]
    assert cache.insert(9, 50, now=3.0) == [5]
    assert cache.images() == [7, 2, 9]
    assert cache.used == 100
    assert cache.insert(4, 40, now=4.0) == [7, 2]


def test_smaller_image_goes_first_on_equal_last_use() -> None:
    cache = CacheIndex(100)
    cache.insert(1, 40, now=5.0)
    cache.insert(2, 10, now=5.0)
    assert cache.images() == [2, 1]
    assert cache.insert(3, 60, now=6.0) == [2]


def test_lookup_miss_changes_nothing_and_hit_refreshes() -> None:
    cache = CacheIndex(50)
    cache.insert(1, 10, now=1.0)
    cache.insert(2, 10, now=2.0)
    assert not cache.lookup(3, now=9.0)
    assert cache.images() == [1, 2]
    assert cache.lookup(1, now=3.0)
    assert cache.images() == [2, 1]
    # An injected clock may go backwards; the order follows the times given.
    assert cache.lookup(1, now=0.5)
    assert cache.images() == [1, 2]
    cache.insert(3, 10, now=4.0)
    cache.lookup(3, now=0.1)
    assert cache.insert(4, 30, now=5.0) == [3]


def test_image_larger_than_cache_is_not_cached_and_evicts_nothing() -> None:
    cache = CacheIndex(100)
    cache.insert(1, 60, now=1.0)
    assert cache.insert(2, 101, now=2.0) is None
    assert cache.images() == [1] and cache.used == 60


def test_pinned_images_are_never_evicted_and_block_what_cannot_fit() -> None:
    cache = CacheIndex(100)
    cache.insert(1, 60, now=1.0)
    cache.insert(2, 30, now=2.0)
    cache.pin(1)
    cache.pin(1)
    assert cache.pins(1) == 2
    # Only image 2 could go, and that is not enough: nothing may change.
    assert cache.insert(3, 50, now=3.0) is None
    assert cache.images() == [1, 2]
    assert cache.insert(3, 40, now=3.0) == [2]
    with pytest.raises(ValueError):
        cache.remove(1)
    cache.unpin(1)
    cache.pin(3)
    assert cache.insert(4, 10, now=4.0) is None
    cache.unpin(3)
    cache.unpin(1)
    with pytest.raises(ValueError):
        cache.unpin(1)
    assert cache.insert(4, 10, now=4.0) == [1]


def test_caching_off() -> None:
    cache = CacheIndex(0)
    assert cache.insert(1, 0, now=1.0) is None
    assert len(cache) == 0
    grown = CacheIndex(10)
    grown.insert(1, 0, now=1.0)
    assert grown.set_capacity(0) == [1]
    assert grown.insert(2, 0, now=2.0) is None


def test_set_capacity_shrinks_in_lru_order_or_refuses() -> None:
    cache = CacheIndex(100)
    for image, size in ((1, 30), (2, 30), (3, 30)):
        cache.insert(image, size, now=float(image))
    cache.pin(3)
    assert cache.set_capacity(20) is None
    assert cache.capacity == 100 and len(cache) == 3
    assert cache.set_capacity(60) == [1]
    assert cache.capacity == 60
    assert cache.set_capacity(1000) == []


def test_bad_input() -> None:
    with pytest.raises(ValueError):
        CacheIndex(-1)
    with pytest.raises(ValueError):
        CacheIndex(10, PresenceMap(), node=-1)
    cache = CacheIndex(100)
    cache.insert(1, 10, now=0.0)
    with pytest.raises(ValueError):
        cache.insert(1, 10, now=1.0)
    with pytest.raises(ValueError):
        cache.insert(2, -1, now=1.0)
    with pytest.raises(ValueError):
        cache.insert(-2, 1, now=1.0)
    with pytest.raises(KeyError):
        cache.remove(2)
    with pytest.raises(KeyError):
        cache.pin(2)
    with pytest.raises(KeyError):
        cache.size_of(2)
    with pytest.raises(ValueError):
        cache.unpin(2)
    with pytest.raises(ValueError):
        cache.set_capacity(-5)
    assert cache.pins(2) == 0 and not cache.contains(2) and 1 in cache


def test_presence_map_mirrors_the_cache() -> None:
    presence = PresenceMap(8, 4)
    presence.set(NODE, 3, True)  # stale: this node's cache starts empty
    presence.set(1, 2, True)
    cache = CacheIndex(100, presence, node=NODE)
    assert not presence.has(NODE, 3) and presence.has(1, 2)
    cache.insert(2, 60, now=1.0)
    cache.insert(40, 30, now=2.0)  # beyond the map's shape: it grows
    assert presence.nodes_with(2) == [1, NODE] and presence.has(NODE, 40)
    cache.insert(5, 50, now=3.0)
    assert not presence.has(NODE, 2) and presence.nodes_with(2) == [1]
    cache.remove(40)
    assert not presence.has(NODE, 40) and presence.has(NODE, 5)


def test_many_images_evict_in_order() -> None:
    n = 100_000
    cache = CacheIndex(n)
    for image in range(n):
        assert cache.insert(image, 1, now=float(image % 1000)) == []
    for image in range(0, n, 2):
        assert cache.lookup(image, now=2000.0 + image)
    evicted = cache.insert(n, 1000, now=10**6)
    assert evicted is not None
    expected = sorted(range(1, n, 2), key=lambda i: (i % 1000, i))[:1000]
    assert evicted == expected
    assert len(cache) == n - 1000 + 1 and cache.used == n


# -- property: the kernel and its twin agree on every step ---------------------------------------

images = st.integers(0, N_IMAGES - 1)
times = st.integers(0, 30).map(float) | st.floats(0, 30, allow_nan=False)
ops = st.one_of(
    st.tuples(st.just("insert"), images, st.integers(-1, 45), times),
    st.tuples(st.just("insert"), images, st.integers(0, 12), times),
    st.tuples(st.just("lookup"), images, times),
    st.tuples(st.just("pin"), images),
    st.tuples(st.just("unpin"), images),
    st.tuples(st.just("remove"), images),
    st.tuples(st.just("set_capacity"), st.integers(-1, 120)),
    st.tuples(st.just("size_of"), images),
    st.tuples(st.just("pins"), images),
    st.tuples(st.just("contains"), images),
)


def _outcome(method: Callable[..., Any], args: list[Any]) -> tuple[str, Any]:
    try:
        return ("ok", method(*args))
    except (ValueError, KeyError) as exc:
        return ("raised", type(exc))


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(capacity=st.integers(0, 100), with_presence=st.booleans(), steps=st.lists(ops, max_size=60))
def test_matches_twin(capacity: int, with_presence: bool, steps: list[tuple[Any, ...]]) -> None:
    presence = PresenceMap(NODE + 2, 2) if with_presence else None
    twin_presence = PresenceMap(NODE + 2, 2) if with_presence else None
    kernel = CacheIndex(capacity, presence, NODE if with_presence else -1)
    oracle = twin.CacheIndex(capacity, twin_presence, NODE if with_presence else -1)
    for name, *args in steps:
        got = _outcome(getattr(kernel, name), args)
        want = _outcome(getattr(oracle, name), args)
        assert got == want, (name, args)
        assert kernel.images() == oracle.images()
        assert kernel.used == oracle.used and kernel.capacity == oracle.capacity
        assert len(kernel) == len(oracle)
        assert kernel.used <= kernel.capacity
        assert kernel.used == sum(kernel.size_of(i) for i in kernel.images())
        assert [kernel.pins(i) for i in range(N_IMAGES)] == [oracle.pins(i) for i in range(N_IMAGES)]
        if presence is not None and twin_presence is not None:
            held = [i for i in range(N_IMAGES) if presence.has(NODE, i)]
            assert held == sorted(kernel.images())
            assert held == [i for i in range(N_IMAGES) if twin_presence.has(NODE, i)]
