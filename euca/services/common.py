"""What every service shares: who is calling, identifiers that are never re-issued, filters."""

from __future__ import annotations

import fnmatch
import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from euca.core.errors import InternalError, InvalidFilter, InvalidParameterValue
from euca.store import Store, Tx

ADMIN = "admin"


@dataclass(frozen=True)
class Caller:
    """The account a request was signed for."""

    account: str  # name
    account_id: str  # 12 digits, the OwnerId clients see
    admin: bool = False

    def sees(self, owner: str) -> bool:
        return self.admin or owner == self.account


class Ids:
    """Eucalyptus-style identifiers (``i-3A4B5C6D``), drawn at random and recorded for good.

    The set of issued ids is loaded once; a new id is written in the same transaction as the
    record that uses it, so a crash can neither lose nor repeat one.
    """

    def __init__(self, store: Store) -> None:
        self._issued = store.issued()

    def new(self, prefix: str, tx: Tx) -> str:
        for _ in range(64):
            candidate = f"{prefix}-{secrets.randbits(32):08X}"
            if candidate not in self._issued:
                tx.issue(candidate)
                self._issued.add(candidate)
                return candidate
        raise InternalError("could not draw a fresh identifier")

    def forget_unwritten(self, ids: Iterable[str]) -> None:
        """Ids drawn in a transaction that rolled back were never issued."""
        for id_ in ids:
            self._issued.discard(id_)

    def __contains__(self, id_: object) -> bool:
        return id_ in self._issued


_ID = re.compile(r"^(i|r|emi|eki|eri|ami|aki|ari|sg)-[0-9A-Fa-f]{8}([0-9A-Fa-f]{9})?$")


def well_formed(id_: str, *prefixes: str) -> bool:
    return bool(_ID.match(id_)) and id_.split("-", 1)[0] in prefixes


# --- filters ---------------------------------------------------------------------------------------

@lru_cache(maxsize=1024)
def _pattern(value: str) -> re.Pattern[str]:
    return re.compile(fnmatch.translate(value), re.DOTALL)


def wanted(filters: Iterable[Mapping[str, Any]] | None, known: Iterable[str]) -> list[tuple[str, list[str]]]:
    """Validate ``Filter.N.Name`` / ``Filter.N.Value.M`` against the names a describe knows."""
    out: list[tuple[str, list[str]]] = []
    names = set(known)
    for f in filters or ():
        name = f.get("Name")
        values = f.get("Values") or []
        if not name:
            raise InvalidParameterValue("every filter needs a Name")
        if name not in names and not name.startswith("tag:"):
            raise InvalidFilter(f"The filter '{name[:64]}' is invalid")
        if len(values) > 200:
            raise InvalidParameterValue(f"filter {name[:64]}: at most 200 values")
        out.append((name, list(values)))
    return out


def matches(filters: list[tuple[str, list[str]]], fields: Callable[[str], Iterable[str]]) -> bool:
    """Every filter has a value (with ``*`` and ``?`` wildcards) matching one of the record's values."""
    for name, values in filters:
        have = list(fields(name))
        if not any(_pattern(v).match(h) for v in values for h in have):
            return False
    return True


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
