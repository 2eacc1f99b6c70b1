"""POST Object: a browser's upload through an HTML form, allowed by a policy its page was given.

The form is ``multipart/form-data``: ``key`` (``${filename}`` stands for the file's name),
``policy`` (base64 JSON: an ``expiration`` and ``conditions`` every field must meet), its
signature (Version 4: ``x-amz-algorithm``, ``x-amz-credential``, ``x-amz-date``,
``x-amz-signature``; Version 2: ``AWSAccessKeyId``, ``signature``), ``acl``, ``Content-Type`` and
the other representation headers, ``x-amz-meta-*``, ``success_action_status`` or
``success_action_redirect``, then ``file`` last (fields after it are ignored, as S3 does). The
fields are read into memory (bounded); the file streams to a staged blob and is committed only
once the form's closing boundary has arrived, so a cut-off upload leaves nothing behind.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

import orjson

from euca.api.s3 import wire
from euca.api.s3.body import MAX_OBJECT, body_chunks
from euca.api.s3.call import Call, Reply
from euca.api.s3.form import FormReader, PartHead, boundary_of
from euca.api.s3.objects import KEPT, kept_headers
from euca.auth.s3 import verify_post
from euca.core.s3errors import (
    AccessDenied,
    EntityTooLarge,
    EntityTooSmall,
    InvalidArgument,
    InvalidPolicyDocument,
    PreconditionFailed,
    S3Error,
)
from euca.walrus.model import NULL_VERSION

FIELDS_LIMIT = 64 << 10  # all the fields before the file, together
# fields a policy need not mention (S3's list)
_EXEMPT = frozenset(("policy", "x-amz-signature", "signature", "awsaccesskeyid", "file"))


@dataclass(frozen=True)
class Policy:
    """A decoded POST policy: when it stops being good, and its conditions as (operator, field,
    operand): ``eq`` and ``starts-with`` on a lower-case field name, ``range`` on the file's length."""

    expiration: float
    conditions: tuple[tuple[str, str, Any], ...]


def _bad(what: str) -> S3Error:
    return InvalidPolicyDocument(f"Invalid Policy: {what}")


