"""IAM (Euare) over boto3 and the aws CLI against a real server, and the policies and quotas it
sets enforced on EC2 requests."""

from __future__ import annotations

import datetime
import http.client
import json
import os
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from euca.iam import check_password
from tests.ec2_server import Box, running_box, until


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    with running_box(tmp_path_factory.mktemp("iam")) as b:
        yield b


@pytest.fixture(scope="module")
def emi(box: Box) -> str:
    return box.image()


def iam_for(box: Box, access: str, secret: str) -> Any:
    return boto3.client("iam", endpoint_url=box.url + "/services/Euare", aws_access_key_id=access,
                        aws_secret_access_key=secret, region_name="eucalyptus")


def ec2_for(box: Box, access: str, secret: str) -> Any:
    return boto3.client("ec2", endpoint_url=box.url, aws_access_key_id=access, aws_secret_access_key=secret,
                        region_name="eucalyptus")


def error(call: Any, *args: Any, **kw: Any) -> tuple[str, int]:
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        call(*args, **kw)
    return exc.value.response["Error"]["Code"], exc.value.response["ResponseMetadata"]["HTTPStatusCode"]


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def new_user(box: Box, account: str, name: str, *documents: str) -> tuple[Any, Any]:
    """A user in ``account`` with ``documents`` as inline policies: its (iam, ec2) clients."""
    admin = iam_for(box, *box.keys(account))
    admin.create_user(UserName=name)
    for n, document in enumerate(documents):
        admin.put_user_policy(UserName=name, PolicyName=f"p{n}", PolicyDocument=document)
    key = admin.create_access_key(UserName=name)["AccessKey"]
    return iam_for(box, key["AccessKeyId"], key["SecretAccessKey"]), ec2_for(box, key["AccessKeyId"],
                                                                            key["SecretAccessKey"])


def test_users(box: Box) -> None:
    iam = iam_for(box, *box.keys("users"))
    me = iam.get_user()["User"]
    assert me["UserName"] == "admin" and me["Arn"].endswith(":user/admin")
    made = iam.create_user(UserName="Alice", Path="/dev/")["User"]
    assert made["Arn"] == f"arn:aws:iam::{box.cloud.accounts.get('users').account_id}:user/dev/Alice"  # type: ignore[union-attr]
    assert made["UserId"].startswith("AIDA")
    assert error(iam.create_user, UserName="alice") == ("EntityAlreadyExists", 409)
    assert error(iam.create_user, UserName="bad name!") == ("ValidationError", 400)
    assert iam.get_user(UserName="alice")["User"]["UserName"] == "Alice"
    assert [u["UserName"] for u in iam.list_users()["Users"]] == ["admin", "Alice"]
    assert [u["UserName"] for u in iam.list_users(PathPrefix="/dev/")["Users"]] == ["Alice"]
    page = iam.list_users(MaxItems=1)
    assert page["IsTruncated"] and len(page["Users"]) == 1
    assert [u["UserName"] for u in iam.list_users(Marker=page["Marker"])["Users"]] == ["Alice"]
    iam.update_user(UserName="Alice", NewUserName="alice2", NewPath="/ops/")
    assert iam.get_user(UserName="alice2")["User"]["Path"] == "/ops/"
    assert error(iam.get_user, UserName="Alice") == ("NoSuchEntity", 404)
    iam.put_user_policy(UserName="alice2", PolicyName="p", PolicyDocument=policy(
        {"Effect": "Allow", "Action": "ec2:*", "Resource": "*"}))
    assert error(iam.delete_user, UserName="alice2") == ("DeleteConflict", 409)
    iam.delete_user_policy(UserName="alice2", PolicyName="p")
    iam.delete_user(UserName="alice2")
    assert error(iam.delete_user, UserName="admin") == ("DeleteConflict", 409)
    assert error(iam.delete_user, UserName="nobody") == ("NoSuchEntity", 404)


