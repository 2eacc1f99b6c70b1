"""The instance metadata service over real HTTP: the calling instance found by the request's source
address (the client binds to the 127.0.0.x address its instance was given: a STATIC box whose
VNET_MACMAP hands out loopback addresses), the keys, user-data, the signed identity document,
IMDSv2 tokens and HttpTokens=required."""

from __future__ import annotations

import base64
import dataclasses
import http.client
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from euca.auth.certs import cloud_credentials, load_certificate
from euca.core.config import Config
from euca.metadata.service import is_metadata_path
from tests.ec2_server import Box, running_box

ADDRESSES = [f"127.0.0.{k}" for k in range(11, 15)]
STATIC = dataclasses.replace(Config(), vnet_mode="STATIC", vnet_macmap=" ".join(
    f"D0:0D:7F:00:00:{k:02X}={ip}" for k, ip in enumerate(ADDRESSES, 1)))
NOBODY = "127.0.0.99"
KEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJZ1Fq2x3GKaGv0GTuVJr6G0wzOqYQ0o6dFQ1hGZt6gq alice@desk")


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    with running_box(tmp_path_factory.mktemp("md"), config=STATIC) as b:
        yield b


def fetch(box: Box, source: str, path: str, method: str = "GET",
          headers: dict[str, str] | None = None) -> tuple[int, bytes, dict[str, str]]:
    port = int(box.url.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read(), {k.lower(): v for k, v in resp.getheaders()}
    finally:
        conn.close()


_images: dict[int, str] = {}


def run(box: Box, **kw: Any) -> dict[str, Any]:
    ec2 = box.client("alice")
    image = _images.get(id(box)) or _images.setdefault(id(box), box.image())
    reservation = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, **kw)
    return dict(reservation["Instances"][0])


@pytest.fixture(scope="module")
def inst(box: Box) -> dict[str, Any]:
    ec2 = box.client("alice")
    ec2.import_key_pair(KeyName="desk", PublicKeyMaterial=KEY.encode())
    return run(box, KeyName="desk", UserData="#cloud-config\nhostname: web\n")


def test_the_path_tells_metadata_from_ec2() -> None:
    assert is_metadata_path("/latest") and is_metadata_path("/latest/meta-data/")
    assert is_metadata_path("/2009-04-04/meta-data/instance-id") and is_metadata_path("/2021-03-23")
    assert not is_metadata_path("/") and not is_metadata_path("/services/Eucalyptus")
    assert not is_metadata_path("/latestx") and not is_metadata_path("/services/Walrus/latest")


