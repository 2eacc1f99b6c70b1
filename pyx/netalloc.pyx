# cython: language_level=3
"""The cluster controller's network allocators: VLAN tags, private addresses, public (elastic) IPs, MACs.

In MANAGED mode every security group (``<user>-<group>``) gets a VLAN tag of its own and, with it, a
block of VNET_ADDRSPERNET private addresses cut from VNET_SUBNET/VNET_NETMASK; instances of the group
take host addresses from that block, and any of them may hold one of the public addresses listed in
VNET_PUBLICIPS. STATIC mode hands out the fixed MAC=IP pairs of VNET_MACMAP instead.

Each pool keeps a bitset of what is *free*, so "the lowest free one" (Eucalyptus's rule everywhere)
is a find-next-set-bit. Addresses and tags are Python ints; every error leaves the pool unchanged.
The plain-Python twin in ``pyx/twins/netalloc.py`` is the oracle these are tested against.
"""
import operator
import re

from cpython.long cimport PyLong_AsLongLongAndOverflow
from cpython.unicode cimport PyUnicode_DecodeASCII
from libc.stdint cimport int64_t, uint64_t
from libc.stdio cimport snprintf
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memset

from pyx.bitset cimport bitset_t, bs_clear, bs_free, bs_init, bs_next, bs_set, bs_test

from pyx.errors import Conflict, Exhausted


cdef extern from *:
    int __builtin_ctzll(unsigned long long) nogil

cdef extern from "Python.h":
    const char* PyUnicode_AsUTF8AndSize(object text, Py_ssize_t* size) except NULL


cdef int64_t MAX_TAG = 4095
cdef int64_t MAX_IPV4 = 0xFFFFFFFF
# Eucalyptus 3.x: VNET_ADDRSPERNET is a power of two from 16 to 2048.
cdef int64_t MIN_ADDRS = 16
cdef int64_t MAX_ADDRS = 2048

_MAC = re.compile(r"[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5}")
_MAC_PREFIX = re.compile(r"[0-9a-fA-F]{2}:[0-9a-fA-F]{2}")
_INSTANCE_ID = re.compile(r"i-[0-9a-fA-F]{8}")


# --- small helpers -------------------------------------------------------------------------------

cdef inline long long _key(object x) except? -1:
    # An int too wide for 64 bits can be no tag or address; -1 is outside every pool, so it is
    # refused by the ordinary range checks with the ordinary message.
    cdef int overflow = 0
    cdef long long v = PyLong_AsLongLongAndOverflow(x, &overflow)
    if overflow:
        return -1
    return v


def _dotted(x) -> str:
    value = operator.index(x)
    if 0 <= value <= 0xFFFFFFFF:
        return f"{value >> 24}.{(value >> 16) & 255}.{(value >> 8) & 255}.{value & 255}"
    return str(value)


def _shown(x) -> str:
    return str(operator.index(x))


def _normalise_mac(mac) -> str:
    if not isinstance(mac, str):
        raise TypeError(f"MAC must be a str, got {type(mac).__name__}")
    if _MAC.fullmatch(mac) is None:
        raise ValueError(f"{mac!r} is not a MAC address (aa:bb:cc:dd:ee:ff)")
    return mac.lower()


cdef void _fill(bitset_t* b) noexcept nogil:
    """Mark all nbits bits set (everything free), word by word."""
    cdef Py_ssize_t w, full = b.nbits >> 6, rem = b.nbits & 63
    for w in range(b.nwords):
        b.words[w] = 0
    for w in range(b.nsummary):
        b.summary[w] = 0
    for w in range(full):
        b.words[w] = ~(<uint64_t>0)
    if rem:
        b.words[full] = ((<uint64_t>1) << rem) - 1
    for w in range(b.nwords):
        if b.words[w]:
            b.summary[w >> 6] |= (<uint64_t>1) << (w & 63)


cdef Py_ssize_t _next_clear(const bitset_t* b, Py_ssize_t i) noexcept nogil:
    """The first clear bit (a held resource) at or after i and below nbits, or -1.

    Held resources are only listed, never searched for in a hot loop, so a plain word scan will do.
    """
    cdef Py_ssize_t w
    cdef uint64_t x
    if i < 0:
        i = 0
    if i >= b.nbits:
        return -1
    w = i >> 6
    x = ~b.words[w] & ((~(<uint64_t>0)) << (i & 63))
    while True:
        if x:
            i = (w << 6) + __builtin_ctzll(x)
            return i if i < b.nbits else -1
        w += 1
        if w >= b.nwords:
            return -1
        x = ~b.words[w]


