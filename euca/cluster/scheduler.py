"""The cluster controller's scheduler: SCHEDPOLICY over the placement kernel, on an injected clock.

The placement kernel decides which node takes each instance of a reservation and consumes the
node's capacity at once (so a burst of requests never double-books); the CC's instance ledger
(``pyx.ledger``) calls it for every start and end. This module adds what sits around those
decisions: POWERSAVE's power management (nodes idle past POWER_IDLETHRESH are powered down, and a
woken node still silent after POWER_WAKETHRESH is marked DOWN), the free/max table of
``describe-availability-zones verbose``, and the log line of a reservation that found no room.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from euca.cluster.vmtypes import VmTypes
from euca.core.clock import Clock
from pyx.placement import ASLEEP, DOWN, Placement

log = logging.getLogger("euca.cluster.scheduler")


@dataclass(frozen=True)
class PowerPlan:
    """What a POWERSAVE tick decided: nodes to power down (now ASLEEP) and woken nodes given up on (now DOWN)."""

    sleep: tuple[int, ...] = ()
    down: tuple[int, ...] = ()


@dataclass(frozen=True)
class Availability:
    """One ``describe-availability-zones verbose`` line: how many more of a type fit, now and when empty."""

    name: str
    free: int
    max: int
    cores: int
    memory: int
    disk: int

    def line(self) -> str:
        # Eucalyptus's CC format: "%04d / %04d  %2d   %4d  %4d" after the type name.
        return f"{self.name:<13} {self.free:04d} / {self.max:04d}  {self.cores:2d}   {self.memory:4d}  {self.disk:4d}"


class Scheduler:
    """The configured policy's power management and availability report. Plain synchronous code:
    the API and the simulator both call it, each with its own clock."""

    def __init__(
        self,
        placement: Placement,
        vmtypes: VmTypes,
        clock: Clock,
        *,
        idle_thresh: float = 300.0,
        wake_thresh: float = 300.0,
    ) -> None:
        self.placement = placement
        self.vmtypes = vmtypes
        self.clock = clock
        self.idle_thresh = idle_thresh
        self.wake_thresh = wake_thresh

    @property
    def policy(self) -> str:
        return str(self.placement.policy)

    def no_room(self, type_index: int, min_count: int) -> None:
        """Log a reservation the policy could not place (the caller raises)."""
        if log.isEnabledFor(logging.INFO):
            free, total = (int(v) for v in self.placement.availability()[type_index])
            log.info("%s: no room for %d x %s (%d free of %d on nodes that are not DOWN)",
                     self.policy, min_count, self.vmtypes.names[type_index], free, total)

    def tick(self) -> PowerPlan:
        """POWERSAVE's periodic check (a no-op for other policies' idle nodes, which never sleep)."""
        now = self.clock()
        sleepy, silent = self.placement.power_tick(now, self.idle_thresh, self.wake_thresh)
        if self.policy != "POWERSAVE":
            sleepy = []
        for node in sleepy:
            self.placement.set_state(node, ASLEEP, now)
        for node in silent:
            log.warning("node %d did not wake within %.0f s: DOWN", node, self.wake_thresh)
            self.placement.set_state(node, DOWN, now)
        return PowerPlan(tuple(sleepy), tuple(silent))

    def availability(self) -> list[Availability]:
        """Per VM type, how many more instances fit (free) and would fit on empty nodes (max)."""
        counts = self.placement.availability()
        return [
            Availability(t.name, int(counts[i][0]), int(counts[i][1]), t.cores, t.memory, t.disk)
            for i, t in enumerate(self.vmtypes)
        ]
