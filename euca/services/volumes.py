"""EBS volumes: CreateVolume, DescribeVolumes, DeleteVolume, AttachVolume, DetachVolume and their
status and attributes, as Eucalyptus's cloud controller answered them over its Storage Controller.

A volume is admitted by the SC (its limits: ``VolumeLimitExceeded``) and recorded ``creating``;
its bytes are made in the background (blank, or a snapshot streamed back from Walrus) and it
becomes ``available``. AttachVolume checks what Eucalyptus's VolumeManager checks, records the
attachment ``attaching`` and answers; a worker has the SC export the volume to the instance's node
(or hand an in-box node its file), and the node hot-plug it; then ``attached`` and the volume
``in-use`` (or, if either failed, ``available`` again). DetachVolume records ``detaching`` and a
worker has the node unplug the disk and the SC end the export. The API, which runs one request at
a time, never waits on a slow SC or node for an attachment. A volume
whose instance ended is detached at the next housekeeping pass. A volume that could not be made
is ``error`` for ``failed_ttl`` seconds (ten minutes, as Eucalyptus kept failed volumes), then
removed with whatever bytes the SC had for it. An export the SC could not be told to end (it was
down) is ended once it answers again.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from drivers.protocol import NodeError, VolumeAttachment
from euca.cluster import ClusterController
from euca.core.clock import Clock
from euca.core.errors import (
    IncorrectState,
    InvalidAttachmentNotFound,
    InvalidParameterCombination,
    InvalidParameterValue,
    InvalidVolumeIDMalformed,
    InvalidVolumeNotFound,
    InvalidVolumeZoneMismatch,
    InvalidZoneNotFound,
    MissingParameter,
    OperationNotPermitted,
    ServiceUnavailable,
    VolumeInUse,
    VolumeLimitExceeded,
)
from euca.core.text import quoted
from euca.fleet.box import BoxNodes
from euca.services.common import (
    Caller,
    Ids,
    matches,
    page,
    tag_fields,
    tag_list,
    timestamp,
    wanted,
    well_formed,
)
from euca.services.instances import Instances
from euca.services.tags import Tags
from euca.storage import Export, StorageClient, StorageError, StorageUnreachable, VolumeLimit
from euca.store import Store

log = logging.getLogger("euca.services.volumes")

KIND = "volume"
MAX_PER_INSTANCE = 256  # Eucalyptus 2.0
FAILED_TTL = 600.0  # seconds a failed volume is shown before it is removed
RETRY = 10.0  # seconds before housekeeping calls an SC again that did not answer
DEVICE = re.compile(r"^[a-zA-Z\d/]{3,10}$")  # VolumeManager's check
_DISK = re.compile(r"^(?:/dev/)?(?:sd|xvd|vd|hd)([a-z]{1,2})$")
FILTERS = ("attachment.attach-time", "attachment.delete-on-termination", "attachment.device",
           "attachment.instance-id", "attachment.status", "availability-zone", "create-time", "encrypted",
           "fast-restored", "multi-attach-enabled", "size", "snapshot-id", "status", "tag-key", "tag-value",
           "volume-id", "volume-type", "operator.managed", "operator.principal")

# (caller, snapshot id) -> the snapshot's size in GiB and a way to open its stream (gzip chunks)
SnapshotSource = Callable[[Caller, str], tuple[int, Callable[[], Iterator[bytes]]]]


@dataclass
class Volume:
    volume_id: str
    account: str
    size: int
    zone: str
    created: float
    state: str = "creating"  # creating, available, in-use, error
    snapshot_id: str = ""
    instance_id: str = ""
    device: str = ""
    attach_state: str = ""  # attaching, attached, detaching
    attach_time: float = 0.0
    node: str = ""
    exported: bool = False
    delete_on_termination: bool = False
    auto_enable_io: bool = False
    failed_at: float = 0.0  # when it became error
    detach_force: bool = False  # a detaching volume is let go whatever its node says

    def body(self) -> dict[str, Any]:
        return dict(self.__dict__)


def guest_disk(device: str) -> str:
    """The virtio disk a requested device becomes (``/dev/sdf`` -> ``vdf``); ``a`` is the root's."""
    if not DEVICE.match(device):
        raise InvalidParameterValue(f"Value ({quoted(device[:32])}) for parameter device is invalid.")
    found = _DISK.match(device)
    if found is None or found.group(1) == "a":
        raise InvalidParameterValue(f"Value ({quoted(device)}) for parameter device is invalid. "
                                    "Expected a device such as /dev/sdf or /dev/vdb.")
    return "vd" + found.group(1)


