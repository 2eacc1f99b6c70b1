"""Every EC2 action the cloud speaks, driven by real boto3 clients against a real server."""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.ec2_server import Box, running_box, until


@pytest.fixture(scope="module")
def box(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    """SQLite unless a test asks for ``both_stores``; the PostgreSQL box is a second cloud of its own."""
    database = None
    if getattr(request, "param", "sqlite") == "postgresql":
        database = request.getfixturevalue("postgres").database()
    with running_box(tmp_path_factory.mktemp("box"), database=database) as b:
        yield b


# The same behaviour over the other store: run in file order against a second cloud on PostgreSQL.
both_stores = pytest.mark.parametrize("box", ["sqlite", "postgresql"], indirect=True, scope="module")


@pytest.fixture(scope="module")
def ec2(box: Box) -> Iterator[Any]:
    client = box.client()
    yield client
    client.close()


@pytest.fixture(scope="module")
def alice(box: Box) -> Iterator[Any]:
    client = box.client("alice")
    yield client
    client.close()


@pytest.fixture(scope="module")
def bob(box: Box) -> Iterator[Any]:
    client = box.client("bob")
    yield client
    client.close()


@pytest.fixture(scope="module")
def emi(box: Box) -> str:
    return box.image()


def code(exc: pytest.ExceptionInfo[botocore.exceptions.ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def status(exc: pytest.ExceptionInfo[botocore.exceptions.ClientError]) -> int:
    return int(exc.value.response["ResponseMetadata"]["HTTPStatusCode"])


def wait_state(client: Any, instance_id: str, state: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = client.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["State"]
        if got["Name"] == state:
            return
        time.sleep(0.05)
    raise AssertionError(f"{instance_id} never reached {state}")


# --- wire protocol --------------------------------------------------------------------------------

def test_served_at_root_and_at_services_eucalyptus(box: Box) -> None:
    access, secret = box.keys()
    import boto3

    for path in ("/", "/services/Eucalyptus"):
        client = boto3.client("ec2", endpoint_url=box.url + path, aws_access_key_id=access,
                              aws_secret_access_key=secret, region_name="eucalyptus")
        assert client.describe_regions()["Regions"][0]["RegionName"] == "eucalyptus"
        client.close()


def test_unsigned_and_unknown_action_get_ec2_error_xml(box: Box) -> None:
    with requests.Session() as http:
        r = http.post(box.url, data={"Action": "DescribeRegions"})
        assert r.status_code == 401
        assert "<Code>AuthFailure</Code>" in r.text and "<RequestID>" in r.text
        assert r.text.count("<Errors><Error>") == 1


def test_unknown_action_is_invalid_action(ec2: Any, box: Box) -> None:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    access, secret = box.keys()
    req = AWSRequest("POST", box.url + "/", data={"Action": "LaunchRockets", "Version": "2016-11-15"},
                     headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    SigV4Auth(Credentials(access, secret), "ec2", "eucalyptus").add_auth(req)
    prepared = req.prepare()
    with requests.Session() as http:
        r = http.post(prepared.url, data=prepared.body, headers=dict(prepared.headers))
    assert r.status_code == 400 and "<Code>InvalidAction</Code>" in r.text


def test_missing_and_malformed_parameters(ec2: Any, emi: str) -> None:
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ec2.run_instances(MinCount=1, MaxCount=1)
    assert code(exc) == "MissingParameter"
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ec2.run_instances(ImageId=emi, MinCount=3, MaxCount=1)
    assert code(exc) == "InvalidParameterValue"
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ec2.describe_instances(InstanceIds=["x-123"])
    assert code(exc) == "InvalidInstanceID.Malformed"
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ec2.describe_instances(Filters=[{"Name": "no-such-filter", "Values": ["x"]}])
    assert code(exc) == "InvalidParameterValue" and "'no-such-filter'" in exc.value.response["Error"]["Message"]
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ec2.describe_instances(Filters=[{"Name": "instance-id", "Values": ["x" * 256]}])
    assert code(exc) == "FilterLimitExceeded"


# --- zones ----------------------------------------------------------------------------------------

def test_zones_and_verbose_table(ec2: Any, alice: Any) -> None:
    zones = ec2.describe_availability_zones()["AvailabilityZones"]
    assert [(z["ZoneName"], z["State"]) for z in zones] == [("cluster01", "available")]
    verbose = ec2.describe_availability_zones(ZoneNames=["verbose"])["AvailabilityZones"]
    rows = {z["ZoneName"]: z["State"] for z in verbose}
    assert rows["|- vm types"] == "free / max   cpu   ram  disk"
    # two 4-core, 4096 MB, 100 GB nodes: 8 m1.small (1/256/5) at most
    assert rows["|- m1.small"].split()[:3] == ["0008", "/", "0008"]
    assert [z["ZoneName"] for z in alice.describe_availability_zones(ZoneNames=["verbose"])["AvailabilityZones"]] \
        == ["cluster01"]


# --- key pairs ------------------------------------------------------------------------------------

@both_stores
def test_key_pairs(alice: Any, bob: Any) -> None:
    created = alice.create_key_pair(KeyName="mykey")
    private = serialization.load_pem_private_key(created["KeyMaterial"].encode(), None)
    der = private.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    assert created["KeyFingerprint"] == ":".join(f"{b:02x}" for b in hashlib.sha1(der).digest())
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        alice.create_key_pair(KeyName="mykey")
    assert code(exc) == "InvalidKeyPair.Duplicate"

    public = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    openssh = public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    spki = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    imported = alice.import_key_pair(KeyName="laptop", PublicKeyMaterial=openssh)
    assert imported["KeyFingerprint"] == ":".join(f"{b:02x}" for b in hashlib.md5(spki).digest())
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        alice.import_key_pair(KeyName="junk", PublicKeyMaterial=b"ssh-rsa not-a-key")
    assert code(exc) == "InvalidKey.Format"

    assert sorted(k["KeyName"] for k in alice.describe_key_pairs()["KeyPairs"]) == ["laptop", "mykey"]
    assert bob.describe_key_pairs()["KeyPairs"] == []
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        bob.describe_key_pairs(KeyNames=["mykey"])
    assert code(exc) == "InvalidKeyPair.NotFound"
    alice.delete_key_pair(KeyName="laptop")
    assert [k["KeyName"] for k in alice.describe_key_pairs()["KeyPairs"]] == ["mykey"]


# --- security groups ------------------------------------------------------------------------------

@both_stores
def test_security_groups(alice: Any, bob: Any, emi: str) -> None:
    gid = alice.create_security_group(GroupName="web", Description="web servers")["GroupId"]
    assert gid.startswith("sg-") and len(gid) == 11
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        alice.create_security_group(GroupName="web", Description="again")
    assert code(exc) == "InvalidGroup.Duplicate"
    alice.authorize_security_group_ingress(GroupName="web", IpProtocol="tcp", FromPort=80, ToPort=80,
                                           CidrIp="0.0.0.0/0")
    alice.authorize_security_group_ingress(GroupId=gid, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "UserIdGroupPairs": [{"GroupName": "default"}]},
        {"IpProtocol": "icmp", "FromPort": -1, "ToPort": -1, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}])
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        alice.authorize_security_group_ingress(GroupName="web", IpProtocol="tcp", FromPort=80, ToPort=80,
                                               CidrIp="0.0.0.0/0")
    assert code(exc) == "InvalidPermission.Duplicate"
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        alice.authorize_security_group_ingress(GroupName="web", IpProtocol="tcp", FromPort=90, ToPort=80,
                                               CidrIp="0.0.0.0/0")
    assert code(exc) == "InvalidPermission.Malformed"
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        alice.authorize_security_group_ingress(GroupName="web", IpProtocol="tcp", FromPort=1, ToPort=2,
                                               CidrIp="300.0.0.0/8")
    assert code(exc) == "InvalidPermission.Malformed"
    web = alice.describe_security_groups(GroupNames=["web"])["SecurityGroups"][0]
    perms = {(p["IpProtocol"], p["FromPort"]): p for p in web["IpPermissions"]}
    assert perms[("tcp", 80)]["IpRanges"] == [{"CidrIp": "0.0.0.0/0"}]
    assert perms[("tcp", 22)]["UserIdGroupPairs"][0]["GroupName"] == "default"
    assert perms[("icmp", -1)]["IpRanges"] == [{"CidrIp": "10.0.0.0/8"}]
    alice.revoke_security_group_ingress(GroupName="web", IpProtocol="tcp", FromPort=80, ToPort=80,
                                        CidrIp="0.0.0.0/0")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        alice.revoke_security_group_ingress(GroupName="web", IpProtocol="tcp", FromPort=80, ToPort=80,
                                            CidrIp="0.0.0.0/0")
    assert code(exc) == "InvalidPermission.NotFound"

    assert [g["GroupName"] for g in bob.describe_security_groups()["SecurityGroups"]] == ["default"]
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        bob.delete_security_group(GroupName="web")
    assert code(exc) == "InvalidGroup.NotFound"

    run = alice.run_instances(ImageId=emi, MinCount=1, MaxCount=1, SecurityGroups=["web"])
    instance_id = run["Instances"][0]["InstanceId"]
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        alice.delete_security_group(GroupName="web")
    assert code(exc) == "InvalidGroup.InUse"
    alice.terminate_instances(InstanceIds=[instance_id])
    alice.delete_security_group(GroupName="web")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        alice.delete_security_group(GroupName="default")
    assert code(exc) == "InvalidGroup.Reserved"


# --- addresses ------------------------------------------------------------------------------------

@both_stores
def test_addresses_and_limit(bob: Any, alice: Any, emi: str) -> None:
    ips = [bob.allocate_address()["PublicIp"] for _ in range(5)]
    assert len(set(ips)) == 5
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        bob.allocate_address()
    assert code(exc) == "AddressLimitExceeded"
    run = bob.run_instances(ImageId=emi, MinCount=1, MaxCount=1)
    instance_id = run["Instances"][0]["InstanceId"]
    bob.associate_address(PublicIp=ips[0], InstanceId=instance_id)
    (address,) = bob.describe_addresses(PublicIps=[ips[0]])["Addresses"]
    assert address["InstanceId"] == instance_id
    described = bob.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    assert described["PublicIpAddress"] == ips[0]
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        alice.associate_address(PublicIp=ips[1], InstanceId=instance_id)
    assert code(exc) == "InvalidAddress.NotFound"
    assert alice.describe_addresses()["Addresses"] == []
    bob.disassociate_address(PublicIp=ips[0])
    assert "InstanceId" not in bob.describe_addresses(PublicIps=[ips[0]])["Addresses"][0]
    bob.associate_address(PublicIp=ips[0], InstanceId=instance_id)
    bob.terminate_instances(InstanceIds=[instance_id])  # termination disassociates
    assert "InstanceId" not in bob.describe_addresses(PublicIps=[ips[0]])["Addresses"][0]
    for ip in ips:
        bob.release_address(PublicIp=ip)
    assert bob.describe_addresses()["Addresses"] == []
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        bob.release_address(PublicIp=ips[0])
    assert code(exc) == "InvalidAddress.NotFound"


# --- instances ------------------------------------------------------------------------------------

@both_stores
def test_instance_lifecycle(alice: Any, bob: Any, emi: str, box: Box) -> None:
    user_data = "#!/bin/sh\necho hello\n"
    run = alice.run_instances(ImageId=emi, MinCount=2, MaxCount=2, InstanceType="m1.small", KeyName="mykey",
                              UserData=user_data, Placement={"AvailabilityZone": "cluster01"})
    ids = [i["InstanceId"] for i in run["Instances"]]
    assert run["ReservationId"].startswith("r-") and all(len(i) == 10 for i in ids)
    first = run["Instances"][0]
    assert first["State"] == {"Code": 0, "Name": "pending"}
    assert first["KeyName"] == "mykey" and first["KernelId"].startswith("eki-")
    assert first["PrivateIpAddress"].startswith("172.19.")
    wait_state(alice, ids[0], "running")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        bob.describe_instances(InstanceIds=[ids[0]])
    assert code(exc) == "InvalidInstanceID.NotFound"
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        bob.terminate_instances(InstanceIds=[ids[0]])
    assert code(exc) == "InvalidInstanceID.NotFound"
    console = alice.get_console_output(InstanceId=ids[0])
    assert ids[0] in console["Output"]
    alice.reboot_instances(InstanceIds=ids)
    out = alice.terminate_instances(InstanceIds=ids)["TerminatingInstances"]
    assert {o["CurrentState"]["Name"] for o in out} == {"shutting-down"}
    assert {o["PreviousState"]["Name"] for o in out} == {"running"}
    wait_state(alice, ids[1], "terminated")
    assert box.cloud.cc.instance(ids[0]) is None


def test_insufficient_capacity_changes_nothing(alice: Any, emi: str, box: Box) -> None:
    before = box.cloud.cc.availability()
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        alice.run_instances(ImageId=emi, MinCount=50, MaxCount=50, InstanceType="m1.small")
    assert code(exc) == "InsufficientInstanceCapacity" and status(exc) == 503
    assert box.cloud.cc.availability() == before
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        alice.run_instances(ImageId=emi, MinCount=1, MaxCount=1, InstanceType="m9.huge")
    assert code(exc) == "InvalidParameterValue"
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        alice.run_instances(ImageId=emi, MinCount=1, MaxCount=1, KeyName="nope")
    assert code(exc) == "InvalidKeyPair.NotFound"
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        alice.run_instances(ImageId="emi-00000000", MinCount=1, MaxCount=1)
    assert code(exc) == "InvalidAMIID.NotFound"


def test_tag_specifications_name_only_the_resource_the_action_makes(alice: Any, emi: str, box: Box) -> None:
    before = box.cloud.cc.availability()
    wrong = [{"ResourceType": "volume", "Tags": [{"Key": "role", "Value": "db"}]}]
    for call, kw in ((alice.run_instances, {"ImageId": emi, "MinCount": 1, "MaxCount": 1}),
                     (alice.create_key_pair, {"KeyName": "tagged-wrong"}),
                     (alice.create_security_group, {"GroupName": "tagged-wrong", "Description": "d"})):
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            call(TagSpecifications=wrong, **kw)
        assert code(exc) == "InvalidParameterValue"
        assert "'volume' is not a valid taggable resource type" in exc.value.response["Error"]["Message"]
    assert box.cloud.cc.availability() == before
    assert not alice.describe_key_pairs(Filters=[{"Name": "key-name", "Values": ["tagged-wrong"]}])["KeyPairs"]


def test_client_token_is_idempotent(alice: Any, emi: str) -> None:
    a = alice.run_instances(ImageId=emi, MinCount=1, MaxCount=1, ClientToken="once")
    b = alice.run_instances(ImageId=emi, MinCount=1, MaxCount=1, ClientToken="once")
    assert a["ReservationId"] == b["ReservationId"]
    assert [i["InstanceId"] for i in a["Instances"]] == [i["InstanceId"] for i in b["Instances"]]
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        alice.run_instances(ImageId=emi, MinCount=1, MaxCount=1, ClientToken="once", InstanceType="c1.medium")
    assert code(exc) == "IdempotentParameterMismatch"
    alice.terminate_instances(InstanceIds=[a["Instances"][0]["InstanceId"]])


@both_stores
def test_describe_filters_and_pages(alice: Any, ec2: Any, emi: str) -> None:
    run = alice.run_instances(ImageId=emi, MinCount=6, MaxCount=6, InstanceType="t1.micro")
    ids = sorted(i["InstanceId"] for i in run["Instances"])
    alice.create_tags(Resources=ids[:2], Tags=[{"Key": "role", "Value": "db"}])
    found = alice.describe_instances(Filters=[{"Name": "tag:role", "Values": ["d*"]}])
    assert sorted(i["InstanceId"] for r in found["Reservations"] for i in r["Instances"]) == ids[:2]
    found = alice.describe_instances(Filters=[{"Name": "instance-type", "Values": ["t1.micro"]},
                                              {"Name": "instance-state-name", "Values": ["pending", "running"]}])
    assert sorted(i["InstanceId"] for r in found["Reservations"] for i in r["Instances"]) == ids
    paginator = alice.get_paginator("describe_instances")
    pages = list(paginator.paginate(Filters=[{"Name": "reservation-id", "Values": [run["ReservationId"]]}],
                                    PaginationConfig={"PageSize": 5}))
    assert len(pages) == 2
    assert sorted(i["InstanceId"] for p in pages for r in p["Reservations"] for i in r["Instances"]) == ids
    # the administrator sees everyone's instances
    seen = {i["InstanceId"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]}
    assert set(ids) <= seen
    tags = alice.describe_tags(Filters=[{"Name": "key", "Values": ["role"]}])["Tags"]
    assert sorted(t["ResourceId"] for t in tags) == ids[:2]
    alice.delete_tags(Resources=[ids[0]], Tags=[{"Key": "role"}])
    assert [t["ResourceId"] for t in alice.describe_tags()["Tags"] if t["Key"] == "role"] == [ids[1]]
    alice.terminate_instances(InstanceIds=ids)


def test_user_data_base64_is_checked(alice: Any, box: Box, emi: str) -> None:
    big = base64.b64encode(b"x" * 20000).decode()
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        alice.run_instances(ImageId=emi, MinCount=1, MaxCount=1, UserData=big)
    assert code(exc) == "InvalidParameterValue"


# --- images ---------------------------------------------------------------------------------------

def test_images_and_launch_permissions(alice: Any, bob: Any, ec2: Any, box: Box) -> None:
    own = alice.register_image(ImageLocation=box.upload_bundle("alice", "alice-bucket/app.manifest.xml"),
                               Name="app")["ImageId"]
    assert own.startswith("emi-")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        alice.register_image(ImageLocation=box.upload_bundle("alice", "alice-bucket/vmlinuz-6.1.manifest.xml",
                                                             image_type="kernel"), Name="my-kernel")
    assert code(exc) == "UnauthorizedOperation"
    kernel = ec2.register_image(ImageLocation=box.upload_bundle("admin", "admin-bucket/vmlinuz-6.1.manifest.xml",
                                                                image_type="kernel"), Name="kernel-6.1")["ImageId"]
    assert kernel.startswith("eki-")
    mine = alice.describe_images(Owners=["self"])["Images"]
    assert [i["ImageId"] for i in mine] == [own]
    assert own not in [i["ImageId"] for i in bob.describe_images()["Images"]]
    bob_id = box.cloud.accounts.get("bob")
    assert bob_id is not None
    alice.modify_image_attribute(ImageId=own, LaunchPermission={"Add": [{"UserId": bob_id.account_id}]})
    assert own in [i["ImageId"] for i in bob.describe_images(ExecutableUsers=["self"])["Images"]]
    perms = alice.describe_image_attribute(ImageId=own, Attribute="launchPermission")["LaunchPermissions"]
    assert perms == [{"UserId": bob_id.account_id}]
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        bob.modify_image_attribute(ImageId=own, LaunchPermission={"Add": [{"Group": "all"}]})
    assert code(exc) == "UnauthorizedOperation"
    alice.modify_image_attribute(ImageId=own, LaunchPermission={"Add": [{"Group": "all"}]})
    assert bob.describe_images(ImageIds=[own])["Images"][0]["Public"] is True
    alice.reset_image_attribute(ImageId=own, Attribute="launchPermission")
    assert own not in [i["ImageId"] for i in bob.describe_images()["Images"]]
    kernels = alice.describe_images(Filters=[{"Name": "image-type", "Values": ["kernel"]}])["Images"]
    assert {i["ImageType"] for i in kernels} == {"kernel"}
    alice.deregister_image(ImageId=own)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        alice.describe_images(ImageIds=[own])
    assert code(exc) == "InvalidAMIID.NotFound"


def test_data_dir_holds_the_store(box: Box) -> None:
    assert Path(box.data_dir / "euca.db").exists()
    assert Path(box.data_dir / "euca.db-wal").exists()


def test_an_ebs_backed_run_beyond_capacity_restores_only_the_roots_of_the_instances_started(box: Box) -> None:
    ec2 = box.client("roots")
    zone = ec2.describe_availability_zones()["AvailabilityZones"][0]["ZoneName"]
    source = ec2.create_volume(Size=1, AvailabilityZone=zone)["VolumeId"]
    until(lambda: ec2.describe_volumes(VolumeIds=[source])["Volumes"][0]["State"] == "available")
    snap_id = ec2.create_snapshot(VolumeId=source)["SnapshotId"]
    until(lambda: ec2.describe_snapshots(SnapshotIds=[snap_id])["Snapshots"][0]["State"] == "completed")
    ec2.delete_volume(VolumeId=source)
    image_id = ec2.register_image(Name="roots", RootDeviceName="/dev/sda1", BlockDeviceMappings=[
        {"DeviceName": "/dev/sda1", "Ebs": {"SnapshotId": snap_id}}])["ImageId"]
    until(lambda: not ec2.describe_volumes()["Volumes"])
    vmtype = "c1.xlarge"
    fits = next(a.free for a in box.cloud.cc.availability() if a.name == vmtype)
    assert 0 < fits < 20

    def volume_ids_issued() -> int:
        return int(box.cloud.store.rows("SELECT COUNT(*) FROM issued WHERE id LIKE 'vol-%'")[0][0])

    before = volume_ids_issued()
    started = ec2.run_instances(ImageId=image_id, MinCount=1, MaxCount=fits + 10, InstanceType=vmtype)["Instances"]
    try:
        assert len(started) == fits
        volumes = ec2.describe_volumes()["Volumes"]
        assert sorted(v["Attachments"][0]["InstanceId"] for v in volumes) == sorted(i["InstanceId"] for i in started)
        assert volume_ids_issued() - before == fits  # no volume was restored only to be dropped again
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            ec2.run_instances(ImageId=image_id, MinCount=1, MaxCount=5, InstanceType=vmtype)
        assert code(exc) == "InsufficientInstanceCapacity"
        assert volume_ids_issued() - before == fits and len(ec2.describe_volumes()["Volumes"]) == fits
    finally:
        ec2.terminate_instances(InstanceIds=[i["InstanceId"] for i in started])
