"""A soak of the EC2 API: 64 concurrent clients on a mixed workload against one ``euca up`` worker.

Each client is a thread with its own kept-alive connection, signing raw requests (SigV4 in
``bench.fuzz``; boto3 would cost more than the server). A client's round: run an instance,
describe and tag it, make, describe and delete a key pair and a security group with a rule,
allocate an address, associate it with the instance and give it back, terminate the instance,
describe images and zones. Printed: requests, errors by code (target 0), latency p50 and p99, and
the server's resident memory (VmRSS from /proc) after the first minute (or third, for short runs)
and at the end (target: within 10%).
``python -m bench --only soak [--quick] [--seconds N]``.
"""

from __future__ import annotations

import re
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench.api import _free_port, _process, eucarc
from bench.fuzz import VERSION, Client, Request, encode

CLIENTS = 64
_CODE = re.compile(rb"<Code>([^<]*)</Code>")
_INSTANCE = re.compile(rb"<instanceId>(i-[0-9a-fA-F]+)</instanceId>")
_IP = re.compile(rb"<publicIp>([0-9.]+)</publicIp>")


@dataclass
class Server:
    host: str
    port: int
    pid: int
    access: str
    secret: str
    image: str


def rss_kib(pid: int) -> int:
    """The process's resident set (VmRSS) in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


@contextmanager
def euca_up() -> Iterator[Server]:
    """``euca up`` with room for the clients: 8 big nodes, instances that boot and end at once and
    are buried after 30 s, a large public address pool."""
    with tempfile.TemporaryDirectory() as tmp:
        port = _free_port()
        conf = Path(tmp) / "eucalyptus.conf"
        conf.write_text('VNET_ADDRSPERNET="2048"\nVNET_PUBLICIPS="10.128.0.1-10.128.0.254 10.128.1.1-10.128.1.254"\n')
        cmd = [sys.executable, "-m", "euca.cli", "up", "--data-dir", tmp, "--port", str(port), "--config", str(conf),
               "--nodes", "8", "--node-cores", "512", "--node-memory", "1048576", "--node-disk", "100000",
               "--boot-time", "0", "--shutdown-time", "0", "--bury-time", "30", "--log-level", "warning"]
        with _process(cmd, port) as proc:
            env = eucarc(Path(tmp))
            yield Server("127.0.0.1", port, proc.pid, env["EC2_ACCESS_KEY"], env["EC2_SECRET_KEY"],
                         env["EUCA_DEFAULT_IMAGE"])


@dataclass
class Tally:
    """One client's counts; merged at the end, so the clients never share a lock."""

    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)


class Worker:
    def __init__(self, server: Server, n: int, stop: threading.Event) -> None:
        self.client = Client(server.host, server.port, server.access, server.secret)
        self.image, self.n, self.stop = server.image, n, stop
        self.tally = Tally()
        self.round = 0

    def call(self, action: str, **params: str) -> bytes | None:
        req = Request("soak", action, body=encode([("Action", action), ("Version", VERSION),
                                                   *params.items()]).encode())
        started = time.perf_counter()
        status, body = self.client.send(req)
        self.tally.latencies.append(time.perf_counter() - started)
        if status == 200:
            return body
        found = _CODE.search(body)
        code = found.group(1).decode() if found else f"HTTP {status}"
        self.tally.errors[code] += 1
        if len(self.tally.examples) < 3:
            self.tally.examples.append(f"{action}: {status} {body[:200]!r}")
        return None

    def one_round(self) -> None:
        name = f"soak-{self.n}-{self.round}"
        self.round += 1
        ran = self.call("RunInstances", ImageId=self.image, MinCount="1", MaxCount="1", InstanceType="m1.small")
        found = _INSTANCE.search(ran or b"")
        instance = found.group(1).decode() if found else ""
        if instance:
            self.call("DescribeInstances", **{"InstanceId.1": instance})
            self.call("CreateTags", **{"ResourceId.1": instance, "Tag.1.Key": "soak", "Tag.1.Value": name})
            self.call("DescribeTags", **{"Filter.1.Name": "resource-id", "Filter.1.Value.1": instance})
        self.call("CreateKeyPair", KeyName=name)
        self.call("DescribeKeyPairs", **{"KeyName.1": name})
        self.call("DeleteKeyPair", KeyName=name)
        self.call("CreateSecurityGroup", GroupName=name, GroupDescription="soak")
        self.call("AuthorizeSecurityGroupIngress", GroupName=name, **{
            "IpPermissions.1.IpProtocol": "tcp", "IpPermissions.1.FromPort": "22", "IpPermissions.1.ToPort": "22",
            "IpPermissions.1.IpRanges.1.CidrIp": "0.0.0.0/0"})
        self.call("DescribeSecurityGroups", **{"GroupName.1": name})
        self.call("DeleteSecurityGroup", GroupName=name)
        allocated = _IP.search(self.call("AllocateAddress") or b"")
        if allocated:
            ip = allocated.group(1).decode()
            if instance:
                self.call("AssociateAddress", PublicIp=ip, InstanceId=instance)
                self.call("DescribeAddresses", **{"PublicIp.1": ip})
                self.call("DisassociateAddress", PublicIp=ip)
            self.call("ReleaseAddress", PublicIp=ip)
        if instance:
            self.call("TerminateInstances", **{"InstanceId.1": instance})
        self.call("DescribeImages", **{"ImageId.1": self.image})
        self.call("DescribeAvailabilityZones")

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                self.one_round()
        finally:
            self.client.close()


