"""The ``euca`` command: one entry point, one module per subcommand, each importing only what it needs."""

from euca.cli.main import main

__all__ = ["main"]
