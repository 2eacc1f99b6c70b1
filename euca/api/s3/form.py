"""A ``multipart/form-data`` body read as it arrives (RFC 7578): one part at a time, each part's
bytes handed on in pieces no larger than what came off the socket, so a browser's upload
goes to disk through a bounded buffer and is never whole in memory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from euca.core.s3errors import IncompleteBody, MalformedPOSTRequest, MaxPostPreDataLengthExceeded

_HEADER_LIMIT = 16 << 10  # one part's headers


@dataclass(frozen=True)
class PartHead:
    """A part's ``Content-Disposition`` name and filename (None: not a file), and its Content-Type."""

    name: str
    filename: str | None
    content_type: str


def boundary_of(content_type: str) -> str | None:
    """The boundary of a ``multipart/form-data`` Content-Type, None when it is not one."""
    kind, _, rest = content_type.partition(";")
    if kind.strip().lower() != "multipart/form-data":
        return None
    for name, value in _params(rest):
        if name == "boundary" and 0 < len(value) <= 200:
            return value
    return None


def _params(text: str) -> list[tuple[str, str]]:
    """``; name="value"; other=value`` as (lower-case name, value) pairs, quotes undone."""
    out: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in "; \t":
            i += 1
        start = i
        while i < n and text[i] not in "=;":
            i += 1
        name = text[start:i].strip().lower()
        value = ""
        if i < n and text[i] == "=":
            i += 1
            while i < n and text[i] in " \t":
                i += 1
            if i < n and text[i] == '"':
                i += 1
                chars: list[str] = []
                while i < n and text[i] != '"':
                    chars.append(text[i])
                    i += 1
                i += 1
                # HTML's form encoding: no backslash escapes (a Windows path keeps its
                # backslashes); a quote and line breaks are percent-encoded
                value = "".join(chars).replace("%22", '"').replace("%0D", "\r").replace("%0A", "\n")
            else:
                start = i
                while i < n and text[i] != ";":
                    i += 1
                value = text[start:i].strip()
        if name:
            out.append((name, value))
    return out


class FormReader:
    """Parts of a form body: ``await next_part()`` for the next part's head (None after the last),
    then ``part_bytes()`` for its content before asking for the next."""

    def __init__(self, source: AsyncIterator[bytes], boundary: str) -> None:
        self._source = source
        self._delimiter = b"\r\n--" + boundary.encode("latin-1")
        # the first delimiter has no CRLF before it: pretend it had
        self._buffer = bytearray(b"\r\n")
        self._state = "preamble"  # preamble, head, body, done

    async def _more(self) -> bool:
        try:
            self._buffer += await self._source.__anext__()
            return True
        except StopAsyncIteration:
            return False

    async def _skip_to_delimiter(self) -> None:
        """Past the next delimiter, then past its CRLF (another part) or ``--`` (the end)."""
        while True:
            at = self._buffer.find(self._delimiter)
            if at >= 0:
                del self._buffer[:at + len(self._delimiter)]
                break
            del self._buffer[:max(0, len(self._buffer) - len(self._delimiter))]
            if not await self._more():
                raise IncompleteBody("The form ended before its closing boundary")
        while len(self._buffer) < 2:
            if not await self._more():
                raise IncompleteBody("The form ended before its closing boundary")
        if self._buffer[:2] == b"--":
            self._state = "done"
            return
        # transport padding (spaces, tabs) may sit between the boundary and its CRLF
        while (end := self._buffer.find(b"\r\n")) < 0:
            if len(self._buffer) > 1024 or not await self._more():
                raise MalformedPOSTRequest()
        if self._buffer[:end].strip(b" \t"):
            raise MalformedPOSTRequest()
        del self._buffer[:end + 2]
        self._state = "head"

    async def next_part(self) -> PartHead | None:
        if self._state in ("preamble", "body"):
            await self._skip_to_delimiter()
        if self._state == "done":
            return None
        while (end := self._buffer.find(b"\r\n\r\n")) < 0:
            if len(self._buffer) > _HEADER_LIMIT:
                raise MalformedPOSTRequest()
            if not await self._more():
                raise IncompleteBody("The form ended inside a part's headers")
        head = bytes(self._buffer[:end]).decode("utf-8", "replace")
        del self._buffer[:end + 4]
        name, filename, content_type = None, None, ""
        for line in head.split("\r\n"):
            field, _, value = line.partition(":")
            field = field.strip().lower()
            if field == "content-disposition":
                kind, _, rest = value.partition(";")
                if kind.strip().lower() != "form-data":
                    raise MalformedPOSTRequest()
                params = dict(_params(rest))
                name = params.get("name")
                filename = params.get("filename")
            elif field == "content-type":
                content_type = value.strip()
        if name is None:
            raise MalformedPOSTRequest()
        self._state = "body"
        return PartHead(name, filename, content_type)

    async def part_bytes(self) -> AsyncIterator[bytes]:
        """The current part's content, up to (not including) the CRLF before the next delimiter."""
        assert self._state == "body"
        keep = len(self._delimiter) - 1
        while True:
            at = self._buffer.find(self._delimiter)
            if at >= 0:
                if at:
                    piece = bytes(self._buffer[:at])
                    del self._buffer[:at]
                    yield piece
                return
            if len(self._buffer) > keep:
                cut = len(self._buffer) - keep
                piece = bytes(self._buffer[:cut])
                del self._buffer[:cut]
                yield piece
            if not await self._more():
                raise IncompleteBody("The form ended inside a part")

    async def part_value(self, limit: int) -> bytes:
        """The current part's content, whole (a field: small); refused past ``limit`` bytes."""
        parts: list[bytes] = []
        size = 0
        async for piece in self.part_bytes():
            size += len(piece)
            if size > limit:
                raise MaxPostPreDataLengthExceeded()
            parts.append(piece)
        return b"".join(parts)

