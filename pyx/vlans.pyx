# cython: language_level=3
"""VLAN tags: one per security group's network in MANAGED mode.

Tags are Python ints; the pool is a SlotPool whose slot t - lo is tag t. The plain-Python twin in
``pyx/twins/netalloc.py`` is the oracle this is tested against.
"""
from libc.stdint cimport int64_t

from pyx.slotpool cimport SlotPool, as_long, shown

# Tags are 12 bits; Eucalyptus lets maxVlan reach the top one.
cdef int64_t MAX_TAG = 4095


cdef tuple check_tag_range(object lo, object hi, str lo_name, str hi_name):
    """(lo, hi) as C values, or ValueError naming the bad bound as the caller calls it."""
    cdef long long l = as_long(lo), h = as_long(hi)
    if l < 1 or l > MAX_TAG:
        raise ValueError(f"{lo_name} must be within 1..4095, got {shown(lo)}")
    if h < l or h > MAX_TAG:
        raise ValueError(f"{hi_name} must be within {l}..4095, got {shown(hi)}")
    return l, h


cdef inline int _check(VlanPool pool, object tag, long long t) except -1:
    """ValueError for a tag outside the pool's lo..hi."""
    if t < pool.lo or t > pool.hi:
        raise ValueError(f"vlan tag {shown(tag)} is outside {pool.lo}..{pool.hi}")
    return 0


cdef class VlanPool(SlotPool):
    """The VLAN tags a cluster may give security groups: one tag per ``<user>-<group>`` network.

    Eucalyptus hands out the lowest free tag (2.0: within the cluster's [minVlan, maxVlan], 10..4095
    by default) and frees it when no instance of the group is left. The CC then runs
    ``vconfig add <if> <tag>`` and bridges ``<if>.<tag>`` onto ``eucabr<tag>``.
    """

    def __cinit__(self, lo, hi) -> None:
        self.lo, self.hi = check_tag_range(lo, hi, "lo", "hi")
        self._init_slots(self.hi - self.lo + 1, "vlan tags")

    cdef str _name(self, object tag):
        return f"vlan tag {shown(tag)}"

    cdef int64_t _allocate(self) except -1:
        return self.lo + self._allocate_slot()

    cdef int _take(self, object tag) except -1:
        cdef long long t = as_long(tag)
        _check(self, tag, t)
        return self._take_slot(t - self.lo, tag)

    cdef int _release(self, object tag) except -1:
        cdef long long t = as_long(tag)
        _check(self, tag, t)
        return self._release_slot(t - self.lo, tag)

    def allocate(self) -> int:
        """The lowest free tag, now held by the caller's security group."""
        return self._allocate()

    def take(self, tag) -> None:
        """Claim a specific tag (a group whose tag the state store already records)."""
        self._take(tag)

    def release(self, tag) -> None:
        """Give the tag back once the group's last instance has ended."""
        self._release(tag)

    def held(self, tag) -> bool:
        cdef long long t = as_long(tag)
        return self.lo <= t <= self.hi and self._held(t - self.lo)

    def in_use(self) -> list[int]:
        """Held tags, ascending."""
        cdef list out = []
        cdef Py_ssize_t s = self._next_held(0)
        while s >= 0:
            out.append(self.lo + s)
            s = self._next_held(s + 1)
        return out

    def load(self, tags) -> list[tuple[int, str]]:
        """Rebuild from the tags the state store records after a restart: reset, then take each.

        Returns the refused ones with the reason ("duplicate" or "out of range") and keeps the rest.
        """
        cdef list items = [(tag, as_long(tag)) for tag in tags]
        cdef list refused = []
        cdef long long t
        self._reset()
        for tag, t in items:
            if t < self.lo or t > self.hi:
                refused.append((tag, "out of range"))
            elif not self._claim(t - self.lo):
                refused.append((tag, "duplicate"))
        return refused

    def __repr__(self) -> str:
        return f"VlanPool({self.lo}, {self.hi}, free={self.nfree})"
