from libc.stdint cimport int64_t

from pyx.slotpool cimport SlotPool


cdef class VlanPool(SlotPool):
    # Tag t is slot t - lo.
    cdef readonly int64_t lo
    cdef readonly int64_t hi
    cdef int64_t _allocate(self) except -1
    cdef int _take(self, object tag) except -1
    cdef int _release(self, object tag) except -1


cdef tuple check_tag_range(object lo, object hi, str lo_name, str hi_name)
