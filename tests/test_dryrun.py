"""DryRun=true, answered in one place for every action: after the signature, the parameters and
authorization are checked, with DryRunOperation (412) instead of calling the action."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import botocore.exceptions
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from euca.api.actions import ACTIONS
from euca.api.app import Ec2Api, ec2_model
from euca.core.errors import UnauthorizedOperation
from euca.services.common import Caller
from tests.ec2_server import Box, running_box

MESSAGE = "Request would have succeeded, but DryRun flag is set."


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    with running_box(tmp_path_factory.mktemp("dry"), nodes=1) as b:
        yield b


@pytest.fixture(scope="module")
def ec2(box: Box) -> Iterator[Any]:
    client = box.client()
    yield client
    client.close()


@pytest.fixture(scope="module")
def dora(box: Box) -> Iterator[Any]:
    client = box.client("dora")
    yield client
    client.close()


@pytest.fixture(scope="module")
def emi(box: Box) -> str:
    return box.image()


def _dry(call: Any, **kw: Any) -> botocore.exceptions.ClientError:
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        call(DryRun=True, **kw)
    return exc.value


def _is_dry_run(error: botocore.exceptions.ClientError) -> None:
    assert error.response["Error"]["Code"] == "DryRunOperation", error.response["Error"]
    assert error.response["Error"]["Message"] == MESSAGE
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 412


def _instances(client: Any) -> list[str]:
    return sorted(i["InstanceId"] for r in client.describe_instances()["Reservations"] for i in r["Instances"])


def test_run_instances_launches_nothing(dora: Any, emi: str, box: Box) -> None:
    before = box.cloud.cc.availability()
    _is_dry_run(_dry(dora.run_instances, ImageId=emi, MinCount=2, MaxCount=2))
    assert _instances(dora) == []
    assert box.cloud.cc.availability() == before


def test_changes_are_not_made(dora: Any, emi: str) -> None:
    dora.create_key_pair(KeyName="kept")
    _is_dry_run(_dry(dora.delete_key_pair, KeyName="kept"))
    assert [k["KeyName"] for k in dora.describe_key_pairs()["KeyPairs"]] == ["kept"]
    _is_dry_run(_dry(dora.create_key_pair, KeyName="never"))
    assert [k["KeyName"] for k in dora.describe_key_pairs()["KeyPairs"]] == ["kept"]

    _is_dry_run(_dry(dora.allocate_address))
    assert dora.describe_addresses()["Addresses"] == []
    _is_dry_run(_dry(dora.create_security_group, GroupName="never", Description="d"))
    assert [g["GroupName"] for g in dora.describe_security_groups()["SecurityGroups"]] == ["default"]
    _is_dry_run(_dry(dora.authorize_security_group_ingress, GroupName="default", IpProtocol="tcp", FromPort=22,
                     ToPort=22, CidrIp="0.0.0.0/0"))
    assert dora.describe_security_groups()["SecurityGroups"][0]["IpPermissions"] == []

    (instance,) = [i["InstanceId"] for i in dora.run_instances(ImageId=emi, MinCount=1, MaxCount=1)["Instances"]]
    _is_dry_run(_dry(dora.create_tags, Resources=[instance], Tags=[{"Key": "k", "Value": "v"}]))
    assert dora.describe_tags()["Tags"] == []
    _is_dry_run(_dry(dora.terminate_instances, InstanceIds=[instance]))
    state = dora.describe_instances(InstanceIds=[instance])["Reservations"][0]["Instances"][0]["State"]["Name"]
    assert state in ("pending", "running")
    _is_dry_run(_dry(dora.register_image, ImageLocation="b/app.manifest.xml", Name="never"))
    assert dora.describe_images(Owners=["self"])["Images"] == []
    dora.terminate_instances(InstanceIds=[instance])


def test_describes_answer_dry_run_too(dora: Any) -> None:
    _is_dry_run(_dry(dora.describe_regions))
    _is_dry_run(_dry(dora.describe_instances))
    assert dora.describe_regions(DryRun=False)["Regions"]


def test_parameters_are_checked_before_the_dry_run(dora: Any, box: Box) -> None:
    error = _dry(dora.describe_instances, Filters=[{"Name": "instance-type", "Values": ["x"]}],
                 MaxResults=5, NextToken="")
    _is_dry_run(error)  # well formed: the filter's meaning is the action's business
    from botocore.config import Config

    unchecked = box.client("dora", config=Config(parameter_validation=False))
    for call, kw in ((unchecked.register_image, {"ImageLocation": "b/app.manifest.xml", "Name": "ab"}),
                     (unchecked.run_instances, {"ImageId": "emi-1", "MinCount": "one", "MaxCount": 1}),
                     (unchecked.describe_security_groups, {"MaxResults": 2})):
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            call(DryRun=True, **kw)
        assert exc.value.response["Error"]["Code"] == "InvalidParameterValue"
    unchecked.close()


def test_unauthorized_caller_hears_so_before_the_dry_run(dora: Any, ec2: Any) -> None:
    error = _dry(dora.register_image, ImageLocation="b/vmlinuz-6.1.manifest.xml", Name="kernel")
    assert error.response["Error"]["Code"] == "UnauthorizedOperation"
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    _is_dry_run(_dry(ec2.register_image, ImageLocation="b/vmlinuz-6.1.manifest.xml", Name="kernel"))
    assert [i for i in ec2.describe_images()["Images"] if i["Name"] == "kernel"] == []


def test_unsigned_dry_run_is_auth_failure(box: Box) -> None:
    import requests

    r = requests.post(box.url, data={"Action": "DescribeRegions", "DryRun": "true"})
    assert r.status_code == 401 and "<Code>AuthFailure</Code>" in r.text


# --- every action, through the pipeline -----------------------------------------------------------

def _minimal(action: str) -> dict[str, str]:
    """The required members of ``action`` with placeholder values of the right type."""
    shape = ec2_model().operation_model(action).input_shape
    out: dict[str, str] = {}
    for name in shape.required_members:
        member = shape.members[name]
        key = member.serialization.get("queryName") or (member.serialization.get("name") or name)
        key = key[0].upper() + key[1:]
        kind = member.type_name
        if kind == "list":
            out[f"{key}.1"] = "x-1"
            if member.member.type_name == "structure":  # its first required member, or a tag's Key
                first = sorted(member.member.required_members) or ["Key"]
                out = {k: v for k, v in out.items() if k != f"{key}.1"} | {f"{key}.1.{first[0]}": "k"}
        elif kind in ("integer", "long"):
            out[key] = "1"
        elif kind == "blob":
            out[key] = "c3NoLXJzYQ=="
        elif member.enum:
            out[key] = member.enum[0]
        else:
            out[key] = "abc"
    return out


def _handle(api: Ec2Api, box: Box, params: dict[str, str]) -> tuple[int, bytes]:
    access, secret = box.keys()
    req = AWSRequest("POST", "http://127.0.0.1/", data=params,
                     headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    SigV4Auth(Credentials(access, secret), "ec2", "eucalyptus").add_auth(req)
    prepared = req.prepare()
    headers = {k.lower(): v for k, v in prepared.headers.items()} | {"host": "127.0.0.1"}
    body = prepared.body if isinstance(prepared.body, bytes) else prepared.body.encode()
    return api.handle("POST", "/", "", headers, body, "req")


@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_every_action_has_its_dry_run_and_policy_hook(action: str, box: Box) -> None:
    called: list[str] = []

    def failing_handler(*args: Any) -> dict[str, Any]:
        raise AssertionError(f"{action} ran in a dry run")

    def deny(caller: Caller, name: str, parsed: dict[str, Any]) -> None:
        called.append(name)
        raise UnauthorizedOperation(f"{caller.account} may not {name}")

    actions = {**ACTIONS, action: failing_handler}
    params = {"Action": action, "Version": "2016-11-15", "DryRun": "true", **_minimal(action)}
    status, body = _handle(Ec2Api(box.cloud, actions=actions), box, params)
    assert (status, b"<Code>DryRunOperation</Code>" in body) == (412, True), body
    status, body = _handle(Ec2Api(box.cloud, authorize=deny, actions=actions), box, params)
    assert status == 403 and b"<Code>UnauthorizedOperation</Code>" in body
    assert called == [action]
