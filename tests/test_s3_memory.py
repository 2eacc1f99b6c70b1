"""Bodies stream through the server in fixed buffers: a 1 GiB PUT and a 1 GiB GET grow the
``euca up`` process's resident memory by far less than the object (the client streams too)."""

from __future__ import annotations

import hashlib
import http.client
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import boto3
from botocore.config import Config

from tests.durability_kit import euca_up
from tests.ec2_server import free_port

SIZE = 1 << 30
BLOCK = 1 << 20
LIMIT = 64 << 20


def _body() -> Iterator[bytes]:
    """1 GiB made on the fly, each MiB different (so a reordered or repeated block changes the MD5)."""
    pattern = bytes(range(256)) * (BLOCK // 256)
    for n in range(SIZE // BLOCK):
        yield n.to_bytes(8, "big") + pattern[8:]


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


class _Peak:
    """The server's resident memory, watched while a transfer runs: the highest VmRSS seen and the
    kernel's own high-water mark (VmHWM, reset first)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.base = _status_kib(pid, "VmRSS")
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
        self.seen = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.02):
            self.seen = max(self.seen, _status_kib(self.pid, "VmRSS"))

    def growth(self) -> int:
        self._stop.set()
        self._thread.join()
        return (max(self.seen, _status_kib(self.pid, "VmHWM")) - self.base) << 10


def _send(url: str, method: str, body: Iterator[bytes] | None = None) -> tuple[int, str, int]:
    """(status, MD5 of the answer's body, its length), read a MiB at a time."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)
    try:
        headers = {"Content-Length": str(SIZE)} if body is not None else {}
        connection.request(method, f"{parts.path}?{parts.query}", body=body, headers=headers)
        answer = connection.getresponse()
        md5, length = hashlib.md5(usedforsecurity=False), 0
        while chunk := answer.read(BLOCK):
            md5.update(chunk)
            length += len(chunk)
        return answer.status, md5.hexdigest(), length
    finally:
        connection.close()


def test_a_1_gib_put_and_get_stream_through_the_server(tmp_path: Path) -> None:
    port, s3_port = free_port(), free_port()
    with euca_up(tmp_path, port, None, "--s3-port", str(s3_port), "--nodes", "0") as proc:
        env = dict(line.removeprefix("export ").split("=", 1)
                   for line in (tmp_path / "eucarc").read_text().splitlines())
        s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{s3_port}", region_name="eucalyptus",
                          aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
                          config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
        s3.create_bucket(Bucket="big")
        s3.put_object(Bucket="big", Key="warm", Body=b"w" * (2 << 20))  # first use of each path
        assert s3.get_object(Bucket="big", Key="warm")["Body"].read() == b"w" * (2 << 20)
        expected = hashlib.md5(usedforsecurity=False)
        for block in _body():
            expected.update(block)

        put = s3.generate_presigned_url("put_object", Params={"Bucket": "big", "Key": "gib"})
        peak = _Peak(proc.pid)
        status, _, _ = _send(put, "PUT", _body())
        grown = peak.growth()
        assert status == 200
        assert grown < LIMIT, f"a 1 GiB PUT grew the server by {grown >> 20} MiB"
        head = s3.head_object(Bucket="big", Key="gib")
        assert head["ContentLength"] == SIZE and head["ETag"] == f'"{expected.hexdigest()}"'

        get = s3.generate_presigned_url("get_object", Params={"Bucket": "big", "Key": "gib"})
        peak = _Peak(proc.pid)
        status, md5, length = _send(get, "GET")
        grown = peak.growth()
        assert status == 200 and length == SIZE and md5 == expected.hexdigest()
        assert grown < LIMIT, f"a 1 GiB GET grew the server by {grown >> 20} MiB"
        s3.close()
