"""``euca up``: the cloud in a box — the EC2 API, the cluster controller and simulated nodes in one process.

State lives in a data directory (``euca.db``, SQLite in WAL mode, unless ``--database`` names a
PostgreSQL URL). On first start the admin account and its access key are created, and a public
default machine image is registered; the keys and the image id are printed and written to
``eucarc`` and ``aws-profile`` beside the database.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from euca.cli._store import database_url, store_args

if TYPE_CHECKING:
    from euca.core.config import Config
    from euca.fleet.box import NodeSpec
    from euca.storage import RemoteStorage

log = logging.getLogger("euca.up")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    store_args(parser)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8773)
    parser.add_argument("--config", help="an eucalyptus.conf for the cluster controller")
    parser.add_argument("--region", default="eucalyptus", help="the region's name (eucalyptus)")
    parser.add_argument("--zone", default="cluster01", help="the cluster's availability zone (cluster01)")
    parser.add_argument("--nodes", type=int, default=4, help="simulated nodes to create on first start (4)")
    parser.add_argument("--node-cores", type=int, default=8)
    parser.add_argument("--node-memory", type=int, default=16384, help="MB")
    parser.add_argument("--node-disk", type=int, default=500, help="GB")
    parser.add_argument("--boot-time", type=float, default=20.0, help="seconds pending before running (20)")
    parser.add_argument("--shutdown-time", type=float, default=10.0,
                        help="seconds shutting-down before terminated (10)")
    parser.add_argument("--bury-time", type=float, default=3600.0,
                        help="seconds a terminated instance stays visible (BURY_TIME, 3600)")
    parser.add_argument("--sync", choices=("normal", "full"), default="normal",
                        help="SQLite synchronous mode, and whether S3 object bodies are fsynced: normal survives a "
                        "killed server, full a power cut")
    parser.add_argument("--node-key", help="the key shared with the node controllers named in NODES "
                        "(or EUCA_NODE_KEY)")
    parser.add_argument("--s3-port", type=int, help="also serve S3 (Walrus) on this port, path style at / and "
                        "virtual-hosted style (<bucket>.<host>)")
    parser.add_argument("--s3-min-free", type=float, default=0.10,
                        help="refuse S3 writes when less than this fraction of the disk is free (0.10)")
    parser.add_argument("--storage-controller", metavar="URL",
                        help="the zone's Storage Controller: a euca storage-controller at http://host:8773 instead "
                        "of the one in this process")
    parser.add_argument("--storage-key", help="the key shared with that storage controller (or EUCA_SC_KEY)")
    parser.add_argument("--storage-key-file", help="a file holding the key shared with that storage controller")
    parser.add_argument("--log-level", default="info")


def remote_storage(args: argparse.Namespace) -> RemoteStorage | None:
    """--storage-controller: the SC at that URL, sharing --storage-key (or the file, or EUCA_SC_KEY).
    Raises ValueError for a bad URL or a missing key."""
    url = getattr(args, "storage_controller", None)
    if not url:
        return None
    from euca.cli._keys import shared_key
    from euca.storage import RemoteStorage

    key = shared_key(args.storage_key, args.storage_key_file, "EUCA_SC_KEY", "--storage-key-file")
    if not key:
        raise ValueError("--storage-controller needs the key it shares with the cloud "
                         "(--storage-key, --storage-key-file or EUCA_SC_KEY)")
    return RemoteStorage(url, key, args.zone)


def write_credentials(data_dir: Path, url: str, access_key: str, secret: str, account_id: str,
                      image_id: str = "", region: str = "eucalyptus") -> None:
    from euca.auth.certs import eucarc_lines

    data_dir.mkdir(parents=True, exist_ok=True)
    eucarc = data_dir / "eucarc"
    eucarc.write_text(
        f"export EC2_URL={url}/services/Eucalyptus\n"
        f"export S3_URL={url}/services/Walrus\n"
        f"export EUARE_URL={url}/services/Euare\n"
        f"export AWS_IAM_URL={url}/services/Euare\n"
        f"export EC2_ACCESS_KEY={access_key}\n"
        f"export EC2_SECRET_KEY={secret}\n"
        f"export EC2_ACCOUNT_ID={account_id}\n"
        f"export AWS_ACCESS_KEY_ID={access_key}\n"
        f"export AWS_SECRET_ACCESS_KEY={secret}\n"
        f"export AWS_DEFAULT_REGION={region}\n"
        + (f"export EUCA_DEFAULT_IMAGE={image_id}\n" if image_id else "")
        + eucarc_lines(data_dir, "admin", account_id))
    (data_dir / "aws-profile").write_text(
        "# append to ~/.aws/credentials and use: aws --profile euca --endpoint-url "
        f"{url} ec2 ...\n[euca]\naws_access_key_id = {access_key}\naws_secret_access_key = {secret}\n"
        f"region = {region}\n")
    for path in (eucarc, data_dir / "aws-profile"):
        os.chmod(path, 0o600)


def remote_nodes(config: Config | None, args: argparse.Namespace) -> list[NodeSpec]:
    """NODES from eucalyptus.conf: node controllers at http://<host>:NC_PORT, sharing --node-key."""
    if config is None or not config.nodes:
        return []
    key = getattr(args, "node_key", None) or os.environ.get("EUCA_NODE_KEY", "")
    from euca.fleet.box import NodeSpec

    return [NodeSpec(host, url=f"http://{host}:{config.nc_port}", key=key) for host in config.nodes]


