"""One availability zone under simulation: the real cluster controller driving simulated nodes.

The CC (``euca.cluster.ClusterController``) places every reservation, hands out VLAN tags, private
and public addresses and keeps the image cache index, exactly as it does for the API; nothing here
chooses a node. Around it this module models what the CC does not: the nodes (``drivers.sim``),
image downloads from Walrus over one shared link and a link per node, boot times, power-state
delays and failures.

Per instance the model costs an entry on a queue of instance ends (``pyx.endqueue``; SimPy's queue
holds the earliest, and ends due before anything else run in one go) and a few calls into the CC:
the times an instance reaches Booting and Running follow from link and node state when it starts,
and the node reads its instances' states off the clock.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from heapq import heappush
from typing import Any, NamedTuple, cast

import numpy as np
import simpy
from simpy.events import NORMAL

from drivers.protocol import InstanceSpec
from drivers.sim import SimNode
from euca.cluster import ClusterController, ResourceReport, RunRequest
from euca.cluster.controller import NO_ADDRESSES
from euca.core.config import MANAGED_MODES, Config
from pyx.endqueue import EndQueue
from pyx.errors import Exhausted, InsufficientCapacity, KernelError
from pyx.placement import ASLEEP, DOWN, WAKING
from sim.metrics import Meter
from sim.scenario import Scenario
from sim.trace import Demand

MB = 1024 * 1024
ACCOUNT = "sim"
_new = tuple.__new__  # builds a named tuple without the Python-level __new__ frame (one InstanceSpec per instance)


class Alarm(simpy.Event):
    """An event put straight onto SimPy's queue: what ``env.timeout(delay, value)`` makes, without the
    two Python frames of building one (``Timeout.__init__`` and ``Environment.schedule``); there is
    one per instance end. Built by ``alarm`` only."""

    _ok = True


_alarm = Alarm.__new__


def alarm(env: simpy.Environment, delay: float, value: Any, callback: Any) -> Alarm:
    """``env.timeout(delay, value)`` with ``callback`` on it, queued at the very time and in the very
    order the timeout would be (``env.now + delay``, NORMAL priority, the next event id)."""
    event = _alarm(Alarm)
    event.callbacks = [callback]
    event._value = value
    heappush(env._queue, (env._now + delay, NORMAL, next(env._eid), event))
    return event


class _Fetch(NamedTuple):
    """A download of one image to one node: instances starting meanwhile wait for it (``-staging``)."""

    done: float
    epoch: int
    waiting: list[str]


class Cloud:
    """The CC, its nodes and links, and the meter; ``reserve`` is what a RunInstances request does.

    ``config`` is the CC's eucalyptus.conf when it is not the scenario's (a replay reads it from the
    cloud it compares with); ``controller`` is the CC's class, which a replay extends to record what
    the CC decides."""

    controller: type[ClusterController] = ClusterController

    def __init__(self, env: simpy.Environment, scenario: Scenario, demand: Demand, image_sizes: list[int],
                 config: Config | None = None) -> None:
        self.env = env
        self.scenario = scenario
        self.demand = demand
        # The clock every component reads: SimPy's current time without a Python frame per read
        # (``env.now`` is a property returning ``env._now``).
        # Its queue and event ids, where ``alarm`` puts instance ends.
        if getattr(env, "_now", None) != env.now or not isinstance(getattr(env, "_queue", None), list):
            raise RuntimeError("this SimPy keeps its clock or queue elsewhere: sim.cloud needs updating")
        self.clock = clock = partial(getattr, env, "_now")
        self.cc = self.controller(config or scenario.config(), demand.vmtypes, clock=clock)
        self.vmtypes = list(demand.vmtypes)
        self._needs = {t.name: (t.cores, t.memory, t.disk) for t in demand.vmtypes}
        self._type_index = {t.name: k for k, t in enumerate(demand.vmtypes)}
        self.image_ids = list(demand.images)
        self.image_sizes = image_sizes  # bytes
        self.groups = list(demand.groups)
        self.auto_public = scenario.public_ip_per_instance and self.cc.network.mode in MANAGED_MODES
        self.all_or_none = scenario.workload.min_count == "all"
        self.nodes: list[SimNode] = []
        self.link_bps: list[float] = []
        self.watts_per_core: list[float] = []
        self.boot_time: list[float] = []
        for node_class in scenario.nodes:
            shape = node_class.shape()
            for _ in range(node_class.count):
                node = SimNode(f"{node_class.name}{len(self.nodes) + 1:05d}", shape, clock)
                self.cc.nodes.register(node.name, report=ResourceReport(**vars(node.describe_resources())))
                self.nodes.append(node)
                self.link_bps.append(node_class.link_mbps * 1e6 / 8)
                self.watts_per_core.append((shape.watts_busy - shape.watts_idle) / shape.cores)
                self.boot_time.append(shape.boot_time)
        self.walrus_bps = scenario.images.walrus_mbps * 1e6 / 8
        self.walrus_free = 0.0
        self.link_free = [0.0] * len(self.nodes)
        self.epoch = [0] * len(self.nodes)  # bumped when a node fails: downloads to it are void
        self.fetching: dict[tuple[int, int], _Fetch] = {}
        self.instances = 0  # running, as the meter counts them (the CC's records say where)
        # Instance ends wait on a queue of their own keyed by (time, event id), with no Python object
        # per end but the instance id; only the earliest is on SimPy's queue, under the key a
        # timeout made at the instance's start would have had (its time, NORMAL, the event id it
        # drew then), so events run in the same order as with one timeout per instance.
        self._due = EndQueue()
        self._armed: set[int] = set()  # event ids of the ends on SimPy's queue
        self._end_event = Alarm.__new__(Alarm)  # the one event every end is queued as
        self._end_callbacks: list[Callable[[Any], None]] = [self._ends_due]
        self._end_event.callbacks = self._end_callbacks
        self._arrived = self._image_arrived
        # Ends due before anything else on SimPy's queue run in one go (see _ends_due); not on a
        # real-time environment, whose step also waits for the wall clock.
        self._inline = type(env) is simpy.Environment
        self._next_id = 0
        # Utilisation is of what the CC may schedule, for every user of the model (a planning run,
        # a replay, the benchmark), not of the nodes' hardware.
        cores, memory, disk = schedulable_capacity(self.cc)
        self.meter = Meter(max(cores, 1), max(memory, 1), max(disk, 1), len(self.nodes),
                           sum(n.watts() for n in self.nodes), 1.0, self.cc.network.usage)

    # --- a reservation ------------------------------------------------------------------------------

    def reserve(self, vmtype: int, image: int, group: int, lifetimes: list[float], counted: bool) -> None:
        """RunInstances: the CC places the VMs and gives them networks, each gets a public address
        (doDynamicPublicAddresses), then each node stages the image and boots the instance."""
        now = self.clock()
        meter = self.meter
        if now != meter.last or now >= meter.next_sample:
            meter.advance(now)
        count = len(lifetimes)
        if counted:
            meter.requested += count
        else:
            meter.prefill_requested += count
        t = self.vmtypes[vmtype]
        image_id = self.image_ids[image]
        first = self._next_id + 1
        self._next_id += count
        ids = [f"i-{first:08X}"] if count == 1 else [f"i-{k:08X}" for k in range(first, first + count)]
        request = _new(RunRequest, (ids, t.name, count if self.all_or_none else 1, ACCOUNT, self.groups[group],
                                    image_id, self.auto_public))
        try:
            launches = self.cc.run(request)
        except KernelError as exc:
            meter.reject(count, str(exc), now, counted)
            return
        if len(launches) < count:
            meter.reject(count - len(launches), self._why_short(request), now, counted)
        cc = self.cc
        size = self.image_sizes[image]
        cores, memory, disk, name = t.cores, t.memory, t.disk, t.name
        nodes, watts_per_core, boot_time = self.nodes, self.watts_per_core, self.boot_time
        hit_latency, miss_latency = meter.hit_latency, meter.miss_latency
        queue, eid, due, armed, end_event = self.env._queue, self.env._eid, self._due, self._armed, self._end_event
        reservation_id = "r-" + ids[0][2:]
        watts = 0.0
        for launch, life in zip(launches, lifetimes, strict=False):
            iid, _, _, net, _, n, hit = launch
            node = nodes[n]
            state = node.state
            if state == ASLEEP:
                self._wake(n)
                state = node.state
            ready = node.awake_at if state == WAKING else now
            if hit or not counted:  # a VM already running when the observation starts has its image
                staged = ready
                if not hit and cc.images.fetched(n, image_id, size, now) is not None:
                    cc.pin_image(iid)
            else:
                staged = self._fetch(n, image, ready, iid)
            node.start(_new(InstanceSpec, (iid, reservation_id, ACCOUNT, name, cores, memory, disk, image_id, "", "",
                                           net.mac, net.private_ip, net.vlan, "", "", b"", 0, ())), staged=staged)
            if counted:
                running = staged + boot_time[n]
                (hit_latency if hit else miss_latency).append(running - now)
            else:
                running = now
            watts += watts_per_core[n]
            end, e = now + (running + life - now), next(eid)  # as env.timeout(running + life - now) would
            if due.push(end, e, iid):  # the earliest end now
                heappush(queue, (end, NORMAL, e, end_event))
                armed.add(e)
        started = len(launches)
        self.instances += started
        meter.watts += watts * cores
        meter.cores += cores * started
        meter.memory += memory * started
        meter.disk += disk * started
        meter.instances = self.instances
        meter.accepted += started if counted else 0

    def _instance_id(self) -> str:
        self._next_id += 1
        return f"i-{self._next_id:08X}"

    def _why_short(self, request: RunRequest) -> str:
        """The reason the rest of a partly started reservation was skipped: what one more would hit.

        Read off the CC's state, not found by asking it to start one more: a placement the CC then
        takes back still moves ROUNDROBIN's cursor (and wakes the POWERSAVE node it chose), so the
        simulated CC would go on to decide differently from the real one, which is asked nothing."""
        cc = self.cc
        if cc.placement.availability()[self._type_index[request.vmtype]][0] == 0:
            return str(InsufficientCapacity())
        probe = self._instance_id()
        try:
            cc.network.attach_key(probe, f"{request.account}-{request.group}")
        except KernelError as exc:
            return str(exc)  # a pool of the group's network: addresses, VLAN tags, MAC=IP pairs
        cc.network.detach(probe)
        return str(Exhausted(NO_ADDRESSES)) if request.public else str(InsufficientCapacity())

    def _fetch(self, n: int, image: int, start: float, instance_id: str) -> float:
        """Download an image from Walrus to node ``n``, or join the download already under way.
        Downloads queue first come first served on Walrus's link and on the node's link, streaming
        through both; returns when the image is on the node."""
        key = (n, image)
        fetch = self.fetching.get(key)
        if fetch is not None and fetch.epoch == self.epoch[n]:
            fetch.waiting.append(instance_id)
            return fetch.done
        size = self.image_sizes[image]
        begin = max(start, self.walrus_free)
        self.walrus_free = begin + size / self.walrus_bps
        done = max(self.walrus_free, max(start, self.link_free[n]) + size / self.link_bps[n])
        self.link_free[n] = done
        self.fetching[key] = _new(_Fetch, (done, self.epoch[n], [instance_id]))
        self.meter.fetches += 1
        alarm(self.env, done - self.env._now, key, self._arrived)
        return done

    def _image_arrived(self, event: simpy.Event) -> None:
        n, image = cast(tuple[int, int], event._value)
        fetch = self.fetching.get((n, image))
        if fetch is None or fetch.done != self.env.now or fetch.epoch != self.epoch[n]:
            return
        del self.fetching[(n, image)]
        image_id = self.image_ids[image]
        evicted = self.cc.images.fetched(n, image_id, self.image_sizes[image], self.env.now)
        if evicted is None:
            return
        self.meter.evictions += len(evicted)
        for instance_id in fetch.waiting:
            self.cc.pin_image(instance_id)

    def _ends_due(self, event: simpy.Event) -> None:
        """The earliest instance end is due (SimPy took its key off the queue): queue the next
        earliest unless it is queued already, and end this one: the user terminates it, the CC
        takes everything back."""
        event.callbacks = self._end_callbacks  # SimPy clears them from an event it has run
        env, due, armed = self.env, self._due, self._armed
        queue = env._queue
        while True:
            e, instance_id = due.pop()
            armed.discard(e)
            self._end(instance_id)
            if not due:
                return
            end, e = due.first()
            if e in armed:
                return  # on SimPy's queue already: it comes in its turn
            key = (end, NORMAL, e, event)
            if (queue and queue[0] < key) or not self._inline:
                heappush(queue, key)
                armed.add(e)
                return
            # The next end would be the next event SimPy takes: run it now, at its time.
            env._now = end

    def _end(self, instance_id: str) -> None:
        """The user terminates the instance; the CC takes everything back."""
        meter = self.meter
        meter.advance(self.env._now)  # the network's usage is sampled here, before this end frees anything
        try:
            placed = self.cc.terminate(instance_id)
        except KeyError:
            return  # lost with its node earlier
        n = placed.node_index
        self.nodes[n].terminate(instance_id)
        cores, memory, disk = self._needs[placed.vmtype]
        meter.cores -= cores
        meter.memory -= memory
        meter.disk -= disk
        meter.watts -= self.watts_per_core[n] * cores
        self.instances -= 1
        meter.instances = self.instances

    # --- power and failures ------------------------------------------------------------------------

    def _wake(self, n: int) -> None:
        """The CC chose an ASLEEP node (POWERSAVE): wake-on-LAN, and it answers after its power-up delay."""
        node = self.nodes[n]
        self.meter.watts += node.shape.watts_idle - node.shape.watts_asleep
        self.meter.powered += 1
        self.meter.wakes += 1
        awake_at = node.power_up()
        self.env.timeout(awake_at - self.env.now, n).callbacks.append(self._node_answers)

    def _node_answers(self, event: simpy.Event) -> None:
        node = self.nodes[cast(int, event.value)]
        if node.state != WAKING or node.awake_at != self.env.now:
            return
        node.awake()
        self.cc.nodes.report(node.name, ResourceReport(**vars(node.describe_resources())), self.env.now)

    def apply_power_plan(self) -> None:
        """POWERSAVE's periodic check: idle nodes power down; woken nodes silent too long were given up."""
        now = self.env.now
        plan = self.cc.tick()
        if not plan.sleep and not plan.down:
            return
        self.meter.advance(now)
        for n in plan.sleep:
            node = self.nodes[n]
            node.power_down()
            shape = node.shape
            self.meter.watts -= shape.watts_idle - shape.watts_asleep
            self.meter.joules += (shape.watts_idle - shape.watts_asleep) * shape.power_down
            self.meter.powered -= 1
            self.meter.sleeps += 1
        self.meter.wake_timeouts += len(plan.down)

    def node_fails(self, n: int) -> None:
        """The node's host dies: its instances are lost, the CC stops placing on it."""
        node = self.nodes[n]
        if node.state == DOWN:
            return
        meter = self.meter
        meter.advance(self.env.now)
        meter.failures += 1
        if node.state != ASLEEP:
            meter.powered -= 1
        meter.watts -= node.watts()
        for instance_id in node.fail():
            placed = self.cc.terminate(instance_id)
            cores, memory, disk = self._needs[placed.vmtype]
            meter.cores -= cores
            meter.memory -= memory
            meter.disk -= disk
            meter.lost += 1
            self.instances -= 1
        meter.instances = self.instances
        self.epoch[n] += 1
        self.link_free[n] = self.env.now
        self.cc.nodes.unreachable(node.name, self.env.now, "host failed")

    def node_repaired(self, n: int) -> None:
        """Repaired and rebooted: the node answers the CC's next poll, empty."""
        node = self.nodes[n]
        if node.state != DOWN:
            return
        self.meter.advance(self.env.now)
        node.recover()
        self.meter.powered += 1
        self.meter.watts += node.watts()
        self.cc.nodes.report(node.name, ResourceReport(**vars(node.describe_resources())), self.env.now)

    def prestage(self, images: list[int]) -> None:
        """Images already in every node's cache when the observation starts."""
        for n in range(len(self.nodes)):
            for image in images:
                self.cc.images.fetched(n, self.image_ids[image], self.image_sizes[image], 0.0)


def schedulable_capacity(cc: ClusterController) -> tuple[int, int, int]:
    """(cores, memory MB, disk GB) the CC may schedule on its nodes: what they report, with
    MAX_CORES / MAX_MEM / MAX_DISK applied as its NodeRegistry applies them."""
    caps = [cc.placement.max(i) for i in range(cc.placement.n_nodes)]
    cores, memory, disk = (sum(c[d] for c in caps) for d in range(3))
    return cores, memory, disk


def image_sizes(rng: np.random.Generator, count: int, low_mb: float, high_mb: float) -> list[int]:
    """Image sizes in bytes, log-uniform between ``low_mb`` and ``high_mb``."""
    mb = np.exp(rng.uniform(np.log(low_mb), np.log(high_mb), size=count))
    return [int(v * MB) for v in mb]
