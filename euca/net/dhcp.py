"""DHCP for the instances with dnsmasq: fixed addresses by MAC, never a pool.

dnsmasq is started once, with a configuration naming a hosts file and an options file; a new
view rewrites those two files (under a temporary name, then renamed) and sends SIGHUP, which makes
dnsmasq re-read them. A lease outlives its instance in dnsmasq's lease file, and dnsmasq will not
hand a configured address to a new MAC while another holds it: private addresses are reused at
once, so when an instance ends and its lease is still there, dnsmasq is stopped, the lease file
pruned of every MAC and address no running instance has, and dnsmasq started again (it reads the
file only then). That is the one restart while instances run; a renewal that falls in the
moment it takes is retried by the client.

The served range is the whole of VNET_SUBNET in ``static`` mode: every group network of the
managed modes lies inside it, and an unknown MAC gets nothing.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

from euca.net.render import Desired, HostConfig


def _pairs(hosts: str) -> set[tuple[str, str]]:
    """(MAC, address) of each dhcp-hostsfile line (``mac,ip`` or ``mac,set:tag,ip``)."""
    found = set()
    for line in hosts.splitlines():
        fields = line.split(",")
        if len(fields) >= 2:
            found.add((fields[0].lower(), fields[-1]))
    return found


class Dhcp:
    def __init__(self, state_dir: Path, host: HostConfig, prefix: Sequence[str] = ()) -> None:
        self.dir, self.host, self.prefix = state_dir, host, prefix
        self.hosts_file = state_dir / "dhcp-hosts"
        self.opts_file = state_dir / "dhcp-opts"
        self.conf_file = state_dir / "dnsmasq.conf"
        self.leases = state_dir / "dnsmasq.leases"
        self.process: subprocess.Popen[bytes] | None = None
        self.range: tuple[str, str] | None = None
        self.reloads = 0
        self.pruned = 0  # leases of ended instances dropped

    def _write(self, path: Path, text: str) -> bool:
        if path.exists() and path.read_text() == text:
            return False
        temp = path.with_suffix(".tmp")
        temp.write_text(text)
        os.replace(temp, path)
        return True

    def apply(self, desired: Desired) -> None:
        if desired.dhcp_range is None:
            self.stop()
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        changed = self._write(self.hosts_file, desired.dhcp_hosts)
        changed = self._write(self.opts_file, desired.dhcp_opts) or changed
        wanted = _pairs(desired.dhcp_hosts)
        if self.process is not None and self.process.poll() is None and self.range == desired.dhcp_range:
            if not changed:
                return
            if not self._stale(wanted):
                self.process.send_signal(signal.SIGHUP)
                self.reloads += 1
                return
        # the subnet changed, dnsmasq died or is not started yet, or an ended instance's lease is
        # still held: dnsmasq reads its lease file only when it starts
        self.stop()
        self.pruned += self._prune(wanted)
        self.range = desired.dhcp_range
        network, netmask = desired.dhcp_range
        interfaces = "eucabr*" if desired.mode == "MANAGED" else self.host.bridge
        self._write(self.conf_file, "".join(line + "\n" for line in (
            "port=0", "bind-dynamic", f"user={self.host.dhcp_user}", f"interface={interfaces}", "except-interface=lo",
            f"dhcp-range={network},static,{netmask},{self.host.lease_seconds}s",
            f"dhcp-hostsfile={self.hosts_file}", f"dhcp-optsfile={self.opts_file}",
            f"dhcp-leasefile={self.leases}", "dhcp-authoritative", "log-dhcp")))
        argv = [*self.prefix, "dnsmasq", "--keep-in-foreground", f"--conf-file={self.conf_file}", "--pid-file="]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def _leases(self) -> list[str]:
        try:
            return self.leases.read_text().splitlines()
        except FileNotFoundError:
            return []

    def _stale(self, wanted: set[tuple[str, str]]) -> bool:
        """Whether dnsmasq holds a lease no running instance should have (its lines: expiry, MAC, address, ...)."""
        return any(tuple(line.split()[1:3]) not in wanted for line in self._leases() if len(line.split()) >= 3)

    def _prune(self, wanted: set[tuple[str, str]]) -> int:
        """Drop the leases of MACs and addresses no running instance has (dnsmasq stopped); how many went."""
        lines = self._leases()
        kept = [line for line in lines if len(line.split()) >= 3 and tuple(line.split()[1:3]) in wanted]
        if len(kept) != len(lines):
            self._write(self.leases, "".join(line + "\n" for line in kept))
        return len(lines) - len(kept)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
