"""Walrus (S3) beside moto's S3 server, side by side in one run, on the same workloads.

Both servers run as subprocesses on 127.0.0.1 with one worker each (euca with ``--s3-port``).
Small objects (4 KiB) are PUT and GET over one kept-alive connection with SigV4-signed raw HTTP
(the server's cost dominates) and through boto3 (what users run); large objects (64 MiB) are PUT
and GET raw, in MB/s; ListObjectsV2 pages through 10,000 keys with boto3. Printed per workload:
the rate for each server and their ratio, and the euca server's peak RSS growth over the run.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import io
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import boto3
from botocore.config import Config

from bench.api import Result, _free_port, _process, _timed, eucarc

SMALL = 4096
LARGE = 64 << 20


@dataclass
class S3Target:
    name: str
    port: int
    region: str
    access: str
    secret: str
    pid: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def boto(self) -> Any:
        return boto3.client("s3", endpoint_url=self.url, region_name=self.region, aws_access_key_id=self.access,
                            aws_secret_access_key=self.secret, config=Config(s3={"addressing_style": "path"}))


class RawS3:
    """SigV4-signed requests written and read by hand over one kept-alive connection."""

    def __init__(self, target: S3Target) -> None:
        self.target = target
        self.host = f"127.0.0.1:{target.port}"
        self.sock: socket.socket | None = None
        self._day, self._key = "", b""
        self.buffer = bytearray(1 << 20)

    def _connect(self) -> None:
        self.sock = socket.create_connection(("127.0.0.1", self.target.port), timeout=120)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.file = cast(io.BufferedReader, self.sock.makefile("rb", buffering=1 << 16))

    def _headers(self, method: str, path: str, payload: str) -> str:
        amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        day = amz_date[:8]
        if day != self._day:
            key = ("AWS4" + self.target.secret).encode()
            for part in (day, self.target.region, "s3", "aws4_request"):
                key = hmac.digest(key, part.encode(), "sha256")
            self._day, self._key = day, key
        path, _, query = path.partition("?")
        pairs = sorted(tuple(p.split("=", 1)) if "=" in p else (p, "") for p in query.split("&") if p)
        query = "&".join(f"{k}={v}" for k, v in pairs)
        canonical = (f"{method}\n{path}\n{query}\nhost:{self.host}\nx-amz-content-sha256:{payload}\n"
                     f"x-amz-date:{amz_date}\n\nhost;x-amz-content-sha256;x-amz-date\n{payload}")
        scope = f"{day}/{self.target.region}/s3/aws4_request"
        to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        signature = hmac.digest(self._key, to_sign.encode(), "sha256").hex()
        return (f"Host: {self.host}\r\nX-Amz-Date: {amz_date}\r\nX-Amz-Content-SHA256: {payload}\r\n"
                f"Authorization: AWS4-HMAC-SHA256 Credential={self.target.access}/{scope}, "
                f"SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={signature}\r\n")

    def request(self, method: str, path: str, body: bytes = b"", length: int | None = None,
                chunks: Callable[[], Iterator[bytes]] | None = None) -> int:
        """Send, read the whole answer (into a reused buffer); the number of body bytes received."""
        if self.sock is None:
            self._connect()
        assert self.sock is not None
        payload = hashlib.sha256(body).hexdigest() if chunks is None else "UNSIGNED-PAYLOAD"
        size = len(body) if length is None else length
        head = f"{method} {path} HTTP/1.1\r\n{self._headers(method, path, payload)}Content-Length: {size}\r\n\r\n"
        if chunks is None:
            self.sock.sendall(head.encode() + body)
        else:
            self.sock.sendall(head.encode())
            for chunk in chunks():
                self.sock.sendall(chunk)
        status = int(self.file.readline().split()[1])
        content_length, close, chunked = 0, False, False
        while (line := self.file.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                content_length = int(value)
            elif name == b"connection" and b"close" in value.lower():
                close = True
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        received = 0
        if chunked:
            while (n := int(self.file.readline().split(b";")[0], 16)) > 0:
                received += self._drain(n)
                self.file.readline()
            self.file.readline()
        else:
            received = self._drain(content_length)
        if status >= 300:
            raise RuntimeError(f"{self.target.name} {method} {path}: {status}")
        if close:
            self.close()
        return received

    def _drain(self, n: int) -> int:
        view = memoryview(self.buffer)
        left = n
        while left > 0:
            got = self.file.readinto(view[:min(left, len(self.buffer))])
            if not got:
                break
            left -= got
        return n - left

    def close(self) -> None:
        if self.sock is not None:
            self.file.close()
            self.sock.close()
            self.sock = None


def _rss_peak(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


@contextmanager
def euca_s3() -> Iterator[S3Target]:
    with tempfile.TemporaryDirectory() as tmp:
        port, s3_port = _free_port(), _free_port()
        cmd = [sys.executable, "-m", "euca.cli", "up", "--data-dir", tmp, "--port", str(port), "--s3-port",
               str(s3_port), "--nodes", "1", "--log-level", "warning"]
        with _process(cmd, s3_port) as _:
            env = eucarc(Path(tmp))
            pid = _pid_on(s3_port)
            yield S3Target("euca", s3_port, "eucalyptus", env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"], pid)


def _pid_on(port: int) -> int:
    """The pid of the process listening on ``port`` (for its RSS)."""
    inode = ""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == "0A":
            inode = fields[9]
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                if f"socket:[{inode}]" == str(fd.readlink()):
                    return int(proc.name)
        except OSError:
            continue
    return 0


@contextmanager
def moto_s3() -> Iterator[S3Target]:
    port = _free_port()
    with _process([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], port):
        yield S3Target("moto", port, "us-east-1", "AKIDBENCH", "bench-secret")


def _rate(result: Result, size: int) -> float:
    return result.requests * size / result.seconds / 1e6 if result.seconds else 0.0


def _workloads(target: S3Target, n_small: int, n_large: int, n_list: int) -> dict[str, tuple[Result, str]]:
    out: dict[str, tuple[Result, str]] = {}
    client = target.boto()
    client.create_bucket(Bucket="bench")
    client.create_bucket(Bucket="listing")
    raw = RawS3(target)
    body = b"x" * SMALL
    out["PUT 4 KiB (raw HTTP)"] = (_timed([lambda i=i: raw.request("PUT", f"/bench/small-{i}", body)  # type: ignore[misc]
                                          for i in range(n_small)]), "req/s")
    out["GET 4 KiB (raw HTTP)"] = (_timed([lambda i=i: raw.request("GET", f"/bench/small-{i}")  # type: ignore[misc]
                                          for i in range(n_small)]), "req/s")
    out["PUT 4 KiB (boto3)"] = (_timed([lambda i=i: client.put_object(  # type: ignore[misc]
        Bucket="bench", Key=f"boto-{i}", Body=body) for i in range(n_small)]), "req/s")
    out["GET 4 KiB (boto3)"] = (_timed([lambda i=i: client.get_object(  # type: ignore[misc]
        Bucket="bench", Key=f"boto-{i}")["Body"].read() for i in range(n_small)]), "req/s")
    raw.close()  # idle while boto3 ran: the server's keep-alive timeout may have closed it
    block = b"y" * (1 << 20)

    def large() -> Iterator[bytes]:
        for _ in range(LARGE >> 20):
            yield block
    out["PUT 64 MiB (raw HTTP)"] = (_timed([lambda i=i: raw.request(  # type: ignore[misc]
        "PUT", f"/bench/large-{i}", length=LARGE, chunks=large) for i in range(n_large)]), "MB/s")
    out["GET 64 MiB (raw HTTP)"] = (_timed([lambda: raw.request("GET", "/bench/large-0")] * (n_large * 2)), "MB/s")
    for i in range(n_list):
        raw.request("PUT", f"/listing/key-{i:06d}", b"")

    def list_raw() -> None:
        # ten pages of 1,000 keys: start-after the last key of each page (both servers honour it)
        for page in range(0, n_list, 1000):
            after = f"&start-after=key-{page - 1:06d}" if page else ""
            raw.request("GET", f"/listing?list-type=2{after}")
    out[f"ListObjectsV2 over {n_list:,} keys (raw HTTP)"] = (_timed([list_raw] * 3), "lists/s")
    raw.close()

    def list_all() -> None:
        count = sum(len(page.get("Contents", []))
                    for page in client.get_paginator("list_objects_v2").paginate(Bucket="listing"))
        assert count == n_list, count
    out[f"ListObjectsV2 over {n_list:,} keys (boto3)"] = (_timed([list_all] * 3), "lists/s")
    client.close()
    return out


def measure(quick: bool = False) -> tuple[list[tuple[str, str, float, float]], int]:
    n_small, n_large, n_list = (300, 2, 2_000) if quick else (2_000, 4, 10_000)
    rows: list[tuple[str, str, float, float]] = []
    with euca_s3() as euca, moto_s3() as moto:
        before = _rss_peak(euca.pid)
        ours = _workloads(euca, n_small, n_large, n_list)
        grown = _rss_peak(euca.pid) - before
        theirs = _workloads(moto, n_small, n_large, n_list)
    for (workload, (a, unit)), (b, _) in zip(ours.items(), theirs.values(), strict=True):
        size = LARGE if "64 MiB" in workload else 1
        ra, rb = (_rate(a, size), _rate(b, size)) if unit == "MB/s" else (a.rate, b.rate)
        rows.append((workload, unit, ra, rb))
    return rows, grown


def format_table(rows: list[tuple[str, str, float, float]], grown: int) -> str:
    header = ("workload", "unit", "euca", "moto", "ratio")
    body = [(w, u, f"{a:,.1f}", f"{b:,.1f}", f"{a / b:,.1f}x" if b else "inf") for w, u, a, b in rows]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths, strict=True)))
             for line in [header, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append(f"euca server peak RSS growth over its workloads: {grown / 2**20:.1f} MiB")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.s3", description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    print("S3: euca (Walrus) beside moto's server, one worker each, same workloads (127.0.0.1)")
    print(format_table(*measure(args.quick)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
