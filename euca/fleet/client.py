"""The cluster controller's side of one node controller: an async client of ``euca node-controller``.

Each call is one signed HTTP/1.1 request on its own connection, bounded by a timeout (Eucalyptus
gives an NC call 20 s). A node that cannot be reached, or does not answer in time, raises
:class:`NodeUnreachable`, which the poller turns into the node going DOWN; a node that answers
with a refusal raises :class:`~drivers.protocol.NodeError` with its message.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any
from urllib.parse import urlsplit

import orjson

from drivers.protocol import InstanceSpec, InstanceStatus, NodeError, NodeResources, VolumeAttachment
from euca.auth import shared_key as auth
from euca.node import wire
from euca.node.images import Locations, as_location

CALL_TIMEOUT = 20.0  # s per NC call (Eucalyptus 2.0)
MAX_ANSWER = 16 * 1024 * 1024


class NodeUnreachable(NodeError):
    """The node controller did not answer: no connection, a timeout, or garbage."""


class NodeClient:
    """``http://host:8775`` and the key it shares with this cluster."""

    def __init__(self, url: str, key: str, timeout: float = CALL_TIMEOUT) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"a node controller's URL is http://host:port, not {url!r}")
        self.url = url
        self.host = parts.hostname
        self.port = parts.port or 8775
        self.key = key
        self.timeout = timeout

    async def run(self, spec: InstanceSpec, locations: Locations) -> None:
        await self.call("run", {"instance": wire.spec_to_json(spec),
                                "locations": {k: as_location(v).to_json() for k, v in locations.items()}})

    async def terminate(self, instance_id: str) -> None:
        await self.call("terminate", {"instance_id": instance_id})

    async def reboot(self, instance_id: str) -> None:
        await self.call("reboot", {"instance_id": instance_id})

    async def console(self, instance_id: str) -> str:
        return str((await self.call("console", {"instance_id": instance_id}))["output"])

    async def attach_volume(self, instance_id: str, volume: VolumeAttachment) -> None:
        await self.call("attach-volume", {"instance_id": instance_id, "volume": volume.__dict__})

    async def detach_volume(self, instance_id: str, volume_id: str) -> None:
        await self.call("detach-volume", {"instance_id": instance_id, "volume_id": volume_id})

    async def describe_resources(self) -> NodeResources:
        return wire.resources_from_json(await self.call("describe-resource", {}))

    async def describe_instances(self) -> list[InstanceStatus]:
        return wire.statuses_from_json(await self.call("describe-instances", {}))

    async def call(self, operation: str, payload: Any) -> Any:
        try:
            return await asyncio.wait_for(self._call(operation, payload), self.timeout)
        except TimeoutError:
            raise NodeUnreachable(f"{self.url}: no answer to {operation} within {self.timeout:g} s") from None
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            raise NodeUnreachable(f"{self.url}: {operation}: {exc}") from None

    async def _call(self, operation: str, payload: Any) -> Any:
        path = f"/nc/{operation}"
        body = orjson.dumps(payload)
        headers = auth.sign(self.key, "POST", path, body)
        head = (f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n"
                + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n")
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            writer.write(head.encode() + body)
            await writer.drain()
            status_line = await reader.readline()
            parts = status_line.split(None, 2)
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
                raise ValueError(f"not an HTTP answer: {status_line[:80]!r}")
            status = int(parts[1])
            length = -1
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b"\n", b""):
                    break
                name, _, value = line.decode("latin-1").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            if length > MAX_ANSWER:
                raise ValueError("answer too large")
            data = await reader.readexactly(length) if length >= 0 else await reader.read(MAX_ANSWER)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        answer = orjson.loads(data) if data else {}
        if status != 200:
            message = answer.get("error", "") if isinstance(answer, dict) else ""
            raise NodeError(f"{self.url}: {operation}: {status} {message}")
        return answer
