"""The cloud in a box's nodes: simulated node controllers inside the server process.

Until ``drivers.sim`` lands, a node is registered with the cluster controller straight from a
resource report, and an instance's state is read off its timestamps: pending for the boot delay
after launch, then running; shutting-down for the shutdown delay after termination, then
terminated, and gone (buried) after BURY_TIME. This module is the one place to change when the
in-box nodes become ``drivers.sim`` nodes on a real-time clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from euca.cluster import ClusterController, ResourceReport

STATE_CODES = {"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48}


@dataclass(frozen=True)
class Timings:
    """Seconds. Eucalyptus 2.0: BURY_TIME 60 min; a KVM guest takes tens of seconds to boot."""

    boot: float = 20.0
    shutdown: float = 10.0
    bury: float = 3600.0


@dataclass(frozen=True)
class NodeSpec:
    """A simulated node's hardware: cores, memory (MB), disk (GB)."""

    name: str
    cores: int = 8
    memory: int = 16384
    disk: int = 500

    def report(self) -> ResourceReport:
        return ResourceReport(self.cores, self.memory, self.disk, self.cores, self.memory, self.disk)


class BoxNodes:
    """Registers the in-box nodes and tells the state of their instances from timestamps."""

    def __init__(self, timings: Timings | None = None, clock: Callable[[], float] = time.time) -> None:
        self.timings = timings or Timings()
        self.clock = clock

    def register(self, cc: ClusterController, nodes: list[NodeSpec]) -> None:
        for spec in nodes:
            cc.nodes.register(spec.name, report=spec.report(), now=cc.clock())

    def state(self, launched: float, terminated: float | None, now: float | None = None) -> str | None:
        """pending / running / shutting-down / terminated, or None once buried."""
        now = self.clock() if now is None else now
        if terminated is None:
            return "pending" if now < launched + self.timings.boot else "running"
        if now < terminated + self.timings.shutdown:
            return "shutting-down"
        if now < terminated + self.timings.shutdown + self.timings.bury:
            return "terminated"
        return None

    def console(self, instance_id: str, node: str, vmtype: str, private_ip: str, launched: float) -> str:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(launched))
        return (f"[    0.000000] Linux version 2.6.28-11-generic (euca@{node}) #42 SMP\n"
                f"[    0.000000] Command line: root=/dev/sda1 console=ttyS0\n"
                f"[    0.120000] Memory and CPUs as {vmtype}\n"
                f"[    1.500000] eth0: link up, {private_ip}\n"
                f"Cloud-init: instance {instance_id} booted at {stamp} UTC\n"
                f"{instance_id} login: ")
