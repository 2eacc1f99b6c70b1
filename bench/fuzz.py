"""A fuzz campaign against the EC2 API: requests generated from botocore's EC2 model, mutated, signed
and sent to a real server.

Every implemented action (``euca.api.actions.ACTIONS``) gets parameters made from its input shape,
with values drawn from what the cloud holds (its instances, images, groups, keys, addresses) so
that requests reach deep into the services. Most requests are then mutated the ways a careless or
hostile client would: wrong types, huge values, control characters, malformed list positions,
unknown and duplicated parameters, empty dot segments, Unicode digits, a missing required
parameter, a strange Action or Version, DryRun. Some are broken at the HTTP level instead: bad form
encoding, invalid UTF-8, other content types, other methods, bodies over the limit, bad or missing
signatures. Everything that should reach the parser is signed properly (SigV4 over the exact
bytes sent).

Each answer must be a success or a well-formed EC2 error document, and never a 5xx other than
EC2's own capacity answers. A request that fails must change nothing: the cloud's state (as the
administrator's Describe calls show it) is compared around every request that is likely to
succeed and change something, and after every run of at most 50 others.

The generator takes its choices from a ``Choose`` (``pick``, ``number``), so the same code runs
under hypothesis in ``tests/test_fuzz.py`` (which shrinks a failure) and here with a seeded
``random.Random`` for long campaigns: ``python -m bench --only fuzz [--quick] [--requests N]``.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import random
import sys
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar
from urllib.parse import quote, unquote_plus

from botocore.model import OperationModel, Shape
from botocore.serialize import create_serializer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from euca.api.actions import ACTIONS
from euca.api.app import MAX_BODY, ec2_model

T = TypeVar("T")
Pairs = list[tuple[str, str]]

FORM = "application/x-www-form-urlencoded; charset=utf-8"
VERSION = "2016-11-15"
PATHS = ("/", "/services/Eucalyptus", "/services/Eucalyptus/")
# EC2's answers to a cloud that is full: 503 by design, not a fault.
CAPACITY = frozenset({"InsufficientInstanceCapacity", "InsufficientAddressCapacity"})
OPERATIONS = sorted(ACTIONS)
WINDOW = 50  # failing requests between two state comparisons, at most

HOSTILE = ("\x00", "a\x01b", "\x19", "\x1f\x7f", "]]>", "&", "<", "<x>&amp;]]>", "\ufffe", "\uffff", "\ud800",
           "tab\tnl\ncr\r", "é漢字😀", "%", "+", "=", "&Action=RunInstances", "'\"", "*", "?", " ", "")
NUMBERS = ("abc", "-1", "1.5", "true", "", "9" * 30, "NaN", "0x10", "١٢", "1e3", "+1", " 1", "2147483648", "²")
BAD_POSITIONS = ("0", "01", "-1", "+1", "1e3", " 1", "x", "", "1.0", "9999999", "²", "①", "٣", "１", "Ⅻ", "𝟙")
UNKNOWN = ("Foo", "Placement.Bar", "Filter.1.Bogus", "InstanceId.1.X", "KeyName.1", "dryrun", "action", "Foo\x01",
           "Tag.1.Key.Extra", "X-Amz-Foo", "Signature.1", "DryRun.1")
ACTION_VALUES = ("\x01", "", "describeinstances", "DescribeInstances\x00", "LaunchRockets", "Describe Instances",
                 "A" * 200, "RunInstances.1", "\ud800", "Describe&Instances")
VERSION_VALUES = ("", "2016-11-1٥", "\x01", "9999-99-99", "latest", "2016-11-15\x00", "<v>")
FILTERS = ("instance-id", "instance-state-name", "tag:role", "tag-key", "key-name", "group-name", "public-ip",
           "image-id", "resource-id", "key", "value", "no-such-filter", "*")
WORDS = ("fuzz", "default", "web", "db", "x", "alpha-1", "a b", "name.with.dots")

_SERIALIZER = create_serializer("ec2", include_validation=False)
_KEY = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
    serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH) + b" fuzz@host"


class Choose(Protocol):
    """Where the generator's choices come from: a seeded Random here, hypothesis in the tests."""

    def pick(self, options: Sequence[T]) -> T: ...

    def number(self, low: int, high: int) -> int: ...


