"""A node controller's hypervisor side on a KVM or Xen host, through libvirt-python.

The driver connects by URI (``qemu:///system``, ``xen:///system``, or libvirt's in-process
``test:///...`` driver), starts each instance as a transient domain named after the instance id,
and keeps a table of the instances it started with the NC state of each (Eucalyptus 2.0's
``ncInstance`` list). States come from two places, as in Eucalyptus's monitor thread: lifecycle
events, when the connection delivers them, and a lookup of every domain whenever the node is
asked for its instances (the CC's poll). A domain that cannot be found five lookups in a row has
vanished behind the node's back (destroyed by hand, or its host process died) and is Shutoff;
one that crashed is Crashed. Terminated instances stay in Teardown for 180 s so the CC sees
them end, then are forgotten.

Every libvirt failure becomes a :class:`~drivers.protocol.NodeError` naming the instance and
carrying libvirt's own message.
"""

from __future__ import annotations

import collections
import logging
import shutil
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import libvirt

from drivers.libvirt.domain import DomainLayout, volume_xml
from drivers.protocol import (
    TEARDOWN_FORGET,
    Clock,
    InstanceFiles,
    InstanceSpec,
    InstanceStatus,
    NcState,
    NodeError,
    NodeResources,
    VolumeAttachment,
)

log = logging.getLogger("drivers.libvirt")


# Eucalyptus 2.0: a domain missing from five hypervisor lookups in a row is taken as shut off.
VANISHED_AFTER = 5
SEGMENT_WAIT = 30.0  # seconds a MANAGED node waits for an instance's segment bridge to appear
# EC2 returns at most the last 64 KiB of a console.
CONSOLE_LIMIT = 64 * 1024
# A KVM host keeps memory for itself (Eucalyptus reserves 256 MB).
KVM_HOST_MEMORY = 256
MB = 1024 * 1024
GB = 1024 * MB

_STATES = {
    libvirt.VIR_DOMAIN_RUNNING: NcState.RUNNING,
    libvirt.VIR_DOMAIN_BLOCKED: NcState.BLOCKED,
    libvirt.VIR_DOMAIN_PAUSED: NcState.PAUSED,
    libvirt.VIR_DOMAIN_SHUTDOWN: NcState.SHUTDOWN,
    libvirt.VIR_DOMAIN_SHUTOFF: NcState.SHUTOFF,
    libvirt.VIR_DOMAIN_CRASHED: NcState.CRASHED,
    libvirt.VIR_DOMAIN_PMSUSPENDED: NcState.PAUSED,
}


def nc_state(libvirt_state: int, current: NcState = NcState.BOOTING) -> NcState:
    """The NC state for a libvirt domain state; NOSTATE (still being created) keeps the current one."""
    return _STATES.get(libvirt_state, current)


def _event_state(event: int, detail: int) -> NcState | None:
    if event in (libvirt.VIR_DOMAIN_EVENT_STARTED, libvirt.VIR_DOMAIN_EVENT_RESUMED):
        return NcState.RUNNING
    if event == libvirt.VIR_DOMAIN_EVENT_SUSPENDED:
        return NcState.PAUSED
    if event == libvirt.VIR_DOMAIN_EVENT_SHUTDOWN:
        return NcState.SHUTDOWN
    if event == libvirt.VIR_DOMAIN_EVENT_CRASHED:
        return NcState.CRASHED
    if event == libvirt.VIR_DOMAIN_EVENT_STOPPED:
        return NcState.CRASHED if detail == libvirt.VIR_DOMAIN_EVENT_STOPPED_CRASHED else NcState.SHUTOFF
    return None


def _quiet(_ctx: object, _err: object) -> None:
    """libvirt prints every error to stderr unless a handler takes it; ours become NodeErrors instead."""


libvirt.registerErrorHandler(_quiet, None)

_event_loop_lock = threading.Lock()
_event_loop_started = False


def _ensure_event_loop() -> None:
    """libvirt delivers lifecycle events through an event loop that must exist before a connection
    opens; one daemon thread per process runs it."""
    global _event_loop_started
    with _event_loop_lock:
        if _event_loop_started:
            return
        libvirt.virEventRegisterDefaultImpl()

        def run() -> None:
            while True:
                libvirt.virEventRunDefaultImpl()

        threading.Thread(target=run, name="libvirt-events", daemon=True).start()
        _event_loop_started = True


