"""The EC2 API under fuzzing: requests generated from botocore's model (``bench.fuzz``), mutated
and broken on the wire, drawn by hypothesis. Never a 5xx, always a success or a well-formed EC2
error document, the server keeps serving, and a failing request changes nothing.

``python -m bench --only fuzz`` runs the same generator for 100,000 requests."""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from typing import TypeVar
from urllib.parse import quote, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.fuzz import (
    OPERATIONS,
    VERSION,
    Campaign,
    Client,
    Request,
    encode,
    generate,
    malformed,
    valid_params,
    verdict,
)
from euca.api.app import ec2_model
from tests.ec2_server import Box, running_box

T = TypeVar("T")
SETTINGS = settings(max_examples=150, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


class DataChoose:
    """The generator's choices drawn by hypothesis, so a failure shrinks."""

    def __init__(self, data: st.DataObject) -> None:
        self.data = data

    def pick(self, options: Sequence[T]) -> T:
        return self.data.draw(st.sampled_from(options))

    def number(self, low: int, high: int) -> int:
        return self.data.draw(st.integers(low, high))


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    with running_box(tmp_path_factory.mktemp("fuzz"), nodes=2) as b:
        b.image()
        yield b


@pytest.fixture(scope="module")
def campaign(box: Box) -> Iterator[Campaign]:
    url = urlsplit(box.url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    admin = Client(host, port, *box.keys())
    fuzzer = Client(host, port, *box.keys("fuzzer"))
    fuzzer.call("DescribeRegions")  # the account's default group is made on its first request
    c = Campaign([fuzzer, admin], admin)
    yield c
    assert c.alive()
    fuzzer.close()
    admin.close()


def _run(campaign: Campaign, req: Request, who: int) -> None:
    faults, changes = len(campaign.report.faults), len(campaign.report.state_changes)
    campaign.run(req, who, settle_every=1)
    assert campaign.report.faults[faults:] == []
    assert campaign.report.state_changes[changes:] == []


@SETTINGS
@given(data=st.data())
def test_generated_and_mutated_requests(campaign: Campaign, data: st.DataObject) -> None:
    _run(campaign, generate(DataChoose(data), campaign.pool), data.draw(st.sampled_from((0, 1))))


@settings(SETTINGS, max_examples=60)
@given(data=st.data())
def test_requests_broken_on_the_wire(campaign: Campaign, data: st.DataObject) -> None:
    choose = DataChoose(data)
    action = choose.pick(OPERATIONS)
    pairs = valid_params(ec2_model().operation_model(action), campaign.pool, choose)
    _run(campaign, malformed(choose, action, encode([("Action", action), ("Version", VERSION), *pairs])),
         data.draw(st.sampled_from((0, 1))))


# --- what the first campaign against ``euca up`` found --------------------------------------------------

def _material(key: bytes) -> str:
    return "KeyName=k&PublicKeyMaterial=" + quote(base64.b64encode(key).decode(), safe="")


def _ssh_line(kind: bytes, *fields: bytes) -> bytes:
    blob = b"".join(len(f).to_bytes(4, "big") + f for f in (kind, *fields))
    return kind + b" " + base64.b64encode(blob)


FOUND = [
    ("DeleteSecurityGroup", "GroupId.=x", "InvalidParameter"),
    ("CreateTags", "ResourceId.1.=x&Tag.1.Key=k", "InvalidParameter"),
    ("DeleteKeyPair", "KeyName..=x", "InvalidParameter"),
    ("DescribeInstances", "Filter.%C2%B2.Name=tag:a&Filter.%C2%B2.Value.1=b", "InvalidParameter"),
    ("DescribeRegions", "RegionName.%E2%91%A0=eucalyptus", "InvalidParameter"),
    ("ImportKeyPair", _material(b"ssh-foo AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 me@host"), "InvalidKey.Format"),
    ("ImportKeyPair", _material(_ssh_line(b"ecdsa-sha2-nistp999", b"nistp999", b"\x04" + b"\x01" * 64)),
     "InvalidKey.Format"),
    ("ReleaseAddress", "PublicIp=%19", None),
    ("AssociateAddress", "PublicIp=%19&InstanceId=i-12345678", None),
    ("%01", "", "InvalidAction"),
    ("DescribeInstances", "Foo%01=x", "UnknownParameter"),
    ("RunInstances", "ImageId=emi-12345678&MinCount=1&MaxCount=1&DryRun=true", None),
]


@pytest.mark.parametrize(("action", "params", "code"), FOUND)
def test_what_fuzzing_found(campaign: Campaign, action: str, params: str, code: str | None) -> None:
    body = f"Action={action}&Version=2016-11-15" + (f"&{params}" if params else "")
    req = Request("found", action, body=body.encode())
    status, answer = campaign.fuzzers[0].send(req)
    got, fault = verdict(req, status, answer)
    assert fault is None and 400 <= status < 500, (status, answer)
    if code is not None:
        assert got == code, answer
    message = ET.fromstring(answer).findtext("Errors/Error/Message") or ""
    assert "\x19" not in message and "\x01" not in message
