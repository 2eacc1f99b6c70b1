"""The policy engine: a table of allow/deny cases for EC2 and IAM actions, each decided by the
compiled engine and by the plain loop over the JSON, which must agree; validation; quotas."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from euca.auth.policy import (
    CURRENT_TIME,
    INSTANCE_TYPE,
    SOURCE_IP,
    PolicyError,
    Principal,
    authorize,
    compile_policy,
    limit,
    reference_authorize,
)

ACCT = "123456789012"
INSTANCE = f"arn:aws:ec2:eucalyptus:{ACCT}:instance/i-12345678"
ALICE = f"arn:aws:iam::{ACCT}:user/alice"


def doc(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(action: Any, resource: Any = "*", **more: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **more}


def deny(action: Any, resource: Any = "*", **more: Any) -> dict[str, Any]:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **more}


DESCRIBE = doc(allow("ec2:Describe*"))
EVERYTHING = doc(allow("*"))
NO_TERMINATE = doc(deny("ec2:TerminateInstances"))
OFFICE = doc(allow("ec2:*", Condition={"IpAddress": {"aws:SourceIp": "10.1.0.0/16"}}))
SMALL_ONLY = doc(allow("ec2:RunInstances", Condition={"StringLike": {"ec2:InstanceType": ["m1.*", "t1.micro"]}}))
UNTIL_2000 = doc(allow("ec2:*", Condition={"DateLessThan": {"aws:CurrentTime": "2000-01-01T00:00:00Z"}}))
AFTER_2000 = doc(allow("ec2:*", Condition={"DateGreaterThan": {"aws:CurrentTime": "2000-01-01T00:00:00Z"}}))
ALL_BUT_IAM = doc({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"})
NOT_MINE = doc({"Effect": "Allow", "Action": "ec2:*", "NotResource": f"arn:aws:ec2:*:{ACCT}:instance/i-0*"})
SELF_SERVICE = doc(allow(["iam:*AccessKey*", "iam:GetUser"], ALICE))
OUTSIDE_DENY = doc(deny("*", Condition={"NotIpAddress": {"aws:SourceIp": ["10.0.0.0/8"]}}))

HOME = {SOURCE_IP: "10.1.2.3", INSTANCE_TYPE: "m1.small"}
AWAY = {SOURCE_IP: "192.168.7.7", INSTANCE_TYPE: "c1.xlarge"}

# (case, user and group documents, action, resource, context, expected)
CASES: list[tuple[str, list[dict[str, Any]], str, str, dict[str, Any], bool]] = [
    ("no policy: implicit deny", [], "ec2:DescribeInstances", "*", HOME, False),
    ("wildcard action allows", [DESCRIBE], "ec2:DescribeInstances", "*", HOME, True),
    ("actions ignore case", [DESCRIBE], "EC2:describeimages", "*", HOME, True),
    ("wildcard action does not reach others", [DESCRIBE], "ec2:RunInstances", "*", HOME, False),
    ("* allows IAM too", [EVERYTHING], "iam:CreateUser", ALICE, HOME, True),
    ("deny overrides allow", [EVERYTHING, NO_TERMINATE], "ec2:TerminateInstances", INSTANCE, HOME, False),
    ("deny leaves the rest", [EVERYTHING, NO_TERMINATE], "ec2:StopInstances", INSTANCE, HOME, True),
    ("source address inside", [OFFICE], "ec2:RunInstances", "*", HOME, True),
    ("source address outside", [OFFICE], "ec2:RunInstances", "*", AWAY, False),
    ("no source address: IpAddress fails", [OFFICE], "ec2:RunInstances", "*", {}, False),
    ("instance type like m1.*", [SMALL_ONLY], "ec2:RunInstances", "*", HOME, True),
    ("instance type not allowed", [SMALL_ONLY], "ec2:RunInstances", "*", AWAY, False),
    ("before a date in the past", [UNTIL_2000], "ec2:DescribeInstances", "*", HOME, False),
    ("after a date in the past", [AFTER_2000], "ec2:DescribeInstances", "*", HOME, True),
    ("fixed time in the context", [UNTIL_2000], "ec2:DescribeInstances", "*", {CURRENT_TIME: 900_000_000}, True),
    ("NotAction allows what it does not name", [ALL_BUT_IAM], "ec2:RunInstances", "*", HOME, True),
    ("NotAction leaves out what it names", [ALL_BUT_IAM], "iam:CreateUser", ALICE, HOME, False),
    ("NotResource allows other resources", [NOT_MINE], "ec2:TerminateInstances", INSTANCE, HOME, True),
    ("NotResource leaves out its own", [NOT_MINE], "ec2:TerminateInstances",
     f"arn:aws:ec2:eucalyptus:{ACCT}:instance/i-0abc", HOME, False),
    ("resource ARN matches", [SELF_SERVICE], "iam:CreateAccessKey", ALICE, HOME, True),
    ("resource ARN of another user", [SELF_SERVICE], "iam:CreateAccessKey",
     f"arn:aws:iam::{ACCT}:user/bob", HOME, False),
    ("a group's deny outside the network", [EVERYTHING, OUTSIDE_DENY], "ec2:RunInstances", "*", AWAY, False),
    ("a group's deny inside the network", [EVERYTHING, OUTSIDE_DENY], "ec2:RunInstances", "*", HOME, True),
]


@pytest.mark.parametrize(("case", "documents", "action", "resource", "context", "expected"), CASES,
                         ids=[c[0] for c in CASES])
def test_decisions(case: str, documents: list[dict[str, Any]], action: str, resource: str,
                   context: dict[str, Any], expected: bool) -> None:
    principal = Principal(ACCT, [compile_policy(json.dumps(d)) for d in documents])
    assert authorize(principal, action, resource, context) is expected
    assert reference_authorize(documents, [], action, resource, context) is expected


def test_administrators_and_account_policies() -> None:
    account_deny = compile_policy(json.dumps(NO_TERMINATE))
    admin = Principal(ACCT, [], [account_deny], account_admin=True)
    assert authorize(admin, "ec2:RunInstances", "*")
    assert not authorize(admin, "ec2:TerminateInstances", INSTANCE)
    system = Principal(ACCT, [], [account_deny], system_admin=True)
    assert authorize(system, "ec2:TerminateInstances", INSTANCE)
    user = Principal(ACCT, [compile_policy(json.dumps(EVERYTHING))], [account_deny])
    assert not authorize(user, "ec2:TerminateInstances", INSTANCE)
    assert authorize(user, "ec2:StopInstances", INSTANCE)


@pytest.mark.parametrize(("document", "why"), [
    ("not json", "Syntax"),
    ('{"Statement": []}', "Statement"),
    ('{"Version": "2020-01-01", "Statement": {"Effect": "Allow", "Action": "*", "Resource": "*"}}', "Version"),
    ('{"Statement": {"Effect": "Maybe", "Action": "*", "Resource": "*"}}', "Effect"),
    ('{"Statement": {"Effect": "Allow", "Resource": "*"}}', "Action"),
    ('{"Statement": {"Effect": "Allow", "Action": "RunInstances", "Resource": "*"}}', "service:action"),
    ('{"Statement": {"Effect": "Allow", "Action": "ec2:*"}}', "Resource"),
    ('{"Statement": {"Effect": "Allow", "Action": "*", "Resource": "*", "Principal": "*"}}', "principal"),
    ('{"Statement": {"Effect": "Allow", "Action": "*", "Resource": "*", '
     '"Condition": {"IpAddress": {"aws:SourceIp": "nonsense"}}}}', "IpAddress"),
    ('{"Statement": {"Effect": "Allow", "Action": "*", "Resource": "*", '
     '"Condition": {"Sometimes": {"aws:SourceIp": "1.2.3.4"}}}}', "operator"),
    ('{"Statement": {"Effect": "Limit", "Action": "ec2:RunInstances", "Resource": "*"}}', "quota"),
])
def test_malformed_documents_are_refused(document: str, why: str) -> None:
    with pytest.raises(PolicyError, match=why):
        compile_policy(document)


def limit_doc(action: str, key: str, n: int) -> str:
    return json.dumps(doc({"Effect": "Limit", "Action": action, "Resource": "*",
                           "Condition": {"NumericLessThanEquals": {key: str(n)}}}))


def test_the_tightest_quota_holds() -> None:
    account = compile_policy(limit_doc("ec2:RunInstances", "ec2:quota-vminstancenumber", 5))
    group = compile_policy(limit_doc("ec2:*", "ec2:quota-vminstancenumber", 3))
    user = Principal(ACCT, [group], [account])
    assert limit(user, "ec2:RunInstances", "ec2:quota-vminstancenumber") == 3
    assert limit(user, "ec2:AllocateAddress", "ec2:quota-addressnumber") is None
    admin = Principal(ACCT, [group], [account], account_admin=True)
    assert limit(admin, "ec2:RunInstances", "ec2:quota-vminstancenumber") == 5
    assert limit(Principal(ACCT, [], [account], system_admin=True), "ec2:RunInstances",
                 "ec2:quota-vminstancenumber") is None


ACTIONS = ["ec2:RunInstances", "ec2:DescribeInstances", "ec2:TerminateInstances", "iam:CreateUser", "s3:GetObject"]
PATTERNS = ["*", "ec2:*", "ec2:Describe*", "ec2:?unInstances", "iam:*User", "s3:Get*", "ec2:TerminateInstances"]
RESOURCES = ["*", INSTANCE, ALICE, f"arn:aws:ec2:*:{ACCT}:instance/*", "arn:aws:s3:::bucket/*"]
CONDITIONS = [None, {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}, {"NotIpAddress": {"aws:SourceIp": "10.1.0.0/16"}},
              {"StringEquals": {"ec2:InstanceType": "m1.small"}}, {"StringNotLike": {"ec2:InstanceType": "c1.*"}},
              {"DateGreaterThan": {"aws:CurrentTime": "2001-01-01T00:00:00Z"}}]


@st.composite
def statements(draw: st.DrawFn) -> dict[str, Any]:
    statement: dict[str, Any] = {"Effect": draw(st.sampled_from(["Allow", "Deny"]))}
    actions = draw(st.lists(st.sampled_from(PATTERNS), min_size=1, max_size=3))
    statement["NotAction" if draw(st.booleans()) and "*" not in actions else "Action"] = actions
    resources = draw(st.lists(st.sampled_from(RESOURCES), min_size=1, max_size=2))
    statement["NotResource" if draw(st.integers(0, 4)) == 0 else "Resource"] = resources
    condition = draw(st.sampled_from(CONDITIONS))
    if condition is not None:
        statement["Condition"] = condition
    return statement


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(statements(), min_size=1, max_size=4).map(lambda s: doc(*s)), max_size=4),
       st.sampled_from(ACTIONS), st.sampled_from([*RESOURCES[1:], "arn:aws:ec2:x:1:volume/v"]),
       st.sampled_from([{}, HOME, AWAY, {SOURCE_IP: "10.1.9.9"}]))
def test_the_compiled_engine_decides_as_the_plain_loop(documents: list[dict[str, Any]], action: str,
                                                       resource: str, context: dict[str, Any]) -> None:
    principal = Principal(ACCT, [compile_policy(json.dumps(d)) for d in documents])
    assert authorize(principal, action, resource, context) == reference_authorize(documents, [], action, resource,
                                                                                  context)
