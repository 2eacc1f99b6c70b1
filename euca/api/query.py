"""EC2 Query requests (form-encoded POST or GET) parsed by walking the operation's input shape.

The flat parameters (``InstanceId.1``, ``Filter.2.Value.1``, ``Placement.AvailabilityZone``) are
first folded into a tree on their dots, then each member of the input shape looks up its own
serialized name (``queryName``, else the capitalised ``locationName``, else the member name, as
botocore's EC2 serializer writes them) and converts the text to the member's type. The result is
the same dict a boto3 caller passed in, keyed by member names.

A request gets exactly what the shape allows, checked here before any service code runs, and
answered as EC2 answers it otherwise:

- a name with an empty segment (``GroupId.``, ``Filter..Name``) or a list position that is not
  ``1``, ``2``, ... in ASCII digits (``0``, ``01``, ``+1``, ``²``) is ``InvalidParameter``;
- a name the shape does not have (``Foo``, ``Placement.Foo``, ``KeyName.1``) is ``UnknownParameter``;
- a value that is not of the member's type, outside the model's ``min``/``max``, not one of its
  ``enum`` values, not matching its ``pattern`` or holding characters XML cannot carry is
  ``InvalidParameterValue``;
- a required member that is missing is ``MissingParameter``.

Every message names the parameter as the request wrote it, quoted with ``text.quoted``.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from functools import cache
from typing import Any

from botocore.model import ListShape, MapShape, Shape, StructureShape

from euca.core.errors import InvalidParameter, InvalidParameterValue, MissingParameter, UnknownParameter
from euca.core.text import quoted, xml_safe

MAX_LIST = 1000  # members of one list parameter
MAX_POSITION = 999_999
MAX_PARAMS = 4000
MAX_VALUE = 65536  # characters of one value (base64 user data of 16 KiB fits many times over)
MAX_NAME = 512  # characters of one parameter name

# Parameters that belong to the request or its signature, not to the operation.
AUTH_PARAMS = frozenset({
    "AWSAccessKeyId", "Signature", "SignatureMethod", "SignatureVersion", "SecurityToken", "Timestamp", "Expires",
    "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders",
    "X-Amz-Signature", "X-Amz-Security-Token", "Action", "Version",
})
# Members of shapes that are enums in AWS's model but open here: the cloud's administrator names
# its own VM types (``euca vmtype``), and RunInstances checks the name against them.
OPEN_ENUMS = frozenset({"InstanceType"})

Tree = dict[str, Any]  # a node: child name -> Tree, and "" -> the text given at this very key
_TEXT = ""  # never a name segment: fold refuses empty segments
_INTEGER = re.compile(r"-?[0-9]{1,20}")
_DOUBLE = re.compile(r"-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]{1,4})?")
_RANGE = {"integer": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}


def fold(params: dict[str, str], extensions: Iterable[str] = ()) -> Tree:
    """``{"A.1.B": "x"}`` -> ``{"A": {"1": {"B": {"": "x"}}}}``; the names in ``extensions``
    (parameters Eucalyptus's tools send beyond AWS's model) stay whole at the root."""
    if len(params) > MAX_PARAMS:
        raise InvalidParameterValue(f"too many parameters ({len(params)}, at most {MAX_PARAMS})")
    root: Tree = {}
    for key, value in params.items():
        if key in AUTH_PARAMS:
            continue
        if len(value) > MAX_VALUE:
            raise InvalidParameterValue(f"Value for parameter {quoted(key)} is longer than {MAX_VALUE} characters")
        if key in extensions:
            root[key] = {_TEXT: value}
            continue
        parts = key.split(".")
        if not all(parts) or len(key) > MAX_NAME:
            raise InvalidParameter(f"The parameter {quoted(key)} is not valid: names are dot-separated, "
                                   "with no empty part")
        node = root
        for part in parts:
            node = node.setdefault(part, {})
        node[_TEXT] = value
    return root


def parse(shape: StructureShape | None, params: dict[str, str], extensions: Iterable[str] = (),
          wrapped: bool = False) -> dict[str, Any]:
    """The operation's input as boto3 would have passed it, plus the ``extensions`` given (as
    text); or the EC2 error for the first parameter that does not fit. ``wrapped``: the plain
    query protocol's lists (IAM's), ``Name.member.N`` unless the model flattens them, where EC2
    writes ``Name.N``."""
    extensions = tuple(extensions)
    tree = fold(params, extensions)
    out: dict[str, Any] = {}
    for name in extensions:
        node = tree.pop(name, None)
        if node is not None:
            out[name] = _string(node[_TEXT], name)
    if shape is None:
        if tree:
            raise _unknown(tree, "")
        return out
    out.update(_structure(shape, tree, "", wrapped))
    return out


def _name(member: Shape, default: str) -> str:
    if "queryName" in member.serialization:
        return str(member.serialization["queryName"])
    name = member.serialization.get("name")
    if name:
        return str(name[0].upper() + name[1:])
    return default


def _unknown(node: Tree, path: str) -> UnknownParameter:
    """UnknownParameter naming one whole parameter under ``node`` (``Placement.Foo.1``, not ``Foo``)."""
    key = next(k for k in node if k != _TEXT)
    name, node = f"{path}{key}", node[key]
    while _TEXT not in node:
        key = next(iter(node))
        name, node = f"{name}.{key}", node[key]
    return UnknownParameter(f"The parameter {quoted(name, 128)} is not recognized")


@cache
def _members(shape: StructureShape) -> tuple[dict[str, tuple[str, Shape, str]], tuple[tuple[str, str], ...]]:
    """Serialized name -> (member name, shape, ""), with the member name itself as a second key
    (older tools send it) whose third field is the serialized name; and the required members with
    their serialized names. Built once per shape: botocore's member and serialization lookups
    were most of the cost of parsing a request."""
    by_key: dict[str, tuple[str, Shape, str]] = {}
    for member_name, member in shape.members.items():
        by_key[_name(member, member_name)] = (member_name, member, "")
    for member_name, member in shape.members.items():
        # the serialized name wins when a request has both
        by_key.setdefault(member_name, (member_name, member, _name(member, member_name)))
    required = tuple((name, _name(shape.members[name], name)) for name in shape.required_members)
    return by_key, required


def _structure(shape: StructureShape, node: Tree, path: str, wrapped: bool) -> dict[str, Any]:
    by_key, required = _members(shape)
    out: dict[str, Any] = {}
    # Walk the request's keys, not the shape's: a request names a few of RunInstances' ~40 members.
    for key, child in node.items():
        if key == _TEXT:
            continue
        found = by_key.get(key)
        if found is None:
            raise _unknown({key: child}, path)
        if found[2] and found[2] in node:
            continue
        out[found[0]] = _value(found[1], child, f"{path}{key}", wrapped)
    for name, key in required:
        if name not in out:
            raise MissingParameter(f"The request must contain the parameter {path}{key}")
    return out


def _value(shape: Shape, node: Tree, path: str, wrapped: bool) -> Any:
    kind = shape.type_name
    if kind == "structure":
        assert isinstance(shape, StructureShape)
        if node.get(_TEXT):
            raise InvalidParameterValue(f"Value ({quoted(node[_TEXT])}) for parameter {path} is invalid. "
                                        f"It is a structure: give {path}.<member>")
        return _structure(shape, node, path + ".", wrapped)
    if kind == "list":
        assert isinstance(shape, ListShape)
        return _list(shape, node, path, wrapped)
    if kind == "map":
        assert isinstance(shape, MapShape)
        return _map(shape, node, path, wrapped)
    if len(node) > 1 or _TEXT not in node:
        raise _unknown(node, path + ".")
    return _converter(shape)(node[_TEXT], path)


def _position(key: str, path: str) -> int:
    """A list position as EC2 numbers them: 1, 2, 3, ... in ASCII digits. Gaps are allowed
    (``InstanceId.1``, ``InstanceId.3``); the members keep their order."""
    if not (key.isascii() and key.isdigit() and key[0] != "0" and len(key) <= 6):
        raise InvalidParameter(f"The parameter {path}.{quoted(key)} is not valid: list positions are "
                               "1, 2, 3, ...")
    return int(key)


def _positions(node: Tree, path: str) -> list[tuple[int, Tree]]:
    items: list[tuple[int, Tree]] = []
    for key, child in node.items():
        if key == _TEXT:
            if child == "":
                continue  # "Foo=" is how the query protocol writes an empty list
            raise InvalidParameterValue(f"Value ({quoted(child)}) for parameter {path} is invalid. "
                                        f"It is a list: give {path}.1, {path}.2, ...")
        items.append((_position(key, path), child))
    if len(items) > MAX_LIST:
        raise InvalidParameterValue(f"The parameter {path} has {len(items)} members, at most {MAX_LIST}")
    items.sort(key=lambda kv: kv[0])
    return items


def _list(shape: ListShape, node: Tree, path: str, wrapped: bool) -> list[Any]:
    member: Shape = shape.member
    if wrapped and not shape.serialization.get("flattened"):
        tag = str(member.serialization.get("name", "member"))
        if set(node) - {_TEXT, tag}:
            raise _unknown({k: v for k, v in node.items() if k not in (_TEXT, tag)}, path + ".")
        if node.get(_TEXT):
            _positions(node, path)  # the error for a list given as text
        node, path = node.get(tag, {}), f"{path}.{tag}"
    return [_value(member, child, f"{path}.{i}", wrapped) for i, child in _positions(node, path)]


def _map(shape: MapShape, node: Tree, path: str, wrapped: bool) -> dict[Any, Any]:
    """``Name.entry.N.key`` / ``Name.entry.N.value`` (``Name.N.key`` when flattened), as
    botocore's query serializer writes a map."""
    if not shape.serialization.get("flattened"):
        if set(node) - {_TEXT} - {"entry"}:
            raise _unknown({k: v for k, v in node.items() if k not in (_TEXT, "entry")}, path + ".")
        node = node.get("entry", {})
        path += ".entry"
    key_name, value_name = _name(shape.key, "key"), _name(shape.value, "value")
    out: dict[Any, Any] = {}
    for i, entry in _positions(node, path):
        at = f"{path}.{i}"
        extra = set(entry) - {key_name, value_name}
        if extra:
            raise _unknown({k: entry[k] for k in extra}, at + ".")
        if key_name not in entry:
            raise MissingParameter(f"The request must contain the parameter {at}.{key_name}")
        key = _value(shape.key, entry[key_name], f"{at}.{key_name}", wrapped)
        out[key] = _value(shape.value, entry[value_name], f"{at}.{value_name}", wrapped) \
            if value_name in entry else None
    return out


