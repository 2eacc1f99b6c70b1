"""The euca command line."""

from __future__ import annotations

import sys
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


def test_a_libvirt_node_without_the_bindings_says_what_to_install(monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "libvirt", None)  # import libvirt raises ImportError
    import drivers.libvirt

    monkeypatch.delitem(sys.modules, "drivers.libvirt.driver", raising=False)
    monkeypatch.delattr(drivers.libvirt, "driver", raising=False)
    assert main(["node-controller", "--key", "k"]) == 2
    assert "pip install 'euca[libvirt]'" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["node-controller", "--sim"], ["storage-controller", "--database", "sc.db"]])
def test_an_unreadable_key_file_is_named_without_a_traceback(argv: list[str], tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "no-such-key"
    assert main([*argv, "--key-file", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("euca: --key-file:") and str(missing) in err
    assert "Traceback" not in err
