"""The cluster controller's node registry: which node controllers it polls, and what they last reported.

A node is registered by name (its host, as in NODES) and gets a fixed position in the NODES
order, which is the scan order of every placement policy. Capacity comes from the node's resource
report (``ncDescribeResource``), with the NC's MAX_CORES / MAX_MEM / MAX_DISK overriding what the
hypervisor detected, as Eucalyptus does.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

from drivers.protocol import NodeResources
from pyx.placement import DOWN, POWER_STATES, UP, WAKING, Placement

log = logging.getLogger("euca.cluster.nodes")



@dataclass(frozen=True)
class Overrides:
    """MAX_CORES / MAX_MEM (MB) / MAX_DISK (GB); 0 keeps what the hypervisor reports."""

    cores: int = 0
    memory: int = 0
    disk: int = 0

    def apply(self, detected: tuple[int, int, int]) -> tuple[int, int, int]:
        c, m, d = detected
        return (self.cores or c, self.memory or m, self.disk or d)


# What a node controller answers to describe-resource: the driver protocol's record, under the CC's name.
ResourceReport = NodeResources


@dataclass
class Node:
    name: str
    index: int
    port: int
    overrides: Overrides
    enabled: bool = True
    last_seen: float | None = None


class NodeRegistry:
    """Registers nodes, applies their reports to the placement arrays, and tracks UP/DOWN."""

    def __init__(self, placement: Placement, overrides: Overrides | None = None, port: int = 8775) -> None:
        self._placement = placement
        self._default_overrides = overrides or Overrides()
        self._default_port = port
        self._nodes: dict[str, Node] = {}
        self._by_index: list[Node] = []
        self.names: list[str] = []  # by index: what a launch record names its node by

    def __len__(self) -> int:
        return len(self._by_index)

    def __iter__(self) -> Iterator[Node]:
        return iter(self._by_index)

    def __contains__(self, name: object) -> bool:
        return name in self._nodes

    def get(self, name: str) -> Node:
        try:
            return self._nodes[name]
        except KeyError:
            raise KeyError(f"no node named {name!r} is registered") from None

    def at(self, index: int) -> Node:
        return self._by_index[index]

    def register(
        self,
        name: str,
        *,
        port: int | None = None,
        overrides: Overrides | None = None,
        report: ResourceReport | None = None,
        now: float = 0.0,
    ) -> Node:
        """Add a node at the end of the NODES order. Without a report it stays DOWN until its first poll."""
        if not name or any(c.isspace() for c in name):
            raise ValueError(f"node name {name!r} must be a non-empty host name without spaces")
        if name in self._nodes:
            raise ValueError(f"node {name!r} is already registered")
        index = self._placement.add_node(0, 0, 0, DOWN, now)
        node = Node(name, index, port or self._default_port, overrides or self._default_overrides)
        self._nodes[name] = node
        self._by_index.append(node)
        self.names.append(name)
        if report is not None:
            self.report(name, report, now)
        return node

    def report(self, name: str, report: ResourceReport, now: float) -> None:
        """A successful poll: capacity as reported (with overrides), and a DOWN or WAKING node is UP again."""
        node = self.get(name)
        detected = (report.max_cores, report.max_memory, report.max_disk)
        free = (report.free_cores, report.free_memory, report.free_disk)
        if min(*detected, *free, report.instances) < 0:
            raise ValueError(f"node {name}: a resource report cannot hold negative values")
        capacity = node.overrides.apply(detected)
        # An override changes the maximum; what the node already uses stays used.
        used = [max(0, d - f) for d, f in zip(detected, free, strict=True)]
        left = [max(0, c - u) for c, u in zip(capacity, used, strict=True)]
        self._placement.set_max(node.index, *capacity)
        self._placement.report(node.index, left[0], left[1], left[2], report.instances)
        node.last_seen = now
        if node.enabled and self._placement.state(node.index) in (DOWN, WAKING):
            self._placement.set_state(node.index, UP, now)
            log.info("node %s is UP (%d cores, %d MB, %d GB)", name, *capacity)

    def unreachable(self, name: str, now: float, reason: str = "no answer") -> None:
        """A failed poll: the node goes DOWN and no policy places on it."""
        node = self.get(name)
        if self._placement.state(node.index) != DOWN:
            log.warning("node %s is DOWN: %s", name, reason)
            self._placement.set_state(node.index, DOWN, now)

    def disable(self, name: str, now: float) -> None:
        node = self.get(name)
        node.enabled = False
        self._placement.set_state(node.index, DOWN, now)

    def enable(self, name: str, now: float) -> None:
        """Back in service; UP at once if the node has reported before, else at its next poll."""
        node = self.get(name)
        node.enabled = True
        if node.last_seen is not None and self._placement.state(node.index) == DOWN:
            self._placement.set_state(node.index, UP, now)

    def state(self, name: str) -> str:
        return POWER_STATES[self._placement.state(self.get(name).index)]
