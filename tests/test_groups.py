"""Security groups over the EC2 API as clients use them: group ids wherever a name goes, egress
rules, rule ids and descriptions, DescribeSecurityGroupRules, ModifySecurityGroupRules, every
DescribeSecurityGroups filter, paging, tags, and another account's rules. Each test says which EC2
behaviour it pins."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest

from euca.services.accounts import Accounts
from euca.services.common import Ids
from euca.services.groups import Groups
from euca.services.tags import Tags
from euca.store import Store
from tests.ec2_server import Box, running_box

RULE_ID = re.compile(r"^sgr-[0-9a-f]{17}$")
# what every new group has, as DescribeSecurityGroups shows it: all traffic out, no ports
EVERYWHERE_OUT = [{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}], "Ipv6Ranges": [], "PrefixListIds": [],
                   "UserIdGroupPairs": []}]


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    with running_box(tmp_path_factory.mktemp("groups"), nodes=1) as b:
        yield b


@pytest.fixture(scope="module")
def ec2(box: Box) -> Iterator[Any]:
    client = box.client("grouper")
    yield client
    client.close()


@pytest.fixture(scope="module")
def other(box: Box) -> Iterator[Any]:
    client = box.client("outsider")
    yield client
    client.close()


def error(exc: pytest.ExceptionInfo[botocore.exceptions.ClientError]) -> tuple[str, str]:
    return str(exc.value.response["Error"]["Code"]), str(exc.value.response["Error"]["Message"])


def group(client: Any, group_id: str) -> Any:
    return client.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]


def rules_of(client: Any, group_id: str) -> list[Any]:
    return list(client.describe_security_group_rules(
        Filters=[{"Name": "group-id", "Values": [group_id]}])["SecurityGroupRules"])


def tcp(port: int, cidr: str, description: str | None = None) -> dict[str, Any]:
    r: dict[str, Any] = {"CidrIp": cidr}
    if description is not None:
        r["Description"] = description
    return {"IpProtocol": "tcp", "FromPort": port, "ToPort": port, "IpRanges": [r]}


# --- egress and the default rule ------------------------------------------------------------------

def test_a_new_group_allows_all_traffic_out_as_a_vpc_group_does(ec2: Any) -> None:
    gid = ec2.create_security_group(GroupName="fresh", Description="fresh")["GroupId"]
    g = group(ec2, gid)
    assert g["IpPermissions"] == [] and g["IpPermissionsEgress"] == EVERYWHERE_OUT
    default = ec2.describe_security_groups(GroupNames=["default"])["SecurityGroups"][0]
    assert default["IpPermissionsEgress"] == EVERYWHERE_OUT
    (rule,) = rules_of(ec2, gid)
    # DescribeSecurityGroupRules shows -1 ports for all traffic
    assert RULE_ID.match(rule["SecurityGroupRuleId"])
    assert {k: rule[k] for k in ("GroupId", "IsEgress", "IpProtocol", "FromPort", "ToPort", "CidrIpv4")} == {
        "GroupId": gid, "IsEgress": True, "IpProtocol": "-1", "FromPort": -1, "ToPort": -1, "CidrIpv4": "0.0.0.0/0"}
    assert rule["GroupOwnerId"] == g["OwnerId"]


def test_egress_rules_are_authorized_and_revoked_like_ingress(ec2: Any) -> None:
    gid = ec2.create_security_group(GroupName="egress", Description="egress")["GroupId"]
    default_rule = rules_of(ec2, gid)[0]["SecurityGroupRuleId"]
    got = ec2.authorize_security_group_egress(GroupId=gid, IpPermissions=[tcp(443, "10.0.0.0/8", "to the api")])
    (new,) = got["SecurityGroupRules"]
    assert got["Return"] is True and new["IsEgress"] is True and new["Description"] == "to the api"
    assert RULE_ID.match(new["SecurityGroupRuleId"]) and new["SecurityGroupRuleId"] != default_rule
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ec2.authorize_security_group_egress(GroupId=gid, IpPermissions=[tcp(443, "10.0.0.0/8", "again")])
    assert error(exc)[0] == "InvalidPermission.Duplicate"
    # an egress rule is not an ingress rule
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ec2.revoke_security_group_ingress(GroupId=gid, IpPermissions=[tcp(443, "10.0.0.0/8")])
    assert error(exc)[0] == "InvalidPermission.NotFound"
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ec2.revoke_security_group_ingress(GroupId=gid, SecurityGroupRuleIds=[new["SecurityGroupRuleId"]])
    assert error(exc)[0] == "InvalidSecurityGroupRuleId.NotFound"
    # the default rule revoked by its id, the new one by what it is
    revoked = ec2.revoke_security_group_egress(GroupId=gid, SecurityGroupRuleIds=[default_rule])
    assert [r["SecurityGroupRuleId"] for r in revoked["RevokedSecurityGroupRules"]] == [default_rule]
    ec2.revoke_security_group_egress(GroupId=gid, IpPermissions=[tcp(443, "10.0.0.0/8")])
    assert group(ec2, gid)["IpPermissionsEgress"] == []
    ec2.authorize_security_group_egress(GroupId=gid, IpPermissions=[{"IpProtocol": "-1",
                                                                    "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    assert group(ec2, gid)["IpPermissionsEgress"] == EVERYWHERE_OUT


# --- group ids wherever a name goes ---------------------------------------------------------------

def test_group_ids_everywhere(ec2: Any) -> None:
    gid = ec2.create_security_group(GroupName="by-id", Description="by id")["GroupId"]
    src = ec2.create_security_group(GroupName="by-id-src", Description="source")["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=gid, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432,
         "UserIdGroupPairs": [{"GroupId": src, "Description": "from the app"}]}])
    (perm,) = group(ec2, gid)["IpPermissions"]
    (pair,) = perm["UserIdGroupPairs"]
    assert (pair["GroupId"], pair["GroupName"], pair["Description"]) == (src, "by-id-src", "from the app")
    (rule,) = [r for r in rules_of(ec2, gid) if not r["IsEgress"]]
    assert rule["ReferencedGroupInfo"]["GroupId"] == src and "CidrIpv4" not in rule
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ec2.delete_security_group(GroupId=src)
    assert error(exc)[0] == "InvalidGroup.InUse"
    ec2.revoke_security_group_ingress(GroupId=gid, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "UserIdGroupPairs": [{"GroupId": src}]}])
    got = ec2.delete_security_group(GroupId=src)
    assert (got["Return"], got["GroupId"]) == (True, src)


def test_deleting_by_id_answers_the_id(ec2: Any) -> None:
    gid = ec2.create_security_group(GroupName="doomed", Description="doomed")["GroupId"]
    got = ec2.delete_security_group(GroupId=gid)
    assert (got["Return"], got["GroupId"]) == (True, gid)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ec2.describe_security_groups(GroupIds=[gid])
    assert error(exc) == ("InvalidGroup.NotFound", f"The security group '{gid}' does not exist")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ec2.describe_security_groups(GroupIds=["sg-nothex!"])
    assert error(exc)[0] == "InvalidGroup.NotFound"


# --- rule ids, descriptions, modifications ---------------------------------------------------------

def test_rule_ids_are_stable_and_descriptions_can_change(ec2: Any, box: Box) -> None:
    gid = ec2.create_security_group(GroupName="described", Description="described")["GroupId"]
    first = ec2.authorize_security_group_ingress(GroupId=gid, IpPermissions=[
        tcp(22, "192.0.2.0/24", "office"), tcp(80, "0.0.0.0/0")])["SecurityGroupRules"]
    ids = [r["SecurityGroupRuleId"] for r in first]
    assert [r.get("Description") for r in first] == ["office", None]
    ec2.authorize_security_group_ingress(GroupName="described", IpProtocol="tcp", FromPort=443, ToPort=443,
                                         CidrIp="0.0.0.0/0")
    again = [r["SecurityGroupRuleId"] for r in rules_of(ec2, gid) if not r["IsEgress"]]
    assert again[:2] == ids and len(again) == 3
    # by what the rule is (IpPermissions) and by its id
    ec2.update_security_group_rule_descriptions_ingress(GroupId=gid, IpPermissions=[tcp(80, "0.0.0.0/0", "web")])
    ec2.update_security_group_rule_descriptions_ingress(GroupName="described", SecurityGroupRuleDescriptions=[
        {"SecurityGroupRuleId": ids[0], "Description": "home (vpn)"}])
    by_port = {p["FromPort"]: p["IpRanges"][0].get("Description") for p in group(ec2, gid)["IpPermissions"]}
    assert by_port == {22: "home (vpn)", 80: "web", 443: None}
    egress_id = next(r["SecurityGroupRuleId"] for r in rules_of(ec2, gid) if r["IsEgress"])
    ec2.update_security_group_rule_descriptions_egress(GroupId=gid, SecurityGroupRuleDescriptions=[
        {"SecurityGroupRuleId": egress_id, "Description": "anything out"}])
    assert group(ec2, gid)["IpPermissionsEgress"][0]["IpRanges"][0]["Description"] == "anything out"
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ec2.update_security_group_rule_descriptions_ingress(GroupId=gid, IpPermissions=[tcp(8080, "0.0.0.0/0", "x")])
    assert error(exc)[0] == "InvalidPermission.NotFound"
    # AWS's character set for descriptions: no quotes, no non-ASCII
    for bad in ('say "hi"', "caf\u00e9", "x" * 256):
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            ec2.authorize_security_group_ingress(GroupId=gid, IpPermissions=[tcp(9, "0.0.0.0/0", bad)])
        assert error(exc)[0] == "InvalidParameterValue"
    # the ids come back from the store as they were
    reloaded = Groups(box.cloud.store, Ids(box.cloud.store), Accounts(box.cloud.store), Tags(box.cloud.store))
    g = reloaded.get(box.cloud.accounts.caller(box.keys("grouper")[0]).account, "described")
    assert g is not None and [r.rule_id for r in g.rules if not r.egress] == again


def test_modify_security_group_rules_keeps_the_id(ec2: Any) -> None:
    gid = ec2.create_security_group(GroupName="modified", Description="modified")["GroupId"]
    src = ec2.describe_security_groups(GroupNames=["default"])["SecurityGroups"][0]["GroupId"]
    (rule,) = ec2.authorize_security_group_ingress(GroupId=gid, IpPermissions=[tcp(22, "0.0.0.0/0")])[
        "SecurityGroupRules"]
    rule_id = rule["SecurityGroupRuleId"]
    ec2.modify_security_group_rules(GroupId=gid, SecurityGroupRules=[{"SecurityGroupRuleId": rule_id,
                                    "SecurityGroupRule": {"IpProtocol": "tcp", "FromPort": 2222, "ToPort": 2223,
                                                          "CidrIpv4": "198.51.100.0/24", "Description": "moved"}}])
    (now,) = ec2.describe_security_group_rules(SecurityGroupRuleIds=[rule_id])["SecurityGroupRules"]
    assert (now["FromPort"], now["ToPort"], now["CidrIpv4"], now["Description"]) == (2222, 2223, "198.51.100.0/24",
                                                                                     "moved")
    ec2.modify_security_group_rules(GroupId=gid, SecurityGroupRules=[{"SecurityGroupRuleId": rule_id,
                                    "SecurityGroupRule": {"IpProtocol": "udp", "FromPort": 53, "ToPort": 53,
                                                          "ReferencedGroupId": src}}])
    (now,) = ec2.describe_security_group_rules(SecurityGroupRuleIds=[rule_id])["SecurityGroupRules"]
    assert now["IpProtocol"] == "udp" and now["ReferencedGroupInfo"]["GroupId"] == src and "CidrIpv4" not in now
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ec2.modify_security_group_rules(GroupId=gid, SecurityGroupRules=[
            {"SecurityGroupRuleId": "sgr-0123456789abcdef0",
             "SecurityGroupRule": {"IpProtocol": "tcp", "FromPort": 1, "ToPort": 1, "CidrIpv4": "0.0.0.0/0"}}])
    assert error(exc)[0] == "InvalidSecurityGroupRuleId.NotFound"
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ec2.modify_security_group_rules(GroupId=gid, SecurityGroupRules=[{"SecurityGroupRuleId": "rule-1",
                                        "SecurityGroupRule": {"IpProtocol": "tcp", "FromPort": 1, "ToPort": 1,
                                                              "CidrIpv4": "0.0.0.0/0"}}])
    assert error(exc)[0] == "InvalidSecurityGroupRuleId.Malformed"


# --- describing -----------------------------------------------------------------------------------

def test_every_describe_security_groups_filter(ec2: Any, box: Box) -> None:
    owner = ec2.describe_security_groups(GroupNames=["default"])["SecurityGroups"][0]["OwnerId"]
    peer = ec2.create_security_group(GroupName="f-peer", Description="peer")["GroupId"]
    gid = ec2.create_security_group(GroupName="f-target", Description="filter target", TagSpecifications=[
        {"ResourceType": "security-group", "Tags": [{"Key": "tier", "Value": "db"}]}])["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=gid, IpPermissions=[
        tcp(5432, "172.16.0.0/12"),
        {"IpProtocol": "udp", "FromPort": 514, "ToPort": 515, "UserIdGroupPairs": [{"GroupId": peer}]}])
    ec2.authorize_security_group_egress(GroupId=gid, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 25, "ToPort": 25, "UserIdGroupPairs": [{"GroupId": peer}]}])

    def names(name: str, *values: str) -> set[str]:
        """The groups of this test (f-...) that the filter matches; filters are ANDed."""
        found = ec2.describe_security_groups(Filters=[{"Name": name, "Values": list(values)},
                                                      {"Name": "group-name", "Values": ["f-*"]}])["SecurityGroups"]
        return {g["GroupName"] for g in found}
    assert names("description", "filter*") == {"f-target"}
    assert names("group-id", gid) == {"f-target"}
    assert names("group-name", "f-t*") == {"f-target"}
    assert names("group-name", "f-*") == {"f-target", "f-peer"}
    assert "f-target" in names("owner-id", owner)
    assert names("tag:tier", "db") == names("tag-key", "tier") == names("tag-value", "db") == {"f-target"}
    assert names("vpc-id", "*") == set()  # no group is in a VPC
    assert names("ip-permission.cidr", "172.16.0.0/12") == {"f-target"}
    assert names("ip-permission.from-port", "514") == names("ip-permission.to-port", "515") == {"f-target"}
    assert names("ip-permission.protocol", "udp") == names("ip-permission.protocol", "17") == {"f-target"}
    assert names("ip-permission.group-id", peer) == names("ip-permission.group-name", "f-peer") == {"f-target"}
    assert "f-target" in names("ip-permission.user-id", owner)
    assert names("ip-permission.ipv6-cidr", "*") == names("ip-permission.prefix-list-id", "*") == set()
    assert names("egress.ip-permission.group-id", peer) == {"f-target"}
    assert names("egress.ip-permission.from-port", "25") == names("egress.ip-permission.to-port", "25") == {"f-target"}
    assert names("egress.ip-permission.protocol", "tcp") == names("egress.ip-permission.group-name", "f-peer") \
        == {"f-target"}
    assert "f-target" in names("egress.ip-permission.cidr", "0.0.0.0/0")
    assert "f-target" in names("egress.ip-permission.user-id", owner)
    assert names("ip-permission.from-port", "25") == set()  # egress rules are not ingress ones
    # EC2 answers an unknown filter name with InvalidParameterValue
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        names("ip-permission.colour", "red")
    assert error(exc) == ("InvalidParameterValue", "The filter 'ip-permission.colour' is invalid")
    assert group(ec2, gid)["Tags"] == [{"Key": "tier", "Value": "db"}]


def test_describe_security_group_rules_by_id_filter_and_tag(ec2: Any) -> None:
    gid = ec2.create_security_group(GroupName="r-tags", Description="rules with tags")["GroupId"]
    (rule,) = ec2.authorize_security_group_ingress(GroupId=gid, IpPermissions=[tcp(8443, "0.0.0.0/0")],
                                                   TagSpecifications=[{"ResourceType": "security-group-rule",
                                                                       "Tags": [{"Key": "ticket", "Value": "42"}]}])[
        "SecurityGroupRules"]
    assert rule["Tags"] == [{"Key": "ticket", "Value": "42"}]
    rule_id = rule["SecurityGroupRuleId"]

    def found(*filters: tuple[str, str]) -> list[str]:
        got = ec2.describe_security_group_rules(Filters=[{"Name": n, "Values": [v]} for n, v in filters])
        return [r["SecurityGroupRuleId"] for r in got["SecurityGroupRules"]]
    assert found(("security-group-rule-id", rule_id)) == [rule_id]
    assert found(("tag:ticket", "42")) == [rule_id]
    assert found(("group-id", gid), ("tag:ticket", "4*")) == [rule_id]
    ec2.create_tags(Resources=[rule_id], Tags=[{"Key": "owner", "Value": "ops"}])
    assert found(("tag:owner", "ops")) == [rule_id]
    tags = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [rule_id]}])["Tags"]
    assert {t["ResourceType"] for t in tags} == {"security-group-rule"}
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        found(("ip-protocol", "tcp"))
    assert error(exc)[0] == "InvalidParameterValue"
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ec2.describe_security_group_rules(SecurityGroupRuleIds=["sgr-0123456789abcdef0"])
    assert error(exc) == ("InvalidSecurityGroupRuleId.NotFound",
                          "The security group rule ID 'sgr-0123456789abcdef0' does not exist")
    # a revoked rule's tags go with it
    ec2.revoke_security_group_ingress(GroupId=gid, SecurityGroupRuleIds=[rule_id])
    assert ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [rule_id]}])["Tags"] == []


def test_paging_where_ec2_pages(ec2: Any) -> None:
    for n in range(7):
        ec2.create_security_group(GroupName=f"page-{n}", Description="paged")
    pages = list(ec2.get_paginator("describe_security_groups").paginate(
        Filters=[{"Name": "group-name", "Values": ["page-*"]}], PaginationConfig={"PageSize": 5}))
    assert [len(p["SecurityGroups"]) for p in pages] == [5, 2]
    assert sorted(g["GroupName"] for p in pages for g in p["SecurityGroups"]) == [f"page-{n}" for n in range(7)]
    ids = [g["GroupId"] for p in pages for g in p["SecurityGroups"]]
    pages = list(ec2.get_paginator("describe_security_group_rules").paginate(
        Filters=[{"Name": "group-id", "Values": ids}], PaginationConfig={"PageSize": 5}))
    assert [len(p["SecurityGroupRules"]) for p in pages] == [5, 2]
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ec2.describe_security_groups(MaxResults=5, NextToken="not-a-token")
    assert error(exc)[0] == "InvalidPaginationToken"


def test_create_takes_tags_and_refuses_a_vpc(ec2: Any) -> None:
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ec2.create_security_group(GroupName="in-vpc", Description="x", VpcId="vpc-12345678")
    assert error(exc) == ("InvalidVpcID.NotFound", "The vpc ID 'vpc-12345678' does not exist")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ec2.create_security_group(GroupName="mistagged", Description="x", TagSpecifications=[
            {"ResourceType": "instance", "Tags": [{"Key": "a", "Value": "b"}]}])
    assert error(exc)[0] == "InvalidParameterValue"
    assert ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["in-vpc", "mistagged"]}])[
        "SecurityGroups"] == []


# --- another account ------------------------------------------------------------------------------

def test_another_accounts_rules_are_as_if_never_made(ec2: Any, other: Any) -> None:
    gid = ec2.create_security_group(GroupName="secret", Description="secret")["GroupId"]
    (rule,) = ec2.authorize_security_group_ingress(GroupId=gid, IpPermissions=[tcp(1, "0.0.0.0/0")])[
        "SecurityGroupRules"]
    theirs = rule["SecurityGroupRuleId"]
    never = "sgr-00000000000000000"
    own = other.create_security_group(GroupName="own", Description="own")["GroupId"]
    attempts = [
        (other.describe_security_group_rules, lambda x: {"SecurityGroupRuleIds": [x]}),
        (other.revoke_security_group_ingress, lambda x: {"GroupId": own, "SecurityGroupRuleIds": [x]}),
        (other.update_security_group_rule_descriptions_ingress,
         lambda x: {"GroupId": own, "SecurityGroupRuleDescriptions": [{"SecurityGroupRuleId": x, "Description": "y"}]}),
        (other.modify_security_group_rules, lambda x: {"GroupId": own, "SecurityGroupRules": [
            {"SecurityGroupRuleId": x, "SecurityGroupRule": {"IpProtocol": "tcp", "FromPort": 2, "ToPort": 2,
                                                             "CidrIpv4": "0.0.0.0/0"}}]}),
    ]
    for call, params in attempts:
        answers = []
        for id_ in (theirs, never):
            with pytest.raises(botocore.exceptions.ClientError) as exc:
                call(**params(id_))
            code, message = error(exc)
            assert gid not in message
            answers.append((code, message.replace(id_, "<id>")))
        assert answers[0] == answers[1] and answers[0][0] == "InvalidSecurityGroupRuleId.NotFound", answers
    for call, params in [(other.authorize_security_group_egress,
                          {"GroupId": gid, "IpPermissions": [tcp(2, "0.0.0.0/0")]}),
                         (other.revoke_security_group_egress, {"GroupId": gid, "SecurityGroupRuleIds": [theirs]}),
                         (other.modify_security_group_rules, {"GroupId": gid, "SecurityGroupRules": [
                             {"SecurityGroupRuleId": theirs, "SecurityGroupRule": {
                                 "IpProtocol": "tcp", "FromPort": 2, "ToPort": 2, "CidrIpv4": "0.0.0.0/0"}}]})]:
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            call(**params)
        assert error(exc)[0] == "InvalidGroup.NotFound"
    seen = other.describe_security_group_rules()["SecurityGroupRules"]
    assert theirs not in {r["SecurityGroupRuleId"] for r in seen} and {r["GroupId"] for r in seen} >= {own}
    assert gid not in {r["GroupId"] for r in seen}
    assert [r["SecurityGroupRuleId"] for r in rules_of(ec2, gid) if not r["IsEgress"]] == [theirs]


# --- the store -------------------------------------------------------------------------------------

def test_groups_stored_before_rule_ids_get_them_and_the_egress_rule_once(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "old.db"))
    with store.transaction() as tx:
        tx.put("group", "sg-0000AAAA", "alice", {"group_id": "sg-0000AAAA", "name": "web", "description": "old",
                                                 "rules": [["tcp", 80, 80, "cidr", "0.0.0.0/0"]]})

    def load() -> Any:
        return Groups(store, Ids(store), Accounts(store), Tags(store)).get("alice", "web")
    first = load()
    assert [(r.egress, r.protocol, r.low, r.peer) for r in first.rules] == [(False, "tcp", 80, "0.0.0.0/0"),
                                                                           (True, "-1", -1, "0.0.0.0/0")]
    assert all(RULE_ID.match(r.rule_id) for r in first.rules)
    assert load().rules == first.rules
    store.close()


# --- the aws CLI -----------------------------------------------------------------------------------

def test_aws_cli_security_groups(box: Box, tmp_path: Path) -> None:
    access, secret = box.keys("cli-groups")
    env = dict(os.environ, AWS_ACCESS_KEY_ID=access, AWS_SECRET_ACCESS_KEY=secret, AWS_DEFAULT_REGION="eucalyptus",
               AWS_CONFIG_FILE=str(tmp_path / "none"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"))

    def aws(*args: str) -> Any:
        done = subprocess.run([sys.executable, "-m", "awscli", "--endpoint-url", box.url, "--output", "json",
                               "ec2", *args], env=env, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout) if done.stdout.strip() else None

    gid = aws("create-security-group", "--group-name", "cli", "--description", "from the cli",
              "--tag-specifications", "ResourceType=security-group,Tags=[{Key=via,Value=cli}]")["GroupId"]
    added = aws("authorize-security-group-ingress", "--group-id", gid, "--ip-permissions",
                "IpProtocol=tcp,FromPort=22,ToPort=22,IpRanges=[{CidrIp=203.0.113.0/24,Description=bastion}]")
    (rule,) = added["SecurityGroupRules"]
    aws("authorize-security-group-egress", "--group-id", gid, "--ip-permissions",
        "IpProtocol=udp,FromPort=53,ToPort=53,IpRanges=[{CidrIp=10.0.0.2/32}]")
    rules = aws("describe-security-group-rules", "--filters", f"Name=group-id,Values={gid}")["SecurityGroupRules"]
    assert sorted((r["IsEgress"], r["IpProtocol"]) for r in rules) == [(False, "tcp"), (True, "-1"), (True, "udp")]
    aws("update-security-group-rule-descriptions-ingress", "--group-id", gid, "--security-group-rule-descriptions",
        f"SecurityGroupRuleId={rule['SecurityGroupRuleId']},Description=jump host")
    described = aws("describe-security-groups", "--filters", "Name=tag:via,Values=cli")["SecurityGroups"]
    assert [g["GroupId"] for g in described] == [gid]
    assert described[0]["IpPermissions"][0]["IpRanges"] == [{"CidrIp": "203.0.113.0/24", "Description": "jump host"}]
    aws("revoke-security-group-ingress", "--group-id", gid, "--security-group-rule-ids", rule["SecurityGroupRuleId"])
    aws("delete-security-group", "--group-id", gid)
    assert aws("describe-security-groups", "--filters", "Name=tag:via,Values=cli")["SecurityGroups"] == []
