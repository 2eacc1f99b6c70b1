"""The README's first steps, run as written against a fresh box, so the README cannot drift from the code.

``euca up`` is started the way the README's first command starts it (in a fresh directory, the data
in ./euca-data), on a free port and with a short boot time; then every ``sh`` block of the "First
steps" section runs in bash and every ``python`` block in Python, in that directory, with the
environment ``source euca-data/eucarc`` gives.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ec2_server import free_port

ROOT = Path(__file__).resolve().parent.parent


def first_steps() -> list[tuple[str, str]]:
    text = (ROOT / "README.md").read_text()
    section = re.search(r"^## First steps\n(.*?)^## ", text, re.S | re.M)
    assert section is not None, "README.md has no '## First steps' section"
    blocks = re.findall(r"```(sh|python)\n(.*?)```", section.group(1), re.S)
    assert [kind for kind, _ in blocks] == ["sh", "python"], blocks
    return blocks


def test_the_readme_starts_with_the_two_set_up_commands() -> None:
    block = re.search(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert block is not None
    assert block.group(1).splitlines() == ["pip install -e . && euca up", "pip install -e '.[test]' && pytest"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "pip install -e '.[test]' && pytest" in ci and ".ci/smoke_up.py" in ci


@pytest.fixture
def fresh_box(tmp_path: Path) -> Iterator[Path]:
    port = free_port()
    bin_dir = str(Path(sys.executable).parent)
    env = dict(os.environ, PATH=bin_dir + os.pathsep + os.environ.get("PATH", ""))
    server = subprocess.Popen([sys.executable, "-m", "euca.cli", "up", "--port", str(port), "--boot-time", "1"],
                              cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    assert server.stdout is not None
    lines = []
    for line in server.stdout:
        lines.append(line)
        if line.startswith("EC2 API on"):
            break
    else:
        pytest.fail("euca up stopped before it was ready:\n" + "".join(lines))
    assert any(line.startswith("default image emi-") for line in lines), lines
    # keep reading what the server logs, so that a full pipe never blocks it
    drain = threading.Thread(target=lambda: lines.extend(server.stdout or ()), daemon=True)
    drain.start()
    try:
        yield tmp_path
    finally:
        server.terminate()
        server.wait(20)
        drain.join(10)
        server.stdout.close()


def test_first_steps_run_as_written(fresh_box: Path) -> None:
    bin_dir = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    env["HOME"] = str(fresh_box)  # no ~/.aws of the machine's
    for kind, code in first_steps():
        if kind == "sh":
            argv = ["bash", "-euo", "pipefail", "-c", code]
        else:
            argv = ["bash", "-euo", "pipefail", "-c", 'source euca-data/eucarc && exec "$PYTHON" -']
        done = subprocess.run(argv, cwd=fresh_box, env=env | {"PYTHON": sys.executable},
                              input=code if kind == "python" else None, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, (
            f"{kind} block failed:\n{code}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}")
        if kind == "sh":
            assert "pending" in done.stdout or "running" in done.stdout
            assert (fresh_box / "mykey.pem").read_text().startswith("-----BEGIN")
        else:
            assert re.search(r"^i-[0-9A-F]{8} is running$", done.stdout, re.M), done.stdout
