"""``euca account``: cloud accounts, their access keys and certificates (add, list, keys, cert)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from euca.cli._store import store_args, with_store

if TYPE_CHECKING:
    from euca.store import Store


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = actions.add_parser("add", help="create an account and its access key")
    p.add_argument("name")
    store_args(p)
    store_args(actions.add_parser("list", help="list accounts"))
    p = actions.add_parser("keys", help="an account's access keys: print them, or create, deactivate, "
                           "activate or delete one")
    p.add_argument("name")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--create", action="store_true", help="a new key (an account has at most two)")
    how.add_argument("--deactivate", metavar="ACCESS_KEY", help="refuse every request signed with this key")
    how.add_argument("--activate", metavar="ACCESS_KEY", help="accept a deactivated key again")
    how.add_argument("--delete", metavar="ACCESS_KEY", help="remove the key for good")
    store_args(p)
    p = actions.add_parser("cert", help="the account's certificate, signed by the cloud, and its private key "
                           "(euca-NAME-cert.pem and -pk.pem in the data directory), for bundling images")
    p.add_argument("name")
    store_args(p)


def run(args: argparse.Namespace) -> int:
    return with_store(args, lambda store: _run(args, store))


def _run(args: argparse.Namespace, store: Store) -> int:
    from euca.services.accounts import Accounts

    accounts = Accounts(store)
    if args.action == "add":
        account, key = accounts.create(args.name)
        print(f"{account.name}\t{account.account_id}\t{key.access_key}\t{key.secret_key}")
        return 0
    if args.action == "list":
        for a in accounts.all():
            print(f"{a.name}\t{a.account_id}\t{'admin' if a.admin else 'user'}")
        return 0
    named = accounts.get(args.name)
    if named is None:
        raise ValueError(f"no account named {args.name!r}")
    if args.action == "cert":
        from euca.auth.certs import user_credentials

        written = user_credentials(Path(args.data_dir), named.name, named.account_id)
        print(f"{written.cert}\n{written.key}")
        return 0
    if args.create:
        accounts.add_key(args.name)
    elif args.deactivate:
        accounts.set_key_active(args.name, args.deactivate, False)
    elif args.activate:
        accounts.set_key_active(args.name, args.activate, True)
    elif args.delete:
        accounts.delete_key(args.name, args.delete)
    for k in accounts.keys_of(args.name):
        print(f"{k.access_key}\t{k.secret_key}\t{'Active' if k.active else 'Inactive'}")
    return 0
