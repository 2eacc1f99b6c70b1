"""``euca node``: register the cluster's nodes (in-box or remote node controllers) and list them."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from euca.cli._store import store_args, with_store

if TYPE_CHECKING:
    from euca.store import Store


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = actions.add_parser("add", help="register a node (a running server takes it within a second)")
    p.add_argument("name")
    p.add_argument("--cores", type=int, default=8)
    p.add_argument("--memory", type=int, default=16384, help="MB")
    p.add_argument("--disk", type=int, default=500, help="GB")
    p.add_argument("--url", help="a remote node controller, http://host:8775 (its capacity is what it reports)")
    p.add_argument("--key", help="the key shared with that node controller")
    store_args(p)
    store_args(actions.add_parser("list", help="list nodes"))


def run(args: argparse.Namespace) -> int:
    return with_store(args, lambda store: _run(args, store))


def _run(args: argparse.Namespace, store: Store) -> int:
    from euca.services.cloud import stored_nodes
    from euca.services.common import ADMIN

    if args.action == "list":
        for n in stored_nodes(store):
            print(f"{n.name}\t{n.url}" if n.url else f"{n.name}\t{n.cores} cores\t{n.memory} MB\t{n.disk} GB")
        return 0
    if any(v < 1 for v in (args.cores, args.memory, args.disk)):
        raise ValueError("--cores, --memory and --disk must be positive")
    if not args.name or len(args.name) > 255 or not args.name.isprintable() or any(c.isspace() for c in args.name):
        raise ValueError("a node name is a host name without spaces")
    if any(n.name == args.name for n in stored_nodes(store)):
        raise ValueError(f"node {args.name!r} is already registered")
    body: dict[str, object] = {"cores": args.cores, "memory": args.memory, "disk": args.disk}
    if args.url:
        if not args.url.startswith(("http://", "https://")) or not args.key:
            raise ValueError("a remote node needs --url http://host:port and --key")
        body |= {"url": args.url, "key": args.key}
    with store.transaction() as tx:
        tx.put("node", args.name, ADMIN, body)
        tx.changed("node")
    print(f"node {args.name} added")
    return 0