def test_groups(box: Box) -> None:
    iam = iam_for(box, *box.keys("groups"))
    iam.create_user(UserName="carol")
    group = iam.create_group(GroupName="devs")["Group"]
    assert group["GroupId"].startswith("AGPA") and group["Arn"].endswith(":group/devs")
    assert error(iam.create_group, GroupName="DEVS") == ("EntityAlreadyExists", 409)
    iam.add_user_to_group(GroupName="devs", UserName="carol")
    got = iam.get_group(GroupName="devs")
    assert [u["UserName"] for u in got["Users"]] == ["carol"]
    assert [g["GroupName"] for g in iam.list_groups_for_user(UserName="carol")["Groups"]] == ["devs"]
    assert [g["GroupName"] for g in iam.list_groups()["Groups"]] == ["devs"]
    assert error(iam.delete_group, GroupName="devs") == ("DeleteConflict", 409)
    iam.put_group_policy(GroupName="devs", PolicyName="gp", PolicyDocument=policy(
        {"Effect": "Allow", "Action": "ec2:Describe*", "Resource": "*"}))
    assert iam.list_group_policies(GroupName="devs")["PolicyNames"] == ["gp"]
    assert iam.get_group_policy(GroupName="devs", PolicyName="gp")["PolicyDocument"]["Statement"][0]["Action"] == \
        "ec2:Describe*"
    assert iam.list_attached_group_policies(GroupName="devs")["AttachedPolicies"] == []
    iam.delete_group_policy(GroupName="devs", PolicyName="gp")
    iam.remove_user_from_group(GroupName="devs", UserName="carol")
    assert error(iam.remove_user_from_group, GroupName="devs", UserName="carol") == ("NoSuchEntity", 404)
    iam.delete_group(GroupName="devs")
    assert error(iam.get_group, GroupName="devs") == ("NoSuchEntity", 404)


def test_access_keys(box: Box) -> None:
    iam = iam_for(box, *box.keys("keys"))
    iam.create_user(UserName="dave")
    first = iam.create_access_key(UserName="dave")["AccessKey"]
    assert first["Status"] == "Active" and len(first["SecretAccessKey"]) == 40
    iam.create_access_key(UserName="dave")
    assert error(iam.create_access_key, UserName="dave") == ("LimitExceeded", 409)
    listed = iam.list_access_keys(UserName="dave")["AccessKeyMetadata"]
    assert {k["AccessKeyId"] for k in listed} >= {first["AccessKeyId"]} and len(listed) == 2
    assert iam.get_access_key_last_used(AccessKeyId=first["AccessKeyId"])["AccessKeyLastUsed"]["ServiceName"] == "N/A"
    dave = ec2_for(box, first["AccessKeyId"], first["SecretAccessKey"])
    assert error(dave.describe_instances)[0] == "UnauthorizedOperation"
    used = iam.get_access_key_last_used(AccessKeyId=first["AccessKeyId"])
    assert used["UserName"] == "dave" and used["AccessKeyLastUsed"]["ServiceName"] == "ec2"
    iam.update_access_key(UserName="dave", AccessKeyId=first["AccessKeyId"], Status="Inactive")
    assert error(dave.describe_instances)[0] == "AuthFailure"
    assert error(iam_for(box, first["AccessKeyId"], first["SecretAccessKey"]).get_user) == \
        ("InvalidClientTokenId", 403)
    iam.delete_access_key(UserName="dave", AccessKeyId=first["AccessKeyId"])
    assert error(iam.delete_access_key, UserName="dave", AccessKeyId=first["AccessKeyId"]) == ("NoSuchEntity", 404)
    # the caller's own keys when no user is named: the account's keys are its admin's
    assert {k["AccessKeyId"] for k in iam.list_access_keys()["AccessKeyMetadata"]} == {box.keys("keys")[0]}
    wrong = iam_for(box, box.keys("keys")[0], "not-the-secret")
    assert error(wrong.get_user) == ("SignatureDoesNotMatch", 403)


