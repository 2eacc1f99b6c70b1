"""``euca image``: register images from local files, list them, deregister them.

A running server sees each change within a second. ``import`` stores the files in Walrus
(``euca-images/<image id>``, where nodes download them from; a kernel or ramdisk imported twice is
kept and registered once) and registers an eki-, an eri- and an emi- as the admin account;
``--kernel-id`` / ``--ramdisk-id`` launch a new machine image with ones already registered.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from euca.cli._store import store_args, with_store

if TYPE_CHECKING:
    from euca.store import Store


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = actions.add_parser("import", help="copy a root file system (and a kernel and ramdisk) in and register them")
    p.add_argument("--root", required=True, help="the machine image's root disk")
    kernel = p.add_mutually_exclusive_group(required=True)
    kernel.add_argument("--kernel", help="a kernel file")
    kernel.add_argument("--kernel-id", help="a registered kernel (eki-...)")
    ramdisk = p.add_mutually_exclusive_group(required=True)
    ramdisk.add_argument("--ramdisk", help="a ramdisk file")
    ramdisk.add_argument("--ramdisk-id", help="a registered ramdisk (eri-...)")
    p.add_argument("--name", help="the machine image's name (default: the root file's name)")
    p.add_argument("--private", action="store_true", help="launchable by the admin account only")
    store_args(p)
    store_args(actions.add_parser("list", help="list every image"))
    p = actions.add_parser("deregister", help="remove an image (running instances keep running)")
    p.add_argument("image_id")
    store_args(p)


def run(args: argparse.Namespace) -> int:
    return with_store(args, lambda store: _run(args, store))


def _run(args: argparse.Namespace, store: Store) -> int:
    from euca.api.images import images_in_walrus
    from euca.services.seed import import_files

    images = images_in_walrus(store, Path(args.data_dir))
    if args.action == "list":
        for i in images.all():
            print("\t".join(["IMAGE", i.image_id, i.location, i.account, i.state,
                             "public" if i.public else "private", i.architecture, i.kind,
                             i.kernel_id, i.ramdisk_id, i.name]))
        return 0
    if args.action == "deregister":
        images.deregister(images.admin_caller(), args.image_id)
        print(f"IMAGE\t{args.image_id}")
        return 0
    files = [Path(f) for f in (args.root, args.kernel, args.ramdisk) if f]
    for path in files:
        if not path.is_file():
            raise ValueError(f"{path}: no such file")
    done = import_files(images, Path(args.root),
                        kernel=Path(args.kernel) if args.kernel else None,
                        ramdisk=Path(args.ramdisk) if args.ramdisk else None,
                        kernel_id=args.kernel_id, ramdisk_id=args.ramdisk_id, name=args.name,
                        public=not args.private)
    print(f"IMAGE\t{done.kernel}\tkernel\nIMAGE\t{done.ramdisk}\tramdisk\nIMAGE\t{done.machine}\tmachine")
    return 0
