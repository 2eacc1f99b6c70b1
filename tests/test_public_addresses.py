"""Dynamic public addresses (doDynamicPublicAddresses): one per instance from VNET_PUBLICIPS while it
runs, none with ``AddressingType=private``, replaced by an elastic address and given back."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from euca.core.config import Config
from tests.ec2_server import Box, running_box

POOL = [f"198.51.100.{i}" for i in range(1, 5)]  # four public addresses in all
CONFIG = dataclasses.replace(Config(), vnet_publicips=f"{POOL[0]}-{POOL[-1]}")


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Box]:
    with running_box(tmp_path, config=CONFIG) as b:
        yield b


def public(ec2: Any, instance_id: str) -> str | None:
    found = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    return found.get("PublicIpAddress")


def run_raw(box: Box, image: str, count: int, addressing: str) -> requests.Response:
    """RunInstances with AddressingType, which botocore's model does not have (euca2ools sends it)."""
    access, secret = box.keys("alice")
    req = AWSRequest("POST", box.url + "/", data={
        "Action": "RunInstances", "Version": "2016-11-15", "ImageId": image, "MinCount": str(count),
        "MaxCount": str(count), "AddressingType": addressing},
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    SigV4Auth(Credentials(access, secret), "ec2", "eucalyptus").add_auth(req)
    prepared = req.prepare()
    with requests.Session() as http:
        return http.post(prepared.url, data=prepared.body, headers=dict(prepared.headers))


def test_each_instance_gets_one_and_gives_it_back(box: Box) -> None:
    ec2 = box.client("alice")
    emi = box.image()
    run = ec2.run_instances(ImageId=emi, MinCount=2, MaxCount=2)
    ids = [i["InstanceId"] for i in run["Instances"]]
    ips = [i["PublicIpAddress"] for i in run["Instances"]]
    assert len(set(ips)) == 2 and set(ips) <= set(POOL)
    assert [public(ec2, i) for i in ids] == ips
    assert ec2.describe_addresses()["Addresses"] == []  # dynamic addresses belong to no account
    ec2.terminate_instances(InstanceIds=ids)
    # all four are free again: four more instances get them
    again = ec2.run_instances(ImageId=emi, MinCount=4, MaxCount=4)["Instances"]
    assert sorted(i["PublicIpAddress"] for i in again) == POOL
    ec2.terminate_instances(InstanceIds=[i["InstanceId"] for i in again])
    ec2.close()


def test_private_addressing_and_an_empty_pool(box: Box) -> None:
    ec2 = box.client("alice")
    emi = box.image()
    r = run_raw(box, emi, 1, "private")
    assert r.status_code == 200 and "<ipAddress>" not in r.text
    held = ec2.run_instances(ImageId=emi, MinCount=4, MaxCount=4)["Instances"]
    before = box.cloud.cc.availability()
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ec2.run_instances(ImageId=emi, MinCount=1, MaxCount=1)
    assert exc.value.response["Error"]["Code"] == "InsufficientAddressCapacity"
    assert exc.value.response["Error"]["Message"] == \
        "Not enough resources available: addresses (try --addressing private)"
    assert box.cloud.cc.availability() == before  # nothing was placed
    live = {i["InstanceId"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]}
    assert len(live) == 5
    assert run_raw(box, emi, 1, "private").status_code == 200  # still possible without an address
    assert run_raw(box, emi, 1, "bogus").status_code == 400
    ec2.terminate_instances(InstanceIds=[i["InstanceId"] for i in held])
    ec2.close()


def test_elastic_replaces_dynamic_and_survives_restart(tmp_path: Path) -> None:
    with running_box(tmp_path, config=CONFIG) as box:
        ec2 = box.client("alice")
        emi = box.image()
        (inst,) = ec2.run_instances(ImageId=emi, MinCount=1, MaxCount=1)["Instances"]
        instance_id, dynamic = inst["InstanceId"], inst["PublicIpAddress"]
        elastic = ec2.allocate_address()["PublicIp"]
        ec2.associate_address(PublicIp=elastic, InstanceId=instance_id)
        assert public(ec2, instance_id) == elastic
        # the dynamic one went back: with the elastic one and this instance's, 2 of 4 are in use
        others = ec2.run_instances(ImageId=emi, MinCount=2, MaxCount=2)["Instances"]
        assert dynamic in {i["PublicIpAddress"] for i in others}
        ec2.terminate_instances(InstanceIds=[others[0]["InstanceId"]])
        ec2.disassociate_address(PublicIp=elastic)
        fresh = public(ec2, instance_id)
        assert fresh is not None and fresh != elastic and fresh in POOL
        ec2.close()
    with running_box(tmp_path, config=CONFIG) as box:
        ec2 = box.client("alice")
        assert public(ec2, instance_id) == fresh
        assert public(ec2, others[1]["InstanceId"]) == others[1]["PublicIpAddress"]
        assert [a["PublicIp"] for a in ec2.describe_addresses()["Addresses"]] == [elastic]
        ec2.terminate_instances(InstanceIds=[instance_id, others[1]["InstanceId"]])
        ec2.release_address(PublicIp=elastic)
        assert len(ec2.run_instances(ImageId=emi_of(box), MinCount=4, MaxCount=4)["Instances"]) == 4
        ec2.close()


def emi_of(box: Box) -> str:
    return str(box.cloud.images.describe(box.cloud.accounts.get("admin").caller, None, None, None,  # type: ignore[union-attr]
                                         [{"Name": "image-type", "Values": ["machine"]}])[0]["ImageId"])