@dataclass
class _Domain:
    spec: InstanceSpec
    state: NcState
    launched: float
    misses: int = 0
    ended: float = float("inf")


def _message(exc: libvirt.libvirtError) -> str:
    return str(exc.get_error_message() or exc)


class LibvirtDriver:
    """One node's hypervisor through libvirt, satisfying ``drivers.protocol.Driver``.

    ``layout`` is the domain XML for HYPERVISOR; ``instance_path`` is INSTANCE_PATH, where the
    node controller put each instance's files; ``overrides`` are MAX_CORES / MAX_MEM (MB) /
    MAX_DISK (GB), 0 keeping what the hypervisor and the file system report.
    """

    def __init__(
        self,
        uri: str,
        *,
        layout: DomainLayout | None = None,
        instance_path: str | Path = "/var/lib/eucalyptus/instances",
        overrides: tuple[int, int, int] = (0, 0, 0),
        clock: Clock = time.time,
        events: bool = True,
    ) -> None:
        self.uri = uri
        self.layout = layout or DomainLayout()
        self.instance_path = Path(instance_path)
        self.overrides = overrides
        self.clock = clock
        if events:
            _ensure_event_loop()
        try:
            self.connection: Any = libvirt.open(uri)
        except libvirt.libvirtError as exc:
            raise NodeError(f"cannot connect to the hypervisor at {uri}: {_message(exc)}") from None
        self._lock = threading.RLock()
        self._domains: dict[str, _Domain] = {}
        # Events arrive on libvirt's thread; they are queued and applied under the lock by the next call.
        self._events: collections.deque[tuple[str, NcState]] = collections.deque()
        self._callback: int | None = None
        if events:
            try:
                self._callback = self.connection.domainEventRegisterAny(
                    None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._on_event, None)
            except libvirt.libvirtError as exc:
                log.warning("%s: no lifecycle events, polling only: %s", uri, _message(exc))
        self._adopt()

    def close(self) -> None:
        with self._lock:
            try:
                if self._callback is not None:
                    self.connection.domainEventDeregisterAny(self._callback)
                self.connection.close()
            except libvirt.libvirtError as exc:
                log.warning("%s: closing: %s", self.uri, _message(exc))
            self._callback = None

    # --- the Driver protocol ----------------------------------------------------------------------

    def describe_resources(self) -> NodeResources:
        """ncDescribeResource: cores and memory from the hypervisor (``getInfo``), disk from the file
        system holding INSTANCE_PATH, each overridden by MAX_*. What is free is the maximum less what
        this node's instances were given, as Eucalyptus counts it: the host's own free memory moves
        with its page cache and would make the CC's numbers jitter."""
        try:
            info = self.connection.getInfo()
        except libvirt.libvirtError as exc:
            raise NodeError(f"{self.uri}: describe resources: {_message(exc)}") from None
        memory = int(info[1])
        if self.layout.hypervisor != "xen":
            memory = max(0, memory - KVM_HOST_MEMORY)
        detected = (int(info[2]), memory, self._disk_gb())
        cores, mem, disk = (o or d for o, d in zip(self.overrides, detected, strict=True))
        with self._lock:
            self._apply_events()
            live = [d.spec for d in self._domains.values() if d.state is not NcState.TEARDOWN]
        used = (sum(s.cores for s in live), sum(s.memory for s in live), sum(s.disk for s in live))
        return NodeResources(cores, mem, disk, max(0, cores - used[0]), max(0, mem - used[1]),
                             max(0, disk - used[2]), len(live))

    def start(self, spec: InstanceSpec) -> None:
        """ncRunInstance's last step: the files are in place; create the transient domain (Booting)."""
        files = InstanceFiles.of(self.instance_path, spec.account, spec.instance_id)
        try:
            xml = self.layout.xml(spec, files, ephemeral=files.ephemeral.exists(), swap=files.swap.exists())
        except ValueError as exc:
            raise NodeError(str(exc)) from None
        # MANAGED: the node's network agent makes the group's segment bridge once the cloud's view
        # shows the instance, which may be a moment after the node is asked to start it
        deadline = time.monotonic() + (SEGMENT_WAIT if self.layout.vlan_bridges else 0)
        while True:
            with self._lock:
                known = self._domains.get(spec.instance_id)
                if known is not None and known.state is not NcState.TEARDOWN:
                    raise NodeError(f"{spec.instance_id}: already on this node ({known.state.value})")
                try:
                    self.connection.createXML(xml, 0)
                except libvirt.libvirtError as exc:
                    if "No such device" not in _message(exc) or time.monotonic() > deadline:
                        raise NodeError(f"{spec.instance_id}: cannot start the domain: {_message(exc)}") from None
                else:
                    self._domains[spec.instance_id] = _Domain(spec, NcState.BOOTING, self.clock())
                    return
            time.sleep(0.25)

    def reboot(self, instance_id: str) -> None:
        with self._lock:
            entry = self._live(instance_id)
            try:
                self.connection.lookupByName(instance_id).reboot(0)
            except libvirt.libvirtError as exc:
                raise NodeError(f"{instance_id}: cannot reboot: {_message(exc)}") from None
            entry.state = NcState.BOOTING

    def terminate(self, instance_id: str) -> None:
        """Destroy the domain (a vanished one is already gone) and put the instance in Teardown."""
        with self._lock:
            entry = self._live(instance_id)
            try:
                dom = self.connection.lookupByName(instance_id)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                    raise NodeError(f"{instance_id}: cannot terminate: {_message(exc)}") from None
                dom = None
            if dom is not None:
                try:
                    # A transient domain is gone once destroyed, so ask about persistence first.
                    persistent = dom.isPersistent()
                    if dom.isActive():
                        dom.destroy()
                    if persistent:
                        dom.undefine()
                except libvirt.libvirtError as exc:
                    raise NodeError(f"{instance_id}: cannot terminate: {_message(exc)}") from None
            entry.state = NcState.TEARDOWN
            entry.ended = self.clock()

    def attach_volume(self, instance_id: str, volume: VolumeAttachment) -> None:
        """virDomainAttachDevice on the running domain (and its definition, if it has one)."""
        self._plug(instance_id, volume, attach=True)

    def detach_volume(self, instance_id: str, volume: VolumeAttachment) -> None:
        """virDomainDetachDevice: the guest is asked to let the disk go."""
        self._plug(instance_id, volume, attach=False)

    def _plug(self, instance_id: str, volume: VolumeAttachment, *, attach: bool) -> None:
        try:
            xml = volume_xml(volume, "xen" if self.layout.hypervisor == "xen" else "virtio")
        except ValueError as exc:
            raise NodeError(f"{instance_id}: {exc}") from None
        what = "attach" if attach else "detach"
        with self._lock:
            self._live(instance_id)
            try:
                dom = self.connection.lookupByName(instance_id)
                flags = libvirt.VIR_DOMAIN_AFFECT_LIVE
                if dom.isPersistent():
                    flags |= libvirt.VIR_DOMAIN_AFFECT_CONFIG
                if attach:
                    dom.attachDeviceFlags(xml, flags)
                else:
                    dom.detachDeviceFlags(xml, flags)
            except libvirt.libvirtError as exc:
                raise NodeError(f"{instance_id}: cannot {what} {volume.volume_id}: {_message(exc)}") from None

    def volumes(self, instance_id: str) -> list[str]:
        """The EBS volumes (disks whose serial is a volume id) the running domain has now."""
        try:
            xml = self.connection.lookupByName(instance_id).XMLDesc(0)
        except libvirt.libvirtError:
            return []
        return [s.text for s in ET.fromstring(xml).iter("serial") if s.text and s.text.startswith("vol-")]

    def instances(self) -> list[InstanceStatus]:
        """Every instance this node knows, its state refreshed from the hypervisor."""
        now = self.clock()
        with self._lock:
            self._apply_events()
            for instance_id, entry in list(self._domains.items()):
                if entry.state is NcState.TEARDOWN:
                    if now - entry.ended >= TEARDOWN_FORGET:
                        del self._domains[instance_id]
                    continue
                self._refresh(instance_id, entry)
            return [InstanceStatus(i, d.state, d.launched) for i, d in self._domains.items()]

    def console_output(self, instance_id: str) -> str:
        """The newest 64 KiB of the serial console's log (empty before the guest wrote anything)."""
        with self._lock:
            entry = self._domains.get(instance_id)
            if entry is None:
                raise NodeError(f"{instance_id}: no such instance on this node")
            log_file = InstanceFiles.of(self.instance_path, entry.spec.account, instance_id).console_log
        try:
            with open(log_file, "rb") as f:
                size = f.seek(0, 2)
                f.seek(max(0, size - CONSOLE_LIMIT))
                data = f.read(CONSOLE_LIMIT)
        except FileNotFoundError:
            return ""
        except OSError as exc:
            raise NodeError(f"{instance_id}: cannot read the console: {exc.strerror}") from None
        return data.decode("utf-8", "replace")

    # --- internals ----------------------------------------------------------------------------------

    def _live(self, instance_id: str) -> _Domain:
        self._apply_events()
        entry = self._domains.get(instance_id)
        if entry is None or entry.state is NcState.TEARDOWN:
            raise NodeError(f"{instance_id}: no such running instance on this node")
        return entry

    def _refresh(self, instance_id: str, entry: _Domain) -> None:
        try:
            state = self.connection.lookupByName(instance_id).state(0)[0]
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                raise NodeError(f"{instance_id}: cannot read its state: {_message(exc)}") from None
            entry.misses += 1
            if entry.misses >= VANISHED_AFTER and entry.state not in (NcState.SHUTOFF, NcState.CRASHED):
                log.warning("%s: domain vanished from the hypervisor; Shutoff", instance_id)
                entry.state = NcState.SHUTOFF
            return
        entry.misses = 0
        entry.state = nc_state(state, entry.state)

    def _on_event(self, _conn: Any, dom: Any, event: int, detail: int, _opaque: Any) -> None:
        state = _event_state(event, detail)
        if state is not None:
            self._events.append((dom.name(), state))

    def _apply_events(self) -> None:
        while self._events:
            instance_id, state = self._events.popleft()
            entry = self._domains.get(instance_id)
            if entry is not None and entry.state is not NcState.TEARDOWN:
                entry.state = state

    def _disk_gb(self) -> int:
        path = self.instance_path
        while not path.exists() and path != path.parent:
            path = path.parent
        return int(shutil.disk_usage(path).total // GB)

    def _adopt(self) -> None:
        """Domains named like instances that outlived a restart of the node controller are taken
        back (Eucalyptus's ``adopt_instances``), so they are reported and their files are kept."""
        try:
            domains = self.connection.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)
        except libvirt.libvirtError as exc:
            raise NodeError(f"{self.uri}: cannot list domains: {_message(exc)}") from None
        for dom in domains:
            name = dom.name()
            if not name.startswith("i-"):
                continue
            try:
                state, _, memory_kib, vcpus, _ = dom.info()
                account = self._account_of(dom.XMLDesc(0), name)
            except libvirt.libvirtError as exc:
                log.warning("%s: cannot adopt: %s", name, _message(exc))
                continue
            spec = InstanceSpec(name, "", account, "", int(vcpus), int(memory_kib) // 1024, 0, "")
            self._domains[name] = _Domain(spec, nc_state(state, NcState.RUNNING), self.clock())
            log.info("%s: adopted a running domain", name)

    def _account_of(self, xml: str, instance_id: str) -> str:
        """The owner of an adopted domain, from where its root disk lives (INSTANCE_PATH/<account>/<instance>/)."""
        try:
            root = ET.fromstring(xml)
        except ET.ParseError:
            return ""
        # the root disk's file, or (an EBS-backed instance's root is a network disk) the console's log
        for element in (*root.iter("source"), *root.iter("log")):
            path = Path(element.get("file", ""))
            if path.parent.name == instance_id and path.parent.parent.parent == self.instance_path:
                return path.parent.parent.name
        return ""
