"""The EC2 Query endpoint as a Starlette app: authenticate, parse, call the service, serialize.

Served at ``/`` and at ``/services/Eucalyptus`` (where Eucalyptus's clients look for it). Every
change is committed to the store before the answer leaves; no request ever gets a traceback.

One pipeline for every action: verify the signature, find the caller, parse and check the
parameters against the operation's input shape, authorize, and only then either answer
``DryRunOperation`` (for ``DryRun=true``) or call the action's handler. Nothing a handler does
happens for a request that fails any step before it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Protocol
from urllib.parse import parse_qsl

import botocore.session
from botocore.model import OperationModel, ServiceModel
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from euca.api import query, xml
from euca.api.actions import ACTIONS, Handler
from euca.api.authorize import PolicyAuthorizer, source_ip
from euca.api.authorize import account_policy as account_policy  # the kernel/ramdisk rule, inside every hook
from euca.api.metadata import create_metadata_app
from euca.api.netview import PATH as NETWORK_INFO
from euca.api.netview import NetViewApp, node_keys
from euca.api.s3 import PREFIX as WALRUS
from euca.api.s3 import create_s3_app
from euca.auth import SignedRequest, verify
from euca.core.errors import (
    ApiError,
    DryRunOperation,
    InternalError,
    InvalidAction,
    InvalidParameterValue,
    MissingParameter,
    RequestTooLarge,
)
from euca.core.text import quoted
from euca.metadata import is_metadata_path
from euca.services.cloud import Cloud
from euca.services.common import Caller
from euca.walrus import Walrus

log = logging.getLogger("euca.api")

MAX_BODY = 1 << 20
XML = "text/xml;charset=UTF-8"
FORM = "application/x-www-form-urlencoded"
PATHS = ("/", "/services/Eucalyptus", "/services/Eucalyptus/")
EUARE = ("/services/Euare", "/services/Euare/")
CONSOLE = "/console"
_XML_HEADER = (b"content-type", XML.encode())
# Parameters Eucalyptus's tools send that botocore's EC2 model does not have
EXTENSIONS = {"RunInstances": ("AddressingType",)}

# May this caller do this action with these (parsed) parameters? Raises UnauthorizedOperation if not.
Authorize = Callable[[Caller, str, dict[str, Any]], None]


class Console(Protocol):
    """The web console (``euca.console``, beside this package: whoever starts the server hands it in)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None: ...

    def sample(self) -> None: ...


class ConsoleFactory(Protocol):
    """Makes the console over the pipeline's own parser, authorization hook and handlers, so that each
    of its actions is the request the API would have got."""

    def __call__(self, cloud: Cloud, *, authorize: Authorize, actions: Mapping[str, Handler], model: ServiceModel,
                 parse: Callable[..., dict[str, Any]], source_ip: Any, walrus: Walrus | None) -> Console: ...

_model: ServiceModel | None = None


def ec2_model() -> ServiceModel:
    global _model
    if _model is None:
        _model = botocore.session.get_session().get_service_model("ec2")
    return _model