class RandomChoose:
    def __init__(self, rnd: random.Random) -> None:
        self.rnd = rnd

    def pick(self, options: Sequence[T]) -> T:
        return options[self.rnd.randrange(len(options))]

    def number(self, low: int, high: int) -> int:
        return self.rnd.randint(low, high)


# --- what the cloud holds, as the administrator sees it ------------------------------------------------

@dataclass(frozen=True)
class Snapshot:
    """The state a failed request must not change. Instances count while pending or running (the
    rest move on with time alone), tags only on resources that do not."""

    instances: tuple[str, ...] = ()
    keys: tuple[tuple[str, ...], ...] = ()  # name, fingerprint
    groups: tuple[tuple[str, ...], ...] = ()  # owner, id, name, description, rules
    addresses: tuple[str, ...] = ()
    tags: tuple[tuple[str, ...], ...] = ()  # resource, key, value
    images: tuple[tuple[str, ...], ...] = ()  # id, name, description, public, owner

    def differences(self, other: Snapshot) -> list[str]:
        out = []
        for name in ("instances", "keys", "groups", "addresses", "tags", "images"):
            mine, theirs = set(getattr(self, name)), set(getattr(other, name))
            if mine != theirs:
                out.append(f"{name}: gone {sorted(mine - theirs)[:3]}, new {sorted(theirs - mine)[:3]}")
        return out


@dataclass
class Pool:
    """Identifiers worth naming in requests: what the cloud has now, and some it never had."""

    instances: list[str] = field(default_factory=lambda: ["i-12345678"])
    images: list[str] = field(default_factory=lambda: ["emi-12345678"])
    groups: list[str] = field(default_factory=lambda: ["default", "fuzz"])
    group_ids: list[str] = field(default_factory=lambda: ["sg-12345678"])
    keys: list[str] = field(default_factory=lambda: ["fuzzkey"])
    ips: list[str] = field(default_factory=lambda: ["192.0.2.1"])
    live: list[str] = field(default_factory=list)

    def refresh(self, snap: Snapshot, all_instances: Sequence[str] = ()) -> None:
        self.instances = [*(all_instances or snap.instances), "i-12345678"]
        self.live = list(snap.instances)
        self.images = [i[0] for i in snap.images] + ["emi-12345678", "eki-12345678"]
        self.groups = sorted({g[2] for g in snap.groups} | {"fuzz"})
        self.group_ids = [g[1] for g in snap.groups] + ["sg-12345678"]
        self.keys = [k[0] for k in snap.keys] + ["fuzzkey"]
        self.ips = [*snap.addresses, "192.0.2.1"]


# --- parameters from the model ------------------------------------------------------------------------

def _string(name: str, shape: Shape, pool: Pool, choose: Choose) -> str:
    if shape.enum and shape.name != "InstanceType":
        return str(choose.pick(shape.enum))
    n = name.lower()
    candidates: Sequence[str]
    if "instanceid" in n:
        candidates = pool.instances
    elif n in ("imageid", "kernelid", "ramdiskid") or n == "imageids":
        candidates = pool.images
    elif "groupid" in n:
        candidates = pool.group_ids
    elif "groupname" in n or "securitygroup" in n:
        candidates = pool.groups
    elif "keyname" in n:
        candidates = pool.keys
    elif "publicip" in n:
        candidates = pool.ips
    elif "resource" in n:
        candidates = [*pool.instances, *pool.images, *pool.group_ids]
    elif "cidr" in n:
        candidates = ("0.0.0.0/0", "10.0.0.0/8", "300.1.1.1/8", "::/0")
    elif "protocol" in n:
        candidates = ("tcp", "udp", "icmp", "-1", "47")
    elif "instancetype" in n:
        candidates = ("m1.small", "t1.micro", "c1.medium", "m9.huge")
    elif "location" in n:
        candidates = ("fuzz/app.manifest.xml", "fuzz/vmlinuz-6.1.manifest.xml", "")
    elif "zone" in n:
        candidates = ("cluster01", "verbose", "nowhere")
    elif n == "name":
        candidates = (*FILTERS, "fuzz-image", "fuzz-image-2")
    elif n == "owners" or n == "userid" or n == "executableusers":
        candidates = ("self", "all", "amazon", "000000000000")
    else:
        candidates = WORDS
    # by index, not choose.pick: the pool changes between requests, the shape of the choices must not
    return candidates[choose.number(0, 255) % len(candidates)]


