"""POST Object: browser forms signed with boto3's ``generate_presigned_post`` (Version 4 and 2),
sent as real multipart bodies with requests; every kind of policy violation; the form parser
fed in pieces of every size."""

from __future__ import annotations

import asyncio
import base64
import gc
import hashlib
import hmac
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import orjson
import pytest
import requests

from euca.api.s3.form import FormReader, boundary_of
from euca.core.s3errors import IncompleteBody
from tests.ec2_server import Box, running_box
from tests.s3_kit import close_all, s3_client


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    with running_box(tmp_path_factory.mktemp("s3post")) as b:
        yield b


@pytest.fixture
def s3(box: Box) -> Iterator[Any]:
    yield s3_client(box)
    close_all()
    gc.collect()


_n = 0


def new_bucket(s3: Any, **kw: Any) -> str:
    global _n
    _n += 1
    name = f"form-{_n}-{int(time.time() * 1000) % 100000}"
    s3.create_bucket(Bucket=name, **kw)
    return name


def send(post: dict[str, Any], body: bytes = b"hello, form", filename: str = "hello.txt",
         extra: dict[str, str] | None = None) -> requests.Response:
    fields = dict(post["fields"], **(extra or {}))
    return requests.post(post["url"], data=fields, files={"file": (filename, body, "text/plain")},
                         allow_redirects=False, timeout=30)


def error(response: requests.Response) -> tuple[int, str, str]:
    doc = ElementTree.fromstring(response.content)
    return response.status_code, doc.findtext("Code", ""), doc.findtext("Message", "")


def test_v4_form_upload_with_filename_metadata_and_type(box: Box, s3: Any) -> None:
    b = new_bucket(s3)
    post = s3.generate_presigned_post(
        b, "uploads/${filename}",
        Fields={"Content-Type": "text/plain", "x-amz-meta-color": "blue"},
        Conditions=[["starts-with", "$key", "uploads/"], {"Content-Type": "text/plain"},
                    {"x-amz-meta-color": "blue"}, ["content-length-range", 1, 1024]])
    assert "x-amz-signature" in post["fields"]
    answer = send(post, b"browser bytes", filename="C:\\fakepath\\notes.txt")
    assert answer.status_code == 204, answer.text
    assert answer.headers["etag"] == f'"{hashlib.md5(b"browser bytes").hexdigest()}"'
    assert answer.headers["location"].endswith(f"/{b}/uploads/notes.txt")
    got = s3.get_object(Bucket=b, Key="uploads/notes.txt")
    assert got["Body"].read() == b"browser bytes"
    assert got["ContentType"] == "text/plain"
    assert got["Metadata"] == {"color": "blue"}


def test_success_action_status_and_redirect(box: Box, s3: Any) -> None:
    b = new_bucket(s3)
    for status in ("200", "201"):
        post = s3.generate_presigned_post(b, f"s-{status}", Fields={"success_action_status": status},
                                          Conditions=[{"success_action_status": status}])
        answer = send(post)
        assert answer.status_code == int(status), answer.text
        if status == "201":
            doc = ElementTree.fromstring(answer.content)
            assert doc.tag == "PostResponse"
            assert (doc.findtext("Bucket"), doc.findtext("Key")) == (b, "s-201")
            assert doc.findtext("ETag") == answer.headers["etag"]
            assert doc.findtext("Location", "").endswith(f"/{b}/s-201")
        else:
            assert answer.content == b""
    target = "https://example.com/done?from=form"
    post = s3.generate_presigned_post(b, "redirected", Fields={"success_action_redirect": target},
                                      Conditions=[{"success_action_redirect": target}])
    answer = send(post)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith(target + f"&bucket={b}&key=redirected&etag=")
    assert s3.get_object(Bucket=b, Key="redirected")["Body"].read() == b"hello, form"


def test_acl_field_makes_the_object_public(box: Box, s3: Any) -> None:
    b = new_bucket(s3)
    post = s3.generate_presigned_post(b, "public", Fields={"acl": "public-read"}, Conditions=[{"acl": "public-read"}])
    assert send(post).status_code == 204
    assert requests.get(f"{box.url}/services/Walrus/{b}/public", timeout=10).content == b"hello, form"