# --- scalars: one converter per shape, built once ---------------------------------------------------

Converter = Callable[[str, str], Any]


def _invalid(text: str, path: str, why: str) -> InvalidParameterValue:
    return InvalidParameterValue(f"Value ({quoted(text)}) for parameter {path} is invalid. {why}")


def _string(text: str, path: str) -> str:
    if not xml_safe(text):
        raise _invalid(text, path, "It holds characters that are not allowed (control characters, "
                                   "U+FFFE, U+FFFF, surrogates).")
    return text


@cache
def _converter(shape: Shape) -> Converter:
    kind = shape.type_name
    meta = shape.metadata
    if kind == "string":
        return _string_converter(shape)
    if kind in ("integer", "long"):
        low, high = _RANGE[kind]
        low, high = max(low, int(meta.get("min", low))), min(high, int(meta.get("max", high)))

        def integer(text: str, path: str) -> int:
            if not _INTEGER.fullmatch(text):
                raise _invalid(text, path, "It must be an integer.")
            value = int(text)
            if not low <= value <= high:
                raise _invalid(text, path, f"It must be an integer from {low} to {high}.")
            return value
        return integer
    if kind == "boolean":
        def boolean(text: str, path: str) -> bool:
            lowered = text.lower()
            if lowered not in ("true", "false"):
                raise _invalid(text, path, "It must be true or false.")
            return lowered == "true"
        return boolean
    if kind in ("double", "float"):
        def double(text: str, path: str) -> float:
            if not _DOUBLE.fullmatch(text):
                raise _invalid(text, path, "It must be a number.")
            number = float(text)
            if not math.isfinite(number):
                raise _invalid(text, path, "It must be a finite number.")
            return number
        return double
    if kind == "timestamp":
        return _timestamp
    if kind == "blob":
        def blob(text: str, path: str) -> bytes:
            try:
                return base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError):
                raise _invalid(text, path, "It must be base64.") from None
        return blob
    return _string


