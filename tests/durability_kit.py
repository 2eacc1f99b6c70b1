"""Starting ``euca up`` as its own process for the tests that kill it, and reading it back."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import botocore.config


@contextmanager
def euca_up(data_dir: Path, port: int, database: str | None = None, *extra: str) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "euca.cli", "up", "--data-dir", str(data_dir), "--port", str(port), "--nodes", "3",
         "--node-cores", "16", "--node-memory", "65536", "--boot-time", "0.2", "--shutdown-time", "0.2",
         "--log-level", "warning", *(["--database", database] if database else []), *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"euca up did not start: {proc.stderr.read()!r}") from None  # type: ignore[union-attr]
                time.sleep(0.05)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)
        assert proc.stderr is not None
        proc.stderr.close()


def client(data_dir: Path, port: int) -> Any:
    env = dict(line.removeprefix("export ").split("=", 1) for line in (data_dir / "eucarc").read_text().splitlines())
    return boto3.client("ec2", endpoint_url=f"http://127.0.0.1:{port}", region_name="eucalyptus",
                        aws_access_key_id=env["EC2_ACCESS_KEY"], aws_secret_access_key=env["EC2_SECRET_KEY"],
                        config=botocore.config.Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=5))


def instances(ec2: Any) -> dict[str, str]:
    return {i["InstanceId"]: i["State"]["Name"]
            for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]}


def free_small(ec2: Any) -> tuple[int, int]:
    zones = ec2.describe_availability_zones(ZoneNames=["verbose"])["AvailabilityZones"]
    rows = {z["ZoneName"]: z["State"] for z in zones}
    free, _, most = rows["|- m1.small"].split()[:3]
    return int(free), int(most)
