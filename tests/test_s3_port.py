"""``euca up --s3-port``: S3 path style at ``/`` and virtual-hosted style (``<bucket>.<host>``,
sent to 127.0.0.1 with the Host header, no DNS), and CORS headers on actual requests."""

from __future__ import annotations

import base64
import email.utils
import hmac
import http.client
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import boto3
import botocore.exceptions
import pytest
import requests
from botocore.config import Config

from tests.durability_kit import euca_up
from tests.ec2_server import free_port


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int]]:
    data = tmp_path_factory.mktemp("s3port")
    port, s3_port = free_port(), free_port()
    with euca_up(data, port, None, "--s3-port", str(s3_port)):
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", s3_port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        yield data, s3_port


def _client(up: tuple[Path, int], style: str, host: str = "127.0.0.1", signature: str = "s3v4") -> Any:
    data, port = up
    env = dict(line.removeprefix("export ").split("=", 1) for line in (data / "eucarc").read_text().splitlines())
    client = boto3.client("s3", endpoint_url=f"http://{host}:{port}", region_name="eucalyptus",
                          aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
                          config=Config(s3={"addressing_style": style}, signature_version=signature,
                                        retries={"max_attempts": 1}))
    if style == "virtual":
        client.meta.events.register("before-send.s3", _loopback)
    return client


def test_path_style_at_the_root(up: tuple[Path, int]) -> None:
    s3 = _client(up, "path")
    s3.create_bucket(Bucket="pathy")
    s3.put_object(Bucket="pathy", Key="dir/k", Body=b"path style")
    assert s3.get_object(Bucket="pathy", Key="dir/k")["Body"].read() == b"path style"
    assert "pathy" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="pathy")["Contents"]] == ["dir/k"]
    s3.close()


def test_virtual_hosted_style(up: tuple[Path, int]) -> None:
    s3 = _client(up, "virtual", "localhost")
    s3.create_bucket(Bucket="vhost")
    s3.put_object(Bucket="vhost", Key="a/b c", Body=b"virtual", ACL="public-read")
    assert s3.get_object(Bucket="vhost", Key="a/b c")["Body"].read() == b"virtual"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="vhost")["Contents"]] == ["a/b c"]
    s3.delete_object(Bucket="vhost", Key="missing")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.get_object(Bucket="vhost", Key="missing")
    assert exc.value.response["Error"]["Code"] == "NoSuchKey"
    # the same object through path style, and by the --host name (127.0.0.1) as a domain
    path = _client(up, "path")
    assert path.get_object(Bucket="vhost", Key="a/b c")["Body"].read() == b"virtual"
    port = up[1]
    for host in (f"vhost.localhost:{port}", f"vhost.127.0.0.1:{port}"):
        answer = requests.get(f"http://127.0.0.1:{port}/a/b%20c", headers={"Host": host}, timeout=5)
        assert answer.content == b"virtual", host
    for client in (s3, path):
        client.close()


@pytest.mark.parametrize("signature", ["s3", "s3v4"])
def test_virtual_hosted_keys_that_need_encoding(up: tuple[Path, int], signature: str) -> None:
    """A Version 2 signature covers the key as sent, percent-encoded (botocore's auth_path):
    keys with a space, a plus, a percent sign or non-ASCII characters, in a bucket named by its host."""
    s3 = _client(up, "virtual", "localhost", signature)
    bucket = f"vhost-{signature}"
    s3.create_bucket(Bucket=bucket)
    keys = ["a b", "dir/with space", "plus+sign", "100%", "é/ü ß", "tilde~and(parens)"]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == key.encode(), key
        s3.put_object_acl(Bucket=bucket, Key=key, ACL="public-read")  # a sub-resource beside the key
    assert sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]) == sorted(keys)
    for key in keys:
        s3.delete_object(Bucket=bucket, Key=key)
    s3.delete_bucket(Bucket=bucket)
    s3.close()