@dataclass
class Report:
    seconds: float
    requests: int
    errors: Counter[str]
    examples: list[str]
    p50_ms: float
    p99_ms: float
    rss_early_kib: int
    rss_early_at: float
    rss_end_kib: int

    @property
    def growth(self) -> float:
        return (self.rss_end_kib - self.rss_early_kib) / self.rss_early_kib

    def lines(self) -> list[str]:
        errors = ", ".join(f"{code} {n}" for code, n in self.errors.most_common()) or "none"
        out = [f"requests: {self.requests} in {self.seconds:.0f} s ({self.requests / self.seconds:.0f}/s) "
               f"from {CLIENTS} clients",
               f"errors: {sum(self.errors.values())} ({errors})",
               f"latency: p50 {self.p50_ms:.1f} ms, p99 {self.p99_ms:.1f} ms",
               f"server RSS: {self.rss_early_kib / 1024:.1f} MiB at {self.rss_early_at:.0f} s, "
               f"{self.rss_end_kib / 1024:.1f} MiB at the end ({self.growth:+.1%})"]
        return out + [f"  e.g. {e}" for e in self.examples[:5]]


def measure(seconds: float = 600.0, clients: int = CLIENTS) -> Report:
    with euca_up() as server:
        stop = threading.Event()
        workers = [Worker(server, n, stop) for n in range(clients)]
        threads = [threading.Thread(target=w.run, name=f"soak-{w.n}", daemon=True) for w in workers]
        started = time.perf_counter()
        for t in threads:
            t.start()
        early_at = min(60.0, seconds / 3)
        time.sleep(early_at)
        rss_early = rss_kib(server.pid)
        while (left := seconds - (time.perf_counter() - started)) > 0:
            time.sleep(min(left, 30.0))
            print(f"  {time.perf_counter() - started:.0f} s, {sum(len(w.tally.latencies) for w in workers)} "
                  f"requests, RSS {rss_kib(server.pid) / 1024:.1f} MiB", file=sys.stderr, flush=True)
        rss_end = rss_kib(server.pid)
        stop.set()
        for t in threads:
            t.join(60)
        elapsed = time.perf_counter() - started
    latencies = sorted(x for w in workers for x in w.tally.latencies)
    errors: Counter[str] = Counter()
    for w in workers:
        errors.update(w.tally.errors)
    examples = [e for w in workers for e in w.tally.examples]

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000 if latencies else 0.0
    return Report(elapsed, len(latencies), errors, examples, pct(0.50), pct(0.99), rss_early, early_at, rss_end)


def format_report(report: Report) -> str:
    return "\n".join(report.lines())
