"""A node controller as its own HTTP service on NC_PORT (8775); ``euca node-controller`` runs it.

The cluster controller calls ``POST /nc/<operation>`` with a JSON body: ``run`` (ncRunInstance),
``terminate``, ``reboot``, ``console``, ``describe-resource`` and ``describe-instances``;
``attach-volume``, ``detach-volume`` and ``describe-volumes`` (ncAttachVolume...). Every
request must be signed with the node's shared key (``euca.auth.shared_key``); anything else gets 403
before it is even parsed. A NodeError is 409 with libvirt's message; a malformed body is 400.
The node controller's calls block (libvirt, file copies), so they run in worker threads.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from drivers.protocol import NodeError
from euca.auth import shared_key as auth
from euca.core.clock import Clock, wall
from euca.node import wire
from euca.node.controller import NodeController
from euca.node.images import ImageLocation

log = logging.getLogger("euca.node.service")

Handler = Callable[[NodeController, Any], Any]


def _id(body: Any) -> str:
    if not isinstance(body, dict) or not isinstance(body.get("instance_id"), str):
        raise ValueError("the body must be an object with an instance_id")
    return str(body["instance_id"])


def _run(nc: NodeController, body: Any) -> Any:
    if not isinstance(body, dict) or not isinstance(body.get("instance"), dict):
        raise ValueError("the body must be an object with an instance")
    locations = body.get("locations") or {}
    if not isinstance(locations, dict):
        raise ValueError("locations must map image ids to their locations")
    nc.run(wire.spec_from_json(body["instance"]), {k: ImageLocation.from_json(v) for k, v in locations.items()})
    return {}


def _terminate(nc: NodeController, body: Any) -> Any:
    nc.terminate(_id(body))
    return {}


def _reboot(nc: NodeController, body: Any) -> Any:
    nc.reboot(_id(body))
    return {}


def _console(nc: NodeController, body: Any) -> Any:
    return {"output": nc.console(_id(body))}


def _resources(nc: NodeController, body: Any) -> Any:
    return wire.resources_to_json(nc.describe_resources())


def _instances(nc: NodeController, body: Any) -> Any:
    return wire.statuses_to_json(nc.describe_instances())


def _attach(nc: NodeController, body: Any) -> Any:
    volume = body.get("volume") if isinstance(body, dict) else None
    if not isinstance(volume, dict):
        raise ValueError("the body must be an object with an instance_id and a volume")
    nc.attach_volume(_id(body), wire.volume_from_json(volume))
    return {}


def _detach(nc: NodeController, body: Any) -> Any:
    if not isinstance(body.get("volume_id"), str):
        raise ValueError("the body must name a volume_id")
    nc.detach_volume(_id(body), body["volume_id"])
    return {}


def _volumes(nc: NodeController, body: Any) -> Any:
    return {i: [v.__dict__ for v in vs] for i, vs in nc.volumes().items()}


OPERATIONS: dict[str, Handler] = {
    "attach-volume": _attach, "detach-volume": _detach, "describe-volumes": _volumes,
    "run": _run, "terminate": _terminate, "reboot": _reboot, "console": _console,
    "describe-resource": _resources, "describe-instances": _instances,
}


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def create_app(nc: NodeController, key: str, clock: Clock = wall) -> Starlette:
    """The NC's HTTP face. ``key`` is the secret shared with the cluster controller."""

    async def endpoint(request: Request) -> Response:
        body = await request.body()
        refused = auth.verify(key, request.method, request.url.path, body, request.headers.get(auth.DATE),
                              request.headers.get(auth.SIGNATURE), clock())
        if refused is not None:
            return _json({"error": f"refused: {refused}"}, 403)
        handler = OPERATIONS.get(request.path_params["operation"])
        if handler is None:
            return _json({"error": "no such operation"}, 404)
        try:
            payload = orjson.loads(body or b"{}")
            result = await run_in_threadpool(handler, nc, payload)
        except NodeError as exc:
            return _json({"error": str(exc)}, 409)
        except (ValueError, TypeError, KeyError) as exc:
            return _json({"error": f"bad request: {exc}"}, 400)
        return _json(result)

    async def refuse(request: Request) -> Response:
        return _json({"error": "refused"}, 403)

    routes = [Route("/nc/{operation}", endpoint, methods=["POST"]),
              Route("/{path:path}", refuse, methods=["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH"])]
    return Starlette(routes=routes)

