"""``euca vmtype``: the VM types users may ask for (set, list)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from euca.cli._store import store_args, with_store

if TYPE_CHECKING:
    from euca.store import Store


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = actions.add_parser("set", help="add or change a VM type (a running server takes it within a second)")
    p.add_argument("name")
    p.add_argument("--cores", type=int, required=True)
    p.add_argument("--memory", type=int, required=True, help="MB")
    p.add_argument("--disk", type=int, required=True, help="GB")
    store_args(p)
    store_args(actions.add_parser("list", help="list VM types"))


def run(args: argparse.Namespace) -> int:
    return with_store(args, lambda store: _run(args, store))


def _run(args: argparse.Namespace, store: Store) -> int:
    from euca.cluster import VmType
    from euca.services.cloud import stored_vmtypes
    from euca.services.common import ADMIN

    if args.action == "set":
        vm = VmType(args.name, args.cores, args.memory, args.disk)
        with store.transaction() as tx:
            tx.put("vmtype", vm.name, ADMIN, {"cores": vm.cores, "memory": vm.memory, "disk": vm.disk})
            tx.changed("vmtype")
    for t in stored_vmtypes(store):
        print(f"{t.name}\t{t.cores}\t{t.memory}\t{t.disk}")
    return 0
