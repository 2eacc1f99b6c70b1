"""The root volumes of an EBS-backed image's instances: what RunInstances asks of the volume
service (``euca.services.volumes``) before it places them. Each instance's root volume is restored
from the image's snapshot, at the size and with the DeleteOnTermination the image or the request's
own mapping gives, and no more of them are made than the cluster has room for instances."""

from __future__ import annotations

from typing import Any, Protocol

from drivers.protocol import VolumeAttachment
from euca.cluster import ClusterController
from euca.core.errors import InsufficientInstanceCapacity, InvalidBlockDeviceMapping, InvalidParameterCombination
from euca.services.accounts import Accounts
from euca.services.common import Caller
from euca.services.images import Image
from pyx.errors import InsufficientCapacity


class RootVolumes(Protocol):
    """What an EBS-backed instance's root needs of the volume service (``euca.services.volumes``)."""

    def create_root(self, caller: Caller, snapshot_id: str, size: int, zone: str, owner: Caller) -> str:
        """The caller's volume made from the snapshot (restored as ``owner``, the image's owner),
        available (its bytes restored) when this returns."""
        ...

    def attach_root(self, volume_id: str, instance_id: str, device: str, node: str, delete: bool) -> None: ...

    def plug_root(self, volume_id: str) -> None:
        """Hand the volume to its instance's node as the root disk, where the node takes it."""
        ...

    def root_for(self, volume_id: str) -> VolumeAttachment | None:
        """The volume as a remote node boots its instance from it (exported over iSCSI); None
        where the node is handed it by :meth:`plug_root` instead. StorageError, with the storage
        controller's reason, when it cannot be exported."""
        ...

    def moved(self, volume_id: str, node: str) -> None: ...

    def release_root(self, volume_id: str, delete: bool) -> None:
        """The instance ended: its root volume is deleted, or detached and available."""
        ...


def root_mapping(image: Image, p: dict[str, Any]) -> tuple[int, bool]:
    """The root volume's size and DeleteOnTermination: the image's, or RunInstances' own mapping."""
    ebs = image.root_mapping()["Ebs"]
    size, delete = int(ebs["VolumeSize"]), bool(ebs["DeleteOnTermination"])
    for given in p.get("BlockDeviceMappings") or []:
        if given.get("DeviceName") != image.root_device:
            continue
        override = given.get("Ebs") or {}
        if override.get("SnapshotId") not in (None, ebs["SnapshotId"]):
            raise InvalidBlockDeviceMapping("The root device's snapshot cannot be changed at launch")
        if override.get("VolumeSize") is not None:
            if not isinstance(override["VolumeSize"], int) or override["VolumeSize"] < size:
                raise InvalidBlockDeviceMapping(f"The root volume must be at least {size}GiB")
            size = override["VolumeSize"]
        if override.get("DeleteOnTermination") is not None:
            delete = bool(override["DeleteOnTermination"])
    return size, delete


def room_for(cc: ClusterController, vmtype: str, low: int, high: int) -> int:
    """How many of ``low`` to ``high`` instances of ``vmtype`` the cluster's nodes have room for
    now; InsufficientInstanceCapacity (the cluster controller's refusal) if fewer than ``low``."""
    free = next((a.free for a in cc.availability() if a.name == vmtype), 0)
    if free < low:
        raise InsufficientInstanceCapacity(str(InsufficientCapacity()))
    return min(high, free)


def make_roots(roots: RootVolumes | None, accounts: Accounts, zone: str, caller: Caller, image: Image, size: int,
               count: int) -> list[str]:
    """``count`` root volumes restored from the image's snapshot, in ``zone``; none if one fails."""
    if roots is None:
        raise InvalidParameterCombination("EBS-backed images need volumes, and this cloud has none")
    snapshot_id = image.root_mapping()["Ebs"]["SnapshotId"]
    account = accounts.get(image.account)
    owner = account.caller if account is not None else caller
    made: list[str] = []
    try:
        for _ in range(count):
            made.append(roots.create_root(caller, snapshot_id, size, zone, owner))
    except BaseException:
        drop_roots(roots, made)
        raise
    return made


def drop_roots(roots: RootVolumes | None, volume_ids: list[str]) -> None:
    for volume_id in volume_ids:
        if roots is not None:
            roots.release_root(volume_id, True)
