"""Writing what a planning run or a sweep found: JSON, CSV, PNG plots and a small HTML page.

Plots use matplotlib's Agg back end (no display needed). JSON keys are sorted so that the same
run writes the same file byte for byte.
"""

from __future__ import annotations

import csv
import html
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from sim.metrics import SERIES_COLUMNS
from sim.run import RunResult


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows(rows)


def _utilisation_plot(path: Path, series: list[tuple[float, ...]], title: str) -> None:
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 5.5), sharex=True)
    hours = [s[0] / 3600 for s in series]
    for column, label in ((1, "cores"), (2, "memory"), (3, "disk")):
        top.plot(hours, [100 * s[column] for s in series], label=label)
    top.set_ylabel("in use (% of schedulable)")
    top.set_ylim(0, 105)
    top.legend(loc="lower right")
    top.set_title(title)
    bottom.plot(hours, [s[4] for s in series], color="tab:red", label="powered nodes")
    bottom.set_ylabel("powered nodes")
    bottom.set_xlabel("simulated time (h)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _latency_plot(path: Path, cdfs: dict[str, list[float]]) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, values in cdfs.items():
        if values:
            ax.plot(values, [100 * i / (len(values) - 1) for i in range(len(values))], label=f"cache {label}")
    ax.set_xlabel("boot latency: request to Running (s)")
    ax.set_ylabel("instances (%)")
    ax.set_xscale("symlog", linthresh=10)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _rejection_plot(path: Path, bars: dict[str, dict[str, float]], ylabel: str) -> None:
    """Stacked bars: one per policy (or run), split by Eucalyptus's rejection reason."""
    fig, ax = plt.subplots(figsize=(7, 4))
    labels = list(bars)
    reasons = sorted({r for b in bars.values() for r in b})
    bottom = [0.0] * len(labels)
    for reason in reasons:
        heights = [bars[label].get(reason, 0.0) for label in labels]
        ax.bar(labels, heights, bottom=bottom, label=reason.split(": ", 1)[-1])
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    ax.set_ylabel(ylabel)
    if reasons:
        ax.legend(loc="upper right", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


EnergyPoint = tuple[str, float, float, float, float]  # label, rejection rate, its 95 % CI, kWh, its 95 % CI


def _energy_plot(path: Path, points: list[EnergyPoint]) -> None:
    """Energy against rejections: one point per policy (and cluster size, in a sweep), with 95 %
    intervals from the replications both ways, so what POWERSAVE saves and what it costs show together."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, rate, rate_ci, kwh, kwh_ci in points:
        ax.errorbar([100 * rate], [kwh], xerr=[0.0 if math.isnan(rate_ci) else 100 * rate_ci],
                    yerr=[0.0 if math.isnan(kwh_ci) else kwh_ci], fmt="o", capsize=3, label=label)
    ax.set_xlim(left=0)  # a wide interval around a small rate would reach below zero
    ax.set_xlabel("VMs rejected (%)")
    ax.set_ylabel("energy (kWh)")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _page(title: str, body: str) -> str:
    return (f"<!doctype html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
            "table{border-collapse:collapse}td,th{border:1px solid #bbb;padding:.2em .6em;text-align:right}"
            "</style></head>\n<body>\n" + f"<h1>{html.escape(title)}</h1>\n{body}</body></html>\n")


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(c))}</td>" for c in row) + "</tr>\n" for row in rows)
    return f"<table><tr>{head}</tr>\n{body}</table>\n"


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.4g}"
    return str(value)


def write_run_report(out: Path, result: RunResult, scenario: dict[str, Any]) -> list[Path]:
    """result.json, series.csv, summary.csv, three PNGs and index.html under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    s = result.summary
    write_json(out / "result.json", {"scenario": scenario, "result": s})
    write_csv(out / "series.csv", SERIES_COLUMNS, result.series)
    flat = _flatten(s)
    write_csv(out / "summary.csv", ("metric", "value"), sorted(flat.items()))
    _utilisation_plot(out / "utilisation.png", result.series, f"{s['policy']} on {s['nodes']} nodes")
    _latency_plot(out / "boot_latency_cdf.png", s["boot_latency_cdf_s"])
    _rejection_plot(out / "rejections.png", {s["policy"]: {k: float(v) for k, v in s["rejected_by_reason"].items()}},
                    "VMs rejected")
    power = s["power"]
    _energy_plot(out / "energy.png", [(f"{s['policy']}, {s['nodes']} nodes", s["rejection_rate"], math.nan,
                                       power["energy_kwh"], math.nan)])
    lat = s["boot_latency_s"]
    rows = [
        ("requests", s["requests"]), ("accepted", s["accepted"]), ("rejected", s["rejected"]),
        ("rejection rate", s["rejection_rate"]), ("ran out first", s["ran_out_first"] or "nothing"),
        *[(f"rejected: {k.split(': ', 1)[-1]}", v) for k, v in s["rejected_by_reason"].items()],
        ("mean core utilisation, of schedulable cores", s["utilisation"]["cores"]),
        ("schedulable cores (MAX_CORES applied)", s["schedulable_capacity"]["cores"]),
        ("energy (kWh)", power["energy_kwh"]), ("node-hours awake", power["node_hours_awake"]),
        ("mean powered nodes", power["mean_powered_nodes"]),
        ("instances lost to failures", s["failures"]["instances_lost"]),
        *[(f"boot latency {k} p{p} (s)", lat[k].get(f"p{p}", "-")) for k in ("hit", "miss") for p in (50, 95, 99)],
        *[(f"peak {k} in use", v) for k, v in s["network"]["peak_in_use"].items()],
    ]
    body = (_table(("metric", "value"), rows)
            + "<h2>Utilisation, of the schedulable capacity</h2><img src='utilisation.png'>\n"
            + "<h2>Energy against rejections</h2><img src='energy.png'>\n"
            + "<h2>Boot latency</h2><img src='boot_latency_cdf.png'>\n"
            + "<h2>Rejections</h2><img src='rejections.png'>\n"
            + "<p>Data: <a href='result.json'>result.json</a>, <a href='summary.csv'>summary.csv</a>, "
            + "<a href='series.csv'>series.csv</a></p>\n")
    (out / "index.html").write_text(_page(f"euca capacity plan: {s['scenario']}", body))
    return [out / n for n in ("result.json", "series.csv", "summary.csv", "utilisation.png",
                              "boot_latency_cdf.png", "rejections.png", "energy.png", "index.html")]


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        elif isinstance(value, list):
            continue  # CDF points go to the JSON and the plot
        else:
            out[name] = value
    return out


def write_sweep_report(out: Path, rows: list[dict[str, Any]], table: list[dict[str, Any]],
                       answers: list[dict[str, Any]], question: str) -> list[Path]:
    """runs.csv (one line per replication), table.csv (means and 95 % intervals), answers.csv, HTML."""
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "sweep.json", {"runs": rows, "table": table, "answers": answers, "question": question})
    for name, data in (("runs.csv", rows), ("table.csv", table), ("answers.csv", answers)):
        header = list(data[0]) if data else []
        write_csv(out / name, header, [[r[h] for h in header] for r in data])
    _policy_plot(out / "rejections_by_policy.png", table)
    several_loads = len({r["load"] for r in table}) > 1
    _energy_plot(out / "energy_vs_rejections.png", [
        (f"{r['policy']}, {r['nodes']} nodes" + (f", load {r['load']:g}" if several_loads else ""),
         r["rejection_rate"], r["rejection_rate_ci95"], r["energy_kwh"], r["energy_kwh_ci95"]) for r in table])
    body = (f"<p>{html.escape(question)}</p>\n"
            + _table(list(answers[0]) if answers else [], [list(a.values()) for a in answers])
            + "<h2>Rejections by policy</h2><img src='rejections_by_policy.png'>\n"
            + "<h2>Energy against rejections (95 % intervals)</h2><img src='energy_vs_rejections.png'>\n"
            + "<h2>All cells (utilisation of the schedulable cores)</h2>\n"
            + _table(list(table[0]) if table else [], [list(r.values()) for r in table]))
    (out / "index.html").write_text(_page("euca capacity sweep", body))
    return [out / n for n in ("sweep.json", "runs.csv", "table.csv", "answers.csv", "rejections_by_policy.png",
                              "energy_vs_rejections.png", "index.html")]


def _policy_plot(path: Path, table: list[dict[str, Any]]) -> None:
    """Rejection rate against cluster size, a line per policy and load, with 95 % intervals."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    keys = sorted({(r["policy"], r["load"]) for r in table})
    for policy, load in keys:
        cells = sorted((r for r in table if r["policy"] == policy and r["load"] == load), key=lambda r: r["nodes"])
        ax.errorbar([r["nodes"] for r in cells], [100 * r["rejection_rate"] for r in cells],
                    yerr=[100 * r["rejection_rate_ci95"] for r in cells], capsize=3, label=f"{policy}, load {load}")
    ax.set_xlabel("nodes")
    ax.set_ylabel("VMs rejected (%)")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
