"""Processes the real-guest tests run: euca commands in the foreground or background, a free port,
and waiting on a condition with the background processes' output in the failure.

``euca_libvirt_nodes`` skips unless euca can put a libvirt node behind ``euca up``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

EC2_TIMEOUT = 120.0


def euca(*argv: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """``python -m euca.cli ARGV``, its output captured."""
    return subprocess.run([sys.executable, "-m", "euca.cli", *argv], capture_output=True, text=True,
                          timeout=timeout, check=False, stdin=subprocess.DEVNULL)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def euca_libvirt_nodes() -> None:
    """Skip unless euca can put a libvirt node behind ``euca up``: ``euca node-controller --uri``,
    registered with the cloud by ``euca node add NAME --url --key``."""
    nc = euca("node-controller", "--help")
    if nc.returncode != 0 or "--uri" not in nc.stdout:
        pytest.skip("euca has no `euca node-controller --uri` command")
    add = euca("node", "add", "--help")
    if "--url" not in add.stdout or "--key" not in add.stdout:
        pytest.skip("`euca node add` cannot register a remote node controller (no --url/--key)")


class Process:
    """A Python command running in the background, its output in a file; stopped by PID."""

    def __init__(self, name: str, argv: list[str], log: Path) -> None:
        self.log = log
        self.name = name
        with open(log, "wb") as out:
            self.proc = subprocess.Popen([sys.executable, *argv], stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_for(self, needle: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.output():
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited ({self.proc.returncode}):\n{self.output()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {needle!r} from {self.name} in {timeout:.0f} s:\n{self.output()}")
            time.sleep(0.1)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 20.0) -> None:
        """SIGINT, then SIGKILL after ``timeout`` seconds, to the whole process group (the command runs in a
        session of its own): what it started (a network agent, its dnsmasq) goes with it even
        when it hangs on the way out."""
        if self.proc.poll() is None:
            self._signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._signal(signal.SIGKILL)  # children it left behind when it did leave

    def _signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):  # the group is empty: nothing of it is left
            os.killpg(self.proc.pid, signum)


def until(what: str, check: Callable[[], bool], timeout: float, *logs: Process) -> None:
    """Poll ``check`` every half second; past ``timeout``, fail with the tail of each log."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {p.log.name}\n{p.output()[-3000:]}" for p in logs)
            raise AssertionError(f"{what}: not within {timeout:.0f} s\n{tails}")
        time.sleep(0.5)


def run_instances(ec2: Any, image_id: str, *logs: Process, count: int = 1, timeout: float = 60.0,
                  **extra: Any) -> list[dict[str, Any]]:
    """RunInstances (m1.small unless ``extra`` says otherwise), retried while it answers
    InsufficientInstanceCapacity: the cloud learns of a remote node only at its first poll. Any
    other refusal, or one past ``timeout``, fails with the tail of each log."""
    from botocore.exceptions import ClientError

    deadline = time.monotonic() + timeout
    while True:
        try:
            found = ec2.run_instances(**{"InstanceType": "m1.small", **extra}, ImageId=image_id, MinCount=count,
                                      MaxCount=count)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "InsufficientInstanceCapacity" or time.monotonic() > deadline:
                tails = "\n".join(f"--- {p.log.name}\n{p.output()[-3000:]}" for p in logs)
                raise AssertionError(f"RunInstances: {exc}\n{tails}") from exc
            time.sleep(1.0)
            continue
        return [dict(i) for i in found["Instances"]]
