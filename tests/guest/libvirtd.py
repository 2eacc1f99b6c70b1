"""libvirtd and virtlogd for one test session, fenced off from the host.

Both daemons run in a private mount and network namespace made with ``unshare``. In the mount
namespace libvirt's own directories (/etc/libvirt, /run/libvirt, /var/lib/libvirt, /var/log/libvirt,
/var/cache/libvirt) are bind mounts of directories under one state directory, so domain definitions,
sockets, logs and QEMU's runtime files land there and nowhere else; in the network namespace only
``lo`` and the guests' bridges exist, so no guest and no libvirt network can reach the host's.
Clients outside connect through the socket's path in the state directory::

    qemu:///system?socket=<state>/run/libvirt-sock

A test that wants its guests on a network links the namespace to the host (``link_to_host``: a veth
pair, the host routing the instances' subnet into the namespace, so a guest's packets reach the
host's services with the guest's own source address) or to a client namespace of its own
(``link_namespace``).

Stopping destroys and undefines every domain, stops both daemons by PID, ends any process still
left in the namespace (a QEMU libvirtd did not reap), removes the links and namespaces made for it
and the state directory.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

# where libvirt keeps things -> the name of the directory under the state dir that replaces it
_MOUNTS = {
    "/etc/libvirt": "etc",
    "/run/libvirt": "run",
    "/var/lib/libvirt": "lib",
    "/var/log/libvirt": "log",
    "/var/cache/libvirt": "cache",
}

# QEMU runs as root without per-domain namespaces, cgroups or relabelling: the test daemon only ever runs
# the test guest, from files the test itself wrote in directories other users may not enter.
_QEMU_CONF = """\
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
cgroup_controllers = [ ]
namespaces = [ ]
"""

_LIBVIRTD_CONF = """\
unix_sock_group = "root"
unix_sock_ro_perms = "0700"
unix_sock_rw_perms = "0700"
auth_unix_ro = "none"
auth_unix_rw = "none"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
"""

_VIRTLOGD_CONF = """\
log_outputs = "3:file:/var/log/libvirt/virtlogd.log"
"""


def _sbin(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if found is None:
        raise FileNotFoundError(name)
    return found


def _netns_of(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return None


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


class Libvirtd:
    """One libvirtd + virtlogd pair in namespaces of their own; ``uri`` is how to reach it."""

    def __init__(self, state_dir: Path | None = None, bridges: Sequence[str] = ("br0",)) -> None:
        """``bridges`` are made (up, no addresses) inside the network namespace for guests' interfaces."""
        self.bridges = tuple(bridges)
        self.state = state_dir or Path(tempfile.mkdtemp(prefix="euca-libvirtd-"))
        self.uri = f"qemu:///system?socket={self.state / 'run' / 'libvirt-sock'}"
        self._libvirtd: subprocess.Popen[bytes] | None = None
        self._virtlogd: subprocess.Popen[bytes] | None = None
        self._logs: list[IO[bytes]] = []
        self._made_mountpoints: list[Path] = []
        self._netns: str | None = None
        self._host_links: list[str] = []  # veths whose host end this made (deleting one deletes both ends)
        self._namespaces: list[str] = []  # named namespaces this made (ip netns add)

    @property
    def pid(self) -> int:
        """libvirtd's PID: ``nsenter -t PID --net`` runs a command in the guests' network namespace."""
        if self._libvirtd is None:
            raise RuntimeError("libvirtd is not running")
        return self._libvirtd.pid

    def in_netns(self, *argv: str) -> list[str]:
        """``argv`` run inside the network namespace the guests' bridges live in."""
        return ["nsenter", "-t", str(self.pid), "--net", "--", *argv]

    # -- links -----------------------------------------------------------------------------------------

    def link_to_host(self, host_address: str, address: str, routes: Sequence[str] = (),
                     on_link: Sequence[str] = ()) -> str:
        """A veth pair from the host (``host_address``, "a.b.c.d/n") into the namespace (``address``,
        device ``uplink0``, its default route back through the host), a host route for each of
        ``routes`` through it, and one for each of ``on_link`` onto the link itself (addresses the
        namespace answers ARP for). Returns the host end's name; ``stop`` deletes it and with it the
        routes."""
        name = f"lvu{self.pid}"[:15]
        peer = address.split("/")[0]
        _ip("link", "add", name, "type", "veth", "peer", "name", "uplink0", "netns", str(self.pid))
        self._host_links.append(name)
        _ip("addr", "add", host_address, "dev", name)
        _ip("link", "set", name, "up")
        self._in_ns_ip("addr", "add", address, "dev", "uplink0")
        self._in_ns_ip("link", "set", "uplink0", "up")
        self._in_ns_ip("route", "add", "default", "via", host_address.split("/")[0])
        for route in routes:
            _ip("route", "add", route, "via", peer, "dev", name)
        for route in on_link:
            _ip("route", "add", route, "dev", name)
        return name

    def link_namespace(self, name: str, address: str, gateway: str, inside: str = "") -> str:
        """A new named namespace (``ip netns add``), its ``eth0`` (``address``, "a.b.c.d/n", default
        route via ``gateway``) linked to ``gateway``'s end in the guests' namespace (device ``inside``,
        by default ``lvc<n>``): a client one router (the guests' namespace) away from the guests, or
        another host on the node's private network. Returns the name; ``stop`` deletes it."""
        _ip("netns", "add", name)
        self._namespaces.append(name)
        prefix = address.split("/")[1]
        inside = inside or f"lvc{len(self._namespaces)}"
        _ip("link", "add", "eth0", "netns", name, "type", "veth", "peer", "name", inside, "netns", str(self.pid))
        _ip("-n", name, "link", "set", "lo", "up")
        _ip("-n", name, "addr", "add", address, "dev", "eth0")
        _ip("-n", name, "link", "set", "eth0", "up")
        self._in_ns_ip("addr", "add", f"{gateway}/{prefix}", "dev", inside)
        self._in_ns_ip("link", "set", inside, "up")
        _ip("-n", name, "route", "add", "default", "via", gateway)
        return name

    def _in_ns_ip(self, *argv: str) -> None:
        _check(self.in_netns(_sbin("ip"), *argv))

    def unlink(self) -> None:
        """Delete what ``link_to_host`` and ``link_namespace`` made (``stop`` does it too)."""
        for name in self._host_links:
            subprocess.run([_sbin("ip"), "link", "del", name], capture_output=True, check=False)
        for name in self._namespaces:
            subprocess.run([_sbin("ip"), "netns", "del", name], capture_output=True, check=False)
        self._host_links.clear()
        self._namespaces.clear()

    # -- start ---------------------------------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> None:
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout: float) -> None:
        self._write_config()
        for target in _MOUNTS:
            path = Path(target)
            if not path.exists():
                path.mkdir(parents=True)
                self._made_mountpoints.append(path)
        binds = "".join(f"mount --bind {shlex.quote(str(self.state / name))} {shlex.quote(target)}\n"
                        for target, name in _MOUNTS.items())
        links = "".join(f"ip link add {shlex.quote(b)} type bridge\nip link set {shlex.quote(b)} up\n"
                        for b in self.bridges)
        # the PID files too live in the state directory: two sessions' daemons may run side by side
        daemon = f"{shlex.quote(_sbin('libvirtd'))} --pid-file {shlex.quote(str(self.state / 'libvirtd.pid'))}"
        script = f"set -e\n{binds}ip link set lo up\n{links}exec {daemon}\n"
        self._libvirtd = subprocess.Popen(
            ["unshare", "--mount", "--net", "--propagation", "private", "--", "sh", "-c", script],
            stdin=subprocess.DEVNULL, stdout=self._log("libvirtd.out"), stderr=subprocess.STDOUT,
            start_new_session=True)
        self._wait_for(self.state / "run" / "libvirt-sock", self._libvirtd, timeout)
        self._netns = _netns_of(self._libvirtd.pid)
        self._virtlogd = subprocess.Popen(
            ["nsenter", "-t", str(self._libvirtd.pid), "--mount", "--net", "--", _sbin("virtlogd"),
             "--pid-file", str(self.state / "virtlogd.pid")],
            stdin=subprocess.DEVNULL, stdout=self._log("virtlogd.out"), stderr=subprocess.STDOUT,
            start_new_session=True)
        self._wait_for(self.state / "run" / "virtlogd-sock", self._virtlogd, timeout)

    def _write_config(self) -> None:
        for name in _MOUNTS.values():
            (self.state / name).mkdir(parents=True, exist_ok=True)
        etc = self.state / "etc"
        (etc / "qemu").mkdir(exist_ok=True)
        (etc / "qemu.conf").write_text(_QEMU_CONF)
        (etc / "libvirtd.conf").write_text(_LIBVIRTD_CONF)
        (etc / "virtlogd.conf").write_text(_VIRTLOGD_CONF)
        (etc / "libvirt.conf").write_text("")
        nwfilter = Path("/etc/libvirt/nwfilter")
        if nwfilter.is_dir():
            shutil.copytree(nwfilter, etc / "nwfilter", dirs_exist_ok=True)
        os.chmod(self.state, 0o755)

    def _log(self, name: str) -> IO[bytes]:
        fh = open(self.state / name, "ab")  # noqa: SIM115 - closed in stop()
        self._logs.append(fh)
        return fh

    def _wait_for(self, socket: Path, proc: subprocess.Popen[bytes], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not socket.exists():
            if proc.poll() is not None:
                raise RuntimeError(f"the daemon for {socket.name} exited with {proc.returncode} before "
                                   f"{socket} appeared:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{socket} did not appear within {timeout:.0f} s:\n{self.log_tail()}")
            time.sleep(0.05)

    def log_tail(self, chars: int = 3000) -> str:
        out = []
        for name in ("libvirtd.out", "virtlogd.out", "log/libvirtd.log"):
            with contextlib.suppress(OSError):
                out.append(f"--- {name}\n{(self.state / name).read_text(errors='replace')[-chars:]}")
        return "\n".join(out)

    # -- stop ----------------------------------------------------------------------------------------

    def stop(self) -> list[str]:
        """Tear everything down; returns the names of domains that were still defined or running."""
        leftovers = self._remove_domains()
        self.unlink()
        for proc in (self._libvirtd, self._virtlogd):
            if proc is not None:
                _terminate(proc)
        self._kill_namespace_stragglers()
        for fh in self._logs:
            fh.close()
        self._logs.clear()
        shutil.rmtree(self.state, ignore_errors=True)
        for path in reversed(self._made_mountpoints):
            with contextlib.suppress(OSError):
                path.rmdir()
        self._made_mountpoints.clear()
        self._libvirtd = self._virtlogd = None
        return leftovers

    def _remove_domains(self) -> list[str]:
        if self._libvirtd is None or self._libvirtd.poll() is not None:
            return []
        try:
            import libvirt
        except ImportError:
            return []
        names: list[str] = []
        try:
            conn = libvirt.open(self.uri)
        except libvirt.libvirtError:
            return names
        try:
            for dom in conn.listAllDomains():
                names.append(dom.name())
                with contextlib.suppress(libvirt.libvirtError):
                    if dom.isActive():
                        dom.destroy()
                with contextlib.suppress(libvirt.libvirtError):
                    dom.undefine()
        finally:
            conn.close()
        return names

    def _kill_namespace_stragglers(self) -> None:
        """A process libvirtd started and left behind would outlive the daemon: end it by its PID."""
        if self._netns is None:
            return
        for _ in range(50):
            pids = [int(p.name) for p in Path("/proc").iterdir()
                    if p.name.isdigit() and _netns_of(int(p.name)) == self._netns and _alive(int(p.name))]
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)


def _check(argv: Sequence[str]) -> None:
    done = subprocess.run(list(argv), capture_output=True, text=True, check=False, timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip()}")


def _ip(*argv: str) -> None:
    _check([_sbin("ip"), *argv])


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


@contextlib.contextmanager
def running_libvirtd() -> Iterator[Libvirtd]:
    daemon = Libvirtd()
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.stop()
