"""Accounts and everything that acts in them (Euare's directory): users, groups, access keys,
login profiles, signing certificates, and the policies on accounts, groups and users.

Every account has a user named ``admin`` (Eucalyptus's account administrator); the keys an account
had before it had users are its admin's. The ``admin`` account is the cloud's (Eucalyptus's
``eucalyptus`` account), and its ``admin`` user is the system administrator.

Each change is one transaction that also bumps the ``account`` change counter, so every other
running server reloads the directory at its next request (``Cloud.refresh``); the one that made
the change reloads it as it writes. Policies are compiled
(``euca.auth.policy``) when the directory is loaded, once per distinct document, and each user's
``Principal`` is built when first asked for and dropped at the next change.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import string
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from euca.auth.policy import CURRENT_TIME, SOURCE_IP, Policy, PolicyError, Principal, authorize, compile_policy
from euca.core.iamerrors import (
    DeleteConflict,
    EntityAlreadyExists,
    LimitExceeded,
    MalformedPolicyDocument,
    NoSuchEntity,
    ValidationError,
)
from euca.services.common import ADMIN, Caller
from euca.store import Store, Tx

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
_USER = re.compile(r"^[\w+=,.@-]{1,64}$")
_GROUP = re.compile(r"^[\w+=,.@-]{1,128}$")
_POLICY = re.compile(r"^[\w+=,.@-]{1,128}$")
_PATH = re.compile(r"^(/|/[\x21-\x7e]{0,510}/)$")
_ALIAS = re.compile(r"^[a-z0-9](([a-z0-9]|-(?!-)){1,61})[a-z0-9]$")
_KEY_CHARS = string.ascii_uppercase + string.digits

MAX_KEYS = 2  # access keys per user, as IAM allows
MAX_CERTS = 2  # signing certificates per user
MAX_GROUPS_PER_USER = 10
MAX_USER_POLICY = 2048  # characters of a user's inline policies together, as IAM counts them
MAX_GROUP_POLICY = 5120
MAX_ACCOUNT_POLICY = 10240

Holder = Literal["user", "group", "account"]


@dataclass(frozen=True)
class Account:
    name: str
    account_id: str
    admin: bool
    alias: str | None = None
    policies: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def caller(self) -> Caller:
        """The account's admin user, as a caller."""
        return Caller(self.name, self.account_id, self.admin)


@dataclass(frozen=True)
class AccessKey:
    access_key: str
    secret_key: str
    account: str
    active: bool = True
    user: str = ADMIN
    created: float = 0.0


@dataclass(frozen=True)
class User:
    account: str
    name: str
    user_id: str
    path: str = "/"
    created: float = 0.0
    policies: dict[str, str] = field(default_factory=dict, compare=False)
    login: dict[str, Any] | None = None  # {"hash", "created", "reset"}

    def arn(self, account_id: str) -> str:
        return f"arn:aws:iam::{account_id}:user{self.path}{self.name}"


@dataclass(frozen=True)
class Group:
    account: str
    name: str
    group_id: str
    path: str = "/"
    created: float = 0.0
    users: tuple[str, ...] = ()
    policies: dict[str, str] = field(default_factory=dict, compare=False)

    def arn(self, account_id: str) -> str:
        return f"arn:aws:iam::{account_id}:group{self.path}{self.name}"


@dataclass(frozen=True)
class Certificate:
    cert_id: str
    account: str
    user: str
    pem: str
    active: bool = True
    uploaded: float = 0.0


def _entity_id(prefix: str, seed: str = "") -> str:
    """IAM-style unique ids (``AIDA...``, 21 characters): random, or derived from ``seed`` so an
    admin user that predates user records keeps one id across restarts."""
    if seed:
        digest = hashlib.sha256(seed.encode()).digest()
        return prefix + "".join(_KEY_CHARS[b % len(_KEY_CHARS)] for b in digest[:17])
    return prefix + "".join(secrets.choice(_KEY_CHARS) for _ in range(17))


