# cython: language_level=3
"""The node controller's image cache index: which images sit in ``INSTANCE_PATH/eucalyptus/cache``.

A node keeps the emi/eki/eri files it fetched from Walrus so that the next instance started from the
same image skips the download. The cache is bounded by ``NC_CACHE_SIZE`` (0 turns it off); a fresh
image that does not fit evicts the least recently used ones, smaller first on ties as Eucalyptus
2.0 does, and an image larger than the whole cache is simply not cached. An instance that is
starting from an image pins it, so it cannot vanish under a running ``dd``.

Images are dense non-negative integers (the cluster controller maps ``emi-``/``eki-``/``eri-`` ids
onto them). Unpinned images live in a binary min-heap on (last use, size, image), which keeps the
exact tie-break even when an injected clock hands out equal or out-of-order times. A lookup hit
only records its time (O(1)); the heap entry catches up when it reaches the root, so an eviction
costs O(log n) amortised and everything else O(log n). Given a :class:`~pyx.presence.PresenceMap`, the index
mirrors its contents into the node's row so the CACHEAWARE scheduler sees them.
"""
from libc.stdint cimport int64_t
from libc.stdlib cimport free, malloc, qsort, realloc

from pyx.bitset cimport bs_assign
from pyx.presence cimport PresenceMap


cdef inline bint _before(const lru_key_t* a, const lru_key_t* b) noexcept nogil:
    if a.last_use != b.last_use:
        return a.last_use < b.last_use
    if a.size != b.size:
        return a.size < b.size
    return a.image < b.image


cdef int _compare(const void* a, const void* b) noexcept nogil:
    if _before(<const lru_key_t*>a, <const lru_key_t*>b):
        return -1
    if _before(<const lru_key_t*>b, <const lru_key_t*>a):
        return 1
    return 0


cdef inline int _check_image(Py_ssize_t image) except -1:
    if image < 0:
        raise ValueError(f"image must be >= 0, got {image}")
    return 0


