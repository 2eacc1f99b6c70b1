"""The libvirt back end: KVM, QEMU and Xen nodes (and libvirt's ``test:///`` driver).

``drivers.libvirt.domain`` (the domain XML) needs nothing beyond the standard library; the driver
itself needs libvirt-python, so it is imported only when asked for: a cloud controller that only
builds or checks domain and disk XML runs without the bindings.
"""

from typing import Any

from drivers.libvirt.domain import DomainLayout, instance_mac
from drivers.protocol import HYPERVISORS

__all__ = ["CONSOLE_LIMIT", "HYPERVISORS", "DomainLayout", "LibvirtDriver", "instance_mac", "nc_state"]


def __getattr__(name: str) -> Any:
    if name in ("CONSOLE_LIMIT", "LibvirtDriver", "nc_state"):
        from drivers.libvirt import driver

        return getattr(driver, name)
    raise AttributeError(f"module 'drivers.libvirt' has no attribute {name!r}")
