"""The rows ``python -m bench`` prints: each measures both sides in the same run."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    """One kernel at one size: the Cython kernel's rate beside its plain-Python twin's."""

    kernel: str
    size: str
    cython: float
    python: float
    unit: str = "ops/s"

    @property
    def ratio(self) -> float:
        return self.cython / self.python if self.python > 0 else float("inf")


def _rate(value: float) -> str:
    if value >= 1e6:
        return f"{value / 1e6:,.2f}M"
    if value >= 1e3:
        return f"{value / 1e3:,.1f}k"
    return f"{value:,.1f}"


def format_rows(rows: Iterable[Row]) -> str:
    """A fixed-width table: kernel, size, Cython rate, Python-twin rate, ratio."""
    header = ("kernel", "size", "cython", "python twin", "unit", "ratio")
    body = [(r.kernel, r.size, _rate(r.cython), _rate(r.python), r.unit,
             f"{r.ratio:,.2f}x" if r.ratio < 10 else f"{r.ratio:,.1f}x") for r in rows]
    widths = [max(len(str(line[i])) for line in [header, *body]) for i in range(len(header))]
    lines = []
    for line in [header, *body]:
        cells = zip(line, widths, strict=True)
        lines.append("  ".join(str(c).ljust(w) if i < 2 else str(c).rjust(w) for i, (c, w) in enumerate(cells)))
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
