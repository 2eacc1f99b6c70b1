"""``euca node-controller``: a node controller as its own HTTP service on NC_PORT (8775).

The cluster controller calls ``POST /nc/<operation>`` with a JSON body: ``run`` (ncRunInstance),
``terminate``, ``reboot``, ``console``, ``describe-resource`` and ``describe-instances``. Every
request must be signed with the node's shared key (``euca.node.auth``); anything else gets 403
before it is even parsed. A NodeError is 409 with libvirt's message; a malformed body is 400.
The node controller's calls block (libvirt, file copies), so they run in worker threads.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from drivers.protocol import Driver, NodeError
from euca.node import auth, wire
from euca.node.controller import NodeController, NodeStorage
from euca.node.images import LocalFiles

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
    if not isinstance(locations, dict) or not all(isinstance(v, str) for v in locations.values()):
        raise ValueError("locations must map image ids to text")
    nc.run(wire.spec_from_json(body["instance"]), locations)
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


OPERATIONS: dict[str, Handler] = {
    "run": _run, "terminate": _terminate, "reboot": _reboot, "console": _console,
    "describe-resource": _resources, "describe-instances": _instances,
}


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def create_app(nc: NodeController, key: str, clock: Callable[[], float] = time.time) -> Starlette:
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


# --- the command ------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="eucalyptus.conf (HYPERVISOR, INSTANCE_PATH, NC_PORT, NC_CACHE_SIZE, ...)")
    parser.add_argument("--uri", help="libvirt URI (default from HYPERVISOR: qemu:///system or xen:///system)")
    parser.add_argument("--sim", action="store_true", help="a simulated hypervisor instead of libvirt (trying out)")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, help="default NC_PORT (8775)")
    parser.add_argument("--key", help="the key shared with the cluster (or EUCA_NODE_KEY, or --key-file)")
    parser.add_argument("--key-file", help="a file holding the shared key")
    parser.add_argument("--images", help="directory that relative image locations are resolved against")
    parser.add_argument("--log-level", default="info")


def _key(args: argparse.Namespace) -> str:
    if args.key:
        return str(args.key)
    if args.key_file:
        return Path(args.key_file).read_text().strip()
    return os.environ.get("EUCA_NODE_KEY", "")


def build(args: argparse.Namespace) -> tuple[NodeController, int]:
    from euca.config import Config, load_config

    config = load_config(args.config) if args.config else Config()
    driver: Driver
    if args.sim:
        from drivers.sim import NodeShape, SimNode

        driver = SimNode(os.uname().nodename, NodeShape(), clock=time.time)
    else:
        from drivers.libvirt import DomainLayout, LibvirtDriver

        uri = args.uri or ("xen:///system" if config.hypervisor == "xen" else "qemu:///system")
        driver = LibvirtDriver(uri, layout=DomainLayout(config.hypervisor, config.vnet_bridge),
                               instance_path=config.instance_path,
                               overrides=(config.max_cores, config.max_mem, config.max_disk))
    storage = NodeStorage(config.instance_path, LocalFiles(Path(args.images) if args.images else None),
                          cache_size_mb=config.nc_cache_size, concurrent_disk_ops=config.concurrent_disk_ops,
                          swap_mb=config.swap_size)
    nc = NodeController(driver, storage, name=os.uname().nodename)
    for instance_id in nc.recover():
        log.info("removed the leftovers of %s", instance_id)
    return nc, args.port or config.nc_port


def main(args: argparse.Namespace) -> int:
    from euca.config import ConfigError
    from euca.serving import serve

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    key = _key(args)
    if not key:
        print("euca: a node controller needs the key shared with its cluster (--key, --key-file or EUCA_NODE_KEY)",
              file=sys.stderr)
        return 2
    try:
        nc, port = build(args)
    except (ConfigError, NodeError, OSError, ValueError) as exc:
        print(f"euca: {exc}", file=sys.stderr)
        return 2
    try:
        serve(create_app(nc, key), args.host, port, f"node controller on http://{args.host}:{port}/nc/",
              log_level="warning", access_log=False)
    finally:
        nc.close()
    return 0