def _fill(name: str, shape: Shape, pool: Pool, choose: Choose, depth: int) -> Any:
    kind = shape.type_name
    if kind == "structure":
        members = shape.members
        chosen = list(shape.required_members)
        optional = [m for m in members if m not in chosen]
        for _ in range(choose.number(0, 3 if depth == 0 else 2) if optional and depth < 3 else 0):
            member = choose.pick(optional)
            if member not in chosen:
                chosen.append(member)
        return {m: _fill(m, members[m], pool, choose, depth + 1) for m in chosen}
    if kind == "list":
        return [_fill(name, shape.member, pool, choose, depth + 1) for _ in range(choose.number(1, 2))]
    if kind == "map":
        return {_string(name, shape.key, pool, choose): _fill(name, shape.value, pool, choose, depth + 1)}
    if kind in ("integer", "long"):
        if choose.number(0, 9) == 0:  # the extremes a 32-bit field holds, which the parser lets through
            return choose.pick((0, -1, 2**31 - 1, -(2**31), 65536))
        if "count" in name.lower():
            return choose.number(1, 3)
        if "port" in name.lower():
            return choose.pick((-1, 0, 22, 80, 65535))
        return choose.number(5, 50) if name == "MaxResults" else choose.number(0, 10)
    if kind == "boolean":
        return choose.pick((True, False)) if name != "DryRun" else False
    if kind in ("double", "float"):
        return choose.pick((0.0, 1.5))
    if kind == "timestamp":
        return datetime(2030, 1, 1, tzinfo=UTC)
    if kind == "blob":
        return choose.pick((_KEY, b"#!/bin/sh\necho hi\n", b"ssh-foo AAAA", b"\x00\xff"))
    return _string(name, shape, pool, choose)


def valid_params(operation: OperationModel, pool: Pool, choose: Choose) -> Pairs:
    """Parameters for ``operation`` as botocore's EC2 serializer writes them, values drawn from the pool."""
    shape = operation.input_shape
    params = _fill("", shape, pool, choose, 0) if shape is not None else {}
    body = _SERIALIZER.serialize_to_request(params, operation)["body"]
    return [(str(k), str(v)) for k, v in body.items() if k not in ("Action", "Version")]


# --- mutations ----------------------------------------------------------------------------------------

def _some(pairs: Pairs, choose: Choose) -> int:
    return choose.number(0, len(pairs) - 1)


def _set_value(values: Sequence[str]) -> Callable[[Pairs, Choose], Pairs]:
    def mutate(pairs: Pairs, choose: Choose) -> Pairs:
        if not pairs:
            return [*pairs, ("KeyName", choose.pick(values))]
        i = _some(pairs, choose)
        return [*pairs[:i], (pairs[i][0], choose.pick(values)), *pairs[i + 1:]]
    return mutate


def _huge(pairs: Pairs, choose: Choose) -> Pairs:
    return _set_value(("A" * 5000, "A" * 70_000, "\x01" * 3000, "<" * 20_000))(pairs, choose)


