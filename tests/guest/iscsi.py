"""tgtd for the real guest's EBS volumes, where the guests' QEMU can reach it.

QEMU runs inside the test libvirtd's network namespace (tests/guest/libvirtd.py), where only ``lo``
and the guests' bridge exist, so a portal on the host's 127.0.0.1 is out of its reach. tgtd runs
in that namespace instead (``Libvirtd.in_netns``), its portal on the namespace's own 127.0.0.1:3260.
It is still managed from the host: tgtadm talks to tgtd over a Unix socket named by a path
(``/var/run/tgtd/socket.<control port>``), and paths do not depend on the network namespace; and
tgtd, sharing the host's mount namespace, opens the volumes' files where the Storage Controller
made them. The Storage Controller's ``Tgt`` is pointed at the control port, and the exports it
hands the node name 127.0.0.1:3260, which is what QEMU connects to.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from tests.guest.libvirtd import Libvirtd

PACKAGES = ("tgt", "qemu-block-extra")
PORT = 3260
CONTROL_DIR = Path("/var/run/tgtd")


class IscsiUnavailable(RuntimeError):
    """tgt or QEMU's iSCSI initiator is missing and cannot be installed, or tgtd did not start."""


def prepare() -> None:
    """Install tgt (tgtd, tgtadm) and QEMU's iSCSI block driver (qemu-block-extra) if missing."""
    def missing() -> list[str]:
        out = []
        for name in PACKAGES:
            done = subprocess.run(["dpkg-query", "-W", "-f=${Status}", name], capture_output=True, text=True,
                                  check=False)
            if done.returncode != 0 or "install ok installed" not in done.stdout:
                out.append(name)
        return out

    if shutil.which("dpkg-query") is None:
        raise IscsiUnavailable("not a Debian-style host (no dpkg-query)")
    wanted = missing()
    if not wanted:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise IscsiUnavailable(f"{' '.join(wanted)} missing, and installing needs root and apt-get")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    done = subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *wanted], env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0 or missing():
        raise IscsiUnavailable(f"could not install {' '.join(wanted)}: {done.stderr.strip()[-300:]}")


def _free_control(first: int | None = None, tries: int = 200) -> int:
    """A control port no live tgtd holds: tgtd locks ``socket.<port>.lock`` (lockf) while it runs,
    and a port taken by another tgtd would have tgtadm talk to that one instead of ours."""
    import fcntl

    start = first if first is not None else 8000 + os.getpid() % 1000
    for port in range(start, start + tries):
        lock = CONTROL_DIR / f"socket.{port}.lock"
        try:
            fd = os.open(lock, os.O_RDWR)
        except FileNotFoundError:
            return port
        except OSError:
            continue
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # a tgtd holds it
        else:
            fcntl.lockf(fd, fcntl.LOCK_UN)
            return port
        finally:
            os.close(fd)
    raise IscsiUnavailable(f"no free tgtd control port in {start}..{start + tries - 1}")


class Tgtd:
    """One tgtd in ``daemon``'s network namespace; ``control`` is its tgtadm control port."""

    def __init__(self, daemon: Libvirtd, control: int | None = None) -> None:
        self.daemon = daemon
        self.control = control if control is not None else _free_control()
        self.port = PORT
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = daemon.state / "tgtd.log"

    def tgtadm(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["tgtadm", "-C", str(self.control), *args], capture_output=True, text=True,
                              timeout=20, check=False)

    def start(self, timeout: float = 15.0) -> None:
        with open(self._log, "ab") as log:
            self._proc = subprocess.Popen(
                self.daemon.in_netns("tgtd", "-f", "-C", str(self.control), "--iscsi",
                                     f"portal=127.0.0.1:{self.port}"),
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while self.tgtadm("--lld", "iscsi", "--op", "show", "--mode", "target").returncode != 0:
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise IscsiUnavailable(f"tgtd did not start: {self.log_tail()}")
            time.sleep(0.1)

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self._log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        """tgtd leaves on its own command (not on SIGTERM while it has targets); killed by PID otherwise."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            self.tgtadm("--op", "delete", "--mode", "system")
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
