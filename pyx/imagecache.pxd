from libc.stdint cimport int64_t

from pyx.presence cimport PresenceMap


# An image's place in the LRU order: oldest last use first, then the smaller image, then the lower id.
ctypedef struct lru_key_t:
    double last_use
    int64_t size
    Py_ssize_t image


cdef class CacheIndex:
    cdef int64_t _capacity
    cdef int64_t _used
    # Bytes and count of the images some instance has pinned: they bound what eviction can free.
    cdef int64_t pinned_bytes
    cdef Py_ssize_t n_pinned
    # Per image id, grown on insert: size (-1 when not cached), last use, pins, place in the heap
    # (-1 when absent or pinned) and place in ``members``.
    cdef int64_t* sizes
    cdef double* last_use
    cdef int64_t* pin_counts
    cdef Py_ssize_t* heap_pos
    cdef Py_ssize_t* member_pos
    cdef Py_ssize_t n_slots
    # Every cached image, unordered, so images() costs the cache's size and not the largest id.
    cdef Py_ssize_t* members
    cdef Py_ssize_t n_members
    # A binary min-heap of the unpinned images on their LRU key. An entry's last use may lag the
    # image's (a lookup moved it later); a fresh root is the next victim.
    cdef lru_key_t* heap
    cdef Py_ssize_t heap_len
    cdef Py_ssize_t heap_cap
    cdef PresenceMap presence
    cdef Py_ssize_t node

    cdef bint _cached(self, Py_ssize_t image) noexcept nogil
    cdef bint _pins_fit(self, int64_t capacity, int64_t incoming) noexcept nogil
    cdef int _grow_slots(self, Py_ssize_t image) except -1
    cdef int _heap_push(self, Py_ssize_t image) except -1
    cdef void _heap_remove(self, Py_ssize_t image) noexcept nogil
    cdef void _sift_up(self, Py_ssize_t i) noexcept nogil
    cdef void _sift_down(self, Py_ssize_t i) noexcept nogil
    cdef int _announce(self, Py_ssize_t image, bint present) except -1
    cdef int _add(self, Py_ssize_t image, int64_t size, double now) except -1
    cdef void _drop(self, Py_ssize_t image) noexcept nogil
    cdef list _evict_until(self, int64_t capacity, int64_t incoming)
