"""The EC2 Query endpoint as a Starlette app: authenticate, parse, call the service, serialize.

Served at ``/`` and at ``/services/Eucalyptus`` (where Eucalyptus's clients look for it). Every
change is committed to the store before the answer leaves; no request ever gets a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl

import botocore.session
from botocore.model import OperationModel, ServiceModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from euca.api import query, xml
from euca.api.actions import ACTIONS
from euca.api.errors import ApiError, InternalError, InvalidAction, MissingParameter, RequestTooLarge
from euca.auth import SignedRequest, verify
from euca.services.cloud import Cloud

log = logging.getLogger("euca.api")

MAX_BODY = 1 << 20
XML = "text/xml;charset=UTF-8"

_model: ServiceModel | None = None


def ec2_model() -> ServiceModel:
    global _model
    if _model is None:
        _model = botocore.session.get_session().get_service_model("ec2")
    return _model


class Ec2Api:
    """The request pipeline; one instance per cloud."""

    def __init__(self, cloud: Cloud) -> None:
        self.cloud = cloud
        self.model = ec2_model()
        self.version = str(self.model.metadata["apiVersion"])
        self._operations: dict[str, OperationModel] = {
            name: self.model.operation_model(name) for name in ACTIONS}

    async def endpoint(self, request: Request) -> Response:
        request_id = str(uuid.uuid4())
        try:
            body = await self._body(request)
            return self.handle(request.method, request.url.path, request.url.query,
                               {k.lower(): v for k, v in request.headers.items()}, body, request_id)
        except ApiError as exc:
            return _error(exc, request_id)

    async def _body(self, request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY):
            raise RequestTooLarge(f"Request body is larger than {MAX_BODY} bytes")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY:
                raise RequestTooLarge(f"Request body is larger than {MAX_BODY} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def handle(self, method: str, path: str, raw_query: str, headers: dict[str, str], body: bytes,
               request_id: str) -> Response:
        """Synchronous on purpose: the cluster controller and the store are plain code, and one
        request runs to its commit before the next one starts."""
        try:
            params = self._params(raw_query, headers, body)
            signed = SignedRequest(method, path, raw_query, headers, body, params)
            access_key = verify(signed, self.cloud.accounts.secret)
            caller = self.cloud.caller(access_key)
            action = params.get("Action")
            if not action:
                raise MissingParameter("The request must contain the parameter Action")
            operation = self._operations.get(action)
            handler = ACTIONS.get(action)
            if operation is None or handler is None:
                raise InvalidAction(f"The action {action[:64]} is not valid for this web service.")
            parsed = query.parse(operation.input_shape, params)
            result: dict[str, Any] = handler(self.cloud, caller, parsed)
            version = params.get("Version") or self.version
            if not (len(version) == 10 and version[4] == "-" and version.replace("-", "").isdigit()):
                version = self.version
            return Response(xml.response(operation, result, request_id, version), media_type=XML)
        except ApiError as exc:
            return _error(exc, request_id)
        except Exception:
            log.exception("request %s failed", request_id)
            return _error(InternalError("An internal error has occurred"), request_id)

    def _params(self, raw_query: str, headers: dict[str, str], body: bytes) -> dict[str, str]:
        params: dict[str, str] = {}
        try:
            pairs = parse_qsl(raw_query, keep_blank_values=True, strict_parsing=False, max_num_fields=query.MAX_PARAMS)
            if body and headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
                pairs += parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=query.MAX_PARAMS)
        except (ValueError, UnicodeDecodeError):
            from euca.api.errors import InvalidParameterValue

            raise InvalidParameterValue("The request parameters are not valid form encoding") from None
        for key, value in pairs:
            params.setdefault(key, value)
        return params


def _error(exc: ApiError, request_id: str) -> Response:
    return Response(xml.error(exc.code, exc.message, request_id), status_code=exc.status, media_type=XML)


def create_app(cloud: Cloud, tick_seconds: float = 5.0) -> Starlette:
    api = Ec2Api(cloud)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async def housekeeping() -> None:
            while True:
                await asyncio.sleep(tick_seconds)
                try:
                    cloud.tick()
                except Exception:
                    log.exception("housekeeping failed")
        task = asyncio.create_task(housekeeping())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    paths = ("/", "/services/Eucalyptus", "/services/Eucalyptus/")
    routes = [Route(path, api.endpoint, methods=["GET", "POST"]) for path in paths]
    return Starlette(routes=routes, lifespan=lifespan)
