"""A plain-text progress bar on stderr, redrawn in place, for runs and sweeps."""

from __future__ import annotations

import sys
from typing import TextIO

WIDTH = 30


def bar(what: str, done: float, total: float, detail: str, out: TextIO | None = None) -> None:
    """Redraw ``what [####......] detail``; a newline once ``done`` reaches ``total``."""
    out = out or sys.stderr
    filled = min(WIDTH, int(WIDTH * done / total)) if total > 0 else WIDTH
    out.write(f"\r{what} [{'#' * filled}{'.' * (WIDTH - filled)}] {detail}")
    if done >= total:
        out.write("\n")
    out.flush()
