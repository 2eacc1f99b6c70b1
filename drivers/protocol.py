"""The one small contract between the cluster controller and a node: what every driver implements.

A driver is a node controller's hypervisor side: libvirt for KVM and Xen hosts, or an in-memory
simulated node. The cluster controller and the simulator use nothing but these calls.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Protocol, runtime_checkable

# A clock: seconds now. The cloud passes ``euca.core.clock.wall``, the simulator SimPy's clock.
Clock = Callable[[], float]

# The hypervisors a node controller drives (eucalyptus.conf's HYPERVISOR).
HYPERVISORS = ("kvm", "xen", "qemu")

# Seconds a node keeps reporting an instance in Teardown before it forgets it (Eucalyptus 2.0: 180).
TEARDOWN_FORGET = 180.0


class NcState(enum.Enum):
    """An instance's state as the node controller reports it (Eucalyptus 2.0 ``util/eucalyptus.h``)."""

    STAGING = "Staging"
    BOOTING = "Booting"
    CANCELED = "Canceled"
    RUNNING = "Running"
    BLOCKED = "Blocked"
    PAUSED = "Paused"
    SHUTDOWN = "Shutdown"
    SHUTOFF = "Shutoff"
    CRASHED = "Crashed"
    TEARDOWN = "Teardown"

    # The cloud's view: Staging/Booting/Canceled are pending, Teardown is shutting-down, the rest
    # running (Eucalyptus's Pending / Extant / Teardown). A plain attribute set below, because every
    # DescribeInstances reads it once per instance.
    cloud_state: str


for _state in NcState:
    _state.cloud_state = (
        "pending" if _state in (NcState.STAGING, NcState.BOOTING, NcState.CANCELED)
        else "shutting-down" if _state is NcState.TEARDOWN else "running"
    )


@dataclass(frozen=True)
class NodeResources:
    """describe-resource: the node's maximum and available cores, memory (MB) and disk (GB)."""

    max_cores: int
    max_memory: int
    max_disk: int
    free_cores: int
    free_memory: int
    free_disk: int
    instances: int = 0


@dataclass(frozen=True)
class VolumeAttachment:
    """An EBS volume as a node attaches it: over iSCSI (the SC's target ``iqn``, LUN ``lun`` on
    ``host:port``, which QEMU's own initiator logs in to) or, on a node beside the Storage
    Controller, as the volume's file ``path``. ``device`` is the guest's name for it (``vdb``...)."""

    volume_id: str
    device: str
    iqn: str = ""
    host: str = ""
    port: int = 3260
    lun: int = 1
    path: str = ""


class InstanceSpec(NamedTuple):
    """Everything a node needs to start an instance (ncRunInstance). A named tuple, because the
    simulator builds one per instance and a frozen dataclass of this width costs microseconds."""

    instance_id: str
    reservation_id: str
    account: str
    vmtype: str
    cores: int
    memory: int  # MB
    disk: int  # GB
    image_id: str
    kernel_id: str = ""
    ramdisk_id: str = ""
    mac: str = ""
    private_ip: str = ""
    vlan: int = -1
    key_name: str = ""
    public_key: str = ""
    user_data: bytes = b""
    launch_index: int = 0
    groups: Sequence[str] = ()
    # An EBS-backed instance boots from its root volume (exported by the Storage Controller) instead
    # of a copy of its image: ``image_id`` then has no bytes to stage, only the kernel and ramdisk.
    root_volume: VolumeAttachment | None = None


@dataclass(frozen=True)
class InstanceStatus:
    """One instance as the node sees it."""

    instance_id: str
    state: NcState
    launched_at: float = 0.0


@dataclass(frozen=True)
class InstanceFiles:
    """Where a node keeps one instance's files: ``INSTANCE_PATH/<account>/<instance>/`` holds the root
    disk (made from the cached emi), the kernel and ramdisk (from the cached eki/eri), the ephemeral
    and swap disks sized from the VM type, and the serial console's log. The node controller writes
    them and the hypervisor driver names them in the domain it defines, so both read the layout here."""

    directory: Path

    @classmethod
    def of(cls, instance_path: str | Path, account: str, instance_id: str) -> InstanceFiles:
        return cls(Path(instance_path) / account / instance_id)

    @property
    def root(self) -> Path:
        return self.directory / "root"

    @property
    def kernel(self) -> Path:
        return self.directory / "kernel"

    @property
    def ramdisk(self) -> Path:
        return self.directory / "ramdisk"

    @property
    def ephemeral(self) -> Path:
        return self.directory / "ephemeral"

    @property
    def swap(self) -> Path:
        return self.directory / "swap"

    @property
    def console_log(self) -> Path:
        return self.directory / "console.log"

    @property
    def record(self) -> Path:
        """The instance's spec as the node was given it (JSON), so a restarted node controller
        takes the instance back as it was (Eucalyptus's NC kept ``instance.xml`` beside the disks)."""
        return self.directory / "instance.json"


class NodeError(Exception):
    """A node could not do what was asked; the message names the instance and the hypervisor's reason."""


@runtime_checkable
class Driver(Protocol):
    """A node: describe it, start/reboot/terminate instances on it, list them, read their consoles."""

    def describe_resources(self) -> NodeResources: ...

    def start(self, spec: InstanceSpec) -> None: ...

    def reboot(self, instance_id: str) -> None: ...

    def terminate(self, instance_id: str) -> None: ...

    def instances(self) -> list[InstanceStatus]: ...

    def console_output(self, instance_id: str) -> str: ...


@runtime_checkable
class Attaching(Protocol):
    """A driver that hot-plugs volumes into running instances (ncAttachVolume, ncDetachVolume)."""

    def attach_volume(self, instance_id: str, volume: VolumeAttachment) -> None: ...

    def detach_volume(self, instance_id: str, volume: VolumeAttachment) -> None: ...