def test_sigv2_form(box: Box) -> None:
    s3v2 = s3_client(box, signature="s3")
    try:
        b = new_bucket(s3v2)
        post = s3v2.generate_presigned_post(b, "v2-${filename}")
        assert {"AWSAccessKeyId", "signature", "policy"} <= set(post["fields"])
        assert send(post, b"two", filename="x.bin").status_code == 204
        assert s3v2.get_object(Bucket=b, Key="v2-x.bin")["Body"].read() == b"two"
        forged = dict(post, fields=dict(post["fields"], signature=base64.b64encode(b"0" * 20).decode()))
        assert error(send(forged))[:2] == (403, "SignatureDoesNotMatch")
    finally:
        close_all()


def test_policy_violations_are_refused_and_leave_nothing(box: Box, s3: Any) -> None:
    b = new_bucket(s3)
    post = s3.generate_presigned_post(b, "in/${filename}", Conditions=[["starts-with", "$key", "in/"],
                                                                        ["content-length-range", 2, 20]])
    # the key outside the prefix
    status, code, message = error(send(dict(post, fields=dict(post["fields"], key="out/x"))))
    assert (status, code) == (403, "AccessDenied")
    assert message == 'Invalid according to Policy: Policy Condition failed: ["starts-with","$key","in/"]'
    # a field the policy does not mention
    status, code, message = error(send(post, extra={"x-amz-meta-sneaky": "1"}))
    assert (status, code, message) == (403, "AccessDenied",
                                       "Invalid according to Policy: Extra input fields: x-amz-meta-sneaky")
    # x-ignore- fields need not be mentioned
    assert send(post, extra={"x-ignore-me": "1"}).status_code == 204
    # the file's length outside content-length-range
    assert error(send(post, b"x" * 21))[:2] == (400, "EntityTooLarge")
    assert error(send(post, b"x"))[:2] == (400, "EntityTooSmall")
    # an exact match that does not hold
    acl_post = s3.generate_presigned_post(b, "acl", Fields={"acl": "private"}, Conditions=[{"acl": "private"}])
    status, code, message = error(send(acl_post, extra={"acl": "public-read"}))
    assert (status, code) == (403, "AccessDenied")
    assert message == 'Invalid according to Policy: Policy Condition failed: ["eq","$acl","private"]'
    # a form meant for another bucket
    other = new_bucket(s3)
    status, code, message = error(requests.post(post["url"].replace(b, other), data=post["fields"],
                                                files={"file": ("f", b"abc")}, timeout=10))
    assert (status, code) == (403, "AccessDenied") and "$bucket" in message
    # expired
    assert box.walrus is not None
    real = box.walrus.clock
    box.walrus.clock = lambda: real() + 7200
    try:
        assert error(send(post)) == (403, "AccessDenied", "Invalid according to Policy: Policy expired.")
    finally:
        box.walrus.clock = real
    # a tampered policy no longer matches its signature; an unknown key is refused
    tampered = base64.b64encode(base64.b64decode(post["fields"]["policy"]).replace(b"in/", b"ou/")).decode()
    assert error(send(post, extra={"policy": tampered}))[:2] == (403, "SignatureDoesNotMatch")
    credential = post["fields"]["x-amz-credential"].split("/", 1)[1]
    assert error(send(post, extra={"x-amz-credential": "AKIDNOBODY/" + credential}))[:2] == (403, "InvalidAccessKeyId")
    # no key field, no file, not JSON
    fields = {k: v for k, v in post["fields"].items() if k != "key"}
    assert error(requests.post(post["url"], data=fields, files={"file": ("f", b"abc")}, timeout=10))[:2] == \
        (400, "InvalidArgument")
    assert error(requests.post(post["url"], files={"key": (None, "k")}, timeout=10))[:2] == (400, "InvalidArgument")
    secret = box.keys()[1]
    garbage = base64.b64encode(b"{not json").decode()
    signed = _sign_v4(secret, garbage, post["fields"])
    assert error(send(post, extra={"policy": garbage, "x-amz-signature": signed}))[:2] == (400, "InvalidPolicyDocument")
    # a plain POST is not a form
    assert error(requests.post(post["url"], data=b"x", headers={"content-type": "text/plain"}, timeout=10))[:2] \
        == (412, "PreconditionFailed")
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=b).get("Contents", [])] == ["in/hello.txt"]


