"""IAM policies, validated and compiled once, and the decision Eucalyptus's policy engine made.

A policy document is JSON: ``{"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
"Action": "ec2:Describe*", "Resource": "*", "Condition": {...}}]}``. ``compile_policy`` checks it
(``PolicyError`` says what is wrong, for IAM's ``MalformedPolicyDocument``) and turns every
``Action``/``Resource`` pattern into a matcher and every condition into a test, so a request never
re-reads JSON. Eucalyptus's quotas are statements too, with ``"Effect": "Limit"`` and a
``NumericLessThanEquals`` condition on a quota key (``ec2:quota-vminstancenumber``).

The decision (Eucalyptus's ``PolicyEngineImpl``, AWS's published evaluation logic):

1. the system administrator (the ``admin`` user of the ``admin`` account) is always allowed;
2. an explicit ``Deny`` in a policy on the requester's *account* (put there by the system
   administrator) denies;
3. an account's ``admin`` user may do anything else in its account;
4. otherwise the user's own policies and its groups' decide: an explicit ``Deny`` wins, then an
   ``Allow``; with neither, the request is denied.

For everyone who calls it (the EC2 and IAM endpoints here, Walrus's S3 endpoint)::

    authorize(principal, "s3:PutObject", "arn:aws:s3:::bucket/key", {SOURCE_IP: "10.0.0.1"}) -> bool
    limit(principal, "s3:CreateBucket", "s3:quota-bucketnumber") -> int | None

The S3 endpoint asks with the ``Caller`` that ``cloud.accounts.caller(access_key)`` gave it:
``principal`` is what ``cloud.accounts.principal(caller)`` hands out (compiled once per user, rebuilt
when a policy changes). Context keys are lower case (``aws:sourceip``, ``aws:currenttime`` as
epoch seconds, ``ec2:instancetype``, ``s3:prefix``, ...); ``aws:currenttime`` defaults to now.
"""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson

# Walrus's quota: ``limit(principal, "s3:CreateBucket", BUCKET_QUOTA)`` bounds an account's buckets
BUCKET_QUOTA = "s3:quota-bucketnumber"
SOURCE_IP = "aws:sourceip"
CURRENT_TIME = "aws:currenttime"
INSTANCE_TYPE = "ec2:instancetype"
Context = Mapping[str, Any]
EMPTY: Context = {}

VERSIONS = ("2012-10-17", "2008-10-17")
MAX_DOCUMENT = 131_072  # characters; IAM's own per-entity limits are checked where documents are attached
_ACTION = re.compile(r"^(\*|[A-Za-z0-9-]+:[A-Za-z0-9*?_-]*)$")
_QUOTA = re.compile(r"^[a-z0-9-]+:quota-[a-z0-9]+$")
_CACHE_ACTIONS = 4096  # distinct actions a principal remembers its candidate statements for


class PolicyError(ValueError):
    """A document that is not a valid policy; the message says where."""


# --- patterns ---------------------------------------------------------------------------------------

def _regex(pattern: str) -> str:
    return "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)


class Matcher:
    """Which strings a list of IAM patterns (``*`` and ``?`` wildcards) matches: exact names in a
    set, the wildcard patterns in one compiled alternation."""

    __slots__ = ("everything", "exact", "regex")

    def __init__(self, patterns: Iterable[str], fold_case: bool = False) -> None:
        patterns = [p.lower() for p in patterns] if fold_case else list(patterns)
        self.everything = "*" in patterns
        self.exact = frozenset(p for p in patterns if "*" not in p and "?" not in p)
        wild = [p for p in patterns if p not in self.exact]
        self.regex = re.compile("|".join(f"(?:{_regex(p)})" for p in wild), re.DOTALL) if wild else None

    @classmethod
    def union(cls, matchers: Sequence[Matcher]) -> Matcher:
        """What any of ``matchers`` matches, as one matcher."""
        merged = cls(())
        merged.everything = any(m.everything for m in matchers)
        merged.exact = frozenset().union(*(m.exact for m in matchers))
        wild = [m.regex.pattern for m in matchers if m.regex is not None]
        merged.regex = re.compile("|".join(wild), re.DOTALL) if wild else None
        return merged

    def __call__(self, text: str) -> bool:
        if self.everything or text in self.exact:
            return True
        return self.regex is not None and self.regex.fullmatch(text) is not None


