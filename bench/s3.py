"""Walrus (S3) beside moto's S3 server, side by side in one run, on the same workloads.

Both servers run as subprocesses on 127.0.0.1 with one worker each (euca with ``--s3-port``).
Small objects (4 KiB) are PUT and GET over one kept-alive connection with SigV4-signed raw HTTP
(the server's cost dominates) and through boto3 (what users run); large objects (64 MiB) are PUT
and GET raw, in MB/s, and so is a 256 MiB object written as a multipart upload of 8 MiB parts
(initiated, its parts PUT one after another, completed) and read back whole; ListObjectsV2
pages through 10,000 keys (1,000 a page), raw and with boto3.
Every workload runs several times on each server, the servers taking turns workload by workload,
and the medians are compared. Printed per workload: each server's median rate, the ratio of the
medians and the range of the per-repeat ratios, then the euca server's peak RSS growth.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import io
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

import boto3
from botocore.config import Config

from bench.api import _free_port, _process, eucarc

SMALL = 4096
LARGE = 64 << 20
MULTIPART = 256 << 20
PART = 8 << 20


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
        self._second, self._amz_date = -1, ""
        self._body, self._payload = b"", hashlib.sha256(b"").hexdigest()
        self.buffer = bytearray(1 << 20)
        self.etag = ""  # the last answer's ETag header

    def _connect(self) -> None:
        self.sock = socket.create_connection(("127.0.0.1", self.target.port), timeout=120)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.file = cast(io.BufferedReader, self.sock.makefile("rb", buffering=1 << 16))

    def _headers(self, method: str, path: str, payload: str) -> str:
        # the client's own costs are kept small (the date formatted once a second, the body hashed
        # once however often it is sent) so that what is measured is the server
        second = int(time.time())
        if second != self._second:
            self._second, self._amz_date = second, time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(second))
        amz_date = self._amz_date
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
        if chunks is not None:
            payload = "UNSIGNED-PAYLOAD"
        elif body is self._body:
            payload = self._payload
        else:
            payload = hashlib.sha256(body).hexdigest()
            self._body, self._payload = body, payload
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
        self.etag = ""
        while (line := self.file.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                content_length = int(value)
            elif name == b"connection" and b"close" in value.lower():
                close = True
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif name == b"etag":
                self.etag = value.strip().decode()
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

    def text(self, received: int) -> str:
        """The last answer's body, when it fit in the buffer (a small XML document)."""
        return bytes(self.buffer[:received]).decode()

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


@dataclass
class Side:
    """One server under test and its boto3 client (made once; raw connections are per workload)."""

    target: S3Target
    client: Any


def _raw_timed(side: Side, calls: Callable[[RawS3], None]) -> float:
    """Seconds ``calls`` took over a fresh kept-alive connection (closed after: the next workload may
    leave it idle for longer than the server's keep-alive timeout)."""
    raw = RawS3(side.target)
    try:
        started = time.perf_counter()
        calls(raw)
        return time.perf_counter() - started
    finally:
        raw.close()


def _boto_timed(calls: Callable[[], None]) -> float:
    started = time.perf_counter()
    calls()
    return time.perf_counter() - started


@dataclass(frozen=True)
class Sizes:
    small: int  # 4 KiB objects PUT and then GET per repeat
    large: int  # 64 MiB objects PUT per repeat (GET twice as often)
    listed: int  # keys in the listed bucket
    lists: int  # full listings per repeat
    repeats: int


def _large_body() -> Iterator[bytes]:
    block = b"y" * (1 << 20)
    for _ in range(LARGE >> 20):
        yield block


