"""S3's XML, both ways, from botocore's ``s3`` model (protocol ``rest-xml``).

Rendering walks an operation's output shape: a member's element is its ``locationName`` or its
name; a flattened list repeats its items' element in place (``<Contents>``, ``<CommonPrefixes>``);
any other list wraps them (``<Grants><Grant>``); ``xmlAttribute`` members (a grantee's
``xsi:type``) become attributes. Members the model locates in headers are the handler's to send.
Parsing walks an input payload shape the same way (CreateBucketConfiguration, Delete,
AccessControlPolicy, CORSConfiguration, LifecycleConfiguration, Tagging, CompleteMultipartUpload).
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Callable
from datetime import UTC
from functools import cache, lru_cache
from typing import Any
from xml.etree import ElementTree

import botocore.session
from botocore.model import OperationModel, ServiceModel, Shape, StructureShape

from euca.core.s3errors import MalformedXML
from euca.core.text import REPLACEMENT, quoted

NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
MAX_XML = 2 << 20

# The document element AWS answers each operation with (the model leaves it unnamed).
ROOTS = {
    "ListBuckets": "ListAllMyBucketsResult", "ListObjects": "ListBucketResult", "ListObjectsV2": "ListBucketResult",
    "ListObjectVersions": "ListVersionsResult", "GetBucketAcl": "AccessControlPolicy",
    "GetObjectAcl": "AccessControlPolicy", "CompleteMultipartUpload": "CompleteMultipartUploadResult",
    "CreateMultipartUpload": "InitiateMultipartUploadResult", "ListParts": "ListPartsResult",
    "ListMultipartUploads": "ListMultipartUploadsResult", "GetObjectTagging": "Tagging",
    "GetBucketTagging": "Tagging", "GetBucketCors": "CORSConfiguration",
    "GetBucketLifecycleConfiguration": "LifecycleConfiguration", "GetBucketVersioning": "VersioningConfiguration",
    "DeleteObjects": "DeleteResult", "CopyObject": "CopyObjectResult", "UploadPartCopy": "CopyPartResult",
}

_model: ServiceModel | None = None


def s3_model() -> ServiceModel:
    global _model
    if _model is None:
        _model = botocore.session.get_session().get_service_model("s3")
    return _model


@cache
def operation(name: str) -> OperationModel:
    return s3_model().operation_model(name)


# what XML text cannot hold as it is: markup, a CR (kept as a reference), characters XML 1.0 forbids
_SPECIAL = re.compile("[&<>\r\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _escape(value: str) -> str:
    if _SPECIAL.search(value) is None:
        return value  # nearly every key and value: nothing to do
    out = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")
    return _NOT_XML.sub(REPLACEMENT, out)


escape = _escape  # XML text, for documents written by hand (PostResponse, listings)


def timestamp(value: Any) -> str:
    if isinstance(value, (int, float)):
        whole = int(value)
        if whole > value:  # before 1970: the second below
            whole -= 1
        micro = round((value - whole) * 1e6)  # as datetime.fromtimestamp rounds it
        if micro >= 1_000_000:
            whole, micro = whole + 1, micro - 1_000_000
        return f"{_second(whole)}.{micro // 1000:03d}Z"
    v = value.astimezone(UTC)
    return (f"{v.year:04d}-{v.month:02d}-{v.day:02d}T{v.hour:02d}:{v.minute:02d}:{v.second:02d}."
            f"{v.microsecond // 1000:03d}Z")


@lru_cache(maxsize=4096)  # a listing's objects were mostly written in the same few seconds
def _second(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def _scalar(kind: str, value: Any) -> str:
    if kind == "boolean":
        return "true" if value else "false"
    if kind == "timestamp":
        return timestamp(value)
    if kind == "blob" and isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return _escape(value if isinstance(value, str) else str(value))


def element_name(member: Shape, name: str) -> str:
    """The element a structure member is written as (botocore's rule, so its parser finds it)."""
    if member.type_name == "list" and member.serialization.get("flattened"):
        inner = member.member.serialization.get("name")
        if inner is not None:
            return str(inner)
    return str(member.serialization.get("name", name))


Emit = Callable[[Any, list[str], str], None]


@cache
def _emitter(shape: Shape) -> Emit:
    kind = shape.type_name
    if kind == "structure":
        assert isinstance(shape, StructureShape)
        members = {name: (m, element_name(m, name), _emitter(m)) for name, m in shape.members.items()
                   if m.serialization.get("location") is None}
        prefix = shape.serialization.get("xmlNamespace", {})
        declare = f' xmlns:{prefix["prefix"]}="{prefix["uri"]}"' if isinstance(prefix, dict) and "prefix" in prefix \
            else ""

        def structure(value: Any, out: list[str], tag: str) -> None:
            attributes = declare
            for name, item in value.items():
                found = members.get(name)
                if found is not None and found[0].serialization.get("xmlAttribute") and item is not None:
                    attributes += f' {found[1]}="{_escape(str(item))}"'
            out.append(f"<{tag}{attributes}>")
            for name, item in value.items():
                found = members.get(name)
                if item is None or found is None or found[0].serialization.get("xmlAttribute"):
                    continue
                found[2](item, out, found[1])
            out.append(f"</{tag}>")
        return structure
    if kind == "list":
        item_shape: Shape = shape.member
        emit_item = _emitter(item_shape)
        if shape.serialization.get("flattened"):
            def flattened(value: Any, out: list[str], tag: str) -> None:
                for item in value:
                    emit_item(item, out, tag)
            return flattened
        item_tag = str(item_shape.serialization.get("name", "member"))

        def wrapped(value: Any, out: list[str], tag: str) -> None:
            out.append(f"<{tag}>")
            for item in value:
                emit_item(item, out, item_tag)
            out.append(f"</{tag}>")
        return wrapped

    def scalar(value: Any, out: list[str], tag: str) -> None:
        out.append(f"<{tag}>{_scalar(kind, value)}</{tag}>")
    return scalar


def render(name: str, result: dict[str, Any]) -> bytes:
    """The response document of operation ``name`` for ``result`` (keyed by the model's member names)."""
    op = operation(name)
    shape = op.output_shape
    assert shape is not None
    payload = shape.serialization.get("payload")
    if payload:
        shape = shape.members[payload]
        result = result.get(payload, {})
    root = ROOTS.get(name, name + "Result")
    out: list[str] = ['<?xml version="1.0" encoding="UTF-8"?>\n']
    _emitter(shape)(result, out, root)
    out[1] = out[1].replace(f"<{root}", f'<{root} xmlns="{NAMESPACE}"', 1)
    return "".join(out).encode()


def location(constraint: str) -> bytes:
    """GetBucketLocation's document: the constraint is the root element's text."""
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<LocationConstraint xmlns="{NAMESPACE}">'
            f"{_escape(constraint)}</LocationConstraint>").encode()


