"""Plain-Python twin of ``pyx.imagecache``: the node's image cache index as a dict and ``min()``.

The oracle the property tests hold :class:`pyx.imagecache.CacheIndex` against, and the baseline
``bench/imagecache.py`` measures it against. Eviction scans every unpinned image for the least
recently used one, exactly as the spec reads: oldest last use, then the smaller image, then the
lower image number.
"""

from __future__ import annotations

from typing import Protocol


class Presence(Protocol):
    """What the index needs of the node x image presence map."""

    def set(self, node: int, image: int, present: bool) -> None: ...

    def drop_node(self, node: int) -> None: ...


class _Entry:
    __slots__ = ("last_use", "pins", "size")

    def __init__(self, size: int, last_use: float) -> None:
        self.size = size
        self.last_use = last_use
        self.pins = 0


def _check_image(image: int) -> None:
    if image < 0:
        raise ValueError(f"image must be >= 0, got {image}")


class CacheIndex:
    """A node's image cache bounded by ``NC_CACHE_SIZE`` bytes (0: caching off)."""

    def __init__(self, capacity: int, presence: Presence | None = None, node: int = -1) -> None:
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0 bytes, got {capacity}")
        if presence is not None and node < 0:
            raise ValueError("a presence map needs this node's position (node >= 0)")
        self._capacity = capacity
        self._entries: dict[int, _Entry] = {}
        self._used = 0
        self._pinned_bytes = 0
        self._presence = presence
        self._node = node
        if presence is not None:
            presence.drop_node(node)

    def _key(self, image: int) -> tuple[float, int, int]:
        entry = self._entries[image]
        return (entry.last_use, entry.size, image)

    def _announce(self, image: int, present: bool) -> None:
        if self._presence is not None:
            self._presence.set(self._node, image, present)

    def _evict_until(self, capacity: int, incoming: int) -> list[int]:
        evicted: list[int] = []
        while self._used + incoming > capacity or capacity == 0:
            candidates = [image for image, e in self._entries.items() if not e.pins]
            if not candidates:
                break
            victim = min(candidates, key=self._key)
            self._used -= self._entries.pop(victim).size
            evicted.append(victim)
            self._announce(victim, False)
        return evicted

    def lookup(self, image: int, now: float) -> bool:
        _check_image(image)
        entry = self._entries.get(image)
        if entry is None:
            return False
        entry.last_use = float(now)
        return True

    def insert(self, image: int, size: int, now: float) -> list[int] | None:
        _check_image(image)
        if size < 0:
            raise ValueError(f"image size must be >= 0 bytes, got {size}")
        if image in self._entries:
            raise ValueError(f"image {image} is already cached")
        if self._capacity == 0 or self._pinned_bytes + size > self._capacity:
            return None
        evicted = self._evict_until(self._capacity, size)
        self._entries[image] = _Entry(size, float(now))
        self._used += size
        self._announce(image, True)
        return evicted

    def pin(self, image: int) -> None:
        _check_image(image)
        entry = self._entries[image]
        if entry.pins == 0:
            self._pinned_bytes += entry.size
        entry.pins += 1

    def unpin(self, image: int) -> None:
        _check_image(image)
        entry = self._entries.get(image)
        if entry is None or entry.pins == 0:
            raise ValueError(f"image {image} is not pinned")
        entry.pins -= 1
        if entry.pins == 0:
            self._pinned_bytes -= entry.size

    def remove(self, image: int) -> None:
        _check_image(image)
        entry = self._entries[image]
        if entry.pins:
            raise ValueError(f"image {image} is pinned by {entry.pins} instance(s)")
        del self._entries[image]
        self._used -= entry.size
        self._announce(image, False)

    def set_capacity(self, capacity: int) -> list[int] | None:
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0 bytes, got {capacity}")
        pinned = any(e.pins for e in self._entries.values())
        if (capacity == 0 and pinned) or self._pinned_bytes > capacity:
            return None
        evicted = self._evict_until(capacity, 0)
        self._capacity = capacity
        return evicted

    def contains(self, image: int) -> bool:
        _check_image(image)
        return image in self._entries

    def __contains__(self, image: int) -> bool:
        return self.contains(image)

    def size_of(self, image: int) -> int:
        _check_image(image)
        return self._entries[image].size

    def pins(self, image: int) -> int:
        _check_image(image)
        entry = self._entries.get(image)
        return entry.pins if entry is not None else 0

    @property
    def used(self) -> int:
        return self._used

    @property
    def capacity(self) -> int:
        return self._capacity

    def __len__(self) -> int:
        return len(self._entries)

    def images(self) -> list[int]:
        return sorted(self._entries, key=self._key)
