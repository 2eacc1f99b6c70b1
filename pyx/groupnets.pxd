from pyx.addrplan cimport AddressPlan
from pyx.vlans cimport VlanPool


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
