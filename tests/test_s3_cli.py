"""The aws CLI against Walrus: ``aws s3 cp`` of a file large enough to go multipart, ``aws s3 sync``,
``aws s3api``; and a large PUT and GET that stream (the server's memory does not grow with them)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.ec2_server import Box, running_box
from tests.s3_kit import close_all, s3_client


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    with running_box(tmp_path_factory.mktemp("s3cli")) as b:
        yield b
        close_all()


def aws(box: Box, *args: str) -> subprocess.CompletedProcess[str]:
    access, secret = box.keys()
    env = {**os.environ, "AWS_ACCESS_KEY_ID": access, "AWS_SECRET_ACCESS_KEY": secret,
           "AWS_DEFAULT_REGION": "eucalyptus", "AWS_CONFIG_FILE": "/dev/null",
           "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}
    return subprocess.run([sys.executable, "-m", "awscli", "--endpoint-url", f"{box.url}/services/Walrus", *args],
                          capture_output=True, text=True, env=env, timeout=120)


def test_aws_s3_cp_multipart_sync_and_s3api(box: Box, tmp_path: Path) -> None:
    assert aws(box, "s3", "mb", "s3://cli-bucket").returncode == 0
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(20 << 20))  # above the CLI's 8 MiB multipart threshold
    done = aws(box, "s3", "cp", str(big), "s3://cli-bucket/big.bin")
    assert done.returncode == 0, done.stderr
    head = json.loads(aws(box, "s3api", "head-object", "--bucket", "cli-bucket", "--key", "big.bin").stdout)
    assert head["ContentLength"] == 20 << 20 and head["ETag"].endswith('-3"')
    back = tmp_path / "back.bin"
    assert aws(box, "s3", "cp", "s3://cli-bucket/big.bin", str(back)).returncode == 0
    assert hashlib.md5(back.read_bytes()).digest() == hashlib.md5(big.read_bytes()).digest()

    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    for name in ("a.txt", "b.txt", "sub/c.txt"):
        (tree / name).write_text(name)
    done = aws(box, "s3", "sync", str(tree), "s3://cli-bucket/tree")
    assert done.returncode == 0, done.stderr
    again = aws(box, "s3", "sync", str(tree), "s3://cli-bucket/tree")
    assert again.returncode == 0 and again.stdout.strip() == ""  # nothing changed, nothing sent
    listing = aws(box, "s3", "ls", "--recursive", "s3://cli-bucket/tree/")
    assert sorted(line.split()[-1] for line in listing.stdout.splitlines()) == [
        "tree/a.txt", "tree/b.txt", "tree/sub/c.txt"]
    down = tmp_path / "down"
    assert aws(box, "s3", "sync", "s3://cli-bucket/tree", str(down)).returncode == 0
    assert (down / "sub" / "c.txt").read_text() == "sub/c.txt"

    assert aws(box, "s3api", "put-object-tagging", "--bucket", "cli-bucket", "--key", "tree/a.txt", "--tagging",
               "TagSet=[{Key=k,Value=v}]").returncode == 0
    tags = json.loads(aws(box, "s3api", "get-object-tagging", "--bucket", "cli-bucket", "--key", "tree/a.txt").stdout)
    assert tags["TagSet"] == [{"Key": "k", "Value": "v"}]
    missing = aws(box, "s3api", "get-object", "--bucket", "cli-bucket", "--key", "nope", str(tmp_path / "x"))
    assert missing.returncode != 0 and "NoSuchKey" in missing.stderr
    assert aws(box, "s3", "rb", "--force", "s3://cli-bucket").returncode == 0


def test_large_put_and_get_stream(box: Box) -> None:
    """64 MiB up and down through the server in this process, traced: Python allocations stay
    far below the object's size (the body never sits whole in memory on either side)."""
    s3 = s3_client(box)
    s3.create_bucket(Bucket="streaming")
    url = s3.generate_presigned_url("put_object", Params={"Bucket": "streaming", "Key": "big"})
    size = 64 << 20
    block = os.urandom(1 << 20)

    class Body:
        """A 64 MiB body read a block at a time, never built whole."""

        def __init__(self) -> None:
            self.left = size

        def __len__(self) -> int:
            return self.left

        def read(self, n: int = -1) -> bytes:
            n = len(block) if n < 0 else min(n, len(block))
            piece = block[:min(n, self.left)]
            self.left -= len(piece)
            return piece

    tracemalloc.start()
    try:
        r = requests.put(url, data=Body(), timeout=60)
        assert r.status_code == 200, r.content
        get = s3.generate_presigned_url("get_object", Params={"Bucket": "streaming", "Key": "big"})
        with requests.get(get, stream=True, timeout=60) as response:
            received = sum(len(c) for c in response.iter_content(1 << 20))
        assert received == size
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, f"peak traced memory {peak / 2**20:.1f} MiB for a {size >> 20} MiB object"
