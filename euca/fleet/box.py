"""The cloud's nodes: node controllers inside the server process (the cloud in a box) or on other hosts.

An in-box node is a :class:`~euca.node.NodeController` over a ``drivers.sim`` node on the real
clock: it boots an instance in the boot delay and holds it until it is terminated. A registered
remote node (``euca node add NAME --url ... --key ...``, or a host in NODES) is an
``euca node-controller`` reached over HTTP. Both sit in one :class:`~euca.node.Fleet`, and an
instance's state is what its node last reported, mapped as Eucalyptus's cloud controller maps it:
Staging/Booting are pending, the hypervisor's running states are running, Teardown is
shutting-down. After TerminateInstances an instance is shutting-down for at least the shutdown
delay, and while its node still reports it alive; then terminated, and gone (buried) after
BURY_TIME. An instance its node stopped reporting keeps its last state until it has been unseen for
INSTANCE_TIMEOUT + SHUT_DOWN_TIME, when the cloud ends it (:meth:`BoxNodes.lost`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from drivers.protocol import InstanceSpec, NcState, NodeError
from drivers.sim import NodeShape, SimNode
from euca.cluster import ClusterController, ResourceReport, VmTypes
from euca.core.clock import Clock, wall
from euca.core.config import Config
from euca.core.ipnotation import MAX_PUBLIC_IPS
from euca.fleet.fleet import Fleet
from euca.node import NodeController

log = logging.getLogger("euca.fleet.box")

# Eucalyptus 2.0+ caps a group's network and the public pool at 2048 addresses each (eight /24s).
MAX_ADDRS_PER_NET = 2048
MAX_PUBLIC_BLOCKS = MAX_PUBLIC_IPS // 254

STATE_CODES = {"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48, "stopping": 64, "stopped": 80}


@dataclass(frozen=True)
class Timings:
    """Seconds. Eucalyptus 2.0: BURY_TIME 60 min, SHUT_DOWN_TIME 10 min; a KVM guest boots in tens of seconds."""

    boot: float = 20.0
    shutdown: float = 10.0
    bury: float = 3600.0
    shut_down_time: float = 600.0


@dataclass(frozen=True)
class NodeSpec:
    """A node as registered: an in-box node's hardware (cores, memory MB, disk GB), or a remote
    node controller's URL and shared key (its hardware is what it reports)."""

    name: str
    cores: int = 8
    memory: int = 16384
    disk: int = 500
    url: str = ""
    key: str = ""

    def report(self) -> ResourceReport:
        return ResourceReport(self.cores, self.memory, self.disk, self.cores, self.memory, self.disk)


