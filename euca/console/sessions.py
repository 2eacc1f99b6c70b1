"""Console sessions: a signed cookie, HttpOnly and SameSite=Strict, holding who signed in and the
session's CSRF token.

The cookie is ``base64url(JSON).base64url(HMAC-SHA256)`` under a key kept in the data directory
(``console.key``, 0600), so sessions survive a restart of the server and no session table is needed.
Every visitor has a session, signed in or not: the sign-in and sign-up forms carry a CSRF token too.
A session also holds a digest of the user's password hash, so changing the password (or deleting the
login profile) ends every session opened with the old one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

COOKIE = "euca_console"
LIFETIME = 8 * 3600  # seconds a session lasts after sign-in, as the 4.0 console's default
KEY_FILE = "console.key"


def load_key(data_dir: Path | None) -> bytes:
    """The signing key from the data directory, made on first use; a key for this process alone
    when there is no data directory."""
    if data_dir is None:
        return secrets.token_bytes(32)
    path = data_dir / KEY_FILE
    try:
        key = path.read_bytes()
        if len(key) >= 32:
            return key
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    partial = path.with_name(f".{KEY_FILE}.{secrets.token_hex(4)}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(key)
        out.flush()
        os.fsync(out.fileno())
    try:
        os.link(partial, path)  # the first writer wins; everyone else reads its key
    except FileExistsError:
        key = path.read_bytes()
    finally:
        partial.unlink()
    return key


def password_mark(password_hash: str) -> str:
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


@dataclass
class Session:
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    account: str = ""  # the account's name
    user: str = ""
    mark: str = ""  # password_mark of the hash the user signed in with
    issued: float = 0.0
    flash: list[str] | None = None  # [kind, text], shown once by the next page

    @property
    def signed_in(self) -> bool:
        return bool(self.account and self.user)

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"c": self.csrf}
        if self.signed_in:
            out |= {"a": self.account, "u": self.user, "m": self.mark, "t": self.issued}
        if self.flash:
            out["f"] = self.flash
        return out

    def csrf_ok(self, token: str) -> bool:
        return bool(token) and hmac.compare_digest(token.encode(), self.csrf.encode())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    def __init__(self, key: bytes, lifetime: float = LIFETIME) -> None:
        self._key = key
        self.lifetime = lifetime

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, b"euca-console-session\n" + payload, hashlib.sha256).digest()

    def dump(self, session: Session) -> str:
        payload = orjson.dumps(session.body())
        return f"{_b64(payload)}.{_b64(self._mac(payload))}"

    def load(self, cookie: str | None, now: float | None = None) -> Session:
        """The session a cookie holds; a fresh anonymous one for a missing, forged or expired cookie."""
        if not cookie or cookie.count(".") != 1 or len(cookie) > 4096:
            return Session()
        text, mac = cookie.split(".")
        try:
            payload, given = _unb64(text), _unb64(mac)
        except (ValueError, binascii.Error):
            return Session()
        if not hmac.compare_digest(given, self._mac(payload)):
            return Session()
        try:
            body = orjson.loads(payload)
            session = Session(csrf=str(body["c"]))
            flash = body.get("f")
            if isinstance(flash, list) and len(flash) == 2:
                session.flash = [str(flash[0]), str(flash[1])]
            if "a" in body:
                issued = float(body["t"])
                if (now if now is not None else time.time()) - issued < self.lifetime:
                    session.account, session.user = str(body["a"]), str(body["u"])
                    session.mark, session.issued = str(body["m"]), issued
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return Session()
        return session
