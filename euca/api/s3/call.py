"""One S3 request as the handlers see it, and what they answer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from starlette.types import Receive

from euca.auth.s3 import S3Signature
from euca.auth.signing import SecretLookup
from euca.walrus import Requester, Walrus
from euca.walrus.blobs import Run


@dataclass
class Call:
    method: str
    bucket: str
    key: str
    query: dict[str, str]  # decoded; a parameter without a value maps to ""
    raw_query: str
    headers: dict[str, str]  # lower-case names
    receive: Receive
    who: Requester | None
    signature: S3Signature
    walrus: Walrus
    request_id: str
    display_name: Callable[[str], str]  # account id -> the name ListBuckets and ACLs show
    # for a signature found in the body rather than the headers (a browser form's policy)
    secret_of: SecretLookup = lambda access_key: None
    requester_of: Callable[[str], Requester | None] = lambda access_key: None

    @property
    def resource(self) -> str:
        return f"/{self.bucket}/{self.key}" if self.key else f"/{self.bucket}" if self.bucket else "/"


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    # a body streamed from files: (open descriptor, offset, length) runs in order (an object kept
    # as its multipart upload's parts is one run per part), closed once sent (or not)
    runs: list[Run] | None = None


Handler = Callable[[Call], Awaitable[Reply]]
