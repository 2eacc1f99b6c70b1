"""What every service shares: who is calling, identifiers that are never re-issued, filters."""

from __future__ import annotations

import base64
import binascii
import fnmatch
import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, TypeVar

from euca.core.errors import FilterLimitExceeded, InternalError, InvalidPaginationToken, InvalidParameterValue
from euca.core.text import quoted
from euca.store import Store, Tx

ADMIN = "admin"


@dataclass(frozen=True)
class Caller:
    """The account a request was signed for, and the user in it who signed."""

    account: str  # name
    account_id: str  # 12 digits, the OwnerId clients see
    admin: bool = False  # the system administrator: the admin user of the admin account
    user: str = ADMIN

    def sees(self, owner: str) -> bool:
        return self.admin or owner == self.account


class Ids:
    """Eucalyptus-style identifiers (``i-3A4B5C6D``), drawn at random and recorded for good.

    A new id is inserted into the store's ``issued`` table in the same transaction as the record
    that uses it: the table's key refuses one issued before (the draw is repeated), a rollback
    un-issues it, and a crash can neither lose nor repeat one. Nothing is kept in memory, so a
    server's size does not grow with every id it has ever handed out.
    """

    def __init__(self, store: Store) -> None:
        self._store = store

    def new(self, prefix: str, tx: Tx) -> str:
        return self._draw(prefix, tx, lambda: f"{secrets.randbits(32):08X}")

    def new_long(self, prefix: str, tx: Tx) -> str:
        """An id as AWS draws the ones Eucalyptus never had (``key-0a1b2c3d4e5f67890``): 17 hex digits."""
        return self._draw(prefix, tx, lambda: f"{secrets.randbits(68):017x}")

    def _draw(self, prefix: str, tx: Tx, digits: Callable[[], str]) -> str:
        for _ in range(64):
            candidate = f"{prefix}-{digits()}"
            if tx.issue_fresh(candidate):
                return candidate
        raise InternalError("could not draw a fresh identifier")

    def __contains__(self, id_: object) -> bool:
        return isinstance(id_, str) and self._store.is_issued(id_)


_ID = re.compile(r"^(i|r|emi|eki|eri|ami|aki|ari|sg|sgr|key|vol|snap)-[0-9A-Fa-f]{8}([0-9A-Fa-f]{9})?$")


def well_formed(id_: str, *prefixes: str) -> bool:
    return bool(_ID.match(id_)) and id_.split("-", 1)[0] in prefixes


# --- filters ---------------------------------------------------------------------------------------

@lru_cache(maxsize=1024)
def _pattern(value: str) -> re.Pattern[str]:
    return re.compile(fnmatch.translate(value), re.DOTALL)


def wanted(filters: Iterable[Mapping[str, Any]] | None, known: Iterable[str],
           tags: bool = True, prefixes: tuple[str, ...] = ()) -> list[tuple[str, list[str]]]:
    """Validate ``Filter.N.Name`` / ``Filter.N.Value.M`` against the names a describe knows (and
    ``tag:KEY`` where the resource has tags, and any name starting with one of ``prefixes``, such
    as ``network-interface.tag:``): an unknown name is InvalidParameterValue "The filter 'x' is
    invalid", a value over 255 characters FilterLimitExceeded, as EC2 answers them."""
    out: list[tuple[str, list[str]]] = []
    names = set(known)
    allowed = (*prefixes, "tag:") if tags else prefixes
    for f in filters or ():
        name = f.get("Name")
        values = f.get("Values") or []
        if not name:
            raise InvalidParameterValue("The filter '' is invalid")
        if name not in names and not (allowed and name.startswith(allowed)):
            raise InvalidParameterValue(f"The filter '{quoted(name)}' is invalid")
        if len(values) > 200:
            raise FilterLimitExceeded("The maximum number of filter values specified on a single call is 200")
        if any(len(v) > 255 for v in values):
            raise FilterLimitExceeded("The maximum length for a filter value is 255 characters")
        out.append((name, list(values)))
    return out


def matches(filters: list[tuple[str, list[str]]], fields: Callable[[str], Iterable[str]]) -> bool:
    """Every filter has a value (with ``*`` and ``?`` wildcards) matching one of the record's values."""
    for name, values in filters:
        have = list(fields(name))
        if not any(_pattern(v).match(h) for v in values for h in have):
            return False
    return True


def present(*values: str) -> list[str]:
    """A filter's values for a record: an attribute the record lacks matches nothing, not even ``*``."""
    return [v for v in values if v]


def timestamp(t: float) -> str:
    """A time as EC2 shows it and its filters compare it (``2026-01-02T03:04:05.678Z``)."""
    v = datetime.fromtimestamp(t, UTC)
    return v.strftime("%Y-%m-%dT%H:%M:%S.") + f"{v.microsecond // 1000:03d}Z"


def tag_fields(tags: Mapping[str, str], name: str) -> list[str]:
    if name.startswith("tag:"):
        key = name[4:]
        return [tags[key]] if key in tags else []
    if name == "tag-key":
        return list(tags)
    if name == "tag-value":
        return list(tags.values())
    return []


def tag_list(tags: Mapping[str, str]) -> list[dict[str, str]] | None:
    return [{"Key": k, "Value": v} for k, v in tags.items()] or None


# --- paging ----------------------------------------------------------------------------------------

T = TypeVar("T")


def page(items: list[T], max_results: int | None, token: str | None) -> tuple[list[T], str | None]:
    """One page of ``items`` for MaxResults/NextToken: the token is the opaque offset of the next
    page; a token this cloud did not hand out is InvalidPaginationToken."""
    start = 0
    if token:
        try:
            start = int(base64.urlsafe_b64decode(token.encode()).decode())
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise InvalidPaginationToken(f"Invalid pagination token {quoted(token)}") from None
        if not 0 <= start <= len(items):
            raise InvalidPaginationToken(f"Invalid pagination token {quoted(token)}")
    end = len(items) if max_results is None else min(len(items), start + max_results)
    following = base64.urlsafe_b64encode(str(end).encode()).decode() if end < len(items) else None
    return items[start:end], following
