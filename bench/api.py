"""This EC2 API beside moto's server, side by side in one run, on the same workloads.

Both servers run as subprocesses on 127.0.0.1 with one worker each. Every workload is driven two
ways: through boto3 (what users run; the client's own cost is included) and as raw HTTP (requests
signed with SigV4 beforehand-free: each request is signed in the loop, but sent over one kept-alive
connection, so the server's cost dominates). Printed per workload: requests/s, p50 and p99 latency
for each server, and the ratio of requests/s.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import boto3

_INSTANCE_ID = re.compile(rb"<instanceId>(i-[0-9a-fA-F]+)</instanceId>")
_FORM = "application/x-www-form-urlencoded; charset=utf-8"


@dataclass
class Target:
    name: str
    host: str
    port: int
    region: str
    access: str
    secret: str
    image: str = ""

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def boto(self) -> Any:
        return boto3.client("ec2", endpoint_url=self.url, region_name=self.region, aws_access_key_id=self.access,
                            aws_secret_access_key=self.secret)


class RawClient:
    """Signed form POSTs over one kept-alive connection.

    Signed here with SigV4 in a few lines (the derived key cached for the day) rather than through
    botocore's AWSRequest, which costs ~130 us a request: on a server answering in a few hundred
    microseconds that would be half of what is measured, for either server."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.host = f"{target.host}:{target.port}"
        self._connect()
        self._day = ""
        self._key = b""

    def _connect(self) -> None:
        self.sock = socket.create_connection((self.target.host, self.target.port), timeout=60)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.file = self.sock.makefile("rb")
        self.open = True

    def _signing_key(self, day: str) -> bytes:
        if day != self._day:
            key = ("AWS4" + self.target.secret).encode()
            for part in (day, self.target.region, "ec2", "aws4_request"):
                key = hmac.digest(key, part.encode(), "sha256")
            self._day, self._key = day, key
        return self._key

    def headers(self, body: bytes) -> dict[str, str]:
        amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        day = amz_date[:8]
        payload = hashlib.sha256(body).hexdigest()
        canonical = (f"POST\n/\n\ncontent-type:{_FORM}\nhost:{self.host}\nx-amz-date:{amz_date}\n\n"
                     f"content-type;host;x-amz-date\n{payload}")
        scope = f"{day}/{self.target.region}/ec2/aws4_request"
        to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        signature = hmac.digest(self._signing_key(day), to_sign.encode(), "sha256").hex()
        return {"Content-Type": _FORM, "Host": self.host, "X-Amz-Date": amz_date,
                "Authorization": f"AWS4-HMAC-SHA256 Credential={self.target.access}/{scope}, "
                                 f"SignedHeaders=content-type;host;x-amz-date, Signature={signature}"}

    def call(self, params: dict[str, str]) -> bytes:
        """One request, written and read by hand: http.client parses each response's headers with
        the email package, which is again a sizeable part of a fast server's round trip."""
        body = urlencode({"Version": "2016-11-15", **params}).encode()
        head = "".join(f"{k}: {v}\r\n" for k, v in self.headers(body).items())
        if not self.open:
            self.close()
            self._connect()  # moto's server closes the connection after every answer
        self.sock.sendall(f"POST / HTTP/1.1\r\n{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
        status_line = self.file.readline()
        status = int(status_line.split()[1])
        length = -1
        chunked = False
        while (line := self.file.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif name == b"connection" and b"close" in value.lower():
                self.open = False
        if chunked:
            parts = []
            while (size := int(self.file.readline().split(b";")[0], 16)) > 0:
                parts.append(self.file.read(size))
                self.file.readline()
            while self.file.readline() not in (b"\r\n", b""):
                pass
            data = b"".join(parts)
        else:
            data = self.file.read(length) if length >= 0 else self.file.read()
            self.open = self.open and length >= 0
        if status != 200:
            raise RuntimeError(f"{self.target.name} {params.get('Action')}: {status} {data[:300]!r}")
        return data

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("server did not start") from None
            time.sleep(0.05)


@contextmanager
def _process(cmd: list[str], port: int) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait(port, proc)
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def eucarc(data_dir: Path) -> dict[str, str]:
    """The variables ``euca up`` wrote to ``data_dir/eucarc`` (keys, URLs, the default image)."""
    return dict(line.removeprefix("export ").split("=", 1) for line in (data_dir / "eucarc").read_text().splitlines())


@contextmanager
def euca_server() -> Iterator[Target]:
    with tempfile.TemporaryDirectory() as tmp:
        port = _free_port()
        conf = Path(tmp) / "eucalyptus.conf"
        conf.write_text('VNET_ADDRSPERNET="2048"\n')
        cmd = [sys.executable, "-m", "euca.cli", "up", "--data-dir", tmp, "--port", str(port), "--config", str(conf),
               "--nodes", "8", "--node-cores", "256", "--node-memory", "262144", "--node-disk", "10000",
               "--boot-time", "0", "--log-level", "warning"]
        with _process(cmd, port):
            env = eucarc(Path(tmp))
            target = Target("euca", "127.0.0.1", port, "eucalyptus", env["EC2_ACCESS_KEY"], env["EC2_SECRET_KEY"])
            target.image = env["EUCA_DEFAULT_IMAGE"]  # the default image euca up registers on first start
            yield target


@contextmanager
def moto_server() -> Iterator[Target]:
    port = _free_port()
    with _process([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], port):
        target = Target("moto", "127.0.0.1", port, "us-east-1", "AKIDBENCH", "bench-secret")
        client = target.boto()
        target.image = client.describe_images(Owners=["amazon"], MaxResults=5)["Images"][0]["ImageId"]
        client.close()
        yield target


# --- workloads ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Result:
    requests: int
    seconds: float
    p50: float
    p99: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0


def _timed(calls: list[Callable[[], object]]) -> Result:
    latencies = []
    started = time.perf_counter()
    for call in calls:
        t = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - t)
    total = time.perf_counter() - started
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return Result(len(latencies), total, statistics.median(latencies), p99)


def _workloads(target: Target, mode: str, n_run: int, n_describe: int, present: int) -> dict[str, Result]:
    out: dict[str, Result] = {}
    if mode == "boto3":
        client = target.boto()
        ids: list[str] = []

        def run_boto() -> None:
            ids.extend(i["InstanceId"] for i in client.run_instances(
                ImageId=target.image, MinCount=1, MaxCount=1, InstanceType="t1.micro")["Instances"])
        out["RunInstances"] = _timed([run_boto] * n_run)
        missing = present - len(ids)
        if missing > 0:
            ids += [i["InstanceId"] for i in client.run_instances(
                ImageId=target.image, MinCount=missing, MaxCount=missing, InstanceType="t1.micro")["Instances"]]
        out[f"DescribeInstances ({len(ids)} present)"] = _timed([client.describe_instances] * n_describe)
        out["TerminateInstances"] = _timed(
            [lambda i=i: client.terminate_instances(InstanceIds=[i]) for i in ids[:n_run]])  # type: ignore[misc]
        if ids[n_run:]:
            client.terminate_instances(InstanceIds=ids[n_run:])
        client.close()
        return out
    raw = RawClient(target)
    raw_ids: list[str] = []
    params = {"Action": "RunInstances", "ImageId": target.image, "MinCount": "1", "MaxCount": "1",
              "InstanceType": "t1.micro"}

    def run_raw() -> None:
        raw_ids.extend(m.decode() for m in _INSTANCE_ID.findall(raw.call(params)))
    out["RunInstances"] = _timed([run_raw] * n_run)
    missing = present - len(raw_ids)
    if missing > 0:
        raw_ids += [m.decode() for m in _INSTANCE_ID.findall(raw.call(
            params | {"MinCount": str(missing), "MaxCount": str(missing)}))]
    out[f"DescribeInstances ({len(raw_ids)} present)"] = _timed(
        [lambda: raw.call({"Action": "DescribeInstances"})] * n_describe)
    out["TerminateInstances"] = _timed(
        [lambda i=i: raw.call({"Action": "TerminateInstances", "InstanceId.1": i})  # type: ignore[misc]
         for i in raw_ids[:n_run]])
    rest = {f"InstanceId.{k + 1}": i for k, i in enumerate(raw_ids[n_run:])}
    if rest:
        raw.call({"Action": "TerminateInstances", **rest})
    raw.close()
    return out


def measure(quick: bool = False) -> list[tuple[str, str, Result, Result]]:
    # DescribeInstances is measured with exactly ``present`` instances: the RunInstances of the first
    # workload, topped up with one more RunInstances when there were fewer.
    n_run, n_describe = (40, 20) if quick else (200, 100)
    present = 200
    rows: list[tuple[str, str, Result, Result]] = []
    with euca_server() as euca, moto_server() as moto:
        for mode in ("raw HTTP", "boto3"):
            ours = _workloads(euca, "boto3" if mode == "boto3" else "raw", n_run, n_describe, present)
            theirs = _workloads(moto, "boto3" if mode == "boto3" else "raw", n_run, n_describe, present)
            for (workload, a), b in zip(ours.items(), theirs.values(), strict=True):
                rows.append((workload, mode, a, b))
    return rows


def format_table(rows: list[tuple[str, str, Result, Result]]) -> str:
    header = ("workload", "client", "euca req/s", "p50 ms", "p99 ms", "moto req/s", "p50 ms", "p99 ms", "ratio")
    body = [(w, m, f"{a.rate:,.0f}", f"{a.p50 * 1e3:.2f}", f"{a.p99 * 1e3:.2f}",
             f"{b.rate:,.0f}", f"{b.p50 * 1e3:.2f}", f"{b.p99 * 1e3:.2f}",
             f"{a.rate / b.rate:,.1f}x" if b.rate else "inf") for w, m, a, b in rows]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths, strict=True)))
             for line in [header, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.api", description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    print("EC2 API: euca beside moto's server, one worker each, same workloads (127.0.0.1)")
    print(format_table(measure(args.quick)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
