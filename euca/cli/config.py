"""``euca config check FILE``: the settings an eucalyptus.conf puts in effect, or the line that is wrong."""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    check = actions.add_parser("check", help="print the settings in effect, or the error")
    check.add_argument("file", help="path of eucalyptus.conf")


def run(args: argparse.Namespace) -> int:
    from euca.core.config import Config, ConfigError, load_config

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
