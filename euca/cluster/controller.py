"""The cluster controller (CC): one availability zone's nodes, scheduler, network and image caches.

Plain synchronous code with an injected clock and no I/O of its own: the cloud controller calls
it from its request handlers, and the simulator calls the very same object from SimPy processes.
A reservation is placed and given network addresses all or nothing: if the scheduler or a network
pool cannot serve the minimum count, nothing stays taken. The running instances live in
``pyx.ledger.Ledger``, which does a start's and an end's placement, network and image-pin calls
in one kernel call each.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

from euca.cluster.images import ImageCacheView
from euca.cluster.network import NetAssignment, NetworkManager
from euca.cluster.nodes import NodeRegistry, Overrides
from euca.cluster.scheduler import Availability, PowerPlan, Scheduler
from euca.cluster.vmtypes import VmTypes
from euca.core.clock import Clock, wall
from euca.core.config import Config
from pyx.errors import Exhausted, InsufficientCapacity
from pyx.ledger import Ledger
from pyx.placement import Placement

# Eucalyptus's words when the dynamic public addresses run out (Exhausted adds the prefix).
NO_ADDRESSES = "addresses (try --addressing private)"


class RunRequest(NamedTuple):
    """One reservation as the CLC hands it to the CC: ids already chosen, one per instance it may start."""

    instance_ids: Sequence[str]
    vmtype: str
    min_count: int = 1
    account: str = "admin"
    group: str = "default"
    image_id: str = ""
    public: bool = False  # each instance gets a dynamic public address (doDynamicPublicAddresses)


class Placed(NamedTuple):
    """An instance the CC is running, as the state store records it (enough to rebuild the CC).

    ``run`` hands these back, one per started instance; the CC's ledger (``pyx.ledger``) keeps the
    same fields as a plain tuple, because the simulator starts instances by the million. ``node_index`` says
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


# What ``run`` returns: where each instance of a reservation goes, and its network assignment.
Launch = Placed


class ClusterController:
    """Composes the node registry, the scheduler, the network manager and the image cache view."""

    def __init__(
        self,
        config: Config | None = None,
        vmtypes: VmTypes | None = None,
        clock: Clock = wall,
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
        # The running instances: placement, network and image pins of each start and end in one
        # kernel call, and records the collector does not walk (a planning run keeps 10^5 alive).
        self._ledger = Ledger(
            self.placement, self.images.presence, self.nodes.names, self._type_index,
            self.network.attach_key, self.network.detach, self.images.use_slot, self.images.unpin,
            lambda node: self.nodes.get(node).index, Placed, NetAssignment, name,
        )

    def set_vmtypes(self, vmtypes: VmTypes) -> None:
        """The administrator edited the VM types. Types keep their places (an edit replaces a type,
        a new one comes last), so running instances keep their type index."""
        if list(vmtypes.names[: len(self.vmtypes)]) != list(self.vmtypes.names):
            raise ValueError("VM types can be changed or added, not removed or reordered, while instances run")
        self.placement.set_vmtypes(vmtypes.needs())
        self.vmtypes = self.scheduler.vmtypes = vmtypes
        # the ledger holds this very dict: update it in place
        self._type_index.update((t.name, i) for i, t in enumerate(vmtypes))

    # --- instances --------------------------------------------------------------------------------

    def run(self, request: RunRequest) -> list[Launch]:
        """Place a reservation and give each instance its network. Between ``min_count`` and
        ``len(instance_ids)`` instances start; fewer than ``min_count`` raises and changes nothing."""
        vmtype, image_id = request.vmtype, request.image_id
        if vmtype not in self._type_index:
            raise KeyError(f"unknown VM type {vmtype!r}")
        image = self.images.slot(image_id) if image_id else -1
        try:
            launches: list[Launch] = self._ledger.start(request.instance_ids, vmtype, request.min_count, image_id,
                                                        image, f"{request.account}-{request.group}", self.clock())
        except InsufficientCapacity:
            self.scheduler.no_room(self._type_index[vmtype], request.min_count)
            raise
        if request.public:
            launches = self._give_public(launches, request.min_count)
        return launches

    def _give_public(self, launches: list[Launch], min_count: int) -> list[Launch]:
        """A dynamic public address for each started instance, in launch order. The instances the
        pool cannot address are skipped like those the nodes have no room for: past ``min_count``
        the reservation is cut short; below it, nothing stays started and Eucalyptus's error is
        raised. One rule for the cloud and the simulator."""
        give = self.network.give_dynamic
        for k, launch in enumerate(launches):
            try:
                give(launch.instance_id)
            except Exhausted:
                now = self.clock()
                ended = launches[k:] if k >= min_count else launches
                for skipped in ended:
                    self._ledger.end(skipped.instance_id, now)
                if k < min_count:
                    raise Exhausted(NO_ADDRESSES) from None
                return launches[:k]
        return launches

    def terminate(self, instance_id: str) -> Placed:
        """The instance is gone: capacity, address, group network and image pin are given back."""
        placed: Placed = self._ledger.end(instance_id, self.clock())
        return placed

    def pin_image(self, instance_id: str) -> bool:
        """The instance's image has just been cached on its node (it started before the download
        ended): pin it there until the instance ends. False if the node did not cache it."""
        placed: Placed | None = self._ledger.get(instance_id)
        if placed is None or placed.image_cached or not placed.image_id or placed.node_index < 0:
            return False
        if not self.images.holds(placed.node_index, placed.image_id):
            return False
        self.images.pin(placed.node_index, placed.image_id)
        self._ledger.mark_cached(instance_id)
        return True

    def running(self) -> list[Placed]:
        placed: list[Placed] = self._ledger.records()
        return placed

    def instance(self, instance_id: str) -> Placed | None:
        placed: Placed | None = self._ledger.get(instance_id)
        return placed

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

    def restore(self, instances: Iterable[Placed],
                publics: Iterable[tuple[str, str | None] | tuple[str, str | None, bool]] = ()) -> list[str]:
        """Rebuild placements and network pools from the store after a restart. Records that clash
        (an unknown node or type, a node without room, a second owner of an address) are skipped
        and reported; the rest are restored exactly."""
        problems: list[str] = []
        kept: list[Placed] = []
        for placed in instances:
            if placed.instance_id in self._ledger or any(k.instance_id == placed.instance_id for k in kept):
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
            self._ledger.add(placed)
        return problems

    def _take_capacity(self, node: int, vmtype: str) -> None:
        cores, mem, disk = self.vmtypes[vmtype].need
        free = self.placement.free(node)
        if free[0] < cores or free[1] < mem or free[2] < disk:
            raise InsufficientCapacity(f"node {self.nodes.at(node).name} has no room left for a {vmtype}")
        self.placement.report(node, free[0] - cores, free[1] - mem, free[2] - disk,
                              self.placement.instances(node) + 1)
