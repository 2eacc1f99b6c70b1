"""CORS: the preflight (OPTIONS) answered from the bucket's matching rule, and the rule's headers
on the actual request."""

from __future__ import annotations

import fnmatch
from typing import Any

from euca.api.s3.call import Call, Reply
from euca.core.s3errors import CORSForbidden, InvalidRequest, NoSuchBucket


def _matching(rules: list[dict[str, Any]], origin: str, method: str, headers: list[str]) -> dict[str, Any] | None:
    for rule in rules:
        if not any(fnmatch.fnmatchcase(origin, o) for o in rule.get("AllowedOrigins", [])):
            continue
        if method not in rule.get("AllowedMethods", []):
            continue
        allowed = [h.lower() for h in rule.get("AllowedHeaders", [])]
        if all(any(fnmatch.fnmatchcase(h, a) for a in allowed) for h in headers):
            return rule
    return None


def rule_headers(rule: dict[str, Any], origin: str, preflight: bool, asked_headers: str = "") -> dict[str, str]:
    wildcard = "*" in rule.get("AllowedOrigins", [])
    out = {"access-control-allow-origin": "*" if wildcard else origin,
           "access-control-allow-methods": ", ".join(rule["AllowedMethods"]), "vary": "Origin"}
    if not wildcard:
        out["access-control-allow-credentials"] = "true"
    if preflight:
        if asked_headers:
            out["access-control-allow-headers"] = asked_headers
        if "MaxAgeSeconds" in rule:
            out["access-control-max-age"] = str(rule["MaxAgeSeconds"])
    if rule.get("ExposeHeaders"):
        out["access-control-expose-headers"] = ", ".join(rule["ExposeHeaders"])
    return out


async def preflight(call: Call) -> Reply:
    origin = call.headers.get("origin")
    method = call.headers.get("access-control-request-method")
    if not origin or not method:
        raise InvalidRequest("Insufficient information. Origin request header needed.")
    bucket = call.walrus.catalog.bucket(call.bucket)
    if bucket is None:
        raise NoSuchBucket(BucketName=call.bucket)
    asked = call.headers.get("access-control-request-headers", "")
    wanted = [h.strip().lower() for h in asked.split(",") if h.strip()]
    rule = _matching(bucket.cors or [], origin, method, wanted)
    if rule is None:
        raise CORSForbidden(Method=method, ResourceType="BUCKET" if not call.key else "OBJECT")
    return Reply(200, rule_headers(rule, origin, True, asked))


def actual_headers(call: Call) -> dict[str, str]:
    """CORS headers for a request that carries an Origin, if the bucket has a matching rule."""
    origin = call.headers.get("origin")
    if not origin or not call.bucket:
        return {}
    bucket = call.walrus.catalog.bucket(call.bucket)
    if bucket is None or not bucket.cors:
        return {}
    rule = _matching(bucket.cors, origin, call.method, [])
    return rule_headers(rule, origin, False) if rule else {}
