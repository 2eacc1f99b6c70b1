from libc.stdint cimport int64_t

from pyx.slotpool cimport SlotPool


cdef class PublicPool(SlotPool):
    # addrs[slot] in VNET_PUBLICIPS order.
    cdef int64_t* addrs
    cdef Py_ssize_t n
    # Open addressing from address to slot (-1 = empty); mask + 1 is a power of two >= 2n.
    cdef Py_ssize_t* table
    cdef Py_ssize_t mask
    cdef Py_ssize_t _slot(self, int64_t ip) noexcept
    cdef int64_t _allocate(self) except -1
    cdef int _take(self, object ip) except -1
    cdef int _release(self, object ip) except -1