cdef int _new_full(bitset_t* b, Py_ssize_t nbits) except -1:
    if bs_init(b, nbits) != 0:
        bs_free(b)
        raise MemoryError()
    _fill(b)
    return 0


def _check_tag_range(lo, hi, lo_name: str, hi_name: str) -> tuple[int, int]:
    cdef long long l = _key(lo), h = _key(hi)
    if l < 1 or l > MAX_TAG:
        raise ValueError(f"{lo_name} must be within 1..4095, got {_shown(lo)}")
    if h < l or h > MAX_TAG:
        raise ValueError(f"{hi_name} must be within {l}..4095, got {_shown(hi)}")
    return l, h


# --- VLAN tags -----------------------------------------------------------------------------------

cdef class VlanPool:
    """The VLAN tags a cluster may give security groups: one tag per ``<user>-<group>`` network.

    Eucalyptus hands out the lowest free tag (2.0: within the cluster's [minVlan, maxVlan], 10..4095
    by default) and frees it when no instance of the group is left. The CC then runs
    ``vconfig add <if> <tag>`` and bridges ``<if>.<tag>`` onto ``eucabr<tag>``.
    """

    def __cinit__(self, lo, hi) -> None:
        self.lo, self.hi = _check_tag_range(lo, hi, "lo", "hi")
        _new_full(&self.free, self.hi - self.lo + 1)
        self.nfree = self.hi - self.lo + 1

    def __dealloc__(self) -> None:
        bs_free(&self.free)

    cdef void _reset(self) noexcept:
        _fill(&self.free)
        self.nfree = self.free.nbits

    cdef int64_t _allocate(self) except -1:
        cdef Py_ssize_t i = bs_next(&self.free, 0)
        if i < 0:
            raise Exhausted("vlan tags")
        bs_clear(&self.free, i)
        self.nfree -= 1
        return self.lo + i

    cdef int _take(self, object tag) except -1:
        cdef long long t = _key(tag)
        if t < self.lo or t > self.hi:
            raise ValueError(f"vlan tag {_shown(tag)} is outside {self.lo}..{self.hi}")
        if not bs_test(&self.free, t - self.lo):
            raise Conflict(f"vlan tag {_shown(tag)} is already in use")
        bs_clear(&self.free, t - self.lo)
        self.nfree -= 1
        return 0

    cdef int _release(self, object tag) except -1:
        cdef long long t = _key(tag)
        if t < self.lo or t > self.hi:
            raise ValueError(f"vlan tag {_shown(tag)} is outside {self.lo}..{self.hi}")
        if bs_test(&self.free, t - self.lo):
            raise ValueError(f"vlan tag {_shown(tag)} is not in use")
        bs_set(&self.free, t - self.lo)
        self.nfree += 1
        return 0

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
        cdef long long t = _key(tag)
        if t < self.lo or t > self.hi:
            return False
        return not bs_test(&self.free, t - self.lo)

    def in_use(self) -> list[int]:
        """Held tags, ascending."""
        cdef list out = []
        cdef Py_ssize_t i = _next_clear(&self.free, 0)
        while i >= 0:
            out.append(self.lo + i)
            i = _next_clear(&self.free, i + 1)
        return out

    @property
    def free_count(self) -> int:
        return self.nfree

    def load(self, tags) -> list[tuple[int, str]]:
        """Rebuild from the tags the state store records after a restart: reset, then take each.

        Returns the refused ones with the reason ("duplicate" or "out of range") and keeps the rest.
        """
        cdef list items = [(tag, _key(tag)) for tag in tags]
        cdef list refused = []
        cdef long long t
        self._reset()
        for tag, t in items:
            if t < self.lo or t > self.hi:
                refused.append((tag, "out of range"))
            elif not bs_test(&self.free, t - self.lo):
                refused.append((tag, "duplicate"))
            else:
                bs_clear(&self.free, t - self.lo)
                self.nfree -= 1
        return refused

    def __repr__(self) -> str:
        return f"VlanPool({self.lo}, {self.hi}, free={self.nfree})"


# --- private addresses ---------------------------------------------------------------------------

