"""Kill -9 the server under load, start it again: nothing acknowledged is lost, nothing leaks,
no identifier comes back."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from pathlib import Path

import botocore.config
import botocore.exceptions
import pytest

from tests.durability_kit import client, euca_up, free_small, instances
from tests.ec2_server import free_port


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
        emi = ec2.describe_images(Filters=[{"Name": "name", "Values": ["euca-default"]}])["Images"][0]["ImageId"]

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