def _position(values: Sequence[str]) -> Callable[[Pairs, Choose], Pairs]:
    def mutate(pairs: Pairs, choose: Choose) -> Pairs:
        listed = [i for i, (k, _) in enumerate(pairs) if any(p.isdigit() for p in k.split("."))]
        if not listed:
            return [*pairs, (f"InstanceId.{choose.pick(values)}", "i-12345678")]
        i = choose.pick(listed)
        parts = pairs[i][0].split(".")
        at = choose.pick([j for j, p in enumerate(parts) if p.isdigit()])
        parts[at] = choose.pick(values)
        return [*pairs[:i], (".".join(parts), pairs[i][1]), *pairs[i + 1:]]
    return mutate


def _unknown(pairs: Pairs, choose: Choose) -> Pairs:
    return [*pairs, (choose.pick(UNKNOWN), choose.pick(("x", "1", "true", "")))]


def _duplicate(pairs: Pairs, choose: Choose) -> Pairs:
    if not pairs:
        return [("DryRun", "true"), ("DryRun", "false")]
    key, value = pairs[_some(pairs, choose)]
    return [*pairs, (key, choose.pick((value, "other", "")))]


def _empty_segment(pairs: Pairs, choose: Choose) -> Pairs:
    if not pairs or choose.number(0, 3) == 0:
        return [*pairs, (choose.pick(("GroupId.", "ResourceId.1.", "KeyName..", ".", "Filter.1..Name")), "x")]
    i = _some(pairs, choose)
    key = pairs[i][0]
    forms = (key + ".", "." + key, key.replace(".", "..", 1) if "." in key else key + "..", key + ".1.", "..")
    return [*pairs[:i], (choose.pick(forms), pairs[i][1]), *pairs[i + 1:]]


def _drop(pairs: Pairs, choose: Choose) -> Pairs:
    if not pairs:
        return pairs
    i = _some(pairs, choose)
    return pairs[:i] + pairs[i + 1:]


def _dry_run(pairs: Pairs, choose: Choose) -> Pairs:
    return [*pairs, ("DryRun", choose.pick(("true", "True", "1", "yes", "false")))]


def _name_control(pairs: Pairs, choose: Choose) -> Pairs:
    if not pairs:
        return [("\x01", "x")]
    i = _some(pairs, choose)
    return [*pairs[:i], (pairs[i][0] + choose.pick(("\x01", "\x19", "\ufffe", " ", "\x00")), pairs[i][1]),
            *pairs[i + 1:]]


def _many(pairs: Pairs, choose: Choose) -> Pairs:
    return [*pairs, *((f"InstanceId.{i}", "i-12345678") for i in range(1, choose.pick((1001, 4001)) + 1))]


MUTATIONS: dict[str, Callable[[Pairs, Choose], Pairs]] = {
    "wrong-type": _set_value(NUMBERS),
    "hostile-value": _set_value(HOSTILE),
    "huge-value": _huge,
    "bad-position": _position(BAD_POSITIONS),
    "unknown-parameter": _unknown,
    "duplicate-parameter": _duplicate,
    "empty-segment": _empty_segment,
    "missing-parameter": _drop,
    "dry-run": _dry_run,
    "control-in-name": _name_control,
    "too-many": _many,
}
# Mutations of the Action and Version parameters themselves.
TOP_MUTATIONS = ("action", "version")
# What leaves a request likely to succeed: such a request gets a state comparison of its own.
HARMLESS = frozenset({"valid", "duplicate-parameter", "missing-parameter", "dry-run", "version", "path", "get",
                      "content-type", "wrong-type", "hostile-value", "huge-value"})


# --- requests -----------------------------------------------------------------------------------------

def encode(pairs: Pairs) -> str:
    # surrogatepass: a lone surrogate becomes bytes that are not UTF-8, as a broken client would send
    return "&".join(f"{quote(k.encode('utf-8', 'surrogatepass'), safe='')}="
                    f"{quote(v.encode('utf-8', 'surrogatepass'), safe='')}" for k, v in pairs)


