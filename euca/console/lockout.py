"""Sign-in lock-out: after repeated failures a user (per account and user name) or a source
address is refused for a while, the right password included, so passwords cannot be guessed at
the rate a script could try them."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

USER_FAILURES = 5  # in WINDOW, before that user is locked out
ADDRESS_FAILURES = 20  # an address may front several people (NAT): more before it is locked out
WINDOW = 15 * 60.0
LOCK = 15 * 60.0
MAX_TRACKED = 10_000


@dataclass
class _Record:
    failures: list[float] = field(default_factory=list)
    locked_until: float = 0.0


class Lockout:
    def __init__(self, clock: Callable[[], float] = time.time, user_failures: int = USER_FAILURES,
                 address_failures: int = ADDRESS_FAILURES, window: float = WINDOW, lock: float = LOCK) -> None:
        self.clock = clock
        self.user_failures, self.address_failures = user_failures, address_failures
        self.window, self.lock = window, lock
        self._records: dict[tuple[str, ...], _Record] = {}

    @staticmethod
    def user_key(account: str, user: str) -> tuple[str, ...]:
        return ("user", account.lower(), user.lower())

    @staticmethod
    def address_key(address: str) -> tuple[str, ...]:
        return ("address", address)

    def locked(self, *keys: tuple[str, ...]) -> float:
        """Seconds until every one of ``keys`` may try again (0: now)."""
        now = self.clock()
        waits = [r.locked_until - now for k in keys if (r := self._records.get(k)) is not None]
        return max([0.0, *waits])

    def failed(self, *keys: tuple[str, ...]) -> None:
        now = self.clock()
        if len(self._records) > MAX_TRACKED:
            self._forget(now)
        for key in keys:
            record = self._records.setdefault(key, _Record())
            record.failures = [t for t in record.failures if now - t < self.window] + [now]
            most = self.user_failures if key[0] == "user" else self.address_failures
            if len(record.failures) >= most:
                record.locked_until = now + self.lock
                record.failures = []

    def succeeded(self, key: tuple[str, ...]) -> None:
        """A user's good sign-in clears that user's failures (an address's only age out: one good
        account must not reset a guesser's count)."""
        self._records.pop(key, None)

    def _forget(self, now: float) -> None:
        self._records = {k: r for k, r in self._records.items()
                         if r.locked_until > now or any(now - t < self.window for t in r.failures)}
