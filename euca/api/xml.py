"""EC2 (and IAM) responses serialized by walking the operation's output shape.

Member elements take the shape's ``locationName`` (``instancesSet``, ``reservationId``), lists wrap
each member in its own ``locationName`` (``item`` throughout EC2), timestamps are ISO 8601 in UTC,
booleans are lower case. A serializer is built once per shape and cached, so a request only pays
for appending strings.

Every document is well-formed XML 1.0 whatever the values hold: ``&``, ``<`` and ``>`` are
escaped, a carriage return is written as ``&#13;`` (so it survives a parser's line-end
normalisation), and a character XML 1.0 cannot carry at all (C0 controls but tab, newline and
carriage return; U+FFFE, U+FFFF; lone surrogates) becomes U+FFFD in a response value. Error
messages, which quote request input, show such a character as ``\\xNN`` / ``\\uNNNN`` instead,
so the client can see what it sent.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from typing import Any

from botocore.model import OperationModel, Shape, StructureShape

from euca.core.frozen import Frozen
from euca.core.text import REPLACEMENT, quoted

Emit = Callable[[Any, list[str]], None]


def _timestamp(value: Any) -> str:
    if isinstance(value, (int, float)):
        value = datetime.fromtimestamp(value, UTC)
    assert isinstance(value, datetime)
    v = value.astimezone(UTC)
    return (f"{v.year:04d}-{v.month:02d}-{v.day:02d}T{v.hour:02d}:{v.minute:02d}:{v.second:02d}."
            f"{v.microsecond // 1000:03d}Z")


def _scalar_emitter(kind: str) -> Callable[[Any], str]:
    if kind == "boolean":
        return lambda v: "true" if v else "false"
    if kind == "timestamp":
        return _timestamp
    if kind == "blob":
        return lambda v: base64.b64encode(v).decode() if isinstance(v, bytes) else _text(v)
    return _text


# What text content cannot hold as is: markup, CR, and the characters outside XML 1.0's Char production.
_SPECIAL = re.compile("[&<>\r\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"}


def _entity(match: re.Match[str]) -> str:
    return _ENTITIES.get(match.group(), REPLACEMENT)


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    if _SPECIAL.search(text) is None:
        return text
    return _SPECIAL.sub(_entity, text)


@cache
def _emitter(shape: Shape) -> Emit:
    kind = shape.type_name
    if kind == "structure":
        assert isinstance(shape, StructureShape)
        members: dict[str, tuple[str, str, Emit]] = {}
        for name, member in shape.members.items():
            tag = str(member.serialization.get("name", name))
            members[name] = (f"<{tag}>", f"</{tag}>", _emitter(member))

        def walk(value: Any, out: list[str]) -> None:
            # Walk the value's keys, not the shape's (EC2's Instance has ~60 members, a record ~30);
            # clients match elements by name, not position. Keys the shape lacks are dropped.
            for name, item in value.items():
                if item is None:
                    continue
                found = members.get(name)
                if found is None:
                    continue
                out.append(found[0])
                found[2](item, out)
                out.append(found[1])

        def structure(value: Any, out: list[str]) -> None:
            if type(value) is not Frozen:
                walk(value, out)
            elif value.shape is shape:
                out.append(value.xml)
            else:
                part: list[str] = []
                walk(value, part)
                value.shape, value.xml = shape, "".join(part)
                out.append(value.xml)
        return structure
    if kind == "list":
        item_shape: Shape = shape.member
        tag = str(item_shape.serialization.get("name", "member"))
        open_tag, close_tag = f"<{tag}>", f"</{tag}>"
        emit_member = _emitter(item_shape)

        def listing(value: Any, out: list[str]) -> None:
            for item in value:
                out.append(open_tag)
                emit_member(item, out)
                out.append(close_tag)
        return listing
    if kind == "map":
        key_emit, value_emit = _emitter(shape.key), _emitter(shape.value)

        def mapping(value: Any, out: list[str]) -> None:
            for k, v in value.items():
                out.append("<entry><key>")
                key_emit(k, out)
                out.append("</key><value>")
                value_emit(v, out)
                out.append("</value></entry>")
        return mapping
    convert = _scalar_emitter(kind)
    if convert is _text:
        search = _SPECIAL.search

        def text(value: Any, out: list[str]) -> None:
            if type(value) is str and search(value) is None:
                out.append(value)
            else:
                out.append(_text(value))
        return text

    def scalar(value: Any, out: list[str]) -> None:
        out.append(convert(value))
    return scalar


@cache
def _document(operation: OperationModel) -> tuple[str, Emit | None]:
    shape = operation.output_shape
    return f"{operation.name}Response", _emitter(shape) if shape is not None else None


def response(operation: OperationModel, result: dict[str, Any], request_id: str, version: str) -> bytes:
    """The whole ``<XResponse xmlns=...>`` document for one answered request."""
    root, emit = _document(operation)
    out = [f'<?xml version="1.0" encoding="UTF-8"?>\n<{root} xmlns="http://ec2.amazonaws.com/doc/{version}/">',
           f"<requestId>{request_id}</requestId>"]
    if emit is not None:
        emit(result, out)
    elif "Return" not in result:
        out.append("<return>true</return>")
    out.append(f"</{root}>")
    return "".join(out).encode()


def query_response(operation: OperationModel, result: dict[str, Any], request_id: str, namespace: str) -> bytes:
    """The plain query protocol's document (IAM's): ``<XResponse xmlns=...><XResult>...</XResult>
    <ResponseMetadata><RequestId/></ResponseMetadata></XResponse>``."""
    root, emit = _document(operation)
    out = [f'<?xml version="1.0" encoding="UTF-8"?>\n<{root} xmlns="{namespace}">']
    if emit is not None:
        assert operation.output_shape is not None
        wrapper = str(operation.output_shape.serialization.get("resultWrapper", f"{operation.name}Result"))
        out.append(f"<{wrapper}>")
        emit(result, out)
        out.append(f"</{wrapper}>")
    out.append(f"<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></{root}>")
    return "".join(out).encode()


def query_error(code: str, message: str, request_id: str, namespace: str, sender: bool = True) -> bytes:
    """The plain query protocol's error document (IAM's); ``sender``: the client's fault, not the server's."""
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<ErrorResponse xmlns="{namespace}"><Error>'
            f"<Type>{'Sender' if sender else 'Receiver'}</Type><Code>{_text(quoted(code))}</Code>"
            f"<Message>{_text(quoted(message, 4096))}</Message></Error>"
            f"<RequestId>{_text(request_id)}</RequestId></ErrorResponse>").encode()


def error(code: str, message: str, request_id: str) -> bytes:
    """EC2's error document; the message may quote anything a request held, and is made safe here."""
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>{_text(quoted(code))}</Code>'
            f"<Message>{_text(quoted(message, 4096))}</Message></Error></Errors>"
            f"<RequestID>{_text(request_id)}</RequestID></Response>").encode()
