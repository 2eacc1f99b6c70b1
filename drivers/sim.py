"""An in-memory node controller: the ``sim`` driver.

A simulated node holds instances the way an NC does, without a hypervisor. Time comes from an
injected clock, so the same class serves a real-time "cloud in a box" (the cloud's wall clock) and the
SimPy capacity planner (``lambda: env.now``). Nothing here schedules events: an instance's state is
read off the clock against the times it was given when it started (image staged, then booted), so a
node costs nothing between the cluster controller's calls.

Power follows Eucalyptus's POWERSAVE vocabulary: a node is UP, DOWN (failed or unreachable),
ASLEEP (``powernap-now``) or WAKING (woken by wake-on-LAN, up after its power-up delay). Its power
draw is ``watts_idle`` plus ``watts_busy - watts_idle`` in proportion to the cores in use when
powered, ``watts_asleep`` asleep and nothing when DOWN.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, NamedTuple

from drivers.protocol import (
    TEARDOWN_FORGET,
    Clock,
    InstanceSpec,
    InstanceStatus,
    NcState,
    NodeError,
    NodeResources,
    VolumeAttachment,
)
from pyx.placement import ASLEEP, DOWN, POWER_STATES, UP, WAKING
from pyx.untrack import untracked


@dataclass(frozen=True)
class NodeShape:
    """What a node is: its capacity, how it boots instances and powers itself, and what it draws."""

    cores: int = 32
    memory: int = 65536  # MB
    disk: int = 2000  # GB
    boot_time: float = 20.0  # s from image staged to Running
    power_up: float = 90.0  # s from wake-on-LAN to answering polls
    power_down: float = 20.0  # s of powernap-now before the node draws its asleep power
    watts_idle: float = 150.0
    watts_busy: float = 300.0
    watts_asleep: float = 5.0

    def __post_init__(self) -> None:
        for what in ("cores", "memory", "disk"):
            if getattr(self, what) < 1:
                raise ValueError(f"a node needs at least one unit of {what}")
        for what in ("boot_time", "power_up", "power_down", "watts_idle", "watts_busy", "watts_asleep"):
            if getattr(self, what) < 0:
                raise ValueError(f"a node's {what} cannot be negative")


INF = float("inf")
_new = tuple.__new__  # builds a named tuple without the Python-level __new__ frame


class _Vm(NamedTuple):
    """An instance on the node, as ``console_output`` reads it (the node keeps it as a ``_Row``)."""

    spec: InstanceSpec
    started: float  # ncRunInstance arrived
    staged: float  # image in place (from the cache or Walrus): Staging ends, Booting begins
    running: float  # Booting ends
    ended: float = INF  # Teardown begins


# How a node stores a _Vm: one plain tuple, the four times (started, staged, running, ended) and
# then the spec's fields, so that one object per instance stays alive.
_Row = tuple[Any, ...]
_SPEC = 4  # where the spec's fields begin
_CORES, _MEMORY, _DISK = _SPEC + 4, _SPEC + 5, _SPEC + 6


def _view(row: _Row) -> _Vm:
    return _new(_Vm, (_new(InstanceSpec, row[_SPEC:]), *row[:_SPEC]))


class SimNode:
    """One simulated node controller, satisfying ``drivers.protocol.Driver``."""

    def __init__(self, name: str, shape: NodeShape | None = None, clock: Clock = time.time) -> None:
        self.name = name
        self.shape = shape or NodeShape()
        self.clock = clock
        self.state = UP
        self.awake_at = 0.0  # when a WAKING node answers again
        self.asleep_at = 0.0  # when an ASLEEP node has finished powering down
        self.used_cores = 0
        self.used_memory = 0
        self.used_disk = 0
        # Live instances, as _Rows: plain tuples of plain values, which the collector need not track
        # (never named tuples; ``untracked`` stops it at once), and a planning run keeps a hundred
        # thousand instances on its nodes.
        self._vms: dict[str, _Row] = {}
        # Ended instances in two generations, each as (when it ended, its row as it ran): those ended
        # since ``_gen_start`` and those of the generation before. A generation older than
        # TEARDOWN_FORGET is dropped whole, so ending an instance costs no queue; ``instances``
        # reports Teardown only for those ended < 180 s ago.
        self._ended: dict[str, tuple[float, _Row]] = {}
        self._ended_before: dict[str, tuple[float, _Row]] = {}
        self._gen_start = 0.0
        # instance -> device -> the volume attached there (only instances that have volumes)
        self.volumes: dict[str, dict[str, VolumeAttachment]] = {}

    # --- the Driver protocol ----------------------------------------------------------------------

    def describe_resources(self) -> NodeResources:
        s = self.shape
        return NodeResources(s.cores, s.memory, s.disk, s.cores - self.used_cores,
                             s.memory - self.used_memory, s.disk - self.used_disk, len(self._vms))

    def start(self, spec: InstanceSpec, *, staged: float | None = None) -> None:
        """ncRunInstance. ``staged`` is when the image will be in place (default: now, a cache hit);
        the instance boots for the node's ``boot_time`` after that, or after the node wakes."""
        instance_id, now = spec.instance_id, self.clock()
        if instance_id in self._vms or ((instance_id in self._ended or instance_id in self._ended_before)
                                        and self._ended_vm(instance_id, now) is not None):
            raise NodeError(f"{instance_id}: already on node {self.name}")
        if self.state == DOWN:
            raise NodeError(f"{instance_id}: node {self.name} is down")
        s = self.shape
        cores, memory, disk = spec.cores, spec.memory, spec.disk
        if (self.used_cores + cores > s.cores or self.used_memory + memory > s.memory
                or self.used_disk + disk > s.disk):
            raise NodeError(f"{instance_id}: not enough resources on node {self.name} for a {spec.vmtype}")
        ready = now if staged is None or staged < now else staged
        if self.state == WAKING and self.awake_at > ready:
            ready = self.awake_at
        # Concatenation: half the cost of (..., *spec), and this runs once per simulated instance.
        self._vms[instance_id] = untracked((now, ready, ready + s.boot_time, INF) + spec)  # noqa: RUF005
        self.used_cores += cores
        self.used_memory += memory
        self.used_disk += disk

    def reboot(self, instance_id: str) -> None:
        vm = self._live(instance_id)
        now = self.clock()
        if now < vm[2]:
            raise NodeError(f"{instance_id}: cannot reboot an instance that is still {self._state(vm, now).value}")
        self._vms[instance_id] = (vm[0], now, now + self.shape.boot_time, INF) + vm[_SPEC:]  # noqa: RUF005

    def terminate(self, instance_id: str) -> None:
        """The instance goes to Teardown and its resources are free at once."""
        vm = self._vms.pop(instance_id, None)
        if vm is None:
            raise NodeError(f"{instance_id}: no such running instance on node {self.name}")
        now = self.clock()
        if now - self._gen_start >= TEARDOWN_FORGET:
            self._forget(now)
        self._ended[instance_id] = untracked((now, vm))
        if self.volumes:
            self.volumes.pop(instance_id, None)
        self.used_cores -= vm[_CORES]
        self.used_memory -= vm[_MEMORY]
        self.used_disk -= vm[_DISK]

    def instances(self) -> list[InstanceStatus]:
        now = self.clock()
        self._forget(now)
        out = [InstanceStatus(i, self._state(vm, now), vm[0]) for i, vm in self._vms.items()]
        for ended in (self._ended_before, self._ended):
            out += [InstanceStatus(i, NcState.TEARDOWN, vm[0]) for i, (at, vm) in ended.items()
                    if now - at < TEARDOWN_FORGET]
        return out

    def console_output(self, instance_id: str) -> str:
        now = self.clock()
        row = self._vms.get(instance_id) or self._ended_vm(instance_id, now)
        if row is None:
            raise NodeError(f"{instance_id}: no such instance on node {self.name}")
        vm = _view(row)
        lines = [f"[{vm.started:12.3f}] {instance_id}: staging {vm.spec.image_id} on {self.name}"]
        if now >= vm.staged:
            lines.append(f"[{vm.staged:12.3f}] {instance_id}: booting {vm.spec.vmtype}")
        if now >= vm.running:
            lines.append(f"[{vm.running:12.3f}] {instance_id}: login prompt")
        if now >= vm.ended:
            lines.append(f"[{vm.ended:12.3f}] {instance_id}: powering off")
        elif now >= vm.running:
            # What a guest's getty leaves last on the serial console: its login prompt.
            return "\n".join(lines) + f"\n{instance_id} login: "
        return "\n".join(lines) + "\n"

    # --- volumes (drivers.protocol.Attaching) --------------------------------------------------------

    def attach_volume(self, instance_id: str, volume: VolumeAttachment) -> None:
        """Record the volume on the instance's device. A volume given by path must be there: the
        in-box nodes attach the Storage Controller's own files."""
        self._live(instance_id)
        devices = self.volumes.setdefault(instance_id, {})
        held = devices.get(volume.device)
        if held is not None and held.volume_id != volume.volume_id:
            raise NodeError(f"{instance_id}: {volume.device} already holds {held.volume_id}")
        if volume.path and not os.path.exists(volume.path):
            if not devices:
                del self.volumes[instance_id]
            raise NodeError(f"{instance_id}: {volume.volume_id}: no such file {volume.path}")
        devices[volume.device] = volume

    def detach_volume(self, instance_id: str, volume: VolumeAttachment) -> None:
        devices = self.volumes.get(instance_id, {})
        held = devices.get(volume.device)
        if held is None or held.volume_id != volume.volume_id:
            raise NodeError(f"{instance_id}: {volume.volume_id} is not attached at {volume.device}")
        del devices[volume.device]
        if not devices:
            del self.volumes[instance_id]

    # --- what the simulator and POWERSAVE do to the node --------------------------------------------

    def running_at(self, instance_id: str) -> float:
        """When the instance reaches (or reached) Running."""
        return float(self._live(instance_id)[2])

    def live_instances(self) -> list[str]:
        """Instances not in Teardown (those a failure of the node loses)."""
        return list(self._vms)

    def watts(self) -> float:
        s = self.shape
        if self.state == DOWN:
            return 0.0
        if self.state == ASLEEP:
            return s.watts_asleep
        return s.watts_idle + (s.watts_busy - s.watts_idle) * self.used_cores / s.cores

    def power_down(self) -> None:
        """``ncPowerDown``: the node runs powernap-now and sleeps after its power-down delay."""
        if self.used_cores or self.live_instances():
            raise NodeError(f"node {self.name} still runs instances and cannot power down")
        self.state = ASLEEP
        self.asleep_at = self.clock() + self.shape.power_down

    def power_up(self) -> float:
        """Wake-on-LAN: returns when the node will answer (after it finished powering down, if it had not)."""
        if self.state != ASLEEP:
            raise NodeError(f"node {self.name} is {POWER_STATES[self.state]}, not ASLEEP")
        self.state = WAKING
        self.awake_at = max(self.clock(), self.asleep_at) + self.shape.power_up
        return self.awake_at

    def awake(self) -> None:
        """A woken node answers its first poll."""
        if self.state == WAKING:
            self.state = UP

    def fail(self) -> list[str]:
        """The host died: every instance on it is lost. Returns their ids."""
        lost = self.live_instances()
        self._vms.clear()
        self.volumes.clear()
        self._ended.clear()
        self._ended_before.clear()
        self.used_cores = self.used_memory = self.used_disk = 0
        self.state = DOWN
        return lost

    def recover(self) -> None:
        """Repaired and rebooted: UP and empty."""
        self.state = UP

    # --- internals ----------------------------------------------------------------------------------

    def _live(self, instance_id: str) -> _Row:
        vm = self._vms.get(instance_id)
        if vm is None:
            raise NodeError(f"{instance_id}: no such running instance on node {self.name}")
        return vm

    def forget_ended(self, instance_id: str) -> None:
        """The cloud starts a stopped instance again under its id: its Teardown is no longer reported."""
        self._ended.pop(instance_id, None)
        self._ended_before.pop(instance_id, None)

    def _ended_vm(self, instance_id: str, now: float) -> _Row | None:
        """The ended instance, while the node still reports it (in Teardown, less than 180 s)."""
        ended = self._ended.get(instance_id) or self._ended_before.get(instance_id)
        if ended is None or now - ended[0] >= TEARDOWN_FORGET:
            return None
        at, vm = ended
        return (vm[0], vm[1], vm[2], at) + vm[_SPEC:]  # noqa: RUF005

    def _forget(self, now: float) -> None:
        """Start a new generation of ended instances once the current one is TEARDOWN_FORGET old:
        the one before holds only instances ended longer ago than that, and goes."""
        if now - self._gen_start >= TEARDOWN_FORGET:
            self._ended_before = self._ended
            self._ended = {}
            self._gen_start = now

    @staticmethod
    def _state(vm: _Row, now: float) -> NcState:
        if now >= vm[3]:
            return NcState.TEARDOWN
        if now >= vm[2]:
            return NcState.RUNNING
        if now >= vm[1]:
            return NcState.BOOTING
        return NcState.STAGING
