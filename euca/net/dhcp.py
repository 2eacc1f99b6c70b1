"""DHCP for the instances with dnsmasq: fixed addresses by MAC, never a pool.

dnsmasq is started once, with a configuration naming a hosts file and an options file; a new
view rewrites those two files (under a temporary name, then renamed) and sends SIGHUP, which makes
dnsmasq re-read them. It is never restarted while instances hold leases, so a renewal always
finds it. The served range is the whole of VNET_SUBNET in ``static`` mode: every group network of
the managed modes lies inside it, and an unknown MAC gets nothing.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

from euca.net.render import Desired, HostConfig


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
        if self.process is not None and self.process.poll() is None and self.range == desired.dhcp_range:
            if changed:
                self.process.send_signal(signal.SIGHUP)
                self.reloads += 1
            return
        self.stop()  # only when the subnet itself changed, or dnsmasq died
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

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
