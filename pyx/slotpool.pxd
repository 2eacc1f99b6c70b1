from cpython.long cimport PyLong_AsLongLongAndOverflow

from pyx.bitset cimport bitset_t, bs_clear, bs_next, bs_next_clear, bs_set, bs_test


cdef extern from *:
    """
    #define EUCA_MAX_IPV4 0xFFFFFFFFLL
    """
    const long long MAX_IPV4 "EUCA_MAX_IPV4"


cdef class SlotPool:
    # Bit s is set while slot s is free, so the lowest free slot is one bs_next away.
    cdef bitset_t free
    cdef Py_ssize_t nfree
    # What Exhausted names when no slot is left ("vlan tags", "public addresses", ...).
    cdef str what
    cdef int _init_slots(self, Py_ssize_t n, str what) except -1
    cdef void _reset(self) noexcept nogil
    cdef void _drop(self) noexcept nogil
    cdef str _name(self, object item)
    cdef int _exhausted(self) except -1
    cdef int _refuse_take(self, object item) except -1
    cdef int _refuse_release(self, object item) except -1

    # The hot paths are inline here, so that they compile into each pool's own module; the errors
    # are the cold calls above.

    cdef inline Py_ssize_t _allocate_slot(self) except -1:
        """The lowest free slot, now held; Exhausted when none is left."""
        cdef Py_ssize_t s = bs_next(&self.free, 0)
        if s < 0:
            return self._exhausted()
        bs_clear(&self.free, s)
        self.nfree -= 1
        return s

    cdef inline int _take_slot(self, Py_ssize_t s, object item) except -1:
        """Hold slot s (0 <= s < n), which item names; Conflict when it is already held."""
        if not bs_test(&self.free, s):
            return self._refuse_take(item)
        bs_clear(&self.free, s)
        self.nfree -= 1
        return 0

    cdef inline int _release_slot(self, Py_ssize_t s, object item) except -1:
        """Free slot s (0 <= s < n), which item names; ValueError when it is not held."""
        if bs_test(&self.free, s):
            return self._refuse_release(item)
        bs_set(&self.free, s)
        self.nfree += 1
        return 0

    cdef inline bint _claim(self, Py_ssize_t s) noexcept nogil:
        """Hold slot s if it is free (rebuilding from the state store); False for a duplicate."""
        if not bs_test(&self.free, s):
            return False
        bs_clear(&self.free, s)
        self.nfree -= 1
        return True

    cdef inline bint _held(self, Py_ssize_t s) noexcept nogil:
        return 0 <= s < self.free.nbits and not bs_test(&self.free, s)

    cdef inline Py_ssize_t _next_held(self, Py_ssize_t s) noexcept nogil:
        """The first held slot at or after s, or -1."""
        return bs_next_clear(&self.free, s)


cdef inline long long as_long(object x) except? -1:
    # An int too wide for 64 bits can be no tag or address; -1 is outside every pool, so it is
    # refused by the ordinary range checks with the ordinary message.
    cdef int overflow = 0
    cdef long long v = PyLong_AsLongLongAndOverflow(x, &overflow)
    if overflow:
        return -1
    return v


cdef str shown(object x)
cdef str dotted(object x)
