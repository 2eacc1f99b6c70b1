"""The node controller (NC): one host's instances, from ncRunInstance to Teardown.

A :class:`NodeController` wraps a hypervisor driver (``drivers.libvirt`` on a KVM or Xen host,
``drivers.sim`` in the cloud in a box) and, when it has :class:`NodeStorage`, does what Eucalyptus's
NC does before the hypervisor sees an instance: stage its images into the node's cache and build
its disks (the instance is Staging meanwhile, and a terminate then cancels it). When the driver
reports a domain Shutoff or Crashed, the NC tears it down at once and reports Teardown from the
next poll, so the cloud sees the instance end. Plain synchronous code with an injected clock:
the HTTP service (``euca.node.service``) and the in-process cloud in a box call the same object.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from drivers.protocol import (
    TEARDOWN_FORGET,
    Attaching,
    Driver,
    InstanceSpec,
    InstanceStatus,
    NcState,
    NodeError,
    NodeResources,
    VolumeAttachment,
)
from euca.core.clock import Clock, wall
from euca.node import wire
from euca.node.disks import InstanceDisks
from euca.node.images import ImageCache, ImageSource, Locations, Progress

log = logging.getLogger("euca.node")

ENDED = (NcState.SHUTOFF, NcState.CRASHED)


class NodeStorage:
    """A node's INSTANCE_PATH: the image cache under ``eucalyptus/cache`` and the instances' disks,
    with CONCURRENT_DISK_OPS bounding the copies and digests that run at once."""

    def __init__(self, instance_path: str | Path, source: ImageSource, *, cache_size_mb: int = 999999,
                 concurrent_disk_ops: int = 4, swap_mb: int = 512, clock: Clock = wall,
                 progress: Progress | None = None) -> None:
        if concurrent_disk_ops < 1:
            raise ValueError("CONCURRENT_DISK_OPS must be at least 1")
        path = Path(instance_path)
        self.path = path
        self.disk_ops = threading.Semaphore(concurrent_disk_ops)
        self.cache = ImageCache(path / "eucalyptus" / "cache", cache_size_mb, source, self.disk_ops, clock, progress)
        self.disks = InstanceDisks(path, swap_mb)

    def stage(self, spec: InstanceSpec, locations: Locations) -> None:
        """Fetch (or verify) the instance's emi, eki and eri and build its directory. An EBS-backed
        instance's root is its volume: only its kernel and ramdisk are staged."""
        machine = spec.image_id if spec.root_volume is None else ""
        wanted = [i for i in (machine, spec.kernel_id, spec.ramdisk_id) if i]
        missing = [i for i in wanted if not locations.get(i)]
        if missing:
            raise NodeError(f"{spec.instance_id}: no location given for {', '.join(missing)}")
        files = self.disks.files(spec.account, spec.instance_id)
        acquired: list[str] = []
        try:
            paths = {}
            for image_id in wanted:
                paths[image_id] = self.cache.acquire(image_id, locations[image_id])
                acquired.append(image_id)
            with self.disk_ops:
                self.disks.create(files, spec.disk, paths.get(machine),
                                  paths.get(spec.kernel_id), paths.get(spec.ramdisk_id))
            self.keep_record(spec)
        except BaseException:
            for image_id in acquired:
                self.cache.release(image_id)
            self.disks.remove(files)
            raise

    def keep_record(self, spec: InstanceSpec) -> None:
        """Write the instance's spec beside its disks (``instance.json``)."""
        import orjson

        files = self.disks.files(spec.account, spec.instance_id)
        files.directory.mkdir(parents=True, exist_ok=True)
        temporary = files.record.with_suffix(".tmp")
        temporary.write_bytes(orjson.dumps(wire.spec_to_json(spec)))
        temporary.replace(files.record)

    def recorded(self, instance_id: str) -> InstanceSpec | None:
        """The spec kept for an instance by an earlier node controller, wherever its account's
        directory is; None if there is none (or it cannot be read)."""
        import glob

        import orjson

        for record in self.path.glob(f"*/{glob.escape(instance_id)}/instance.json"):
            try:
                return wire.spec_from_json(orjson.loads(record.read_bytes()))
            except (OSError, ValueError) as exc:
                log.warning("%s: unreadable: %s", record, exc)
        return None

    def teardown(self, spec: InstanceSpec) -> None:
        self.disks.remove(self.disks.files(spec.account, spec.instance_id))
        machine = spec.image_id if spec.root_volume is None else ""
        for image_id in (machine, spec.kernel_id, spec.ramdisk_id):
            if image_id:
                self.cache.release(image_id)


@dataclass
class _Starting:
    spec: InstanceSpec
    state: NcState
    since: float
    ended: float = float("inf")
    error: str = ""


