"""The policy engine: decisions per second for a user with 10 policies of 10 statements each,
compiled (``euca.auth.policy.authorize``) beside the plain loop over the same JSON
(``reference_authorize``), on the same requests in the same run."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import orjson

from bench.table import Row
from euca.auth.policy import (
    CURRENT_TIME,
    INSTANCE_TYPE,
    SOURCE_IP,
    Principal,
    authorize,
    compile_policy,
    reference_authorize,
)

ACCOUNT = "123456789012"
SERVICES = ("ec2", "iam", "s3")
VERBS = ("Describe", "Create", "Delete", "Get", "Put", "List", "Run", "Terminate", "Modify", "Attach")


def documents() -> list[dict[str, Any]]:
    """Ten policies of ten statements, no two alike: action and resource patterns, NotAction,
    NotResource, and conditions on the source address, the time and the instance type."""
    docs = []
    for p in range(10):
        statements: list[dict[str, Any]] = []
        for s in range(10):
            service, verb = SERVICES[(p + s) % 3], VERBS[s]
            statement: dict[str, Any] = {
                "Effect": "Deny" if s in (3, 7) else "Allow",
                "Action": [f"{service}:{verb}{p}*", f"{service}:{verb}Thing{s}"],
                "Resource": f"arn:aws:{service}:*:{ACCOUNT}:thing{p}/*",
            }
            if s == 1:
                statement["Condition"] = {"IpAddress": {"aws:SourceIp": [f"10.{p}.0.0/16", f"192.168.{p}.0/24"]}}
            elif s == 2:
                statement["Condition"] = {"DateLessThan": {"aws:CurrentTime": "2100-01-01T00:00:00Z"}}
            elif s == 3:
                statement["Condition"] = {"NotIpAddress": {"aws:SourceIp": f"172.16.{p}.0/24"}}
            elif s == 4:
                statement["Condition"] = {"StringLike": {"ec2:InstanceType": [f"m{p}.*", "t1.micro"]}}
            elif s == 5:
                del statement["Action"]
                statement["NotAction"] = [f"iam:*{p}", f"s3:Put{p}*"]
                statement["Resource"] = f"arn:aws:ec2:*:{ACCOUNT}:volume/vol-{p}*"
            elif s == 6:
                del statement["Resource"]
                statement["NotResource"] = f"arn:aws:s3:::secret{p}/*"
            statements.append(statement)
        docs.append({"Version": "2012-10-17", "Statement": statements})
    return docs


def requests() -> list[tuple[str, str, dict[str, Any]]]:
    """A mix of allowed, explicitly denied and implicitly denied requests."""
    out = []
    for i in range(64):
        p, s = i % 10, (i * 7) % 10
        service, verb = SERVICES[(p + s) % 3], VERBS[s]
        action = f"{service}:{verb}{p}Instances" if i % 3 else f"{service}:{verb}Thing{s}"
        resource = f"arn:aws:{service}:eucalyptus:{ACCOUNT}:thing{p if i % 5 else p + 1}/x-{i}"
        context = {SOURCE_IP: f"10.{i % 12}.1.{i}", CURRENT_TIME: time.time(), INSTANCE_TYPE: "m1.small"}
        out.append((action, resource, context))
    return out


def _rate(decide: Callable[[str, str, dict[str, Any]], bool], work: list[tuple[str, str, dict[str, Any]]],
          rounds: int) -> float:
    started = time.perf_counter()
    for _ in range(rounds):
        for action, resource, context in work:
            decide(action, resource, context)
    return rounds * len(work) / (time.perf_counter() - started)


def measure(quick: bool = False) -> tuple[float, float, int, int]:
    """(compiled decisions/s, plain decisions/s, allowed, denied) as medians of 3."""
    docs = documents()
    principal = Principal(ACCOUNT, [compile_policy(orjson.dumps(d).decode()) for d in docs])
    work = requests()
    compiled = [authorize(principal, a, r, c) for a, r, c in work]
    plain = [reference_authorize(docs, [], a, r, c) for a, r, c in work]
    assert compiled == plain, "the compiled engine and the plain loop disagree"
    fast_rounds, slow_rounds = (200, 4) if quick else (2000, 40)
    fast = statistics.median(_rate(lambda a, r, c: authorize(principal, a, r, c), work, fast_rounds)
                             for _ in range(3))
    slow = statistics.median(_rate(lambda a, r, c: reference_authorize(docs, [], a, r, c), work, slow_rounds)
                             for _ in range(3))
    return fast, slow, sum(compiled), len(compiled) - sum(compiled)


def rows(quick: bool = False) -> list[Row]:
    fast, slow, allowed, denied = measure(quick)
    return [Row(kernel="policy decision, compiled vs plain loop over the JSON",
                size=f"10 policies x 10 statements, {allowed}/{allowed + denied} allowed, "
                     f"{1e6 / fast:.2f} us each",
                cython=fast, python=slow, unit="decisions/s")]