def box_config(nodes: list[NodeSpec], vmtypes: VmTypes) -> Config:
    """The cluster's settings for a cloud in a box with no eucalyptus.conf: Eucalyptus's defaults,
    with a network plan that fits the box. Every in-box node can be full of the smallest VM type
    and all of them in one security group, so a group's network (VNET_ADDRSPERNET, less network,
    router and broadcast) holds the whole box, and VNET_PUBLICIPS has an address for every instance
    (doDynamicPublicAddresses gives each one)."""
    room = sum(max(min(n.cores // t.cores, n.memory // t.memory, n.disk // t.disk) for t in vmtypes)
               for n in nodes if not n.url)
    defaults = Config()
    per_net = defaults.vnet_addrspernet
    while per_net - 3 < room and per_net < MAX_ADDRS_PER_NET:
        per_net *= 2
    return replace(defaults, vnet_addrspernet=per_net, vnet_publicips=" ".join(public_ranges(room)))


def public_ranges(room: int) -> list[str]:
    """VNET_PUBLICIPS for ``room`` instances: the documentation ranges (TEST-NET-2 and 3) first, then
    /24s of the shared address space 100.64.0.0/10; no packet to any of them leaves a box."""
    blocks = ["198.51.100", "203.0.113"]
    while len(blocks) * 254 < room and len(blocks) < MAX_PUBLIC_BLOCKS:
        k = len(blocks) - 2
        blocks.append(f"100.{64 + k // 256}.{k % 256}")
    return [f"{b}.1-{b}.254" for b in blocks]


class BoxNodes:
    """The fleet of node controllers and the instance states read from their reports."""

    def __init__(self, timings: Timings | None = None, clock: Clock = wall,
                 instance_timeout: float = 300.0, polling: float = 6.0) -> None:
        self.timings = timings or Timings()
        self.clock = clock
        self.fleet = Fleet(instance_timeout=instance_timeout, polling=polling, clock=clock)
        self.sims: dict[str, SimNode] = {}
        self._ncs: dict[str, NodeController] = {}
        self._last: dict[str, str] = {}

    def register(self, cc: ClusterController, nodes: list[NodeSpec]) -> None:
        now = cc.clock()
        for spec in nodes:
            if spec.name in self.fleet.nodes:
                continue
            if spec.url:
                self.fleet.add_remote(spec.name, spec.url, spec.key)
                if spec.name not in cc.nodes:
                    cc.nodes.register(spec.name, now=now)  # DOWN until its first poll answers
                continue
            sim = SimNode(spec.name, NodeShape(spec.cores, spec.memory, spec.disk, boot_time=self.timings.boot),
                          clock=self.clock)
            self.sims[spec.name] = sim
            nc = self._ncs[spec.name] = NodeController(sim, clock=self.clock, name=spec.name)
            self.fleet.add_local(nc)
            if spec.name not in cc.nodes:
                cc.nodes.register(spec.name, report=spec.report(), now=now)

    def start(self) -> None:
        self.fleet.start()

    def close(self) -> None:
        self.fleet.close()

    def resume(self, node: str, spec: InstanceSpec, launched: float) -> None:
        """An instance the store says is live, after a restart. An in-box node lived and died with
        the server, so it takes the instance back as booted at ``launched``; a remote node still
        runs it and says so at its next poll."""
        sim = self.sims.get(node)
        if sim is not None:
            try:
                sim.start(spec, staged=launched)
            except NodeError as exc:
                log.warning("%s: cannot take it back: %s", spec.instance_id, exc)
            else:
                self._ncs[node].adopt(spec)
        self.fleet.resume(spec.instance_id, launched)

    def state(self, instance_id: str, launched: float, terminated: float | None,
              now: float | None = None) -> str | None:
        """pending / running / shutting-down / terminated, or None once buried."""
        now = self.clock() if now is None else now
        seen = self.fleet.sighting(instance_id, now)
        t = self.timings
        if terminated is not None:
            if now < terminated + t.shutdown:
                return "shutting-down"
            still = (seen is not None and seen.seen > terminated and seen.state is not NcState.TEARDOWN
                     and now < terminated + t.shut_down_time)
            if still:
                return "shutting-down"
            return "terminated" if now < terminated + t.shutdown + t.bury else None
        if seen is None:
            return self._last.get(instance_id, "pending")
        state = seen.state.cloud_state
        if state == "pending" and self._last.get(instance_id) == "running":
            # A reboot boots the domain again, but to EC2 the instance stays running throughout.
            return "running"
        self._last[instance_id] = state
        return state

    def ended(self, instance_id: str, now: float | None = None) -> bool:
        """Has the node ended this instance on its own (Teardown without a TerminateInstances: it
        shut down inside, crashed, or failed to start), or has it been unseen so long that the
        cloud gives it up (INSTANCE_TIMEOUT + SHUT_DOWN_TIME)?"""
        now = self.clock() if now is None else now
        seen = self.fleet.sighting(instance_id)
        if seen is not None and seen.state is NcState.TEARDOWN:
            return True
        unseen = now - self.fleet.last_seen(instance_id)
        return unseen > self.fleet.instance_timeout + self.timings.shut_down_time

    def restarting(self, instance_id: str) -> None:
        """A stopped instance starts again under its own id: the cloud forgets its last run, and the
        in-box nodes the Teardown they still report of it."""
        self.forget(instance_id)
        for sim in self.sims.values():
            sim.forget_ended(instance_id)

    def forget(self, instance_id: str) -> None:
        self.fleet.forget(instance_id)
        self._last.pop(instance_id, None)