cdef class AddressPlan:
    """VNET_SUBNET/VNET_NETMASK cut into one network of VNET_ADDRSPERNET (A) addresses per VLAN.

    Network v (v >= 2) is the block starting at ``subnet + (v - 2) * A``: index 0 is the network
    address, 1 the router (the gateway the CC puts on ``eucabr<v>``), A-1 the broadcast, and the
    instances of the security group get the host indices 2..A-2, lowest free first. When the subnet
    cannot hold a network for every tag, the highest usable VLAN (max_vlan) shrinks to fit.
    """

    def __cinit__(self, subnet, netmask, addrs_per_net,
                  vlan_lo = 2, vlan_hi = 4095) -> None:
        cdef long long s = _key(subnet), m = _key(netmask), a = _key(addrs_per_net)
        cdef long long inverted, size, top, l, h
        cdef Py_ssize_t i
        if m < 0 or m > MAX_IPV4 or ((~m) & MAX_IPV4) & (((~m) & MAX_IPV4) + 1):
            raise ValueError(f"VNET_NETMASK {_dotted(netmask)} is not a contiguous netmask")
        inverted = (~m) & MAX_IPV4
        size = inverted + 1
        if s < 0 or s > MAX_IPV4:
            raise ValueError(f"VNET_SUBNET {_dotted(subnet)} is not an IPv4 address")
        if s & inverted:
            raise ValueError(f"VNET_SUBNET {_dotted(subnet)} is not aligned to VNET_NETMASK {_dotted(m)}")
        if a < MIN_ADDRS or a > MAX_ADDRS or (a & (a - 1)):
            raise ValueError(f"VNET_ADDRSPERNET must be a power of two from 16 to 2048, got {_shown(addrs_per_net)}")
        if a > size:
            raise ValueError(f"VNET_ADDRSPERNET {a} is larger than VNET_SUBNET/VNET_NETMASK ({size} addresses)")
        l, h = _check_tag_range(vlan_lo, vlan_hi, "vlan_lo", "vlan_hi")
        top = 2 + size // a - 1
        self.min_vlan = l if l > 2 else 2
        self.max_vlan = h if h < top else top
        if self.min_vlan > self.max_vlan:
            raise ValueError(
                f"VNET_SUBNET/VNET_NETMASK hold networks 2..{top} only, none within vlan_lo..vlan_hi ({l}..{h})"
            )
        self.subnet = s
        self.netmask = m
        self.addrs_per_net = a
        self.shift = 0
        while (<int64_t>1 << self.shift) < a:
            self.shift += 1
        self.first = s + ((self.min_vlan - 2) << self.shift)
        self.nnets = self.max_vlan - self.min_vlan + 1
        self.nets = <bitset_t*>malloc(self.nnets * sizeof(bitset_t))
        if self.nets == NULL:
            raise MemoryError()
        for i in range(self.nnets):
            self.nets[i].words = NULL
            self.nets[i].summary = NULL
            self.nets[i].nbits = 0

    def __dealloc__(self) -> None:
        cdef Py_ssize_t i
        if self.nets != NULL:
            for i in range(self.nnets):
                bs_free(&self.nets[i])
            free(self.nets)

    cdef int _check_vlan(self, object v) except -1:
        cdef long long n = _key(v)
        if n < self.min_vlan or n > self.max_vlan:
            raise ValueError(f"network {_shown(v)} is outside {self.min_vlan}..{self.max_vlan}")
        return 0

    cdef bitset_t* _net(self, int64_t v) except NULL:
        cdef bitset_t* b = &self.nets[v - self.min_vlan]
        if b.words == NULL:
            _new_full(b, self.addrs_per_net - 3)
        return b

    cdef int64_t _allocate_host(self, int64_t v) except -1:
        cdef bitset_t* b = self._net(v)
        cdef Py_ssize_t i = bs_next(b, 0)
        if i < 0:
            raise Exhausted("private addresses")
        bs_clear(b, i)
        return self.first + ((v - self.min_vlan) << self.shift) + i + 2

    cdef Py_ssize_t _host_bit(self, long long ip, Py_ssize_t* net) noexcept:
        # The bit of a host address in its network's bitset, or -1 for anything that is not one.
        cdef long long off = ip - self.first, idx
        if off < 0 or off >= (<long long>self.nnets << self.shift):
            return -1
        idx = off & (self.addrs_per_net - 1)
        if idx < 2 or idx > self.addrs_per_net - 2:
            return -1
        net[0] = off >> self.shift
        return idx - 2

    cdef int _take_host(self, object ip) except -1:
        cdef Py_ssize_t n = 0
        cdef Py_ssize_t bit = self._host_bit(_key(ip), &n)
        cdef bitset_t* b
        if bit < 0:
            raise ValueError(
                f"{_dotted(ip)} is not a host address of networks {self.min_vlan}..{self.max_vlan}"
            )
        b = self._net(self.min_vlan + n)
        if not bs_test(b, bit):
            raise Conflict(f"private address {_dotted(ip)} is already in use")
        bs_clear(b, bit)
        return 0

    cdef int _release_host(self, object ip) except -1:
        cdef Py_ssize_t n = 0
        cdef Py_ssize_t bit = self._host_bit(_key(ip), &n)
        cdef bitset_t* b
        if bit < 0 or self.nets[n].words == NULL or bs_test(&self.nets[n], bit):
            raise ValueError(f"private address {_dotted(ip)} is not in use")
        bs_set(&self.nets[n], bit)
        return 0

    def network(self, v) -> tuple[int, int, int, int]:
        """(network address, netmask of the block, router/gateway, broadcast) of VLAN v's network."""
        cdef int64_t base
        self._check_vlan(v)
        base = self.first + ((_key(v) - self.min_vlan) << self.shift)
        return (base, MAX_IPV4 & ~(self.addrs_per_net - 1), base + 1, base + self.addrs_per_net - 1)

    def allocate_host(self, v) -> int:
        """The lowest free host address of network v, for a new instance of that security group."""
        cdef long long n = _key(v)
        if n < self.min_vlan or n > self.max_vlan:
            self._check_vlan(v)
        return self._allocate_host(n)

    def take_host(self, ip) -> None:
        """Claim a specific host address (one the state store already records for an instance)."""
        self._take_host(ip)

    def release_host(self, ip) -> None:
        """Give an instance's private address back to its network."""
        self._release_host(ip)

    def held(self, ip) -> bool:
        cdef Py_ssize_t n = 0
        cdef Py_ssize_t bit = self._host_bit(_key(ip), &n)
        if bit < 0 or self.nets[n].words == NULL:
            return False
        return not bs_test(&self.nets[n], bit)

    def network_of(self, ip) -> int:
        """The VLAN whose network the address lies in (any index, router and broadcast included)."""
        cdef long long off = _key(ip) - self.first
        if off < 0 or off >= (<long long>self.nnets << self.shift):
            raise ValueError(
                f"{_dotted(ip)} is outside networks {self.min_vlan}..{self.max_vlan} of VNET_SUBNET"
            )
        return self.min_vlan + (off >> self.shift)

    def hosts_in_use(self, v) -> list[int]:
        """The held host addresses of network v, ascending."""
        cdef list out = []
        cdef bitset_t* b
        cdef int64_t base
        cdef Py_ssize_t i
        self._check_vlan(v)
        b = &self.nets[_key(v) - self.min_vlan]
        if b.words == NULL:
            return out
        base = self.first + ((_key(v) - self.min_vlan) << self.shift) + 2
        i = _next_clear(b, 0)
        while i >= 0:
            out.append(base + i)
            i = _next_clear(b, i + 1)
        return out

    def release_network(self, v) -> list[int]:
        """Drop every host of network v (its security group's last instance ended); returns them."""
        cdef list freed = self.hosts_in_use(v)
        bs_free(&self.nets[_key(v) - self.min_vlan])
        return freed

    def load(self, ips) -> list[tuple[int, str]]:
        """Rebuild from the private addresses the state store records: reset, then take each.

        Returns the refused ones with the reason ("duplicate" or "not a host address").
        """
        cdef list items = [(ip, _key(ip)) for ip in ips]
        cdef list refused = []
        cdef long long k
        cdef Py_ssize_t n = 0, bit, i
        cdef bitset_t* b
        for i in range(self.nnets):
            bs_free(&self.nets[i])
        for ip, k in items:
            bit = self._host_bit(k, &n)
            if bit < 0:
                refused.append((ip, "not a host address"))
                continue
            b = self._net(self.min_vlan + n)
            if not bs_test(b, bit):
                refused.append((ip, "duplicate"))
            else:
                bs_clear(b, bit)
        return refused

    def __repr__(self) -> str:
        return (f"AddressPlan({_dotted(self.subnet)}, {_dotted(self.netmask)}, {self.addrs_per_net}, "
                f"vlans {self.min_vlan}..{self.max_vlan})")