# --- conditions -------------------------------------------------------------------------------------

# A compiled test of one request: (resource, context) -> whether it holds. Conditions ignore the resource;
# taking it anyway lets a statement with one condition on every resource be that condition, one call.
Test = Callable[[str, Context], bool]


def _epoch(value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = str(value)
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise PolicyError(f"{text!r} is not a date (ISO 8601 or epoch seconds)") from None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise PolicyError(f"{value!r} is not a number") from None


@lru_cache(maxsize=4096)
def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


@lru_cache(maxsize=4096)
def _address_bits(text: str) -> tuple[int, int]:
    """(version, the address as an integer); (0, 0) for text that is not an address."""
    address = _address(text)
    return (address.version, int(address)) if address is not None else (0, 0)


_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "Equals": float.__eq__, "NotEquals": float.__ne__, "LessThan": float.__lt__,
    "LessThanEquals": float.__le__, "GreaterThan": float.__gt__, "GreaterThanEquals": float.__ge__}


def _one_of(op: str, values: list[str]) -> Callable[[Any], bool]:
    """Whether a present context value matches any of ``values`` under ``op`` (negation applied later)."""
    if op in ("StringEquals", "StringNotEquals"):
        exact = frozenset(values)
        return lambda v: str(v) in exact
    if op in ("StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase"):
        folded = frozenset(x.lower() for x in values)
        return lambda v: str(v).lower() in folded
    if op in ("StringLike", "StringNotLike", "ArnLike", "ArnNotLike", "ArnEquals", "ArnNotEquals"):
        like = Matcher(values)
        return lambda v: like(str(v))
    if op in ("IpAddress", "NotIpAddress"):
        try:
            networks: list[_Network] = [ipaddress.ip_network(x, strict=False) for x in values]
        except ValueError as exc:
            raise PolicyError(f"{op}: {exc}") from None

        # (version, network bits, mask) compared as integers: ipaddress's own ``in`` is ten times slower
        masks = tuple((n.version, int(n.network_address), int(n.netmask)) for n in networks)

        def within(v: Any) -> bool:
            version, bits = _address_bits(v if type(v) is str else str(v))
            for net_version, net, mask in masks:  # noqa: SIM110 -- no generator frame on the hot path
                if version == net_version and bits & mask == net:
                    return True
            return False
        return within
    if op == "Bool":
        truth = frozenset(x.lower() for x in values)
        if not truth <= {"true", "false"}:
            raise PolicyError("Bool: values are true or false")
        return lambda v: str(v).lower() in truth
    for family, convert in (("Numeric", _number), ("Date", _epoch)):
        if op.startswith(family) and op[len(family):] in _COMPARE:
            # NotEquals matches as Equals; the negation is applied with the other negated operators
            compare = _COMPARE[op[len(family):].replace("NotEquals", "Equals")]
            bounds = [convert(x) for x in values]
            return lambda v: any(compare(convert(v), b) for b in bounds)
    raise PolicyError(f"unknown condition operator {op!r}")


_NEGATED = frozenset({"StringNotEquals", "StringNotEqualsIgnoreCase", "StringNotLike", "ArnNotEquals", "ArnNotLike",
                      "NotIpAddress", "NumericNotEquals", "DateNotEquals"})


def _condition(op: str, key: str, values: list[str]) -> Test:
    key = key.lower()
    if op == "Null":
        if len(values) != 1 or values[0].lower() not in ("true", "false"):
            raise PolicyError("Null: the value is true or false")
        absent = values[0].lower() == "true"
        return lambda _, ctx: (ctx.get(key) is None) == absent
    if_exists = op.endswith("IfExists")
    base = op[:-len("IfExists")] if if_exists else op
    negated = base in _NEGATED
    matches = _one_of(base, values)
    missing = if_exists or negated  # AWS: a negated operator is true for a key the request lacks
    is_time = key == CURRENT_TIME

    def test(_: str, ctx: Context) -> bool:
        value = ctx.get(key)
        if value is None:
            if not is_time:
                return missing
            value = time.time()
        try:
            hit = matches(value)
        except PolicyError:
            return False  # a context value of the wrong kind matches nothing
        return not hit if negated else hit
    return test


