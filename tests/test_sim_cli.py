"""``euca sim run`` and ``euca sim sweep`` from the command line."""

from __future__ import annotations

import gc
import json
import time
from pathlib import Path

import pytest

from euca.cli import main


def test_sim_run_with_no_arguments_writes_the_report(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    started = time.perf_counter()
    assert main(["sim", "run"]) == 0
    assert time.perf_counter() - started < 60
    report = tmp_path / "sim-report"
    for name in ("result.json", "summary.csv", "series.csv", "index.html",
                 "utilisation.png", "boot_latency_cdf.png", "rejections.png"):
        assert (report / name).stat().st_size > 0, name
    result = json.loads((report / "result.json").read_text())["result"]
    assert result["requests"] == 20000 and result["policy"] == "GREEDY"
    page = (report / "index.html").read_text()
    assert "<img src='utilisation.png'>" in page and "boot_latency_cdf.png" in page
    assert (report / "utilisation.png").read_bytes()[:4] == b"\x89PNG"
    assert "VMs started" in capsys.readouterr().out


def test_sim_run_from_a_toml_scenario(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "plan.toml"
    path.write_text('name = "rack"\npolicy = "powersave"\n[[nodes]]\ncount = 6\ncores = 8\n'
                    '[workload]\nrequests = 300\nlifetime_scale = 0.05\n')
    collector = (gc.isenabled(), gc.get_threshold(), gc.get_freeze_count())
    assert main(["sim", "run", str(path), "--out", str(tmp_path / "out")]) == 0
    result = json.loads((tmp_path / "out" / "result.json").read_text())
    assert result["scenario"]["name"] == "rack" and result["result"]["policy"] == "POWERSAVE"
    # set-up pauses the collector, the run tunes it, the report runs with the model frozen: all undone
    assert (gc.isenabled(), gc.get_threshold(), gc.get_freeze_count()) == collector


def test_a_bad_scenario_names_the_setting(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "plan.json"
    path.write_text('{"nodes": [{"count": 2, "cpus": 4}]}')
    assert main(["sim", "run", str(path)]) == 2
    assert "nodes[0].cpus: unknown setting" in capsys.readouterr().err


def test_sim_sweep_answers_the_capacity_question(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "plan.toml"
    path.write_text('[[nodes]]\ncount = 6\ncores = 16\n[workload]\nrequests = 300\nlifetime_scale = 0.05\n')
    out = tmp_path / "sweep"
    assert main(["sim", "sweep", str(path), "--policies", "GREEDY,POWERSAVE", "--sizes", "4,8",
                 "--replications", "2", "--workers", "2", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "fewest nodes that keep rejections under 1 %" in captured.out
    assert "sweep [" in captured.err and "8/8 runs" in captured.err
    for name in ("sweep.json", "runs.csv", "table.csv", "answers.csv", "rejections_by_policy.png", "index.html"):
        assert (out / name).stat().st_size > 0, name
