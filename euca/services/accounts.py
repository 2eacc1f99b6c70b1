"""Accounts and their access keys. The ``admin`` account is the cloud administrator's."""

from __future__ import annotations

import re
import secrets
import string
from dataclasses import dataclass

from euca.services.common import ADMIN, Caller
from euca.store import Store

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
_KEY_CHARS = string.ascii_uppercase + string.digits


@dataclass(frozen=True)
class Account:
    name: str
    account_id: str
    admin: bool

    @property
    def caller(self) -> Caller:
        return Caller(self.name, self.account_id, self.admin)


@dataclass(frozen=True)
class AccessKey:
    access_key: str
    secret_key: str
    account: str
    active: bool = True


MAX_KEYS = 2  # access keys per account, as IAM allows per user


class Accounts:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._accounts: dict[str, Account] = {}
        self._keys: dict[str, AccessKey] = {}
        self.reload()

    def reload(self) -> None:
        self._accounts = {id_: Account(id_, b["account_id"], b["admin"]) for id_, _, b in self._store.load("account")}
        self._keys = {id_: AccessKey(id_, b["secret"], acct, b.get("active", True))
                      for id_, acct, b in self._store.load("accesskey")}

    def create(self, name: str, admin: bool = False) -> tuple[Account, AccessKey]:
        if not _NAME.match(name):
            raise ValueError(f"account name {name!r}: lower-case letters, digits, '.', '_', '-', at most 63")
        if name in self._accounts:
            raise ValueError(f"account {name!r} already exists")
        taken = {a.account_id for a in self._accounts.values()}
        account_id = ""
        while not account_id or account_id in taken:
            account_id = f"{secrets.randbelow(10**12):012d}"
        account = Account(name, account_id, admin or name == ADMIN)
        key = self._new_key(name)
        with self._store.transaction() as tx:
            tx.put("account", name, name, {"account_id": account_id, "admin": account.admin})
            tx.put("accesskey", key.access_key, name, {"secret": key.secret_key, "active": True})
            tx.changed("account")
        self._accounts[name] = account
        self._keys[key.access_key] = key
        return account, key

    def _new_key(self, account: str) -> AccessKey:
        while True:
            access = "AKI" + "".join(secrets.choice(_KEY_CHARS) for _ in range(17))
            if access not in self._keys:
                return AccessKey(access, secrets.token_urlsafe(30)[:40], account)

    # --- access keys --------------------------------------------------------------------------------

    def add_key(self, name: str) -> AccessKey:
        """A second access key for an account (at most MAX_KEYS), so a leaked one can be rotated out."""
        if name not in self._accounts:
            raise ValueError(f"no account named {name!r}")
        if len(self.keys_of(name)) >= MAX_KEYS:
            raise ValueError(f"account {name!r} already has {MAX_KEYS} access keys: delete one first")
        key = self._new_key(name)
        with self._store.transaction() as tx:
            tx.put("accesskey", key.access_key, name, {"secret": key.secret_key, "active": True})
            tx.changed("account")
        self._keys[key.access_key] = key
        return key

    def _key_of(self, name: str, access_key: str) -> AccessKey:
        key = self._keys.get(access_key)
        if key is None or key.account != name:
            raise ValueError(f"account {name!r} has no access key {access_key!r}")
        return key

    def set_key_active(self, name: str, access_key: str, active: bool) -> AccessKey:
        """Deactivate a key (every request signed with it is refused at once) or activate it again."""
        key = self._key_of(name, access_key)
        changed = AccessKey(key.access_key, key.secret_key, key.account, active)
        with self._store.transaction() as tx:
            tx.put("accesskey", key.access_key, name, {"secret": key.secret_key, "active": active})
            tx.changed("account")
        self._keys[key.access_key] = changed
        return changed

    def delete_key(self, name: str, access_key: str) -> None:
        self._key_of(name, access_key)
        with self._store.transaction() as tx:
            tx.delete("accesskey", access_key)
            tx.changed("account")
        del self._keys[access_key]

    def get(self, name: str) -> Account | None:
        return self._accounts.get(name)

    def by_id(self, account_id: str) -> Account | None:
        for account in self._accounts.values():
            if account.account_id == account_id:
                return account
        return None

    def all(self) -> list[Account]:
        return sorted(self._accounts.values(), key=lambda a: a.name)

    def keys_of(self, name: str) -> list[AccessKey]:
        return [k for k in self._keys.values() if k.account == name]

    def secret(self, access_key: str) -> str | None:
        """The secret of an active key; None for an unknown or deactivated one (the signature
        check then fails as AWS fails it). The admin CLI's changes are picked up before this is
        asked (``Cloud.refresh``)."""
        key = self._keys.get(access_key)
        return key.secret_key if key is not None and key.active else None

    def caller(self, access_key: str) -> Caller:
        key = self._keys[access_key]
        return self._accounts[key.account].caller
