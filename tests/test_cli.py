"""The euca command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from euca.cli import main


def test_config_check_prints_the_settings_in_effect(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "eucalyptus.conf"
    path.write_text('SCHEDPOLICY="BESTFIT"\nNODES="a b"\nMYSTERY=1\n')
    assert main(["config", "check", str(path)]) == 0
    out, err = capsys.readouterr()
    assert 'SCHEDPOLICY="BESTFIT"' in out
    assert 'NODES="a b"' in out
    assert "MYSTERY: unknown variable" in err


def test_config_check_reports_the_bad_line_without_a_traceback(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "eucalyptus.conf"
    path.write_text('NODES="a"\nVNET_MODE="NOPE"\n')
    assert main(["config", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:2: VNET_MODE=\"NOPE\"" in err
    assert "Traceback" not in err
