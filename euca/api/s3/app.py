"""The S3 REST endpoint (Walrus) as one ASGI app: address, authenticate, route, answer.

Path style under a prefix (``/services/Walrus/<bucket>/<key>``, where Eucalyptus served it, and
``/<bucket>/<key>`` on a port of its own), and virtual-hosted style (``<bucket>.<domain>``) on
its own port. Bodies stream to disk as they arrive and objects stream back from their files
through a fixed buffer. Every failure is S3's XML error document; nothing answers with a traceback.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
from collections.abc import Callable
from urllib.parse import parse_qsl, quote, unquote

from starlette.types import Message, Receive, Scope, Send

from euca.api.s3 import cors, wire
from euca.api.s3.body import ClientGone
from euca.api.s3.call import Call, Reply
from euca.api.s3.routes import route
from euca.auth.s3 import verify_s3
from euca.auth.signing import SecretLookup
from euca.core.errors import ApiError
from euca.core.s3errors import InternalError, InvalidArgument, S3Error
from euca.walrus import Requester, Walrus
from euca.walrus.blobs import Run, close_runs

log = logging.getLogger("euca.api.s3")

PREFIX = "/services/Walrus"
SEND_BUFFER = 1 << 20
_XML = "application/xml"


def _request_id() -> str:
    return f"{random.getrandbits(64):016X}"  # a label for logs and errors: no system call for it


class S3Api:
    """``prefix``: the path the service sits under (``/services/Walrus``; "" on its own port).
    ``domains``: host names whose sub-domains name buckets (virtual-hosted style)."""

    def __init__(self, walrus: Walrus, secret_of: SecretLookup, requester_of: Callable[[str], Requester],
                 refresh: Callable[[], None] = lambda: None, prefix: str = PREFIX,
                 domains: tuple[str, ...] = ()) -> None:
        self.walrus = walrus
        self.secret_of = secret_of
        self.requester_of = requester_of
        self.refresh = refresh
        self.prefix = prefix
        self.domains = tuple(d.lower() for d in domains)

    def _address(self, scope: Scope, host: str, sent_path: str) -> tuple[str, str, tuple[str, ...]]:
        """(bucket, key, the resources a Version 2 signature may cover). S3's CanonicalizedResource
        is the request's path exactly as sent (percent-encoded as the client chose it), after
        "/<bucket>" when the host names the bucket; in path style, with or without the service
        prefix (botocore leaves it out)."""
        path: str = scope["path"]
        if self.prefix and path.startswith(self.prefix):
            path = path[len(self.prefix):]
        unprefixed = sent_path[len(self.prefix):] if self.prefix and sent_path.startswith(self.prefix) else sent_path
        name = host.rsplit(":", 1)[0].lower() if not host.startswith("[") else host
        for domain in self.domains:
            if name.endswith("." + domain):
                bucket = name[:-len(domain) - 1]
                return bucket, path.lstrip("/"), (f"/{bucket}{unprefixed or '/'}",)
        bucket, _, key = path.lstrip("/").partition("/")
        return bucket, key, (unprefixed or "/", sent_path or "/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = _request_id()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        method: str = scope["method"]
        raw_query = scope["query_string"].decode("latin-1")
        resource = scope["path"]
        call: Call | None = None
        drained = not (headers.get("content-length", "0") not in ("", "0") or "transfer-encoding" in headers)

        async def tracked() -> Message:
            nonlocal drained
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                drained = True
            return message
        try:
            raw_path = scope.get("raw_path", b"").decode("latin-1") or scope["path"]
            sent_path = raw_path.partition("?")[0]
            bucket, key, v2_resources = self._address(scope, headers.get("host", ""), sent_path)
            resource = f"/{bucket}/{key}" if key else f"/{bucket}"
            try:
                query = dict(parse_qsl(raw_query, keep_blank_values=True, errors="strict")) if raw_query else {}
            except (UnicodeError, ValueError):
                raise InvalidArgument("The request is not valid UTF-8") from None
            if self.walrus.refresh():  # the store's change counter moved: the cloud's view too
                self.refresh()
            signature = verify_s3(method, sent_path, raw_query, headers, query, self.secret_of,
                                  lambda: _v2_resources(v2_resources, bucket, key))
            who = self.requester_of(signature.access_key) if signature.access_key else None
            call = Call(method, bucket, key, query, raw_query, headers, tracked, who, signature, self.walrus,
                        request_id, lambda account_id: "", self.secret_of, self.requester_of)
            reply = await route(call)(call)
        except ClientGone:
            return
        except ApiError as exc:
            reply = self._error(exc, resource, request_id, method)
        except Exception:
            log.exception("S3 request %s failed", request_id)
            reply = self._error(InternalError(), resource, request_id, method)
        if not drained:
            # answered before the body was read (an error, or a refusal before 100-continue): the
            # rest of the body must not be read as the next request
            reply.headers["connection"] = "close"
        if call is not None and "origin" in headers:
            with contextlib.suppress(Exception):
                reply.headers.update(cors.actual_headers(call))
        await self._send(reply, send, request_id, method)

    @staticmethod
    def _error(exc: ApiError, resource: str, request_id: str, method: str) -> Reply:
        fields = exc.fields if isinstance(exc, S3Error) else {}
        headers = dict(exc.headers) if isinstance(exc, S3Error) else {}
        body = b"" if method == "HEAD" else wire.error(exc.code, exc.message, resource, request_id, fields)
        if body:
            headers["content-type"] = _XML
        return Reply(exc.status, headers, body)

    async def _send(self, reply: Reply, send: Send, request_id: str, method: str) -> None:
        headers = reply.headers
        headers.setdefault("x-amz-request-id", request_id)
        if reply.runs is None and "content-length" not in headers:
            headers["content-length"] = str(len(reply.body))
        if reply.body and "content-type" not in headers:
            headers["content-type"] = _XML
        raw = [(k.encode("latin-1"), _header_value(v)) for k, v in headers.items()]
        if reply.runs is None:
            await send({"type": "http.response.start", "status": reply.status, "headers": raw})
            await send({"type": "http.response.body", "body": reply.body})
            return
        runs = reply.runs
        try:
            await send({"type": "http.response.start", "status": reply.status, "headers": raw})
            await self._stream(runs, send)
        finally:
            close_runs(runs)

    @staticmethod
    async def _stream(runs: list[Run], send: Send) -> None:
        """The runs' bytes, in order, as the response body, from files opened before the answer
        started (so an object replaced or deleted meanwhile still arrives whole). A file shorter
        than its run ends the body short, which the client sees against the content-length."""
        left_total = sum(length for _, _, length in runs)
        for fd, offset, left in runs:
            while left > 0:
                chunk = os.pread(fd, min(SEND_BUFFER, left), offset)
                if not chunk:
                    break
                offset += len(chunk)
                left -= len(chunk)
                left_total -= len(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": left_total > 0})
            if left > 0:
                break
        if left_total > 0 or not any(length for _, _, length in runs):
            await send({"type": "http.response.body", "body": b""})


def _v2_resources(as_sent: tuple[str, ...], bucket: str, key: str) -> list[str]:
    """What a Version 2 signature may cover: the resource as sent, then for clients that sign what
    they meant rather than what they sent, the bucket and key encoded as botocore encodes them, or
    not encoded at all."""
    return list(dict.fromkeys((*as_sent, f"/{bucket}/{quote(key, safe='/~')}", f"/{bucket}/{key}",
                               unquote(as_sent[0]))))


def _header_value(value: str) -> bytes:
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        from urllib.parse import quote

        return quote(value, safe=" !#$&'()*+,-./:;<=>?@[]^_`{|}~").encode()