def test_login_profiles_keep_only_a_hash(box: Box) -> None:
    iam = iam_for(box, *box.keys("logins"))
    iam.create_user(UserName="erin")
    profile = iam.create_login_profile(UserName="erin", Password="correct horse", PasswordResetRequired=True)
    assert profile["LoginProfile"]["PasswordResetRequired"] is True
    assert error(iam.create_login_profile, UserName="erin", Password="another one") == ("EntityAlreadyExists", 409)
    assert error(iam.update_login_profile, UserName="erin", Password="short") == ("PasswordPolicyViolation", 400)
    iam.update_login_profile(UserName="erin", PasswordResetRequired=False)
    assert iam.get_login_profile(UserName="erin")["LoginProfile"]["PasswordResetRequired"] is False
    stored = box.cloud.accounts.user("logins", "erin").login
    assert stored is not None and stored["hash"].startswith("$argon2id$") and "correct horse" not in str(stored)
    assert check_password(stored["hash"], "correct horse") and not check_password(stored["hash"], "wrong horse")
    iam.delete_login_profile(UserName="erin")
    assert error(iam.get_login_profile, UserName="erin") == ("NoSuchEntity", 404)


def _certificate() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "frank")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def test_signing_certificates(box: Box) -> None:
    iam = iam_for(box, *box.keys("certs"))
    iam.create_user(UserName="frank")
    pem = _certificate()
    cert = iam.upload_signing_certificate(UserName="frank", CertificateBody=pem)["Certificate"]
    assert cert["Status"] == "Active" and len(cert["CertificateId"]) == 40
    assert error(iam.upload_signing_certificate, UserName="frank", CertificateBody=pem)[0] == "EntityAlreadyExists"
    assert error(iam.upload_signing_certificate, UserName="frank", CertificateBody="junk" * 10)[0] == \
        "MalformedCertificate"
    iam.update_signing_certificate(UserName="frank", CertificateId=cert["CertificateId"], Status="Inactive")
    assert iam.list_signing_certificates(UserName="frank")["Certificates"][0]["Status"] == "Inactive"
    iam.delete_signing_certificate(UserName="frank", CertificateId=cert["CertificateId"])
    assert iam.list_signing_certificates(UserName="frank")["Certificates"] == []


def test_policies_aliases_and_summary(box: Box) -> None:
    iam = iam_for(box, *box.keys("misc"))
    iam.create_user(UserName="gina")
    assert error(iam.put_user_policy, UserName="gina", PolicyName="p", PolicyDocument="{not json") == \
        ("MalformedPolicyDocument", 400)
    assert error(iam.put_user_policy, UserName="gina", PolicyName="p", PolicyDocument=policy(
        {"Effect": "Allow", "Action": "ec2:*"})) == ("MalformedPolicyDocument", 400)
    assert error(iam.put_user_policy, UserName="gina", PolicyName="big", PolicyDocument=policy(
        *[{"Effect": "Allow", "Action": f"ec2:Describe{n}*", "Resource": "*"} for n in range(60)])) == \
        ("LimitExceeded", 409)
    document = policy({"Effect": "Allow", "Action": "ec2:Describe*", "Resource": "*"})
    iam.put_user_policy(UserName="gina", PolicyName="read", PolicyDocument=document)
    assert iam.get_user_policy(UserName="gina", PolicyName="read")["PolicyDocument"] == json.loads(document)
    assert iam.list_user_policies(UserName="gina")["PolicyNames"] == ["read"]
    assert iam.list_attached_user_policies(UserName="gina")["AttachedPolicies"] == []
    assert error(iam.get_user_policy, UserName="gina", PolicyName="nope") == ("NoSuchEntity", 404)
    iam.create_account_alias(AccountAlias="misc-corp")
    assert iam.list_account_aliases()["AccountAliases"] == ["misc-corp"]
    other = iam_for(box, *box.keys("misc2"))
    assert error(other.create_account_alias, AccountAlias="misc-corp") == ("EntityAlreadyExists", 409)
    iam.delete_account_alias(AccountAlias="misc-corp")
    assert iam.list_account_aliases()["AccountAliases"] == []
    summary = iam.get_account_summary()["SummaryMap"]
    assert summary["Users"] == 2 and summary["UserPolicies"] == 1 and summary["AccessKeysPerUserQuota"] == 2


