from libc.stdint cimport int64_t

from pyx.bitset cimport bitset_t


cdef class VlanPool:
    # Bit (tag - lo) is set while the tag is free, so the lowest free tag is one bs_next away.
    cdef bitset_t free
    cdef readonly int64_t lo
    cdef readonly int64_t hi
    cdef Py_ssize_t nfree
    cdef void _reset(self) noexcept
    cdef int64_t _allocate(self) except -1
    cdef int _take(self, object tag) except -1
    cdef int _release(self, object tag) except -1


cdef class AddressPlan:
    cdef readonly int64_t subnet
    cdef readonly int64_t netmask
    cdef readonly int64_t addrs_per_net
    cdef readonly int64_t min_vlan
    cdef readonly int64_t max_vlan
    # log2(addrs_per_net): an address's network and host index are a shift and a mask away.
    cdef int shift
    # The first address of network min_vlan; networks below it are not part of the plan.
    cdef int64_t first
    cdef Py_ssize_t nnets
    # nets[v - min_vlan] has bit (index - 2) set while host index is free; words stay NULL until the
    # network's first host is handed out, because most of the 4,000-odd networks are never used.
    cdef bitset_t* nets
    cdef int _check_vlan(self, object v) except -1
    cdef Py_ssize_t _host_bit(self, long long ip, Py_ssize_t* net) noexcept
    cdef bitset_t* _net(self, int64_t v) except NULL
    cdef int64_t _allocate_host(self, int64_t v) except -1
    cdef int _take_host(self, object ip) except -1
    cdef int _release_host(self, object ip) except -1


cdef class PublicPool:
    # addrs[slot] in VNET_PUBLICIPS order; bit slot of free is set while that address is free.
    cdef int64_t* addrs
    cdef Py_ssize_t n
    cdef bitset_t free
    cdef Py_ssize_t nfree
    # Open addressing from address to slot (-1 = empty); mask + 1 is a power of two >= 2n.
    cdef Py_ssize_t* table
    cdef Py_ssize_t mask
    cdef Py_ssize_t _slot(self, int64_t ip) noexcept
    cdef int64_t _allocate(self) except -1
    cdef int _take(self, object ip) except -1
    cdef int _release(self, object ip) except -1


cdef class MacPool:
    # pairs[slot] is (mac, ip) in VNET_MACMAP order; index maps a normalised MAC to its slot.
    cdef list pairs
    cdef dict index
    cdef bitset_t free
    cdef Py_ssize_t nfree
    cdef Py_ssize_t _slot(self, object mac) except -2
    cdef int _take(self, object mac) except -1
    cdef int _release(self, object mac) except -1


cdef class GroupNetworks:
    cdef readonly AddressPlan plan
    cdef readonly VlanPool vlans
    cdef readonly str mac_prefix
    # The prefix as it starts every MAC ("d0:0d"), lower case.
    cdef char prefix[5]
    cdef object record
    cdef readonly dict assigned
    # group -> tag; names[tag - min_vlan] and counts[tag - min_vlan] are the way back and its instances.
    cdef dict by_group
    cdef list names
    cdef Py_ssize_t* counts
    cdef str _mac(self, object instance_id)