# --- public addresses ----------------------------------------------------------------------------

cdef inline Py_ssize_t _hash(int64_t ip, Py_ssize_t mask) noexcept nogil:
    # Fibonacci hashing: consecutive addresses (the usual "a-b" range) land far apart.
    return <Py_ssize_t>(((<uint64_t>ip) * <uint64_t>0x9E3779B97F4A7C15) >> 32) & mask


cdef class PublicPool:
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
            k = _key(items[i])
            if k < 0 or k > MAX_IPV4:
                raise ValueError(f"VNET_PUBLICIPS: {_shown(items[i])} is not an IPv4 address")
            if self._slot(k) >= 0:
                raise ValueError(f"VNET_PUBLICIPS lists {_dotted(k)} twice")
            self.addrs[i] = k
            h = _hash(k, self.mask)
            while self.table[h] >= 0:
                h = (h + 1) & self.mask
            self.table[h] = i
        _new_full(&self.free, self.n)
        self.nfree = self.n

    def __dealloc__(self) -> None:
        free(self.addrs)
        free(self.table)
        bs_free(&self.free)

    cdef Py_ssize_t _slot(self, int64_t ip) noexcept:
        cdef Py_ssize_t h = _hash(ip, self.mask), s
        while True:
            s = self.table[h]
            if s < 0 or self.addrs[s] == ip:
                return s
            h = (h + 1) & self.mask

    cdef int64_t _allocate(self) except -1:
        cdef Py_ssize_t i = bs_next(&self.free, 0)
        if i < 0:
            raise Exhausted("public addresses")
        bs_clear(&self.free, i)
        self.nfree -= 1
        return self.addrs[i]

    cdef int _take(self, object ip) except -1:
        cdef Py_ssize_t s = self._slot(_key(ip))
        if s < 0:
            raise ValueError(f"{_dotted(ip)} is not in VNET_PUBLICIPS")
        if not bs_test(&self.free, s):
            raise Conflict(f"public address {_dotted(ip)} is already in use")
        bs_clear(&self.free, s)
        self.nfree -= 1
        return 0

    cdef int _release(self, object ip) except -1:
        cdef Py_ssize_t s = self._slot(_key(ip))
        if s < 0:
            raise ValueError(f"{_dotted(ip)} is not in VNET_PUBLICIPS")
        if bs_test(&self.free, s):
            raise ValueError(f"public address {_dotted(ip)} is not in use")
        bs_set(&self.free, s)
        self.nfree += 1
        return 0

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
        cdef Py_ssize_t s = self._slot(_key(ip))
        return s >= 0 and not bs_test(&self.free, s)

    def in_use(self) -> list[int]:
        """Held addresses, in VNET_PUBLICIPS order."""
        cdef list out = []
        cdef Py_ssize_t i = _next_clear(&self.free, 0)
        while i >= 0:
            out.append(self.addrs[i])
            i = _next_clear(&self.free, i + 1)
        return out

    @property
    def free_count(self) -> int:
        return self.nfree

    @property
    def size(self) -> int:
        return self.n

    def load(self, ips) -> list[tuple[int, str]]:
        """Rebuild from the addresses the state store records: reset, then take each.

        Returns the refused ones with the reason ("duplicate" or "not in pool").
        """
        cdef list items = [(ip, _key(ip)) for ip in ips]
        cdef list refused = []
        cdef long long k
        cdef Py_ssize_t s
        _fill(&self.free)
        self.nfree = self.n
        for ip, k in items:
            s = self._slot(k)
            if s < 0:
                refused.append((ip, "not in pool"))
            elif not bs_test(&self.free, s):
                refused.append((ip, "duplicate"))
            else:
                bs_clear(&self.free, s)
                self.nfree -= 1
        return refused

    def __repr__(self) -> str:
        return f"PublicPool(size={self.n}, free={self.nfree})"