# --- statements and documents -----------------------------------------------------------------------

def _strings(statement: dict[str, Any], field: str) -> list[str]:
    value = statement[field]
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(x, str) for x in items):
        raise PolicyError(f"{field} must be a string or a non-empty list of strings")
    return items


class Statement:
    """One compiled statement: does it cover this action, this resource, this request?"""

    __slots__ = ("action", "check", "conditions", "effect", "limits", "not_action", "not_resource", "resource")

    def __init__(self, raw: Any) -> None:
        if not isinstance(raw, dict):
            raise PolicyError("each Statement must be an object")
        unknown = set(raw) - {"Sid", "Effect", "Action", "NotAction", "Resource", "NotResource", "Condition",
                              "Principal", "NotPrincipal"}
        if unknown:
            raise PolicyError(f"unknown statement field {sorted(unknown)[0]!r}")
        if "Principal" in raw or "NotPrincipal" in raw:
            raise PolicyError("Policy document should not specify a principal.")
        if not isinstance(raw.get("Sid", ""), str):
            raise PolicyError("Sid must be a string")
        self.effect = raw.get("Effect")
        if self.effect not in ("Allow", "Deny", "Limit"):
            raise PolicyError("Effect must be Allow, Deny or Limit")
        if ("Action" in raw) == ("NotAction" in raw):
            raise PolicyError("a statement has Action or NotAction (one of them)")
        self.not_action = "NotAction" in raw
        actions = _strings(raw, "NotAction" if self.not_action else "Action")
        for action in actions:
            if not _ACTION.match(action):
                raise PolicyError(f"Action {action!r} is not service:action (or *)")
        self.action = Matcher(actions, fold_case=True)
        if "Resource" in raw and "NotResource" in raw:
            raise PolicyError("a statement has Resource or NotResource, not both")
        self.not_resource = "NotResource" in raw
        if not self.not_resource and "Resource" not in raw and self.effect != "Limit":
            raise PolicyError("a statement needs a Resource or NotResource")
        self.resource = Matcher(_strings(raw, "NotResource" if self.not_resource else "Resource")
                                if "Resource" in raw or self.not_resource else ["*"])
        conditions = raw.get("Condition", {})
        if not isinstance(conditions, dict):
            raise PolicyError("Condition must be an object")
        tests: list[Test] = []
        self.limits: dict[str, int] = {}
        for op, pairs in conditions.items():
            if not isinstance(pairs, dict) or not pairs:
                raise PolicyError(f"Condition {op!r} must map keys to values")
            for key, value in pairs.items():
                values = [value] if isinstance(value, (str, int, float, bool)) else value
                if not isinstance(values, list) or not values or \
                        not all(isinstance(v, (str, int, float, bool)) for v in values):
                    raise PolicyError(f"Condition {op} {key!r}: a value or a list of values")
                texts = [str(v).lower() if isinstance(v, bool) else str(v) for v in values]
                if self.effect == "Limit" and _QUOTA.match(key.lower()):
                    self._limit(op, key.lower(), texts)
                else:
                    tests.append(_condition(op, key, texts))
        if self.effect == "Limit" and not self.limits:
            raise PolicyError("a Limit statement needs a NumericLessThanEquals condition on a quota key")
        self.conditions = tuple(tests)
        self.check = self._checker()

    def _checker(self) -> Test:
        resource, negated, conditions = self.resource, self.not_resource, self.conditions
        if not negated and resource.everything:
            if len(conditions) == 1:
                return conditions[0]
            if not conditions:
                return lambda r, c: True

        def check(r: str, c: Context) -> bool:
            if resource(r) == negated:
                return False
            for test in conditions:  # noqa: SIM110 -- no generator frame on the hot path
                if not test(r, c):
                    return False
            return True
        return check

    def _limit(self, op: str, key: str, values: list[str]) -> None:
        if op not in ("NumericLessThanEquals", "NumericLessThan") or len(values) != 1 or \
                not values[0].isdigit():
            raise PolicyError(f"quota {key}: NumericLessThanEquals with one whole number")
        bound = int(values[0]) - (op == "NumericLessThan")
        self.limits[key] = min(bound, self.limits.get(key, bound))

    def covers(self, action: str) -> bool:
        """``action`` already lower case."""
        return self.action(action) != self.not_action

    @property
    def plain(self) -> bool:
        """Decided by the resource alone (no NotResource, no condition)."""
        return not self.not_resource and not self.conditions