@dataclass
class Request:
    """One request as it goes on the wire, before it is signed."""

    kind: str  # "valid", a mutation's name, or an HTTP-level malformation's
    action: str
    method: str = "POST"
    path: str = "/"
    query: str = ""
    body: bytes = b""
    content_type: str | None = FORM
    signing: str = "v4"  # "v4", "unsigned", "bad-signature", "stale", "unsigned-payload"

    @property
    def may_change_state(self) -> bool:
        return not (self.action.startswith("Describe") or self.action == "GetConsoleOutput")

    @property
    def risky(self) -> bool:
        """Likely to succeed and to change something."""
        return self.may_change_state and all(kind in HARMLESS for kind in self.kind.split("+"))

    def show(self, limit: int = 400) -> str:
        """The request for a report: enough to replay it by hand."""
        body = self.body if len(self.body) <= limit else self.body[:limit] + b"...(%d bytes)" % len(self.body)
        query = self.query if len(self.query) <= limit else self.query[:limit] + "..."
        return (f"[{self.kind}] {self.method} {self.path}{'?' + query if query else ''} "
                f"content-type={self.content_type!r} signing={self.signing} body={body!r}")


def generate(choose: Choose, pool: Pool) -> Request:
    """One request: a valid one now and then, mostly mutated ones, some broken on the wire."""
    action = choose.pick(OPERATIONS)
    operation = ec2_model().operation_model(action)
    pairs = valid_params(operation, pool, choose)
    # Keep the cloud from filling up (the administrator has no address limit; the pool has), with
    # the same choices made either way: hypothesis wants them independent of the cloud's state.
    if action == "RunInstances" and len(pool.live) > 40:
        action, pairs = "TerminateInstances", [(f"InstanceId.{n}", i) for n, i in enumerate(pool.live[:10], 1)]
    elif action == "AllocateAddress" and len(pool.ips) > 20:
        action, pairs = "ReleaseAddress", [("PublicIp", pool.ips[0])]
    top = [("Action", action), ("Version", VERSION)]
    roll = choose.number(0, 99)
    if roll < 15:
        return Request("valid", action, body=encode(top + pairs).encode())
    if roll < 85:
        kinds = []
        for _ in range(choose.number(1, 2)):
            kind = choose.pick((*MUTATIONS, *TOP_MUTATIONS))
            kinds.append(kind)
            if kind == "action":
                top = [("Action", choose.pick(ACTION_VALUES)), top[1]]
            elif kind == "version":
                top = [top[0], ("Version", choose.pick(VERSION_VALUES))]
            else:
                pairs = MUTATIONS[kind](pairs, choose)
        return Request("+".join(kinds), action, body=encode(top + pairs).encode())
    return malformed(choose, action, encode(top + pairs))


def malformed(choose: Choose, action: str, encoded: str) -> Request:
    kind = choose.pick(("bad-escape", "invalid-utf8", "raw-bytes", "content-type", "method", "get", "huge-body",
                        "separators", "path", "unsigned", "bad-signature", "stale", "unsigned-payload", "empty"))
    req = Request(kind, action, body=encoded.encode(), path=choose.pick(PATHS))
    if kind == "bad-escape":
        req.body += choose.pick((b"&Foo=%zz", b"&%=1", b"&Bar=%", b"&KeyName=%4", b"&%%%=%%%"))
    elif kind == "invalid-utf8":
        req.body += choose.pick((b"&KeyName=%ff%fe", b"&KeyName=\xff", b"&K\xc3=1", b"&KeyName=%ed%a0%80"))
    elif kind == "raw-bytes":
        req.body = bytes(choose.number(0, 255) for _ in range(choose.number(1, 64)))
    elif kind == "content-type":
        req.content_type = choose.pick(("application/json", "text/plain", "multipart/form-data; boundary=x", None,
                                        "application/x-www-form-urlencoded; charset=latin-1",
                                        "APPLICATION/X-WWW-FORM-URLENCODED", "application/x-www-form-urlencodedx"))
    elif kind == "method":
        req.method = choose.pick(("PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"))
    elif kind == "get":
        req.method, req.query, req.body, req.content_type = "GET", encoded, b"", None
    elif kind == "huge-body":
        req.body = b"Action=DescribeRegions&Version=2016-11-15&Pad=" + b"x" * (MAX_BODY + 1)
    elif kind == "separators":
        req.body = choose.pick((b"&&&", b"===", b"Action", b"Action=&=&", b";".join(req.body.split(b"&"))))
    elif kind == "empty":
        req.body = b""
    elif kind in ("unsigned", "bad-signature", "stale", "unsigned-payload"):
        req.signing = kind
    return req


