"""Every document the API renders is XML 1.0, whatever the values hold: every output shape of every
action, filled with hostile strings, parses; so does every error document."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.model import Shape
from botocore.parsers import create_parser

from euca.api import xml
from euca.api.actions import ACTIONS
from euca.api.app import ec2_model
from euca.core.text import check_name, check_tag, printable, quoted, xml_safe, xml_text

MODEL = ec2_model()
NS = "{http://ec2.amazonaws.com/doc/2016-11-15/}"
HOSTILE = [
    "\x00", "nul\x00in the middle", "".join(chr(c) for c in range(32)), "\x7f\x80\x9f", "]]>", "a]]>b", "&", "&amp;",
    "<", "</item>", "<![CDATA[x]]>", ">", "\ufffe", "\uffff", "\ud800", "lone \udfff low", "\ud83d\ude00",
    "cr\rlf\r\n", "tab\tnl\n", "é漢字😀", "x" * 100_000, "'\"", "\u2028\u2029\u0085",
]


def _fill(shape: Shape, text: str, depth: int = 0) -> Any:
    kind = shape.type_name
    if kind == "structure":
        if depth > 6:
            return {}
        return {name: _fill(member, text, depth + 1) for name, member in shape.members.items()}
    if kind == "list":
        return [_fill(shape.member, text, depth + 1), _fill(shape.member, text + "2", depth + 1)]
    if kind == "map":
        return {text: _fill(shape.value, text, depth + 1)}
    if kind in ("integer", "long"):
        return -(2**40)
    if kind in ("double", "float"):
        return 1.5e300
    if kind == "boolean":
        return True
    if kind == "timestamp":
        return datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    if kind == "blob":
        return text.encode("utf-8", "surrogatepass")
    return text


@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_every_output_shape_renders_well_formed_xml(action: str) -> None:
    op = MODEL.operation_model(action)
    for text in HOSTILE:
        result = _fill(op.output_shape, text) if op.output_shape is not None else {}
        body = xml.response(op, result, "req-1", "2016-11-15")
        root = ET.fromstring(body)  # raises on anything not well formed
        assert root.tag == f"{NS}{action}Response"
        assert root.findtext(f"{NS}requestId") == "req-1"


def test_values_come_back_as_sent_or_with_replacement_characters() -> None:
    op = MODEL.operation_model("DescribeKeyPairs")
    names = ["a\x01b", "a\rb", "cr\r\nlf", "x]]>y", "<&>", "\ufffe\uffff", "\ud800", "ok é 😀", "tab\t"]
    body = xml.response(op, {"KeyPairs": [{"KeyName": n} for n in names]}, "r", "2016-11-15")
    parsed = create_parser("ec2").parse({"body": body, "headers": {}, "status_code": 200}, op.output_shape)
    assert [k["KeyName"] for k in parsed["KeyPairs"]] == [
        "a\ufffdb", "a\rb", "cr\r\nlf", "x]]>y", "<&>", "\ufffd\ufffd", "\ufffd", "ok é 😀", "tab\t"]


@pytest.mark.parametrize("text", HOSTILE)
def test_error_documents_are_well_formed(text: str) -> None:
    body = xml.error("InvalidParameterValue", f"Value ({text}) for parameter Foo is invalid.", "req-2")
    root = ET.fromstring(body)
    assert root.tag == "Response"
    assert root.findtext("Errors/Error/Code") == "InvalidParameterValue"
    message = root.findtext("Errors/Error/Message") or ""
    assert message.startswith("Value (") and xml_safe(message)
    assert root.findtext("RequestID") == "req-2"
    root = ET.fromstring(xml.error(text, text, text))
    assert root.findtext("Errors/Error/Code") is not None


def test_error_messages_show_control_characters_as_escapes() -> None:
    root = ET.fromstring(xml.error("InvalidAction", "The action \x01\x19\ud800\ufffe<& is not valid", "r"))
    assert root.findtext("Errors/Error/Message") == "The action \\x01\\x19\\ud800\\ufffe<& is not valid"


# --- euca.core.text ---------------------------------------------------------------------------------

def test_xml_safe_and_replacement() -> None:
    assert xml_safe("tab\tnl\ncr\r é 😀 \u2028")
    for bad in ("\x00", "\x08", "\x0b", "\x0c", "\x1f", "\ufffe", "\uffff", "\ud800", "\udfff"):
        assert not xml_safe(f"a{bad}b")
        assert xml_text(f"a{bad}b") == "a\ufffdb"


def test_quoted_is_short_and_shows_controls() -> None:
    assert quoted("a\x19b\x7f") == "a\\x19b\\x7f"
    assert quoted("x" * 100, 10) == "x" * 10 + "..."
    assert quoted("\ud800\uffff") == "\\ud800\\uffff"


def test_printable_and_names() -> None:
    assert printable("my key 1", 10) and printable("", 1) and printable("é", 1)
    assert not printable("tab\t", 10) and not printable("x" * 11, 10) and not printable("\u2028", 5)
    check_name("KeyName", "mykey", 255, ascii_only=True)
    for bad in ("", "x" * 256, "bell\x07", "nl\n", "caf\u00e9"):
        with pytest.raises(Exception, match="KeyName") as exc:
            check_name("KeyName", bad, 255, ascii_only=True)
        assert type(exc.value).__name__ == "InvalidParameterValue"
        assert xml_safe(str(exc.value))


@pytest.mark.parametrize(("key", "value"), [
    ("Name", "web server 1"), ("a" * 128, "v" * 256), ("k", ""), ("env:stage/x@y.z_w+1=2-3", "ok"),
    ("名前", "値 ٣ Ⅻ"), ("AWSome", "x"), ("key\u3000ideographic space", "v"),
])
def test_tags_aws_accepts(key: str, value: str) -> None:
    check_tag(key, value, "Tag.1")


@pytest.mark.parametrize(("key", "value", "field"), [
    ("", "v", "Tag.3.Key"), ("a" * 129, "v", "Tag.3.Key"), ("aws:name", "v", "Tag.3.Key"),
    ("AWS:Name", "v", "Tag.3.Key"), ("semi;colon", "v", "Tag.3.Key"), ("ctl\x01", "v", "Tag.3.Key"),
    ("tab\t", "v", "Tag.3.Key"), ("k", "v" * 257, "Tag.3.Value"), ("k", "new\nline", "Tag.3.Value"),
    ("k", "\ufffe", "Tag.3.Value"), ("k", "quote\"", "Tag.3.Value"), ("k", "a*b", "Tag.3.Value"),
    ("k", "\ud800", "Tag.3.Value"), ("combining\u0301", "v", "Tag.3.Key"),
])
def test_tags_aws_refuses(key: str, value: str, field: str) -> None:
    with pytest.raises(Exception, match=f"parameter {field} is invalid") as exc:
        check_tag(key, value, "Tag.3")
    assert type(exc.value).__name__ == "InvalidParameterValue"
    assert xml_safe(str(exc.value))
