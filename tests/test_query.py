"""Query parsing and XML serialization, straight from botocore's EC2 model."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import pytest
from botocore.parsers import create_parser
from botocore.serialize import create_serializer

from euca.api import query, xml
from euca.api.app import ec2_model
from euca.core.errors import InvalidParameterValue, MissingParameter

MODEL = ec2_model()


def _roundtrip(operation: str, params: dict[str, Any]) -> dict[str, Any]:
    """What boto3 would send for ``params``, parsed back by the server."""
    op = MODEL.operation_model(operation)
    body = create_serializer("ec2").serialize_to_request(params, op)["body"]
    return query.parse(op.input_shape, {k: str(v) for k, v in body.items()})


def test_lists_structures_and_filters_round_trip() -> None:
    params = {"InstanceIds": ["i-1", "i-2"], "MaxResults": 10,
              "Filters": [{"Name": "tag:role", "Values": ["db", "web"]}, {"Name": "instance-type", "Values": ["x"]}]}
    assert _roundtrip("DescribeInstances", params) == params


def test_run_instances_round_trip() -> None:
    params = {"ImageId": "emi-12345678", "MinCount": 1, "MaxCount": 3, "SecurityGroups": ["a", "b"],
              "Placement": {"AvailabilityZone": "cluster01"}, "ClientToken": "t", "DisableApiTermination": True}
    assert _roundtrip("RunInstances", params) == params


def test_ip_permissions_round_trip() -> None:
    params = {"GroupName": "web", "IpPermissions": [
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}],
         "UserIdGroupPairs": [{"GroupName": "default", "UserId": "123456789012"}]}]}
    assert _roundtrip("AuthorizeSecurityGroupIngress", params) == params


def test_blob_is_base64_decoded() -> None:
    assert _roundtrip("ImportKeyPair", {"KeyName": "k", "PublicKeyMaterial": b"ssh-rsa AAAA"})[
        "PublicKeyMaterial"] == b"ssh-rsa AAAA"


def test_errors() -> None:
    op = MODEL.operation_model("RunInstances")
    with pytest.raises(MissingParameter, match="MinCount"):
        query.parse(op.input_shape, {"MaxCount": "1"})
    with pytest.raises(InvalidParameterValue, match="integer"):
        query.parse(op.input_shape, {"MaxCount": "one", "MinCount": "1"})
    with pytest.raises(InvalidParameterValue, match="true or false"):
        query.parse(op.input_shape, {"MaxCount": "1", "MinCount": "1", "DisableApiTermination": "yes"})
    with pytest.raises(InvalidParameterValue, match="list positions"):
        query.parse(op.input_shape, {"MaxCount": "1", "MinCount": "1", "SecurityGroup.x": "a"})
    with pytest.raises(InvalidParameterValue, match="at most"):
        query.parse(op.input_shape, {"MaxCount": "1", "MinCount": "1",
                                     **{f"SecurityGroup.{i}": "a" for i in range(1, 1100)}})


def test_serialized_response_parses_with_botocore() -> None:
    op = MODEL.operation_model("DescribeInstances")
    result = {"Reservations": [{"ReservationId": "r-1", "OwnerId": "123", "Groups": [], "Instances": [
        {"InstanceId": "i-1", "State": {"Code": 16, "Name": "running"}, "LaunchTime": 0.0,
         "Tags": [{"Key": "a<b", "Value": "&"}], "EbsOptimized": False}]}]}
    body = xml.response(op, result, "req-1", "2016-11-15")
    root = ET.fromstring(body)
    assert root.tag == "{http://ec2.amazonaws.com/doc/2016-11-15/}DescribeInstancesResponse"
    ns = "{http://ec2.amazonaws.com/doc/2016-11-15/}"
    assert root.find(f"{ns}reservationSet/{ns}item/{ns}instancesSet/{ns}item/{ns}instanceState/{ns}name").text \
        == "running"
    assert root.find(f"{ns}reservationSet/{ns}item/{ns}instancesSet/{ns}item/{ns}launchTime").text \
        == "1970-01-01T00:00:00.000Z"
    assert b"<ebsOptimized>false</ebsOptimized>" in body
    parsed = create_parser("ec2").parse({"body": body, "headers": {}, "status_code": 200}, op.output_shape)
    instance = parsed["Reservations"][0]["Instances"][0]
    assert instance["Tags"] == [{"Key": "a<b", "Value": "&"}]
    assert parsed["ResponseMetadata"]["RequestId"] == "req-1"


def test_error_document() -> None:
    root = ET.fromstring(xml.error("InvalidAction", "no <such> action", "req-2"))
    assert root.tag == "Response"
    assert root.findtext("Errors/Error/Code") == "InvalidAction"
    assert root.findtext("Errors/Error/Message") == "no <such> action"
    assert root.findtext("RequestID") == "req-2"
