# cython: language_level=3
"""Public addresses: VNET_PUBLICIPS, given to instances and taken as elastic IPs.

Addresses are Python ints; the pool is a SlotPool whose slot i is the i-th listed address. The
plain-Python twin in ``pyx/twins/netalloc.py`` is the oracle this is tested against.
"""
from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport free, malloc

from pyx.slotpool cimport MAX_IPV4, SlotPool, as_long, dotted, shown


cdef inline Py_ssize_t _hash(int64_t ip, Py_ssize_t mask) noexcept nogil:
    # Fibonacci hashing: consecutive addresses (the usual "a-b" range) land far apart.
    return <Py_ssize_t>(((<uint64_t>ip) * <uint64_t>0x9E3779B97F4A7C15) >> 32) & mask


cdef inline Py_ssize_t _listed(PublicPool pool, object ip) except -1:
    """The address's slot; ValueError for one VNET_PUBLICIPS does not list."""
    cdef Py_ssize_t s = pool._slot(as_long(ip))
    if s < 0:
        raise ValueError(f"{dotted(ip)} is not in VNET_PUBLICIPS")
    return s


cdef class PublicPool(SlotPool):
    """The public addresses of VNET_PUBLICIPS that instances and elastic IPs are given.

    An instance gets the first free address in the order the administrator listed them (with
    doDynamicPublicAddresses), and users allocate elastic IPs from the same pool; the CC then adds
    ``ip/32`` to VNET_PUBINTERFACE and the DNAT/SNAT rules between it and the private address.
    """

    def __cinit__(self, addresses) -> None:
        cdef list items = list(addresses)
        cdef Py_ssize_t cap = 8, i, h
        cdef long long k
        self.n = len(items)
        while cap < 2 * self.n:
            cap <<= 1
        self.mask = cap - 1
        self.addrs = <int64_t*>malloc((self.n if self.n else 1) * sizeof(int64_t))
        self.table = <Py_ssize_t*>malloc(cap * sizeof(Py_ssize_t))
        if self.addrs == NULL or self.table == NULL:
            raise MemoryError()
        for i in range(cap):
            self.table[i] = -1
        for i in range(self.n):
            k = as_long(items[i])
            if k < 0 or k > MAX_IPV4:
                raise ValueError(f"VNET_PUBLICIPS: {shown(items[i])} is not an IPv4 address")
            if self._slot(k) >= 0:
                raise ValueError(f"VNET_PUBLICIPS lists {dotted(k)} twice")
            self.addrs[i] = k
            h = _hash(k, self.mask)
            while self.table[h] >= 0:
                h = (h + 1) & self.mask
            self.table[h] = i
        self._init_slots(self.n, "public addresses")

    def __dealloc__(self) -> None:
        free(self.addrs)
        free(self.table)

    cdef str _name(self, object ip):
        return f"public address {dotted(ip)}"

    cdef Py_ssize_t _slot(self, int64_t ip) noexcept:
        cdef Py_ssize_t h = _hash(ip, self.mask), s
        while True:
            s = self.table[h]
            if s < 0 or self.addrs[s] == ip:
                return s
            h = (h + 1) & self.mask

    cdef int64_t _allocate(self) except -1:
        return self.addrs[self._allocate_slot()]

    cdef int _take(self, object ip) except -1:
        return self._take_slot(_listed(self, ip), ip)

    cdef int _release(self, object ip) except -1:
        return self._release_slot(_listed(self, ip), ip)

    def allocate(self) -> int:
        """The first free address in VNET_PUBLICIPS order (an instance's public IP or an elastic IP)."""
        return self._allocate()

    def take(self, ip) -> None:
        """Claim a specific address (an elastic IP the state store records as allocated)."""
        self._take(ip)

    def release(self, ip) -> None:
        """Return the address to the pool (instance ended, or release-address)."""
        self._release(ip)

    def held(self, ip) -> bool:
        return self._held(self._slot(as_long(ip)))

    def in_use(self) -> list[int]:
        """Held addresses, in VNET_PUBLICIPS order."""
        cdef list out = []
        cdef Py_ssize_t s = self._next_held(0)
        while s >= 0:
            out.append(self.addrs[s])
            s = self._next_held(s + 1)
        return out

    @property
    def size(self) -> int:
        return self.n

    def load(self, ips) -> list[tuple[int, str]]:
        """Rebuild from the addresses the state store records: reset, then take each.

        Returns the refused ones with the reason ("duplicate" or "not in pool").
        """
        cdef list items = [(ip, as_long(ip)) for ip in ips]
        cdef list refused = []
        cdef long long k
        cdef Py_ssize_t s
        self._reset()
        for ip, k in items:
            s = self._slot(k)
            if s < 0:
                refused.append((ip, "not in pool"))
            elif not self._claim(s):
                refused.append((ip, "duplicate"))
        return refused

    def __repr__(self) -> str:
        return f"PublicPool(size={self.n}, free={self.nfree})"
