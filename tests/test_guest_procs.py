"""The real-guest tests' background processes (``tests.guest.procs.Process``): stopping one ends
what it started too, as a node controller starts its network agent and the agent its dnsmasq."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from tests.guest.procs import Process

# a leader that ignores SIGINT (a node controller hung on its way out), and a child of its own that
# ignores it too (the network agent), both in the leader's session
HUNG = """
import signal, subprocess, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c",
                          "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); time.sleep(600)"])
print("child", child.pid, flush=True)
time.sleep(600)
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a child the leader never reaped stays a zombie until init takes it: that is gone too
    stat = Path(f"/proc/{pid}/stat").read_text() if Path(f"/proc/{pid}/stat").exists() else ""
    return bool(stat) and stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_a_hung_process_is_killed_with_what_it_started(tmp_path: Path) -> None:
    proc = Process("hung", ["-c", HUNG], tmp_path / "hung.log")
    proc.wait_for("child ")
    child = int(proc.output().split()[1])
    assert alive(child)
    try:
        proc.stop(timeout=1.0)
        assert proc.proc.returncode is not None
        deadline = time.monotonic() + 5
        while alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(child)
    finally:
        if alive(child):
            os.kill(child, signal.SIGKILL)
