"""The packages inside ``euca/`` import only packages on lower lines (``shared/DESIGN.md``'s table),
and each entry point loads only what it needs."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

EUCA = Path(__file__).resolve().parent.parent / "euca"
# package -> line: a package may import packages on lower lines only (same-line packages do not mix)
LINES = {"cli": 6, "api": 5, "console": 5, "services": 4, "walrus": 4, "metadata": 4, "iam": 4, "fleet": 3,
         "cluster": 2, "node": 1, "net": 1, "storage": 1, "core": 0, "store": 0, "auth": 0}
# core holds the words every layer shares (errors, the clock, configuration): the other packages of
# line 0 use them too, and core itself imports no other euca package
SHARED = "core"


def imported(path: Path) -> set[str]:
    """The euca packages a module imports, at module level or inside functions."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
            [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else [])
        for name in names:
            parts = name.split(".")
            if parts[0] == "euca" and len(parts) > 1 and parts[1] in LINES:
                out.add(parts[1])
    return out


def test_every_package_is_placed_and_imports_only_lower_lines() -> None:
    packages = {p.name for p in EUCA.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages <= set(LINES), f"place {packages - set(LINES)} in LINES (and in DESIGN.md)"
    loose = [p.name for p in EUCA.glob("*.py") if p.name != "__init__.py"]
    assert not loose, f"modules outside a component package: {loose}"
    wrong = []
    for package in packages:
        for module in (EUCA / package).rglob("*.py"):
            for other in imported(module) - {package}:
                if LINES[other] >= LINES[package] and not (other == SHARED and package != SHARED):
                    wrong.append(f"{module.relative_to(EUCA)} imports euca.{other}")
    assert not wrong, wrong


def modules_after(code: str) -> set[str]:
    done = subprocess.run([sys.executable, "-c", f"{code}\nimport sys\nprint(' '.join(sys.modules))"],
                          capture_output=True, text=True, check=True)
    return set(done.stdout.split())


def test_the_node_controller_loads_no_cluster_controller() -> None:
    loaded = modules_after("import euca.node.service")
    assert not {m for m in loaded if m.startswith(("euca.cluster", "euca.fleet", "euca.services", "euca.api"))}


def test_euca_config_check_loads_no_botocore(tmp_path: Path) -> None:
    conf = tmp_path / "eucalyptus.conf"
    conf.write_text('SCHEDPOLICY="GREEDY"\n')
    loaded = modules_after(f"from euca.cli import main\nassert main(['config', 'check', {str(conf)!r}]) == 0")
    assert not {m for m in loaded if m.startswith(("botocore", "boto3", "euca.cluster", "euca.api", "cryptography"))}
