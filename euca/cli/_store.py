"""The data directory and store options every administrator command shares."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from euca.store import Store


def store_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", default="./euca-data", help="where state and credentials live (./euca-data)")
    parser.add_argument("--database", help="postgresql://... instead of the SQLite file in the data dir")


def database_url(data_dir: Path, database: str | None) -> str:
    return database or str(data_dir / "euca.db")


def with_store(args: argparse.Namespace, work: Callable[[Store], int]) -> int:
    """Open the store, run ``work``, and turn a refusal into a message and exit status 1 (2 when
    the store cannot be opened); the running server sees the change at its next request."""
    from euca.core.errors import ApiError
    from euca.store import Store

    try:
        store = Store(database_url(Path(args.data_dir), args.database))
    except Exception as exc:
        print(f"euca: cannot open the store: {exc}", file=sys.stderr)
        return 2
    try:
        return work(store)
    except (ValueError, OSError, KeyError, ApiError) as exc:
        message = exc.message if isinstance(exc, ApiError) else str(exc.args[0] if exc.args else exc)
        print(f"euca: {message}", file=sys.stderr)
        return 1
    finally:
        store.close()
