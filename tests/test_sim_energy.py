"""Energy, node-hours awake and utilisation in a planning run's figures, against hand computations."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from euca.cli import main
from sim.run import run_scenario
from sim.scenario import Images, NodeClass, Scenario, Workload

HOUR = 3600.0
NODES = 4
IDLE, BUSY, ASLEEP, CORES, POWER_DOWN = 150.0, 300.0, 5.0, 2, 20.0


def quiet_hour(tmp_path: Path, policy: str) -> Scenario:
    """Four 2-core nodes for an hour: one m1.small at 0 s lives 100 s, one more arrives at the end."""
    trace = tmp_path / "quiet.csv"
    trace.write_text("submit_time,vm_type,lifetime,image\n0,m1.small,100,emi-00000001\n"
                     f"{HOUR:g},m1.small,100,emi-00000001\n")
    return Scenario(
        policy=policy,
        nodes=(NodeClass(count=NODES, cores=CORES, memory_mb=512, disk_gb=10, boot_s=0.0, power_down_s=POWER_DOWN,
                         watts_idle=IDLE, watts_busy=BUSY, watts_asleep=ASLEEP),),
        images=Images(count=1, prestaged=1),
        workload=Workload(kind="trace", trace=str(trace), vm_types="eucalyptus"),
    )


def test_idle_nodes_draw_their_idle_power_for_the_whole_run(tmp_path: Path) -> None:
    s = run_scenario(quiet_hour(tmp_path, "GREEDY")).summary
    # N idle nodes for T seconds, plus one core of node 0 busy for 100 s.
    joules = NODES * IDLE * HOUR + (BUSY - IDLE) / CORES * 100
    assert math.isclose(s["power"]["energy_kwh"], joules / 3.6e6, rel_tol=1e-12)
    assert math.isclose(s["power"]["node_hours_awake"], NODES * 1.0, rel_tol=1e-12)
    assert s["rejection_rate"] == 0.0


def test_powersave_puts_idle_nodes_to_sleep_and_uses_less(tmp_path: Path) -> None:
    s = run_scenario(quiet_hour(tmp_path, "POWERSAVE")).summary
    # POWERSAVE's check runs every 60 s and powers down nodes idle for more than POWER_IDLETHRESH
    # (300 s): nodes 1-3 (idle since 0) at 360 s, node 0 (idle since its instance ended at 100 s)
    # at 420 s. Each draws idle power until then and for its 20 s of powernap, asleep power after.
    asleep_part = (IDLE - ASLEEP) * POWER_DOWN
    joules = (3 * (IDLE * 360 + asleep_part + ASLEEP * (HOUR - 360))
              + IDLE * 420 + (BUSY - IDLE) / CORES * 100 + asleep_part + ASLEEP * (HOUR - 420))
    assert math.isclose(s["power"]["energy_kwh"], joules / 3.6e6, rel_tol=1e-12)
    assert math.isclose(s["power"]["node_hours_awake"], (3 * 360 + 420) / HOUR, rel_tol=1e-12)
    assert s["power"]["sleeps"] == NODES
    greedy = run_scenario(quiet_hour(tmp_path, "GREEDY")).summary
    assert s["power"]["energy_kwh"] < greedy["power"]["energy_kwh"] / 5


def test_utilisation_is_of_the_cores_the_cluster_may_schedule(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """20 nodes of 32 cores with MAX_CORES=1: each runs one m1.small 84 % of the time. That is 84 %
    of what the CC may schedule, not 2.6 % of the hardware's cores."""
    trace = tmp_path / "one-each.csv"
    trace.write_text("submit_time,vm_type,lifetime,image\n" + "0,m1.small,84,emi-00000001\n" * 20
                     + "100,m1.small,84,emi-00000001\n")
    plan = tmp_path / "plan.toml"
    plan.write_text("[[nodes]]\ncount = 20\ncores = 32\nboot_s = 0.0\n[images]\ncount = 1\nprestaged = 1\n"
                    '[workload]\nvm_types = "eucalyptus"\n')
    out = tmp_path / "report"
    assert main(["sim", "run", str(plan), "--trace", str(trace), "--set", "MAX_CORES=1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "mean core utilisation 84.0 % of 20 schedulable cores" in printed
    result = json.loads((out / "result.json").read_text())["result"]
    assert math.isclose(result["utilisation"]["cores"], 0.84, rel_tol=1e-12)
    assert result["schedulable_capacity"]["cores"] == 20 and result["schedulable_capacity"]["hardware_cores"] == 640
    assert result["rejected"] == 0
    assert "of schedulable cores" in (out / "index.html").read_text()
    assert (out / "series.csv").read_text().startswith("time_s,cores_used_of_schedulable,")
    series = [line.split(",") for line in (out / "series.csv").read_text().splitlines()[1:]]
    assert max(float(row[1]) for row in series) == 1.0


def test_a_sweep_reports_energy_and_node_hours_per_policy_and_size(tmp_path: Path) -> None:
    from sim.report import write_sweep_report
    from sim.sweep import cells, run_sweep, smallest_clusters, summarise_cells

    base = quiet_hour(tmp_path, "GREEDY")
    rows = run_sweep(base, cells(("GREEDY", "POWERSAVE"), (NODES,), (base.workload.load,), 2), workers=1)
    table = summarise_cells(rows)
    by_policy = {r["policy"]: r for r in table}
    assert math.isclose(by_policy["GREEDY"]["node_hours_awake"], NODES * 1.0, rel_tol=1e-12)
    assert by_policy["GREEDY"]["energy_kwh_ci95"] == 0.0  # a trace: every replication the same
    assert by_policy["POWERSAVE"]["energy_kwh"] < by_policy["GREEDY"]["energy_kwh"] / 5
    written = write_sweep_report(tmp_path / "sweep", rows, table, smallest_clusters(table, 0.01), "?")
    assert (tmp_path / "sweep" / "energy_vs_rejections.png").read_bytes()[:4] == b"\x89PNG"
    header = (tmp_path / "sweep" / "table.csv").read_text().splitlines()[0].split(",")
    for column in ("rejection_rate", "energy_kwh", "energy_kwh_ci95", "node_hours_awake", "node_hours_awake_ci95",
                   "schedulable_core_utilisation"):
        assert column in header
    assert "energy_vs_rejections.png" in written[-1].read_text()
