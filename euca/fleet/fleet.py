"""The cluster controller's node controllers, in-process or remote, behind one interface, and their polling.

A :class:`NodeHandle` is what the cloud holds for a node: run, terminate, reboot and console, and
the latest :class:`Poll` (ncDescribeResource + ncDescribeInstances). :class:`LocalNode` wraps a
:class:`~euca.node.controller.NodeController` in this process (the cloud in a box) and answers at
once; :class:`RemoteNode` talks to ``euca node-controller`` over HTTP from a background event loop,
so the cloud's request handlers never wait on a node: launches and terminations are sent off, and
polls run every NC_POLLING_FREQUENCY seconds.

The :class:`Fleet` keeps the CC's instance cache: for every instance, where and in what state it
was last seen, and when. Poll results are applied by :meth:`Fleet.apply`, called from the cloud's
periodic work on the thread that owns the cluster controller (``euca.cluster`` has no locks and no
I/O): a node that answered is reported (``cc.nodes.report``), one that did not goes DOWN
(``cc.nodes.unreachable``). An instance unseen for INSTANCE_TIMEOUT leaves the cache, as in
Eucalyptus's CC; the cloud then ends it after SHUT_DOWN_TIME.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from drivers.protocol import InstanceSpec, InstanceStatus, NcState, NodeError, NodeResources, VolumeAttachment
from euca.cluster import ClusterController
from euca.core.clock import Clock, wall
from euca.fleet.client import NodeClient, NodeUnreachable
from euca.node.controller import NodeController
from euca.node.images import Locations

log = logging.getLogger("euca.fleet.fleet")


@dataclass(frozen=True)
class Poll:
    """One ncDescribeResource + ncDescribeInstances of a node, or why it failed."""

    at: float
    resources: NodeResources | None = None
    instances: tuple[InstanceStatus, ...] = ()
    error: str = ""


@dataclass(frozen=True)
class Sighting:
    """An instance as the CC last saw it on a node."""

    node: str
    state: NcState
    seen: float


class NodeHandle(Protocol):
    """What the cloud can do with one node controller, wherever it runs."""

    name: str

    def run(self, spec: InstanceSpec, locations: Locations) -> None: ...

    def terminate(self, instance_id: str) -> None: ...

    def reboot(self, instance_id: str) -> None: ...

    def console(self, instance_id: str) -> str: ...

    def attach_volume(self, instance_id: str, volume: VolumeAttachment) -> None: ...

    def detach_volume(self, instance_id: str, volume_id: str) -> None: ...

    def poll(self) -> Poll | None:
        """The newest poll not handed out yet (a local node polls now)."""
        ...

    def failures(self) -> list[tuple[str, str]]:
        """Instances whose ncRunInstance failed since the last call, with the reason."""
        ...


class LocalNode:
    """A node controller in this process: every call is direct."""

    def __init__(self, nc: NodeController, clock: Clock = wall) -> None:
        self.nc = nc
        self.name = nc.name
        self.clock = clock

    def run(self, spec: InstanceSpec, locations: Locations) -> None:
        self.nc.run(spec, locations)

    def terminate(self, instance_id: str) -> None:
        self.nc.terminate(instance_id)

    def reboot(self, instance_id: str) -> None:
        self.nc.reboot(instance_id)

    def console(self, instance_id: str) -> str:
        return self.nc.console(instance_id)

    def attach_volume(self, instance_id: str, volume: VolumeAttachment) -> None:
        self.nc.attach_volume(instance_id, volume)

    def detach_volume(self, instance_id: str, volume_id: str) -> None:
        self.nc.detach_volume(instance_id, volume_id)

    def poll(self) -> Poll:
        now = self.clock()
        try:
            return Poll(now, self.nc.describe_resources(), tuple(self.nc.describe_instances()))
        except NodeError as exc:
            return Poll(now, error=str(exc))

    def failures(self) -> list[tuple[str, str]]:
        return []


class _Loop:
    """One event loop in a daemon thread for every remote node's calls and polls."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="nc-clients", daemon=True)
        self.thread.start()

    def submit(self, coro: Coroutine[Any, Any, Any]) -> concurrent.futures.Future[Any]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def stop(self) -> None:
        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        with contextlib.suppress(concurrent.futures.TimeoutError, RuntimeError):
            self.submit(cancel_all()).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        if not self.thread.is_alive():
            self.loop.close()


