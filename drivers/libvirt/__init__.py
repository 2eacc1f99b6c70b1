"""The libvirt back end: KVM, QEMU and Xen nodes (and libvirt's ``test:///`` driver)."""

from drivers.libvirt.domain import DomainLayout, instance_mac
from drivers.libvirt.driver import CONSOLE_LIMIT, LibvirtDriver, nc_state
from drivers.protocol import HYPERVISORS

__all__ = ["CONSOLE_LIMIT", "HYPERVISORS", "DomainLayout", "LibvirtDriver", "instance_mac", "nc_state"]