class Policy:
    """A validated, compiled policy document; ``text`` is the document as given."""

    __slots__ = ("statements", "text")

    def __init__(self, text: str, statements: tuple[Statement, ...]) -> None:
        self.text, self.statements = text, statements


def compile_policy(text: str) -> Policy:
    """Check a policy document and compile it, or PolicyError saying what is wrong."""
    if len(text) > MAX_DOCUMENT:
        raise PolicyError(f"the document is longer than {MAX_DOCUMENT} characters")
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise PolicyError("Syntax errors in policy.") from None
    if not isinstance(doc, dict):
        raise PolicyError("a policy is a JSON object")
    unknown = set(doc) - {"Version", "Id", "Statement"}
    if unknown:
        raise PolicyError(f"unknown policy field {sorted(unknown)[0]!r}")
    if doc.get("Version", VERSIONS[0]) not in VERSIONS:
        raise PolicyError(f"Version must be one of {', '.join(VERSIONS)}")
    raw = doc.get("Statement")
    statements = [raw] if isinstance(raw, dict) else raw
    if not isinstance(statements, list) or not statements:
        raise PolicyError("a policy needs a Statement")
    return Policy(text, tuple(Statement(s) for s in statements))


# --- principals and the decision ---------------------------------------------------------------------

_Candidates = tuple[tuple[Test, ...], tuple[Test, ...], tuple[Test, ...]]


def _merged(statements: list[Statement]) -> tuple[Test, ...]:
    """The tests of statements of one effect, with every plain one's resource patterns in one matcher."""
    plain = [s.resource for s in statements if s.plain]
    tests = [s.check for s in statements if not s.plain]
    if plain:
        union = Matcher.union(plain)
        tests.insert(0, (lambda r, c: True) if union.everything else (lambda r, c: union(r)))
    return tuple(tests)


class Principal:
    """A requester with its policies compiled: the statements of its account (the system
    administrator's), and of the user and its groups. The statements that cover an action are
    sorted out the first time the action is asked for and remembered."""

    __slots__ = ("_candidates", "_limits", "account_admin", "account_id", "account_policies", "policies",
                 "system_admin")

    def __init__(self, account_id: str, policies: Sequence[Policy] = (), account_policies: Sequence[Policy] = (),
                 system_admin: bool = False, account_admin: bool = False) -> None:
        self.account_id = account_id
        self.policies = tuple(policies)
        self.account_policies = tuple(account_policies)
        self.system_admin = system_admin
        self.account_admin = account_admin
        self._candidates: dict[str, _Candidates] = {}
        self._limits: dict[tuple[str, str], int | None] = {}

    def candidates(self, action: str) -> _Candidates:
        found = self._candidates.get(action)
        if found is None:
            lowered = action.lower()
            account = [s for p in self.account_policies for s in p.statements
                       if s.effect == "Deny" and s.covers(lowered)]
            own = [s for p in self.policies for s in p.statements if s.covers(lowered)]
            found = (_merged(account), _merged([s for s in own if s.effect == "Deny"]),
                     _merged([s for s in own if s.effect == "Allow"]))
            if len(self._candidates) >= _CACHE_ACTIONS:
                self._candidates.clear()
            self._candidates[action] = found
        return found


def authorize(principal: Principal, action: str, resource: str, context: Context = EMPTY) -> bool:
    """May ``principal`` do ``action`` (``ec2:RunInstances``) on ``resource`` (an ARN, or ``*``)?"""
    if principal.system_admin:
        return True
    account_denies, denies, allows = principal.candidates(action)
    for test in account_denies:
        if test(resource, context):
            return False
    if principal.account_admin:
        return True
    for test in denies:
        if test(resource, context):
            return False
    for test in allows:  # noqa: SIM110 -- no generator frame on the hot path
        if test(resource, context):
            return True
    return False