cdef class CacheIndex:
    """The image cache of one node: sizes, last uses and instance pins of the cached images.

    ``capacity`` is ``NC_CACHE_SIZE`` in bytes; 0 means caching is off and nothing is ever cached.
    With ``presence`` (and this node's position ``node`` in the cluster's NODES order) every
    insert, eviction and removal is mirrored into the presence map; the node's row starts empty,
    as the cache does.
    """

    def __cinit__(self, capacity, PresenceMap presence=None, Py_ssize_t node=-1):
        self.sizes = NULL
        self.last_use = NULL
        self.pin_counts = NULL
        self.heap_pos = NULL
        self.member_pos = NULL
        self.members = NULL
        self.heap = NULL
        self.n_slots = 0
        self.n_members = 0
        self.heap_len = 0
        self.heap_cap = 0
        self._used = 0
        self.pinned_bytes = 0
        self.n_pinned = 0
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0 bytes, got {capacity}")
        self._capacity = capacity
        if presence is not None and node < 0:
            raise ValueError("a presence map needs this node's position (node >= 0)")
        self.presence = presence
        self.node = node
        if presence is not None:
            presence.drop_node(node)

    def __dealloc__(self):
        free(self.sizes)
        free(self.last_use)
        free(self.pin_counts)
        free(self.heap_pos)
        free(self.member_pos)
        free(self.members)
        free(self.heap)

    # -- storage --------------------------------------------------------------------------------

    cdef int _grow_slots(self, Py_ssize_t image) except -1:
        cdef Py_ssize_t n = self.n_slots * 2 if self.n_slots else 64
        cdef Py_ssize_t i
        cdef void* p
        if image < self.n_slots:
            return 0
        if n <= image:
            n = image + 1
        # Each realloc is kept as soon as it succeeds, so a failure part-way leaves every array at
        # least n_slots long and the index still consistent.
        p = realloc(self.sizes, n * sizeof(int64_t))
        if p == NULL:
            raise MemoryError()
        self.sizes = <int64_t*>p
        p = realloc(self.last_use, n * sizeof(double))
        if p == NULL:
            raise MemoryError()
        self.last_use = <double*>p
        p = realloc(self.pin_counts, n * sizeof(int64_t))
        if p == NULL:
            raise MemoryError()
        self.pin_counts = <int64_t*>p
        p = realloc(self.heap_pos, n * sizeof(Py_ssize_t))
        if p == NULL:
            raise MemoryError()
        self.heap_pos = <Py_ssize_t*>p
        p = realloc(self.member_pos, n * sizeof(Py_ssize_t))
        if p == NULL:
            raise MemoryError()
        self.member_pos = <Py_ssize_t*>p
        p = realloc(self.members, n * sizeof(Py_ssize_t))
        if p == NULL:
            raise MemoryError()
        self.members = <Py_ssize_t*>p
        p = realloc(self.heap, n * sizeof(lru_key_t))
        if p == NULL:
            raise MemoryError()
        self.heap = <lru_key_t*>p
        for i in range(self.n_slots, n):
            self.sizes[i] = -1
            self.last_use[i] = 0
            self.pin_counts[i] = 0
            self.heap_pos[i] = -1
            self.member_pos[i] = -1
        self.n_slots = n
        self.heap_cap = n
        return 0

    cdef bint _cached(self, Py_ssize_t image) noexcept nogil:
        return 0 <= image < self.n_slots and self.sizes[image] >= 0

    # -- the LRU heap ---------------------------------------------------------------------------

    cdef void _sift_up(self, Py_ssize_t i) noexcept nogil:
        cdef lru_key_t item = self.heap[i]
        cdef Py_ssize_t parent
        while i > 0:
            parent = (i - 1) >> 1
            if not _before(&item, &self.heap[parent]):
                break
            self.heap[i] = self.heap[parent]
            self.heap_pos[self.heap[i].image] = i
            i = parent
        self.heap[i] = item
        self.heap_pos[item.image] = i

    cdef void _sift_down(self, Py_ssize_t i) noexcept nogil:
        cdef lru_key_t item = self.heap[i]
        cdef Py_ssize_t child, n = self.heap_len
        while True:
            child = 2 * i + 1
            if child >= n:
                break
            if child + 1 < n and _before(&self.heap[child + 1], &self.heap[child]):
                child += 1
            if not _before(&self.heap[child], &item):
                break
            self.heap[i] = self.heap[child]
            self.heap_pos[self.heap[i].image] = i
            i = child
        self.heap[i] = item
        self.heap_pos[item.image] = i

    cdef int _heap_push(self, Py_ssize_t image) except -1:
        # heap_cap == n_slots >= the number of cached images, so there is always room.
        cdef Py_ssize_t i = self.heap_len
        self.heap[i].last_use = self.last_use[image]
        self.heap[i].size = self.sizes[image]
        self.heap[i].image = image
        self.heap_len += 1
        self._sift_up(i)
        return 0

    cdef void _heap_remove(self, Py_ssize_t image) noexcept nogil:
        cdef Py_ssize_t i = self.heap_pos[image]
        cdef Py_ssize_t last = self.heap_len - 1
        self.heap_pos[image] = -1
        self.heap_len = last
        if i == last:
            return
        self.heap[i] = self.heap[last]
        self.heap_pos[self.heap[i].image] = i
        if i > 0 and _before(&self.heap[i], &self.heap[(i - 1) >> 1]):
            self._sift_up(i)
        else:
            self._sift_down(i)

    # -- membership -----------------------------------------------------------------------------

    cdef int _announce(self, Py_ssize_t image, bint present) except -1:
        if self.presence is not None:
            self.presence._ensure(self.node, image)
            bs_assign(&self.presence.rows[image], self.node, present)
        return 0

    cdef int _add(self, Py_ssize_t image, int64_t size, double now) except -1:
        self._grow_slots(image)
        self.sizes[image] = size
        self.last_use[image] = now
        self.pin_counts[image] = 0
        self.member_pos[image] = self.n_members
        self.members[self.n_members] = image
        self.n_members += 1
        self._used += size
        self._heap_push(image)
        return 0

    cdef void _drop(self, Py_ssize_t image) noexcept nogil:
        """Forget an unpinned image that is no longer in the heap."""
        cdef Py_ssize_t k = self.member_pos[image]
        cdef Py_ssize_t moved = self.members[self.n_members - 1]
        self.members[k] = moved
        self.member_pos[moved] = k
        self.n_members -= 1
        self.member_pos[image] = -1
        self._used -= self.sizes[image]
        self.sizes[image] = -1

    cdef list _evict_until(self, int64_t capacity, int64_t incoming):
        """Evict LRU-first until ``incoming`` more bytes fit; callers have checked that they can."""
        cdef list evicted = []
        cdef Py_ssize_t victim
        while self.heap_len > 0 and (self._used + incoming > capacity or capacity == 0):
            victim = self.heap[0].image
            if self.heap[0].last_use != self.last_use[victim]:
                self.heap[0].last_use = self.last_use[victim]
                self._sift_down(0)
                continue
            self._heap_remove(victim)
            self._drop(victim)
            evicted.append(victim)
            self._announce(victim, False)
        return evicted

    cdef bint _pins_fit(self, int64_t capacity, int64_t incoming) noexcept nogil:
        """Whether the pinned images plus ``incoming`` bytes fit once everything else is evicted."""
        if capacity == 0:
            return False
        return self.pinned_bytes <= capacity - incoming

    # -- the node controller's interface --------------------------------------------------------

    def lookup(self, Py_ssize_t image, double now) -> bool:
        """An instance wants the image: True on a cache hit (its last use becomes ``now``)."""
        cdef Py_ssize_t i
        _check_image(image)
        if not self._cached(image):
            return False
        self.last_use[image] = now
        i = self.heap_pos[image]
        # A later use leaves the heap entry stale, to be re-sifted only if it reaches the root:
        # a hit costs O(1) however large the cache. An earlier one (the clock went back) must move
        # the entry up at once, or it would be evicted late.
        if i >= 0 and now < self.heap[i].last_use:
            self.heap[i].last_use = now
            self._sift_up(i)
        return True

    def insert(self, Py_ssize_t image, int64_t size, double now) -> list[int] | None:
        """Cache an image freshly fetched from Walrus, evicting least recently used images to fit.

        Returns the evicted images, next victim first, or None when the image cannot be cached
        (caching is off, it is larger than ``NC_CACHE_SIZE``, or pinned images leave too little
        room); then nothing changes and the instance runs from an uncached copy.
        """
        _check_image(image)
        if size < 0:
            raise ValueError(f"image size must be >= 0 bytes, got {size}")
        if self._cached(image):
            raise ValueError(f"image {image} is already cached")
        if not self._pins_fit(self._capacity, size):
            return None
        evicted = self._evict_until(self._capacity, size)
        self._add(image, size, now)
        self._announce(image, True)
        return evicted

    def pin(self, Py_ssize_t image) -> None:
        """An instance is starting from the cached image: it must not be evicted until unpinned."""
        _check_image(image)
        if not self._cached(image):
            raise KeyError(image)
        if self.pin_counts[image] == 0:
            self._heap_remove(image)
            self.pinned_bytes += self.sizes[image]
            self.n_pinned += 1
        self.pin_counts[image] += 1

    def unpin(self, Py_ssize_t image) -> None:
        """An instance is done with the image (its disks are built): one pin fewer."""
        _check_image(image)
        if not self._cached(image) or self.pin_counts[image] == 0:
            raise ValueError(f"image {image} is not pinned")
        self.pin_counts[image] -= 1
        if self.pin_counts[image] == 0:
            self.pinned_bytes -= self.sizes[image]
            self.n_pinned -= 1
            self._heap_push(image)

    def remove(self, Py_ssize_t image) -> None:
        """Purge the image (its digest no longer matches): the next instance fetches it again."""
        _check_image(image)
        if not self._cached(image):
            raise KeyError(image)
        if self.pin_counts[image] > 0:
            raise ValueError(f"image {image} is pinned by {self.pin_counts[image]} instance(s)")
        self._heap_remove(image)
        self._drop(image)
        self._announce(image, False)

    def set_capacity(self, capacity) -> list[int] | None:
        """Apply a new ``NC_CACHE_SIZE``: evict as ``insert`` does, or return None and change
        nothing when the pinned images alone exceed it."""
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0 bytes, got {capacity}")
        cdef int64_t cap = capacity
        if cap == 0:
            if self.n_pinned > 0:
                return None
        elif not self._pins_fit(cap, 0):
            return None
        evicted = self._evict_until(cap, 0)
        self._capacity = cap
        return evicted

    def contains(self, Py_ssize_t image) -> bool:
        _check_image(image)
        return self._cached(image)

    def __contains__(self, image) -> bool:
        return self.contains(image)

    def size_of(self, Py_ssize_t image) -> int:
        """The cached image's size in bytes; KeyError when it is not cached."""
        _check_image(image)
        if not self._cached(image):
            raise KeyError(image)
        return self.sizes[image]

    def pins(self, Py_ssize_t image) -> int:
        """How many instances hold the image pinned (0 when it is not cached)."""
        _check_image(image)
        if not self._cached(image):
            return 0
        return self.pin_counts[image]

    @property
    def used(self) -> int:
        """Bytes the cached images take."""
        return self._used

    @property
    def capacity(self) -> int:
        """``NC_CACHE_SIZE`` in bytes; 0 when caching is off."""
        return self._capacity

    def __len__(self) -> int:
        return self.n_members

    def images(self) -> list[int]:
        """Every cached image, pinned ones included, oldest last use first (ties: smaller, then lower id)."""
        cdef Py_ssize_t k, image, n = self.n_members
        cdef list out = []
        cdef lru_key_t* keys
        if n == 0:
            return out
        keys = <lru_key_t*>malloc(n * sizeof(lru_key_t))
        if keys == NULL:
            raise MemoryError()
        try:
            for k in range(n):
                image = self.members[k]
                keys[k].last_use = self.last_use[image]
                keys[k].size = self.sizes[image]
                keys[k].image = image
            qsort(keys, n, sizeof(lru_key_t), _compare)
            for k in range(n):
                out.append(keys[k].image)
        finally:
            free(keys)
        return out
