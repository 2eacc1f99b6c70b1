"""The cluster controller's network allocators, one Cython module each; this module hands them on.

In MANAGED mode every security group (``<user>-<group>``) gets a VLAN tag of its own
(``pyx.vlans``) and, with it, a block of VNET_ADDRSPERNET private addresses cut from
VNET_SUBNET/VNET_NETMASK (``pyx.addrplan``); ``pyx.groupnets`` keeps the two together per group.
Any instance may hold one of the public addresses listed in VNET_PUBLICIPS (``pyx.publicips``).
STATIC mode hands out the fixed MAC=IP pairs of VNET_MACMAP instead (``pyx.macs``).

Every pool is built on ``pyx.slotpool.SlotPool`` (an AddressPlan keeps one per network in use): a
bitset of what is *free*, so that "the lowest free one", Eucalyptus's rule everywhere, is a
find-next-set-bit.
The plain-Python twin in ``pyx/twins/netalloc.py`` mirrors this module's names.
"""

from pyx.addrplan import AddressPlan
from pyx.groupnets import GroupNetworks
from pyx.macs import MacPool, mac_for_instance
from pyx.publicips import PublicPool
from pyx.vlans import VlanPool

__all__ = ["AddressPlan", "GroupNetworks", "MacPool", "PublicPool", "VlanPool", "mac_for_instance"]
