"""IMDSv2 session tokens: ``PUT /latest/api/token`` hands one out, GETs carry it back.

A token is self-describing and needs no table: its expiry and a MAC over the expiry and the
instance it was issued to. Every worker with the same secret accepts it, a token copied to
another instance is refused, and nothing has to be cleaned up when it expires.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable

MIN_TTL, MAX_TTL = 1, 21600  # seconds, as EC2 allows


def parse_ttl(text: str | None) -> int | None:
    """X-aws-ec2-metadata-token-ttl-seconds as a number of seconds, or None when it is not one in range."""
    if text is None or not text.strip().isdigit() or len(text.strip()) > 6:
        return None
    ttl = int(text)
    return ttl if MIN_TTL <= ttl <= MAX_TTL else None


class Tokens:
    def __init__(self, secret: bytes, clock: Callable[[], float] = time.time) -> None:
        self._secret, self._clock = secret, clock

    def _mac(self, expires: str, instance_id: str) -> str:
        mac = hmac.new(self._secret, f"{expires}:{instance_id}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac[:24]).decode()

    def issue(self, instance_id: str, ttl: int) -> str:
        expires = str(int(self._clock()) + ttl)
        return f"{expires}.{self._mac(expires, instance_id)}"

    def valid(self, token: str, instance_id: str) -> bool:
        expires, _, mac = token.partition(".")
        if not expires.isdigit() or len(expires) > 12 or int(expires) < self._clock():
            return False
        return mac.isascii() and hmac.compare_digest(mac, self._mac(expires, instance_id))
