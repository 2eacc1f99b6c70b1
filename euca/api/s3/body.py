"""Request bodies, read from the ASGI receive loop as they arrive: to a staged blob (objects and
parts) or, small and bounded, into memory (XML documents).

An ``aws-chunked`` body (``STREAMING-AWS4-HMAC-SHA256-PAYLOAD``) is decoded on the way: each
chunk's signature is checked against the chain the request's signature started, and a body whose
chunk fails, whose final chunk is missing, or whose decoded length is not the declared one is
refused before anything is committed.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator

from starlette.types import Receive

from euca.auth.s3 import STREAMING, STREAMING_UNSIGNED_TRAILER, ChunkChain, S3Signature
from euca.core.s3errors import (
    EntityTooLarge,
    IncompleteBody,
    InvalidArgument,
    InvalidRequest,
    MalformedXML,
    MissingContentLength,
    SignatureDoesNotMatch,
    XAmzContentSHA256Mismatch,
)
from euca.walrus.blobs import Staged

MAX_OBJECT = 5 << 30  # a single PUT
MAX_DOCUMENT = 2 << 20  # an XML request document


class ClientGone(Exception):
    """The client went away before the body was complete: nobody to answer."""


async def _raw(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientGone()
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


async def _dechunk(source: AsyncIterator[bytes], chain: ChunkChain | None) -> AsyncIterator[bytes]:
    """aws-chunked: ``<hex size>[;chunk-signature=<sig>]CRLF<data>CRLF`` ..., ending with a zero-size chunk."""
    buffer = bytearray()
    previous = chain.seed if chain else ""
    it = source.__aiter__()

    async def more() -> bool:
        try:
            buffer.extend(await it.__anext__())
            return True
        except StopAsyncIteration:
            return False

    while True:
        while (end := buffer.find(b"\r\n")) < 0:
            if len(buffer) > 4096 or not await more():
                raise IncompleteBody()
        header = bytes(buffer[:end]).decode("latin-1")
        del buffer[:end + 2]
        size_text, _, extension = header.partition(";")
        try:
            size = int(size_text, 16)
        except ValueError:
            raise InvalidRequest("Malformed aws-chunked encoding") from None
        signature = extension.partition("chunk-signature=")[2].strip() if extension else ""
        digest = hashlib.sha256()
        left = size
        while left > 0:
            if not buffer and not await more():
                raise IncompleteBody()
            piece = bytes(buffer[:left])
            del buffer[:len(piece)]
            left -= len(piece)
            if chain is not None:
                digest.update(piece)
            yield piece
        if chain is not None:
            expected = chain.signature(previous, digest.hexdigest())
            if not hmac.compare_digest(expected, signature):
                raise SignatureDoesNotMatch("The chunk signature does not match the one computed.")
            previous = expected
        if size == 0:
            return  # trailers (checksums) and the final CRLF are not part of the object
        while len(buffer) < 2:
            if not await more():
                raise IncompleteBody()
        if bytes(buffer[:2]) != b"\r\n":
            raise InvalidRequest("Malformed aws-chunked encoding")
        del buffer[:2]


def declared_length(headers: dict[str, str], signature: S3Signature) -> int:
    """The object's length as the request declares it (Content-Length, or the decoded length of
    an aws-chunked body); refuses a missing one and one above 5 GiB."""
    name = "x-amz-decoded-content-length" if _is_chunked(signature) else "content-length"
    value = headers.get(name)
    if value is None:
        if "chunked" in headers.get("transfer-encoding", "") and not _is_chunked(signature):
            return -1  # plain HTTP chunked: the length is what arrives
        raise MissingContentLength()
    if not value.isdigit():
        raise InvalidArgument(f"{name} must be a non-negative integer", ArgumentName=name)
    length = int(value)
    if length > MAX_OBJECT:
        raise EntityTooLarge(ProposedSize=value, MaxSizeAllowed=str(MAX_OBJECT))
    return length


def _is_chunked(signature: S3Signature) -> bool:
    return signature.payload in (STREAMING, STREAMING_UNSIGNED_TRAILER)


def body_chunks(receive: Receive, signature: S3Signature) -> AsyncIterator[bytes]:
    source = _raw(receive)
    return _dechunk(source, signature.chain) if _is_chunked(signature) else source


def _sha256_checked(signature: S3Signature) -> bool:
    return len(signature.payload) == 64


async def to_staged(receive: Receive, signature: S3Signature, staged: Staged, length: int) -> None:
    """Stream the body into ``staged``; checks its length and its declared SHA-256."""
    async for chunk in body_chunks(receive, signature):
        staged.write(chunk)
        if staged.size > MAX_OBJECT or (length >= 0 and staged.size > length):
            raise IncompleteBody("The body is longer than the declared length")
    if length >= 0 and staged.size != length:
        raise IncompleteBody()
    if staged.sha256 is not None and staged.sha256.hexdigest() != signature.payload:
        raise XAmzContentSHA256Mismatch()


async def read_small(receive: Receive, signature: S3Signature, limit: int = MAX_DOCUMENT) -> bytes:
    """A whole (small) body: an XML document or a form."""
    parts: list[bytes] = []
    size = 0
    async for chunk in body_chunks(receive, signature):
        size += len(chunk)
        if size > limit:
            raise MalformedXML("The request document is too large")
        parts.append(chunk)
    body = b"".join(parts)
    if _sha256_checked(signature) and hashlib.sha256(body).hexdigest() != signature.payload:
        raise XAmzContentSHA256Mismatch()
    return body


def needs_sha256(signature: S3Signature) -> bool:
    return _sha256_checked(signature)
