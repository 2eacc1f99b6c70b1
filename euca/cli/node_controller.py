"""``euca node-controller``: run this host's node controller (NC) as an HTTP service on NC_PORT.

Images come from Walrus: ncRunInstance carries a presigned URL, size and digest for each of the
instance's images, so the node needs no view of the cloud's data directory. ``--images`` only
resolves a relative file path that an image record from before Walrus still names.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from euca.cli._keys import shared_key

if TYPE_CHECKING:
    from euca.node import NodeController

log = logging.getLogger("euca.node")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="eucalyptus.conf (HYPERVISOR, INSTANCE_PATH, NC_PORT, NC_CACHE_SIZE, ...)")
    parser.add_argument("--uri", help="libvirt URI (default from HYPERVISOR: qemu:///system or xen:///system)")
    parser.add_argument("--sim", action="store_true", help="a simulated hypervisor instead of libvirt (trying out)")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, help="default NC_PORT (8775)")
    parser.add_argument("--key", help="the key shared with the cluster (or EUCA_NODE_KEY, or --key-file)")
    parser.add_argument("--key-file", help="a file holding the shared key")
    parser.add_argument("--images", help="directory that relative file locations (image records from before "
                        "Walrus) are resolved against; images in Walrus are downloaded by URL")
    parser.add_argument("--network-agent", metavar="CLOUD_URL",
                        help="also run this host's network agent (euca network-agent) against the cloud's API, "
                             "e.g. http://10.0.0.5:8773, with this node's key and eucalyptus.conf's VNET_ settings; "
                             "it stops with the node controller (none in VNET_MODE SYSTEM)")
    parser.add_argument("--node-name", default=os.uname().nodename,
                        help="--network-agent: the name euca node add registered this node under (default: host name)")
    parser.add_argument("--network-agent-args", default="",
                        help='--network-agent: more of its options, e.g. "--mode EDGE" or "--segments vxlan '
                             '--vxlan-local IP --vxlan-remote IP"')
    parser.add_argument("--log-level", default="info")


def build(args: argparse.Namespace) -> tuple[NodeController, int]:
    from drivers.protocol import Driver
    from euca.core.config import Config, load_config
    from euca.node import ImageSources, LocalFiles, NodeController, NodeStorage

    config = load_config(args.config) if args.config else Config()
    driver: Driver
    if args.sim:
        from drivers.sim import NodeShape, SimNode

        driver = SimNode(os.uname().nodename, NodeShape())
    else:
        from drivers.libvirt import DomainLayout

        try:
            from drivers.libvirt import LibvirtDriver
        except ImportError:
            raise ValueError("a libvirt node needs libvirt-python: pip install 'euca[libvirt]' "
                             "(it builds against Debian's libvirt-dev and pkg-config); --sim runs without it") from None

        uri = args.uri or ("xen:///system" if config.hypervisor == "xen" else "qemu:///system")
        # MANAGED: an instance goes on its group's segment, as Eucalyptus's NC plugs it into eucabr<vlan>
        layout = DomainLayout(config.hypervisor, config.vnet_bridge, vlan_bridges=config.vnet_mode == "MANAGED")
        driver = LibvirtDriver(uri, layout=layout,
                               instance_path=config.instance_path,
                               overrides=(config.max_cores, config.max_mem, config.max_disk))
    source = ImageSources(LocalFiles(Path(args.images) if args.images else None))
    storage = NodeStorage(config.instance_path, source,
                          cache_size_mb=config.nc_cache_size, concurrent_disk_ops=config.concurrent_disk_ops,
                          swap_mb=config.swap_size)
    nc = NodeController(driver, storage, name=os.uname().nodename)
    for instance_id in nc.recover():
        log.info("removed the leftovers of %s", instance_id)
    return nc, args.port or config.nc_port


def run(args: argparse.Namespace) -> int:
    from drivers.protocol import NodeError
    from euca.core.config import ConfigError
    from euca.core.serving import serve
    from euca.node.service import create_app

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        key = shared_key(args.key, args.key_file, "EUCA_NODE_KEY")
    except ValueError as exc:
        print(f"euca: {exc}", file=sys.stderr)
        return 2
    if not key:
        print("euca: a node controller needs the key shared with its cluster (--key, --key-file or EUCA_NODE_KEY)",
              file=sys.stderr)
        return 2
    try:
        nc, port = build(args)
    except (ConfigError, NodeError, OSError, ValueError) as exc:
        print(f"euca: {exc}", file=sys.stderr)
        return 2
    agent = None
    if args.network_agent:
        from euca.cli import network_agent
        from euca.core.config import Config, load_config

        config = load_config(args.config) if args.config else Config()
        agent = network_agent.for_node(config, args.network_agent, args.node_name, key, args.network_agent_args)
        if agent is None:
            log.info("VNET_MODE is SYSTEM: no network agent on this node")
        else:
            log.info("network agent started (pid %d)", agent.pid)
    try:
        serve(create_app(nc, key), args.host, port, f"node controller on http://{args.host}:{port}/nc/",
              log_level="warning", access_log=False)
    finally:
        try:
            nc.close()
        finally:
            # the agent and its dnsmasq outlive a node controller that failed to close otherwise
            if agent is not None:
                network_agent.stop(agent)
    return 0