def test_an_instance_reads_its_own_keys(box: Box, inst: dict[str, Any]) -> None:
    me = inst["PrivateIpAddress"]
    assert me in ADDRESSES
    status, body, headers = fetch(box, me, "/latest/meta-data/")
    assert status == 200 and headers["content-type"] == "text/plain"
    listing = body.decode().split("\n")
    for key in ("ami-id", "ami-launch-index", "ami-manifest-path", "instance-id", "instance-type", "local-ipv4",
                "public-ipv4", "local-hostname", "public-hostname", "hostname", "mac", "placement/",
                "security-groups", "reservation-id", "kernel-id", "ramdisk-id", "block-device-mapping/",
                "public-keys/", "network/"):
        assert key in listing, key
    expect = {"instance-id": inst["InstanceId"], "ami-id": inst["ImageId"], "instance-type": "m1.small",
              "local-ipv4": me, "public-ipv4": me, "hostname": me, "mac": inst_mac(box, inst),
              "placement/availability-zone": inst["Placement"]["AvailabilityZone"], "security-groups": "default",
              "kernel-id": inst["KernelId"], "ramdisk-id": inst["RamdiskId"], "ami-launch-index": "0",
              "block-device-mapping/ami": "sda1", "block-device-mapping/root": "/dev/sda1",
              "block-device-mapping/ephemeral0": "sda2", "block-device-mapping/swap": "sda3",
              "block-device-mapping/ephemeral": "sda2", "public-keys/": "0=desk",
              "public-keys/0/": "openssh-key", "public-keys/0/openssh-key": KEY.rsplit(" ", 1)[0] + " desk\n"}
    for key, value in expect.items():
        status, body, _ = fetch(box, me, f"/latest/meta-data/{key}")
        assert (status, body.decode()) == (200, value), key
    status, body, _ = fetch(box, me, "/latest/meta-data/ami-manifest-path")
    image = box.client("alice").describe_images(ImageIds=[inst["ImageId"]])["Images"][0]
    assert body.decode() == image["ImageLocation"]  # an imported image's: euca-images/<image id>
    status, body, _ = fetch(box, me, "/latest/meta-data/reservation-id")
    assert body.decode().startswith("r-")
    mac = inst_mac(box, inst)
    status, body, _ = fetch(box, me, f"/latest/meta-data/network/interfaces/macs/{mac}/local-ipv4s")
    assert (status, body.decode()) == (200, me)
    status, body, _ = fetch(box, me, f"/latest/meta-data/network/interfaces/macs/{mac}/security-group-ids")
    assert body.decode().startswith("sg-")
    assert fetch(box, me, "/latest/meta-data/no-such-key")[0] == 404
    status, body, _ = fetch(box, me, "/latest/")
    assert body.decode().split("\n") == ["dynamic", "meta-data", "user-data"]


def inst_mac(box: Box, inst: dict[str, Any]) -> str:
    recorded = box.cloud.instances.live(inst["InstanceId"])
    assert recorded is not None
    return recorded.mac


def test_dated_versions_from_2009_04_04(box: Box, inst: dict[str, Any]) -> None:
    me = inst["PrivateIpAddress"]
    for version in ("2009-04-04", "2016-09-02", "2018-09-24", "2021-03-23"):
        status, body, _ = fetch(box, me, f"/{version}/meta-data/instance-id")
        assert (status, body.decode()) == (200, inst["InstanceId"])
    assert fetch(box, me, "/2008-02-01/meta-data/instance-id")[0] == 404


def test_user_data_and_none(box: Box, inst: dict[str, Any]) -> None:
    status, body, _ = fetch(box, inst["PrivateIpAddress"], "/latest/user-data")
    assert (status, body) == (200, b"#cloud-config\nhostname: web\n")
    bare = run(box)
    status, _, _ = fetch(box, bare["PrivateIpAddress"], "/latest/user-data")
    assert status == 404
    assert b"user-data" not in fetch(box, bare["PrivateIpAddress"], "/latest/")[1]
    assert fetch(box, bare["PrivateIpAddress"], "/latest/meta-data/public-keys/")[0] == 404
    box.client("alice").terminate_instances(InstanceIds=[bare["InstanceId"]])
    assert fetch(box, bare["PrivateIpAddress"], "/latest/meta-data/instance-id")[0] == 404


def test_an_address_that_is_no_instance_gets_404_and_nothing_else(box: Box, inst: dict[str, Any]) -> None:
    for method, path in (("GET", "/latest/meta-data/instance-id"), ("GET", "/latest/user-data"),
                         ("PUT", "/latest/api/token"), ("GET", "/latest/dynamic/instance-identity/document")):
        status, body, _ = fetch(box, NOBODY, path, method, {"X-aws-ec2-metadata-token-ttl-seconds": "60"})
        assert status == 404 and inst["InstanceId"].encode() not in body and len(body) < 16