# --- STATIC mode's MAC=IP pairs ------------------------------------------------------------------

cdef class MacPool:
    """STATIC mode's VNET_MACMAP: fixed MAC=IP pairs handed to instances first come, first served.

    The instance gets the first free pair in the order listed; its private (and public) address is
    the pair's IP, which the CC's DHCP server gives to that MAC.
    """

    def __cinit__(self, pairs) -> None:
        cdef list items = list(pairs)
        cdef set ips = set()
        cdef long long k
        self.pairs = []
        self.index = {}
        for mac, ip in items:
            if not isinstance(mac, str):
                raise TypeError(f"MAC must be a str, got {type(mac).__name__}")
            if _MAC.fullmatch(mac) is None:
                raise ValueError(f"VNET_MACMAP: {mac!r} is not a MAC address (aa:bb:cc:dd:ee:ff)")
            mac = mac.lower()
            k = _key(ip)
            if k < 0 or k > MAX_IPV4:
                raise ValueError(f"VNET_MACMAP: {_shown(ip)} is not an IPv4 address")
            if mac in self.index:
                raise ValueError(f"VNET_MACMAP lists MAC {mac} twice")
            if k in ips:
                raise ValueError(f"VNET_MACMAP lists {_dotted(k)} twice")
            ips.add(k)
            self.index[mac] = len(self.pairs)
            self.pairs.append((mac, k))
        _new_full(&self.free, len(self.pairs))
        self.nfree = len(self.pairs)

    def __dealloc__(self) -> None:
        bs_free(&self.free)

    cdef Py_ssize_t _slot(self, object mac) except -2:
        # Callers mostly pass the MAC back as allocate() gave it, already normalised: try that first.
        if not isinstance(mac, str):
            raise TypeError(f"MAC must be a str, got {type(mac).__name__}")
        s = self.index.get(mac)
        if s is None:
            s = self.index.get(_normalise_mac(mac))
            if s is None:
                return -1
        return s

    cdef int _take(self, object mac) except -1:
        cdef Py_ssize_t s = self._slot(mac)
        if s < 0:
            raise ValueError(f"MAC {_normalise_mac(mac)} is not in VNET_MACMAP")
        if not bs_test(&self.free, s):
            raise Conflict(f"MAC {_normalise_mac(mac)} is already in use")
        bs_clear(&self.free, s)
        self.nfree -= 1
        return s

    cdef int _release(self, object mac) except -1:
        cdef Py_ssize_t s = self._slot(mac)
        if s < 0:
            raise ValueError(f"MAC {_normalise_mac(mac)} is not in VNET_MACMAP")
        if bs_test(&self.free, s):
            raise ValueError(f"MAC {_normalise_mac(mac)} is not in use")
        bs_set(&self.free, s)
        self.nfree += 1
        return 0

    def allocate(self) -> tuple[str, int]:
        """The first free (mac, ip) pair in VNET_MACMAP order, for a new instance."""
        cdef Py_ssize_t i = bs_next(&self.free, 0)
        if i < 0:
            raise Exhausted("addresses")
        bs_clear(&self.free, i)
        self.nfree -= 1
        return self.pairs[i]

    def take(self, mac) -> int:
        """Claim a specific pair by its MAC (an instance the state store records); returns its IP."""
        return self.pairs[self._take(mac)][1]

    def release(self, mac) -> None:
        """Free the pair once its instance has ended."""
        self._release(mac)

    def held(self, mac) -> bool:
        if not isinstance(mac, str):
            raise TypeError(f"MAC must be a str, got {type(mac).__name__}")
        if _MAC.fullmatch(mac) is None:
            return False
        s = self.index.get(mac.lower())
        return s is not None and not bs_test(&self.free, <Py_ssize_t>s)

    def in_use(self) -> list[str]:
        """MACs of the held pairs, in VNET_MACMAP order."""
        cdef list out = []
        cdef Py_ssize_t i = _next_clear(&self.free, 0)
        while i >= 0:
            out.append(self.pairs[i][0])
            i = _next_clear(&self.free, i + 1)
        return out

    @property
    def free_count(self) -> int:
        return self.nfree

    @property
    def size(self) -> int:
        return len(self.pairs)

    def load(self, macs) -> list[tuple[str, str]]:
        """Rebuild from the MACs the state store records: reset, then take each.

        Returns the refused ones with the reason ("malformed", "not in pool" or "duplicate").
        """
        cdef list items = list(macs)
        cdef list refused = []
        cdef Py_ssize_t s
        for mac in items:
            if not isinstance(mac, str):
                raise TypeError(f"MAC must be a str, got {type(mac).__name__}")
        _fill(&self.free)
        self.nfree = len(self.pairs)
        for mac in items:
            if _MAC.fullmatch(mac) is None:
                refused.append((mac, "malformed"))
                continue
            s = self._slot(mac)
            if s < 0:
                refused.append((mac, "not in pool"))
            elif not bs_test(&self.free, s):
                refused.append((mac, "duplicate"))
            else:
                bs_clear(&self.free, s)
                self.nfree -= 1
        return refused

    def __repr__(self) -> str:
        return f"MacPool(size={len(self.pairs)}, free={self.nfree})"