# --- signing and sending ------------------------------------------------------------------------------

def _canonical_query(query: str) -> str:
    # what the server computes from the raw query string (AWS's canonical form, sorted)
    pairs = []
    for part in query.split("&") if query else ():
        key, _, value = part.partition("=")
        pairs.append((quote(unquote_plus(key), safe="-_.~"), quote(unquote_plus(value), safe="-_.~")))
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


@dataclass
class Signer:
    access: str
    secret: str
    host: str
    region: str = "eucalyptus"

    def headers(self, req: Request, now: float | None = None) -> dict[str, str]:
        headers = {"Host": self.host}
        if req.content_type is not None:
            headers["Content-Type"] = req.content_type
        if req.signing == "unsigned":
            return headers
        when = time.gmtime((time.time() if now is None else now) - (3600 if req.signing == "stale" else 0))
        amz_date = time.strftime("%Y%m%dT%H%M%SZ", when)
        headers["X-Amz-Date"] = amz_date
        payload = hashlib.sha256(req.body).hexdigest()
        if req.signing == "unsigned-payload":
            headers["X-Amz-Content-SHA256"] = payload = "UNSIGNED-PAYLOAD"
        signed = sorted(k.lower() for k in headers)
        lower = {k.lower(): v for k, v in headers.items()}
        canonical = "\n".join([req.method, quote(req.path, safe="/~"), _canonical_query(req.query),
                               "".join(f"{k}:{' '.join(lower[k].split())}\n" for k in signed), ";".join(signed),
                               payload])
        scope = f"{amz_date[:8]}/{self.region}/ec2/aws4_request"
        to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        key = ("AWS4" + self.secret).encode()
        for part in (amz_date[:8], self.region, "ec2", "aws4_request"):
            key = hmac.digest(key, part.encode(), "sha256")
        signature = hmac.digest(key, to_sign.encode(), "sha256").hex()
        if req.signing == "bad-signature":
            signature = signature[:-1] + ("0" if signature[-1] != "0" else "1")
        headers["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={self.access}/{scope}, "
                                    f"SignedHeaders={';'.join(signed)}, Signature={signature}")
        return headers


class Client:
    """Signed requests over one kept-alive connection, reopened whenever the server closes it."""

    def __init__(self, host: str, port: int, access: str, secret: str) -> None:
        self.host, self.port = host, port
        self.signer = Signer(access, secret, f"{host}:{port}")
        self.conn = http.client.HTTPConnection(host, port, timeout=60)

    def send(self, req: Request) -> tuple[int, bytes]:
        target = req.path + ("?" + req.query if req.query else "")
        for attempt in range(2):
            try:
                self.conn.request(req.method, target, body=req.body, headers=self.signer.headers(req))
                response = self.conn.getresponse()
                data = response.read()
                if response.will_close:
                    self.reopen()
                return response.status, data
            except (ConnectionError, http.client.HTTPException, TimeoutError):
                # a body over the limit is answered (413) before it is read whole, and the
                # connection then closed under the rest of it; anything else is tried once more
                self.reopen()
                if attempt or req.kind == "huge-body":
                    return 0, b""
        return 0, b""

    def call(self, action: str, **params: str) -> ET.Element:
        req = Request("admin", action, body=encode([("Action", action), ("Version", VERSION),
                                                     *params.items()]).encode())
        status, data = self.send(req)
        if status != 200:
            raise RuntimeError(f"{action}: {status} {data[:300]!r}")
        return ET.fromstring(data)

    def reopen(self) -> None:
        self.conn.close()
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)

    def close(self) -> None:
        self.conn.close()


