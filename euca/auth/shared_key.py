"""Requests between the cloud's own components, signed with a key the two share: the cluster and
its node controllers, the cloud and its Storage Controller.

Every request carries ``X-Euca-Date`` (Unix seconds) and ``X-Euca-Signature``, the hex
HMAC-SHA256 under the key of ``METHOD\\nPATH\\nDATE\\nSHA256(body)``. The receiver refuses (403)
a request without them, with a wrong signature, or dated more than five minutes from its clock,
so a captured request cannot be replayed later and nobody without the key can act. A body too
large to hash before sending (a volume's bytes) is signed as ``UNSIGNED-PAYLOAD``, as SigV4 does;
its path still is.
"""

from __future__ import annotations

import hashlib
import hmac
import time

DATE, SIGNATURE = "x-euca-date", "x-euca-signature"
MAX_SKEW = 300.0  # s
UNSIGNED = "UNSIGNED-PAYLOAD"


def _digest(key: str, method: str, path: str, date: str, body: bytes | str) -> str:
    payload = body if isinstance(body, str) else hashlib.sha256(body).hexdigest()
    text = f"{method.upper()}\n{path}\n{date}\n{payload}"
    return hmac.new(key.encode(), text.encode(), hashlib.sha256).hexdigest()


def sign(key: str, method: str, path: str, body: bytes | str, now: float | None = None) -> dict[str, str]:
    """The headers that authenticate one request (``body``: its bytes, or ``UNSIGNED``)."""
    date = str(int(time.time() if now is None else now))
    return {DATE: date, SIGNATURE: _digest(key, method, path, date, body)}


def verify(key: str, method: str, path: str, body: bytes | str, date: str | None, signature: str | None,
           now: float | None = None) -> str | None:
    """None if the request is the key holder's and fresh; otherwise why it is refused."""
    if not key:
        return "no key: register this component with the cloud first"
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
