"""The S3 REST endpoint (Walrus): ``create_s3_app`` over a ``Walrus`` built by ``open_walrus``."""

from __future__ import annotations

from pathlib import Path

from euca.api.s3.app import PREFIX, S3Api
from euca.services.accounts import Accounts
from euca.services.cloud import Cloud
from euca.walrus import Requester, Walrus, canonical_id


class AccountDirectory:
    """Walrus's view of the cloud's accounts (``euca.walrus.Directory``)."""

    def __init__(self, accounts: Accounts) -> None:
        self.accounts = accounts

    def _requester(self, name: str) -> Requester | None:
        account = self.accounts.get(name)
        return Requester(account.name, account.account_id, account.admin) if account else None

    def by_account_id(self, account_id: str) -> Requester | None:
        account = self.accounts.by_id(account_id)
        return Requester(account.name, account.account_id, account.admin) if account else None

    def by_canonical_id(self, cid: str) -> Requester | None:
        for account in self.accounts.all():
            if canonical_id(account.account_id) == cid:
                return Requester(account.name, account.account_id, account.admin)
        return None

    def admin(self) -> Requester | None:
        return self._requester("admin")

    def credentials(self, account: str) -> tuple[str, str] | None:
        keys = [k for k in self.accounts.keys_of(account) if k.active]
        return (keys[0].access_key, keys[0].secret_key) if keys else None


def open_walrus(cloud: Cloud, data_dir: Path, endpoint: str = "", min_free: float = 0.10,
                fsync: bool = True) -> Walrus:
    """The cloud's Walrus over ``<data_dir>/walrus``, with the orphans of a crash swept away."""
    walrus = Walrus(cloud.store, data_dir / "walrus", AccountDirectory(cloud.accounts), min_free=min_free,
                    endpoint=endpoint, fsync=fsync)
    walrus.sweep()
    return walrus


def create_s3_app(cloud: Cloud, walrus: Walrus, prefix: str = PREFIX, domains: tuple[str, ...] = ()) -> S3Api:
    def requester_of(access_key: str) -> Requester:
        caller = cloud.accounts.caller(access_key)
        return Requester(caller.account, caller.account_id, caller.admin)

    return S3Api(walrus, cloud.accounts.secret, requester_of, cloud.refresh, prefix, domains)


__all__ = ["PREFIX", "AccountDirectory", "S3Api", "create_s3_app", "open_walrus"]
