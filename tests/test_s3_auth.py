"""S3 signatures against a real server: SigV4 header, presigned, aws-chunked streaming (and a
tampered chunk refused), SigV2 header and query; and S3's error codes for each failure."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterator
from typing import Any

import botocore.exceptions
import pytest
import requests
from botocore.auth import HmacV1QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.ec2_server import Box, running_box
from tests.s3_kit import close_all, s3_client

BUCKET = "signed-bucket"


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    with running_box(tmp_path_factory.mktemp("s3auth")) as b:
        s3_client(b).create_bucket(Bucket=BUCKET)
        close_all()
        yield b


@pytest.fixture(autouse=True)
def _close() -> Iterator[None]:
    yield
    close_all()


def _code(exc: pytest.ExceptionInfo[botocore.exceptions.ClientError]) -> tuple[str, int]:
    return exc.value.response["Error"]["Code"], exc.value.response["ResponseMetadata"]["HTTPStatusCode"]


@pytest.mark.parametrize("signature", ["s3v4", "s3"])
def test_header_signatures_v4_and_v2(box: Box, signature: str) -> None:
    s3 = s3_client(box, signature=signature)
    s3.put_object(Bucket=BUCKET, Key=f"by-{signature}/k ey", Body=b"signed", ACL="private")
    assert s3.get_object(Bucket=BUCKET, Key=f"by-{signature}/k ey")["Body"].read() == b"signed"
    assert s3.get_object_acl(Bucket=BUCKET, Key=f"by-{signature}/k ey")["Grants"]
    assert s3.list_objects(Bucket=BUCKET, Prefix=f"by-{signature}/")["Contents"]


def test_wrong_secret_unknown_key_and_skew(box: Box) -> None:
    access, _ = box.keys()
    import boto3
    from botocore.config import Config

    def client(key: str, secret: str, signature: str = "s3v4") -> Any:
        return boto3.client("s3", endpoint_url=box.url + "/services/Walrus", aws_access_key_id=key,
                            aws_secret_access_key=secret, region_name="eucalyptus",
                            config=Config(s3={"addressing_style": "path"}, signature_version=signature,
                                          retries={"max_attempts": 1}))
    for signature in ("s3v4", "s3"):
        bad = client(access, "wrong-secret", signature)
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            bad.list_objects(Bucket=BUCKET)
        assert _code(exc) == ("SignatureDoesNotMatch", 403)
        bad.close()
        unknown = client("AKINOSUCHKEY0000000", "x", signature)
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            unknown.list_objects(Bucket=BUCKET)
        assert _code(exc) == ("InvalidAccessKeyId", 403)
        unknown.close()
    s3 = s3_client(box)
    skewed = time.time() - 3600
    from datetime import UTC, datetime
    from unittest import mock

    from botocore.auth import S3SigV4Auth

    request = AWSRequest("GET", f"{box.url}/services/Walrus/{BUCKET}")
    auth = S3SigV4Auth(Credentials(access, box.keys()[1]), "s3", "eucalyptus")
    with mock.patch("botocore.auth.get_current_datetime",
                    lambda: datetime.fromtimestamp(skewed, UTC).replace(tzinfo=None)):
        auth.add_auth(request)
    r = requests.get(request.url, headers=dict(request.prepare().headers), timeout=5)
    assert r.status_code == 403 and b"RequestTimeTooSkewed" in r.content, r.content
    del s3


def test_presigned_v4_get_put_and_expiry(box: Box) -> None:
    s3 = s3_client(box)
    put = s3.generate_presigned_url("put_object", Params={"Bucket": BUCKET, "Key": "presigned"}, ExpiresIn=60)
    assert requests.put(put, data=b"via a link", timeout=5).status_code == 200
    get = s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "presigned"}, ExpiresIn=60)
    assert requests.get(get, timeout=5).content == b"via a link"
    tampered = get.replace("presigned", "presigneX")
    r = requests.get(tampered, timeout=5)
    assert r.status_code == 403 and b"SignatureDoesNotMatch" in r.content
    old = s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "presigned"}, ExpiresIn=1)
    time.sleep(2.1)
    r = requests.get(old, timeout=5)
    assert r.status_code == 403 and b"<Code>AccessDenied</Code>" in r.content and b"Request has expired" in r.content


def test_presigned_v2_query(box: Box) -> None:
    access, secret = box.keys()
    s3_client(box).put_object(Bucket=BUCKET, Key="v2-query", Body=b"old style")
    request = AWSRequest("GET", f"{box.url}/services/Walrus/{BUCKET}/v2-query")
    HmacV1QueryAuth(Credentials(access, secret), expires=60).add_auth(request)
    assert requests.get(request.prepare().url, timeout=5).content == b"old style"
    request = AWSRequest("GET", f"{box.url}/services/Walrus/{BUCKET}/v2-query")
    HmacV1QueryAuth(Credentials(access, "wrong"), expires=60).add_auth(request)
    assert requests.get(request.prepare().url, timeout=5).status_code == 403


def _chunked_put(box: Box, key: str, chunks: list[bytes], tamper: int | None = None) -> requests.Response:
    """An aws-chunked upload signed as the AWS SDKs sign one (STREAMING-AWS4-HMAC-SHA256-PAYLOAD)."""
    access, secret = box.keys()
    host = box.url.removeprefix("http://")
    path = f"/services/Walrus/{BUCKET}/{key}"
    amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    day = amz_date[:8]
    scope = f"{day}/eucalyptus/s3/aws4_request"
    decoded = sum(len(c) for c in chunks)
    headers = {"host": host, "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "x-amz-date": amz_date,
               "x-amz-decoded-content-length": str(decoded), "content-encoding": "aws-chunked"}
    signed = sorted(headers)
    canonical = "\n".join(["PUT", path, "", "".join(f"{h}:{headers[h]}\n" for h in signed), ";".join(signed),
                           "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"])
    key_bytes = ("AWS4" + secret).encode()
    for part in (day, "eucalyptus", "s3", "aws4_request"):
        key_bytes = hmac.digest(key_bytes, part.encode(), "sha256")
    to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    seed = hmac.digest(key_bytes, to_sign.encode(), "sha256").hex()
    body = b""
    previous = seed
    empty = hashlib.sha256(b"").hexdigest()
    for i, chunk in enumerate([*chunks, b""]):
        sts = f"AWS4-HMAC-SHA256-PAYLOAD\n{amz_date}\n{scope}\n{previous}\n{empty}\n{hashlib.sha256(chunk).hexdigest()}"
        previous = hmac.digest(key_bytes, sts.encode(), "sha256").hex()
        sent = chunk[:-1] + b"!" if tamper == i else chunk
        body += f"{len(chunk):x};chunk-signature={previous}\r\n".encode() + sent + b"\r\n"
    headers["authorization"] = (f"AWS4-HMAC-SHA256 Credential={access}/{scope}, SignedHeaders={';'.join(signed)}, "
                                f"Signature={seed}")
    headers["content-length"] = str(len(body))
    return requests.put(f"{box.url}{path}", data=body, headers=headers, timeout=10)


def test_streaming_chunked_upload_checks_every_chunk(box: Box) -> None:
    chunks = [b"a" * 65536, b"b" * 65536, b"tail"]
    ok = _chunked_put(box, "chunked", chunks)
    assert ok.status_code == 200, ok.content
    got = s3_client(box).get_object(Bucket=BUCKET, Key="chunked")
    assert got["Body"].read() == b"".join(chunks) and "ContentEncoding" not in got
    bad = _chunked_put(box, "tampered", chunks, tamper=1)
    assert bad.status_code == 403 and b"SignatureDoesNotMatch" in bad.content
    with pytest.raises(botocore.exceptions.ClientError):
        s3_client(box).head_object(Bucket=BUCKET, Key="tampered")


def test_unsigned_payload_allowed_on_s3_and_a_wrong_payload_hash_refused(box: Box) -> None:
    access, secret = box.keys()
    from botocore.auth import S3SigV4Auth

    url = f"{box.url}/services/Walrus/{BUCKET}/unsigned"
    request = AWSRequest("PUT", url, data=b"not covered", headers={"x-amz-content-sha256": "UNSIGNED-PAYLOAD"})
    S3SigV4Auth(Credentials(access, secret), "s3", "eucalyptus").add_auth(request)
    prepared = request.prepare()
    assert requests.put(url, data=b"not covered", headers=dict(prepared.headers), timeout=5).status_code == 200
    lying = AWSRequest("PUT", url, data=b"declared", headers={
        "x-amz-content-sha256": hashlib.sha256(b"declared").hexdigest()})
    S3SigV4Auth(Credentials(access, secret), "s3", "eucalyptus").add_auth(lying)
    r = requests.put(url, data=b"swapped!", headers=dict(lying.prepare().headers), timeout=5)
    assert r.status_code == 400 and b"XAmzContentSHA256Mismatch" in r.content
    assert s3_client(box).get_object(Bucket=BUCKET, Key="unsigned")["Body"].read() == b"not covered"


def test_ec2_still_refuses_unsigned_payload(box: Box) -> None:
    access, secret = box.keys()
    from botocore.auth import SigV4Auth

    request = AWSRequest("POST", box.url + "/", data="Action=DescribeRegions&Version=2016-11-15",
                         headers={"x-amz-content-sha256": "UNSIGNED-PAYLOAD",
                                  "content-type": "application/x-www-form-urlencoded"})
    SigV4Auth(Credentials(access, secret), "ec2", "eucalyptus").add_auth(request)
    prepared = request.prepare()
    r = requests.post(box.url + "/", data=prepared.body, headers=dict(prepared.headers), timeout=5)
    assert r.status_code == 401
