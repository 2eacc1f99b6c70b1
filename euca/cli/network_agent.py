"""``euca network-agent``: this node's network agent (eucanetd). It polls the cloud's network view
and keeps the host's bridges, iptables chains, ipsets, ebtables and dnsmasq matching it. Runs as
root on each node (EDGE, and MANAGED's segments) and on the routing host (MANAGED, MANAGED-NOVLAN,
STATIC's DHCP). ``euca node-controller --network-agent`` runs it beside the node controller
(``for_node``), as Eucalyptus 4's NC relied on eucanetd on its host."""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from euca.core.config import Config

KEY_VARIABLE = "EUCA_NODE_KEY"  # the key, when --key is not given (how the node controller hands it over)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cloud", required=True, help="the cloud's API URL, e.g. http://10.0.0.5:8773")
    parser.add_argument("--node", required=True, help="this node's name, as registered with euca node add")
    parser.add_argument("--key", help=f"the key this node was registered with (default: ${KEY_VARIABLE})")
    parser.add_argument("--mode", default="", choices=["", "EDGE"],
                        help="EDGE: enforce on this node over the cluster's addresses (default: the cluster's mode)")
    parser.add_argument("--role", default="router", choices=["router", "node"],
                        help="MANAGED, MANAGED-NOVLAN: router on the host that routes the group networks (the "
                             "CC's: gateways, group chains, NAT, DHCP), node on a host that only runs instances")
    parser.add_argument("--bridge", default="eucabr", help="the instances' bridge (VNET_BRIDGE)")
    parser.add_argument("--priv-interface", default="eth0", help="MANAGED: the segments' uplink (VNET_PRIVINTERFACE)")
    parser.add_argument("--segments", default="vlan", choices=["vlan", "vxlan"],
                        help="MANAGED: 802.1q sub-interfaces, or VXLAN with VNI = the group's tag")
    parser.add_argument("--vxlan-local", default="", help="VXLAN: this host's address")
    parser.add_argument("--vxlan-remote", action="append", default=[], help="VXLAN: another host (repeat)")
    parser.add_argument("--pub-interface", default="",
                        help="VNET_PUBINTERFACE: put each public address NATed here on it as a /32, so the "
                             "network upstream reaches it without a route (default: none put)")
    parser.add_argument("--dhcp-user", default="root", help="the user dnsmasq runs as (VNET_DHCPUSER)")
    parser.add_argument("--state-dir", default="/var/run/eucalyptus/net", help="dnsmasq's files")
    parser.add_argument("--poll", type=float, default=0.5, help="seconds between polls of the view")
    parser.add_argument("--min-interval", type=float, default=0.25, help="least seconds between two applies")
    parser.add_argument("--log-level", default="info")


def run(args: argparse.Namespace) -> int:
    from euca.net.agent import Agent, HttpView
    from euca.net.dhcp import Dhcp
    from euca.net.host import Host, run_command
    from euca.net.render import HostConfig

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    key = args.key or os.environ.get(KEY_VARIABLE, "")
    if not key:
        print(f"euca: the network agent needs its node's key (--key or {KEY_VARIABLE})", file=sys.stderr)
        return 2
    config = HostConfig(bridge=args.bridge, priv_interface=args.priv_interface, segments=args.segments,
                        vxlan_local=args.vxlan_local, vxlan_remotes=tuple(args.vxlan_remote), dhcp_user=args.dhcp_user,
                        pub_interface=args.pub_interface,
                        router=args.role == "router")
    agent = Agent(HttpView(args.cloud, args.node, key), Host(run_command()), config,
                  Dhcp(Path(args.state_dir), config), poll=args.poll, min_interval=args.min_interval, mode=args.mode)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    agent.run(stop)
    return 0


def node_argv(config: Config, cloud: str, node: str, extra: str = "") -> list[str]:
    """The agent's command line on a node controller's host, from the node's eucalyptus.conf:
    VNET_BRIDGE, VNET_PRIVINTERFACE, VNET_DHCPUSER, and in MANAGED and MANAGED-NOVLAN the node's
    role (the routing host is elsewhere). ``extra``: more options (``--mode EDGE``, ``--segments
    vxlan ...``), which win over these."""
    argv = [sys.executable, "-m", "euca.cli", "network-agent", "--cloud", cloud, "--node", node,
            "--priv-interface", config.vnet_privinterface, "--dhcp-user", config.vnet_dhcpuser]
    if config.vnet_bridge:
        argv += ["--bridge", config.vnet_bridge]
    if config.vnet_mode in ("MANAGED", "MANAGED-NOVLAN"):
        argv += ["--role", "node"]
    return argv + shlex.split(extra)


def for_node(config: Config, cloud: str, node: str, key: str, extra: str = "") -> subprocess.Popen[bytes] | None:
    """Start the agent for a node controller (None in SYSTEM mode: nothing to do on the node). It
    logs to the node controller's output; ``stop`` ends it."""
    if config.vnet_mode == "SYSTEM":
        return None
    return subprocess.Popen(node_argv(config, cloud, node, extra), stdin=subprocess.DEVNULL,
                            env={**os.environ, KEY_VARIABLE: key})


def stop(agent: subprocess.Popen[bytes]) -> None:
    """End an agent ``for_node`` started: SIGTERM (it stops its dnsmasq), then SIGKILL after 15 s."""
    if agent.poll() is None:
        agent.terminate()
        try:
            agent.wait(timeout=15)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait(timeout=5)
