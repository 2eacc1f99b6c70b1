"""The administrator's commands on a data directory: accounts, nodes, images, VM types.

They open the same store the server uses (SQLite in WAL mode lets both work at once). Accounts
and images added here are seen by a running server at the next request that needs them; nodes and
VM types are read when the server starts.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
from pathlib import Path

from euca.api.errors import ApiError
from euca.cluster import VmType
from euca.services.accounts import Accounts
from euca.services.cloud import stored_nodes, stored_vmtypes
from euca.services.common import ADMIN, Ids
from euca.services.images import Images
from euca.services.tags import Tags
from euca.store import Store
from euca.up import database_url


def add_arguments(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    def store_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data-dir", default="./euca-data")
        p.add_argument("--database", help="postgresql://... instead of the SQLite file in the data dir")

    account = commands.add_parser("account", help="cloud accounts and their access keys")
    acts = account.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = acts.add_parser("add", help="create an account and its access key")
    p.add_argument("name")
    store_args(p)
    store_args(acts.add_parser("list", help="list accounts"))
    p = acts.add_parser("keys", help="print an account's access and secret keys")
    p.add_argument("name")
    store_args(p)

    node = commands.add_parser("node", help="the cluster's nodes")
    acts = node.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = acts.add_parser("add", help="register a node (read when the server starts)")
    p.add_argument("name")
    p.add_argument("--cores", type=int, default=8)
    p.add_argument("--memory", type=int, default=16384, help="MB")
    p.add_argument("--disk", type=int, default=500, help="GB")
    p.add_argument("--url", help="a remote node controller, http://host:8775 (its capacity is what it reports)")
    p.add_argument("--key", help="the key shared with that node controller")
    store_args(p)
    store_args(acts.add_parser("list", help="list nodes"))

    image = commands.add_parser("image", help="register images from local files")
    acts = image.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = acts.add_parser("import", help="copy a kernel, ramdisk and root file system in and register them")
    p.add_argument("--kernel", required=True)
    p.add_argument("--ramdisk", required=True)
    p.add_argument("--root", required=True)
    p.add_argument("--name", help="the machine image's name (default: the root file's name)")
    p.add_argument("--private", action="store_true", help="launchable by the admin account only")
    store_args(p)

    vmtype = commands.add_parser("vmtype", help="VM types (cores, memory, disk)")
    acts = vmtype.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = acts.add_parser("set", help="add or change a VM type (read when the server starts)")
    p.add_argument("name")
    p.add_argument("--cores", type=int, required=True)
    p.add_argument("--memory", type=int, required=True, help="MB")
    p.add_argument("--disk", type=int, required=True, help="GB")
    store_args(p)
    store_args(acts.add_parser("list", help="list VM types"))


def _store(args: argparse.Namespace) -> Store:
    return Store(database_url(Path(args.data_dir), args.database))


def main(args: argparse.Namespace) -> int:
    try:
        store = _store(args)
    except Exception as exc:
        print(f"euca: cannot open the store: {exc}", file=sys.stderr)
        return 2
    try:
        return _dispatch(args, store)
    except (ValueError, OSError, KeyError, ApiError) as exc:
        print(f"euca: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()


def _dispatch(args: argparse.Namespace, store: Store) -> int:
    command, action = args.command, args.action
    if command == "account":
        accounts = Accounts(store)
        if action == "add":
            account, key = accounts.create(args.name)
            print(f"{account.name}\t{account.account_id}\t{key.access_key}\t{key.secret_key}")
        elif action == "list":
            for a in accounts.all():
                print(f"{a.name}\t{a.account_id}\t{'admin' if a.admin else 'user'}")
        else:
            if accounts.get(args.name) is None:
                raise ValueError(f"no account named {args.name!r}")
            for k in accounts.keys_of(args.name):
                print(f"{k.access_key}\t{k.secret_key}")
    elif command == "node":
        if action == "add":
            _positive(args.cores, args.memory, args.disk)
            if any(n.name == args.name for n in stored_nodes(store)):
                raise ValueError(f"node {args.name!r} is already registered")
            if not args.name or any(c.isspace() for c in args.name):
                raise ValueError("a node name is a host name without spaces")
            body: dict[str, object] = {"cores": args.cores, "memory": args.memory, "disk": args.disk}
            if args.url:
                if not args.url.startswith("http://") or not args.key:
                    raise ValueError("a remote node needs --url http://host:port and --key")
                body |= {"url": args.url, "key": args.key}
            with store.transaction() as tx:
                tx.put("node", args.name, ADMIN, body)
            print(f"node {args.name} added; the server picks it up when it next starts")
        else:
            for n in stored_nodes(store):
                print(f"{n.name}\t{n.url}" if n.url else f"{n.name}\t{n.cores} cores\t{n.memory} MB\t{n.disk} GB")
    elif command == "vmtype":
        if action == "set":
            vm = VmType(args.name, args.cores, args.memory, args.disk)
            with store.transaction() as tx:
                tx.put("vmtype", vm.name, ADMIN, {"cores": vm.cores, "memory": vm.memory, "disk": vm.disk})
        for t in stored_vmtypes(store):
            print(f"{t.name}\t{t.cores}\t{t.memory}\t{t.disk}")
    elif command == "image":
        return _import(args, store)
    return 0


def _positive(*values: int) -> None:
    if any(v < 1 for v in values):
        raise ValueError("cores, memory and disk must be positive")


def _import(args: argparse.Namespace, store: Store) -> int:
    files = {"kernel": Path(args.kernel), "ramdisk": Path(args.ramdisk), "machine": Path(args.root)}
    for path in files.values():
        if not path.is_file():
            raise ValueError(f"{path}: no such file")
    accounts = Accounts(store)
    admin = accounts.get(ADMIN)
    if admin is None:
        admin, _ = accounts.create(ADMIN, admin=True)
    images = Images(store, Ids(store), accounts, Tags(store))
    target = Path(args.data_dir) / "images"
    target.mkdir(parents=True, exist_ok=True)
    registered: dict[str, str] = {}
    for kind in ("kernel", "ramdisk", "machine"):
        path = files[kind]
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        stored = target / f"{digest}-{path.name}"
        shutil.copyfile(path, stored)
        name = (args.name or path.name) if kind == "machine" else f"{path.name}-{digest[:8]}"
        machine = kind == "machine"
        registered[kind] = images.register(
            admin.caller, str(stored), name=name, kind=kind, public=not args.private,
            kernel_id=registered["kernel"] if machine else None, ramdisk_id=registered["ramdisk"] if machine else None)
    print(f"IMAGE\t{registered['kernel']}\tkernel\nIMAGE\t{registered['ramdisk']}\tramdisk\n"
          f"IMAGE\t{registered['machine']}\tmachine")
    return 0
