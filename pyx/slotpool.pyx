# cython: language_level=3
"""The pool every network allocator is built on: slots 0..n-1, handed out lowest free first.

Eucalyptus gives out VLAN tags, a network's host addresses, public IPs and STATIC mode's MAC=IP
pairs by one rule, "the lowest free one". Each pool numbers its items (a tag, an address, a pair)
as slots and leaves the bookkeeping here: a bitset of the free slots, so that the lowest is one
find-next-set-bit away, their count, and the errors, which name the item the way its pool shows it
(``_name``). Every error leaves the pool unchanged.
"""
import operator

from pyx.bitset cimport bs_fill, bs_free, bs_init

from pyx.errors import Conflict, Exhausted


cdef str shown(object x):
    """An int as errors show it (the caller's value, not the clamped key)."""
    return str(operator.index(x))


cdef str dotted(object x):
    """An IPv4 address as a dotted quad; anything outside IPv4 as the plain int."""
    cdef object value = operator.index(x)
    if 0 <= value <= MAX_IPV4:
        return f"{value >> 24}.{(value >> 16) & 255}.{(value >> 8) & 255}.{value & 255}"
    return str(value)


cdef class SlotPool:
    """Slots 0..n-1, each free or held; a pool subclass maps its items onto them and names them."""

    def __dealloc__(self) -> None:
        bs_free(&self.free)

    cdef int _init_slots(self, Py_ssize_t n, str what) except -1:
        """n slots, all free."""
        bs_free(&self.free)
        if bs_init(&self.free, n) != 0:
            bs_free(&self.free)
            raise MemoryError()
        bs_fill(&self.free)
        self.nfree = n
        self.what = what
        return 0

    cdef void _reset(self) noexcept nogil:
        """Every slot free again."""
        bs_fill(&self.free)
        self.nfree = self.free.nbits

    cdef void _drop(self) noexcept nogil:
        """No slots at all (memory given back) until _init_slots."""
        bs_free(&self.free)
        self.nfree = 0

    cdef str _name(self, object item):
        return f"slot {shown(item)}"

    cdef int _exhausted(self) except -1:
        raise Exhausted(self.what)

    cdef int _refuse_take(self, object item) except -1:
        raise Conflict(f"{self._name(item)} is already in use")

    cdef int _refuse_release(self, object item) except -1:
        raise ValueError(f"{self._name(item)} is not in use")

    @property
    def free_count(self) -> int:
        return self.nfree
