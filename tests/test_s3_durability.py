"""Kill -9 ``euca up`` while objects are being written (single PUTs, overwrites, multipart
completions): after a restart every acknowledged object is there whole, nothing is torn, and the
files a crash left behind are swept."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import threading
import time
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import pytest
from botocore.config import Config

from euca.walrus.blobs import INLINE
from tests.durability_kit import euca_up
from tests.ec2_server import free_port


def _s3(data_dir: Path, port: int) -> Any:
    env = dict(line.removeprefix("export ").split("=", 1) for line in (data_dir / "eucarc").read_text().splitlines())
    return boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}/services/Walrus", region_name="eucalyptus",
                        aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
                        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1},
                                      connect_timeout=2, read_timeout=10))


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_kill_9_during_uploads_loses_nothing_and_tears_nothing(store: str, tmp_path: Path,
                                                               request: pytest.FixtureRequest) -> None:
    database = request.getfixturevalue("postgres").database() if store == "postgresql" else None
    port = free_port()
    acked: dict[str, str] = {}  # key -> md5 of the last acknowledged body
    written: dict[str, set[str]] = {}  # key -> md5 of every body sent (acknowledged or in flight)
    stop = threading.Event()
    with euca_up(tmp_path, port, database) as proc:
        s3 = _s3(tmp_path, port)
        s3.create_bucket(Bucket="crash")

        def load(seed: int) -> None:
            rng = random.Random(seed)
            n = 0
            while not stop.is_set():
                n += 1
                choice = rng.random()
                key = f"hot-{seed}" if choice < 0.3 else f"k-{seed}-{n}"
                multipart = choice > 0.85
                # a third small enough to be kept in the store beside their metadata (blobs.INLINE)
                size = rng.randint(0, INLINE) if rng.random() < 0.33 and not multipart else rng.randint(1, 3 << 20)
                body = os.urandom(size + ((5 << 20) if multipart else 0))
                md5 = hashlib.md5(body).hexdigest()
                written.setdefault(key, set()).add(md5)
                try:
                    if multipart:
                        up = s3.create_multipart_upload(Bucket="crash", Key=key)["UploadId"]
                        parts = []
                        for i, piece in enumerate((body[:5 << 20], body[5 << 20:]), 1):
                            etag = s3.upload_part(Bucket="crash", Key=key, UploadId=up, PartNumber=i,
                                                  Body=piece)["ETag"]
                            parts.append({"PartNumber": i, "ETag": etag})
                        s3.complete_multipart_upload(Bucket="crash", Key=key, UploadId=up,
                                                     MultipartUpload={"Parts": parts})
                    else:
                        s3.put_object(Bucket="crash", Key=key, Body=body)
                    acked[key] = md5
                except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError):
                    if proc.poll() is not None:
                        return

        workers = [threading.Thread(target=load, args=(i,)) for i in range(3)]
        for w in workers:
            w.start()
        time.sleep(2.5)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        stop.set()
        for w in workers:
            w.join(20)
        s3.close()
    assert len(acked) > 5

    with euca_up(tmp_path, port, database):
        s3 = _s3(tmp_path, port)
        listing = [o for page in s3.get_paginator("list_objects_v2").paginate(Bucket="crash")
                   for o in page.get("Contents", [])]
        sizes = {o["Key"]: o["Size"] for o in listing}
        # files per object: a multipart one keeps its parts' (its ETag ends -N), a small one none
        stored = sum(int(o["ETag"].strip('"').partition("-")[2] or (o["Size"] > INLINE)) for o in listing)
        listed = set(sizes)
        assert set(acked) <= listed, "an acknowledged object was lost"
        for key in listed:
            body = s3.get_object(Bucket="crash", Key=key)["Body"].read()
            md5 = hashlib.md5(body).hexdigest()
            assert md5 in written[key], f"{key}: a torn or unknown body"
        for key, md5 in acked.items():
            if not key.startswith("hot-"):
                assert hashlib.md5(s3.get_object(Bucket="crash", Key=key)["Body"].read()).hexdigest() == md5
        parts = sum(len(s3.list_parts(Bucket="crash", Key=u["Key"], UploadId=u["UploadId"]).get("Parts", []))
                    for u in s3.list_multipart_uploads(Bucket="crash").get("Uploads", []))
        s3.close()
    # the restart swept what the kill left: no temporary files, one file per stored body (but the
    # small ones, kept in the store, and the multipart ones, kept as their parts) or part
    walrus = tmp_path / "walrus"
    assert list((walrus / "tmp").iterdir()) == []
    files = [p for d in (walrus / "objects").iterdir() for p in d.iterdir()]
    assert any(size <= INLINE for size in sizes.values())
    assert len(files) == stored + parts
