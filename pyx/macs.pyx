# cython: language_level=3
"""MACs: STATIC mode's VNET_MACMAP pairs, and the MAC an instance's interface gets in every mode.

The pairs are a SlotPool whose slot i is the i-th listed pair. The plain-Python twin in
``pyx/twins/netalloc.py`` is the oracle this is tested against.
"""
import re

from pyx.slotpool cimport MAX_IPV4, SlotPool, as_long, dotted, shown

_MAC = re.compile(r"[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5}")
_MAC_PREFIX = re.compile(r"[0-9a-fA-F]{2}:[0-9a-fA-F]{2}")
_INSTANCE_ID = re.compile(r"i-[0-9a-fA-F]{8}")


cdef str _normalise_mac(object mac):
    if not isinstance(mac, str):
        raise TypeError(f"MAC must be a str, got {type(mac).__name__}")
    if _MAC.fullmatch(mac) is None:
        raise ValueError(f"{mac!r} is not a MAC address (aa:bb:cc:dd:ee:ff)")
    return mac.lower()


cdef inline Py_ssize_t _listed(MacPool pool, object mac) except -1:
    """The pair's slot; ValueError for a MAC that VNET_MACMAP does not list."""
    cdef Py_ssize_t s = pool._slot(mac)
    if s < 0:
        raise ValueError(f"MAC {_normalise_mac(mac)} is not in VNET_MACMAP")
    return s


cdef class MacPool(SlotPool):
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
            k = as_long(ip)
            if k < 0 or k > MAX_IPV4:
                raise ValueError(f"VNET_MACMAP: {shown(ip)} is not an IPv4 address")
            if mac in self.index:
                raise ValueError(f"VNET_MACMAP lists MAC {mac} twice")
            if k in ips:
                raise ValueError(f"VNET_MACMAP lists {dotted(k)} twice")
            ips.add(k)
            self.index[mac] = len(self.pairs)
            self.pairs.append((mac, k))
        self._init_slots(len(self.pairs), "addresses")

    cdef str _name(self, object mac):
        return f"MAC {_normalise_mac(mac)}"

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
        cdef Py_ssize_t s = _listed(self, mac)
        self._take_slot(s, mac)
        return s

    cdef int _release(self, object mac) except -1:
        return self._release_slot(_listed(self, mac), mac)

    def allocate(self) -> tuple[str, int]:
        """The first free (mac, ip) pair in VNET_MACMAP order, for a new instance."""
        return self.pairs[self._allocate_slot()]

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
        return s is not None and self._held(<Py_ssize_t>s)

    def in_use(self) -> list[str]:
        """MACs of the held pairs, in VNET_MACMAP order."""
        cdef list out = []
        cdef Py_ssize_t s = self._next_held(0)
        while s >= 0:
            out.append(self.pairs[s][0])
            s = self._next_held(s + 1)
        return out

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
        self._reset()
        for mac in items:
            if _MAC.fullmatch(mac) is None:
                refused.append((mac, "malformed"))
                continue
            s = self._slot(mac)
            if s < 0:
                refused.append((mac, "not in pool"))
            elif not self._claim(s):
                refused.append((mac, "duplicate"))
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
