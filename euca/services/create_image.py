"""CreateImage of an EBS-backed instance: a snapshot of its root volume through the snapshot
service (``euca.services.snapshots``), and an EBS-backed image of it registered at once, pending
until the snapshot completes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from euca.core.errors import IncorrectInstanceState, UnsupportedOperation
from euca.services.common import Caller
from euca.services.images import Images

if TYPE_CHECKING:
    from euca.services.instances import Instances


class RootSnapshots(Protocol):
    """What CreateImage of an EBS-backed instance needs of the snapshot service (``euca.services.snapshots``)."""

    def create(self, caller: Caller, volume_id: str, description: str, tag_specs: list[dict[str, Any]] | None,
               ) -> dict[str, Any]: ...

    def describe(self, caller: Caller, p: dict[str, Any]) -> dict[str, Any]: ...

    def discard(self, snapshot_id: str) -> None:
        """The snapshot deleted, pending or not: no image was made of it."""
        ...


def create_image(instances: Instances, images: Images, snapshots: RootSnapshots | None, caller: Caller,
                 instance_id: str, name: str, description: str) -> str:
    """CreateImage of an EBS-backed instance: a snapshot of its root volume, and an EBS-backed
    image of it, pending until the snapshot completes. The instance is not rebooted (NoReboot
    is implied). An instance-store instance is bundled instead (``euca bundle-instance``)."""
    inst = instances.visible(caller, [instance_id])[0]
    if not inst.root_volume or snapshots is None:
        raise UnsupportedOperation(f"The instance '{inst.instance_id}' does not have an 'ebs' root device type: "
                                   "bundle an instance-store instance (euca bundle-instance) instead.")
    if instances.state_of(inst) not in ("running", "stopping", "stopped"):
        raise IncorrectInstanceState(f"The instance '{inst.instance_id}' is not in a state from which an image "
                                     "can be created.")
    images.check_new(caller, name, description, inst.kernel_id, inst.ramdisk_id)
    snap = snapshots.create(caller, inst.root_volume, f"Created by CreateImage({inst.instance_id}) from "
                            f"{inst.root_volume}", None)
    snapshot_id, size = snap["SnapshotId"], snap["VolumeSize"]
    mapping = {"DeviceName": inst.root_device,
               "Ebs": {"SnapshotId": snapshot_id, "VolumeSize": size, "DeleteOnTermination": True}}
    try:
        image_id = images.register_ebs(caller, {
            "Name": name, "Description": description, "RootDeviceName": inst.root_device,
            "KernelId": inst.kernel_id, "RamdiskId": inst.ramdisk_id, "BlockDeviceMappings": [mapping]},
            {snapshot_id: size})
    except BaseException:
        snapshots.discard(snapshot_id)  # no image holds it: nobody would ever delete it
        raise
    # the snapshot may have ended before the image was recorded
    now = snapshots.describe(caller, {"SnapshotIds": [snapshot_id]})["Snapshots"][0]["State"]
    if now != "pending":
        images.snapshot_done(snapshot_id, now == "completed")
    return image_id
