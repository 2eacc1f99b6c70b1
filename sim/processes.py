"""The SimPy processes of a planning run: users asking for instances, POWERSAVE's periodic check,
and node hosts failing and being repaired."""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from typing import Any, Protocol

import simpy

from sim.cloud import Cloud

Reservation = tuple[float, int, int, int, list[float], bool]  # (submit time, type, image, group, lifetimes, counted)
Process = Generator[simpy.Event, Any, None]


class Reserving(Protocol):
    """Where users send RunInstances: the simulated cloud, or a real one driven by ``sim.replay``."""

    def reserve(self, vmtype: int, image: int, group: int, lifetimes: list[float], counted: bool) -> None: ...


def users(env: simpy.Environment, cloud: Reserving, reservations: Sequence[Reservation]) -> Process:
    """Users send RunInstances requests at their submit times; each is placed the moment it arrives.

    One process for the whole workload: a reservation's instances need no process of their own,
    their ends are timeouts (``Cloud.reserve``)."""
    for when, vmtype, image, group, lifetimes, counted in reservations:
        if when > env.now:
            yield env.timeout(when - env.now)
        cloud.reserve(vmtype, image, group, lifetimes, counted)


def power_manager(env: simpy.Environment, cloud: Cloud, every: float) -> Process:
    """The CC's POWERSAVE check: every ``every`` seconds, idle nodes are powered down."""
    while True:
        yield env.timeout(every)
        cloud.apply_power_plan()


def node_host(env: simpy.Environment, cloud: Cloud, node: int,
              uptime: Callable[[], float], repair: Callable[[], float]) -> Process:
    """A node's host runs for a while, fails (taking its instances with it) and is repaired."""
    while True:
        yield env.timeout(uptime())
        cloud.node_fails(node)
        yield env.timeout(repair())
        cloud.node_repaired(node)