def limit(principal: Principal, action: str, key: str) -> int | None:
    """The tightest quota on ``key`` (``ec2:quota-vminstancenumber``) that a ``Limit`` statement of
    the principal's account, groups or user puts on ``action``; None if none does. The system
    administrator has none; an account's admin user only its account's."""
    if principal.system_admin:
        return None
    cached = (action, key)
    if cached in principal._limits:
        return principal._limits[cached]
    lowered, key = action.lower(), key.lower()
    documents = principal.account_policies if principal.account_admin else \
        principal.account_policies + principal.policies
    bounds = [s.limits[key] for p in documents for s in p.statements
              if s.effect == "Limit" and key in s.limits and s.covers(lowered)]
    found = min(bounds) if bounds else None
    principal._limits[cached] = found
    return found


# --- the plain twin: the same decision read straight off the JSON, as the oracle and the baseline ------

def _like(pattern: str, text: str, fold: bool = False) -> bool:
    if fold:
        pattern, text = pattern.lower(), text.lower()
    return re.fullmatch(_regex(pattern), text, re.DOTALL) is not None


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _reference_condition(op: str, key: str, values: list[Any], context: Context) -> bool:
    if op == "Null":
        return (context.get(key.lower()) is None) == (str(values[0]).lower() == "true")
    if_exists = op.endswith("IfExists")
    base = op.removesuffix("IfExists")
    negated = base in _NEGATED
    value = context.get(key.lower())
    if value is None and key.lower() == CURRENT_TIME:
        value = time.time()
    if value is None:
        return if_exists or negated
    texts = [str(v).lower() if isinstance(v, bool) else str(v) for v in values]
    try:
        if base.startswith("String") and "IgnoreCase" in base:
            hit = any(str(value).lower() == t.lower() for t in texts)
        elif base in ("StringEquals", "StringNotEquals"):
            hit = str(value) in texts
        elif base.startswith(("StringLike", "StringNotLike", "Arn")):
            hit = any(_like(t, str(value)) for t in texts)
        elif base in ("IpAddress", "NotIpAddress"):
            address = _address(str(value))
            hit = address is not None and any(address in ipaddress.ip_network(t, strict=False) for t in texts)
        elif base == "Bool":
            hit = str(value).lower() in [t.lower() for t in texts]
        else:
            family = "Numeric" if base.startswith("Numeric") else "Date"
            convert = _number if family == "Numeric" else _epoch
            compare = _COMPARE[base[len(family):]]
            if base.endswith("NotEquals"):
                hit = any(convert(value) == convert(t) for t in texts)
            else:
                hit = any(compare(convert(value), convert(t)) for t in texts)
    except PolicyError:
        return False
    return not hit if negated else hit


def _reference_matches(statement: dict[str, Any], action: str, resource: str, context: Context) -> bool:
    if "Action" in statement:
        covered = any(_like(a, action, fold=True) for a in _as_list(statement["Action"]))
    else:
        covered = not any(_like(a, action, fold=True) for a in _as_list(statement["NotAction"]))
    if not covered:
        return False
    if "NotResource" in statement:
        if any(_like(r, resource) for r in _as_list(statement["NotResource"])):
            return False
    elif not any(_like(r, resource) for r in _as_list(statement.get("Resource", "*"))):
        return False
    for op, pairs in statement.get("Condition", {}).items():
        for key, values in pairs.items():
            if not _reference_condition(op, key, _as_list(values), context):
                return False
    return True


def reference_authorize(documents: Sequence[dict[str, Any]], account_documents: Sequence[dict[str, Any]],
                        action: str, resource: str, context: Context = EMPTY, system_admin: bool = False,
                        account_admin: bool = False) -> bool:
    """``authorize`` as a loop over parsed JSON documents, nothing compiled or remembered."""
    if system_admin:
        return True
    for doc in account_documents:
        for statement in _as_list(doc["Statement"]):
            if statement["Effect"] == "Deny" and _reference_matches(statement, action, resource, context):
                return False
    if account_admin:
        return True
    allowed = False
    for doc in documents:
        for statement in _as_list(doc["Statement"]):
            if statement["Effect"] in ("Allow", "Deny") and _reference_matches(statement, action, resource, context):
                if statement["Effect"] == "Deny":
                    return False
                allowed = True
    return allowed