class Ec2Api:
    """The request pipeline; one instance per cloud."""

    def __init__(self, cloud: Cloud, authorize: Authorize | None = None,
                 actions: Mapping[str, Handler] = ACTIONS) -> None:
        """``authorize``: the users' policies and quotas (``PolicyAuthorizer``) unless given."""
        self.cloud = cloud
        self.authorize = authorize or PolicyAuthorizer(cloud)
        self.actions = actions
        self.model = ec2_model()
        self.version = str(self.model.metadata["apiVersion"])
        self._operations: dict[str, OperationModel] = {
            name: self.model.operation_model(name) for name in actions}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI contract, without a Request and a Response object per call: at thousands of
        requests a second their construction was a tenth of the time spent on one."""
        request_id = _request_id()
        client = scope.get("client")
        source_ip.set(client[0] if client else "")
        try:
            body = await read_body(scope, receive)
            if body is None:
                return  # the client went away; there is no one to answer
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
            status, payload = self.handle(scope["method"], scope["path"], scope["query_string"].decode("latin-1"),
                                          headers, body, request_id)
        except ApiError as exc:
            status, payload = exc.status, xml.error(exc.code, exc.message, request_id)
        await send({"type": "http.response.start", "status": status,
                    "headers": [_XML_HEADER, (b"content-length", str(len(payload)).encode())]})
        await send({"type": "http.response.body", "body": payload})

    def handle(self, method: str, path: str, raw_query: str, headers: dict[str, str], body: bytes,
               request_id: str) -> tuple[int, bytes]:
        """Synchronous on purpose: the cluster controller and the store are plain code, and one
        request runs to its commit before the next one starts."""
        try:
            params = self._params(raw_query, headers, body)
            self.cloud.refresh()
            signed = SignedRequest(method, path, raw_query, headers, body, params)
            access_key = verify(signed, self.cloud.accounts.secret)
            caller = self.cloud.caller(access_key)
            action = params.get("Action")
            if not action:
                raise MissingParameter("The request must contain the parameter Action")
            operation = self._operations.get(action)
            handler = self.actions.get(action)
            if operation is None or handler is None:
                raise InvalidAction(f"The action {quoted(action)} is not valid for this web service.")
            parsed = query.parse(operation.input_shape, params, EXTENSIONS.get(action, ()))
            self.authorize(caller, action, parsed)
            if parsed.get("DryRun") is True:
                raise DryRunOperation()
            result: dict[str, Any] = handler(self.cloud, caller, parsed)
            version = params.get("Version") or self.version
            if not (len(version) == 10 and version[4] == "-" and version.isascii()
                    and version.replace("-", "").isdigit()):
                version = self.version
            return 200, xml.response(operation, result, request_id, version)
        except ApiError as exc:
            return exc.status, xml.error(exc.code, exc.message, request_id)
        except Exception:
            log.exception("request %s failed", request_id)
            internal = InternalError("An internal error has occurred")
            return internal.status, xml.error(internal.code, internal.message, request_id)

    def _params(self, raw_query: str, headers: dict[str, str], body: bytes) -> dict[str, str]:
        return form_params(raw_query, headers, body)


async def read_body(scope: Scope, receive: Receive) -> bytes | None:
    """A Query request's whole body, at most ``MAX_BODY`` bytes (the EC2 and IAM endpoints read theirs
    here); None if the client went away. A larger declared Content-Length is refused before anything
    is read, so a client announcing a huge body is answered at once instead of once it is sent."""
    for name, value in scope["headers"]:
        if name == b"content-length" and (not value.isdigit() or int(value) > MAX_BODY):
            raise RequestTooLarge(f"Request body is larger than {MAX_BODY} bytes")
    chunks: list[bytes] = []
    size = 0
    while True:
        message: Message = await receive()
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise RequestTooLarge(f"Request body is larger than {MAX_BODY} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def form_params(raw_query: str, headers: dict[str, str], body: bytes) -> dict[str, str]:
    """The query string's and a form body's parameters (the first of a repeated name wins); the
    IAM endpoint reads its requests the same way."""
    params: dict[str, str] = {}
    try:
        # Percent-escapes must decode as UTF-8: a name or value that does not is refused, not guessed at.
        pairs = parse_qsl(raw_query, keep_blank_values=True, max_num_fields=query.MAX_PARAMS, errors="strict")
        if body and headers.get("content-type", "").partition(";")[0].strip().lower() == FORM:
            pairs += parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=query.MAX_PARAMS,
                               errors="strict")
    except (ValueError, UnicodeDecodeError):
        raise InvalidParameterValue("The request parameters are not valid form encoding") from None
    for key, value in pairs:
        params.setdefault(key, value)
    return params


def _request_id() -> str:
    """A random UUID-4 string, as AWS's request ids look; uuid.uuid4() builds an object to get there."""
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _method_not_allowed() -> Response:
    return Response(xml.error("InvalidAction", "Only GET and POST are supported", _request_id()),
                    status_code=405, media_type=XML)


