"""How a cluster controller and its node controllers know each other: a key shared when the node is registered.

Every request carries ``X-Euca-Date`` (Unix seconds) and ``X-Euca-Signature``, the hex
HMAC-SHA256 under the node's key of ``METHOD\\nPATH\\nDATE\\nSHA256(body)``. A node refuses (403)
a request without them, with a wrong signature, or dated more than five minutes from its clock,
so a captured request cannot be replayed later and nobody without the key can start instances.
"""

from __future__ import annotations

import hashlib
import hmac
import time

DATE, SIGNATURE = "x-euca-date", "x-euca-signature"
MAX_SKEW = 300.0  # s


def _digest(key: str, method: str, path: str, date: str, body: bytes) -> str:
    text = f"{method.upper()}\n{path}\n{date}\n{hashlib.sha256(body).hexdigest()}"
    return hmac.new(key.encode(), text.encode(), hashlib.sha256).hexdigest()


def sign(key: str, method: str, path: str, body: bytes, now: float | None = None) -> dict[str, str]:
    """The headers that authenticate one request."""
    date = str(int(time.time() if now is None else now))
    return {DATE: date, SIGNATURE: _digest(key, method, path, date, body)}


def verify(key: str, method: str, path: str, body: bytes, date: str | None, signature: str | None,
           now: float | None = None) -> str | None:
    """None if the request is the key holder's and fresh; otherwise why it is refused."""
    if not key:
        return "this node has no key: register it with the cluster first"
    if not date or not signature:
        return "missing signature"
    try:
        stamp = int(date)
    except ValueError:
        return "malformed date"
    if abs((time.time() if now is None else now) - stamp) > MAX_SKEW:
        return "stale request"
    if not hmac.compare_digest(_digest(key, method, path, date, body), signature):
        return "wrong signature"
    return None
