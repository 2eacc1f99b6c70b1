"""What the administrator changes with the CLI while the server runs is applied within a second, on
SQLite and on PostgreSQL: images, access keys, nodes and VM types. And the box fits its nodes."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest

from euca.cli import main
from tests.ec2_server import Box, running_box


@pytest.fixture(params=["sqlite", "postgresql"])
def box(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Box]:
    database = request.getfixturevalue("postgres").database() if request.param == "postgresql" else None
    with running_box(tmp_path, database=database) as b:
        yield b


def cli(box: Box, *argv: str) -> int:
    store = ["--data-dir", str(box.data_dir)]
    if box.cloud.store.is_postgres:
        store += ["--database", box.cloud.store.url]
    return main([*argv, *store])


def within_a_second(check: Callable[[], Any]) -> Any:
    deadline = time.monotonic() + 1.0
    while True:
        try:
            return check()
        except (AssertionError, botocore.exceptions.ClientError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_an_image_imported_while_the_server_runs_is_launchable_within_a_second(
        box: Box, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ec2 = box.client("alice")
    for name in ("vmlinuz-6.1", "initrd-6.1", "root.img", "other-root.img"):
        (tmp_path / name).write_bytes(name.encode() * 1000)
    assert cli(box, "image", "import", "--kernel", str(tmp_path / "vmlinuz-6.1"), "--ramdisk",
               str(tmp_path / "initrd-6.1"), "--root", str(tmp_path / "root.img")) == 0
    printed = {kind: id_ for _, id_, kind in (line.split("\t") for line in capsys.readouterr().out.splitlines())}
    eki, eri, emi = printed["kernel"], printed["ramdisk"], printed["machine"]
    started = time.monotonic()
    run = within_a_second(lambda: ec2.run_instances(ImageId=emi, MinCount=1, MaxCount=1))
    assert time.monotonic() - started < 1.0
    assert run["Instances"][0]["KernelId"] == eki

    # A second machine image: the same kernel file is registered once; or name the kernel by id.
    assert cli(box, "image", "import", "--kernel", str(tmp_path / "vmlinuz-6.1"), "--ramdisk-id", eri,
               "--root", str(tmp_path / "other-root.img"), "--name", "other") == 0
    second = {kind: id_ for _, id_, kind in (line.split("\t") for line in capsys.readouterr().out.splitlines())}
    assert second["kernel"] == eki and second["ramdisk"] == eri and second["machine"] != emi
    assert cli(box, "image", "import", "--kernel-id", eki, "--ramdisk-id", eri,
               "--root", str(tmp_path / "other-root.img"), "--name", "third") == 0
    capsys.readouterr()
    assert cli(box, "image", "list") == 0
    listed = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert {row[1] for row in listed} >= {eki, eri, emi, second["machine"]}

    assert cli(box, "image", "deregister", second["machine"]) == 0
    def gone() -> None:
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            ec2.describe_images(ImageIds=[second["machine"]])
        assert exc.value.response["Error"]["Code"] == "InvalidAMIID.NotFound"
    within_a_second(gone)
    ec2.close()


def test_a_deactivated_key_is_refused_and_a_new_key_works_within_a_second(
        box: Box, capsys: pytest.CaptureFixture[str]) -> None:
    ec2 = box.client("alice")
    assert ec2.describe_key_pairs()["KeyPairs"] == []
    old_key, _ = box.keys("alice")
    assert cli(box, "account", "keys", "alice", "--create") == 0
    keys = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert len(keys) == 2 and all(k[2] == "Active" for k in keys)
    new_key, new_secret = next((k[0], k[1]) for k in keys if k[0] != old_key)
    assert cli(box, "account", "keys", "alice", "--create") == 1  # two at most
    assert cli(box, "account", "keys", "alice", "--deactivate", old_key) == 0
    capsys.readouterr()

    def refused() -> None:
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            ec2.describe_key_pairs()
        assert exc.value.response["Error"]["Code"] == "AuthFailure"
    within_a_second(refused)
    import boto3

    fresh = boto3.client("ec2", endpoint_url=box.url, aws_access_key_id=new_key, aws_secret_access_key=new_secret,
                         region_name="eucalyptus")
    assert within_a_second(lambda: fresh.describe_key_pairs())["KeyPairs"] == []
    assert cli(box, "account", "keys", "alice", "--activate", old_key) == 0
    within_a_second(lambda: ec2.describe_key_pairs())
    assert cli(box, "account", "keys", "alice", "--delete", old_key) == 0
    within_a_second(refused)
    assert cli(box, "account", "keys", "alice", "--delete", "AKINOSUCHKEY") == 1
    fresh.close()
    ec2.close()


def test_nodes_and_vm_types_added_while_the_server_runs(box: Box) -> None:
    ec2 = box.client("admin")
    assert len(box.cloud.cc.nodes) == 2
    assert cli(box, "node", "add", "node09", "--cores", "16", "--memory", "65536", "--disk", "1000") == 0
    assert cli(box, "vmtype", "set", "m9.huge", "--cores", "16", "--memory", "65536", "--disk", "1000") == 0

    def zones() -> None:
        rows = {z["ZoneName"]: z["State"] for z in ec2.describe_availability_zones(ZoneNames=["verbose"])[
            "AvailabilityZones"]}
        assert rows.get("|- m9.huge", "").split()[:3] == ["0001", "/", "0001"], rows
    within_a_second(zones)
    run = ec2.run_instances(ImageId=box.image(), MinCount=1, MaxCount=1, InstanceType="m9.huge")
    assert run["Instances"][0]["InstanceType"] == "m9.huge"
    ec2.close()


def test_the_default_network_plan_holds_every_instance_a_roomy_box_has_room_for(tmp_path: Path) -> None:
    # 3 nodes x 24 cores: 72 m1.small in the default group, past the 29 a 32-address network holds
    with running_box(tmp_path, nodes=3, cores=24, memory=65536, disk=2000) as box:
        ec2 = box.client("alice")
        emi = box.image()
        run = ec2.run_instances(ImageId=emi, MinCount=72, MaxCount=72, InstanceType="m1.small")
        assert len(run["Instances"]) == 72
        assert len({i["PrivateIpAddress"] for i in run["Instances"]}) == 72
        assert box.cloud.cc.config.vnet_addrspernet == 128
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            ec2.run_instances(ImageId=emi, MinCount=1, MaxCount=1, InstanceType="m1.small")
        assert exc.value.response["Error"]["Code"] == "InsufficientInstanceCapacity"  # the nodes are full
        ec2.close()


def test_the_box_registers_a_default_image_on_first_start(tmp_path: Path) -> None:
    with running_box(tmp_path) as box:
        ec2 = box.client("alice")
        images = ec2.describe_images(Filters=[{"Name": "name", "Values": ["euca-default"]}])["Images"]
        assert len(images) == 1 and images[0]["Public"] and images[0]["KernelId"].startswith("eki-")
        run = ec2.run_instances(ImageId=images[0]["ImageId"], MinCount=1, MaxCount=1)
        assert run["Instances"][0]["RamdiskId"] == images[0]["RamdiskId"]
        ec2.close()


def test_the_server_reloads_what_others_changed_at_the_next_request_and_never_what_it_wrote_itself(
        box: Box, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    import boto3

    caplog.set_level(logging.INFO, logger="euca.cloud")
    ec2 = box.client("carol")
    access, secret = box.keys("carol")
    iam = boto3.client("iam", endpoint_url=box.url + "/services/Euare", aws_access_key_id=access,
                       aws_secret_access_key=secret, region_name="eucalyptus")
    ec2.describe_key_pairs()
    caplog.clear()
    # the server's own changes to the directory and the images: its view follows them as it writes
    iam.create_user(UserName="dave")
    iam.create_access_key(UserName="dave")
    ec2.register_image(Name="own", ImageLocation=box.upload_bundle("carol", "carol-images/own.manifest.xml"))
    ec2.describe_key_pairs()
    assert not [r.getMessage() for r in caplog.records if "applied the administrator's changes" in r.getMessage()]

    # another process's: applied at the very next request, without waiting
    assert cli(box, "user", "add", "carol", "erin") == 0
    _, _, key, key_secret = capsys.readouterr().out.split()
    erin = boto3.client("ec2", endpoint_url=box.url, aws_access_key_id=key, aws_secret_access_key=key_secret,
                        region_name="eucalyptus")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        erin.describe_key_pairs()
    # her key is known (her signature is checked): she is refused only for want of a policy
    assert exc.value.response["Error"]["Code"] == "UnauthorizedOperation"
    assert [r.getMessage() for r in caplog.records if "applied the administrator's changes" in r.getMessage()] == \
        ["applied the administrator's changes to account"]
    for client in (erin, iam, ec2):
        client.close()