def mac_for_instance(instance_id, prefix="d0:0d") -> str:
    """The MAC an instance's interface gets: VNET_MACPREFIX then the id's 8 hex digits in pairs.

    Eucalyptus's ``instId2mac``: ``i-3A4B5C6D`` -> ``d0:0d:3a:4b:5c:6d`` (lower case here, so it
    compares equal to the MACs libvirt reports back).
    """
    if not isinstance(instance_id, str):
        raise TypeError(f"instance id must be a str, got {type(instance_id).__name__}")
    if not isinstance(prefix, str):
        raise TypeError(f"VNET_MACPREFIX must be a str, got {type(prefix).__name__}")
    if _INSTANCE_ID.fullmatch(instance_id) is None:
        raise ValueError(f"{instance_id!r} is not an instance id (i- and 8 hex digits)")
    if _MAC_PREFIX.fullmatch(prefix) is None:
        raise ValueError(f"VNET_MACPREFIX {prefix!r} is not two hex octets (d0:0d)")
    digits = instance_id[2:].lower()
    return f"{prefix.lower()}:{digits[0:2]}:{digits[2:4]}:{digits[4:6]}:{digits[6:8]}"


# --- MANAGED mode's security-group networks ------------------------------------------------------

cdef inline int _hex_lower(char c) noexcept nogil:
    # The lower-case hex digit c stands for, or 0 for anything that is not a hex digit.
    if b'0' <= c <= b'9' or b'a' <= c <= b'f':
        return c
    if b'A' <= c <= b'F':
        return c + 32
    return 0


