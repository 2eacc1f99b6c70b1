# cython: language_level=3
"""Private addresses in MANAGED mode: VNET_SUBNET/VNET_NETMASK cut into a network per VLAN tag.

Each network's host addresses are a SlotPool of their own, made when the network's first host is
handed out. Addresses are Python ints. The plain-Python twin in ``pyx/twins/netalloc.py`` is the
oracle this is tested against.
"""
from libc.stdint cimport int64_t

from pyx.slotpool cimport MAX_IPV4, SlotPool, as_long, dotted, shown
from pyx.vlans cimport check_tag_range

# Eucalyptus 3.x: VNET_ADDRSPERNET is a power of two from 16 to 2048.
cdef int64_t MIN_ADDRS = 16
cdef int64_t MAX_ADDRS = 2048


cdef class _Network(SlotPool):
    """One VLAN's network: host index i (2..A-2) is slot i - 2, held by an instance of its group."""

    cdef str _name(self, object ip):
        return f"private address {dotted(ip)}"


cdef inline SlotPool _net(AddressPlan plan, int64_t v):
    """Network v's pool, given its slots if it has none (its first host is being handed out)."""
    cdef SlotPool net = <SlotPool>plan.nets[v - plan.min_vlan]
    if net is None:
        net = _Network.__new__(_Network)
        plan.nets[v - plan.min_vlan] = net
    if net.free.words == NULL:
        net._init_slots(plan.addrs_per_net - 3, "private addresses")
    return net