def test_the_identity_document_is_signed_by_the_cloud(box: Box, inst: dict[str, Any]) -> None:
    me = inst["PrivateIpAddress"]
    status, doc, _ = fetch(box, me, "/latest/dynamic/instance-identity/document")
    assert status == 200
    fields = json.loads(doc)
    assert fields["instanceId"] == inst["InstanceId"] and fields["privateIp"] == me
    assert fields["version"] == "2010-08-31" and fields["imageId"] == inst["ImageId"]
    assert fields["accountId"] == box.cloud.accounts.get("alice").account_id  # type: ignore[union-attr]
    assert fetch(box, me, "/latest/dynamic/instance-identity/")[1].decode().split("\n") == [
        "document", "pkcs7", "signature", "rsa2048"]
    _, signature, _ = fetch(box, me, "/latest/dynamic/instance-identity/signature")
    cert = load_certificate(cloud_credentials(box.data_dir).cert)
    public = cert.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    public.verify(base64.b64decode(signature), doc, padding.PKCS1v15(), hashes.SHA256())
    _, pkcs7, _ = fetch(box, me, "/latest/dynamic/instance-identity/pkcs7")
    assert base64.b64decode(pkcs7)[:1] == b"\x30"  # DER


def test_imdsv2_tokens(box: Box, inst: dict[str, Any]) -> None:
    me = inst["PrivateIpAddress"]
    status, token, headers = fetch(box, me, "/latest/api/token", "PUT",
                                   {"X-aws-ec2-metadata-token-ttl-seconds": "21600"})
    assert status == 200 and headers["x-aws-ec2-metadata-token-ttl-seconds"] == "21600"
    with_token = {"X-aws-ec2-metadata-token": token.decode()}
    status, body, _ = fetch(box, me, "/latest/meta-data/instance-id", headers=with_token)
    assert (status, body.decode()) == (200, inst["InstanceId"])
    assert fetch(box, me, "/latest/meta-data/instance-id", headers={"X-aws-ec2-metadata-token": "x.y"})[0] == 401
    for bad in ("0", "21601", "abc", ""):
        assert fetch(box, me, "/latest/api/token", "PUT", {"X-aws-ec2-metadata-token-ttl-seconds": bad})[0] == 400
    assert fetch(box, me, "/latest/api/token", "PUT")[0] == 400
    # a token is its instance's: another instance cannot use it
    other = run(box)
    assert fetch(box, other["PrivateIpAddress"], "/latest/meta-data/instance-id", headers=with_token)[0] == 401
    box.client("alice").terminate_instances(InstanceIds=[other["InstanceId"]])
    assert fetch(box, me, "/latest/meta-data/instance-id", "POST")[0] == 405


def test_http_tokens_required(box: Box) -> None:
    ec2 = box.client("alice")
    strict = run(box, MetadataOptions={"HttpTokens": "required"})
    assert strict["MetadataOptions"]["HttpTokens"] == "required"
    me = strict["PrivateIpAddress"]
    assert fetch(box, me, "/latest/meta-data/instance-id")[0] == 401
    _, token, _ = fetch(box, me, "/latest/api/token", "PUT", {"X-aws-ec2-metadata-token-ttl-seconds": "1"})
    assert fetch(box, me, "/latest/meta-data/instance-id", headers={"X-aws-ec2-metadata-token": token.decode()})[0] \
        == 200
    time.sleep(2.1)
    assert fetch(box, me, "/latest/meta-data/instance-id", headers={"X-aws-ec2-metadata-token": token.decode()})[0] \
        == 401
    out = ec2.modify_instance_metadata_options(InstanceId=strict["InstanceId"], HttpTokens="optional")
    assert out["InstanceMetadataOptions"]["HttpTokens"] == "optional"
    assert fetch(box, me, "/latest/meta-data/instance-id")[0] == 200
    ec2.modify_instance_metadata_options(InstanceId=strict["InstanceId"], HttpTokens="required")
    assert fetch(box, me, "/latest/meta-data/instance-id")[0] == 401
    described = ec2.describe_instances(InstanceIds=[strict["InstanceId"]])["Reservations"][0]["Instances"][0]
    assert described["MetadataOptions"]["HttpTokens"] == "required"
    ec2.modify_instance_metadata_options(InstanceId=strict["InstanceId"], HttpEndpoint="disabled")
    assert fetch(box, me, "/latest/meta-data/instance-id")[0] == 403
    with pytest.raises(Exception, match="HttpPutResponseHopLimit"):
        ec2.modify_instance_metadata_options(InstanceId=strict["InstanceId"], HttpPutResponseHopLimit=65)
    ec2.terminate_instances(InstanceIds=[strict["InstanceId"]])


