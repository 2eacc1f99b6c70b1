"""The cluster controller's view of the nodes' image caches.

Each node controller keeps a cache of images fetched from Walrus (NC_CACHE_SIZE MB, LRU, images
in use pinned). The CC mirrors each cache with a ``pyx.imagecache.CacheIndex`` and keeps the node
x image presence map that the CACHEAWARE policy reads. Images are known by their ``emi-``,
``eki-`` and ``eri-`` ids; the kernels see dense integers ("slots").
"""

from __future__ import annotations

from pyx.imagecache import CacheIndex
from pyx.presence import PresenceMap

MB = 1024 * 1024


class ImageCacheView:
    """Image ids to slots, a CacheIndex per node, and the shared presence map."""

    def __init__(self, cache_size_mb: int) -> None:
        if cache_size_mb < 0:
            raise ValueError("NC_CACHE_SIZE must be >= 0")
        self.capacity = cache_size_mb * MB
        self.presence = PresenceMap()
        self._slots: dict[str, int] = {}
        self._ids: list[str] = []
        self._caches: dict[int, CacheIndex] = {}

    def slot(self, image_id: str) -> int:
        """The image's dense number, given on first sight."""
        slot = self._slots.get(image_id)
        if slot is None:
            slot = self._slots[image_id] = len(self._ids)
            self._ids.append(image_id)
        return slot

    def image_id(self, slot: int) -> str:
        return self._ids[slot]

    def cache(self, node: int) -> CacheIndex:
        cache = self._caches.get(node)
        if cache is None:
            cache = self._caches[node] = CacheIndex(self.capacity, self.presence, node)
        return cache

    def holds(self, node: int, image_id: str) -> bool:
        """The node's cache holds the image."""
        slot = self._slots.get(image_id)
        cache = self._caches.get(node)
        return slot is not None and cache is not None and cache.contains(slot)

    def use_slot(self, node: int, slot: int, now: float) -> None:
        """An instance starts from the node's cached image: a use at ``now`` (for LRU), and a pin
        that keeps the image until the instance ends."""
        cache = self._caches[node]
        cache.lookup(slot, now)
        cache.pin(slot)

    def fetched(self, node: int, image_id: str, size: int, now: float) -> list[str] | None:
        """The node finished downloading an image: cache it, evicting as the NC would.
        Returns the evicted image ids, or None when the image was not cached (too large, or pinned
        images leave no room)."""
        evicted = self.cache(node).insert(self.slot(image_id), size, now)
        if evicted is None:
            return None
        if not evicted:
            return []
        ids = self._ids
        return [ids[s] for s in evicted]

    def pin(self, node: int, image_id: str) -> None:
        cache = self.cache(node)
        slot = self.slot(image_id)
        if cache.contains(slot):
            cache.pin(slot)

    def unpin(self, node: int, image_id: str) -> None:
        cache = self._caches.get(node)
        slot = self._slots.get(image_id)
        if cache is not None and slot is not None and cache.pins(slot) > 0:
            cache.unpin(slot)

    def forget_node(self, node: int) -> None:
        """The node's cache is gone (it was wiped or the node left)."""
        self._caches.pop(node, None)
        self.presence.drop_node(node)