class NodeController:
    """ncRunInstance, ncTerminateInstance, ncRebootInstance, ncGetConsoleOutput, ncDescribeResource and
    ncDescribeInstances over one driver."""

    def __init__(self, driver: Driver, storage: NodeStorage | None = None, *,
                 clock: Clock = wall, name: str = "node") -> None:
        self.driver = driver
        self.storage = storage
        self.clock = clock
        self.name = name
        self._lock = threading.RLock()
        self._starting: dict[str, _Starting] = {}
        self._specs: dict[str, InstanceSpec] = {}
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix=f"nc-{name}") if storage else None
        # instance -> volume id -> how it is attached; kept in INSTANCE_PATH/eucalyptus/volumes.json
        self._volumes: dict[str, dict[str, VolumeAttachment]] = {}
        self._volumes_file = storage.path / "eucalyptus" / "volumes.json" if storage else None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    # --- requests from the cluster controller -------------------------------------------------------

    def run(self, spec: InstanceSpec, locations: Locations | None = None, *, wait: bool = False) -> None:
        """ncRunInstance. With storage the instance is Staging while its images and disks are made
        in the background (``wait`` makes that synchronous); without it the driver starts it now."""
        with self._lock:
            if spec.instance_id in self._starting or spec.instance_id in self._specs:
                raise NodeError(f"{spec.instance_id}: already on node {self.name}")
            if self._pool is None:
                self.driver.start(spec)
                self._specs[spec.instance_id] = spec
                return
            self._starting[spec.instance_id] = _Starting(spec, NcState.STAGING, self.clock())
        future = self._pool.submit(self._stage_and_start, spec, dict(locations or {}))
        if wait:
            future.result()

    def adopt(self, spec: InstanceSpec) -> None:
        """An instance the hypervisor already runs (it outlived a restart of this controller): its
        files are kept and it is torn down like any other."""
        with self._lock:
            self._specs[spec.instance_id] = spec

    def terminate(self, instance_id: str) -> None:
        """ncTerminateInstance: a staging instance is cancelled; a running one is destroyed and its
        disks removed and images unpinned."""
        with self._lock:
            starting = self._starting.get(instance_id)
            if starting is not None:
                if starting.state is not NcState.STAGING:
                    raise NodeError(f"{instance_id}: no such running instance on node {self.name}")
                starting.state = NcState.CANCELED
                return
            self.driver.terminate(instance_id)
            spec = self._specs.pop(instance_id, None)
            if self._volumes.pop(instance_id, None):
                self._save_volumes()
        if spec is not None and self.storage is not None:
            self.storage.teardown(spec)

    def reboot(self, instance_id: str) -> None:
        with self._lock:
            if instance_id in self._starting:
                raise NodeError(f"{instance_id}: cannot reboot an instance that is still staging")
            self.driver.reboot(instance_id)

    def console(self, instance_id: str) -> str:
        with self._lock:
            if instance_id in self._starting:
                return ""
        return self.driver.console_output(instance_id)

    def describe_resources(self) -> NodeResources:
        """The driver's report, less what staging instances will take (the hypervisor does not know
        them yet, and the CC must not place onto their room)."""
        report = self.driver.describe_resources()
        with self._lock:
            staging = [s.spec for s in self._starting.values() if s.state in (NcState.STAGING, NcState.CANCELED)]
        if not staging:
            return report
        return replace(report,
                       free_cores=max(0, report.free_cores - sum(s.cores for s in staging)),
                       free_memory=max(0, report.free_memory - sum(s.memory for s in staging)),
                       free_disk=max(0, report.free_disk - sum(s.disk for s in staging)),
                       instances=report.instances + len(staging))

    def describe_instances(self) -> list[InstanceStatus]:
        """Every instance on the node. One that the hypervisor reports Shutoff or Crashed is torn
        down now (Eucalyptus's monitor) and shows Teardown from the next poll on."""
        statuses = self.driver.instances()
        for status in statuses:
            if status.state in ENDED:
                log.info("%s: %s on node %s; tearing it down", status.instance_id, status.state.value, self.name)
                try:
                    self.terminate(status.instance_id)
                except NodeError as exc:
                    log.warning("%s", exc)
        now = self.clock()
        with self._lock:
            for instance_id, s in list(self._starting.items()):
                if s.state is NcState.TEARDOWN and now - s.ended >= TEARDOWN_FORGET:
                    del self._starting[instance_id]
            known = {s.instance_id for s in statuses}
            extra = [InstanceStatus(i, s.state, s.since) for i, s in self._starting.items() if i not in known]
        return statuses + extra

    # --- volumes (ncAttachVolume, ncDetachVolume) ----------------------------------------------------

    def attach_volume(self, instance_id: str, volume: VolumeAttachment) -> None:
        """Hot-plug an EBS volume into a running instance."""
        with self._lock:
            if instance_id in self._starting or instance_id not in self._specs:
                raise NodeError(f"{instance_id}: no such running instance on node {self.name}")
            if not isinstance(self.driver, Attaching):
                raise NodeError(f"{instance_id}: this node's hypervisor cannot attach volumes")
            held = self._volumes.get(instance_id, {})
            if volume.volume_id in held:
                return
            if any(v.device == volume.device for v in held.values()):
                raise NodeError(f"{instance_id}: {volume.device} is already in use")
            self.driver.attach_volume(instance_id, volume)
            self._volumes.setdefault(instance_id, {})[volume.volume_id] = volume
            self._save_volumes()

    def detach_volume(self, instance_id: str, volume_id: str) -> None:
        with self._lock:
            volume = self._volumes.get(instance_id, {}).get(volume_id)
            if volume is None:
                raise NodeError(f"{instance_id}: {volume_id} is not attached on node {self.name}")
            if isinstance(self.driver, Attaching) and instance_id in self._specs:
                self.driver.detach_volume(instance_id, volume)
            del self._volumes[instance_id][volume_id]
            if not self._volumes[instance_id]:
                del self._volumes[instance_id]
            self._save_volumes()

    def volumes(self) -> dict[str, list[VolumeAttachment]]:
        """Every attachment on this node, by instance."""
        with self._lock:
            return {i: list(v.values()) for i, v in self._volumes.items()}

    def _save_volumes(self) -> None:
        if self._volumes_file is None:
            return
        import orjson

        body = {i: [asdict(v) for v in vs.values()] for i, vs in self._volumes.items()}
        self._volumes_file.parent.mkdir(parents=True, exist_ok=True)
        temporary = self._volumes_file.with_suffix(".tmp")
        temporary.write_bytes(orjson.dumps(body))
        temporary.replace(self._volumes_file)

    def _load_volumes(self, live: set[str]) -> None:
        if self._volumes_file is None or not self._volumes_file.exists():
            return
        import orjson

        try:
            body = orjson.loads(self._volumes_file.read_bytes())
            found = {i: {v["volume_id"]: VolumeAttachment(**v) for v in vs} for i, vs in body.items() if i in live}
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            log.warning("%s: unreadable, attachments forgotten: %s", self._volumes_file, exc)
            found = {}
        with self._lock:
            self._volumes = found
            self._save_volumes()

    def recover(self) -> list[str]:
        """At start-up: remove the directories of instances the hypervisor no longer runs (the node
        controller or the host died with them), and take back those it still runs, with their
        volumes, so they can be attached to, detached from and torn down as before. Returns the
        removed instances' ids."""
        if self.storage is None:
            return []
        live = {s.instance_id for s in self.driver.instances() if s.state is not NcState.TEARDOWN}
        for instance_id in sorted(live):
            spec = self.storage.recorded(instance_id)
            if spec is None:
                log.warning("%s: running, but no record of it under %s; not adopted", instance_id, self.storage.path)
                continue
            log.info("%s: adopted (it outlived the last node controller)", instance_id)
            self.adopt(spec)
        self._load_volumes(live)
        swept = []
        for files in self.storage.disks.leftovers(live):
            log.info("removing %s: its instance is no longer running", files.directory)
            self.storage.disks.remove(files)
            swept.append(files.directory.name)
        return swept

    # --- internals ----------------------------------------------------------------------------------

    def _stage_and_start(self, spec: InstanceSpec, locations: Locations) -> None:
        assert self.storage is not None
        try:
            self.storage.stage(spec, locations)
        except Exception as exc:
            self._failed(spec, str(exc))
            return
        with self._lock:
            starting = self._starting[spec.instance_id]
            if starting.state is NcState.CANCELED:
                self.storage.teardown(spec)
                starting.state, starting.ended = NcState.TEARDOWN, self.clock()
                return
            starting.state = NcState.BOOTING
            try:
                self.driver.start(spec)
            except NodeError as exc:
                self.storage.teardown(spec)
                starting.state, starting.ended, starting.error = NcState.TEARDOWN, self.clock(), str(exc)
                log.warning("%s", exc)
                return
            del self._starting[spec.instance_id]
            self._specs[spec.instance_id] = spec

    def _failed(self, spec: InstanceSpec, error: str) -> None:
        log.warning("%s: staging failed on node %s: %s", spec.instance_id, self.name, error)
        with self._lock:
            starting = self._starting[spec.instance_id]
            starting.state, starting.ended, starting.error = NcState.TEARDOWN, self.clock(), error
