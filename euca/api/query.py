"""EC2 Query requests (form-encoded POST or GET) parsed by walking the operation's input shape.

The flat parameters (``InstanceId.1``, ``Filter.2.Value.1``, ``Placement.AvailabilityZone``) are
first folded into a tree on their dots, then each member of the input shape looks up its own
serialized name (``queryName``, else the capitalised ``locationName``, else the member name, as
botocore's EC2 serializer writes them) and converts the text to the member's type. The result is
the same dict a boto3 caller passed in, keyed by member names.
"""

from __future__ import annotations

import base64
import binascii
import math
from datetime import datetime
from functools import cache
from typing import Any

from botocore.model import Shape, StructureShape

from euca.core.errors import InvalidParameterValue, MissingParameter

MAX_LIST = 1000  # members of one list parameter
MAX_PARAMS = 4000
MAX_VALUE = 65536  # characters of one value (base64 user data of 16 KiB fits many times over)

# Parameters that belong to the signature, not to the operation.
AUTH_PARAMS = frozenset({
    "AWSAccessKeyId", "Signature", "SignatureMethod", "SignatureVersion", "Timestamp", "Expires",
    "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders",
    "X-Amz-Signature", "X-Amz-Security-Token", "Action", "Version",
})

Tree = dict[str, Any]  # a node: child name -> Tree, and "" -> the text given at this very key


def fold(params: dict[str, str]) -> Tree:
    """``{"A.1.B": "x"}`` -> ``{"A": {"1": {"B": {"": "x"}}}}``."""
    if len(params) > MAX_PARAMS:
        raise InvalidParameterValue(f"too many parameters ({len(params)}, at most {MAX_PARAMS})")
    root: Tree = {}
    for key, value in params.items():
        if key in AUTH_PARAMS:
            continue
        if len(value) > MAX_VALUE:
            raise InvalidParameterValue(f"value of {key[:64]} is longer than {MAX_VALUE} characters")
        node = root
        for part in key.split("."):
            node = node.setdefault(part, {})
        node[""] = value
    return root


def parse(shape: StructureShape | None, params: dict[str, str]) -> dict[str, Any]:
    if shape is None:
        return {}
    out = _structure(shape, fold(params), "")
    return out


def _name(member: Shape, default: str) -> str:
    if "queryName" in member.serialization:
        return str(member.serialization["queryName"])
    name = member.serialization.get("name")
    if name:
        return str(name[0].upper() + name[1:])
    return default


@cache
def _members(shape: StructureShape) -> tuple[dict[str, tuple[str, Shape, str]], tuple[tuple[str, str], ...]]:
    """Serialized name -> (member name, shape), with the member name itself as a second key (older
    tools send it); and the required members with their serialized names. Built once per shape:
    botocore's member and serialization lookups were most of the cost of parsing a request."""
    by_key: dict[str, tuple[str, Shape, str]] = {}
    for member_name, member in shape.members.items():
        by_key[_name(member, member_name)] = (member_name, member, "")
    for member_name, member in shape.members.items():
        # the serialized name wins when a request has both
        by_key.setdefault(member_name, (member_name, member, _name(member, member_name)))
    required = tuple((name, _name(shape.members[name], name)) for name in shape.required_members)
    return by_key, required


def _structure(shape: StructureShape, node: Tree, path: str) -> dict[str, Any]:
    by_key, required = _members(shape)
    out: dict[str, Any] = {}
    # Walk the request's keys, not the shape's: a request names a few of RunInstances' ~40 members.
    for key, child in node.items():
        found = by_key.get(key)
        if found is None or (found[2] and found[2] in node):
            continue
        out[found[0]] = _value(found[1], child, f"{path}{key}")
    for name, key in required:
        if name not in out:
            raise MissingParameter(f"The request must contain the parameter {path}{key}")
    return out


def _value(shape: Shape, node: Tree, path: str) -> Any:
    kind = shape.type_name
    if kind == "structure":
        assert isinstance(shape, StructureShape)
        return _structure(shape, node, path + ".")
    if kind == "list":
        return _list(shape, node, path)
    if kind == "map":
        raise InvalidParameterValue(f"{path}: map parameters are not supported")
    text = node.get("")
    if text is None:
        raise InvalidParameterValue(f"{path} needs a value")
    return _scalar(kind, text, path)


def _list(shape: Shape, node: Tree, path: str) -> list[Any]:
    member: Shape = shape.member
    items: list[tuple[int, Tree]] = []
    for key, child in node.items():
        if key == "":
            if child == "":
                continue  # "Foo=" is how the query protocol writes an empty list
            raise InvalidParameterValue(f"{path} is a list: give {path}.1, {path}.2, ...")
        if not key.isdigit() or len(key) > 6 or int(key) < 1:
            raise InvalidParameterValue(f"{path}.{key[:32]}: list positions are numbers from 1")
        items.append((int(key), child))
    if len(items) > MAX_LIST:
        raise InvalidParameterValue(f"{path}: at most {MAX_LIST} members")
    items.sort(key=lambda kv: kv[0])
    return [_value(member, child, f"{path}.{i}") for i, child in items]


def _scalar(kind: str, text: str, path: str) -> Any:
    if kind == "string":
        return text
    if kind in ("integer", "long"):
        try:
            value = int(text)
        except ValueError:
            raise InvalidParameterValue(f"Value ({text[:64]}) for parameter {path} is invalid. "
                                        "It must be an integer.") from None
        if abs(value) >= 2**63:
            raise InvalidParameterValue(f"Value for parameter {path} is out of range")
        return value
    if kind == "boolean":
        lowered = text.lower()
        if lowered not in ("true", "false"):
            raise InvalidParameterValue(f"Value ({text[:64]}) for parameter {path} is invalid. "
                                        "It must be true or false.")
        return lowered == "true"
    if kind in ("double", "float"):
        try:
            number = float(text)
        except ValueError:
            raise InvalidParameterValue(f"Value ({text[:64]}) for parameter {path} is not a number") from None
        if not math.isfinite(number):
            raise InvalidParameterValue(f"Value for parameter {path} must be finite")
        return number
    if kind == "timestamp":
        try:
            return datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidParameterValue(f"Value ({text[:64]}) for parameter {path} is not an ISO 8601 time") from None
    if kind == "blob":
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidParameterValue(f"Value for parameter {path} is not valid base64") from None
    return text
