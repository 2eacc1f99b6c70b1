"""The cluster controller (CC): one availability zone's nodes, scheduler, network and image caches.

Plain synchronous code with an injected clock and no I/O of its own: the cloud controller calls
it from its request handlers, and the simulator calls the very same object from SimPy processes.
A reservation is placed and given network addresses all or nothing: if the scheduler or a network
pool cannot serve the minimum count, nothing stays taken.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from euca.cluster.images import ImageCacheView
from euca.cluster.network import NetAssignment, NetworkManager
from euca.cluster.nodes import NodeRegistry, Overrides
from euca.cluster.scheduler import Availability, Clock, PowerPlan, Scheduler
from euca.cluster.vmtypes import VmTypes
from euca.config import Config
from pyx.errors import Conflict, InsufficientCapacity, KernelError
from pyx.placement import Placement


class RunRequest(NamedTuple):
    """One reservation as the CLC hands it to the CC: ids already chosen, one per instance it may start."""

    instance_ids: Sequence[str]
    vmtype: str
    min_count: int = 1
    account: str = "admin"
    group: str = "default"
    image_id: str = ""


class Placed(NamedTuple):
    """An instance the CC is running, as the state store records it (enough to rebuild the CC).

    ``run`` hands these back, one per started instance, and keeps the same fields as a plain tuple
    (see ``_Record``): the simulator starts instances by the million. ``node_index`` says
    where the scheduler put it (-1 when restored) and ``image_cached`` whether the instance holds a
    pin on its image in that node's cache (it was cached at the start, or ``pin_image`` later); the
    store leaves both out.
    """

    instance_id: str
    node: str
    vmtype: str
    net: NetAssignment
    image_id: str = ""
    node_index: int = -1
    image_cached: bool = False


_new = tuple.__new__  # builds a named tuple from a tuple without the Python-level __new__ frame

# A running instance as the CC stores it: one plain tuple, (instance_id, node, vmtype, image_id,
# node_index, image_cached) and then the NetAssignment's fields.
_Record = tuple[Any, ...]


def _record(p: Placed) -> _Record:
    return (p[0], p[1], p[2], p[4], p[5], p[6]) + p[3]


def _placed(r: _Record) -> Placed:
    return _new(Placed, (r[0], r[1], r[2], _new(NetAssignment, r[6:]), r[3], r[4], r[5]))

# What ``run`` returns: where each instance of a reservation goes, and its network assignment.
Launch = Placed


class ClusterController:
    """Composes the node registry, the scheduler, the network manager and the image cache view."""

    def __init__(
        self,
        config: Config | None = None,
        vmtypes: VmTypes | None = None,
        clock: Clock = time.monotonic,
        name: str = "cluster01",
    ) -> None:
        self.config = config or Config()
        self.name = name
        self.clock = clock
        self.vmtypes = vmtypes or VmTypes()
        self.placement = Placement(self.vmtypes.needs(), self.config.schedpolicy, self.config.schedpolicy_fallback)
        self.images = ImageCacheView(self.config.nc_cache_size)
        self.placement.attach_presence(self.images.presence)
        overrides = Overrides(self.config.max_cores, self.config.max_mem, self.config.max_disk)
        self.nodes = NodeRegistry(self.placement, overrides, self.config.nc_port)
        self.scheduler = Scheduler(
            self.placement, self.vmtypes, clock,
            idle_thresh=self.config.power_idlethresh, wake_thresh=self.config.power_wakethresh,
        )
        self.network = NetworkManager(self.config)
        self._type_index = {t.name: i for i, t in enumerate(self.vmtypes)}
        # The scheduler's kernel calls, bound once: every start and end goes through them.
        self._place_many, self._release = self.placement.place_many, self.placement.release
        # Running instances as plain tuples of plain values (_Record): the collector stops tracking
        # those, never named tuples, and a planning run keeps a hundred thousand of them alive.
        self._running: dict[str, _Record] = {}

    # --- instances --------------------------------------------------------------------------------

    def run(self, request: RunRequest) -> list[Launch]:
        """Place a reservation and give each instance its network. Between ``min_count`` and
        ``len(instance_ids)`` instances start; fewer than ``min_count`` raises and changes nothing.

        The simulator calls this for every reservation it replays, so the loop below stays flat:
        records are built with ``tuple.__new__`` and the collaborators' fast paths are bound once.
        """
        vmtype, image_id, ids = request.vmtype, request.image_id, request.instance_ids
        type_index = self._type_index.get(vmtype)
        if type_index is None:
            raise KeyError(f"unknown VM type {vmtype!r}")
        running = self._running
        if len(ids) == 1:
            if ids[0] in running:
                raise Conflict("instance ids must be new and unique")
        elif len(set(ids)) != len(ids) or not running.keys().isdisjoint(ids):
            raise Conflict("instance ids must be new and unique")
        images = self.images
        image = images.slot(image_id) if image_id else -1
        min_count = request.min_count
        try:
            nodes = self._place_many(type_index, min_count, len(ids), image, self.clock())
        except InsufficientCapacity:
            self.scheduler.no_room(type_index, min_count)
            raise
        launches: list[Placed] = []
        append, names, has = launches.append, self.nodes.names, images.presence.has
        attach, key = self.network.attach_key, f"{request.account}-{request.group}"
        try:
            for instance_id, node in zip(ids, nodes, strict=False):
                append(_new(Placed, (instance_id, names[node], vmtype, attach(instance_id, key), image_id, node,
                                     image >= 0 and has(node, image))))
        except KernelError:
            if len(launches) < min_count:
                self._undo(launches, nodes, type_index)
                raise
            # Enough instances have addresses: the rest are skipped, as Eucalyptus skips them.
        if len(launches) < len(nodes):
            for surplus in nodes[len(launches):]:
                self._release(surplus, type_index, self.clock())
        now: float | None = None
        for launch in launches:
            running[launch[0]] = (launch[0], launch[1], vmtype, image_id, launch[5], launch[6]) + launch[3]
            if launch.image_cached:
                if now is None:
                    now = self.clock()
                images.use_slot(launch.node_index, image, now)
        return launches

    def _undo(self, launches: list[Launch], nodes: list[int], type_index: int) -> None:
        for launch in launches:
            self.network.detach(launch.instance_id)
        for node in nodes:
            self._release(node, type_index, self.clock())

    def terminate(self, instance_id: str) -> Placed:
        """The instance is gone: capacity, address, group network and image pin are given back."""
        r = self._running.pop(instance_id, None)
        if r is None:
            raise KeyError(f"{instance_id} is not running in {self.name}")
        node = r[4] if r[4] >= 0 else self.nodes.get(r[1]).index
        self._release(node, self._type_index[r[2]], self.clock())
        self.network.detach(instance_id)
        if r[5]:
            self.images.unpin(node, r[3])
        return _placed(r)

    def pin_image(self, instance_id: str) -> bool:
        """The instance's image has just been cached on its node (it started before the download
        ended): pin it there until the instance ends. False if the node did not cache it."""
        r = self._running.get(instance_id)
        if r is None or r[5] or not r[3] or r[4] < 0:
            return False
        if not self.images.holds(r[4], r[3]):
            return False
        self.images.pin(r[4], r[3])
        self._running[instance_id] = (*r[:5], True, *r[6:])
        return True

    def running(self) -> list[Placed]:
        return [_placed(r) for r in self._running.values()]

    def instance(self, instance_id: str) -> Placed | None:
        record = self._running.get(instance_id)
        return None if record is None else _placed(record)

    # --- periodic work and reporting --------------------------------------------------------------

    def tick(self) -> PowerPlan:
        return self.scheduler.tick()

    def availability(self) -> list[Availability]:
        return self.scheduler.availability()

    def describe_lines(self) -> list[str]:
        """The zone's part of ``describe-availability-zones verbose``."""
        lines = [f"{self.name}", "|- vm types      free / max   cpu   ram  disk"]
        lines += [f"|- {a.line()}" for a in self.availability()]
        return lines

    # --- the state store ----------------------------------------------------------------------------

    def restore(self, instances: Iterable[Placed], publics: Iterable[tuple[str, str | None]] = ()) -> list[str]:
        """Rebuild placements and network pools from the store after a restart. Records that clash
        (an unknown node or type, a node without room, a second owner of an address) are skipped
        and reported; the rest are restored exactly."""
        problems: list[str] = []
        kept: list[Placed] = []
        for placed in instances:
            if placed.instance_id in self._running or any(k.instance_id == placed.instance_id for k in kept):
                problems.append(f"{placed.instance_id}: listed twice")
                continue
            if placed.node not in self.nodes or placed.vmtype not in self.vmtypes:
                problems.append(f"{placed.instance_id}: unknown node {placed.node!r} or type {placed.vmtype!r}")
                continue
            kept.append(placed)
        problems += self.network.rebuild([p.net for p in kept], publics)
        for placed in kept:
            if self.network.assignment(placed.instance_id) is None:
                continue
            node = self.nodes.get(placed.node).index
            try:
                self._take_capacity(node, placed.vmtype)
            except InsufficientCapacity as exc:
                self.network.detach(placed.instance_id)
                problems.append(f"{placed.instance_id}: {exc}")
                continue
            self._running[placed.instance_id] = _record(placed)
        return problems

    def _take_capacity(self, node: int, vmtype: str) -> None:
        cores, mem, disk = self.vmtypes[vmtype].need
        free = self.placement.free(node)
        if free[0] < cores or free[1] < mem or free[2] < disk:
            raise InsufficientCapacity(f"node {self.nodes.at(node).name} has no room left for a {vmtype}")
        self.placement.report(node, free[0] - cores, free[1] - mem, free[2] - disk,
                              self.placement.instances(node) + 1)
