"""Object requests: PUT (and copy), GET and HEAD (ranges, conditions, response overrides), DELETE,
and each object's ACL and tags."""

from __future__ import annotations

import asyncio
import email.utils
from collections.abc import Awaitable, Callable
from functools import lru_cache
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote

from euca.api.s3 import grants, wire
from euca.api.s3.body import declared_length, needs_sha256, read_small, to_staged
from euca.api.s3.call import Call, Reply
from euca.core.s3errors import (
    InternalError,
    InvalidArgument,
    InvalidRange,
    InvalidRequest,
    InvalidTag,
    MalformedXML,
    PreconditionFailed,
)
from euca.walrus import ObjectInfo
from euca.walrus.acl import READ, READ_ACP
from euca.walrus.blobs import Gone, is_manifest
from euca.walrus.model import NULL_VERSION

T = TypeVar("T")
READ_TRIES = 3  # lookups of an object being read or copied, when it is replaced or deleted before its files open

# The representation headers an object keeps and returns, as S3 does.
KEPT = ("content-type", "content-encoding", "content-disposition", "cache-control", "expires", "content-language")
DEFAULT_TYPE = "binary/octet-stream"
OVERRIDES = {"response-content-type": "content-type", "response-content-language": "content-language",
             "response-expires": "expires", "response-cache-control": "cache-control",
             "response-content-disposition": "content-disposition",
             "response-content-encoding": "content-encoding"}