def _sign_v4(secret: str, policy: str, fields: dict[str, str]) -> str:
    _, day, region, service, terminal = fields["x-amz-credential"].split("/")
    key = ("AWS4" + secret).encode()
    for part in (day, region, service, terminal):
        key = hmac.digest(key, part.encode(), "sha256")
    return hmac.digest(key, policy.encode(), "sha256").hex()


def test_anonymous_form_needs_a_bucket_anyone_may_write(box: Box, s3: Any) -> None:
    private, public = new_bucket(s3), new_bucket(s3, ACL="public-read-write")
    url = f"{box.url}/services/Walrus/"
    refused = requests.post(url + private, data={"key": "k"}, files={"file": ("f", b"abc")}, timeout=10)
    assert error(refused)[:2] == (403, "AccessDenied")
    assert requests.post(url + public, data={"key": "k"}, files={"file": ("f", b"abc")}, timeout=10).status_code == 204
    assert s3.get_object(Bucket=public, Key="k")["Body"].read() == b"abc"


def test_a_cut_off_form_commits_nothing(box: Box, s3: Any) -> None:
    b = new_bucket(s3)
    post = s3.generate_presigned_post(b, "cut")
    whole = requests.Request("POST", post["url"], data=post["fields"], files={"file": ("f", b"y" * 5000)}).prepare()
    assert isinstance(whole.body, bytes)
    cut = whole.body[:whole.body.rindex(b"\r\n--")]
    answer = requests.post(post["url"], data=cut, headers={"content-type": whole.headers["content-type"]}, timeout=10)
    assert error(answer)[:2] == (400, "IncompleteBody")
    assert s3.list_objects_v2(Bucket=b).get("KeyCount") == 0
    assert box.walrus is not None
    assert list((box.walrus.blobs.tmp).iterdir()) == []


# --- the parser alone ----------------------------------------------------------------------------------

def _form(boundary: str, parts: list[tuple[str, str | None, bytes]]) -> bytes:
    out = b"preamble to ignore\r\n"
    for name, filename, value in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + value + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


async def _pieces(data: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i:i + size]


async def _read_all(data: bytes, boundary: str, size: int) -> list[tuple[str, str | None, bytes]]:
    reader = FormReader(_pieces(data, size), boundary)
    out = []
    while (head := await reader.next_part()) is not None:
        body = b"".join([p async for p in reader.part_bytes()])
        out.append((head.name, head.filename, body))
    return out


@pytest.mark.parametrize("size", [1, 2, 3, 7, 41, 64, 1000, 1 << 16])
def test_form_reader_any_split(size: int) -> None:
    boundary = "----b0undary"
    # values holding near-boundaries: CRLF, dashes, the boundary without its CRLF
    tricky = b"\r\n--" + boundary.encode()[:-1] + b"x\r\n-\r\n--\r"
    parts = [("key", None, b"a/${filename}"), ("empty", None, b""), ("file", "n a%22me.bin", tricky * 50 + b"\r")]
    expected = [*parts[:2], ("file", 'n a"me.bin', parts[2][2])]
    assert asyncio.run(_read_all(_form(boundary, parts), boundary, size)) == expected


def test_form_reader_refuses_a_body_without_its_end() -> None:
    boundary = "zz"
    data = _form(boundary, [("file", "f", b"data")])
    with pytest.raises(IncompleteBody):
        asyncio.run(_read_all(data[:-10], boundary, 5))


def test_boundary_of() -> None:
    assert boundary_of('multipart/form-data; charset=utf-8; boundary="a b;c"') == "a b;c"
    assert boundary_of("multipart/form-data; boundary=xyz") == "xyz"
    assert boundary_of("application/x-www-form-urlencoded") is None
    assert boundary_of("multipart/form-data") is None


def test_policy_document_is_json(tmp_path: Path) -> None:
    # generate_presigned_post's policy is what parse_policy reads
    from euca.api.s3.post import parse_policy

    doc = {"expiration": "2030-01-01T00:00:00.000Z", "conditions": [
        {"bucket": "b"}, ["starts-with", "$key", "p/"], ["content-length-range", 0, 5], ["eq", "$acl", "private"]]}
    policy = parse_policy(base64.b64encode(orjson.dumps(doc)).decode())
    assert policy.conditions == (("eq", "bucket", "b"), ("starts-with", "key", "p/"), ("range", "", (0, 5)),
                                 ("eq", "acl", "private"))