def test_account_actions_are_the_system_administrators(box: Box) -> None:
    def send(keys: tuple[str, str], **params: str) -> tuple[int, str]:
        """The account actions are Eucalyptus's, not in botocore's model: signed and sent by hand."""
        body = urllib.parse.urlencode({**params, "Version": "2010-05-08"})
        req = AWSRequest("POST", box.url + "/services/Euare", data=body,
                         headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
        SigV4Auth(Credentials(*keys), "iam", "eucalyptus").add_auth(req)
        prepared = req.prepare()
        http = urllib.request.Request(prepared.url, data=body.encode(), headers=dict(prepared.headers), method="POST")
        try:
            with urllib.request.urlopen(http) as answer:
                return int(answer.status), answer.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    status, text = send(box.keys("admin"), Action="CreateAccount", AccountName="made-by-iam")
    assert status == 200 and "<AccountName>made-by-iam</AccountName>" in text
    status, text = send(box.keys("admin"), Action="ListAccounts")
    assert "<AccountName>made-by-iam</AccountName>" in text
    status, text = send(box.keys("users"), Action="ListAccounts")
    assert status == 403 and "<Code>AccessDenied</Code>" in text
    status, text = send(box.keys("admin"), Action="DeleteAccount", AccountName="made-by-iam")
    assert status == 200 and box.cloud.accounts.get("made-by-iam") is None


def test_policies_decide_ec2_and_iam_requests(box: Box, emi: str) -> None:
    iam_admin = iam_for(box, *box.keys("enforce"))
    _, reader = new_user(box, "enforce", "reader", policy({"Effect": "Allow", "Action": "ec2:Describe*",
                                                           "Resource": "*"}))
    reader.describe_instances()
    reader.describe_images()
    assert error(reader.create_key_pair, KeyName="k") == ("UnauthorizedOperation", 403)
    # a deny overrides an allow, and DryRun says so
    _, careful = new_user(box, "enforce", "careful",
                          policy({"Effect": "Allow", "Action": "ec2:*", "Resource": "*"}),
                          policy({"Effect": "Deny", "Action": "ec2:CreateKeyPair", "Resource": "*"}))
    assert error(careful.create_key_pair, KeyName="k", DryRun=True) == ("UnauthorizedOperation", 403)
    assert error(careful.create_security_group, GroupName="g", Description="d", DryRun=True) == \
        ("DryRunOperation", 412)
    # a group's policy counts for its members
    iam_admin.create_group(GroupName="keymakers")
    iam_admin.put_group_policy(GroupName="keymakers", PolicyName="keys", PolicyDocument=policy(
        {"Effect": "Allow", "Action": ["ec2:CreateKeyPair", "ec2:DeleteKeyPair"], "Resource": "*"}))
    _, member = new_user(box, "enforce", "member")
    assert error(member.create_key_pair, KeyName="mk")[0] == "UnauthorizedOperation"
    iam_admin.add_user_to_group(GroupName="keymakers", UserName="member")
    member.create_key_pair(KeyName="mk")
    member.delete_key_pair(KeyName="mk")
    # conditions: the source address (the tests call from 127.0.0.1)
    _, local = new_user(box, "enforce", "local", policy({"Effect": "Allow", "Action": "ec2:DescribeRegions",
                                                         "Resource": "*", "Condition": {
                                                             "IpAddress": {"aws:SourceIp": "127.0.0.0/8"}}}))
    local.describe_regions()
    _, remote = new_user(box, "enforce", "remote", policy({"Effect": "Allow", "Action": "ec2:DescribeRegions",
                                                           "Resource": "*", "Condition": {
                                                               "IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}))
    assert error(remote.describe_regions)[0] == "UnauthorizedOperation"
    # IAM: a user may manage its own keys and nothing else
    own_iam, _ = new_user(box, "enforce", "selfish", policy(
        {"Effect": "Allow", "Action": ["iam:*AccessKey*", "iam:GetUser"],
         "Resource": f"arn:aws:iam::{box.cloud.accounts.get('enforce').account_id}:user/selfish"}))  # type: ignore[union-attr]
    assert own_iam.get_user()["User"]["UserName"] == "selfish"
    assert len(own_iam.list_access_keys()["AccessKeyMetadata"]) == 1
    assert error(own_iam.list_access_keys, UserName="reader") == ("AccessDenied", 403)
    assert error(own_iam.create_user, UserName="x") == ("AccessDenied", 403)
    # the account's admin needs no policy; another account's users do not reach this one
    iam_admin.list_users()


def test_quotas_refuse_exactly_the_request_that_would_exceed_them(box: Box, emi: str) -> None:
    system = box.cloud.accounts
    keys = box.keys("quota")
    system.put_policy("account", "quota", "", "limits", policy(
        {"Effect": "Limit", "Action": "ec2:RunInstances", "Resource": "*",
         "Condition": {"NumericLessThanEquals": {"ec2:quota-vminstancenumber": "3"}}},
        {"Effect": "Limit", "Action": "ec2:AllocateAddress", "Resource": "*",
         "Condition": {"NumericLessThanEquals": {"ec2:quota-addressnumber": "1"}}},
        {"Effect": "Limit", "Action": "ec2:CreateSecurityGroup", "Resource": "*",
         "Condition": {"NumericLessThanEquals": {"ec2:quota-securitygroupnumber": "2"}}},
        {"Effect": "Limit", "Action": ["ec2:CreateKeyPair", "ec2:ImportKeyPair"], "Resource": "*",
         "Condition": {"NumericLessThanEquals": {"ec2:quota-keypairnumber": "1"}}}))
    ec2 = ec2_for(box, *keys)
    ec2.run_instances(ImageId=emi, MinCount=2, MaxCount=2)
    assert error(ec2.run_instances, ImageId=emi, MinCount=2, MaxCount=2)[0] == "InstanceLimitExceeded"
    # what fits of MinCount..MaxCount is launched
    assert len(ec2.run_instances(ImageId=emi, MinCount=1, MaxCount=5)["Instances"]) == 1
    assert error(ec2.run_instances, ImageId=emi, MinCount=1, MaxCount=1)[0] == "InstanceLimitExceeded"
    assert sum(len(r["Instances"]) for r in ec2.describe_instances()["Reservations"]) == 3
    ec2.allocate_address()
    assert error(ec2.allocate_address)[0] == "AddressLimitExceeded"
    assert len(ec2.describe_addresses()["Addresses"]) == 1
    ec2.create_security_group(GroupName="one", Description="d")  # with default: 2
    assert error(ec2.create_security_group, GroupName="two", Description="d")[0] == "SecurityGroupLimitExceeded"
    ec2.create_key_pair(KeyName="only")
    assert error(ec2.create_key_pair, KeyName="second")[0] == "ResourceLimitExceeded"
    assert [k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]] == ["only"]
    # a user's own limit is tighter still, and the system administrator has none
    _, limited = new_user(box, "quota", "limited", policy({"Effect": "Allow", "Action": "ec2:*", "Resource": "*"}),
                          policy({"Effect": "Limit", "Action": "ec2:RunInstances", "Resource": "*",
                                  "Condition": {"NumericLessThanEquals": {"ec2:quota-vminstancenumber": "0"}}}))
    assert error(limited.run_instances, ImageId=emi, MinCount=1, MaxCount=1)[0] == "InstanceLimitExceeded"
    system.put_policy("account", "admin", "", "limits", policy(
        {"Effect": "Limit", "Action": "ec2:CreateKeyPair", "Resource": "*",
         "Condition": {"NumericLessThanEquals": {"ec2:quota-keypairnumber": "0"}}}))
    box.client().create_key_pair(KeyName="sysadmin-key")


def test_the_aws_cli(box: Box, tmp_path: Path) -> None:
    access, secret = box.keys("cli")
    env = dict(os.environ, AWS_ACCESS_KEY_ID=access, AWS_SECRET_ACCESS_KEY=secret, AWS_DEFAULT_REGION="eucalyptus",
               AWS_CONFIG_FILE=str(tmp_path / "none"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"))

    def aws(*args: str, ok: bool = True) -> Any:
        done = subprocess.run([sys.executable, "-m", "awscli", "--endpoint-url", box.url + "/services/Euare",
                               "--output", "json", "iam", *args], env=env, capture_output=True, text=True, timeout=60,
                              check=False)
        assert (done.returncode == 0) == ok, done.stderr
        return json.loads(done.stdout) if ok and done.stdout.strip() else done.stderr

    assert aws("create-user", "--user-name", "hank")["User"]["UserName"] == "hank"
    assert "EntityAlreadyExists" in aws("create-user", "--user-name", "hank", ok=False)
    aws("create-group", "--group-name", "ops")
    aws("add-user-to-group", "--group-name", "ops", "--user-name", "hank")
    assert aws("list-groups-for-user", "--user-name", "hank")["Groups"][0]["GroupName"] == "ops"
    key = aws("create-access-key", "--user-name", "hank")["AccessKey"]
    aws("update-access-key", "--user-name", "hank", "--access-key-id", key["AccessKeyId"], "--status", "Inactive")
    assert aws("list-access-keys", "--user-name", "hank")["AccessKeyMetadata"][0]["Status"] == "Inactive"
    aws("put-user-policy", "--user-name", "hank", "--policy-name", "p", "--policy-document",
        policy({"Effect": "Allow", "Action": "ec2:Describe*", "Resource": "*"}))
    assert aws("get-user-policy", "--user-name", "hank", "--policy-name", "p")["PolicyDocument"]["Statement"]
    assert "MalformedPolicyDocument" in aws("put-user-policy", "--user-name", "hank", "--policy-name", "q",
                                            "--policy-document", "{}", ok=False)
    aws("create-login-profile", "--user-name", "hank", "--password", "a long password")
    assert aws("get-login-profile", "--user-name", "hank")["LoginProfile"]["UserName"] == "hank"
    assert aws("list-users")["Users"][1]["UserName"] == "hank"
    assert "NoSuchEntity" in aws("get-user", "--user-name", "nobody", ok=False)


def test_the_admin_cli_is_applied_by_the_running_server_within_a_second(
        box: Box, emi: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from euca.cli import main
    from tests.test_admin_live import within_a_second

    def cli(*argv: str) -> int:
        return main([*argv, "--data-dir", str(box.data_dir)])

    box.keys("clied")
    assert cli("user", "add", "clied", "ivy") == 0
    _, _, access, secret = capsys.readouterr().out.split()
    ivy = ec2_for(box, access, secret)
    assert within_a_second(lambda: error(ivy.describe_regions))[0] == "UnauthorizedOperation"
    document = tmp_path / "read.json"
    document.write_text(policy({"Effect": "Allow", "Action": "ec2:*", "Resource": "*"}))
    assert cli("policy", "put", "clied", "--user", "ivy", "read", str(document)) == 0
    within_a_second(ivy.describe_regions)
    assert cli("policy", "list", "clied", "--user", "ivy") == 0
    assert capsys.readouterr().out.startswith("read\t")
    quota = tmp_path / "quota.json"
    quota.write_text(policy({"Effect": "Limit", "Action": "ec2:CreateKeyPair", "Resource": "*",
                             "Condition": {"NumericLessThanEquals": {"ec2:quota-keypairnumber": "0"}}}))
    assert cli("policy", "put", "clied", "quotas", str(quota)) == 0

    def refused() -> None:
        assert error(ivy.create_key_pair, KeyName="k")[0] == "ResourceLimitExceeded"
    within_a_second(refused)
    assert cli("policy", "delete", "clied", "quotas") == 0
    within_a_second(lambda: ivy.create_key_pair(KeyName="k"))
    assert cli("user", "keys", "clied", "ivy", "--deactivate", access) == 0

    def gone() -> None:
        assert error(ivy.describe_regions)[0] == "AuthFailure"
    within_a_second(gone)
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert cli("policy", "put", "clied", "--user", "ivy", "bad", str(bad)) == 1
    capsys.readouterr()
    assert cli("user", "list", "clied") == 0
    assert [line.split("\t")[0] for line in capsys.readouterr().out.splitlines()] == ["admin", "ivy"]
    assert cli("user", "delete", "clied", "ivy") == 0
    assert cli("user", "list", "clied") == 0
    assert "ivy" not in capsys.readouterr().out


def test_a_deny_on_one_volume_or_group_holds_however_the_request_names_it(box: Box) -> None:
    owner = box.client("scoped")
    zone = owner.describe_availability_zones()["AvailabilityZones"][0]["ZoneName"]
    kept = owner.create_volume(Size=1, AvailabilityZone=zone)["VolumeId"]
    group = owner.create_security_group(GroupName="kept", Description="kept")["GroupId"]
    account = box.cloud.accounts.get("scoped")
    assert account is not None
    arn = f"arn:aws:ec2:*:{account.account_id}:"
    _, ec2 = new_user(box, "scoped", "limited", policy(
        {"Effect": "Allow", "Action": "ec2:*", "Resource": "*"},
        {"Effect": "Deny", "Action": ["ec2:DeleteVolume", "ec2:DeleteSecurityGroup"],
         "Resource": [f"{arn}volume/{kept}", f"{arn}security-group/{group}"]}))
    assert error(ec2.delete_volume, VolumeId=kept) == ("UnauthorizedOperation", 403)
    assert error(ec2.delete_security_group, GroupId=group) == ("UnauthorizedOperation", 403)
    assert error(ec2.delete_security_group, GroupName="kept") == ("UnauthorizedOperation", 403)
    other = owner.create_volume(Size=1, AvailabilityZone=zone)["VolumeId"]
    until(lambda: {v["State"] for v in owner.describe_volumes(VolumeIds=[kept, other])["Volumes"]} == {"available"})
    ec2.delete_volume(VolumeId=other)  # the allow still covers the rest
    assert [v["VolumeId"] for v in owner.describe_volumes()["Volumes"]] == [kept]


def _announce(box: Box, path: str, length: int) -> tuple[int, bytes]:
    """POST to ``path`` declaring a ``length``-byte body but sending only a few bytes of it: the
    status and the body of the answer, which must come without the rest being sent."""
    conn = http.client.HTTPConnection(urllib.parse.urlsplit(box.url).netloc, timeout=10)
    try:
        conn.putrequest("POST", path)
        conn.putheader("Content-Type", "application/x-www-form-urlencoded")
        conn.putheader("Content-Length", str(length))
        conn.endheaders(b"Action=ListUsers")
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_a_body_larger_than_a_megabyte_is_refused_before_it_is_read_by_iam_as_by_ec2(box: Box) -> None:
    for path in ("/services/Euare", "/"):
        status, body = _announce(box, path, (1 << 20) + 1)
        assert status == 413, (path, body)
        assert b"<Code>RequestEntityTooLarge</Code>" in body, (path, body)
        assert b"Request body is larger than 1048576 bytes" in body, (path, body)
