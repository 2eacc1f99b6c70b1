from pyx.slotpool cimport SlotPool


cdef class MacPool(SlotPool):
    # pairs[slot] is (mac, ip) in VNET_MACMAP order; index maps a normalised MAC to its slot.
    cdef list pairs
    cdef dict index
    cdef Py_ssize_t _slot(self, object mac) except -2
    cdef int _take(self, object mac) except -1
    cdef int _release(self, object mac) except -1
