# cython: language_level=3
"""MANAGED mode's security-group networks: a VLAN tag and its network per group, hosts per instance.

GroupNetworks puts a VlanPool and an AddressPlan together, so that an instance's start and end are
one call each. The plain-Python twin in ``pyx/twins/netalloc.py`` is the oracle this is tested
against.
"""
from cpython.unicode cimport PyUnicode_DecodeASCII
from libc.stdint cimport int64_t
from libc.stdio cimport snprintf
from libc.stdlib cimport calloc, free
from libc.string cimport memset

from pyx.addrplan cimport AddressPlan
from pyx.slotpool cimport as_long, dotted
from pyx.vlans cimport VlanPool

from pyx.errors import Conflict
from pyx.macs import mac_for_instance


cdef extern from "Python.h":
    const char* PyUnicode_AsUTF8AndSize(object text, Py_ssize_t* size) except NULL


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
            self.plan._drop_network(n)
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
            raise Conflict(f"{dotted(ip)} is not in network {vlan}")
        if held is None:
            self.vlans._take(vlan)
        try:
            self.plan._take_host(ip)
        except BaseException:
            if held is None:
                self.vlans._release(vlan)
            raise
        v = as_long(vlan)
        self.by_group[group] = v
        self.names[v - self.plan.min_vlan] = group
        self.counts[v - self.plan.min_vlan] += 1
        self.assigned[instance_id] = (instance_id, mac, _ip_text(as_long(ip)), v, group)

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