cdef str _ip_text(int64_t v):
    cdef char buf[16]
    cdef int n = snprintf(buf, 16, "%d.%d.%d.%d", <int>((v >> 24) & 255), <int>((v >> 16) & 255),
                          <int>((v >> 8) & 255), <int>(v & 255))
    return PyUnicode_DecodeASCII(buf, n, NULL)


cdef int64_t _parse_ip(object text) except -1:
    # The dotted quad as euca.ipnotation writes it (decimal octets, no leading zeros), else ValueError.
    cdef const char* s
    cdef Py_ssize_t n = 0, i = 0, digits
    cdef int64_t value = 0, octet
    cdef int part
    if isinstance(text, str):
        s = PyUnicode_AsUTF8AndSize(text, &n)
        for part in range(4):
            if part:
                if i >= n or s[i] != b'.':
                    break
                i += 1
            octet = 0
            digits = 0
            while i < n and b'0' <= s[i] <= b'9' and digits < 4:
                octet = octet * 10 + (s[i] - 48)
                i += 1
                digits += 1
            if digits == 0 or digits > 3 or octet > 255 or (digits > 1 and s[i - digits] == b'0'):
                break
            value = (value << 8) | octet
        else:
            if i == n:
                return value
    raise ValueError(f"{text!r} is not an IPv4 address")


