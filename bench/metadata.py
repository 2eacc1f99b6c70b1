"""The metadata service under load: ``euca up`` with one worker (STATIC networking, VNET_MACMAP on
127.0.0.x so each instance's address can be a client's source address), and clients asking for
their own keys over kept-alive connections, pipelined so that the server's cost dominates.

Printed per workload: requests/s and the mean latency of a pipelined batch. The bar: 5,000
requests/s on one worker, token PUTs (each reply's IP TTL set for the hop limit) included.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import boto3

from bench.api import _free_port, _process, eucarc

INSTANCES = 8
ADDRESSES = [f"127.0.0.{20 + k}" for k in range(INSTANCES)]
DEPTH = 16  # requests in flight per connection
TARGET = 5_000.0


@dataclass
class Measured:
    workload: str
    requests: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


@contextmanager
def metadata_server() -> Iterator[int]:
    """``euca up`` on a free port with INSTANCES running instances, one per address; yields the port."""
    with tempfile.TemporaryDirectory() as tmp:
        port = _free_port()
        conf = Path(tmp) / "eucalyptus.conf"
        macmap = " ".join(f"D0:0D:7F:00:01:{k:02X}={ip}" for k, ip in enumerate(ADDRESSES, 1))
        conf.write_text(f'VNET_MODE="STATIC"\nVNET_MACMAP="{macmap}"\n')
        cmd = [sys.executable, "-m", "euca.cli", "up", "--data-dir", tmp, "--port", str(port), "--config", str(conf),
               "--boot-time", "0", "--log-level", "warning"]
        with _process(cmd, port):
            env = eucarc(Path(tmp))
            ec2 = boto3.client("ec2", endpoint_url=f"http://127.0.0.1:{port}", region_name="eucalyptus",
                               aws_access_key_id=env["EC2_ACCESS_KEY"], aws_secret_access_key=env["EC2_SECRET_KEY"])
            image = env["EUCA_DEFAULT_IMAGE"]
            ec2.run_instances(ImageId=image, MinCount=INSTANCES, MaxCount=INSTANCES, UserData="I2Nsb3VkLWNvbmZpZwo=")
            ec2.close()
            yield port


async def _one_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    await reader.readexactly(length)
    return status


async def _client(port: int, source: str, request: bytes, count: int, expect: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    try:
        done = 0
        while done < count:
            batch = min(DEPTH, count - done)
            writer.write(request * batch)
            for _ in range(batch):
                status = await _one_response(reader)
                if status != expect:
                    raise RuntimeError(f"{source}: HTTP {status}, expected {expect}")
            done += batch
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def _request(path: str, method: str = "GET", headers: str = "") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: 169.254.169.254\r\n{headers}\r\n".encode()


TOKEN_PUT = _request("/latest/api/token", "PUT", "X-aws-ec2-metadata-token-ttl-seconds: 21600\r\nContent-Length: 0\r\n")


async def _token(port: int, source: str) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    writer.write(TOKEN_PUT)
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(next(line[15:] for line in head.split(b"\r\n") if line[:15].lower() == b"content-length:"))
    token = (await reader.readexactly(length)).decode()
    writer.close()
    return token


async def _workload(port: int, name: str, per_client: int, v2: bool = False,
                    path: str = "/latest/meta-data/instance-id", sources: list[str] = ADDRESSES,
                    expect: int = 200, request: bytes = b"") -> Measured:
    """``request``: send that (the same to every client) instead of a GET of ``path``."""
    requests = []
    for source in sources:
        headers = f"X-aws-ec2-metadata-token: {await _token(port, source)}\r\n" if v2 else ""
        requests.append(request or _request(path, headers=headers))
    started = time.perf_counter()
    await asyncio.gather(*(_client(port, s, r, per_client, expect) for s, r in zip(sources, requests, strict=True)))
    return Measured(name, per_client * len(sources), time.perf_counter() - started)


def measure(quick: bool = False) -> list[Measured]:
    per_client = 500 if quick else 5_000
    out = []
    with metadata_server() as port:
        async def all_workloads() -> None:
            await _workload(port, "warm-up", 100)
            out.append(await _workload(port, "IMDSv1 meta-data/instance-id", per_client))
            out.append(await _workload(port, "IMDSv1 meta-data/ (listing)", per_client, path="/latest/meta-data/"))
            out.append(await _workload(port, "IMDSv1 user-data", per_client, path="/latest/user-data"))
            out.append(await _workload(port, "IMDSv2 meta-data/instance-id (token)", per_client, v2=True))
            # each token's reply gets its hop-limited TTL (the connection's SYN read once, then remembered)
            out.append(await _workload(port, "IMDSv2 token PUT (hop limit)", per_client, request=TOKEN_PUT))
            out.append(await _workload(port, "a stranger's request (404)", per_client, sources=["127.0.0.99"] * 8,
                                       expect=404))

        asyncio.run(all_workloads())
    return out


def format_report(measured: list[Measured]) -> str:
    width = max(len(m.workload) for m in measured)
    lines = [f"{'workload':<{width}}  {'requests':>8}  {'req/s':>9}  {'vs 5,000/s':>10}"]
    for m in measured:
        lines.append(f"{m.workload:<{width}}  {m.requests:>8,}  {m.rate:>9,.0f}  {m.rate / TARGET:>9.2f}x")
    return "\n".join(lines)


if __name__ == "__main__":
    print(format_report(measure("--quick" in sys.argv)))
