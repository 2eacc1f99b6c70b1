"""Query parsing and XML serialization, straight from botocore's EC2 model."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import pytest
from botocore.parsers import create_parser
from botocore.serialize import create_serializer

from euca.api import query, xml
from euca.api.app import ec2_model
from euca.core.errors import (
    ApiError,
    InvalidParameter,
    InvalidParameterValue,
    MissingParameter,
    UnknownParameter,
)

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
    with pytest.raises(InvalidParameter, match=r"SecurityGroup\.x .*list positions"):
        query.parse(op.input_shape, {"MaxCount": "1", "MinCount": "1", "SecurityGroup.x": "a"})
    with pytest.raises(InvalidParameterValue, match="at most"):
        query.parse(op.input_shape, {"MaxCount": "1", "MinCount": "1",
                                     **{f"SecurityGroup.{i}": "a" for i in range(1, 1100)}})


def _parse(operation: str, params: dict[str, str]) -> dict[str, Any]:
    return query.parse(MODEL.operation_model(operation).input_shape, params)


def _refused(operation: str, params: dict[str, str], error: type[ApiError], message: str) -> ApiError:
    with pytest.raises(error) as exc:
        _parse(operation, params)
    assert type(exc.value) is error
    assert message in exc.value.message, exc.value.message
    return exc.value


@pytest.mark.parametrize(("operation", "params", "name"), [
    ("DeleteSecurityGroup", {"GroupId.": "x"}, "GroupId."),
    ("CreateTags", {"ResourceId.1.": "x", "Tag.1.Key": "k"}, "ResourceId.1."),
    ("DeleteKeyPair", {"KeyName..": "x"}, "KeyName.."),
    ("DescribeInstances", {".InstanceId.1": "i-1"}, ".InstanceId.1"),
    ("DescribeInstances", {"Filter.1..Name": "x"}, "Filter.1..Name"),
    ("DescribeRegions", {"": "x"}, "The parameter  is"),
])
def test_empty_name_segments_are_invalid_parameter(operation: str, params: dict[str, str], name: str) -> None:
    """These folded into the text slot of the tree and reached services as dicts (HTTP 500)."""
    _refused(operation, params, InvalidParameter, name)


@pytest.mark.parametrize("position", ["²", "①", "٣", "１", "0", "01", "+1", "-1", " 1", "1 ", "1_0", "x", "1234567"])
def test_list_positions_are_ascii_numbers_from_one(position: str) -> None:
    """str.isdigit accepts superscripts and circled digits, which int() then refuses (HTTP 500)."""
    _refused("DescribeRegions", {f"RegionName.{position}": "eucalyptus"}, InvalidParameter,
             f"RegionName.{position} is not valid")
    _refused("DescribeInstances", {f"Filter.{position}.Name": "tag:a", f"Filter.{position}.Value.1": "b"},
             InvalidParameter, f"Filter.{position} is not valid")


def test_list_positions_with_gaps_keep_their_order() -> None:
    assert _parse("DescribeInstances", {"InstanceId.3": "i-3", "InstanceId.10": "i-10", "InstanceId.1": "i-1"}) \
        == {"InstanceIds": ["i-1", "i-3", "i-10"]}


@pytest.mark.parametrize(("operation", "params", "name"), [
    ("DescribeRegions", {"Foo": "x"}, "Foo"),
    ("RunInstances", {"MinCount": "1", "MaxCount": "1", "Placement.Foo": "x"}, "Placement.Foo"),
    ("DeleteKeyPair", {"KeyName.1": "x"}, "KeyName.1"),
    ("DeleteKeyPair", {"KeyName": "k", "KeyName.Sub.2": "x"}, "KeyName.Sub.2"),
    ("DescribeInstances", {"InstanceId.1.Foo": "x"}, "InstanceId.1.Foo"),
    ("DescribeInstances", {"Filter.1.Name": "a", "Filter.1.Value.1.Deeper": "b"}, "Filter.1.Value.1.Deeper"),
    ("DescribeInstances", {"Filter.1.Nme": "a"}, "Filter.1.Nme"),
    ("DescribeRegions", {"AddressingType": "private"}, "AddressingType"),
])
def test_unknown_names_are_unknown_parameter(operation: str, params: dict[str, str], name: str) -> None:
    error = _refused(operation, params, UnknownParameter, f"The parameter {name} is not recognized")
    assert error.message == f"The parameter {name} is not recognized"


def test_extensions_are_accepted_where_declared() -> None:
    op = MODEL.operation_model("RunInstances")
    parsed = query.parse(op.input_shape, {"MinCount": "1", "MaxCount": "1", "AddressingType": "private"},
                         ("AddressingType",))
    assert parsed == {"MinCount": 1, "MaxCount": 1, "AddressingType": "private"}


def test_auth_and_protocol_parameters_are_not_the_operations() -> None:
    params = {"Action": "DescribeRegions", "Version": "2016-11-15", "AWSAccessKeyId": "AKID", "Signature": "s",
              "SignatureMethod": "HmacSHA256", "SignatureVersion": "2", "Timestamp": "t", "SecurityToken": "x",
              "X-Amz-Algorithm": "AWS4-HMAC-SHA256", "X-Amz-Credential": "c", "X-Amz-Date": "d",
              "X-Amz-Expires": "60", "X-Amz-SignedHeaders": "host", "X-Amz-Signature": "s"}
    assert _parse("DescribeRegions", params) == {}


@pytest.mark.parametrize(("operation", "params", "message"), [
    ("RunInstances", {"MinCount": "٥", "MaxCount": "1"}, "MinCount is invalid. It must be an integer"),
    ("RunInstances", {"MinCount": "1_0", "MaxCount": "1"}, "It must be an integer"),
    ("RunInstances", {"MinCount": " 1", "MaxCount": "1"}, "It must be an integer"),
    ("RunInstances", {"MinCount": "1", "MaxCount": str(2**31)}, "It must be an integer from"),
    ("RunInstances", {"MinCount": "1", "MaxCount": "1", "DisableApiTermination": "1"}, "true or false"),
    ("DescribeSecurityGroups", {"MaxResults": "4"}, "It must be an integer from 5 to 1000"),
    ("DescribeSecurityGroups", {"MaxResults": "1001"}, "It must be an integer from 5 to 1000"),
    ("AllocateAddress", {"Domain": "galaxy"}, "It must be one of: standard, vpc"),
    ("DescribeImageAttribute", {"ImageId": "emi-1", "Attribute": "LaunchPermission"}, "It must be one of"),
    ("RegisterImage", {"Name": "ab"}, "Name is invalid. It must be 3 to 128 characters long"),
    ("RegisterImage", {"Name": "abc", "Description": "d" * 256}, "It must be 0 to 255 characters long"),
    ("ImportKeyPair", {"KeyName": "k", "PublicKeyMaterial": "not base64!"}, "It must be base64"),
    ("ImportKeyPair", {"KeyName": "k", "PublicKeyMaterial": "ＡＡＡＡ"}, "It must be base64"),
    ("DeleteKeyPair", {"KeyName": "a\x01b"}, "Value (a\\x01b) for parameter KeyName is invalid"),
    ("DeleteKeyPair", {"KeyName": "a\ufffeb"}, "(a\\ufffeb)"),
    ("DeleteKeyPair", {"KeyName": "\ud800"}, "(\\ud800)"),
    ("RunInstances", {"MinCount": "1", "MaxCount": "1", "Placement": "cluster01"}, "It is a structure"),
    ("DescribeInstances", {"InstanceId": "i-1"}, "It is a list"),
    ("RunInstances", {"MinCount": "1", "MaxCount": "1", "InstanceMarketOptions.SpotOptions.ValidUntil": "soon"},
     "ISO 8601"),
])
def test_values_are_checked_against_the_model(operation: str, params: dict[str, str], message: str) -> None:
    _refused(operation, params, InvalidParameterValue, message)


def test_values_the_model_allows() -> None:
    # the cloud's own VM types are not in AWS's enum; the service checks them
    assert _parse("RunInstances", {"MinCount": "1", "MaxCount": "-0", "InstanceType": "m9.custom"})[
        "InstanceType"] == "m9.custom"
    assert _parse("AllocateAddress", {"Domain": "standard"}) == {"Domain": "standard"}
    assert _parse("DescribeSecurityGroups", {"MaxResults": "5"}) == {"MaxResults": 5}
    assert _parse("DeleteKeyPair", {"KeyName": "tab\tnew\nline\r", "DryRun": "TRUE"}) == {
        "KeyName": "tab\tnew\nline\r", "DryRun": True}
    valid = _parse("RunInstances", {"MinCount": "1", "MaxCount": "1",
                                    "InstanceMarketOptions.SpotOptions.ValidUntil": "2030-01-02T03:04:05"})
    assert valid["InstanceMarketOptions"]["SpotOptions"]["ValidUntil"].tzinfo is not None
    assert _parse("DescribeInstances", {"InstanceId": ""}) == {"InstanceIds": []}


def test_messages_quote_names_without_control_characters() -> None:
    error = _refused("DescribeRegions", {"Foo\x19\x01": "x"}, UnknownParameter, "Foo\\x19\\x01")
    assert "\x19" not in error.message


def test_maps_as_botocore_writes_them() -> None:
    from botocore.model import ShapeResolver

    resolver = ShapeResolver({
        "Input": {"type": "structure", "members": {"Attributes": {"shape": "Map"}, "Flat": {"shape": "FlatMap"}}},
        "Map": {"type": "map", "key": {"shape": "Str"}, "value": {"shape": "Int"}},
        "FlatMap": {"type": "map", "key": {"shape": "Str", "locationName": "Name"},
                    "value": {"shape": "Str", "locationName": "Value"}, "flattened": True},
        "Str": {"type": "string"}, "Int": {"type": "integer"}})
    shape = resolver.get_shape_by_name("Input")
    params = {"Attributes": {"a": 1, "b": 2}, "Flat": {"x": "y"}}
    op_model = {"metadata": {"protocol": "ec2", "apiVersion": "2016-11-15"},
                "operations": {"Op": {"name": "Op", "input": {"shape": "Input"}}}, "shapes": resolver._shape_map}
    from botocore.model import ServiceModel

    op = ServiceModel(op_model).operation_model("Op")
    body = create_serializer("ec2").serialize_to_request(params, op)["body"]
    assert "Attributes.entry.1.key" in body and "Flat.1.Name" in body
    assert query.parse(shape, {k: str(v) for k, v in body.items()}) == params
    with pytest.raises(UnknownParameter, match=r"Attributes\.entry\.1\.Other"):
        query.parse(shape, {"Attributes.entry.1.key": "a", "Attributes.entry.1.Other": "1"})
    with pytest.raises(MissingParameter, match=r"Attributes\.entry\.1\.key"):
        query.parse(shape, {"Attributes.entry.1.value": "1"})
    with pytest.raises(InvalidParameter, match=r"Attributes\.entry\.0"):
        query.parse(shape, {"Attributes.entry.0.key": "a"})


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
