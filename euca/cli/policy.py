"""``euca policy``: policies on users, groups and accounts (an account's hold its quotas:
``"Effect": "Limit"`` statements), applied by running servers at their next request."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from euca.cli._store import store_args, with_store

if TYPE_CHECKING:
    from euca.store import Store


def _target(p: argparse.ArgumentParser) -> None:
    p.add_argument("account")
    who = p.add_mutually_exclusive_group()
    who.add_argument("--user", help="a user of the account")
    who.add_argument("--group", help="a group of the account")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = actions.add_parser("put", help="attach a policy document (a file, or - for standard input) to the account "
                           "(quotas), a --user or a --group, replacing one of that name")
    _target(p)
    p.add_argument("name")
    p.add_argument("document")
    store_args(p)
    p = actions.add_parser("list", help="the policies of the account, a --user or a --group, with their documents")
    _target(p)
    store_args(p)
    p = actions.add_parser("delete", help="remove a policy")
    _target(p)
    p.add_argument("name")
    store_args(p)


def run(args: argparse.Namespace) -> int:
    return with_store(args, lambda store: _run(args, store))


def _run(args: argparse.Namespace, store: Store) -> int:
    from euca.services.accounts import Accounts, Holder

    accounts = Accounts(store)
    holder: Holder = "user" if args.user else "group" if args.group else "account"
    name = args.user or args.group or ""
    if accounts.get(args.account) is None:
        raise ValueError(f"no account named {args.account!r}")
    if args.action == "put":
        text = sys.stdin.read() if args.document == "-" else Path(args.document).read_text()
        accounts.put_policy(holder, args.account, name, args.name, text)
    elif args.action == "delete":
        accounts.delete_policy(holder, args.account, name, args.name)
    else:
        for policy_name, text in sorted(accounts.policies(holder, args.account, name).items()):
            print(f"{policy_name}\t{' '.join(text.split())}")
    return 0