def _timestamp(text: str, path: str) -> datetime:
    if not text.isascii():
        raise _invalid(text, path, "It must be an ISO 8601 time.")
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise _invalid(text, path, "It must be an ISO 8601 time.") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _string_converter(shape: Shape) -> Converter:
    meta = shape.metadata
    low, high = int(meta.get("min", 0)), int(meta.get("max", MAX_VALUE))
    enum = frozenset(shape.enum) if shape.enum and shape.name not in OPEN_ENUMS else None
    pattern: re.Pattern[str] | None = None
    if "pattern" in meta:
        try:
            pattern = re.compile(str(meta["pattern"]))
        except re.error:
            pattern = None  # written for another regex dialect; the service checks what matters

    def string(text: str, path: str) -> str:
        if not xml_safe(text):
            _string(text, path)
        if not low <= len(text) <= high:
            raise _invalid(text, path, f"It must be {low} to {high} characters long.")
        if enum is not None and text not in enum:
            shown = ", ".join(sorted(enum)[:8]) + (", ..." if len(enum) > 8 else "")
            raise _invalid(text, path, f"It must be one of: {shown}.")
        if pattern is not None and not pattern.fullmatch(text):
            raise _invalid(text, path, "It does not have the required form.")
        return text
    if enum is None and pattern is None and low == 0 and high == MAX_VALUE:
        return _string
    return string