def _fold(name: str) -> str:
    return name.lower()  # IAM names are unique regardless of case, and keep the case they were given


class Accounts:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._accounts: dict[str, Account] = {}
        self._keys: dict[str, AccessKey] = {}
        self._users: dict[tuple[str, str], User] = {}
        self._groups: dict[tuple[str, str], Group] = {}
        self._certs: dict[str, Certificate] = {}
        self._compiled: dict[str, Policy] = {}
        self._principals: dict[tuple[str, str], Principal] = {}
        self._used: dict[str, tuple[float, str, str]] = {}  # access key -> (when, service, region)
        self._unsaved: set[str] = set()
        self.reload()

    # --- loading --------------------------------------------------------------------------------------

    def reload(self) -> None:
        store = self._store
        self._accounts = {id_: Account(id_, b["account_id"], b["admin"], b.get("alias"), b.get("policies", {}))
                          for id_, _, b in store.load("account")}
        self._keys = {id_: AccessKey(id_, b["secret"], acct, b.get("active", True), b.get("user", ADMIN),
                                     b.get("created", 0.0))
                      for id_, acct, b in store.load("accesskey")}
        self._users = {}
        for _, acct, b in store.load("user"):
            user = User(acct, b["name"], b["user_id"], b.get("path", "/"), b.get("created", 0.0),
                        b.get("policies", {}), b.get("login"))
            self._users[(acct, _fold(user.name))] = user
        for account in self._accounts.values():
            if (account.name, ADMIN) not in self._users:
                self._users[(account.name, ADMIN)] = self._admin_user(account)
        self._groups = {}
        for _, acct, b in store.load("iamgroup"):
            group = Group(acct, b["name"], b["group_id"], b.get("path", "/"), b.get("created", 0.0),
                          tuple(b.get("users", ())), b.get("policies", {}))
            self._groups[(acct, _fold(group.name))] = group
        self._certs = {id_: Certificate(id_, acct, b["user"], b["pem"], b.get("active", True), b.get("uploaded", 0.0))
                       for id_, acct, b in store.load("signingcert")}
        for id_, _, b in store.load("keyuse"):
            if id_ not in self._used or self._used[id_][0] < b["when"]:
                self._used[id_] = (b["when"], b["service"], b["region"])
        documents = [*(a.policies.values() for a in self._accounts.values()),
                     *(u.policies.values() for u in self._users.values()),
                     *(g.policies.values() for g in self._groups.values())]
        texts = {text for group in documents for text in group}
        self._compiled = {text: self._compiled.get(text) or self._compile_stored(text) for text in texts}
        self._principals = {}

    @staticmethod
    def _compile_stored(text: str) -> Policy:
        try:
            return compile_policy(text)
        except PolicyError:
            # written by an older release with other rules: it grants nothing rather than stopping the cloud
            return compile_policy('{"Statement": {"Effect": "Deny", "NotAction": "*", "Resource": "*"}}')

    @staticmethod
    def _admin_user(account: Account) -> User:
        return User(account.name, ADMIN, _entity_id("AIDA", account.account_id))

    # --- accounts ---------------------------------------------------------------------------------------

    def create(self, name: str, admin: bool = False) -> tuple[Account, AccessKey]:
        if not _NAME.match(name):
            raise ValueError(f"account name {name!r}: lower-case letters, digits, '.', '_', '-', at most 63")
        if name in self._accounts:
            raise EntityAlreadyExists(f"account {name!r} already exists")
        taken = {a.account_id for a in self._accounts.values()}
        account_id = ""
        while not account_id or account_id in taken:
            account_id = f"{secrets.randbelow(10**12):012d}"
        account = Account(name, account_id, admin or name == ADMIN)
        key = self._new_key(name, ADMIN)
        user = replace(self._admin_user(account), user_id=_entity_id("AIDA"), created=time.time())
        with self._store.transaction() as tx:
            tx.put("account", name, name, {"account_id": account_id, "admin": account.admin})
            self._put_user(tx, user)
            self._put_key(tx, key)
            tx.changed("account", applied=True)
        self.reload()
        return self._accounts[name], key

    def delete_account(self, name: str, recursive: bool = False) -> None:
        """Without ``recursive``, only an account with nothing but its admin user (and its keys)."""
        account = self._account(name)
        if account.admin:
            raise DeleteConflict("The cloud's own account cannot be deleted")
        users = [u for (a, _), u in self._users.items() if a == name and u.name != ADMIN]
        groups = [g for (a, _), g in self._groups.items() if a == name]
        if (users or groups) and not recursive:
            raise DeleteConflict(f"Account {name} has users or groups: delete them first, or delete recursively")
        with self._store.transaction() as tx:
            for (a, folded), _ in list(self._users.items()):
                if a == name:
                    tx.delete("user", f"{a}/{folded}")
            for g in groups:
                tx.delete("iamgroup", f"{name}/{_fold(g.name)}")
            for k in self._keys.values():
                if k.account == name:
                    tx.delete("accesskey", k.access_key)
            for c in self._certs.values():
                if c.account == name:
                    tx.delete("signingcert", c.cert_id)
            tx.delete("account", name)
            tx.changed("account", applied=True)
        self.reload()

    def _account(self, name: str) -> Account:
        account = self._accounts.get(name)
        if account is None:
            raise NoSuchEntity(f"The account with name {name} cannot be found.")
        return account

    def get(self, name: str) -> Account | None:
        return self._accounts.get(name)

    def by_id(self, account_id: str) -> Account | None:
        for account in self._accounts.values():
            if account.account_id == account_id:
                return account
        return None

    def all(self) -> list[Account]:
        return sorted(self._accounts.values(), key=lambda a: a.name)

    def set_alias(self, name: str, alias: str | None) -> None:
        """An account has at most one alias, unique in the cloud (IAM's CreateAccountAlias replaces it)."""
        account = self._account(name)
        if alias is not None:
            if not _ALIAS.match(alias):
                raise ValidationError(f"The alias {alias!r} must be 3 to 63 lower-case letters, digits and single "
                                      "hyphens, beginning and ending with a letter or digit")
            if any(a.alias == alias and a.name != name for a in self._accounts.values()) or \
                    (alias in self._accounts and alias != name):
                raise EntityAlreadyExists(f"The account alias {alias} already exists.")
        elif account.alias is None:
            raise NoSuchEntity("The account has no alias.")
        self._write_account(replace(account, alias=alias))

    def _write_account(self, account: Account) -> None:
        body: dict[str, Any] = {"account_id": account.account_id, "admin": account.admin}
        if account.alias is not None:
            body["alias"] = account.alias
        if account.policies:
            body["policies"] = account.policies
        with self._store.transaction() as tx:
            tx.put("account", account.name, account.name, body)
            tx.changed("account", applied=True)
        self.reload()

    # --- users -----------------------------------------------------------------------------------------

    def user(self, account: str, name: str) -> User:
        found = self._users.get((account, _fold(name)))
        if found is None:
            raise NoSuchEntity(f"The user with name {name} cannot be found.")
        return found

    def users(self, account: str, path_prefix: str = "/") -> list[User]:
        return sorted((u for (a, _), u in self._users.items() if a == account and u.path.startswith(path_prefix)),
                      key=lambda u: _fold(u.name))

    def create_user(self, account: str, name: str, path: str = "/") -> User:
        self._account(account)
        if not _USER.match(name):
            raise ValidationError(f"The user name {name!r} must be 1 to 64 letters, digits and +=,.@_-")
        if not _PATH.match(path):
            raise ValidationError(f"The path {path!r} must begin and end with /")
        if (account, _fold(name)) in self._users:
            raise EntityAlreadyExists(f"User with name {name} already exists.")
        user = User(account, name, _entity_id("AIDA"), path, time.time())
        with self._store.transaction() as tx:
            self._put_user(tx, user)
            tx.changed("account", applied=True)
        self.reload()
        return self._users[(account, _fold(name))]

    def update_user(self, account: str, name: str, new_name: str | None = None, new_path: str | None = None) -> None:
        user = self.user(account, name)
        if user.name == ADMIN and new_name is not None and new_name != ADMIN:
            raise ValidationError("The account's admin user cannot be renamed")
        if new_name is not None and not _USER.match(new_name):
            raise ValidationError(f"The user name {new_name!r} must be 1 to 64 letters, digits and +=,.@_-")
        if new_path is not None and not _PATH.match(new_path):
            raise ValidationError(f"The path {new_path!r} must begin and end with /")
        if new_name is not None and _fold(new_name) != _fold(name) and (account, _fold(new_name)) in self._users:
            raise EntityAlreadyExists(f"User with name {new_name} already exists.")
        changed = replace(user, name=new_name or user.name, path=new_path or user.path)
        with self._store.transaction() as tx:
            tx.delete("user", f"{account}/{_fold(user.name)}")
            self._put_user(tx, changed)
            if changed.name != user.name:
                for key in self._keys.values():
                    if key.account == account and key.user == user.name:
                        self._put_key(tx, replace(key, user=changed.name))
                for cert in self._certs.values():
                    if cert.account == account and cert.user == user.name:
                        self._put_cert(tx, replace(cert, user=changed.name))
                for group in self._groups.values():
                    if group.account == account and user.name in group.users:
                        members = tuple(changed.name if m == user.name else m for m in group.users)
                        self._put_group(tx, replace(group, users=members))
            tx.changed("account", applied=True)
        self.reload()

    def delete_user(self, account: str, name: str) -> None:
        """As IAM: a user with keys, certificates, a login profile, policies or groups is refused."""
        user = self.user(account, name)
        if user.name == ADMIN:
            raise DeleteConflict("The account's admin user cannot be deleted")
        if self.user_keys(account, user.name) or self.certificates(account, user.name) or user.login \
                or user.policies or self.groups_of(account, user.name):
            raise DeleteConflict("Cannot delete entity, must remove access keys, signing certificates, login "
                                 "profile, policies and group memberships first.")
        with self._store.transaction() as tx:
            tx.delete("user", f"{account}/{_fold(user.name)}")
            tx.changed("account", applied=True)
        self.reload()

    def remove_user(self, account: str, name: str) -> None:
        """The administrator's delete: the user and everything it holds (access keys and their use,
        signing certificates, group memberships; its login profile and policies are part of its
        record) in one transaction, all or nothing. What it holds is read inside that transaction, so
        a key another server made for the user a moment ago goes with it."""
        user = self.user(account, name)
        if user.name == ADMIN:
            raise DeleteConflict("The account's admin user cannot be deleted")
        folded = _fold(user.name)
        removed: list[str] = []
        with self._store.transaction() as tx:
            for access_key, body in tx.load("accesskey", account):
                if _fold(body.get("user", ADMIN)) == folded:
                    tx.delete("accesskey", access_key)
                    tx.delete("keyuse", access_key)
                    removed.append(access_key)
            for cert_id, body in tx.load("signingcert", account):
                if _fold(body["user"]) == folded:
                    tx.delete("signingcert", cert_id)
            for group_id, body in tx.load("iamgroup", account):
                members = list(body.get("users", ()))
                if any(_fold(m) == folded for m in members):
                    tx.put("iamgroup", group_id, account, body | {"users": [m for m in members if _fold(m) != folded]})
            tx.delete("user", f"{account}/{folded}")
            tx.changed("account", applied=True)
        for access_key in removed:
            self._used.pop(access_key, None)
            self._unsaved.discard(access_key)
        self.reload()

    def _put_user(self, tx: Tx, user: User) -> None:
        body: dict[str, Any] = {"name": user.name, "user_id": user.user_id, "path": user.path,
                                "created": user.created}
        if user.policies:
            body["policies"] = user.policies
        if user.login is not None:
            body["login"] = user.login
        tx.put("user", f"{user.account}/{_fold(user.name)}", user.account, body)

    def set_login(self, account: str, name: str, password_hash: str | None, reset: bool, create: bool) -> None:
        """Create (``create``) or change a login profile; ``password_hash`` None keeps the password."""
        user = self.user(account, name)
        if create and user.login is not None:
            raise EntityAlreadyExists(f"Login Profile for user {user.name} already exists.")
        if not create and user.login is None:
            raise NoSuchEntity(f"Login Profile for User {user.name} cannot be found.")
        login = dict(user.login or {"created": time.time()})
        if password_hash is not None:
            login["hash"] = password_hash
        login["reset"] = reset
        self._rewrite_user(replace(user, login=login))

    def delete_login(self, account: str, name: str) -> None:
        user = self.user(account, name)
        if user.login is None:
            raise NoSuchEntity(f"Login Profile for User {user.name} cannot be found.")
        self._rewrite_user(replace(user, login=None))

    def _rewrite_user(self, user: User) -> None:
        with self._store.transaction() as tx:
            self._put_user(tx, user)
            tx.changed("account", applied=True)
        self.reload()

    # --- groups ----------------------------------------------------------------------------------------

    def group(self, account: str, name: str) -> Group:
        found = self._groups.get((account, _fold(name)))
        if found is None:
            raise NoSuchEntity(f"The group with name {name} cannot be found.")
        return found

    def groups(self, account: str, path_prefix: str = "/") -> list[Group]:
        return sorted((g for (a, _), g in self._groups.items() if a == account and g.path.startswith(path_prefix)),
                      key=lambda g: _fold(g.name))

    def groups_of(self, account: str, user: str) -> list[Group]:
        return [g for g in self.groups(account) if user in g.users]

    def create_group(self, account: str, name: str, path: str = "/") -> Group:
        self._account(account)
        if not _GROUP.match(name):
            raise ValidationError(f"The group name {name!r} must be 1 to 128 letters, digits and +=,.@_-")
        if not _PATH.match(path):
            raise ValidationError(f"The path {path!r} must begin and end with /")
        if (account, _fold(name)) in self._groups:
            raise EntityAlreadyExists(f"Group with name {name} already exists.")
        group = Group(account, name, _entity_id("AGPA"), path, time.time())
        self._write_group(group)
        return self._groups[(account, _fold(name))]

    def delete_group(self, account: str, name: str) -> None:
        group = self.group(account, name)
        if group.users or group.policies:
            raise DeleteConflict("Cannot delete entity, must remove users and policies from group first.")
        with self._store.transaction() as tx:
            tx.delete("iamgroup", f"{account}/{_fold(group.name)}")
            tx.changed("account", applied=True)
        self.reload()

    def add_to_group(self, account: str, group_name: str, user_name: str) -> None:
        group, user = self.group(account, group_name), self.user(account, user_name)
        if user.name in group.users:
            return
        if len(self.groups_of(account, user.name)) >= MAX_GROUPS_PER_USER:
            raise LimitExceeded(f"Cannot exceed quota for GroupsPerUser: {MAX_GROUPS_PER_USER}")
        self._write_group(replace(group, users=(*group.users, user.name)))

    def remove_from_group(self, account: str, group_name: str, user_name: str) -> None:
        group, user = self.group(account, group_name), self.user(account, user_name)
        if user.name not in group.users:
            raise NoSuchEntity(f"User {user.name} is not in group {group.name}.")
        self._write_group(replace(group, users=tuple(m for m in group.users if m != user.name)))

    def _put_group(self, tx: Tx, group: Group) -> None:
        body: dict[str, Any] = {"name": group.name, "group_id": group.group_id, "path": group.path,
                                "created": group.created, "users": list(group.users)}
        if group.policies:
            body["policies"] = group.policies
        tx.put("iamgroup", f"{group.account}/{_fold(group.name)}", group.account, body)

    def _write_group(self, group: Group) -> None:
        with self._store.transaction() as tx:
            self._put_group(tx, group)
            tx.changed("account", applied=True)
        self.reload()

    # --- access keys -------------------------------------------------------------------------------------

    def _new_key(self, account: str, user: str) -> AccessKey:
        while True:
            access = "AKI" + "".join(secrets.choice(_KEY_CHARS) for _ in range(17))
            if access not in self._keys:
                return AccessKey(access, secrets.token_urlsafe(30)[:40], account, True, user, time.time())

    @staticmethod
    def _put_key(tx: Tx, key: AccessKey) -> None:
        tx.put("accesskey", key.access_key, key.account, {"secret": key.secret_key, "active": key.active,
                                                          "user": key.user, "created": key.created})

    def user_keys(self, account: str, user: str) -> list[AccessKey]:
        return sorted((k for k in self._keys.values() if k.account == account and k.user == user),
                      key=lambda k: k.created)

    def create_user_key(self, account: str, user_name: str) -> AccessKey:
        user = self.user(account, user_name)
        if len(self.user_keys(account, user.name)) >= MAX_KEYS:
            raise LimitExceeded(f"Cannot exceed quota for AccessKeysPerUser: {MAX_KEYS}")
        key = self._new_key(account, user.name)
        with self._store.transaction() as tx:
            self._put_key(tx, key)
            tx.changed("account", applied=True)
        self.reload()
        return key

    def user_key(self, account: str, user: str, access_key: str) -> AccessKey:
        key = self._keys.get(access_key)
        if key is None or key.account != account or _fold(key.user) != _fold(user):
            raise NoSuchEntity(f"The Access Key with id {access_key} cannot be found.")
        return key

    def set_user_key_active(self, account: str, user: str, access_key: str, active: bool) -> AccessKey:
        """Deactivate a key (every request signed with it is refused at once) or activate it again."""
        key = replace(self.user_key(account, user, access_key), active=active)
        with self._store.transaction() as tx:
            self._put_key(tx, key)
            tx.changed("account", applied=True)
        self.reload()
        return key

    def delete_user_key(self, account: str, user: str, access_key: str) -> None:
        self.user_key(account, user, access_key)
        with self._store.transaction() as tx:
            tx.delete("accesskey", access_key)
            tx.delete("keyuse", access_key)
            tx.changed("account", applied=True)
        self._used.pop(access_key, None)
        self.reload()

    # The account's own keys are its admin user's (the admin CLI's ``euca account keys``).

    def add_key(self, name: str) -> AccessKey:
        """A second access key for an account (at most MAX_KEYS), so a leaked one can be rotated out."""
        self._account(name)
        return self.create_user_key(name, ADMIN)

    def set_key_active(self, name: str, access_key: str, active: bool) -> AccessKey:
        return self.set_user_key_active(name, ADMIN, access_key, active)

    def delete_key(self, name: str, access_key: str) -> None:
        self.delete_user_key(name, ADMIN, access_key)

    def keys_of(self, name: str) -> list[AccessKey]:
        return self.user_keys(name, ADMIN)

    def secret(self, access_key: str) -> str | None:
        """The secret of an active key; None for an unknown or deactivated one (the signature
        check then fails as AWS fails it). The admin CLI's changes are picked up before this is
        asked (``Cloud.refresh``)."""
        key = self._keys.get(access_key)
        return key.secret_key if key is not None and key.active else None

    def caller(self, access_key: str, service: str = "s3", region: str = "") -> Caller:
        """Who signed with ``access_key`` (after its signature was checked), noting the key's use.
        The S3 endpoint calls this without naming itself."""
        key = self._keys[access_key]
        self._used[access_key] = (time.time(), service, region)
        self._unsaved.add(access_key)
        account = self._accounts[key.account]
        return Caller(account.name, account.account_id, account.admin and key.user == ADMIN, key.user)

    def last_used(self, access_key: str) -> tuple[float, str, str] | None:
        return self._used.get(access_key)

    def save_use(self) -> None:
        """Write the keys' last use (kept in memory per request) to the store; the housekeeping loop calls it."""
        if not self._unsaved:
            return
        unsaved, self._unsaved = self._unsaved, set()
        with self._store.transaction() as tx:
            for access_key in unsaved:
                if access_key in self._keys and access_key in self._used:
                    when, service, region = self._used[access_key]
                    tx.put("keyuse", access_key, self._keys[access_key].account,
                           {"when": when, "service": service, "region": region})

    # --- signing certificates ----------------------------------------------------------------------------

    def certificates(self, account: str, user: str) -> list[Certificate]:
        return sorted((c for c in self._certs.values() if c.account == account and c.user == user),
                      key=lambda c: c.uploaded)

    def add_certificate(self, account: str, user_name: str, cert_id: str, pem: str) -> Certificate:
        user = self.user(account, user_name)
        if len(self.certificates(account, user.name)) >= MAX_CERTS:
            raise LimitExceeded(f"Cannot exceed quota for CertificatesPerUser: {MAX_CERTS}")
        if cert_id in self._certs:
            raise EntityAlreadyExists("The certificate has already been uploaded.")
        cert = Certificate(cert_id, account, user.name, pem, True, time.time())
        with self._store.transaction() as tx:
            self._put_cert(tx, cert)
            tx.changed("account", applied=True)
        self.reload()
        return cert

    def certificate(self, account: str, user: str, cert_id: str) -> Certificate:
        cert = self._certs.get(cert_id)
        if cert is None or cert.account != account or _fold(cert.user) != _fold(user):
            raise NoSuchEntity(f"The Certificate with id {cert_id} cannot be found.")
        return cert

    def set_certificate_active(self, account: str, user: str, cert_id: str, active: bool) -> None:
        cert = replace(self.certificate(account, user, cert_id), active=active)
        with self._store.transaction() as tx:
            self._put_cert(tx, cert)
            tx.changed("account", applied=True)
        self.reload()

    def delete_certificate(self, account: str, user: str, cert_id: str) -> None:
        self.certificate(account, user, cert_id)
        with self._store.transaction() as tx:
            tx.delete("signingcert", cert_id)
            tx.changed("account", applied=True)
        self.reload()

    @staticmethod
    def _put_cert(tx: Tx, cert: Certificate) -> None:
        tx.put("signingcert", cert.cert_id, cert.account, {"user": cert.user, "pem": cert.pem, "active": cert.active,
                                                          "uploaded": cert.uploaded})

    # --- policies --------------------------------------------------------------------------------------

    def policies(self, holder: Holder, account: str, name: str = "") -> dict[str, str]:
        """The inline policies of a user, a group, or an account (``name`` unused), by policy name."""
        if holder == "user":
            return self.user(account, name).policies
        if holder == "group":
            return self.group(account, name).policies
        return self._account(account).policies

    def policy(self, holder: Holder, account: str, name: str, policy_name: str) -> str:
        found = self.policies(holder, account, name).get(policy_name)
        if found is None:
            raise NoSuchEntity(f"The {holder} policy with name {policy_name} cannot be found.")
        return found

    def put_policy(self, holder: Holder, account: str, name: str, policy_name: str, text: str) -> None:
        """Check the document (MalformedPolicyDocument), then attach it, replacing one of that name."""
        if not _POLICY.match(policy_name):
            raise ValidationError(f"The policy name {policy_name!r} must be 1 to 128 letters, digits and +=,.@_-")
        try:
            compile_policy(text)
        except PolicyError as exc:
            raise MalformedPolicyDocument(str(exc)) from None
        policies = dict(self.policies(holder, account, name))
        policies[policy_name] = text
        size = sum(len("".join(t.split())) for t in policies.values())
        most = {"user": MAX_USER_POLICY, "group": MAX_GROUP_POLICY, "account": MAX_ACCOUNT_POLICY}[holder]
        if size > most:
            raise LimitExceeded(f"Maximum policy size of {most} bytes exceeded for {holder} {name or account}")
        self._write_policies(holder, account, name, policies)

    def delete_policy(self, holder: Holder, account: str, name: str, policy_name: str) -> None:
        self.policy(holder, account, name, policy_name)
        policies = {k: v for k, v in self.policies(holder, account, name).items() if k != policy_name}
        self._write_policies(holder, account, name, policies)

    def _write_policies(self, holder: Holder, account: str, name: str, policies: dict[str, str]) -> None:
        if holder == "user":
            self._rewrite_user(replace(self.user(account, name), policies=policies))
        elif holder == "group":
            self._write_group(replace(self.group(account, name), policies=policies))
        else:
            self._write_account(replace(self._account(account), policies=policies))

    def principal(self, caller: Caller) -> Principal:
        """The caller's compiled policies: its account's, its own and its groups'; built once per
        change of the directory."""
        key = (caller.account, caller.user)
        found = self._principals.get(key)
        if found is None:
            account = self._accounts.get(caller.account)
            user = self._users.get((caller.account, _fold(caller.user)))
            documents: list[str] = list(user.policies.values()) if user else []
            for group in self.groups_of(caller.account, user.name if user else caller.user):
                documents += group.policies.values()
            account_documents = list(account.policies.values()) if account else []
            found = Principal(caller.account_id, [self._compiled[t] for t in documents],
                              [self._compiled[t] for t in account_documents],
                              system_admin=caller.admin, account_admin=caller.user == ADMIN)
            self._principals[key] = found
        return found

    def allows(self, caller: Caller, action: str, resources: Iterable[str], source_ip: str,
               context: Mapping[str, Any] | None = None) -> bool:
        """May the caller do ``action`` (``ec2:RunInstances``, ``iam:CreateUser``) on every one of
        ``resources`` (ARNs, or ``*``)? The policy engine's decision with the request's context:
        ``aws:SourceIp``, ``aws:CurrentTime`` and the service's own keys in ``context``. The one
        question the EC2, IAM and console endpoints ask for every request they authorize."""
        if caller.admin:
            return True
        principal = self.principal(caller)
        if principal.account_admin and not principal.account_policies:
            return True  # nothing on the account can deny its administrator
        asked = {SOURCE_IP: source_ip, CURRENT_TIME: time.time(), **(context or {})}
        return all(authorize(principal, action, resource, asked) for resource in resources)

    def summary(self, account: str) -> dict[str, int]:
        """GetAccountSummary's counts and IAM's limits as this cloud has them."""
        users = [u for (a, _), u in self._users.items() if a == account]
        groups = [g for (a, _), g in self._groups.items() if a == account]
        return {
            "Users": len(users), "Groups": len(groups),
            "UserPolicies": sum(len(u.policies) for u in users),
            "GroupPolicies": sum(len(g.policies) for g in groups),
            "AccessKeysPerUserQuota": MAX_KEYS, "SigningCertificatesPerUserQuota": MAX_CERTS,
            "GroupsPerUserQuota": MAX_GROUPS_PER_USER, "UserPolicySizeQuota": MAX_USER_POLICY,
            "GroupPolicySizeQuota": MAX_GROUP_POLICY, "AccountAccessKeysPresent": int(bool(self.keys_of(account))),
            "AccountMFAEnabled": 0, "MFADevices": 0, "MFADevicesInUse": 0, "Policies": 0,
            "AttachedPoliciesPerUserQuota": 10, "AttachedPoliciesPerGroupQuota": 10,
        }