class RemoteNode:
    """``euca node-controller`` on another host, through :class:`~euca.fleet.client.NodeClient`."""

    def __init__(self, name: str, client: NodeClient, loop: _Loop, clock: Clock = wall) -> None:
        self.name = name
        self.client = client
        self.clock = clock
        self._loop = loop
        self._latest: Poll | None = None
        self._failed: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def run(self, spec: InstanceSpec, locations: Locations) -> None:
        self._send(spec.instance_id, "run", self.client.run(spec, dict(locations)))

    def terminate(self, instance_id: str) -> None:
        self._send(instance_id, "terminate", self.client.terminate(instance_id))

    def reboot(self, instance_id: str) -> None:
        self._send(instance_id, "reboot", self.client.reboot(instance_id))

    def console(self, instance_id: str) -> str:
        """Waits for the node (GetConsoleOutput has nothing to answer without it), at most the call timeout."""
        future = self._loop.submit(self.client.console(instance_id))
        try:
            return str(future.result(self.client.timeout + 1))
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise NodeUnreachable(f"{self.client.url}: no console within {self.client.timeout:g} s") from None

    def attach_volume(self, instance_id: str, volume: VolumeAttachment) -> None:
        """Waits for the node: the volume is attached, or the call failed, before the cloud says so."""
        self._wait(self.client.attach_volume(instance_id, volume), "attach")

    def detach_volume(self, instance_id: str, volume_id: str) -> None:
        self._wait(self.client.detach_volume(instance_id, volume_id), "detach")

    def _wait(self, coro: Coroutine[Any, Any, None], what: str) -> None:
        future = self._loop.submit(coro)
        try:
            future.result(self.client.timeout + 1)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise NodeUnreachable(f"{self.client.url}: no answer to {what} within {self.client.timeout:g} s") from None

    def poll(self) -> Poll | None:
        with self._lock:
            latest, self._latest = self._latest, None
        return latest

    def failures(self) -> list[tuple[str, str]]:
        with self._lock:
            failed, self._failed = self._failed, []
        return failed

    async def poll_now(self) -> None:
        try:
            resources = await self.client.describe_resources()
            statuses = await self.client.describe_instances()
            result = Poll(self.clock(), resources, tuple(statuses))
        except NodeError as exc:
            result = Poll(self.clock(), error=str(exc))
        with self._lock:
            self._latest = result

    def _send(self, instance_id: str, what: str, coro: Coroutine[Any, Any, None]) -> None:
        def done(future: concurrent.futures.Future[None]) -> None:
            if future.cancelled():
                return
            exc = future.exception()
            if exc is None:
                return
            log.warning("%s: %s on node %s failed: %s", instance_id, what, self.name, exc)
            with self._lock:
                if what == "run":
                    self._failed.append((instance_id, str(exc)))
                if isinstance(exc, NodeUnreachable):
                    self._latest = Poll(self.clock(), error=str(exc))

        self._loop.submit(coro).add_done_callback(done)