def _two_ports(main: Any, s3: Any, s3_port: int) -> Any:
    """One app for both listening sockets: requests that arrived on ``s3_port`` go to S3."""
    async def app(scope: Any, receive: Any, send: Any) -> None:
        server = scope.get("server")
        if scope["type"] == "http" and server is not None and server[1] == s3_port:
            await s3(scope, receive, send)
        else:
            await main(scope, receive, send)
    return app


def run(args: argparse.Namespace) -> int:
    from euca.api.app import create_app
    from euca.api.images import images_in_walrus, keep_images
    from euca.api.netview import NetViewApp, node_keys
    from euca.api.s3 import create_s3_app, open_walrus
    from euca.auth.certs import cloud_credentials
    from euca.console import create_console
    from euca.core.config import ConfigError, load_config
    from euca.core.serving import serve
    from euca.fleet.box import Timings
    from euca.services.cloud import Cloud
    from euca.services.common import ADMIN
    from euca.services.seed import first_start
    from euca.store import Store

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    data_dir = Path(args.data_dir)
    for what, name in (("--region", args.region), ("--zone", args.zone)):
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,62}", name):
            print(f"euca: {what} {name!r}: lower-case letters, digits and '-', at most 63", file=sys.stderr)
            return 2
    if min(args.nodes, args.node_cores, args.node_memory, args.node_disk) < 0 or args.port not in range(0, 65536):
        print("euca: --nodes, --node-cores, --node-memory, --node-disk and --port must not be negative",
              file=sys.stderr)
        return 2
    try:
        config = load_config(args.config) if args.config else None
    except ConfigError as exc:
        print(f"euca: {exc}", file=sys.stderr)
        return 2
    try:
        storage = remote_storage(args)
    except ValueError as exc:
        print(f"euca: {exc}", file=sys.stderr)
        return 2
    extra = remote_nodes(config, args)
    if extra:
        args.nodes = 0  # NODES names the cluster's nodes: no simulated ones beside them
    store = Store(database_url(data_dir, args.database))
    store.set_synchronous(args.sync)
    seeded = first_start(store, images_in_walrus(store, data_dir), args.nodes, args.node_cores, args.node_memory,
                         args.node_disk)
    cloud_credentials(data_dir)  # the cloud's key and certificate (bundles, signed metadata), made once
    url = f"http://{args.host}:{args.port}"
    cloud = Cloud.open(store, config, Timings(args.boot_time, args.shutdown_time, args.bury_time), endpoint=url,
                       extra_nodes=extra, zone=args.zone, region=args.region, storage=storage)
    admin = cloud.accounts.get(ADMIN)
    assert admin is not None
    key = cloud.accounts.keys_of(ADMIN)[0]
    if seeded is not None or not (data_dir / "eucarc").exists():
        image = seeded.machine if seeded is not None else ""
        write_credentials(data_dir, url, key.access_key, key.secret_key, admin.account_id, image, args.region)
        print(f"admin account {admin.account_id}\n  access key {key.access_key}\n  secret key {key.secret_key}")
        if seeded is not None:
            print(f"default image {seeded.machine} (kernel {seeded.kernel}, ramdisk {seeded.ramdisk})")
        print(f"credentials written to {data_dir / 'eucarc'} and {data_dir / 'aws-profile'}")
    ready = f"EC2 API on {url}/services/Eucalyptus ({len(cloud.cc.nodes)} nodes, zone {cloud.cc.name})"
    if storage is not None:
        ready += f"; storage controller {storage.url}"
    # object bodies are as durable as the store's commits: --sync full fsyncs each one too
    walrus = open_walrus(cloud, data_dir, f"{url}/services/Walrus", args.s3_min_free, fsync=args.sync == "full")
    images = keep_images(cloud.images, data_dir, walrus)  # nodes fetch images from Walrus by presigned URL
    images.start()
    app = create_app(cloud, walrus=walrus, console=create_console)
    if config is not None and config.vnet_cloudip:
        # the nodes' metadata DNAT goes to VNET_CLOUDIP at the port this API really listens on
        app.netview = NetViewApp(cloud, node_keys(cloud), f"{config.vnet_cloudip}:{args.port}")
    if args.s3_port is not None:
        s3 = create_s3_app(cloud, walrus, prefix="", domains=(args.host, "localhost"))
        app = _two_ports(app, s3, args.s3_port)
        ready += f"; S3 on http://{args.host}:{args.s3_port}"
    try:
        serve(app, args.host, args.port, ready, loop="uvloop", http="httptools",
              log_level="warning", lifespan="on", access_log=False, extra_port=args.s3_port, save_syn=True)
    finally:
        images.close()
        cloud.close()
        store.close()
    return 0
