"""What Walrus keeps: buckets, object versions, access-control lists, multipart uploads.

An object version's bytes live in a blob (a file named by an internal id under the data
directory); everything else here is metadata in the cloud's store.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Generic, NamedTuple, TypeVar

NULL_VERSION = "null"  # the version id of an object written while versioning was never enabled or suspended


@dataclass(frozen=True)
class Requester:
    """Who sent a request: an account (by name and 12-digit id), or None for an anonymous request."""

    account: str
    account_id: str
    admin: bool = False

    @property
    def canonical_id(self) -> str:
        return canonical_id(self.account_id)


@lru_cache(maxsize=4096)  # asked at every ACL check, for the same few accounts
def canonical_id(account_id: str) -> str:
    """S3's 64-hex-digit canonical user id of an account, derived from its account id."""
    return hashlib.sha256(f"euca-account:{account_id}".encode()).hexdigest()


@dataclass(frozen=True)
class Grant:
    """One ACL entry. ``kind`` is ``user`` (``grantee`` a canonical id) or ``group`` (a group URI)."""

    kind: str
    grantee: str
    permission: str  # FULL_CONTROL, READ, WRITE, READ_ACP, WRITE_ACP


@dataclass(frozen=True)
class Acl:
    owner: str  # canonical id
    grants: tuple[Grant, ...]

    def to_json(self) -> dict[str, Any]:
        return {"owner": self.owner, "grants": [[g.kind, g.grantee, g.permission] for g in self.grants]}

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Acl:
        return cls(str(body["owner"]), tuple(Grant(str(k), str(g), str(p)) for k, g, p in body["grants"]))


@dataclass(frozen=True)
class Bucket:
    name: str
    owner: str  # account id
    created: float
    location: str
    versioning: str  # "" (never enabled), "Enabled" or "Suspended"
    acl: Acl
    cors: list[dict[str, Any]] | None = None
    lifecycle: list[dict[str, Any]] | None = None
    tags: dict[str, str] | None = None


@dataclass(frozen=True)
class ObjectInfo:
    """One version of an object (or a delete marker), as GET/HEAD and the listings describe it."""

    bucket: str
    key: str
    version_id: str
    size: int
    etag: str  # quoted, as S3 sends it
    modified: float
    owner: str  # account id
    blob: str  # internal id of the file holding the bytes ("" for a delete marker)
    latest: bool = True
    delete_marker: bool = False
    headers: dict[str, str] = field(default_factory=dict)  # content-type, cache-control, ... as stored
    metadata: dict[str, str] = field(default_factory=dict)  # x-amz-meta-*, without the prefix
    acl: Acl | None = None
    tags: dict[str, str] | None = None
    parts: int = 0  # the part count of an object completed from a multipart upload


class Listed(NamedTuple):
    """What ListObjects shows of a live object (made a thousand at a time, from the row as read)."""

    key: str
    size: int
    etag: str
    modified: float
    owner: str  # account id


Entry = TypeVar("Entry", Listed, ObjectInfo)


@dataclass(frozen=True)
class Listing(Generic[Entry]):
    """One page of ListObjects / ListObjectsV2 (``Listed`` objects) or ListObjectVersions
    (``ObjectInfo`` versions and delete markers)."""

    objects: list[Entry]
    prefixes: list[str]
    truncated: bool
    next_marker: str = ""  # the next key (and version for ListObjectVersions) to start after
    next_version: str = ""


@dataclass(frozen=True)
class Upload:
    upload_id: str
    bucket: str
    key: str
    owner: str  # account id
    initiated: float
    headers: dict[str, str]
    metadata: dict[str, str]
    acl: Acl


@dataclass(frozen=True)
class Part:
    number: int
    size: int
    etag: str
    modified: float
    blob: str