def _signed_v2(up: tuple[Path, int], method: str, host: str, raw_path: str, body: bytes = b"",
               signed_path: str | None = None) -> int:
    """A Version 2 request written by hand: the resource signed is "/<bucket>" and the path exactly
    as sent (S3's CanonicalizedResource), whatever percent-encoding the client chose."""
    data, port = up
    env = dict(line.removeprefix("export ").split("=", 1) for line in (data / "eucarc").read_text().splitlines())
    date = email.utils.formatdate(usegmt=True)
    to_sign = f"{method}\n\n\n{date}\n/{host.split('.')[0]}{signed_path or raw_path}"
    signature = base64.b64encode(hmac.digest(env["AWS_SECRET_ACCESS_KEY"].encode(), to_sign.encode(), "sha1"))
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, raw_path, body, {
            "Host": host, "Date": date, "Authorization": f"AWS {env['AWS_ACCESS_KEY_ID']}:{signature.decode()}"})
        answer = connection.getresponse()
        answer.read()
        return answer.status
    finally:
        connection.close()


def test_virtual_hosted_version_2_signs_the_path_as_sent(up: tuple[Path, int]) -> None:
    s3 = _client(up, "path")
    s3.create_bucket(Bucket="vhost-raw")
    host = f"vhost-raw.localhost:{up[1]}"
    # a space, with "~" encoded as older clients encode it, and lower-case hex digits
    for key, sent in (("a b~c", "/a%20b%7Ec"), ("é x", "/%c3%a9%20x"), ("dir/with space", "/dir/with%20space")):
        assert _signed_v2(up, "PUT", host, sent, key.encode()) == 200, key
        assert s3.get_object(Bucket="vhost-raw", Key=key)["Body"].read() == key.encode()
        assert _signed_v2(up, "GET", host, sent) == 200, key
        assert _signed_v2(up, "DELETE", host, sent) == 204, key
    assert _signed_v2(up, "GET", host, "/a%20b%7Ec") == 404  # gone, and the signature still good
    assert _signed_v2(up, "GET", host, "/a%20b%7Ec", signed_path="/a%20b%7Ed") == 403  # signed for another key
    s3.close()


def _loopback(request: Any, **_: Any) -> None:
    """Signed for <bucket>.localhost; sent to 127.0.0.1 with that name in the Host header."""
    parts = urlsplit(request.url)
    request.headers["Host"] = parts.netloc
    request.url = urlunsplit(parts._replace(netloc=f"127.0.0.1:{parts.port}"))


def test_cors_headers_on_actual_requests(up: tuple[Path, int]) -> None:
    s3 = _client(up, "path")
    s3.create_bucket(Bucket="corsy")
    s3.put_bucket_cors(Bucket="corsy", CORSConfiguration={"CORSRules": [
        {"AllowedOrigins": ["https://app.example.com"], "AllowedMethods": ["GET", "PUT"],
         "ExposeHeaders": ["ETag", "x-amz-request-id"]},
        {"AllowedOrigins": ["*"], "AllowedMethods": ["GET"]}]})
    s3.put_object(Bucket="corsy", Key="k", Body=b"shared", ACL="public-read")
    url = f"http://127.0.0.1:{up[1]}/corsy/k"
    got = requests.get(url, headers={"Origin": "https://app.example.com"}, timeout=5)
    assert got.content == b"shared"
    assert got.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert got.headers["Access-Control-Allow-Credentials"] == "true"
    assert got.headers["Access-Control-Expose-Headers"] == "ETag, x-amz-request-id"
    assert "GET" in got.headers["Access-Control-Allow-Methods"] and got.headers["Vary"] == "Origin"
    # another origin matches the wildcard rule: "*", no credentials
    other = requests.get(url, headers={"Origin": "https://else.test"}, timeout=5)
    assert other.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in other.headers
    # a presigned PUT from the allowed origin; a method no rule allows gets no CORS headers
    put_url = s3.generate_presigned_url("put_object", Params={"Bucket": "corsy", "Key": "up"})
    put = requests.put(put_url, data=b"from the browser", headers={"Origin": "https://app.example.com"}, timeout=5)
    assert put.status_code == 200 and put.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    put = requests.put(put_url, data=b"x", headers={"Origin": "https://else.test"}, timeout=5)
    assert put.status_code == 200 and "Access-Control-Allow-Origin" not in put.headers
    # errors carry them too (the browser must be able to read the error); no Origin, no headers
    missing = requests.get(url + "-missing", headers={"Origin": "https://app.example.com"}, timeout=5)
    assert missing.status_code in (403, 404)
    assert missing.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "Access-Control-Allow-Origin" not in requests.get(url, timeout=5).headers
    s3.close()
