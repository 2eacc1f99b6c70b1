from libc.stdint cimport int64_t

from pyx.slotpool cimport SlotPool


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
    # nets[v - min_vlan] is network v's pool of host indices (slot index - 2). It stays None, or
    # without slots, until the network's first host is handed out, because most of the 4,000-odd
    # networks are never used.
    cdef list nets
    cdef int _check_vlan(self, object v) except -1
    cdef Py_ssize_t _host_slot(self, long long ip, Py_ssize_t* net) noexcept
    cdef int64_t _allocate_host(self, int64_t v) except -1
    cdef int _take_host(self, object ip) except -1
    cdef int _release_host(self, object ip) except -1
    cdef void _drop_network(self, Py_ssize_t n) noexcept