cdef class AddressPlan:
    """VNET_SUBNET/VNET_NETMASK cut into one network of VNET_ADDRSPERNET (A) addresses per VLAN.

    Network v (v >= 2) is the block starting at ``subnet + (v - 2) * A``: index 0 is the network
    address, 1 the router (the gateway the CC puts on ``eucabr<v>``), A-1 the broadcast, and the
    instances of the security group get the host indices 2..A-2, lowest free first. When the subnet
    cannot hold a network for every tag, the highest usable VLAN (max_vlan) shrinks to fit.
    """

    def __cinit__(self, subnet, netmask, addrs_per_net,
                  vlan_lo = 2, vlan_hi = 4095) -> None:
        cdef long long s = as_long(subnet), m = as_long(netmask), a = as_long(addrs_per_net)
        cdef long long inverted, size, top, l, h
        if m < 0 or m > MAX_IPV4 or ((~m) & MAX_IPV4) & (((~m) & MAX_IPV4) + 1):
            raise ValueError(f"VNET_NETMASK {dotted(netmask)} is not a contiguous netmask")
        inverted = (~m) & MAX_IPV4
        size = inverted + 1
        if s < 0 or s > MAX_IPV4:
            raise ValueError(f"VNET_SUBNET {dotted(subnet)} is not an IPv4 address")
        if s & inverted:
            raise ValueError(f"VNET_SUBNET {dotted(subnet)} is not aligned to VNET_NETMASK {dotted(m)}")
        if a < MIN_ADDRS or a > MAX_ADDRS or (a & (a - 1)):
            raise ValueError(f"VNET_ADDRSPERNET must be a power of two from 16 to 2048, got {shown(addrs_per_net)}")
        if a > size:
            raise ValueError(f"VNET_ADDRSPERNET {a} is larger than VNET_SUBNET/VNET_NETMASK ({size} addresses)")
        l, h = check_tag_range(vlan_lo, vlan_hi, "vlan_lo", "vlan_hi")
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
        self.nets = [None] * self.nnets

    cdef int _check_vlan(self, object v) except -1:
        cdef long long n = as_long(v)
        if n < self.min_vlan or n > self.max_vlan:
            raise ValueError(f"network {shown(v)} is outside {self.min_vlan}..{self.max_vlan}")
        return 0

    cdef void _drop_network(self, Py_ssize_t n) noexcept:
        cdef SlotPool net = <SlotPool>self.nets[n]
        if net is not None:
            net._drop()

    cdef int64_t _allocate_host(self, int64_t v) except -1:
        cdef Py_ssize_t s = _net(self, v)._allocate_slot()
        return self.first + ((v - self.min_vlan) << self.shift) + s + 2

    cdef Py_ssize_t _host_slot(self, long long ip, Py_ssize_t* net) noexcept:
        # The slot of a host address in its network's pool, or -1 for anything that is not one.
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
        cdef Py_ssize_t s = self._host_slot(as_long(ip), &n)
        if s < 0:
            raise ValueError(
                f"{dotted(ip)} is not a host address of networks {self.min_vlan}..{self.max_vlan}"
            )
        return _net(self, self.min_vlan + n)._take_slot(s, ip)

    cdef int _release_host(self, object ip) except -1:
        cdef Py_ssize_t n = 0
        cdef Py_ssize_t s = self._host_slot(as_long(ip), &n)
        cdef SlotPool net
        if s >= 0:
            net = <SlotPool>self.nets[n]
            if net is not None and net.free.words != NULL:
                return net._release_slot(s, ip)
        # Not a host address, or its network has handed out nothing: held by nobody either way.
        raise ValueError(f"private address {dotted(ip)} is not in use")

    def network(self, v) -> tuple[int, int, int, int]:
        """(network address, netmask of the block, router/gateway, broadcast) of VLAN v's network."""
        cdef int64_t base
        self._check_vlan(v)
        base = self.first + ((as_long(v) - self.min_vlan) << self.shift)
        return (base, MAX_IPV4 & ~(self.addrs_per_net - 1), base + 1, base + self.addrs_per_net - 1)

    def allocate_host(self, v) -> int:
        """The lowest free host address of network v, for a new instance of that security group."""
        cdef long long n = as_long(v)
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
        cdef Py_ssize_t s = self._host_slot(as_long(ip), &n)
        cdef SlotPool net
        if s < 0:
            return False
        net = <SlotPool>self.nets[n]
        return net is not None and net._held(s)

    def network_of(self, ip) -> int:
        """The VLAN whose network the address lies in (any index, router and broadcast included)."""
        cdef long long off = as_long(ip) - self.first
        if off < 0 or off >= (<long long>self.nnets << self.shift):
            raise ValueError(
                f"{dotted(ip)} is outside networks {self.min_vlan}..{self.max_vlan} of VNET_SUBNET"
            )
        return self.min_vlan + (off >> self.shift)

    def hosts_in_use(self, v) -> list[int]:
        """The held host addresses of network v, ascending."""
        cdef list out = []
        cdef SlotPool net
        cdef int64_t base
        cdef Py_ssize_t s
        self._check_vlan(v)
        net = <SlotPool>self.nets[as_long(v) - self.min_vlan]
        if net is None:
            return out
        base = self.first + ((as_long(v) - self.min_vlan) << self.shift) + 2
        s = net._next_held(0)
        while s >= 0:
            out.append(base + s)
            s = net._next_held(s + 1)
        return out

    def release_network(self, v) -> list[int]:
        """Drop every host of network v (its security group's last instance ended); returns them."""
        cdef list freed = self.hosts_in_use(v)
        self._drop_network(as_long(v) - self.min_vlan)
        return freed

    def load(self, ips) -> list[tuple[int, str]]:
        """Rebuild from the private addresses the state store records: reset, then take each.

        Returns the refused ones with the reason ("duplicate" or "not a host address").
        """
        cdef list items = [(ip, as_long(ip)) for ip in ips]
        cdef list refused = []
        cdef long long k
        cdef Py_ssize_t n = 0, s, i
        for i in range(self.nnets):
            self._drop_network(i)
        for ip, k in items:
            s = self._host_slot(k, &n)
            if s < 0:
                refused.append((ip, "not a host address"))
            elif not _net(self, self.min_vlan + n)._claim(s):
                refused.append((ip, "duplicate"))
        return refused

    def __repr__(self) -> str:
        return (f"AddressPlan({dotted(self.subnet)}, {dotted(self.netmask)}, {self.addrs_per_net}, "
                f"vlans {self.min_vlan}..{self.max_vlan})")