def snapshot(admin: Client) -> tuple[Snapshot, list[str]]:
    """The administrator's view of everything, and every instance id it shows."""
    def texts(element: ET.Element, *names: str) -> tuple[str, ...]:
        return tuple(element.findtext(f"{{*}}{n}") or "" for n in names)

    instances = admin.call("DescribeInstances").iterfind(".//{*}instancesSet/{*}item")
    states = {i.findtext("{*}instanceId") or "": i.findtext("{*}instanceState/{*}name") or "" for i in instances}
    live = sorted(i for i, s in states.items() if s in ("pending", "running"))
    keys = sorted(texts(k, "keyName", "keyFingerprint") for k in admin.call("DescribeKeyPairs").iterfind(
        "{*}keySet/{*}item"))
    groups = sorted((*texts(g, "ownerId", "groupId", "groupName", "groupDescription"), _rules(g))
                    for g in admin.call("DescribeSecurityGroups").iterfind("{*}securityGroupInfo/{*}item"))
    addresses = sorted(a.findtext("{*}publicIp") or "" for a in admin.call("DescribeAddresses").iterfind(
        "{*}addressesSet/{*}item"))
    tags = sorted(t for t in (texts(t, "resourceId", "key", "value") for t in admin.call("DescribeTags").iterfind(
        "{*}tagSet/{*}item")) if not t[0].startswith("i-") or t[0] in live)
    images = sorted(texts(i, "imageId", "name", "description", "isPublic", "imageOwnerId")
                    for i in admin.call("DescribeImages").iterfind("{*}imagesSet/{*}item"))
    snap = Snapshot(tuple(live), tuple(keys), tuple(groups), tuple(addresses), tuple(tags), tuple(images))
    return snap, sorted(states)


def _rules(group: ET.Element) -> str:
    rules = group.find("{*}ipPermissions")
    return "" if rules is None else ET.tostring(rules).decode()


# --- judging answers ----------------------------------------------------------------------------------

def verdict(req: Request, status: int, body: bytes) -> tuple[str, str | None]:
    """(what the answer was: "OK", an error code, or a status; a fault, if the answer is one)."""
    if status == 0:
        return "connection closed", None if req.kind == "huge-body" else "the server closed the connection"
    if req.method == "HEAD":
        return f"HEAD {status}", None if status < 500 else f"HTTP {status} to HEAD"
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        return f"HTTP {status}", f"HTTP {status} with a body that is not XML ({exc}): {body[:200]!r}"
    if status == 200:
        if not root.tag.endswith("Response") or root.find("{*}requestId") is None:
            return "OK", f"a 200 that is not an EC2 response: {body[:200]!r}"
        return "OK", None
    code = root.findtext("Errors/Error/Code")
    if root.tag != "Response" or not code or root.findtext("Errors/Error/Message") is None \
            or not root.findtext("RequestID"):
        return f"HTTP {status}", f"HTTP {status} without an EC2 error document: {body[:200]!r}"
    if status >= 500 and code not in CAPACITY:
        return code, f"HTTP {status} {code}: {root.findtext('Errors/Error/Message')}"
    return code, None


