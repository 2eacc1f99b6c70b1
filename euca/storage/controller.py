"""The Storage Controller (SC): a zone's EBS volumes, their iSCSI exports, and their snapshots' bytes.

The cloud asks it to admit a volume (the size limits are checked and the volume recorded as
``creating``), then to fill it, blank or from a snapshot's stream, which makes it ``available``;
to export it to a node (tgt, one target per volume) or hand an in-box node its path; to stream a
point-in-time copy of it for a snapshot; and to delete it. Its records (``sc-volume``) live in the
cloud's store, so a restarted SC knows its volumes and exports again what was exported: tgtd's
targets do not outlive tgtd.

Snapshots travel as gzip, as Eucalyptus's SC compressed them for Walrus: a mostly empty volume is
a small object, and restoring one leaves its zero runs holes. The stream is made from the
volume's data alone (``euca.storage.gzipped``): its holes cost next to nothing to send.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from euca.core.clock import Clock, wall
from euca.storage import gzipped
from euca.storage.backends import GIB, Backend, StorageError
from euca.storage.tgt import Export, Tgt, iqn_of
from euca.store import Store

log = logging.getLogger("euca.storage")

KIND = "sc-volume"

# bytes of the volume done, of its size
Progress = Callable[[int, int], None]


class VolumeLimit(StorageError):
    """A volume larger than the SC allows, or one that would take it past its total."""

    code = "VolumeLimitExceeded"


@dataclass(frozen=True)
class Limits:
    """Eucalyptus 4's defaults: a volume of at most 100 GB, 500 GB in all per account (2.0 had
    10 and 50). A failed volume's record is kept ``failed_ttl`` seconds (10 minutes), so the
    failure can be seen, then removed with whatever bytes it had."""

    max_volume_gb: int = 100
    max_total_gb: int = 500
    failed_ttl: float = 600.0


class StorageController:
    local = True  # in-box nodes are handed a volume's own file

    def __init__(self, store: Store, backend: Backend, zone: str, *, tgt: Tgt | None = None,
                 limits: Limits | None = None, clock: Clock = wall) -> None:
        self.store, self.backend, self.zone, self.tgt = store, backend, zone, tgt
        self.limits = limits or Limits()
        self.clock = clock
        self._lock = threading.Lock()
        self._volumes: dict[str, dict[str, Any]] = {id_: body for id_, _, body in store.load(KIND)}

    # --- volumes -----------------------------------------------------------------------------------

    def admit(self, volume_id: str, size_gb: int, account: str = "") -> None:
        """Check the limits and record the volume as creating: it counts against its account's
        total from now on (a failed volume no longer does)."""
        if size_gb < 1:
            raise StorageError(f"{volume_id}: a volume is at least 1 GiB")
        if size_gb > self.limits.max_volume_gb:
            raise VolumeLimit(f"Volume size {size_gb} GiB exceeds the maximum of {self.limits.max_volume_gb} GiB")
        with self._lock:
            if volume_id in self._volumes:
                return
            used = sum(v["size"] for v in self._volumes.values()
                       if v["status"] != "failed" and v.get("account", "") == account)
            if used + size_gb > self.limits.max_total_gb:
                raise VolumeLimit(f"The account has {max(0, self.limits.max_total_gb - used)} GiB of its "
                                  f"{self.limits.max_total_gb} GiB of volumes left; {size_gb} GiB were asked for")
            self._put(volume_id, {"size": size_gb, "status": "creating", "export": None, "since": self.clock(),
                                  "account": account})

    def fill(self, volume_id: str, source: Iterable[bytes] | None = None, progress: Progress | None = None) -> None:
        """Make the admitted volume's bytes: blank, or a snapshot's gzip stream written back."""
        record = self._record(volume_id)
        size = int(record["size"]) * GIB
        try:
            if self.backend.exists(volume_id):
                self.backend.delete(volume_id)  # a fill a crash interrupted starts over
            path = self.backend.create(volume_id, int(record["size"]))
            if source is not None:
                with open(path, "r+b") as f:
                    gzipped.unpack(source, f.fileno(), size, progress)
        except Exception as exc:  # a broken source too (Walrus, the network): never left creating
            self._update(volume_id, status="failed", since=self.clock())
            raise StorageError(f"{volume_id}: {exc}") from None
        self._update(volume_id, status="available")

    def delete(self, volume_id: str) -> None:
        with self._lock:
            record = self._volumes.get(volume_id)
        if record is None:
            return
        if record.get("export"):
            self.unexport(volume_id)
        self.backend.delete(volume_id)
        with self._lock, self.store.transaction() as tx:
            tx.delete(KIND, volume_id)
            self._volumes.pop(volume_id, None)

    def describe(self) -> list[dict[str, Any]]:
        with self._lock:
            return [{"volume_id": k, **v} for k, v in sorted(self._volumes.items())]

    # --- attachments -------------------------------------------------------------------------------

    def export(self, volume_id: str, initiator: str = "ALL") -> Export:
        """A target for the volume that ``initiator`` (a node's address) may log in to."""
        record = self._record(volume_id)
        if self.tgt is None:
            raise StorageError(f"{volume_id}: this storage controller has no iSCSI target (tgtd)")
        if record["status"] != "available":
            raise StorageError(f"{volume_id}: not available ({record['status']})")
        found = self.tgt.export(iqn_of(self.zone, volume_id), self.backend.path(volume_id), initiator)
        self._update(volume_id, export={"iqn": found.iqn, "initiator": initiator})
        return found

    def local_path(self, volume_id: str) -> str:
        """For a node in this process (the cloud in a box): the volume's own file."""
        record = self._record(volume_id)
        if record["status"] != "available":
            raise StorageError(f"{volume_id}: not available ({record['status']})")
        return str(self.backend.path(volume_id))

    def unexport(self, volume_id: str) -> None:
        record = self._record(volume_id)
        if record.get("export") and self.tgt is not None:
            self.tgt.unexport(record["export"]["iqn"])
        self._update(volume_id, export=None)

    def restore(self) -> list[str]:
        """At start-up, after a crash as after a clean stop: export again what was exported (tgtd
        forgot it if it restarted), and remove this zone's targets no record holds (an export cut
        off before it was recorded); fail what a crash interrupted (a fill: the volume; a
        snapshot: its point-in-time copy is dropped, the cloud sees its stream end early).
        Returns what was exported."""
        done = []
        for clone_id in self.backend.clones():
            log.info("%s: dropping the copy an interrupted snapshot left", clone_id)
            self.backend.drop_clone(clone_id)
        for volume_id, record in list(self._volumes.items()):
            if record["status"] == "creating":
                self._update(volume_id, status="failed", since=self.clock())
            export = record.get("export")
            if export and self.tgt is not None and record["status"] == "available":
                try:
                    self.tgt.export(export["iqn"], self.backend.path(volume_id), export.get("initiator", "ALL"))
                    done.append(volume_id)
                except StorageError as exc:
                    log.warning("%s: cannot export it again: %s", volume_id, exc)
        if self.tgt is not None:
            self._drop_stray_targets()
        return done

    def _drop_stray_targets(self) -> None:
        assert self.tgt is not None
        ours = iqn_of(self.zone, "")
        with self._lock:
            held = {v["export"]["iqn"] for v in self._volumes.values() if v.get("export")}
        try:
            targets = self.tgt.targets()
        except StorageError as exc:
            log.warning("cannot list tgtd's targets: %s", exc)
            return
        for iqn in targets:
            if iqn.startswith(ours) and iqn not in held:
                log.info("%s: no volume is exported as it; removed", iqn)
                try:
                    self.tgt.unexport(iqn)
                except StorageError as exc:
                    log.warning("%s: %s", iqn, exc)

    def reap(self) -> list[str]:
        """Remove failed volumes (record and bytes) once they have been failed ``failed_ttl``
        seconds, as Eucalyptus's SC removed its failed records after ten minutes."""
        now = self.clock()
        with self._lock:
            old = [k for k, v in self._volumes.items()
                   if v["status"] == "failed" and now - float(v.get("since", 0.0)) >= self.limits.failed_ttl]
        for volume_id in old:
            try:
                self.delete(volume_id)
            except (StorageError, OSError) as exc:
                log.warning("%s: a failed volume could not be removed: %s", volume_id, exc)
        return old

    # --- snapshots ---------------------------------------------------------------------------------

    def snapshot(self, volume_id: str, snapshot_id: str, progress: Progress | None = None) -> Iterator[bytes]:
        """The volume as it is now, gzip-compressed, in chunks: read from a point-in-time clone
        (taken before this returns), so writes made meanwhile are not in it."""
        size, steps = self.snapshot_steps(volume_id, snapshot_id)

        def chunks() -> Iterator[bytes]:
            for done, data in steps:
                if progress is not None:
                    progress(done, size)
                if data:
                    yield data
        return chunks()

    def snapshot_steps(self, volume_id: str, snapshot_id: str) -> tuple[int, Iterator[tuple[int, bytes]]]:
        """The volume's size in bytes, and its snapshot stream as (bytes of the volume read so
        far, gzip bytes): a step may carry no bytes, only progress."""
        record = self._record(volume_id)
        if record["status"] != "available":
            raise StorageError(f"{volume_id}: not available ({record['status']})")
        clone = self.backend.clone(volume_id, snapshot_id)
        size = int(record["size"]) * GIB
        return size, self._deflate(clone.as_posix(), snapshot_id, size)

    def _deflate(self, path: str, snapshot_id: str, size: int) -> Iterator[tuple[int, bytes]]:
        try:
            fd = os.open(path, os.O_RDONLY)
            try:
                yield from gzipped.pack(fd, size)
            finally:
                os.close(fd)
        finally:
            self.backend.drop_clone(snapshot_id)

    # --- records -----------------------------------------------------------------------------------

    def _record(self, volume_id: str) -> dict[str, Any]:
        with self._lock:
            record = self._volumes.get(volume_id)
        if record is None:
            raise StorageError(f"{volume_id}: no such volume on this storage controller")
        return record

    def _put(self, volume_id: str, body: dict[str, Any]) -> None:
        with self.store.transaction() as tx:
            tx.put(KIND, volume_id, "", body)
        self._volumes[volume_id] = body

    def _update(self, volume_id: str, **changes: Any) -> None:
        with self._lock:
            body = {**self._volumes[volume_id], **changes}
            self._put(volume_id, body)