class Fleet:
    """The cluster's node controllers and the CC's cache of what they last reported."""

    def __init__(self, *, instance_timeout: float = 300.0, polling: float = 6.0, clock: Clock = wall) -> None:
        self.instance_timeout = instance_timeout
        self.polling = polling
        self.clock = clock
        self.started = clock()
        self.nodes: dict[str, NodeHandle] = {}
        self._sightings: dict[str, Sighting] = {}
        self._launched: dict[str, float] = {}
        self._loop: _Loop | None = None
        self._poller: concurrent.futures.Future[None] | None = None
        self._refreshed = float("-inf")
        self._started = False

    # Eucalyptus's CC learns of state changes at its NC polls (NC_POLLING_FREQUENCY, 6 s); the
    # in-process nodes are read on demand, but at most this often, so a burst of describes costs
    # one read of every node rather than one each.
    REFRESH_INTERVAL = 0.2

    def add_local(self, nc: NodeController) -> LocalNode:
        handle = LocalNode(nc, self.clock)
        self._add(handle)
        return handle

    def add_remote(self, name: str, url: str, key: str, timeout: float = 20.0) -> RemoteNode:
        started = self._started
        if self._loop is None:
            self._loop = _Loop()
        handle = RemoteNode(name, NodeClient(url, key, timeout), self._loop, self.clock)
        self._add(handle)
        if started:
            self.start()  # a node registered while the cloud runs: polled from now on
        return handle

    def _add(self, handle: NodeHandle) -> None:
        if handle.name in self.nodes:
            raise ValueError(f"node {handle.name!r} is already in the fleet")
        self.nodes[handle.name] = handle

    def start(self) -> None:
        """Poll the remote nodes every NC_POLLING_FREQUENCY seconds (the first poll at once)."""
        self._started = True
        if self._loop is None or self._poller is not None:
            return

        async def poll_forever() -> None:
            while True:
                # read each round: the administrator may register nodes while the cloud runs
                remote = [h for h in list(self.nodes.values()) if isinstance(h, RemoteNode)]
                await asyncio.gather(*(h.poll_now() for h in remote))
                await asyncio.sleep(self.polling)

        self._poller = self._loop.submit(poll_forever())

    def close(self) -> None:
        if self._loop is not None:
            self._loop.stop()
            self._loop = None
            self._poller = None
        for handle in self.nodes.values():
            if isinstance(handle, LocalNode):
                handle.nc.close()

    # --- requests --------------------------------------------------------------------------------------

    def launch(self, node: str, spec: InstanceSpec, locations: Locations) -> None:
        """ncRunInstance on the node the CC chose. A refusal ends the instance (Teardown), which
        the cloud then terminates."""
        now = self.clock()
        self._launched[spec.instance_id] = now
        try:
            self.nodes[node].run(spec, locations)
        except NodeError as exc:
            log.warning("%s: %s", spec.instance_id, exc)
            self._sightings[spec.instance_id] = Sighting(node, NcState.TEARDOWN, now)

    def resume(self, instance_id: str, launched: float) -> None:
        """An instance known from the store after a restart: unseen since ``launched`` at the latest."""
        self._launched.setdefault(instance_id, max(launched, self.started))

    def terminate(self, node: str, instance_id: str) -> None:
        handle = self.nodes.get(node)
        if handle is None:
            return
        try:
            handle.terminate(instance_id)
        except NodeError as exc:
            log.warning("%s: %s", instance_id, exc)

    def reboot(self, node: str, instance_id: str) -> None:
        handle = self.nodes.get(node)
        if handle is not None:
            try:
                handle.reboot(instance_id)
            except NodeError as exc:
                log.warning("%s: %s", instance_id, exc)

    def console(self, node: str, instance_id: str) -> str:
        handle = self.nodes.get(node)
        if handle is None:
            raise NodeError(f"{instance_id}: node {node} is not in the cluster")
        return handle.console(instance_id)

    def is_local(self, node: str) -> bool:
        """Is the node controller in this process (beside an in-process Storage Controller)?"""
        return isinstance(self.nodes.get(node), LocalNode)

    def attach_volume(self, node: str, instance_id: str, volume: VolumeAttachment) -> None:
        """ncAttachVolume; a refusal or an unreachable node raises NodeError."""
        handle = self.nodes.get(node)
        if handle is None:
            raise NodeError(f"{instance_id}: node {node} is not in the cluster")
        handle.attach_volume(instance_id, volume)

    def detach_volume(self, node: str, instance_id: str, volume_id: str) -> None:
        handle = self.nodes.get(node)
        if handle is None:
            raise NodeError(f"{instance_id}: node {node} is not in the cluster")
        handle.detach_volume(instance_id, volume_id)

    # --- what the nodes report -------------------------------------------------------------------------

    def refresh(self) -> None:
        """Read the in-process nodes now (cheap), so the cloud's answers are current; remote nodes
        are read by the poller."""
        now = self.clock()
        if now - self._refreshed < self.REFRESH_INTERVAL:
            return
        self._refreshed = now
        for handle in self.nodes.values():
            if isinstance(handle, LocalNode):
                self._record(handle.name, handle.poll())
            self._record_failures(handle)

    def apply(self, cc: ClusterController) -> None:
        """Hand every node's newest poll to the cluster controller: capacity of those that answered,
        DOWN for those that did not. Call it on the thread that owns ``cc``."""
        for handle in self.nodes.values():
            poll = handle.poll()
            self._record_failures(handle)
            if poll is None or handle.name not in cc.nodes:
                continue
            self._record(handle.name, poll)
            if poll.resources is None:
                cc.nodes.unreachable(handle.name, poll.at, poll.error)
            else:
                cc.nodes.report(handle.name, poll.resources, poll.at)

    def sighting(self, instance_id: str, now: float | None = None) -> Sighting | None:
        """The instance in the CC's cache, or None if never seen or unseen for INSTANCE_TIMEOUT."""
        s = self._sightings.get(instance_id)
        if s is None or (self.clock() if now is None else now) - s.seen > self.instance_timeout:
            return None
        return s

    def last_seen(self, instance_id: str) -> float:
        """When the instance was last reported (or launched, or this cloud started, if never)."""
        s = self._sightings.get(instance_id)
        if s is not None:
            return s.seen
        return self._launched.get(instance_id, self.started)

    def forget(self, instance_id: str) -> None:
        self._sightings.pop(instance_id, None)
        self._launched.pop(instance_id, None)

    def _record(self, node: str, poll: Poll) -> None:
        for status in poll.instances:
            self._sightings[status.instance_id] = Sighting(node, status.state, poll.at)

    def _record_failures(self, handle: NodeHandle) -> None:
        for instance_id, _ in handle.failures():
            self._sightings[instance_id] = Sighting(handle.name, NcState.TEARDOWN, self.clock())
