"""``euca user``: an account's users and their access keys (add, list, delete, keys)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from euca.cli._store import store_args, with_store

if TYPE_CHECKING:
    from euca.store import Store


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, help in (("add", "create a user and its access key"), ("delete", "delete a user, its keys and policies")):
        p = actions.add_parser(name, help=help)
        p.add_argument("account")
        p.add_argument("user")
        store_args(p)
    p = actions.add_parser("list", help="an account's users")
    p.add_argument("account")
    store_args(p)
    p = actions.add_parser("keys", help="a user's access keys: print them, or create, deactivate, activate or "
                           "delete one")
    p.add_argument("account")
    p.add_argument("user")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--create", action="store_true", help="a new key (a user has at most two)")
    how.add_argument("--deactivate", metavar="ACCESS_KEY", help="refuse every request signed with this key")
    how.add_argument("--activate", metavar="ACCESS_KEY", help="accept a deactivated key again")
    how.add_argument("--delete", metavar="ACCESS_KEY", help="remove the key for good")
    store_args(p)


def run(args: argparse.Namespace) -> int:
    return with_store(args, lambda store: _run(args, store))


def _run(args: argparse.Namespace, store: Store) -> int:
    from euca.services.accounts import Accounts

    accounts = Accounts(store)
    if accounts.get(args.account) is None:
        raise ValueError(f"no account named {args.account!r}")
    if args.action == "list":
        for u in accounts.users(args.account):
            print(f"{u.name}\t{u.user_id}\t{u.arn(accounts.get(args.account).account_id)}")  # type: ignore[union-attr]
        return 0
    if args.action == "add":
        user = accounts.create_user(args.account, args.user)
        key = accounts.create_user_key(args.account, user.name)
        print(f"{user.name}\t{user.user_id}\t{key.access_key}\t{key.secret_key}")
        return 0
    if args.action == "delete":
        accounts.remove_user(args.account, args.user)
        return 0
    user = accounts.user(args.account, args.user)
    if args.create:
        accounts.create_user_key(args.account, user.name)
    elif args.deactivate:
        accounts.set_user_key_active(args.account, user.name, args.deactivate, False)
    elif args.activate:
        accounts.set_user_key_active(args.account, user.name, args.activate, True)
    elif args.delete:
        accounts.delete_user_key(args.account, user.name, args.delete)
    for k in accounts.user_keys(args.account, user.name):
        print(f"{k.access_key}\t{k.secret_key}\t{'Active' if k.active else 'Inactive'}")
    return 0