def _workloads(sizes: Sizes) -> list[tuple[str, str, Callable[[Side, int], float]]]:
    """(name, unit, measure): ``measure(side, repeat)`` does the work once and returns its rate.
    Each repeat writes keys of its own, so a GET reads what the same repeat's PUT wrote."""
    body = b"x" * SMALL
    n, n_large, n_list, lists = sizes.small, sizes.large, sizes.listed, sizes.lists

    def put_raw(side: Side, r: int) -> float:
        def run(raw: RawS3) -> None:
            for i in range(n):
                raw.request("PUT", f"/bench/small-{r}-{i}", body)
        return n / _raw_timed(side, run)

    def get_raw(side: Side, r: int) -> float:
        def run(raw: RawS3) -> None:
            for i in range(n):
                raw.request("GET", f"/bench/small-{r}-{i}")
        return n / _raw_timed(side, run)

    def put_boto(side: Side, r: int) -> float:
        def run() -> None:
            for i in range(n):
                side.client.put_object(Bucket="bench", Key=f"boto-{r}-{i}", Body=body)
        return n / _boto_timed(run)

    def get_boto(side: Side, r: int) -> float:
        def run() -> None:
            for i in range(n):
                side.client.get_object(Bucket="bench", Key=f"boto-{r}-{i}")["Body"].read()
        return n / _boto_timed(run)

    def put_large(side: Side, r: int) -> float:
        def run(raw: RawS3) -> None:
            for i in range(n_large):
                raw.request("PUT", f"/bench/large-{i}", length=LARGE, chunks=_large_body)
        return n_large * LARGE / 1e6 / _raw_timed(side, run)

    def get_large(side: Side, r: int) -> float:
        def run(raw: RawS3) -> None:
            for i in range(n_large * 2):
                raw.request("GET", f"/bench/large-{i % n_large}")
        return n_large * 2 * LARGE / 1e6 / _raw_timed(side, run)

    part = b"m" * PART

    def put_multipart(side: Side, r: int) -> float:
        def run(raw: RawS3) -> None:
            key = f"/bench/multipart-{r}"
            answer = raw.text(raw.request("POST", f"{key}?uploads"))
            upload = quote(answer.split("<UploadId>")[1].split("</UploadId>")[0], safe="")
            etags = []
            for number in range(1, MULTIPART // PART + 1):
                raw.request("PUT", f"{key}?partNumber={number}&uploadId={upload}", part)
                etags.append(raw.etag)
            listed = "".join(f"<Part><PartNumber>{n}</PartNumber><ETag>{e}</ETag></Part>"
                             for n, e in enumerate(etags, 1))
            raw.request("POST", f"{key}?uploadId={upload}",
                        f"<CompleteMultipartUpload>{listed}</CompleteMultipartUpload>".encode())
        return MULTIPART / 1e6 / _raw_timed(side, run)

    def get_multipart(side: Side, r: int) -> float:
        def run(raw: RawS3) -> None:
            assert raw.request("GET", f"/bench/multipart-{r}") == MULTIPART
        rate = MULTIPART / 1e6 / _raw_timed(side, run)
        side.client.delete_object(Bucket="bench", Key=f"multipart-{r}")  # not kept: moto holds it in memory
        return rate

    def list_raw(side: Side, r: int) -> float:
        def run(raw: RawS3) -> None:
            # pages of 1,000 keys: start-after the last key of each page (both servers honour it)
            for _ in range(lists):
                for page in range(0, n_list, 1000):
                    after = f"&start-after=key-{page - 1:06d}" if page else ""
                    raw.request("GET", f"/listing?list-type=2{after}")
        return lists / _raw_timed(side, run)

    def list_boto(side: Side, r: int) -> float:
        def run() -> None:
            for _ in range(lists):
                count = sum(len(page.get("Contents", []))
                            for page in side.client.get_paginator("list_objects_v2").paginate(Bucket="listing"))
                assert count == n_list, count
        return lists / _boto_timed(run)

    return [("PUT 4 KiB (raw HTTP)", "req/s", put_raw), ("GET 4 KiB (raw HTTP)", "req/s", get_raw),
            ("PUT 4 KiB (boto3)", "req/s", put_boto), ("GET 4 KiB (boto3)", "req/s", get_boto),
            ("PUT 64 MiB (raw HTTP)", "MB/s", put_large), ("GET 64 MiB (raw HTTP)", "MB/s", get_large),
            ("multipart PUT 256 MiB, 8 MiB parts (raw HTTP)", "MB/s", put_multipart),
            ("GET of that 256 MiB multipart object (raw HTTP)", "MB/s", get_multipart),
            (f"ListObjectsV2 over {n_list:,} keys (raw HTTP)", "lists/s", list_raw),
            (f"ListObjectsV2 over {n_list:,} keys (boto3)", "lists/s", list_boto)]


def _prepare(target: S3Target, n_list: int) -> Side:
    """Buckets and the listed keys, written before anything is timed."""
    client = target.boto()
    client.create_bucket(Bucket="bench")
    client.create_bucket(Bucket="listing")
    raw = RawS3(target)
    for i in range(n_list):
        raw.request("PUT", f"/listing/key-{i:06d}", b"")
    raw.close()
    return Side(target, client)


@dataclass(frozen=True)
class Measured:
    workload: str
    unit: str
    euca: list[float]  # one rate per repeat
    moto: list[float]

    @property
    def ratio(self) -> float:
        theirs = statistics.median(self.moto)
        return statistics.median(self.euca) / theirs if theirs else float("inf")

    @property
    def ratios(self) -> list[float]:
        return [a / b for a, b in zip(self.euca, self.moto, strict=True) if b]


def measure(quick: bool = False, repeats: int | None = None) -> tuple[list[Measured], int]:
    """Every workload ``repeats`` times on each server, the two servers interleaved workload by
    workload (and the one going first alternating), so a burst of load on the shared machine hits
    both; the euca server's peak RSS growth over all of it."""
    sizes = (Sizes(small=300, large=1, listed=2_000, lists=1, repeats=3) if quick
             else Sizes(small=1_000, large=2, listed=10_000, lists=1, repeats=5))
    if repeats is not None:
        sizes = Sizes(sizes.small, sizes.large, sizes.listed, sizes.lists, repeats)
    workloads = _workloads(sizes)
    rates: dict[str, dict[str, list[float]]] = {name: {"euca": [], "moto": []} for name, _, _ in workloads}
    with euca_s3() as euca, moto_s3() as moto:
        sides = [_prepare(euca, sizes.listed), _prepare(moto, sizes.listed)]
        before = _rss_peak(euca.pid)
        for r in range(sizes.repeats):
            print(f"  repeat {r + 1} of {sizes.repeats}", file=sys.stderr, flush=True)
            for name, _, run in workloads:
                for side in sides if r % 2 == 0 else sides[::-1]:
                    rates[name][side.target.name].append(run(side, r))
        grown = _rss_peak(euca.pid) - before
        for side in sides:
            side.client.close()
    return [Measured(name, unit, rates[name]["euca"], rates[name]["moto"]) for name, unit, _ in workloads], grown


def format_table(rows: list[Measured], grown: int) -> str:
    header = ("workload", "unit", "euca", "moto", "ratio", "ratio range")
    body = [(m.workload, m.unit, f"{statistics.median(m.euca):,.1f}", f"{statistics.median(m.moto):,.1f}",
             f"{m.ratio:,.1f}x", f"{min(m.ratios):,.1f}-{max(m.ratios):,.1f}x" if m.ratios else "")
            for m in rows]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths, strict=True)))
             for line in [header, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    repeats = len(rows[0].euca) if rows else 0
    lines.append(f"medians of {repeats} repeats per side (ratio: of the medians; range: of the per-repeat ratios)")
    lines.append(f"euca server peak RSS growth over its workloads: {grown / 2**20:.1f} MiB")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.s3", description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, help="repeats per side (5; --quick 3)")
    args = parser.parse_args(argv)
    print("S3: euca (Walrus) beside moto's server, one worker each, same workloads (127.0.0.1)")
    print(format_table(*measure(args.quick, args.repeats)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
