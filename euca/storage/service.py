"""A Storage Controller as its own HTTP service (``euca storage-controller``; port 8773 by default).

The cloud calls ``POST /sc/<operation>`` with a JSON body: ``admit``, ``fill`` (blank), ``delete``,
``export``, ``unexport`` and ``describe``; ``PUT /sc/fill/<vol-id>`` streams a snapshot back into a
volume, and ``POST /sc/snapshot/<vol-id>/<snap-id>`` answers with a point-in-time copy of the
volume as gzip, in frames that say how much of the volume has been read (``euca.storage.frames``:
the cloud's snapshot shows a real ``Progress``, and a stream cut short is known as such). A
background pass removes volumes failed for longer than the SC's ``failed_ttl``. Every request is
signed with the key shared with the cloud (``euca.auth.shared_key``; a streamed body as
``UNSIGNED-PAYLOAD``); anything else is 403. A refusal is 409 with the reason
and, for a limit, the EC2 code. The SC's calls block (files, tgtadm), so they run in worker threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from euca.auth import shared_key
from euca.core.clock import Clock, wall
from euca.storage import frames
from euca.storage.backends import StorageError
from euca.storage.controller import StorageController

log = logging.getLogger("euca.storage.service")

Handler = Callable[[StorageController, dict[str, Any]], Any]


def _volume(body: dict[str, Any]) -> str:
    value = body.get("volume_id")
    if not isinstance(value, str):
        raise ValueError("the body must name a volume_id")
    return value


def _admit(sc: StorageController, body: dict[str, Any]) -> Any:
    size, account = body.get("size"), body.get("account", "")
    if not isinstance(size, int) or isinstance(size, bool):
        raise ValueError("size must be a whole number of GiB")
    if not isinstance(account, str):
        raise ValueError("account must be text")
    sc.admit(_volume(body), size, account)
    return {}


def _export(sc: StorageController, body: dict[str, Any]) -> Any:
    initiator = body.get("initiator", "ALL")
    if not isinstance(initiator, str):
        raise ValueError("initiator must be text")
    found = sc.export(_volume(body), initiator)
    return {"iqn": found.iqn, "tid": found.tid, "host": found.host, "port": found.port, "lun": found.lun}


def _fill(sc: StorageController, body: dict[str, Any]) -> Any:
    sc.fill(_volume(body))
    return {}


def _delete(sc: StorageController, body: dict[str, Any]) -> Any:
    sc.delete(_volume(body))
    return {}


def _unexport(sc: StorageController, body: dict[str, Any]) -> Any:
    sc.unexport(_volume(body))
    return {}


OPERATIONS: dict[str, Handler] = {
    "admit": _admit,
    "fill": _fill,
    "delete": _delete,
    "export": _export,
    "unexport": _unexport,
    "describe": lambda sc, body: {"volumes": sc.describe()},
}


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _refusal(exc: StorageError) -> Response:
    return _json({"error": str(exc), "code": getattr(exc, "code", "")}, 409)


async def _chunks_to_thread(request: Request, sink: queue.Queue[bytes | None]) -> None:
    try:
        async for chunk in request.stream():
            if chunk:
                await asyncio.to_thread(sink.put, chunk)
    finally:
        # the end, or a client gone mid-stream: the reader sees a short stream and fails the volume,
        # rather than waiting for ever
        await asyncio.to_thread(sink.put, None)


def _drain(source: queue.Queue[bytes | None], ended: threading.Event) -> Iterator[bytes]:
    while (chunk := source.get()) is not None:
        yield chunk
    ended.set()


def create_app(sc: StorageController, key: str, clock: Clock = wall, reap_seconds: float = 60.0) -> Starlette:
    """The SC's HTTP face. ``key`` is the secret shared with the cloud; every ``reap_seconds`` the
    SC removes the volumes failed long enough."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async def reaper() -> None:
            while True:
                await asyncio.sleep(reap_seconds)
                try:
                    for volume_id in await run_in_threadpool(sc.reap):
                        log.info("%s: failed, removed", volume_id)
                except Exception:
                    log.exception("removing failed volumes")

        task = asyncio.create_task(reaper())
        try:
            yield
        finally:
            task.cancel()

    def refused(request: Request, body: bytes | str) -> Response | None:
        why = shared_key.verify(key, request.method, request.url.path, body, request.headers.get(shared_key.DATE),
                                request.headers.get(shared_key.SIGNATURE), clock())
        return None if why is None else _json({"error": f"refused: {why}"}, 403)

    async def operation(request: Request) -> Response:
        body = await request.body()
        denied = refused(request, body)
        if denied is not None:
            return denied
        handler = OPERATIONS.get(request.path_params["operation"])
        if handler is None:
            return _json({"error": "no such operation"}, 404)
        try:
            payload = orjson.loads(body or b"{}")
            if not isinstance(payload, dict):
                raise ValueError("the body must be an object")
            return _json(await run_in_threadpool(handler, sc, payload))
        except StorageError as exc:
            return _refusal(exc)
        except (ValueError, TypeError, KeyError) as exc:
            return _json({"error": f"bad request: {exc}"}, 400)

    async def fill(request: Request) -> Response:
        denied = refused(request, shared_key.UNSIGNED)
        if denied is not None:
            return denied
        chunks: queue.Queue[bytes | None] = queue.Queue(maxsize=8)
        volume_id = request.path_params["volume_id"]
        done: list[BaseException] = []
        ended = threading.Event()

        def work() -> None:
            try:
                sc.fill(volume_id, _drain(chunks, ended))
            except BaseException as exc:  # handed to the request, below
                done.append(exc)
                if not ended.is_set():  # let the reader finish (a stream found short has finished)
                    while chunks.get() is not None:
                        pass

        worker = threading.Thread(target=work, name=f"sc-fill-{volume_id}", daemon=True)
        worker.start()
        await _chunks_to_thread(request, chunks)
        await asyncio.to_thread(worker.join)
        if done:
            if isinstance(done[0], StorageError):
                return _refusal(done[0])
            return _json({"error": f"bad request: {done[0]}"}, 400)
        return _json({})

    async def snapshot(request: Request) -> Response:
        denied = refused(request, await request.body())
        if denied is not None:
            return denied
        try:
            size, steps = await run_in_threadpool(sc.snapshot_steps, request.path_params["volume_id"],
                                                  request.path_params["snapshot_id"])
        except StorageError as exc:
            return _refusal(exc)

        async def body() -> AsyncIterator[bytes]:
            async for frame in iterate_in_threadpool(frames.framed(steps, size)):
                yield frame

        return StreamingResponse(body(), media_type=frames.MEDIA_TYPE, headers={frames.SIZE_HEADER: str(size)})

    async def deny(request: Request) -> Response:
        return _json({"error": "refused"}, 403)

    routes = [Route("/sc/fill/{volume_id}", fill, methods=["PUT"]),
              Route("/sc/snapshot/{volume_id}/{snapshot_id}", snapshot, methods=["POST"]),
              Route("/sc/{operation}", operation, methods=["POST"]),
              Route("/{path:path}", deny, methods=["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH"])]
    return Starlette(routes=routes, lifespan=lifespan)