def error(code: str, message: str, resource: str, request_id: str, fields: dict[str, str] | None = None) -> bytes:
    extra = "".join(f"<{k}>{_escape(quoted(v, 1024))}</{k}>" for k, v in (fields or {}).items()
                    if k.replace("_", "").isalnum())
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{_escape(code)}</Code>'
            f"<Message>{_escape(quoted(message, 4096))}</Message>{extra}"
            f"<Resource>{_escape(quoted(resource, 2048))}</Resource>"
            f"<RequestId>{request_id}</RequestId></Error>").encode()


# --- parsing ---------------------------------------------------------------------------------------

def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _parse(shape: Shape, node: ElementTree.Element) -> Any:
    kind = shape.type_name
    if kind == "structure":
        assert isinstance(shape, StructureShape)
        out: dict[str, Any] = {}
        children: dict[str, list[ElementTree.Element]] = {}
        for child in node:
            children.setdefault(_local(child.tag), []).append(child)
        for name, member in shape.members.items():
            if member.serialization.get("location") is not None:
                continue
            tag = element_name(member, name)
            if member.serialization.get("xmlAttribute"):
                for attr, value in node.attrib.items():
                    if _local(attr) == tag.rpartition(":")[2]:
                        out[name] = value
                continue
            found = children.get(tag)
            if not found:
                continue
            if member.type_name == "list" and member.serialization.get("flattened"):
                out[name] = [_parse(member.member, c) for c in found]
            else:
                out[name] = _parse(member, found[0])
        return out
    if kind == "list":
        item_tag = str(shape.member.serialization.get("name", "member"))
        return [_parse(shape.member, c) for c in node if _local(c.tag) == item_tag]
    text = (node.text or "").strip() if kind != "string" else (node.text or "")
    if kind in ("integer", "long"):
        try:
            return int(text)
        except ValueError:
            raise MalformedXML() from None
    if kind == "boolean":
        if text not in ("true", "false"):
            raise MalformedXML()
        return text == "true"
    return text


def parse(name: str, body: bytes) -> dict[str, Any]:
    """The payload of operation ``name``'s request, as a dict keyed by the model's member names."""
    op = operation(name)
    shape = op.input_shape
    assert shape is not None
    payload = shape.serialization.get("payload")
    if not payload:
        return {}
    member = shape.members[payload]
    if not body.strip():
        return {}
    if len(body) > MAX_XML or b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise MalformedXML()
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        raise MalformedXML() from None
    expected = element_name(member, payload)
    if _local(root.tag) != expected:
        raise MalformedXML()
    result = _parse(member, root)
    assert isinstance(result, dict)
    return result
