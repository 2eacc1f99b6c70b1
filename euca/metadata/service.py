"""Answering one metadata request: who is asking (by source address), which version, which key.

The rules, from Eucalyptus's ``VmMetadata`` and EC2's IMDS:

- the caller is the instance whose public address, else whose private address, the request
  comes from; any other source gets 404 and nothing else, before anything else is looked at;
- ``/latest/...`` and ``/YYYY-MM-DD/...`` from 2009-04-04 (cloud-init's minimum) serve the same
  keys; a path ending in ``/`` lists its keys;
- IMDSv2: ``PUT /latest/api/token`` with a TTL of 1-21600 s returns a token; a GET carrying a
  token must carry a valid one (401 otherwise); an instance with HttpTokens=required must carry
  one. A token PUT without a usable TTL is 400, as EC2 answers, and a well-formed one is never
  refused with 400 (botocore treats 400 as fatal rather than falling back to IMDSv1);
- the token's reply carries the instance's HttpPutResponseHopLimit, which the HTTP face turns into
  the IP TTL of the reply's packets (``euca.api.metadata``): a container behind the instance, one
  router further away, gets no token unless the limit allows that router.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from typing import NamedTuple, Protocol

from euca.metadata.facts import InstanceFacts
from euca.metadata.tokens import Tokens, parse_ttl
from euca.metadata.tree import Sign, Tree, build

OLDEST = "2009-04-04"
_DATED = re.compile(r"/(\d{4}-\d{2}-\d{2})(?:/|$)")
TTL_HEADER = "x-aws-ec2-metadata-token-ttl-seconds"
TOKEN_HEADER = "x-aws-ec2-metadata-token"
TEXT = "text/plain"


def is_metadata_path(path: str) -> bool:
    """Paths the metadata service owns: ``/latest`` and ``/<date>`` and below. The EC2 Query API
    lives at ``/`` and ``/services/Eucalyptus``, so the path alone tells them apart."""
    if path.startswith("/latest"):
        return len(path) == 7 or path[7] == "/"
    return _DATED.match(path) is not None


class Reply(NamedTuple):
    status: int
    body: bytes
    headers: tuple[tuple[bytes, bytes], ...] = ()
    hop_limit: int = 0  # a token: its packets may cross this many routers past the instance (0: no limit)


NOT_FOUND = Reply(404, b"Not Found")
UNAUTHORIZED = Reply(401, b"Unauthorized")
FORBIDDEN = Reply(403, b"Forbidden")
BAD_TTL = Reply(400, b"Bad Request: X-aws-ec2-metadata-token-ttl-seconds must be 1-21600")
NOT_ALLOWED = Reply(405, b"Method Not Allowed", ((b"allow", b"GET, HEAD, PUT"),))


class Directory(Protocol):
    """The cloud's instances, as the metadata service sees them."""

    def find(self, address: str) -> InstanceFacts | None:
        """The live instance with this public address, else with this private address."""


class MetadataService:
    def __init__(self, directory: Directory, sign: Sign | None = None, token_secret: bytes | None = None,
                 clock: Callable[[], float] | None = None) -> None:
        self.directory = directory
        self._sign = sign
        # Without a shared secret tokens are good in this process only: fine for one worker.
        secret = token_secret if token_secret is not None else secrets.token_bytes(32)
        self.tokens = Tokens(secret) if clock is None else Tokens(secret, clock)
        self._trees: dict[str, tuple[InstanceFacts, Tree]] = {}

    def tree(self, facts: InstanceFacts) -> Tree:
        """The instance's keys, built (and the identity document signed) once per change of its facts."""
        held = self._trees.get(facts.instance_id)
        if held is not None and (held[0] is facts or held[0] == facts):
            return held[1]
        tree = build(facts, self._sign)
        if len(self._trees) > 100_000:
            self._trees.clear()
        self._trees[facts.instance_id] = (facts, tree)
        return tree

    def answer(self, method: str, path: str, source: str, header: Callable[[str], str | None]) -> Reply:
        """``header(name)`` gives a request header by its lower-case name, or None."""
        facts = self.directory.find(source)
        if facts is None:
            return NOT_FOUND
        if path.startswith("/latest"):
            rest = path[8:]
        else:
            dated = _DATED.match(path)
            if dated is None or dated.group(1) < OLDEST:
                return NOT_FOUND
            rest = path[12:]
        if facts.http_endpoint != "enabled":
            return FORBIDDEN
        if method == "PUT":
            if path != "/latest/api/token":
                return NOT_ALLOWED
            if header("x-forwarded-for") is not None:
                return FORBIDDEN  # EC2 refuses tokens through a proxy
            raw = header(TTL_HEADER)
            ttl = parse_ttl(raw)
            if ttl is None:
                return BAD_TTL
            return Reply(200, self.tokens.issue(facts.instance_id, ttl).encode(),
                         ((TTL_HEADER.encode(), str(ttl).encode()),), facts.hop_limit)
        if method not in ("GET", "HEAD"):
            return NOT_ALLOWED
        token = header(TOKEN_HEADER)
        if token is not None:
            if not self.tokens.valid(token, facts.instance_id):
                return UNAUTHORIZED
        elif facts.http_tokens == "required":
            return UNAUTHORIZED
        body = self.tree(facts).get(rest)
        if body is None:
            return NOT_FOUND
        return Reply(200, body)  # the server leaves the body off for HEAD
