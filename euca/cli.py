"""The ``euca`` command line: one entry point whose subcommands grow with the cloud."""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields

from euca import __version__
from euca.config import Config, ConfigError, load_config


def _config_check(args: argparse.Namespace) -> int:
    """Load an eucalyptus.conf and print the settings in effect, or the first error."""
    try:
        config = load_config(args.file)
    except ConfigError as exc:
        print(f"euca: {exc}", file=sys.stderr)
        return 2
    for warning in config.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for f in fields(Config):
        if f.name == "warnings":
            continue
        value = getattr(config, f.name)
        shown = " ".join(value) if isinstance(value, tuple) else value
        print(f'{f.name.upper()}="{shown}"')
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="euca", description="A Eucalyptus-style private cloud.")
    parser.add_argument("--version", action="version", version=f"euca {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    bench = commands.add_parser("bench", help="run the benchmark table (same as python -m bench)",
                                add_help=False)
    bench.add_argument("rest", nargs=argparse.REMAINDER)

    sim = commands.add_parser("sim", help="plan capacity: simulate the cluster controller (run, sweep)",
                              add_help=False)
    sim.add_argument("rest", nargs=argparse.REMAINDER)

    config = commands.add_parser("config", help="check an eucalyptus.conf file")
    config_commands = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    check = config_commands.add_parser("check", help="print the settings in effect, or the error")
    check.add_argument("file", help="path of eucalyptus.conf")

    from euca import admin, up

    up.add_arguments(commands.add_parser("up", help="start the cloud in a box (EC2 API, cluster, nodes)"))
    from euca.node import service as node_service

    node_service.add_arguments(commands.add_parser("node-controller", help="run this host's node controller (NC)"))
    admin.add_arguments(commands)

    args = parser.parse_args(argv)
    if args.command == "up":
        return up.main(args)
    if args.command == "node-controller":
        return node_service.main(args)
    if args.command in ("account", "node", "image", "vmtype"):
        return admin.main(args)
    if args.command == "bench":
        from bench.__main__ import main as bench_main

        return bench_main(args.rest)
    if args.command == "sim":
        from sim.cli import main as sim_main

        return sim_main(args.rest)
    if args.command == "config":
        return _config_check(args)
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
