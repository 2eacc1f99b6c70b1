"""Trace replay: documented columns, deployments, and errors that name the line and column."""

from __future__ import annotations

from pathlib import Path

import pytest

from euca.cli import main
from euca.cluster import VmTypes
from sim.trace import TraceError, parse_trace, read_trace

GOOD = """submit_time,vm_type,lifetime,image,group
0,m1.small,3600,emi-00000001,web
0,m1.small,3600,emi-00000001,web
5,c1.medium,60,emi-00000002,db
"""


def test_rows_become_requests_and_deployments() -> None:
    demand = parse_trace(GOOD.splitlines(), VmTypes())
    r = demand.requests
    assert r.arrival.tolist() == [0.0, 0.0, 5.0]
    assert r.deployment.tolist() == [0, 0, 1]
    assert [list(demand.vmtypes)[k].name for k in r.size.tolist()] == ["m1.small", "m1.small", "c1.medium"]
    assert demand.images == ("emi-00000001", "emi-00000002")
    assert demand.groups == ("web", "db")
    assert r.group is not None and r.group.tolist() == [0, 0, 1]


def test_cores_and_memory_make_vm_types_of_their_own() -> None:
    text = "submit_time,cores,memory_mb,lifetime,image\n3,4,8192,10,emi-1\n1,4,8192,10,emi-1\n2,1,512,10,emi-2\n"
    demand = parse_trace(text.splitlines(), VmTypes())
    names = [t.name for t in demand.vmtypes]
    assert "t4x8192.d10" in names and "t1x512.d10" in names
    assert demand.requests.arrival.tolist() == [1.0, 2.0, 3.0]  # sorted by submit time
    assert demand.groups == ("default",)


@pytest.mark.parametrize(("row", "message"), [
    ("7,m1.small,abc,emi-1,g", "trace.csv:3: column lifetime: 'abc' is not a number"),
    ("x,m1.small,10,emi-1,g", "trace.csv:3: column submit_time: 'x' is not a number"),
    ("7,m1.small,0,emi-1,g", "trace.csv:3: column lifetime: '0' must be a positive number"),
    ("7,m9.huge,10,emi-1,g", "trace.csv:3: column vm_type: 'm9.huge' is not a known VM type"),
    ("7,m1.small,10,,g", "trace.csv:3: column image: '' must be a name without spaces"),
    ("7,m1.small,10", "trace.csv:3: 3 columns, the header has 5"),
])
def test_a_malformed_row_names_its_line_and_column(row: str, message: str) -> None:
    text = f"submit_time,vm_type,lifetime,image,group\n0,m1.small,10,emi-1,g\n{row}\n"
    with pytest.raises(TraceError) as info:
        parse_trace(text.splitlines(), VmTypes())
    assert str(info.value) == message


def test_bad_headers_are_errors() -> None:
    with pytest.raises(TraceError, match="missing column lifetime"):
        parse_trace(["submit_time,vm_type,image", "0,m1.small,emi-1"], VmTypes())
    with pytest.raises(TraceError, match="column colour: unknown"):
        parse_trace(["submit_time,vm_type,lifetime,image,colour"], VmTypes())
    with pytest.raises(TraceError, match="holds no requests"):
        parse_trace(["submit_time,vm_type,lifetime,image"], VmTypes())


def test_read_trace_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "trace.csv"
    path.write_text("submit_time,vm_type,lifetime,image\n0,m1.small,abc,emi-1\n")
    with pytest.raises(TraceError, match=rf"^{path}:2: column lifetime: 'abc' is not a number$"):
        read_trace(path, VmTypes())


def test_the_cli_reports_a_bad_trace_and_runs_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "trace.csv"
    path.write_text("submit_time,vm_type,lifetime,image\n0,m1.small,10,emi-1\n1,m1.small,abc,emi-1\n")
    out = tmp_path / "report"
    assert main(["sim", "run", "--trace", str(path), "--set", "VNET_MODE=SYSTEM", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:3: column lifetime: 'abc' is not a number" in err
    assert "Traceback" not in err
    assert not out.exists()