def test_ec2_is_still_served_at_the_root(box: Box) -> None:
    assert box.client("alice").describe_availability_zones()["AvailabilityZones"]


def test_the_caller_is_found_by_public_address_first(tmp_path: Path) -> None:
    """MANAGED-NOVLAN: the dynamic public address, then an elastic one, name the instance;
    the address it gave up names nobody."""
    from euca.api.metadata import CloudDirectory

    with running_box(tmp_path) as managed:
        ec2 = managed.client("alice")
        started = ec2.run_instances(ImageId=managed.image(), MinCount=1, MaxCount=1)["Instances"][0]
        directory = CloudDirectory(managed.cloud)
        dynamic = managed.cloud.addresses.public_of(started["InstanceId"])
        assert dynamic is not None
        for address in (dynamic, started["PrivateIpAddress"]):
            found = directory.find(address)
            assert found is not None and found.instance_id == started["InstanceId"] and found.public_ip == dynamic
        elastic = ec2.allocate_address()["PublicIp"]
        ec2.associate_address(PublicIp=elastic, InstanceId=started["InstanceId"])
        moved = directory.find(elastic)
        assert moved is not None and moved.public_ip == elastic
        assert directory.find(dynamic) is None


def test_a_token_reply_leaves_with_the_hop_limit_as_its_ttl(box: Box, inst: dict[str, Any]) -> None:
    """The token's packets carry TTL 1 (HttpPutResponseHopLimit 1, the caller next door: its SYN
    came over loopback with TTL 64), seen on the wire of ``lo``: the app reached the connection's
    socket through the installed uvicorn. Were that lookup broken, they would leave with 64."""
    import socket
    import struct

    me, port = inst["PrivateIpAddress"], int(box.url.rsplit(":", 1)[1])
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800)) as wire:
        wire.bind(("lo", 0))
        wire.settimeout(0.2)
        status, token, _ = fetch(box, me, "/latest/api/token", "PUT", {"X-aws-ec2-metadata-token-ttl-seconds": "60"})
        assert status == 200 and token
        ttls = set()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                frame = wire.recv(65535)
            except TimeoutError:
                break
            ip = frame[14:]
            if len(ip) < 24 or ip[9] != socket.IPPROTO_TCP or socket.inet_ntoa(ip[16:20]) != me:
                continue
            header = (ip[0] & 0x0F) * 4
            source_port, = struct.unpack("!H", ip[header:header + 2])
            if source_port == port:
                ttls.add(ip[8])
    assert 1 in ttls, ttls  # the reply (the SYN-ACK may go before the limit is set)


def test_a_server_whose_sockets_are_out_of_reach_is_warned_of_once(box: Box, inst: dict[str, Any],
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    """Under an ASGI server other than uvicorn the connection's socket cannot be found: the token
    is given all the same, and the log says, once, that no hop limit is enforced."""
    import asyncio

    from euca.api.metadata import create_metadata_app

    app = create_metadata_app(box.cloud, None)
    me = inst["PrivateIpAddress"]
    scope = {"type": "http", "method": "PUT", "path": "/latest/api/token", "client": (me, 40000),
             "headers": [(b"x-aws-ec2-metadata-token-ttl-seconds", b"60")], "query_string": b""}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    with caplog.at_level("WARNING", logger="euca.api.metadata"):
        for _ in range(2):
            asyncio.run(app(scope, receive, send))
    assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [200, 200]
    told = [r for r in caplog.records if "HttpPutResponseHopLimit" in r.getMessage()]
    assert len(told) == 1
