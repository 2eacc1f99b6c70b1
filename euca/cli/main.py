"""The ``euca`` command line: one entry point whose subcommands grow with the cloud.

Building the parser imports only the subcommand modules, which import nothing heavy at module
level: ``euca config check`` loads neither botocore nor the cluster controller.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from euca import __version__
from euca.cli import (
    account,
    bundle,
    config,
    image,
    network_agent,
    node,
    node_controller,
    policy,
    storage_controller,
    up,
    user,
    vmtype,
)

Run = Callable[[argparse.Namespace], int]


def _passthrough(commands: argparse._SubParsersAction, name: str, help: str) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser(name, help=help, add_help=False)
    parser.add_argument("rest", nargs=argparse.REMAINDER)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="euca", description="A Eucalyptus-style private cloud.")
    parser.add_argument("--version", action="version", version=f"euca {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    runs: dict[str, Run] = {}
    subcommands: tuple[tuple[str, str, Callable[[argparse.ArgumentParser], None], Run], ...] = (
        ("up", "start the cloud in a box (EC2 API, cluster, nodes)", up.add_arguments, up.run),
        ("node-controller", "run this host's node controller (NC)", node_controller.add_arguments,
         node_controller.run),
        ("storage-controller", "run a zone's Storage Controller (EBS volumes, iSCSI exports)",
         storage_controller.add_arguments, storage_controller.run),
        ("network-agent", "run this host's network agent (rules, DHCP, metadata DNAT)", network_agent.add_arguments,
         network_agent.run),
        ("account", "cloud accounts, their access keys and certificates", account.add_arguments, account.run),
        ("user", "an account's users and their access keys", user.add_arguments, user.run),
        ("policy", "policies and quotas on accounts, groups and users", policy.add_arguments, policy.run),
        ("node", "the cluster's nodes", node.add_arguments, node.run),
        ("image", "register, list and remove images", image.add_arguments, image.run),
        ("bundle-image", "bundle an image file for Walrus (as euca-bundle-image)", bundle.add_bundle_image,
         bundle.run_bundle_image),
        ("upload-bundle", "upload a bundle to a Walrus bucket", bundle.add_upload_bundle, bundle.run_upload_bundle),
        ("download-bundle", "download a bundle from Walrus", bundle.add_download_bundle, bundle.run_download_bundle),
        ("unbundle", "check, decrypt and unpack a bundle into its image file", bundle.add_unbundle,
         bundle.run_unbundle),
        ("vmtype", "VM types (cores, memory, disk)", vmtype.add_arguments, vmtype.run),
        ("config", "check an eucalyptus.conf file", config.add_arguments, config.run),
    )
    for name, help, add_arguments, run in subcommands:
        add_arguments(commands.add_parser(name, help=help))
        runs[name] = run
    _passthrough(commands, "bench", "run the benchmark table (same as python -m bench)")
    _passthrough(commands, "sim", "plan capacity: simulate the cluster controller (run, sweep)")

    args = parser.parse_args(argv)
    if args.command in runs:
        return runs[args.command](args)
    if args.command == "bench":
        from bench.__main__ import main as bench_main

        return bench_main(args.rest)
    if args.command == "sim":
        from sim.cli import main as sim_main

        return sim_main(args.rest)
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
