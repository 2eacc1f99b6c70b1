"""EBS snapshots: CreateSnapshot, DescribeSnapshots, DeleteSnapshot, CopySnapshot and the
createVolumePermission attribute, over the Storage Controller and Walrus.

CreateSnapshot records the snapshot ``pending`` at 0%; in the background the SC streams a
point-in-time copy of the volume (gzip, as Eucalyptus's SC sent it) and the cloud writes it to
Walrus as a multipart upload into the cloud's ``snapshots-<region>`` bucket, the ``Progress``
following the bytes read; then ``completed`` at 100%. CreateVolume from a snapshot streams the
object back through the SC. A snapshot is its owner's; createVolumePermission shares it with
other accounts (``UserId``) or everyone (``Group=all``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from euca.core.clock import Clock
from euca.core.errors import (
    IncorrectState,
    InvalidParameterValue,
    InvalidSnapshotIDMalformed,
    InvalidSnapshotInUse,
    InvalidSnapshotNotFound,
    MissingParameter,
    ServiceUnavailable,
)
from euca.core.text import quoted
from euca.services.accounts import Accounts
from euca.services.common import (
    Caller,
    Ids,
    matches,
    page,
    present,
    tag_fields,
    tag_list,
    timestamp,
    wanted,
    well_formed,
)
from euca.services.tags import Tags
from euca.services.volumes import Volumes
from euca.storage import StorageError
from euca.store import Store

log = logging.getLogger("euca.services.snapshots")

KIND = "snapshot"
FILTERS = ("description", "owner-alias", "owner-id", "progress", "snapshot-id", "start-time", "status",
           "volume-id", "volume-size", "encrypted", "storage-tier", "tag-key", "tag-value")


class SnapshotObjects(Protocol):
    """Where snapshots' bytes are kept: Walrus (``euca.walrus.snapshots``), one object per snapshot."""

    def write(self, key: str, chunks: Iterable[bytes]) -> None: ...

    def read(self, key: str) -> Iterator[bytes]: ...

    def delete(self, key: str) -> None: ...