class _Front:
    """The EC2 endpoint's paths straight to the pipeline (any other method there gets EC2's error
    document); ``/services/Walrus`` to the S3 app, ``/services/Euare`` to IAM; lifespan and everything
    else to Starlette."""

    def __init__(self, api: Ec2Api, rest: Starlette, s3: ASGIApp | None = None, iam: ASGIApp | None = None) -> None:
        self.api, self.rest, self.s3, self.iam = api, rest, s3, iam

    metadata: ASGIApp | None = None  # /latest/... and /<date>/... (euca.api.metadata)
    console: ASGIApp | None = None  # /console/... (euca.console)
    netview: ASGIApp | None = None  # the network agents' view (euca.api.netview)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # EC2 first: it is the hot path, and no other service's paths overlap it
        if scope["type"] == "http" and scope["path"] in PATHS:
            if scope["method"] in ("GET", "POST"):
                await self.api(scope, receive, send)
            else:
                await _method_not_allowed()(scope, receive, send)
        elif self.metadata is not None and scope["type"] == "http" and is_metadata_path(scope["path"]):
            await self.metadata(scope, receive, send)
        elif self.netview is not None and scope["type"] == "http" and scope["path"] == NETWORK_INFO:
            await self.netview(scope, receive, send)
        elif self.s3 is not None and scope["type"] == "http" and scope["path"].startswith(WALRUS) \
                and scope["path"][len(WALRUS):len(WALRUS) + 1] in ("", "/"):
            await self.s3(scope, receive, send)
        elif self.iam is not None and scope["type"] == "http" and scope["path"] in EUARE:
            await self.iam(scope, receive, send)
        elif self.console is not None and scope["type"] == "http" and (
                scope["path"] == CONSOLE or scope["path"].startswith(CONSOLE + "/")):
            await self.console(scope, receive, send)
        else:
            await self.rest(scope, receive, send)


def create_app(cloud: Cloud, tick_seconds: float = 5.0, authorize: Authorize | None = None,
               walrus: Walrus | None = None, console: ConsoleFactory | None = None) -> _Front:
    """``walrus``: serve it (S3) under ``/services/Walrus`` too, and run its lifecycle sweep. IAM
    (Euare) is served under ``/services/Euare``. ``console``: serve the web console under ``/console``
    (``euca.console.create_console``)."""
    from euca.api.iam import IamApi

    api = Ec2Api(cloud, authorize)
    web = None if console is None else console(cloud, authorize=api.authorize, actions=api.actions, model=api.model,
                                               parse=query.parse, source_ip=source_ip, walrus=walrus)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async def housekeeping() -> None:
            while True:
                await asyncio.sleep(tick_seconds)
                try:
                    cloud.tick()
                    if web is not None:
                        web.sample()
                    if walrus is not None:
                        walrus.tick()
                except Exception:
                    log.exception("housekeeping failed")
        task = asyncio.create_task(housekeeping())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    s3 = create_s3_app(cloud, walrus) if walrus is not None else None
    front = _Front(api, Starlette(lifespan=lifespan), s3, IamApi(cloud))
    # The instance metadata service; the cloud's key (in the data directory, beside Walrus) signs
    # its identity documents.
    front.metadata = create_metadata_app(cloud, walrus.blobs.root.parent if walrus is not None else None)
    front.netview = NetViewApp(cloud, node_keys(cloud))
    if walrus is not None:
        from euca.walrus.snapshots import WalrusSnapshots

        cloud.keep_snapshots_in(WalrusSnapshots(walrus, cloud.snapshots.bucket))
    front.console = web
    return front
