"""Sign-up requests, Eucalyptus 1.x's way: anyone may ask for an account on the open sign-up page;
the request waits, with its password already hashed, until the system administrator approves it
(the account is created with its admin user and that password as the user's login profile) or
rejects it (the request is deleted). Requests are records in the store, so they outlive a restart
and every API front end sees them."""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass

from euca.core.iamerrors import EntityAlreadyExists
from euca.services.accounts import Accounts
from euca.services.common import ADMIN
from euca.store import Store

KIND = "signup"
MAX_PENDING = 200  # an open page must not let anyone fill the store
_ACCOUNT = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}$")


class SignupError(ValueError):
    """A request that cannot be made or approved, with the reason to show."""


@dataclass(frozen=True)
class Signup:
    request_id: str
    name: str
    email: str
    account: str
    password_hash: str
    created: float
    source: str


class Signups:
    def __init__(self, store: Store, accounts: Accounts) -> None:
        self._store, self._accounts = store, accounts

    def pending(self) -> list[Signup]:
        out = [Signup(id_, b["name"], b["email"], b["account"], b["hash"], b["created"], b.get("source", ""))
               for id_, _, b in self._store.load(KIND)]
        return sorted(out, key=lambda s: s.created)

    def get(self, request_id: str) -> Signup:
        for signup in self.pending():
            if signup.request_id == request_id:
                return signup
        raise SignupError("There is no such sign-up request (approved or rejected already?)")

    @staticmethod
    def check(name: str, email: str, account: str) -> None:
        if not name.strip() or len(name) > 128 or not name.isprintable():
            raise SignupError("Your name: 1 to 128 printable characters")
        if not _EMAIL.match(email):
            raise SignupError("Email: an address like someone@example.com")
        if not _ACCOUNT.match(account):
            raise SignupError("Account name: lower-case letters, digits, '.', '_' and '-', at most 63, "
                              "beginning with a letter or digit")

    def request(self, name: str, email: str, account: str, password_hash: str, source: str) -> Signup:
        """A pending request (the password already checked against the policy and hashed)."""
        self.check(name, email, account)
        pending = self.pending()
        if len(pending) >= MAX_PENDING:
            raise SignupError("Too many sign-up requests are waiting; try again later")
        if self._accounts.get(account) is not None or account == ADMIN or any(
                s.account == account for s in pending) or any(a.alias == account for a in self._accounts.all()):
            raise SignupError(f"The account name {account} is taken")
        signup = Signup(secrets.token_hex(8), name.strip(), email, account, password_hash, time.time(), source)
        with self._store.transaction() as tx:
            tx.put(KIND, signup.request_id, ADMIN, {"name": signup.name, "email": email, "account": account,
                                                    "hash": password_hash, "created": signup.created,
                                                    "source": source})
        return signup

    def approve(self, request_id: str) -> str:
        """Create the account, its admin user's login profile from the request's password, and
        drop the request; the new account's name."""
        signup = self.get(request_id)
        try:
            self._accounts.create(signup.account)
        except (EntityAlreadyExists, ValueError) as exc:
            raise SignupError(f"Cannot create account {signup.account}: {exc}") from None
        self._accounts.set_login(signup.account, ADMIN, signup.password_hash, reset=False, create=True)
        self._drop(request_id)
        return signup.account

    def reject(self, request_id: str) -> str:
        signup = self.get(request_id)
        self._drop(request_id)
        return signup.account

    def _drop(self, request_id: str) -> None:
        with self._store.transaction() as tx:
            tx.delete(KIND, request_id)