def http_date(when: float) -> str:
    return _http_second(int(when // 1))


@lru_cache(maxsize=4096)  # Last-Modified of the objects being read: the same few seconds, over and over
def _http_second(second: int) -> str:
    return email.utils.formatdate(second, usegmt=True)


def _parse_date(text: str) -> float | None:
    try:
        return email.utils.parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError):
        return None


def kept_headers(headers: dict[str, str]) -> dict[str, str]:
    kept = {name: headers[name] for name in KEPT if name in headers}
    if "content-encoding" in kept:
        # aws-chunked is how the body travelled, not what it is
        codings = [c.strip() for c in kept["content-encoding"].split(",") if c.strip() != "aws-chunked"]
        kept["content-encoding"] = ",".join(codings)
        if not codings:
            del kept["content-encoding"]
    kept.setdefault("content-type", DEFAULT_TYPE)
    return kept


def user_metadata(headers: dict[str, str]) -> dict[str, str]:
    return {k[len("x-amz-meta-"):]: v for k, v in headers.items() if k.startswith("x-amz-meta-")}


def tags_header(value: str | None) -> dict[str, str] | None:
    if value is None:
        return None
    try:
        pairs = parse_qsl(value, keep_blank_values=True, strict_parsing=bool(value))
    except ValueError:
        raise InvalidArgument("The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query "
                              "parameters without tag name duplicates.", ArgumentName="x-amz-tagging") from None
    return check_tags(pairs)


def check_tags(pairs: list[tuple[str, str]], limit: int = 10) -> dict[str, str]:
    tags: dict[str, str] = {}
    for key, value in pairs:
        if key in tags or not 1 <= len(key) <= 128 or len(value) > 256:
            raise InvalidTag()
        tags[key] = value
    if len(tags) > limit:
        raise InvalidTag(f"Tags cannot be more than {limit}")
    return tags


def object_headers(info: ObjectInfo, versioned: bool = True) -> dict[str, str]:
    out = {"etag": info.etag, "last-modified": http_date(info.modified), "accept-ranges": "bytes"}
    out.update(info.headers)
    for name, value in info.metadata.items():
        out[f"x-amz-meta-{name}"] = value
    if info.version_id != NULL_VERSION or versioned:
        out["x-amz-version-id"] = info.version_id
    if info.tags:
        out["x-amz-tagging-count"] = str(len(info.tags))
    return out


def _bucket_versioned(call: Call) -> bool:
    found = call.walrus.catalog.bucket(call.bucket)
    return bool(found and found.versioning)


# --- PUT ---------------------------------------------------------------------------------------------

async def put_object(call: Call) -> Reply:
    if "x-amz-copy-source" in call.headers:
        return await copy_object(call)
    length = declared_length(call.headers, call.signature)
    bucket = call.walrus.begin_put(call.who, call.bucket, call.key)
    acl = grants.from_headers(call.headers, call.walrus.directory) or "private"
    tags = tags_header(call.headers.get("x-amz-tagging"))
    md5 = call.headers.get("content-md5")
    staged = call.walrus.stage(needs_sha256(call.signature), inline=True)
    try:
        await to_staged(call.receive, call.signature, staged, length)
    except BaseException:
        staged.discard()
        raise
    info = call.walrus.commit_put(call.who, bucket, call.key, staged, kept_headers(call.headers),
                                  user_metadata(call.headers), acl, tags, content_md5=md5)
    headers = {"etag": info.etag}
    if bucket.versioning:
        headers["x-amz-version-id"] = info.version_id
    return Reply(headers=headers)


def copy_source(call: Call) -> ObjectInfo:
    """The version ``x-amz-copy-source`` names, if the caller may read it and its conditions hold."""
    source = call.headers["x-amz-copy-source"]
    path, _, query = source.partition("?")
    path = unquote(path).lstrip("/")
    bucket, _, key = path.partition("/")
    if not bucket or not key:
        raise InvalidArgument("Copy Source must mention the source bucket and key: sourcebucket/sourcekey",
                              ArgumentName="x-amz-copy-source", ArgumentValue=source)
    version = dict(parse_qsl(query)).get("versionId") if query else None
    info = call.walrus.head_object(call.who, bucket, key, version)
    _check_conditions(call.headers, info, "x-amz-copy-source-if-", copy=True)
    return info


async def again_if_changed(attempt: Callable[[], Awaitable[T]]) -> T:
    """``attempt`` (a lookup, then a read of what it found), again when the version found was
    replaced or deleted before its files could be opened (``Gone``): the next lookup finds what
    replaced it, or answers NoSuchKey. Nothing is written before the files are open."""
    for _ in range(READ_TRIES):
        try:
            return await attempt()
        except Gone:
            continue
    raise InternalError("The object changed while it was read; try again")


async def copy_object(call: Call) -> Reply:
    return await again_if_changed(lambda: _copy_object(call))


async def _copy_object(call: Call) -> Reply:
    source = copy_source(call)
    directive = call.headers.get("x-amz-metadata-directive", "COPY").upper()
    if directive not in ("COPY", "REPLACE"):
        raise InvalidArgument("Unknown metadata directive.", ArgumentName="x-amz-metadata-directive")
    headers = kept_headers(call.headers) if directive == "REPLACE" else None
    metadata = user_metadata(call.headers) if directive == "REPLACE" else None
    tag_directive = call.headers.get("x-amz-tagging-directive", "COPY").upper()
    tags = tags_header(call.headers.get("x-amz-tagging")) if tag_directive == "REPLACE" else None
    acl = grants.from_headers(call.headers, call.walrus.directory) or "private"
    info = await asyncio.to_thread(call.walrus.copy_object, call.who, source, call.bucket, call.key, headers,
                                   metadata, acl, tags)
    out = {"x-amz-copy-source-version-id": source.version_id} if source.version_id != NULL_VERSION else {}
    if info.version_id != NULL_VERSION:
        out["x-amz-version-id"] = info.version_id
    return Reply(headers=out, body=wire.render("CopyObject", {"CopyObjectResult": {
        "ETag": info.etag, "LastModified": info.modified}}))


# --- GET and HEAD --------------------------------------------------------------------------------------

def _etag_matches(header: str, etag: str) -> bool:
    wanted = [t.strip() for t in header.split(",")]
    return "*" in wanted or etag in wanted or etag.strip('"') in [t.strip('"') for t in wanted]


def _check_conditions(headers: dict[str, str], info: ObjectInfo, prefix: str = "if-", copy: bool = False) -> None:
    """RFC 7232's order, as S3 applies it: If-Match, then If-Unmodified-Since (ignored when
    If-Match held), If-None-Match, then If-Modified-Since (ignored when If-None-Match was given)."""
    modified = int(info.modified)
    match = headers.get(prefix + "match")
    if match is not None and not _etag_matches(match, info.etag):
        raise PreconditionFailed(Condition=f"{prefix}Match".title())
    unmodified = headers.get(prefix + "unmodified-since")
    if match is None and unmodified is not None:
        when = _parse_date(unmodified)
        if when is not None and modified > when:
            raise PreconditionFailed(Condition=f"{prefix}Unmodified-Since".title())
    none_match = headers.get(prefix + "none-match")
    if none_match is not None and _etag_matches(none_match, info.etag):
        if copy:
            raise PreconditionFailed(Condition=f"{prefix}None-Match".title())
        raise NotModified(info)
    since = headers.get(prefix + "modified-since")
    if none_match is None and since is not None:
        when = _parse_date(since)
        if when is not None and modified <= when:
            if copy:
                raise PreconditionFailed(Condition=f"{prefix}Modified-Since".title())
            raise NotModified(info)


class NotModified(Exception):
    def __init__(self, info: ObjectInfo) -> None:
        super().__init__("304")
        self.info = info


def _range(header: str, size: int) -> tuple[int, int] | None:
    """(first, last) of a single ``bytes=`` range, None to send everything; InvalidRange when
    nothing of it is in the object."""
    unit, _, spec = header.partition("=")
    if unit.strip() != "bytes" or "," in spec:
        return None
    first_text, dash, last_text = spec.strip().partition("-")
    if not dash:
        return None
    try:
        if first_text == "":
            count = int(last_text)
            if count <= 0:
                raise InvalidRange(ActualObjectSize=str(size), RangeRequested=header)
            return max(0, size - count), size - 1
        first = int(first_text)
        last = int(last_text) if last_text else size - 1
    except ValueError:
        return None
    if last < first:
        return None
    if first >= size:
        raise InvalidRange(ActualObjectSize=str(size), RangeRequested=header,
                           headers={"content-range": f"bytes */{size}"})
    return first, min(last, size - 1)


async def get_object(call: Call) -> Reply:
    return await again_if_changed(lambda: _get_object(call))


async def _get_object(call: Call) -> Reply:
    head = call.method == "HEAD"
    version = call.query.get("versionId")
    info, data = call.walrus.get_object(call.who, call.bucket, call.key, version)
    headers = object_headers(info, _bucket_versioned(call))
    try:
        _check_conditions(call.headers, info)
    except NotModified:
        kept = {k: v for k, v in headers.items() if k in ("etag", "last-modified", "x-amz-version-id",
                                                            "cache-control", "expires")}
        return Reply(304, kept)
    for param, header in OVERRIDES.items():
        if param in call.query:
            if call.who is None:
                raise InvalidRequest("Request specific response headers cannot be used for anonymous GET "
                                     "requests.")
            headers[header] = call.query[param]
    status, first, length = 200, 0, info.size
    wanted = call.headers.get("range")
    if wanted:
        found = _range(wanted, info.size)
        if found is not None:
            status, first, length = 206, found[0], found[1] - found[0] + 1
            headers["content-range"] = f"bytes {found[0]}-{found[1]}/{info.size}"
    headers["content-length"] = str(length)
    if head:
        return Reply(status, headers)
    if data is not None:
        return Reply(status, headers, data[first:first + length])
    if is_manifest(info.blob):  # a file per part: opened off the event loop
        runs = await asyncio.to_thread(call.walrus.open_runs, info, first, length)
    else:
        runs = call.walrus.open_runs(info, first, length)
    return Reply(status, headers, runs=runs)


# --- DELETE --------------------------------------------------------------------------------------------

async def delete_object(call: Call) -> Reply:
    gone = call.walrus.delete_object(call.who, call.bucket, call.key, call.query.get("versionId"))
    headers: dict[str, str] = {}
    if gone is not None:
        if gone.delete_marker:
            headers["x-amz-delete-marker"] = "true"
        if gone.version_id != NULL_VERSION or "versionId" in call.query:
            headers["x-amz-version-id"] = gone.version_id
    return Reply(204, headers)


async def delete_objects(call: Call) -> Reply:
    body = await read_small(call.receive, call.signature)
    doc = wire.parse("DeleteObjects", body)
    objects = doc.get("Objects") or []
    if not objects or len(objects) > 1000:
        raise MalformedXML()
    call.walrus.bucket(call.who, call.bucket, "WRITE")
    deleted: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for item in objects:
        key, version = item.get("Key", ""), item.get("VersionId")
        try:
            gone = call.walrus.delete_object(call.who, call.bucket, key, version)
        except Exception as exc:
            code = getattr(exc, "code", "InternalError")
            errors.append({"Key": key, "VersionId": version, "Code": code,
                           "Message": getattr(exc, "message", "We encountered an internal error.")})
            continue
        if doc.get("Quiet"):
            continue
        entry: dict[str, Any] = {"Key": key}
        if version is not None:
            entry["VersionId"] = version
        if gone is not None and gone.delete_marker:
            entry["DeleteMarker"] = True
            entry["DeleteMarkerVersionId"] = gone.version_id
        deleted.append(entry)
    return Reply(body=wire.render("DeleteObjects", {"Deleted": deleted, "Errors": errors}))


# --- ACL and tags --------------------------------------------------------------------------------------

async def get_object_acl(call: Call) -> Reply:
    info = call.walrus.head_object(call.who, call.bucket, call.key, call.query.get("versionId"), READ_ACP)
    assert info.acl is not None
    return Reply(body=wire.render("GetObjectAcl", grants.to_document(info.acl, call.walrus.directory)))


async def put_object_acl(call: Call) -> Reply:
    body = await read_small(call.receive, call.signature)
    acl = grants.from_headers(call.headers, call.walrus.directory)
    if body.strip():
        if acl is not None:
            raise InvalidRequest("Specifying both an ACL document and ACL headers is not allowed")
        acl = grants.from_document(wire.parse("PutObjectAcl", body), call.walrus.directory)
    if acl is None:
        raise MalformedXML()
    call.walrus.set_object_acl(call.who, call.bucket, call.key, call.query.get("versionId"), acl)
    return Reply()


async def get_object_tagging(call: Call) -> Reply:
    info = call.walrus.head_object(call.who, call.bucket, call.key, call.query.get("versionId"), READ)
    tags = [{"Key": k, "Value": v} for k, v in (info.tags or {}).items()]
    return Reply(200, {"x-amz-version-id": info.version_id},
                 wire.render("GetObjectTagging", {"TagSet": tags}))


async def put_object_tagging(call: Call) -> Reply:
    body = await read_small(call.receive, call.signature)
    doc = wire.parse("PutObjectTagging", body)
    if "TagSet" not in doc:
        raise MalformedXML()
    tags = check_tags([(t.get("Key", ""), t.get("Value", "")) for t in doc["TagSet"]])
    info = call.walrus.set_object_tags(call.who, call.bucket, call.key, call.query.get("versionId"), tags)
    return Reply(headers={"x-amz-version-id": info.version_id})


async def delete_object_tagging(call: Call) -> Reply:
    info = call.walrus.set_object_tags(call.who, call.bucket, call.key, call.query.get("versionId"), None)
    return Reply(204, {"x-amz-version-id": info.version_id})