@dataclass
class Snapshot:
    snapshot_id: str
    account: str
    account_id: str
    volume_id: str
    size: int
    started: float
    description: str = ""
    state: str = "pending"  # pending, completed, error
    progress: int = 0
    key: str = ""
    users: list[str] = field(default_factory=list)  # createVolumePermission: account ids
    public: bool = False  # createVolumePermission: group all

    def body(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Snapshots:
    def __init__(self, store: Store, ids: Ids, accounts: Accounts, volumes: Volumes, tags: Tags, clock: Clock,
                 region: str) -> None:
        self._store, self._ids, self._accounts, self._volumes = store, ids, accounts, volumes
        self._tags, self._clock = tags, clock
        self.bucket = f"snapshots-{region.lower()}"
        self.objects: SnapshotObjects | None = None  # Walrus, once the cloud has opened it
        self._lock = threading.RLock()
        self._snaps = {id_: Snapshot(**body) for id_, _, body in store.load(KIND)}
        self._work = ThreadPoolExecutor(max_workers=2, thread_name_prefix="snapshots")
        volumes.snapshot_source = self.source
        # snapshot id -> the image whose block device mappings name it (set by the cloud)
        self.in_use: Callable[[str], str | None] = lambda snapshot_id: None
        # told when a snapshot has completed (True) or failed: CreateImage's image waits for it
        self.finished: Callable[[str, bool], None] = lambda snapshot_id, completed: None
        tags.add_resolver(self._resolve)

    def close(self) -> None:
        self._work.shutdown(wait=True, cancel_futures=True)

    def restore(self) -> None:
        """A snapshot a restart interrupted never finished: it is an error (its upload is aborted)."""
        for snap in list(self._snaps.values()):
            if snap.state == "pending":
                self._save(snap, state="error")

    # --- lookups --------------------------------------------------------------------------------------

    def _resolve(self, caller: Caller, resource: str) -> tuple[str, str] | None:
        snap = self._snaps.get(resource)
        return (snap.account, "snapshot") if snap is not None and caller.sees(snap.account) else None

    def _restorable(self, caller: Caller, snap: Snapshot) -> bool:
        return caller.sees(snap.account) or snap.public or caller.account_id in snap.users

    def _find(self, caller: Caller, snapshot_id: str, shared: bool = False) -> Snapshot:
        if not isinstance(snapshot_id, str) or not well_formed(snapshot_id, "snap"):
            raise InvalidSnapshotIDMalformed(f"Invalid id: \"{quoted(str(snapshot_id)[:64])}\" "
                                             "(expecting \"snap-...\")")
        snap = self._snaps.get(snapshot_id)
        if snap is None or not (self._restorable(caller, snap) if shared else caller.sees(snap.account)):
            raise InvalidSnapshotNotFound(f"The snapshot '{snapshot_id}' does not exist.")
        return snap

    def _save(self, snap: Snapshot, **changes: Any) -> Snapshot:
        with self._lock:
            # from the record as it is now: a caller's copy may predate another thread's save
            current = self._snaps.get(snap.snapshot_id, snap)
            updated = Snapshot(**{**current.body(), **changes})
            with self._store.transaction() as tx:
                tx.put(KIND, snap.snapshot_id, snap.account, updated.body())
            self._snaps[snap.snapshot_id] = updated
            return updated

    def _objects(self) -> SnapshotObjects:
        if self.objects is None:
            raise ServiceUnavailable("Snapshots are not available: this cloud has no Walrus")
        return self.objects

    # --- CreateSnapshot, CopySnapshot --------------------------------------------------------------------

    def create(self, caller: Caller, volume_id: str, description: str, tag_specs: list[dict[str, Any]] | None,
               ) -> dict[str, Any]:
        vol = self._volumes.visible(caller, volume_id)
        if vol.state not in ("available", "in-use"):
            raise IncorrectState(f"Volume '{volume_id}' is '{vol.state}'")
        objects = self._objects()
        snap = self._new(caller, volume_id, vol.size, description, tag_specs)
        try:
            stream = self._volumes.sc.snapshot(volume_id, snap.snapshot_id, self._progress(snap.snapshot_id))
        except StorageError as exc:  # refused, so nothing is left of it
            with self._lock, self._store.transaction() as tx:
                tx.delete(KIND, snap.snapshot_id)
                self._tags.drop_in(tx, snap.snapshot_id)
                self._snaps.pop(snap.snapshot_id, None)
            raise ServiceUnavailable(f"The storage controller cannot snapshot the volume: {exc}") from None
        self._work.submit(self._upload, snap.snapshot_id, lambda: stream, objects)
        return self._shape(snap)

    def copy(self, caller: Caller, p: dict[str, Any], region: str) -> dict[str, Any]:
        source_region = p.get("SourceRegion")
        if source_region != region:
            raise InvalidParameterValue(f"Snapshots are copied within the region {region}, "
                                        f"not from {quoted(str(source_region)[:32])}")
        if p.get("Encrypted") or p.get("KmsKeyId"):
            raise InvalidParameterValue("Encrypted snapshots are not supported by this cloud")
        source = self._find(caller, p.get("SourceSnapshotId") or "", shared=True)
        if source.state != "completed":
            raise IncorrectState(f"Snapshot '{source.snapshot_id}' is '{source.state}', not 'completed'")
        objects = self._objects()
        snap = self._new(caller, source.volume_id, source.size, p.get("Description") or source.description,
                         p.get("TagSpecifications"))

        self._work.submit(self._upload, snap.snapshot_id, lambda: objects.read(source.key), objects)
        return {"SnapshotId": snap.snapshot_id, "Tags": tag_list(self._tags.of(snap.snapshot_id))}

    def _new(self, caller: Caller, volume_id: str, size: int, description: str,
             tag_specs: list[dict[str, Any]] | None) -> Snapshot:
        if len(description) > 255:
            raise InvalidParameterValue("The description is at most 255 characters")
        pairs = self._tags.specified(tag_specs, "snapshot")
        with self._lock, self._store.transaction() as tx:
            snapshot_id = self._ids.new("snap", tx)
            snap = Snapshot(snapshot_id, caller.account, caller.account_id, volume_id, size, self._clock(),
                            description, key=snapshot_id)
            tx.put(KIND, snapshot_id, snap.account, snap.body())
            if pairs:
                self._tags.write(tx, [(snapshot_id, snap.account)], pairs)
            self._snaps[snapshot_id] = snap
        return snap

    def _progress(self, snapshot_id: str) -> Callable[[int, int], None]:
        def progress(done: int, total: int) -> None:
            snap = self._snaps.get(snapshot_id)
            percent = min(99, done * 100 // max(total, 1))
            if snap is not None and percent > snap.progress:
                snap.progress = percent  # shown at once; written to the store when the snapshot completes
        return progress

    def _upload(self, snapshot_id: str, opener: Callable[[], Iterator[bytes]], objects: SnapshotObjects) -> None:
        try:
            objects.write(snapshot_id, opener())
        except Exception as exc:  # the SC gone mid-stream, Walrus full, ...: error, never pending for ever
            log.warning("%s: could not be stored in Walrus: %s", snapshot_id, exc)
            state, progress = "error", 0
        else:
            state, progress = "completed", 100
        with self._lock:
            snap = self._snaps.get(snapshot_id)
            if snap is not None:
                self._save(snap, state=state, progress=progress)
        if snap is not None:
            self.finished(snapshot_id, state == "completed")
        elif state == "completed":  # discarded while it was being stored
            objects.delete(snapshot_id)

    def discard(self, snapshot_id: str) -> None:
        """A snapshot CreateImage began for an image it then could not register: gone at once,
        pending or not; what its upload stores is deleted when the upload ends."""
        with self._lock:
            snap = self._snaps.pop(snapshot_id, None)
            if snap is None:
                return
            with self._store.transaction() as tx:
                tx.delete(KIND, snapshot_id)
                self._tags.drop_in(tx, snapshot_id)
        if snap.state == "completed":
            self._objects().delete(snap.key)

    # --- what CreateVolume restores from -------------------------------------------------------------------

    def source(self, caller: Caller, snapshot_id: str) -> tuple[int, Callable[[], Iterator[bytes]]]:
        snap = self._find(caller, snapshot_id, shared=True)
        if snap.state != "completed":
            raise IncorrectState(f"Snapshot '{snapshot_id}' is '{snap.state}', not 'completed'")
        objects = self._objects()
        return snap.size, lambda: objects.read(snap.key)

    def size_of(self, caller: Caller, snapshot_id: str) -> int:
        """RegisterImage's check of an EBS root: a completed snapshot the caller owns or may restore."""
        snap = self._find(caller, snapshot_id, shared=True)
        if snap.state != "completed":
            raise IncorrectState(f"Snapshot '{snapshot_id}' is '{snap.state}', not 'completed'")
        return snap.size

    # --- DescribeSnapshots, DeleteSnapshot ------------------------------------------------------------------

    def describe(self, caller: Caller, p: dict[str, Any]) -> dict[str, Any]:
        ids = p.get("SnapshotIds") or []
        chosen = wanted(p.get("Filters"), FILTERS)
        if ids and p.get("MaxResults") is not None:
            raise InvalidParameterValue("The parameter snapshotSet cannot be used with the parameter maxResults")
        snaps = [self._find(caller, i, shared=True) for i in dict.fromkeys(ids)] if ids else [
            s for s in self._snaps.values() if self._restorable(caller, s)]
        owners = p.get("OwnerIds") or []
        if owners:
            wanted_owners = {caller.account_id if o == "self" else o for o in owners}
            snaps = [s for s in snaps if s.account_id in wanted_owners]
        restorers = p.get("RestorableByUserIds") or []
        if restorers:
            users = {caller.account_id if u == "self" else u for u in restorers}
            snaps = [s for s in snaps if s.account_id in users or s.public or users & set(s.users)]
        shown = [self._shape(s) for s in sorted(snaps, key=lambda s: (s.started, s.snapshot_id))
                 if matches(chosen, lambda name, s=s: self._fields(s, name))]  # type: ignore[misc]
        items, token = page(shown, p.get("MaxResults"), p.get("NextToken"))
        return {"Snapshots": items, "NextToken": token}

    def _fields(self, s: Snapshot, name: str) -> list[str]:
        fields = {"description": present(s.description), "owner-id": [s.account_id],
                  "progress": [f"{s.progress}%"], "start-time": [timestamp(s.started)],
                  "snapshot-id": [s.snapshot_id], "status": [s.state], "volume-id": [s.volume_id],
                  "volume-size": [str(s.size)], "encrypted": ["false"], "storage-tier": ["standard"],
                  "owner-alias": []}
        return fields[name] if name in fields else tag_fields(self._tags.of(s.snapshot_id), name)

    def _shape(self, s: Snapshot) -> dict[str, Any]:
        return {"SnapshotId": s.snapshot_id, "VolumeId": s.volume_id, "State": s.state, "StartTime": s.started,
                "Progress": f"{s.progress}%", "OwnerId": s.account_id, "Description": s.description,
                "VolumeSize": s.size, "Encrypted": False, "StorageTier": "standard",
                "Tags": tag_list(self._tags.of(s.snapshot_id))}

    def delete(self, caller: Caller, snapshot_id: str) -> None:
        snap = self._find(caller, snapshot_id)
        if snap.state == "pending":
            raise IncorrectState(f"Snapshot '{snapshot_id}' is still pending")
        image_id = self.in_use(snapshot_id)
        if image_id:
            raise InvalidSnapshotInUse(f"The snapshot {snapshot_id} is currently in use by {image_id}")
        if snap.state == "completed":
            self._objects().delete(snap.key)
        with self._lock, self._store.transaction() as tx:
            tx.delete(KIND, snapshot_id)
            self._tags.drop_in(tx, snapshot_id)
            self._snaps.pop(snapshot_id, None)

    # --- createVolumePermission -------------------------------------------------------------------------

    def attribute(self, caller: Caller, snapshot_id: str, attribute: str) -> dict[str, Any]:
        snap = self._find(caller, snapshot_id)
        if attribute == "productCodes":
            return {"SnapshotId": snapshot_id, "ProductCodes": []}
        if attribute != "createVolumePermission":
            raise InvalidParameterValue(f"Value ({quoted(attribute[:32])}) for parameter attribute is invalid.")
        grants = ([{"Group": "all"}] if snap.public else []) + [{"UserId": u} for u in snap.users]
        return {"SnapshotId": snapshot_id, "CreateVolumePermissions": grants}

    def modify(self, caller: Caller, p: dict[str, Any]) -> None:
        snap = self._find(caller, p.get("SnapshotId") or "")
        if p.get("Attribute") not in (None, "createVolumePermission"):
            raise InvalidParameterValue("Only the createVolumePermission attribute can be modified")
        change = p.get("CreateVolumePermission") or {}
        add = list(change.get("Add") or [])
        remove = list(change.get("Remove") or [])
        operation = p.get("OperationType")
        if operation is not None:
            if operation not in ("add", "remove"):
                raise InvalidParameterValue(f"OperationType must be add or remove, not {quoted(str(operation)[:16])}")
            listed = [{"UserId": u} for u in p.get("UserIds") or []] + [{"Group": g} for g in p.get("GroupNames") or []]
            (add if operation == "add" else remove).extend(listed)
        if not add and not remove:
            raise MissingParameter("The request must contain the parameter createVolumePermission")
        users, public = list(snap.users), snap.public
        for grant in add + remove:
            group, user = grant.get("Group"), grant.get("UserId")
            if group not in (None, "all") or (user is not None and not (user.isdigit() and len(user) == 12)):
                raise InvalidParameterValue(f"Invalid createVolumePermission: {quoted(str(group or user)[:32])}")
        for grant in add:
            if grant.get("Group") == "all":
                public = True
            elif grant.get("UserId") and grant["UserId"] not in users:
                users.append(grant["UserId"])
        for grant in remove:
            if grant.get("Group") == "all":
                public = False
            elif grant.get("UserId") in users:
                users.remove(grant["UserId"])
        self._save(snap, users=users, public=public)

    def reset(self, caller: Caller, snapshot_id: str, attribute: str) -> None:
        snap = self._find(caller, snapshot_id)
        if attribute != "createVolumePermission":
            raise InvalidParameterValue("Only the createVolumePermission attribute can be reset")
        self._save(snap, users=[], public=False)