@dataclass
class Report:
    sent: int = 0
    seconds: float = 0.0
    answers: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)
    faults: list[str] = field(default_factory=list)
    server_errors: int = 0
    state_changes: list[str] = field(default_factory=list)
    checked_windows: int = 0
    unchecked_windows: int = 0

    def lines(self) -> list[str]:
        top = ", ".join(f"{code} {n}" for code, n in self.answers.most_common())
        out = [f"requests sent: {self.sent} in {self.seconds:.0f} s ({self.sent / max(self.seconds, 1e-9):.0f}/s)",
               f"answers by code: {top}",
               f"5xx faults: {self.server_errors} (EC2's capacity 503s are answers, not faults: "
               f"{sum(self.answers[c] for c in CAPACITY)})",
               f"other faults (malformed answers, dropped connections): {len(self.faults) - self.server_errors}",
               f"state changed by failing requests: {len(self.state_changes)} "
               f"({self.checked_windows} comparisons around failing requests, {self.unchecked_windows} "
               "skipped because a request among them succeeded)"]
        out += [f"  FAULT {f}" for f in self.faults[:20]]
        out += [f"  STATE {s}" for s in self.state_changes[:20]]
        return out


class Campaign:
    """Send requests, judge each answer, compare the state around the failing ones."""

    def __init__(self, fuzzers: Sequence[Client], admin: Client, pool: Pool | None = None) -> None:
        self.fuzzers, self.admin = fuzzers, admin
        self.pool = pool or Pool()
        self.report = Report()
        self.window: list[Request] = []
        self.dirty = False
        self.since = 0
        self.snap = self.settle()

    def settle(self) -> Snapshot:
        snap, every = snapshot(self.admin)
        if self.window:
            if self.dirty:
                self.report.unchecked_windows += 1
            else:
                self.report.checked_windows += 1
                changed = self.snap.differences(snap)
                if changed:
                    self.report.state_changes.append(
                        f"{'; '.join(changed)} after: " + " | ".join(r.show(200) for r in self.window))
        self.snap, self.window, self.dirty, self.since = snap, [], False, 0
        self.pool.refresh(snap, every)
        return snap

    def run(self, req: Request, who: int = 0, settle_every: int = WINDOW) -> str:
        """Send one request as ``fuzzers[who]``; returns its answer's code. Faults and state
        changes go to the report."""
        risky = req.risky
        if risky and self.since:
            self.settle()
        started = time.perf_counter()
        status, body = self.fuzzers[who].send(req)
        self.report.seconds += time.perf_counter() - started
        self.report.sent += 1
        code, fault = verdict(req, status, body)
        self.report.answers[code] += 1
        self.report.kinds[req.kind.split("+")[0]] += 1
        if fault is not None:
            self.report.faults.append(f"{fault} <- {req.show()}")
            if status >= 500:
                self.report.server_errors += 1
        if code == "OK":
            self.dirty = self.dirty or (req.may_change_state and req.method in ("GET", "POST"))
        else:
            self.window.append(req)  # the failing requests since the last comparison
        self.since += 1
        if risky or self.since >= settle_every:
            self.settle()
        return code

    def alive(self) -> bool:
        status, _ = self.admin.send(Request("alive", "DescribeRegions", body=b"Action=DescribeRegions&Version="
                                            + VERSION.encode()))
        return status == 200


# --- the bench row ------------------------------------------------------------------------------------

def measure(requests: int, seed: int = 2026) -> Report:
    """A campaign of ``requests`` against ``euca up`` in a subprocess."""
    from bench.api import euca_server

    with euca_server() as target:
        fuzzer = Client(target.host, target.port, target.access, target.secret)
        admin = Client(target.host, target.port, target.access, target.secret)
        campaign = Campaign([fuzzer], admin)
        choose = RandomChoose(random.Random(seed))
        wall = time.perf_counter()
        for i in range(requests):
            campaign.run(generate(choose, campaign.pool))
            if (i + 1) % 5000 == 0:
                print(f"  {i + 1} requests, {len(campaign.report.faults)} faults, "
                      f"{time.perf_counter() - wall:.0f} s", file=sys.stderr, flush=True)
        campaign.settle()
        if not campaign.alive():
            campaign.report.faults.append("the server stopped answering")
        campaign.report.seconds = time.perf_counter() - wall
        fuzzer.close()
        admin.close()
        return campaign.report


def format_report(report: Report) -> str:
    return "\n".join(report.lines())

