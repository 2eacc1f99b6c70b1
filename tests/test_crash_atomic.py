"""One action, one transaction: a server killed at any moment leaves no action half done.

RunInstances with TagSpecifications writes the instances, their addresses and their tags together,
so an acknowledged reservation has its tags after a crash, and a retried ClientToken answers what
was committed, tags included. Burying a terminated instance removes it and its tags together, so no
kill leaves tags on an instance that no longer exists.
"""

from __future__ import annotations

import random
import signal
import threading
import time
from pathlib import Path
from typing import Any

import botocore.exceptions

from tests.durability_kit import client, euca_up, instances
from tests.ec2_server import free_port


def tags_of(ec2: Any) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for t in ec2.describe_tags()["Tags"]:
        out.setdefault(t["ResourceId"], {})[t["Key"]] = t["Value"]
    return out


def run_tagged(ec2: Any, image: str, token: str) -> list[str]:
    spec = [{"ResourceType": "instance", "Tags": [{"Key": "token", "Value": token}, {"Key": "role", "Value": "web"}]}]
    reply = ec2.run_instances(ImageId=image, MinCount=2, MaxCount=2, ClientToken=token, TagSpecifications=spec)
    return [i["InstanceId"] for i in reply["Instances"]]


def default_image(data_dir: Path) -> str:
    env = dict(line.removeprefix("export ").split("=", 1) for line in (data_dir / "eucarc").read_text().splitlines())
    return env["EUCA_DEFAULT_IMAGE"]


def test_a_killed_run_instances_is_whole_or_absent_and_a_retry_answers_it_with_its_tags(tmp_path: Path) -> None:
    port = free_port()
    rng = random.Random(7)
    acked: dict[str, list[str]] = {}
    sent: list[str] = []
    for round_ in range(4):
        with euca_up(tmp_path, port) as proc:
            ec2 = client(tmp_path, port)
            image = default_image(tmp_path)
            stop = threading.Event()

            def load(worker: int, ec2: Any = ec2, image: str = image, stop: threading.Event = stop,
                     round_: int = round_) -> None:
                n = 0
                while not stop.is_set():
                    token = f"r{round_}-w{worker}-{n}"
                    n += 1
                    sent.append(token)
                    try:
                        acked[token] = run_tagged(ec2, image, token)
                    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError):
                        return

            workers = [threading.Thread(target=load, args=(w,)) for w in range(3)]
            for w in workers:
                w.start()
            time.sleep(0.3 + rng.random() * 0.7)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            stop.set()
            for w in workers:
                w.join(10)
    assert len(acked) > 10
    with euca_up(tmp_path, port):
        ec2 = client(tmp_path, port)
        image = default_image(tmp_path)
        live = instances(ec2)
        tags = tags_of(ec2)
        for token, ids in acked.items():
            for instance_id in ids:
                assert instance_id in live, f"{instance_id} of {token} was acknowledged and is gone"
                assert tags.get(instance_id) == {"token": token, "role": "web"}, (instance_id, tags.get(instance_id))
        # every instance that exists carries its reservation's tags: none was committed without them
        for instance_id in live:
            assert set(tags.get(instance_id, {})) == {"token", "role"}, instance_id
        # a retried token answers exactly what was committed, or runs it now if nothing was
        ec2.terminate_instances(InstanceIds=list(live))  # room for the reservations never committed
        time.sleep(1.0)
        for token in sent:
            again = run_tagged(ec2, image, token)
            if token in acked:
                assert again == acked[token]
            assert all(tags_of(ec2).get(i, {}).get("token") == token for i in again)


def test_a_kill_while_burying_leaves_no_tags_on_instances_that_are_gone(tmp_path: Path) -> None:
    port = free_port()
    bury = ("--bury-time", "0.5")
    with euca_up(tmp_path, port, None, *bury):
        ec2 = client(tmp_path, port)
        image = default_image(tmp_path)
        ids = [i for k in range(6) for i in run_tagged(ec2, image, f"bury-{k}")]
    rng = random.Random(3)
    for _ in range(3):
        with euca_up(tmp_path, port, None, *bury) as proc:
            ec2 = client(tmp_path, port)
            live = [i for i, state in instances(ec2).items() if state != "terminated" and i in ids]
            if live:
                ec2.terminate_instances(InstanceIds=live)
            time.sleep(rng.random() * 1.5)  # the burying pass runs every few seconds; kill around it
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
    with euca_up(tmp_path, port, None, *bury):
        ec2 = client(tmp_path, port)
        deadline = time.monotonic() + 30
        while set(instances(ec2)) & set(ids) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not set(instances(ec2)) & set(ids), "terminated instances were never buried"
        left = set(tags_of(ec2)) & set(ids)
        assert not left, f"tags outlived their instances: {sorted(left)}"
