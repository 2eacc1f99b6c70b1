"""Kill -9 the server under load, start it again: nothing acknowledged is lost, nothing leaks,
no identifier comes back."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
import pytest

from tests.ec2_server import free_port


@contextmanager
def euca_up(data_dir: Path, port: int, database: str | None = None) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "euca.cli", "up", "--data-dir", str(data_dir), "--port", str(port), "--nodes", "3",
         "--node-cores", "16", "--node-memory", "65536", "--boot-time", "0.2", "--shutdown-time", "0.2",
         "--log-level", "warning", *(["--database", database] if database else [])],
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


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_kill_9_under_load_loses_nothing(store: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    database = request.getfixturevalue("postgres").database() if store == "postgresql" else None
    port = free_port()
    acked_live: set[str] = set()
    acked_dead: set[str] = set()
    acked_ips: dict[str, str | None] = {}
    in_flight: set[str] = set()
    stop = threading.Event()
    with euca_up(tmp_path, port, database) as proc:
        ec2 = client(tmp_path, port)
        emi = ec2.register_image(ImageLocation="bucket/box.manifest.xml", Name="box")["ImageId"]

        def load() -> None:
            rng = random.Random(7)
            while not stop.is_set():
                try:
                    choice = rng.random()
                    if (choice < 0.6 and len(acked_live) < 12) or not acked_live:
                        run = ec2.run_instances(ImageId=emi, MinCount=1, MaxCount=rng.randint(1, 3))
                        acked_live.update(i["InstanceId"] for i in run["Instances"])
                    elif choice < 0.85:
                        victim = rng.choice(sorted(acked_live))
                        in_flight.add(victim)  # committed but unanswered when the kill lands: either state
                        ec2.terminate_instances(InstanceIds=[victim])
                        in_flight.discard(victim)
                        acked_live.discard(victim)
                        acked_dead.add(victim)
                        for ip, owner in acked_ips.items():
                            if owner == victim:
                                acked_ips[ip] = None
                    elif len(acked_ips) < 5:
                        ip = ec2.allocate_address()["PublicIp"]
                        acked_ips[ip] = None
                        target = rng.choice(sorted(acked_live))
                        ec2.associate_address(PublicIp=ip, InstanceId=target)
                        acked_ips[ip] = target
                except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError):
                    if proc.poll() is not None:
                        return

        worker = threading.Thread(target=load)
        worker.start()
        time.sleep(2.5)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        stop.set()
        worker.join(20)
        ec2.close()
    assert len(acked_live) + len(acked_dead) > 10
    # a group's network holds VNET_ADDRSPERNET - 3 instances (29 by default); the load stays below that

    with euca_up(tmp_path, port, database):
        ec2 = client(tmp_path, port)
        seen = instances(ec2)
        assert acked_live <= set(seen), "an acknowledged RunInstances was lost"
        assert all(seen[i] in ("pending", "running") for i in acked_live - in_flight)
        assert all(seen[i] in ("shutting-down", "terminated") for i in acked_dead if i in seen)
        addresses = {a["PublicIp"]: a.get("InstanceId") for a in ec2.describe_addresses()["Addresses"]}
        assert set(acked_ips) <= set(addresses)
        for ip, owner in acked_ips.items():
            if owner is not None and owner in acked_live - in_flight:
                assert addresses[ip] == owner

        # placement was rebuilt: the capacity in use is exactly the live instances
        live = [i for i, state in seen.items() if state in ("pending", "running")]
        free, most = free_small(ec2)
        assert most - free == len(live)

        # new ids never repeat old ones
        before = set(seen) | acked_dead
        run = ec2.run_instances(ImageId=emi, MinCount=3, MaxCount=3)
        assert not {i["InstanceId"] for i in run["Instances"]} & before
        live += [i["InstanceId"] for i in run["Instances"]]

        # nothing leaked: ending everything gives every slot and every address back
        ec2.terminate_instances(InstanceIds=live)
        for ip in addresses:
            ec2.release_address(PublicIp=ip)
        assert free_small(ec2)[0] == most
        assert ec2.describe_addresses()["Addresses"] == []
        ips = [ec2.allocate_address()["PublicIp"] for _ in range(5)]
        assert len(set(ips)) == 5
        ec2.close()
