"""Sweeps: policies x cluster sizes x loads x replications, and the capacity questions they answer.

Every cell runs ``run_scenario`` on a copy of one base scenario; replication r of every cell uses
the r-th child stream of the base seed, so policies and sizes are compared on the same requests
(common random numbers). Loads are offered core demand as a fraction of the *base* cluster's
cores, so a bigger cluster in the sweep faces the same demand. Cells run on a local process pool,
or on a Dask distributed cluster given its scheduler address; results are sorted by cell, so the
tables are the same either way.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace
from multiprocessing import get_context
from typing import Any, TextIO

from sim.progress import bar
from sim.run import run_scenario
from sim.scenario import Scenario

# Student's t, 97.5 % quantile, for 1..30 degrees of freedom; 1.96 beyond.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042)


@dataclass(frozen=True)
class Cell:
    """One run of a sweep."""

    policy: str
    nodes: int
    load: float
    replication: int


def cell_scenario(base: Scenario, cell: Cell) -> Scenario:
    reference = base.workload.reference_cores or base.total_cores
    workload = replace(base.workload, load=cell.load, reference_cores=reference)
    return replace(base.with_nodes(cell.nodes), policy=cell.policy, workload=workload)


def run_cell(base: Scenario, cell: Cell) -> dict[str, Any]:
    """One cell's figures, flat (a row of runs.csv)."""
    s = run_scenario(cell_scenario(base, cell), cell.replication).summary
    miss = s["boot_latency_s"]["miss"]
    return {
        "policy": cell.policy, "nodes": cell.nodes, "load": cell.load, "replication": cell.replication,
        "requests": s["requests"], "rejected": s["rejected"], "rejection_rate": s["rejection_rate"],
        "ran_out_first": s["ran_out_first"] or "", "schedulable_core_utilisation": s["utilisation"]["cores"],
        "energy_kwh": s["power"]["energy_kwh"], "node_hours_awake": s["power"]["node_hours_awake"],
        "mean_powered_nodes": s["power"]["mean_powered_nodes"],
        "boot_p95_miss_s": miss.get("p95", 0.0), "instances_lost": s["failures"]["instances_lost"],
    }


def cells(policies: Sequence[str], sizes: Sequence[int], loads: Sequence[float], replications: int) -> list[Cell]:
    return [Cell(p, n, load, r) for p in policies for n in sizes for load in loads for r in range(replications)]


def _local(base: Scenario, todo: list[Cell], workers: int) -> Iterator[dict[str, Any]]:
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(run_cell, base, cell) for cell in todo]
        for future in as_completed(futures):
            yield future.result()


def _dask(base: Scenario, todo: list[Cell], address: str) -> Iterator[dict[str, Any]]:
    from distributed import Client
    from distributed import as_completed as dask_completed

    with Client(address) as client:  # type: ignore[no-untyped-call]
        futures = client.map(run_cell, [base] * len(todo), todo, pure=False)
        for future in dask_completed(futures):  # type: ignore[no-untyped-call]
            yield future.result()


def progress(done: int, total: int, out: TextIO | None = None) -> None:
    """The sweep's progress bar on stderr: runs finished of runs to do."""
    bar("sweep", done, total, f"{done}/{total} runs", out)


def run_sweep(base: Scenario, todo: list[Cell], *, scheduler: str | None = None, workers: int = 0,
              on_progress: Callable[[int, int], None] | None = None) -> list[dict[str, Any]]:
    """Every cell's row, sorted by (policy, nodes, load, replication)."""
    base.validate()
    runs = _dask(base, todo, scheduler) if scheduler else _local(base, todo, workers or os.cpu_count() or 1)
    rows: list[dict[str, Any]] = []
    for row in runs:
        rows.append(row)
        if on_progress is not None:
            on_progress(len(rows), len(todo))
    return sorted(rows, key=lambda r: (r["policy"], r["nodes"], r["load"], r["replication"]))


def mean_ci(values: Sequence[float]) -> tuple[float, float]:
    """The mean and the half-width of its 95 % confidence interval (Student's t) across replications."""
    n = len(values)
    mean = math.fsum(values) / n
    if n < 2:
        return mean, float("nan")
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, (_T975[n - 2] if n - 1 <= len(_T975) else 1.96) * sd / math.sqrt(n)


def summarise_cells(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Means over replications, with 95 % intervals for the rejection rate, the energy and the
    node-hours awake; utilisation is of the schedulable cores (MAX_CORES applied)."""
    groups: dict[tuple[str, int, float], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["policy"], r["nodes"], r["load"]), []).append(r)
    table = []
    for (policy, nodes, load), rs in sorted(groups.items()):
        rate, rate_ci = mean_ci([r["rejection_rate"] for r in rs])
        energy, energy_ci = mean_ci([r["energy_kwh"] for r in rs])
        awake, awake_ci = mean_ci([r["node_hours_awake"] for r in rs])
        first = sorted({r["ran_out_first"] for r in rs if r["ran_out_first"]})
        table.append({
            "policy": policy, "nodes": nodes, "load": load, "replications": len(rs),
            "rejection_rate": rate, "rejection_rate_ci95": rate_ci,
            "schedulable_core_utilisation": mean_ci([r["schedulable_core_utilisation"] for r in rs])[0],
            "energy_kwh": energy, "energy_kwh_ci95": energy_ci,
            "node_hours_awake": awake, "node_hours_awake_ci95": awake_ci,
            "mean_powered_nodes": mean_ci([r["mean_powered_nodes"] for r in rs])[0],
            "boot_p95_miss_s": mean_ci([r["boot_p95_miss_s"] for r in rs])[0],
            "instances_lost": mean_ci([float(r["instances_lost"]) for r in rs])[0],
            "ran_out_first": " / ".join(first),
        })
    return table


def smallest_clusters(table: list[dict[str, Any]], target: float) -> list[dict[str, Any]]:
    """Per policy and load: the fewest nodes whose rejection rate stays under ``target`` with 95 %
    confidence (the interval's upper end below it), or none if no size in the sweep does."""
    answers = []
    for policy, load in sorted({(r["policy"], r["load"]) for r in table}):
        cells = sorted((r for r in table if r["policy"] == policy and r["load"] == load), key=lambda r: r["nodes"])
        fit = [r for r in cells if r["rejection_rate"] + (0.0 if math.isnan(r["rejection_rate_ci95"])
                                                         else r["rejection_rate_ci95"]) < target]
        best = fit[0] if fit else None
        answers.append({
            "policy": policy, "load": load,
            "smallest_nodes": best["nodes"] if best else f"more than {cells[-1]['nodes']}",
            "rejection_rate": best["rejection_rate"] if best else cells[-1]["rejection_rate"],
            "rejection_rate_ci95": best["rejection_rate_ci95"] if best else cells[-1]["rejection_rate_ci95"],
            "energy_kwh": best["energy_kwh"] if best else cells[-1]["energy_kwh"],
        })
    return answers