class Volumes:
    def __init__(self, store: Store, ids: Ids, cc: ClusterController, box: BoxNodes, sc: StorageClient,
                 instances: Instances, tags: Tags, clock: Clock) -> None:
        self._store, self._ids, self._cc, self._box, self.sc = store, ids, cc, box, sc
        self._instances, self._tags, self._clock = instances, tags, clock
        self._lock = threading.RLock()
        # one export or unexport at a time: the workers make them side by side, and tgt gives a new
        # target the lowest free tid, which two exports at once would both take
        self._exporting = threading.Lock()
        self._volumes = {id_: Volume(**body) for id_, _, body in store.load(KIND)}
        self._work = ThreadPoolExecutor(max_workers=2, thread_name_prefix="volumes")
        self.snapshot_source: SnapshotSource | None = None  # set by the snapshot service
        self.failed_ttl = FAILED_TTL
        self._stale_exports: set[str] = set()  # volumes whose export the SC was not there to end
        self._sc_quiet_until = 0.0  # housekeeping leaves an SC that did not answer alone until then
        instances.roots = self
        tags.add_resolver(self._resolve)

    def close(self) -> None:
        self._work.shutdown(wait=True, cancel_futures=True)

    # --- lookups ------------------------------------------------------------------------------------

    def _resolve(self, caller: Caller, resource: str) -> tuple[str, str] | None:
        vol = self._volumes.get(resource)
        return (vol.account, "volume") if vol is not None and caller.sees(vol.account) else None

    def visible(self, caller: Caller, volume_id: str) -> Volume:
        if not isinstance(volume_id, str) or not well_formed(volume_id, "vol"):
            raise InvalidVolumeIDMalformed(f"Invalid id: \"{quoted(str(volume_id)[:64])}\" (expecting \"vol-...\")")
        vol = self._volumes.get(volume_id)
        if vol is None or not caller.sees(vol.account):
            raise InvalidVolumeNotFound(f"The volume '{volume_id}' does not exist.")
        return vol

    def _save(self, vol: Volume, **changes: Any) -> None:
        with self._lock:
            # from the record as it is now: a caller's copy may predate another thread's save
            current = self._volumes.get(vol.volume_id, vol)
            updated = Volume(**{**current.body(), **changes})
            with self._store.transaction() as tx:
                tx.put(KIND, vol.volume_id, vol.account, updated.body())
            self._volumes[vol.volume_id] = updated

    # --- CreateVolume -------------------------------------------------------------------------------

    def create(self, caller: Caller, p: dict[str, Any], wait: bool = False, restorer: Caller | None = None,
               ) -> dict[str, Any]:
        zone = p.get("AvailabilityZone")
        if not zone:
            raise MissingParameter("The request must contain the parameter AvailabilityZone")
        if zone != self._cc.name:
            raise InvalidZoneNotFound(f"The zone '{quoted(zone[:64])}' does not exist.")
        size, snapshot_id = p.get("Size"), p.get("SnapshotId") or ""
        if size is None and not snapshot_id:
            raise MissingParameter("The request must contain the parameter size or snapshotId")
        for key in ("Iops", "Throughput", "KmsKeyId"):
            if p.get(key):
                raise InvalidParameterCombination(f"{key} is not supported by this cloud's volumes")
        if p.get("Encrypted"):
            raise InvalidParameterValue("Encrypted volumes are not supported by this cloud")
        if p.get("VolumeType") not in (None, "", "standard"):
            raise InvalidParameterValue(f"Volume type {quoted(str(p['VolumeType'])[:32])} is not supported; "
                                        "use standard")
        opener: Callable[[], Iterator[bytes]] | None = None
        if snapshot_id:
            if self.snapshot_source is None:
                raise ServiceUnavailable("Snapshots are not available: this cloud has no Walrus")
            snap_size, opener = self.snapshot_source(restorer or caller, snapshot_id)
            size = snap_size if size is None else size
            if size < snap_size:
                raise InvalidParameterValue(f"Volume of {size}GiB is too small; minimum is {snap_size}GiB.")
        if not isinstance(size, int) or size < 1:
            raise InvalidParameterValue("The volume size must be a whole number of GiB, at least 1")
        pairs = self._tags.specified(p.get("TagSpecifications"), "volume")
        with self._lock, self._store.transaction() as tx:
            volume_id = self._ids.new("vol", tx)
            vol = Volume(volume_id, caller.account, size, zone, self._clock(), snapshot_id=snapshot_id)
            tx.put(KIND, volume_id, vol.account, vol.body())
            if pairs:
                self._tags.write(tx, [(volume_id, vol.account)], pairs)
        try:
            self.sc.admit(volume_id, size, caller.account)  # the SC's record follows ours
        except StorageError as exc:
            with self._lock, self._store.transaction() as tx:
                tx.delete(KIND, volume_id)
                self._tags.drop_in(tx, volume_id)
            if isinstance(exc, VolumeLimit):
                raise VolumeLimitExceeded(str(exc)) from None
            raise ServiceUnavailable(f"The storage controller cannot create the volume: {exc}") from None
        self._volumes[volume_id] = vol
        if wait:
            self._fill(vol, opener)
            return self._shape(self._volumes[volume_id])
        # CreateVolume answers what it made, "creating": shaped before the worker can finish it
        made = self._shape(vol)
        self._work.submit(self._fill, vol, opener)
        return made

    def _fill(self, vol: Volume, opener: Callable[[], Iterator[bytes]] | None) -> None:
        try:
            self.sc.fill(vol.volume_id, opener() if opener is not None else None)
        except Exception as exc:  # whatever broke (the SC, Walrus, the stream), the volume is error, not creating
            log.warning("%s: could not be created: %s", vol.volume_id, exc)
            current = self._volumes.get(vol.volume_id)
            if current is not None:
                self._save(current, state="error", failed_at=self._clock())
            return
        current = self._volumes.get(vol.volume_id)
        if current is not None:
            self._save(current, state="available")

    # --- DescribeVolumes, DeleteVolume ----------------------------------------------------------------

    def describe(self, caller: Caller, p: dict[str, Any]) -> dict[str, Any]:
        ids = p.get("VolumeIds") or []
        chosen = wanted(p.get("Filters"), FILTERS)
        if ids and p.get("MaxResults") is not None:
            raise InvalidParameterCombination("The parameter volumeSet cannot be used with the parameter maxResults")
        vols = [self.visible(caller, i) for i in dict.fromkeys(ids)] if ids else [
            v for v in self._volumes.values() if caller.sees(v.account)]
        shown = [self._shape(v) for v in sorted(vols, key=lambda v: (v.created, v.volume_id))
                 if matches(chosen, lambda name, v=v: self._fields(v, name))]  # type: ignore[misc]
        items, token = page(shown, p.get("MaxResults"), p.get("NextToken"))
        return {"Volumes": items, "NextToken": token}

    def _fields(self, v: Volume, name: str) -> list[str]:
        attached = bool(v.instance_id)
        fields = {
            "volume-id": [v.volume_id], "size": [str(v.size)], "status": [v.state], "availability-zone": [v.zone],
            "snapshot-id": [v.snapshot_id] if v.snapshot_id else [], "volume-type": ["standard"],
            "encrypted": ["false"], "multi-attach-enabled": ["false"], "fast-restored": ["false"],
            "operator.managed": ["false"],
            "create-time": [timestamp(v.created)],
            "attachment.instance-id": [v.instance_id] if attached else [],
            "attachment.device": [v.device] if attached else [],
            "attachment.status": [v.attach_state] if attached else [],
            "attachment.attach-time": [timestamp(v.attach_time)] if attached else [],
            "attachment.delete-on-termination": [str(v.delete_on_termination).lower()] if attached else [],
        }
        return fields[name] if name in fields else tag_fields(self._tags.of(v.volume_id), name)

    def _shape(self, v: Volume) -> dict[str, Any]:
        return {"VolumeId": v.volume_id, "Size": v.size, "SnapshotId": v.snapshot_id, "AvailabilityZone": v.zone,
                "State": v.state, "CreateTime": v.created,
                "Attachments": [self._attachment(v)] if v.instance_id else [],
                "VolumeType": "standard", "Encrypted": False, "MultiAttachEnabled": False,
                "Tags": tag_list(self._tags.of(v.volume_id))}

    @staticmethod
    def _attachment(v: Volume, state: str = "") -> dict[str, Any]:
        return {"VolumeId": v.volume_id, "InstanceId": v.instance_id, "Device": v.device,
                "State": state or v.attach_state, "AttachTime": v.attach_time,
                "DeleteOnTermination": v.delete_on_termination}

    def delete(self, caller: Caller, volume_id: str) -> None:
        vol = self.visible(caller, volume_id)
        if vol.instance_id or vol.state == "in-use":
            raise VolumeInUse(f"Volume {volume_id} is currently attached to {vol.instance_id}")
        if vol.state == "creating":
            raise IncorrectState(f"Volume {volume_id} is still being created")
        try:
            self.sc.delete(volume_id)
        except StorageError as exc:
            raise ServiceUnavailable(f"The storage controller cannot delete the volume: {exc}") from None
        with self._lock, self._store.transaction() as tx:
            tx.delete(KIND, volume_id)
            self._tags.drop_in(tx, volume_id)
            self._volumes.pop(volume_id, None)

    # --- AttachVolume, DetachVolume ---------------------------------------------------------------------

    def attach(self, caller: Caller, volume_id: str, instance_id: str, device: str) -> dict[str, Any]:
        """Checked and recorded ``attaching`` here; the SC's export and the node's hot-plug are a
        worker's (:meth:`_attach`): the API answers every other caller while a remote SC or node
        takes its time, as EC2 answers AttachVolume at once with the attachment ``attaching``."""
        vol = self.visible(caller, volume_id)
        disk = guest_disk(device)
        found = self._instances.describe(caller, {"InstanceIds": [instance_id]})["Reservations"]
        inst = found[0]["Instances"][0]
        if inst["State"]["Name"] != "running":
            raise IncorrectState(f"Instance '{instance_id}' is not 'running'")
        placed = self._cc.instance(instance_id)
        with self._lock:  # checked and recorded with no worker's outcome in between
            vol = self.visible(caller, volume_id)
            if vol.instance_id or vol.state == "in-use":
                raise VolumeInUse(f"{volume_id} is already attached to an instance")
            if vol.state != "available":
                raise IncorrectState(f"Volume '{volume_id}' is '{vol.state}', not 'available'")
            if vol.zone != inst["Placement"]["AvailabilityZone"]:
                raise InvalidVolumeZoneMismatch(f"The volume '{volume_id}' is not in the same availability zone "
                                                f"as instance '{instance_id}'")
            others = [v for v in self._volumes.values() if v.instance_id == instance_id]
            for other in others:
                if other.device == device or guest_disk(other.device) == disk:
                    raise InvalidParameterValue(f"Already have a device attached to: {device}")
            if len(others) >= MAX_PER_INSTANCE:
                raise VolumeLimitExceeded(f"Instance '{instance_id}' has {MAX_PER_INSTANCE} volumes attached "
                                          "already")
            if placed is None:
                raise IncorrectState(f"Instance '{instance_id}' is not 'running'")
            self._save(vol, state="in-use", instance_id=instance_id, device=device, attach_state="attaching",
                       attach_time=self._clock(), node=placed.node, detach_force=False)
            vol = self._volumes[volume_id]
            answer = self._attachment(vol)
        self._work.submit(self._attach, vol)
        return answer

    def _pending(self, vol: Volume, state: str) -> Volume | None:
        """The volume as it is now if it is still in the transition ``vol`` was: the same
        attachment, still ``state`` (call with the lock held)."""
        current = self._volumes.get(vol.volume_id)
        if current is None or current.instance_id != vol.instance_id or current.attach_state != state:
            return None
        return current

    def _attach(self, vol: Volume) -> None:
        """The worker's half of AttachVolume: export and hot-plug, then ``attached``. A failed
        export or attach leaves the volume available (the reason in the log), never stuck."""
        with self._lock:
            current = self._pending(vol, "attaching")
        if current is None:
            return
        try:
            self._plug(current, guest_disk(current.device))
        except (StorageError, NodeError) as exc:
            log.warning("%s: could not be attached to %s: %s", vol.volume_id, vol.instance_id, exc)
            self._undo_attach(current, unplug=False)
            return
        with self._lock:
            current = self._pending(vol, "attaching")
            if current is not None:
                self._save(current, attach_state="attached")
                return
        # the attachment was let go while the node was plugging it in (its instance ended)
        log.info("%s: its attachment to %s ended while it was being made", vol.volume_id, vol.instance_id)

    def _undo_attach(self, vol: Volume, unplug: bool) -> None:
        """An attach that did not finish: the node lets the disk go (``unplug``: it may hold it),
        the SC ends the export, and the volume is ``available`` with no attachment."""
        if unplug:
            try:
                self._box.fleet.detach_volume(vol.node, vol.instance_id, vol.volume_id)
            except NodeError as exc:
                log.info("%s: %s", vol.volume_id, exc)  # it never got there
        self._unexport(vol)
        with self._lock:
            if self._pending(vol, "attaching") is not None:
                self._clear(vol)

    def _plug(self, vol: Volume, disk: str) -> None:
        """Export the volume to the node (or hand an in-box node its file) and have the node attach it."""
        self._box.fleet.attach_volume(vol.node, vol.instance_id, self._attachment_for(vol, disk))

    def _attachment_for(self, vol: Volume, disk: str) -> VolumeAttachment:
        """An in-box node beside an in-process SC gets the volume's file; any other node, an iSCSI
        export (bound to a remote node's address; an in-box node has none of its own)."""
        if self._box.fleet.is_local(vol.node) and self.sc.local:
            return VolumeAttachment(vol.volume_id, disk, path=self.sc.local_path(vol.volume_id))
        export = self._export(vol)
        return VolumeAttachment(vol.volume_id, disk, export.iqn, export.host, export.port, export.lun)

    def _export(self, vol: Volume) -> Export:
        """The SC's export of the volume to its node, bound to a remote node's address (an in-box
        node has none of its own). Recorded first: an export the SC made before failing is still ended."""
        handle = self._box.fleet.nodes.get(vol.node)
        self._save(vol, exported=True)
        with self._exporting:
            return self.sc.export(vol.volume_id, getattr(getattr(handle, "client", None), "host", "ALL"))

    def _unexport(self, vol: Volume) -> None:
        current = self._volumes.get(vol.volume_id, vol)
        if current.exported:
            try:
                with self._exporting:
                    self.sc.unexport(vol.volume_id)
            except StorageError as exc:
                log.warning("%s: its export is ended once the storage controller answers: %s", vol.volume_id, exc)
                with self._lock:
                    self._stale_exports.add(vol.volume_id)

    def detach(self, caller: Caller, volume_id: str, instance_id: str | None, device: str | None,
               force: bool) -> dict[str, Any]:
        """Checked and recorded ``detaching`` here; the node's unplug and the SC's unexport are a
        worker's (:meth:`_detach`). A node that refuses to let the disk go (the guest still holds
        it) without Force leaves the attachment ``attached``, as Eucalyptus's VolumeManager
        put a failed detach back (its ``detaching_failed`` became ``attached``): the guest does still
        have the disk, and this cloud does not keep asking the node the way EC2 does while
        it shows ``detaching``. A DetachVolume with Force, also of an attachment still ``detaching``
        (EC2's way out of a detach that hangs), lets the volume go whatever the node says."""
        with self._lock:
            vol = self.visible(caller, volume_id)
            if not vol.instance_id:
                raise IncorrectState(f"Volume '{volume_id}' is not attached")
            if self._instances.is_root(vol.instance_id, volume_id):
                raise OperationNotPermitted(f"Unable to detach root volume '{volume_id}' from instance "
                                            f"'{vol.instance_id}'")
            if (instance_id and instance_id != vol.instance_id) or (device and device != vol.device):
                raise InvalidAttachmentNotFound(f"No attachment for volume '{volume_id}' matches")
            if vol.attach_state == "attaching":
                raise IncorrectState(f"Volume '{volume_id}' is 'attaching' to '{vol.instance_id}'; "
                                     "detach it once it is attached")
            again = vol.attach_state == "detaching"
            if not again or (force and not vol.detach_force):
                self._save(vol, attach_state="detaching", detach_force=force or vol.detach_force)
            vol = self._volumes[volume_id]
            answer = self._attachment(vol)
        if not again or force:
            self._work.submit(self._detach, vol)
        return answer

    def _detach(self, vol: Volume) -> None:
        """The worker's half of DetachVolume: the node unplugs the disk, the SC ends the export,
        and the volume is ``available``."""
        with self._lock:
            current = self._pending(vol, "detaching")
        if current is None:
            return
        try:
            self._box.fleet.detach_volume(current.node, current.instance_id, current.volume_id)
        except NodeError as exc:
            with self._lock:
                current = self._pending(vol, "detaching")
                if current is None:
                    return
                if not current.detach_force:
                    log.warning("%s: the node keeps it attached to %s: %s", vol.volume_id, vol.instance_id, exc)
                    self._save(current, attach_state="attached")
                    return
            log.warning("%s: forced off %s: %s", vol.volume_id, vol.instance_id, exc)
        with self._lock:
            current = self._pending(vol, "detaching")
        if current is not None:
            self._release(current)

    def _let_go(self, vol: Volume) -> None:
        """A worker's release of a volume whose instance ended, unless something else did first."""
        with self._lock:
            current = self._pending(vol, "detaching")
        if current is not None:
            self._release(current)

    def _release(self, vol: Volume) -> None:
        self._unexport(vol)
        with self._lock:
            self._clear(self._volumes[vol.volume_id])

    def _clear(self, vol: Volume) -> None:
        self._save(vol, state="available", instance_id="", device="", attach_state="", attach_time=0.0, node="",
                   exported=False, detach_force=False)

    # --- EBS-backed instances' root volumes (``Instances.roots``) -----------------------------------------

    def create_root(self, caller: Caller, snapshot_id: str, size: int, zone: str, owner: Caller) -> str:
        """A root volume restored from the image's snapshot before its instance starts: the
        caller's volume, restored as the image's owner (launch permission is enough)."""
        made = self.create(caller, {"AvailabilityZone": zone, "SnapshotId": snapshot_id, "Size": size}, wait=True,
                           restorer=owner)
        if made["State"] != "available":
            self.release_root(made["VolumeId"], True)
            raise ServiceUnavailable(f"The root volume could not be restored from {snapshot_id}")
        return str(made["VolumeId"])

    def attach_root(self, volume_id: str, instance_id: str, device: str, node: str, delete: bool) -> None:
        vol = self._volumes[volume_id]
        self._save(vol, state="in-use", instance_id=instance_id, device=device, attach_state="attached",
                   attach_time=self._clock(), node=node, delete_on_termination=delete)

    def plug_root(self, volume_id: str) -> None:
        """An in-box node is handed the root volume's file as its instance's first disk (vda). A
        remote node is not: it boots the instance from its own disks."""
        vol = self._volumes.get(volume_id)
        if vol is None or not vol.instance_id or not self._box.fleet.is_local(vol.node):
            return
        try:
            self._box.fleet.attach_volume(vol.node, vol.instance_id, self._attachment_for(vol, "vda"))
        except (StorageError, NodeError) as exc:
            log.warning("%s: cannot be given to %s as its root disk: %s", volume_id, vol.instance_id, exc)

    def root_for(self, volume_id: str) -> VolumeAttachment | None:
        """A remote node boots an EBS-backed instance from its root volume over iSCSI: the SC exports
        it to that node, and this is how the node reaches it. None for an in-box node (:meth:`plug_root`);
        StorageError, with the SC's reason, when the SC cannot export it."""
        vol = self._volumes.get(volume_id)
        if vol is None or not vol.instance_id or self._box.fleet.is_local(vol.node):
            return None
        # a stopped instance may start on another node: its target is made again, bound to this one
        self._unexport(vol)
        try:
            export = self._export(vol)
        except StorageError as exc:
            log.warning("%s: cannot be exported to %s as %s's root: %s", volume_id, vol.node, vol.instance_id, exc)
            raise
        return VolumeAttachment(volume_id, "vda", export.iqn, export.host, export.port, export.lun)

    def moved(self, volume_id: str, node: str) -> None:
        vol = self._volumes.get(volume_id)
        if vol is not None:
            self._save(vol, node=node)

    def release_root(self, volume_id: str, delete: bool) -> None:
        vol = self._volumes.get(volume_id)
        if vol is None:
            return
        self._release(vol)
        if not delete:
            return
        try:
            self.sc.delete(volume_id)
        except StorageError as exc:
            log.warning("%s: the storage controller cannot delete it: %s", volume_id, exc)
            self._save(self._volumes[volume_id], state="error", failed_at=self._clock())
            return
        with self._lock, self._store.transaction() as tx:
            tx.delete(KIND, volume_id)
            self._tags.drop_in(tx, volume_id)
            self._volumes.pop(volume_id, None)

    # --- housekeeping ---------------------------------------------------------------------------------

    def reconcile(self) -> None:
        """Volumes whose instance ended are detached (their node tore the disk down with the domain);
        failed volumes are removed once they have been shown ``failed_ttl`` seconds; exports the
        SC could not be told to end are ended."""
        now = self._clock()
        for vol in list(self._volumes.values()):
            if vol.attach_state in ("attaching", "detaching"):
                continue  # a worker is making or ending the attachment: its outcome is its own
            if (vol.instance_id and self._cc.instance(vol.instance_id) is None
                    and not self._instances.stopped(vol.instance_id)):
                log.info("%s: its instance %s ended; detached", vol.volume_id, vol.instance_id)
                # by a worker: housekeeping runs with the API, and the SC may be slow to end the export
                self._save(vol, attach_state="detaching", detach_force=True)
                self._work.submit(self._let_go, self._volumes[vol.volume_id])
            elif (vol.state == "error" and not vol.instance_id and now - vol.failed_at >= self.failed_ttl
                  and now >= self._sc_quiet_until):
                self._reap(vol)
        with self._lock:
            stale = sorted(self._stale_exports)
        for volume_id in stale:
            current = self._volumes.get(volume_id)
            if now < self._sc_quiet_until or (current is not None and current.exported):
                continue  # the SC is still away, or the volume was exported again since: in use
            if not self._exporting.acquire(blocking=False):
                break  # a worker is waiting on the SC: the next pass, not the API, waits its turn
            try:
                self.sc.unexport(volume_id)
            except StorageUnreachable:
                self._sc_quiet_until = now + RETRY
                continue
            except StorageError as exc:
                log.warning("%s: %s", volume_id, exc)  # no such volume any more: nothing to end
            finally:
                self._exporting.release()
            with self._lock:
                self._stale_exports.discard(volume_id)

    def _reap(self, vol: Volume) -> None:
        try:
            self.sc.delete(vol.volume_id)
        except StorageError as exc:
            log.warning("%s: failed; the storage controller cannot remove it yet: %s", vol.volume_id, exc)
            if isinstance(exc, StorageUnreachable):
                self._sc_quiet_until = self._clock() + RETRY
            return
        log.info("%s: failed %.0f s ago; removed", vol.volume_id, self._clock() - vol.failed_at)
        with self._lock, self._store.transaction() as tx:
            tx.delete(KIND, vol.volume_id)
            self._tags.drop_in(tx, vol.volume_id)
            self._volumes.pop(vol.volume_id, None)

    def restore(self) -> None:
        """After a restart: in-box nodes started empty, so their volumes are attached again; a
        remote node kept its own; volumes a crash left creating are errors. An attach a crash
        cut off is undone (the node may hold the disk, the SC an export: both let go), and the
        volume is available to attach again; a detach is finished (an in-box node holds nothing
        to let go). The workers do both, as they would have."""
        now = self._clock()
        for vol in list(self._volumes.values()):
            if vol.state in ("creating", "error") and not vol.failed_at:
                self._save(vol, state="error", failed_at=now)
            elif vol.attach_state == "attaching":
                self._work.submit(self._undo_attach, vol, not self._box.fleet.is_local(vol.node))
            elif vol.attach_state == "detaching":
                self._work.submit(self._let_go if self._box.fleet.is_local(vol.node) else self._detach, vol)
            elif vol.instance_id and self._instances.is_root(vol.instance_id, vol.volume_id):
                if self._cc.instance(vol.instance_id):
                    self.plug_root(vol.volume_id)
            elif vol.instance_id and self._box.fleet.is_local(vol.node) and self._cc.instance(vol.instance_id):
                try:
                    self._plug(vol, guest_disk(vol.device))
                except (StorageError, NodeError, InvalidParameterValue) as exc:
                    log.warning("%s: cannot attach it again: %s", vol.volume_id, exc)
        self._find_stale_exports()

    def _find_stale_exports(self) -> None:
        """Exports the SC holds for volumes this cloud does not have exported: an attach or a
        detach the SC (or this cloud) did not live through. Housekeeping ends them."""
        try:
            held = self.sc.describe()
        except StorageError as exc:
            log.warning("the storage controller's volumes cannot be compared with the cloud's: %s", exc)
            return
        for record in held:
            vol = self._volumes.get(str(record.get("volume_id")))
            if record.get("export") and (vol is None or not vol.exported):
                with self._lock:
                    self._stale_exports.add(str(record["volume_id"]))

    # --- status and attributes --------------------------------------------------------------------------

    def status(self, caller: Caller, p: dict[str, Any]) -> dict[str, Any]:
        ids = p.get("VolumeIds") or []
        # a volume here has no scheduled events, nor actions to take on them: those filters match nothing
        chosen = wanted(p.get("Filters"), ("availability-zone", "volume-status.status", "volume-status.details-name",
                                           "volume-status.details-status", "event.description", "event.event-id",
                                           "event.event-type", "event.not-after", "event.not-before",
                                           "action.code", "action.description", "action.event-id"),
                        tags=False)
        vols = [self.visible(caller, i) for i in ids] if ids else [
            v for v in self._volumes.values() if caller.sees(v.account)]
        out = []
        for v in sorted(vols, key=lambda v: v.volume_id):
            ok = v.state in ("available", "in-use")
            status = "ok" if ok else "insufficient-data" if v.state == "creating" else "impaired"
            fields = {"availability-zone": [v.zone], "volume-status.status": [status],
                      "volume-status.details-name": ["io-enabled"],
                      "volume-status.details-status": ["passed" if ok else "failed"]}
            if matches(chosen, lambda n, f=fields: f.get(n, [])):  # type: ignore[misc]
                out.append({"VolumeId": v.volume_id, "AvailabilityZone": v.zone, "Events": [], "Actions": [],
                            "VolumeStatus": {"Status": status, "Details": [
                                {"Name": "io-enabled", "Status": "passed" if ok else "failed"}]}})
        items, token = page(out, p.get("MaxResults"), p.get("NextToken"))
        return {"VolumeStatuses": items, "NextToken": token}

    def attribute(self, caller: Caller, volume_id: str, attribute: str) -> dict[str, Any]:
        vol = self.visible(caller, volume_id)
        if attribute == "autoEnableIO":
            return {"VolumeId": volume_id, "AutoEnableIO": {"Value": vol.auto_enable_io}}
        if attribute == "productCodes":
            return {"VolumeId": volume_id, "ProductCodes": []}
        raise InvalidParameterValue(f"Value ({quoted(attribute[:32])}) for parameter attribute is invalid.")

    def modify_attribute(self, caller: Caller, volume_id: str, auto_enable_io: dict[str, Any] | None) -> None:
        vol = self.visible(caller, volume_id)
        if not auto_enable_io or "Value" not in auto_enable_io:
            raise MissingParameter("The request must contain the parameter AutoEnableIO")
        self._save(vol, auto_enable_io=bool(auto_enable_io["Value"]))

