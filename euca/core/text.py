"""Checks for the text a request brings in: what XML 1.0 can carry, names, tags.

Every answer is an XML document, so a string the cloud stores or repeats must be made of
characters XML 1.0 allows: no C0 controls but tab, newline and carriage return, no U+FFFE or
U+FFFF, no lone surrogates. The services refuse such strings with these checks; the serializer
(``euca.api.xml``) replaces whatever still gets through, so a document is well formed either way.
"""

from __future__ import annotations

import re
import unicodedata

from euca.core.errors import InvalidParameterValue

# The characters XML 1.0 does not allow (its Char production), as one class for re's C loop.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
# Outside XML's Char production, or a control character a reader cannot see in a message.
_NOT_SHOWN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]")

REPLACEMENT = "\ufffd"
TAG_KEY_MAX = 128
TAG_VALUE_MAX = 256
# AWS's documented tag character set: Unicode letters, digits and spaces, and + - = . _ : / @
_TAG_ASCII = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 +-=._:/@")


def xml_safe(s: str) -> bool:
    """Every character of ``s`` may appear in an XML 1.0 document."""
    return _NOT_XML.search(s) is None


def xml_text(s: str) -> str:
    """``s`` with each character XML 1.0 does not allow replaced by U+FFFD: what a response
    value that somehow holds one is rendered as."""
    return _NOT_XML.sub(REPLACEMENT, s)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def quoted(s: str, limit: int = 64) -> str:
    """Request input fit to quote in an error message: at most ``limit`` characters, and the
    characters XML cannot carry (and DEL) written as ``\\xNN`` / ``\\uNNNN``, so the client sees
    what it sent."""
    if len(s) > limit:
        s = s[:limit] + "..."
    return _NOT_SHOWN.sub(_escape, s)


def printable(s: str, max_len: int) -> bool:
    """``s`` has at most ``max_len`` characters, none of them a control, format, separator other
    than the ASCII space, surrogate or unassigned code point (``str.isprintable``). The empty
    string is printable; callers that need a value check for it."""
    return len(s) <= max_len and s.isprintable()


def check_name(field: str, value: str, max_len: int, ascii_only: bool = False) -> None:
    """A name (a key pair's, a group's, an image's): 1 to ``max_len`` printable characters, or
    InvalidParameterValue naming ``field``."""
    if value and printable(value, max_len) and (value.isascii() or not ascii_only):
        return
    kind = "ASCII" if ascii_only else "printable"
    raise InvalidParameterValue(f"Value ({quoted(value)}) for parameter {field} is invalid. "
                                f"It must be 1 to {max_len} {kind} characters.")


def _tag_chars(s: str) -> bool:
    for ch in s:
        if ch in _TAG_ASCII:
            continue
        if ch.isascii() or unicodedata.category(ch)[0] not in "LNZ":
            return False
    return True


def check_tag(key: str, value: str, field: str = "Tag") -> None:
    """One tag as AWS documents tags: a key of 1-128 characters not starting with ``aws:``, a
    value of 0-256, both of letters, digits, spaces and ``+ - = . _ : / @``. A bad one is
    InvalidParameterValue naming ``{field}.Key`` or ``{field}.Value`` (``Tag.3.Key``)."""
    if not 1 <= len(key) <= TAG_KEY_MAX:
        raise InvalidParameterValue(f"Value ({quoted(key)}) for parameter {field}.Key is invalid. "
                                    f"Tag keys are 1 to {TAG_KEY_MAX} characters.")
    if key[:4].lower() == "aws:":
        raise InvalidParameterValue(f"Value ({quoted(key)}) for parameter {field}.Key is invalid. "
                                    "Tag keys starting with 'aws:' are reserved for internal use")
    if not _tag_chars(key):
        raise InvalidParameterValue(f"Value ({quoted(key)}) for parameter {field}.Key is invalid. Tag keys are "
                                    "letters, digits, spaces and + - = . _ : / @")
    if len(value) > TAG_VALUE_MAX:
        raise InvalidParameterValue(f"Value ({quoted(value)}) for parameter {field}.Value is invalid. "
                                    f"Tag values are at most {TAG_VALUE_MAX} characters.")
    if not _tag_chars(value):
        raise InvalidParameterValue(f"Value ({quoted(value)}) for parameter {field}.Value is invalid. Tag values "
                                    "are letters, digits, spaces and + - = . _ : / @")