def parse_policy(encoded: str) -> Policy:
    try:
        doc = orjson.loads(base64.b64decode(encoded, validate=False))
    except (binascii.Error, ValueError):
        raise _bad("Invalid JSON.") from None
    if not isinstance(doc, dict):
        raise _bad("Invalid JSON.")
    if "expiration" not in doc:
        raise _bad("Policy missing expiration.")
    try:
        expiration = datetime.fromisoformat(str(doc["expiration"]).replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise _bad("Invalid 'expiration' value: " + repr(doc["expiration"])) from None
    raw = doc.get("conditions")
    if not isinstance(raw, list):
        raise _bad("Policy missing conditions.")
    conditions: list[tuple[str, str, Any]] = []
    for item in raw:
        if isinstance(item, dict) and len(item) == 1:
            (name, value), = item.items()
            conditions.append(("eq", str(name).lower().lstrip("$"), str(value)))
        elif isinstance(item, list) and len(item) == 3 and str(item[0]).lower() == "content-length-range":
            try:
                low, high = int(item[1]), int(item[2])
            except (TypeError, ValueError):
                raise _bad("Invalid content-length-range condition.") from None
            conditions.append(("range", "", (low, high)))
        elif isinstance(item, list) and len(item) == 3 and str(item[0]).lower() in ("eq", "starts-with") \
                and isinstance(item[1], str) and item[1].startswith("$"):
            conditions.append((str(item[0]).lower(), item[1][1:].lower(), str(item[2])))
        else:
            raise _bad("Invalid Condition: " + orjson.dumps(item).decode())
    return Policy(expiration, tuple(conditions))


def _failed(op: str, name: str, operand: str) -> S3Error:
    return AccessDenied("Invalid according to Policy: Policy Condition failed: "
                        + orjson.dumps([op, "$" + name, operand]).decode())


def check_policy(policy: Policy, fields: dict[str, str], bucket: str, now: float) -> tuple[int, int]:
    """Refuse a form the policy does not allow; the file's allowed (least, greatest) length."""
    if now > policy.expiration:
        raise AccessDenied("Invalid according to Policy: Policy expired.")
    values = dict(fields, bucket=bucket)
    covered = {"bucket"}
    least, greatest = 0, MAX_OBJECT
    for op, name, operand in policy.conditions:
        if op == "range":
            least, greatest = max(least, operand[0]), min(greatest, operand[1])
            continue
        covered.add(name)
        value = values.get(name, "")
        if op == "eq" and value != operand:
            raise _failed(op, name, operand)
        if op == "starts-with":
            # Content-Type may list several types, each of which must start with the operand
            pieces = [v.strip() for v in value.split(",")] if name == "content-type" else [value]
            if not all(p.startswith(operand) for p in pieces):
                raise _failed(op, name, operand)
    extra = [name for name in fields
             if name not in covered and name not in _EXEMPT and not name.startswith("x-ignore-")]
    if extra:
        raise AccessDenied("Invalid according to Policy: Extra input fields: " + ", ".join(extra))
    return least, greatest


def _filename(head: PartHead) -> str:
    name = head.filename or ""
    return name.replace("\\", "/").rsplit("/", 1)[-1]


async def post_object(call: Call) -> Reply:
    boundary = boundary_of(call.headers.get("content-type", ""))
    if boundary is None:
        raise PreconditionFailed("At least one of the pre-conditions you specified did not hold",
                                 Condition="Bucket POST must be of the enclosure-type multipart/form-data")
    reader = FormReader(body_chunks(call.receive, call.signature), boundary)
    fields: dict[str, str] = {}
    room = FIELDS_LIMIT
    file: PartHead | None = None
    while (head := await reader.next_part()) is not None:
        name = head.name.lower()
        if name == "file":
            file = head
            break
        value = await reader.part_value(room)
        room -= len(value)
        fields.setdefault(name, value.decode("utf-8", "replace"))
    if file is None:
        raise InvalidArgument("POST requires exactly one file upload per request.", ArgumentName="file",
                              ArgumentValue="0")
    access_key = verify_post(fields, call.secret_of)
    who = call.requester_of(access_key) if access_key is not None else None
    if not fields.get("key"):
        raise InvalidArgument("Bucket POST must contain a field named 'key'.  If it is specified, please check "
                              "the order of the fields.", ArgumentName="key")
    least, greatest = 0, MAX_OBJECT
    if "policy" in fields:
        least, greatest = check_policy(parse_policy(fields["policy"]), fields, call.bucket, call.walrus.clock())
    key = fields["key"].replace("${filename}", _filename(file))
    bucket = call.walrus.begin_put(who, call.bucket, key)
    staged = call.walrus.stage(inline=True)
    try:
        async for piece in reader.part_bytes():
            staged.write(piece)
            if staged.size > greatest:
                raise EntityTooLarge(ProposedSize=str(staged.size), MaxSizeAllowed=str(greatest))
        if staged.size < least:
            raise EntityTooSmall(ProposedSize=str(staged.size), MinSizeAllowed=str(least))
        while await reader.next_part() is not None:  # fields after the file: read, ignored
            async for _ in reader.part_bytes():
                pass
    except BaseException:
        staged.discard()
        raise
    represented = {name: fields[name] for name in KEPT if name in fields}
    if "content-type" not in represented and file.content_type:
        represented["content-type"] = file.content_type
    metadata = {name[len("x-amz-meta-"):]: value for name, value in fields.items() if name.startswith("x-amz-meta-")}
    info = call.walrus.commit_put(who, bucket, key, staged, kept_headers(represented), metadata,
                                  fields.get("acl", "private"))
    return _answer(call, fields, info.key, info.etag, info.version_id)


def _answer(call: Call, fields: dict[str, str], key: str, etag: str, version_id: str) -> Reply:
    headers = {"etag": etag}
    if version_id != NULL_VERSION:
        headers["x-amz-version-id"] = version_id
    base = call.walrus.endpoint.rstrip("/")
    location = f"{base}/{call.bucket}/{quote(key, safe='/~')}"
    headers["location"] = location
    redirect = fields.get("success_action_redirect") or fields.get("redirect") or ""
    if redirect.startswith(("http://", "https://")):
        joiner = "&" if "?" in redirect else "?"
        headers["location"] = redirect + joiner + urlencode({"bucket": call.bucket, "key": key, "etag": etag})
        return Reply(303, headers)
    status = fields.get("success_action_status", "")
    if status == "200":
        return Reply(200, headers)
    if status == "201":
        body = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<PostResponse>"
                f"<Location>{wire.escape(location)}</Location><Bucket>{wire.escape(call.bucket)}</Bucket>"
                f"<Key>{wire.escape(key)}</Key><ETag>{wire.escape(etag)}</ETag></PostResponse>").encode()
        return Reply(201, headers, body)
    return Reply(204, headers)
