"""Network namespaces for the network agent's tests: a node ("host") namespace, instances as
namespaces plugged into its bridge by a veth named ``vn_<instance-id>``, and a "public" client
namespace routed through the host. Everything is made by the test and deleted after it; packets
never leave these namespaces.

The tools come from Debian (iptables, ipset, nftables, dnsmasq-base, and busybox-static for its
DHCP client udhcpc), installed on first use as
root with apt-get; without root or apt-get the tests are skipped with the reason.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest

APT_PACKAGES = ["iptables", "ipset", "nftables", "dnsmasq-base", "iproute2", "busybox-static"]
TOOLS = ["iptables-restore", "ipset", "nft", "dnsmasq", "ip", "busybox", "bridge"]
LISTENER = ("import socket,sys\ns=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
            "s.bind(('0.0.0.0',int(sys.argv[1])));s.listen(16)\nwhile True:\n c,a=s.accept();"
            "c.sendall(sys.argv[2].encode()+b' '+a[0].encode()+b'\\n');c.close()\n")


def tools_reason() -> str | None:
    """None when the tools are there (installing them if need be), else why the tests skip."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if all(shutil.which(t) for t in TOOLS):
        return None
    if not shutil.which("apt-get"):
        return "iptables/ipset/nft/dnsmasq/busybox are missing and there is no apt-get"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for step in (["apt-get", "update", "-q"],
                 ["apt-get", "install", "-y", "-q", "--no-install-recommends", *APT_PACKAGES]):
        done = subprocess.run(step, env=env, capture_output=True, text=True, timeout=600, check=False)
        if done.returncode != 0:
            return f"{' '.join(step[:3])} failed: {done.stderr.strip()[-300:]}"
    missing = [t for t in TOOLS if not shutil.which(t)]
    return f"still missing after apt-get: {missing}" if missing else None


@pytest.fixture(scope="session")
def net_tools() -> None:
    reason = tools_reason()
    if reason is not None:
        pytest.skip(f"network agent: {reason}")


def sh(*argv: str, check: bool = True) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip()}")
    return done.stdout


@dataclass
class Lab:
    tag: str  # makes the namespace names this test's own
    host: str = ""
    public: str = ""
    spaces: list[str] = field(default_factory=list)
    listeners: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def ns(self, name: str) -> str:
        full = f"{self.tag}{name}"
        sh("ip", "netns", "add", full)
        self.spaces.append(full)
        sh("ip", "-n", full, "link", "set", "lo", "up")
        return full

    def in_ns(self, ns: str, *argv: str, check: bool = True) -> str:
        return sh("ip", "netns", "exec", ns, *argv, check=check)

    def plug(self, instance_id: str, mac: str, ip: str, prefix: int, router: str, bridge: str, port: int = 8080,
             ns_name: str | None = None, node: str = "") -> str:
        """An instance: a namespace whose eth0 carries its MAC and address (none when ``ip`` is "":
        it takes one with ``dhcp``), plugged into ``bridge`` on the node (the host unless named) as
        ``vn_<instance-id>``, with a TCP listener on ``port`` that answers the caller's address."""
        ns = self.ns(ns_name or instance_id[2:])
        dev = f"vn_{instance_id}"
        node = node or self.host
        sh("ip", "-n", node, "link", "add", dev, "type", "veth", "peer", "name", "eth0", "netns", ns)
        sh("ip", "-n", node, "link", "set", dev, "master", bridge, "up")
        sh("ip", "-n", ns, "link", "set", "eth0", "address", mac, "up")
        if ip:
            sh("ip", "-n", ns, "addr", "add", f"{ip}/{prefix}", "dev", "eth0")
            sh("ip", "-n", ns, "route", "add", "default", "via", router)
        argv = ["ip", "netns", "exec", ns, "python3", "-c", LISTENER, str(port), instance_id]
        self.listeners.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        return ns

    def listen(self, ns: str, port: int, name: str) -> None:
        """A TCP listener in ``ns`` that answers ``name`` and the address the caller came from."""
        argv = ["ip", "netns", "exec", ns, "python3", "-c", LISTENER, str(port), name]
        self.listeners.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    def dhcp(self, ns: str, timeout: int = 8) -> dict[str, str]:
        """busybox udhcpc on the namespace's eth0, once: the lease it took (``ip``, ``subnet``,
        ``router``, ...) with the address and default route put on eth0, or {} when none came."""
        script = ("#!/bin/sh\n[ \"$1\" = bound ] || exit 0\n"
                  "ip addr add \"$ip/$mask\" dev \"$interface\"\n"
                  "[ -n \"$router\" ] && ip route add default via \"${router%% *}\"\n"
                  "echo \"lease ip=$ip subnet=$subnet router=$router dns=$dns domain=$domain\"\n")
        path = f"/tmp/{self.tag}-udhcpc.sh"
        with open(path, "w") as fh:
            fh.write(script)
        os.chmod(path, 0o755)
        done = subprocess.run(["ip", "netns", "exec", ns, "busybox", "udhcpc", "-f", "-q", "-n", "-i", "eth0",
                               "-t", str(timeout), "-T", "1", "-A", "1", "-s", path],
                              capture_output=True, text=True, check=False, timeout=timeout + 20)
        for line in done.stdout.splitlines():
            if line.startswith("lease "):
                return dict(field.split("=", 1) for field in line.split()[1:])
        return {}

    def unplug(self, instance_id: str, ns: str) -> None:
        sh("ip", "-n", self.host, "link", "del", f"vn_{instance_id}", check=False)

    def connect(self, ns: str, ip: str, port: int = 8080, timeout: float = 0.7, source: str = "") -> str | None:
        """What the listener at ip:port answers (the address it saw us come from), or None."""
        code = ("import socket,sys\ntry:\n s=socket.socket();s.settimeout(float(sys.argv[3]))\n"
                " if sys.argv[4]: s.bind((sys.argv[4],0))\n"
                " s.connect((sys.argv[1],int(sys.argv[2])));print(s.recv(64).decode().strip())\n"
                "except OSError: print('')\n")
        out = self.in_ns(ns, "python3", "-c", code, ip, str(port), str(timeout), source).strip()
        return out or None

    def until(self, ns: str, ip: str, want: bool, seconds: float = 2.0, port: int = 8080) -> float:
        """Seconds until ip:port becomes reachable (want=True) or unreachable; raises after ``seconds``."""
        started = time.monotonic()
        while True:
            ok = self.connect(ns, ip, port, timeout=0.3) is not None
            if ok == want:
                return time.monotonic() - started
            if time.monotonic() - started > seconds:
                raise AssertionError(f"{ip}:{port} still {'un' if want else ''}reachable after {seconds} s")
            time.sleep(0.05)