cdef class GroupNetworks:
    """MANAGED mode's per-group bookkeeping: each security group (``<account>-<group>``) that has
    instances holds a VLAN tag and the network that goes with it, and its instances hold host
    addresses of that network.

    The group's first instance takes the lowest free tag; its last one gives tag and network back
    (the CC then removes ``eucabr<tag>``). ``attach`` also names the instance's MAC (VNET_MACPREFIX
    and the instance id, Eucalyptus's ``instId2mac``), so that a start is one call, and ``release``
    takes the instance id alone, so that an end is one too. ``assigned`` is the table of running
    instances' assignments (instance id -> (instance_id, mac, private_ip, vlan, group)); the CC
    reads it rather than keeping one of its own. Its values are plain tuples, which the collector
    stops tracking, whatever ``record`` the starts are handed back as.
    """

    def __cinit__(self, subnet, netmask, addrs_per_net, vlan_lo=2, vlan_hi=4095, mac_prefix="d0:0d",
                  record=None) -> None:
        cdef str prefix = mac_for_instance("i-00000000", mac_prefix)[:5]
        cdef bytes raw = prefix.encode("ascii")
        cdef Py_ssize_t i
        self.plan = AddressPlan(subnet, netmask, addrs_per_net, vlan_lo, vlan_hi)
        self.vlans = VlanPool(self.plan.min_vlan, self.plan.max_vlan)
        self.mac_prefix = mac_prefix
        for i in range(5):
            self.prefix[i] = raw[i]
        self.record = record
        self.by_group = {}
        self.assigned = {}
        self.names = [None] * self.plan.nnets
        self.counts = <Py_ssize_t*>calloc(self.plan.nnets, sizeof(Py_ssize_t))
        if self.counts == NULL:
            raise MemoryError()

    def __dealloc__(self) -> None:
        free(self.counts)

    cdef str _mac(self, object instance_id):
        cdef const char* s
        cdef Py_ssize_t n = 0, k
        cdef char buf[17]
        cdef int c
        if type(instance_id) is str:
            s = PyUnicode_AsUTF8AndSize(instance_id, &n)
            if n == 10 and s[0] == b'i' and s[1] == b'-':
                memset(buf, b':', 17)
                for k in range(5):
                    buf[k] = self.prefix[k]
                for k in range(8):
                    c = _hex_lower(s[2 + k])
                    if c == 0:
                        break
                    buf[6 + 3 * (k >> 1) + (k & 1)] = <char>c
                else:
                    return PyUnicode_DecodeASCII(buf, 17, NULL)
        return mac_for_instance(instance_id, self.mac_prefix)  # raises, naming the bad id

    def attach(self, instance_id, group):
        """A starting instance of ``group``: its (instance_id, mac, private_ip, vlan, group), built
        with ``record`` when one was given. The group takes a tag and network if it had none."""
        cdef dict assigned = self.assigned
        cdef object held
        cdef int64_t v, ip
        cdef str mac
        cdef tuple out
        if instance_id in assigned:
            raise Conflict(f"{instance_id} already has a network assignment")
        held = self.by_group.get(group)
        mac = self._mac(instance_id)
        if held is None:
            v = self.vlans._allocate()
            try:
                ip = self.plan._allocate_host(v)
            except BaseException:
                self.vlans._release(v)
                raise
            self.by_group[group] = v
            self.names[v - self.plan.min_vlan] = group
        else:
            v = held
            ip = self.plan._allocate_host(v)
        self.counts[v - self.plan.min_vlan] += 1
        out = (instance_id, mac, _ip_text(ip), v, group)
        assigned[instance_id] = out
        if self.record is None:
            return out
        return tuple.__new__(self.record, out)

    def release(self, instance_id):
        """An instance ended: its address is free again, and its group's tag and network too if it
        was the last member. Returns the assignment it had, or None when it had none."""
        cdef tuple out = self.assigned.pop(instance_id, None)
        cdef int64_t v
        cdef Py_ssize_t n
        if out is None:
            return None
        v = out[3]
        self.plan._release_host(_parse_ip(out[2]))
        n = v - self.plan.min_vlan
        self.counts[n] -= 1
        if self.counts[n] == 0:
            bs_free(&self.plan.nets[n])
            self.vlans._release(v)
            del self.by_group[out[4]]
            self.names[n] = None
        return out

    def take(self, instance_id, mac, ip, vlan, group) -> None:
        """Claim an instance's address and its group's tag as the state store records them (after a
        restart); ``assigned`` then holds the record with the address written canonically."""
        cdef object held
        cdef int64_t v
        if instance_id in self.assigned:
            raise Conflict(f"{instance_id} already has a network assignment")
        held = self.by_group.get(group)
        if held is not None and held != vlan:
            raise Conflict(f"group {group} is on VLAN {held}, not {vlan}")
        if self.plan.network_of(ip) != vlan:
            raise Conflict(f"{_dotted(ip)} is not in network {vlan}")
        if held is None:
            self.vlans._take(vlan)
        try:
            self.plan._take_host(ip)
        except BaseException:
            if held is None:
                self.vlans._release(vlan)
            raise
        v = _key(vlan)
        self.by_group[group] = v
        self.names[v - self.plan.min_vlan] = group
        self.counts[v - self.plan.min_vlan] += 1
        self.assigned[instance_id] = (instance_id, mac, _ip_text(_key(ip)), v, group)

    def reset(self) -> None:
        """Nothing held: every tag and address free."""
        cdef Py_ssize_t i
        self.plan.load([])
        self.vlans._reset()
        self.by_group.clear()
        self.assigned.clear()
        for i in range(self.plan.nnets):
            self.names[i] = None
            self.counts[i] = 0

    def vlan_of(self, group):
        """The group's tag, or None while it has no instances."""
        return self.by_group.get(group)

    def members(self, group) -> int:
        held = self.by_group.get(group)
        return 0 if held is None else self.counts[<int64_t>held - self.plan.min_vlan]

    def groups(self) -> list[tuple[str, int, int]]:
        """(group, tag, instances) of every group that has a network, by tag."""
        cdef list out = []
        cdef Py_ssize_t i
        for i in range(self.plan.nnets):
            if self.counts[i]:
                out.append((self.names[i], self.plan.min_vlan + i, self.counts[i]))
        return out

    def __repr__(self) -> str:
        return f"GroupNetworks({len(self.by_group)} groups, {self.plan!r})"
