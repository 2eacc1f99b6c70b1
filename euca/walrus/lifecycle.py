"""Lifecycle expiration: the rules' ``Expiration`` (``Days`` after an object was written, or a
``Date``) applied by a periodic sweep, as a DELETE without a version id would (a delete marker
where versioning is on)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from euca.walrus.service import Walrus

log = logging.getLogger("euca.walrus")
DAY = 86400


def _prefix(rule: dict[str, Any]) -> str:
    found = rule.get("Filter") or {}
    if "Prefix" in found:
        return str(found["Prefix"])
    if "And" in found:
        return str(found["And"].get("Prefix", ""))
    return str(rule.get("Prefix", ""))


def _deadline(rule: dict[str, Any], written: float) -> float | None:
    expiration = rule.get("Expiration") or {}
    if "Days" in expiration:
        # S3 counts from the object's creation, rounded up to the next midnight UTC
        return (int(written // DAY) + 1 + int(expiration["Days"])) * DAY
    if "Date" in expiration:
        try:
            return datetime.fromisoformat(str(expiration["Date"]).replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


def expire(walrus: Walrus, now: float) -> int:
    """Apply every enabled Expiration rule once; the number of objects expired."""
    expired = 0
    for bucket in walrus.catalog.buckets():
        rules = [r for r in bucket.lifecycle or [] if r.get("Status") == "Enabled" and r.get("Expiration")]
        if not rules:
            continue
        for info in walrus.catalog.live_objects(bucket.name):
            for rule in rules:
                if not info.key.startswith(_prefix(rule)):
                    continue
                deadline = _deadline(rule, info.modified)
                if deadline is not None and now >= deadline:
                    walrus.expire_object(bucket.name, info.key)
                    expired += 1
                    break
    if expired:
        log.info("walrus: lifecycle expired %d objects", expired)
    return expired