@contextmanager
def lab(tag: str) -> Iterator[Lab]:
    """A host namespace (forwarding on, bridged IPv4 through iptables) and a public client
    namespace 192.0.2.2 routed through it (192.0.2.1)."""
    made = Lab(tag)
    try:
        made.host = made.ns("host")
        made.public = made.ns("pub")
        made.in_ns(made.host, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        made.in_ns(made.host, "sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1")
        sh("ip", "-n", made.host, "link", "add", "up0", "type", "veth", "peer", "name", "eth0", "netns", made.public)
        sh("ip", "-n", made.host, "addr", "add", "192.0.2.1/24", "dev", "up0")
        sh("ip", "-n", made.host, "link", "set", "up0", "up")
        sh("ip", "-n", made.public, "addr", "add", "192.0.2.2/24", "dev", "eth0")
        sh("ip", "-n", made.public, "link", "set", "eth0", "up")
        sh("ip", "-n", made.public, "route", "add", "default", "via", "192.0.2.1")
        yield made
    finally:
        for proc in made.listeners:
            proc.terminate()
            proc.wait(5)
        for ns in reversed(made.spaces):
            sh("ip", "netns", "del", ns, check=False)
        with contextlib.suppress(OSError):
            os.unlink(f"/tmp/{tag}-udhcpc.sh")


def saved(lab_: Lab) -> tuple[str, str, str]:
    """iptables-save (both tables) and ipset save of the host, without counters, dates and set seeds."""
    import re

    tables = lab_.in_ns(lab_.host, "iptables-save")
    tables = "\n".join(re.sub(r"\[\d+:\d+\]", "[0:0]", line)
                       for line in tables.splitlines() if not line.startswith("#"))
    # a set's members are unordered: its hash lists them in any order after a swap
    sets = "\n".join(sorted(re.sub(r" initval 0x[0-9a-f]+", "", lab_.in_ns(lab_.host, "ipset", "save")).splitlines()))
    bridge = lab_.in_ns(lab_.host, "nft", "list", "table", "bridge", "euca", check=False)
    return tables, sets, "\n".join(line for line in bridge.splitlines() if not line.startswith("#"))
