"""``euca storage-controller``: run a zone's Storage Controller (SC) as an HTTP service (port 8773)."""

from __future__ import annotations

import argparse
import logging
import sys

from euca.cli._keys import shared_key

log = logging.getLogger("euca.storage")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database", required=True, help="the cloud's store: a SQLite file or postgresql://...")
    parser.add_argument("--data-dir", default="/var/lib/eucalyptus/volumes", help="where overlay volumes live")
    parser.add_argument("--zone", default="cluster01", help="the availability zone this SC serves")
    parser.add_argument("--backend", choices=("overlay", "das"), default="overlay")
    parser.add_argument("--vg", help="the LVM volume group of the das back end")
    parser.add_argument("--iscsi-host", default="127.0.0.1", help="the address nodes reach tgtd on")
    parser.add_argument("--iscsi-port", type=int, default=3260, help="tgtd's iSCSI portal port (3260)")
    parser.add_argument("--tgt-control-port", type=int,
                        help="tgtd's control port, for a tgtd started with -C (tgtadm's default otherwise)")
    parser.add_argument("--no-iscsi", action="store_true", help="no tgtd here: volumes cannot be exported")
    parser.add_argument("--max-volume", type=int, default=100, help="GiB per volume (Eucalyptus 4: 100)")
    parser.add_argument("--max-total", type=int, default=500, help="GiB of volumes per account (Eucalyptus 4: 500)")
    parser.add_argument("--failed-ttl", type=float, default=600.0,
                        help="seconds a failed volume is kept before it is removed (600)")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8773)
    parser.add_argument("--key", help="the key shared with the cloud (or EUCA_SC_KEY, or --key-file)")
    parser.add_argument("--key-file", help="a file holding the shared key")
    parser.add_argument("--log-level", default="info")


def run(args: argparse.Namespace) -> int:
    from euca.core.serving import serve
    from euca.storage import Backend, Das, Limits, Overlay, StorageController, StorageError, Tgt
    from euca.storage.service import create_app
    from euca.store import Store

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        key = shared_key(args.key, args.key_file, "EUCA_SC_KEY")
    except ValueError as exc:
        print(f"euca: {exc}", file=sys.stderr)
        return 2
    if not key:
        print("euca: a storage controller needs the key shared with the cloud (--key, --key-file or EUCA_SC_KEY)",
              file=sys.stderr)
        return 2
    if min(args.max_volume, args.max_total) < 1 or args.failed_ttl < 0:
        print("euca: --max-volume and --max-total are at least 1 GiB; --failed-ttl is not negative", file=sys.stderr)
        return 2
    try:
        if args.backend == "das" and not args.vg:
            raise StorageError("the das back end needs --vg")
        backend: Backend = Das(args.vg) if args.backend == "das" else Overlay(args.data_dir)
        store = Store(args.database)
    except (StorageError, OSError, RuntimeError) as exc:
        print(f"euca: {exc}", file=sys.stderr)
        return 2
    tgt = None if args.no_iscsi else Tgt(args.iscsi_host, args.iscsi_port, control_port=args.tgt_control_port)
    sc = StorageController(store, backend, args.zone, tgt=tgt,
                           limits=Limits(args.max_volume, args.max_total, args.failed_ttl))
    for volume_id in sc.restore():
        log.info("%s: exported again", volume_id)
    try:
        # the failed are looked for often enough to be removed close to their time
        reap = min(60.0, max(0.5, args.failed_ttl / 4))
        serve(create_app(sc, key, reap_seconds=reap), args.host, args.port, f"storage controller on http://{args.host}:{args.port}/sc/",
              log_level="warning", access_log=False)
    finally:
        store.close()
    return 0
