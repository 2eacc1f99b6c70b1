"""Timing helpers: medians over repeats, because the machines are shared and noisy."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def rate(run: Callable[[], int], repeats: int = 5) -> float:
    """Median operations per second of ``run``, which does some work and returns how many operations it did.

    Each repeat must leave the state as it found it (or rebuild it) so repeats measure the same thing.
    """
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        ops = run()
        elapsed = time.perf_counter() - start
        rates.append(ops / elapsed if elapsed > 0 else float("inf"))
    return statistics.median(rates)
