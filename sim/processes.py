"""The SimPy processes of a planning run: users asking for instances, POWERSAVE's periodic check,
and node hosts failing and being repaired."""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from typing import Any, Protocol

import simpy

from sim.cloud import Cloud, alarm

Reservation = tuple[float, int, int, int, list[float], bool]  # (submit time, type, image, group, lifetimes, counted)
Process = Generator[simpy.Event, Any, None]


class Reserving(Protocol):
    """Where users send RunInstances: the simulated cloud, or a real one driven by ``sim.replay``."""

    def reserve(self, vmtype: int, image: int, group: int, lifetimes: list[float], counted: bool) -> None: ...


def users(env: simpy.Environment, cloud: Reserving, reservations: Sequence[Reservation]) -> Process:
    """Users send RunInstances requests at their submit times; each is placed the moment it arrives.

    One process for the whole workload, which waits for the last request; a reservation's instances
    need no process of their own, their ends are alarms (``Cloud.reserve``). The requests come as a
    chain of alarms, each arrival queueing the next as this process would by yielding a timeout, at
    the same time and in the same order, without resuming a generator per reservation."""
    done = env.event()
    plan = iter(reservations)
    upcoming: list[Reservation | None] = [next(plan, None)]

    def arrive(_: simpy.Event) -> None:
        now = env._now
        request = upcoming[0]
        while request is not None:
            when, vmtype, image, group, lifetimes, counted = request
            if when > now:
                upcoming[0] = request
                alarm(env, when - now, None, arrive)
                return
            cloud.reserve(vmtype, image, group, lifetimes, counted)
            request = next(plan, None)
        done.succeed()

    arrive(done)
    yield done


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
