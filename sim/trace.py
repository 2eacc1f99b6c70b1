"""Replaying a VM trace from a CSV file.

The file has a header row naming its columns, in any order:

- ``submit_time``: seconds from the start of the trace when the request reaches the cloud (>= 0);
- either ``vm_type`` (a name in the scenario's VM type table, e.g. ``m1.small``) or ``cores`` and
  ``memory_mb`` (and optionally ``disk_gb``, default 10): a size that becomes a VM type of its own,
  named ``t<cores>x<memory_mb>.d<disk_gb>`` (``t2x4096.d10``);
- ``lifetime``: seconds the instance runs once booted (> 0);
- ``image``: the image it boots (an ``emi-`` id or any name without spaces);
- ``group`` (optional): the security group it runs in, default ``default``.

Rows with the same ``submit_time`` and ``group`` that follow each other form one deployment (one
RunInstances reservation per VM type). A malformed row is a ``TraceError`` naming the file, the
line and the column, and nothing runs.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from euca.cluster import VmType, VmTypes
from sim.workload import VmRequests

REQUIRED = ("submit_time", "lifetime", "image")
KNOWN = (*REQUIRED, "vm_type", "cores", "memory_mb", "disk_gb", "group")


class TraceError(ValueError):
    """A trace the planner cannot replay; the message names the file, line and column."""


@dataclass(frozen=True)
class Demand:
    """Requests with the names they refer to: ``requests.size`` indexes ``vmtypes``, ``requests.image``
    indexes ``images`` and ``requests.group`` indexes ``groups``."""

    requests: VmRequests
    vmtypes: VmTypes
    images: tuple[str, ...]
    groups: tuple[str, ...]


def _number(source: str, line: int, column: str, text: str, *, positive: bool = False) -> float:
    try:
        value = float(text)
    except ValueError:
        raise TraceError(f"{source}:{line}: column {column}: {text!r} is not a number") from None
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        need = "a positive number" if positive else "a number >= 0"
        raise TraceError(f"{source}:{line}: column {column}: {text!r} must be {need}")
    return value


def _whole(source: str, line: int, column: str, text: str) -> int:
    value = _number(source, line, column, text, positive=True)
    if value != int(value):
        raise TraceError(f"{source}:{line}: column {column}: {text!r} is not a whole number")
    return int(value)


def _name(source: str, line: int, column: str, text: str) -> str:
    text = text.strip()
    if not text or any(c.isspace() for c in text):
        raise TraceError(f"{source}:{line}: column {column}: {text!r} must be a name without spaces")
    return text


def read_trace(path: str | Path, vmtypes: VmTypes) -> Demand:
    """Read a trace file; ``vmtypes`` is the scenario's table that ``vm_type`` names refer to."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise TraceError(f"{path}: cannot read the trace: {exc.strerror}") from None
    return parse_trace(text.splitlines(), vmtypes, source=str(path))


def parse_trace(lines: Iterable[str], vmtypes: VmTypes, source: str = "trace.csv") -> Demand:
    reader = csv.reader(lines)
    header = [h.strip() for h in next(reader, [])]
    if not header:
        raise TraceError(f"{source}:1: the trace is empty (a header row is needed)")
    for column in header:
        if column not in KNOWN:
            raise TraceError(f"{source}:1: column {column}: unknown (known: {', '.join(KNOWN)})")
    missing = [c for c in REQUIRED if c not in header]
    sized = "cores" in header and "memory_mb" in header
    if "vm_type" not in header and not sized:
        missing.append("vm_type (or cores and memory_mb)")
    if missing:
        raise TraceError(f"{source}:1: missing column {', '.join(missing)}")
    at = {c: i for i, c in enumerate(header)}
    types = list(vmtypes)
    type_index = {t.name: i for i, t in enumerate(types)}
    images: dict[str, int] = {}
    groups: dict[str, int] = {}
    rows: list[tuple[float, int, float, int, int]] = []
    for row in reader:
        line = reader.line_num
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise TraceError(f"{source}:{line}: {len(row)} columns, the header has {len(header)}")

        def cell(column: str, row: list[str] = row) -> str:
            return row[at[column]].strip()

        submit = _number(source, line, "submit_time", cell("submit_time"))
        lifetime = _number(source, line, "lifetime", cell("lifetime"), positive=True)
        if "vm_type" in at and cell("vm_type"):
            name = cell("vm_type")
            if name not in type_index:
                raise TraceError(f"{source}:{line}: column vm_type: {name!r} is not a known VM type")
        elif sized:
            cores = _whole(source, line, "cores", cell("cores"))
            memory = _whole(source, line, "memory_mb", cell("memory_mb"))
            disk = _whole(source, line, "disk_gb", cell("disk_gb")) if "disk_gb" in at else 10
            name = f"t{cores}x{memory}.d{disk}"
            if name not in type_index:
                type_index[name] = len(types)
                types.append(VmType(name, cores, memory, disk))
        else:
            raise TraceError(f"{source}:{line}: column vm_type: empty, and no cores and memory_mb columns")
        image = _name(source, line, "image", cell("image"))
        group = _name(source, line, "group", cell("group")) if "group" in at else "default"
        rows.append((submit, type_index[name], lifetime, images.setdefault(image, len(images)),
                     groups.setdefault(group, len(groups))))
    if not rows:
        raise TraceError(f"{source}: the trace holds no requests")
    rows.sort(key=lambda r: r[0])  # stable: rows submitted together keep their order
    arrival = np.array([r[0] for r in rows])
    group_of = np.array([r[4] for r in rows], dtype=np.int64)
    new = np.ones(len(rows), dtype=bool)
    new[1:] = (arrival[1:] != arrival[:-1]) | (group_of[1:] != group_of[:-1])
    requests = VmRequests(arrival, np.array([r[1] for r in rows], dtype=np.int64), np.array([r[2] for r in rows]),
                          np.cumsum(new) - 1, np.array([r[3] for r in rows], dtype=np.int64), 0, group_of)
    return Demand(requests, VmTypes(types), tuple(images), tuple(groups))
