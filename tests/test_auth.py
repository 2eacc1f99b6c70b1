"""Signatures: what botocore signs verifies; a wrong secret, an unknown key or a stale clock do not."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from botocore.auth import SigV2Auth, SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from euca.auth import SignedRequest, verify
from euca.core.errors import AuthFailure, RequestExpired

KEYS = {"AKIDEXAMPLE": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}
FORM = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
PARAMS = {"Action": "DescribeInstances", "Version": "2016-11-15", "InstanceId.1": "i-12345678",
          "Filter.1.Name": "tag:Name", "Filter.1.Value.1": "a b/c*"}


def _received(req: AWSRequest) -> SignedRequest:
    """The request as the server sees it."""
    prepared = req.prepare()
    parts = urlsplit(prepared.url)
    body = prepared.body or b""
    if isinstance(body, str):
        body = body.encode()
    headers = {k.lower(): v for k, v in prepared.headers.items()}
    headers.setdefault("host", parts.netloc)
    from urllib.parse import parse_qsl

    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    params.update(parse_qsl(body.decode(), keep_blank_values=True))
    return SignedRequest(prepared.method, parts.path or "/", parts.query, headers, body, params)


def _signed(auth: type, secret: str = KEYS["AKIDEXAMPLE"], path: str = "/services/Eucalyptus",
            method: str = "POST") -> SignedRequest:
    creds = Credentials("AKIDEXAMPLE", secret)
    url = f"http://127.0.0.1:8773{path}"
    if method == "POST":
        req = AWSRequest(method, url, data=dict(PARAMS), headers=dict(FORM))
    else:
        req = AWSRequest(method, url, params=dict(PARAMS))
    if auth is SigV2Auth:
        auth(creds).add_auth(req)
    else:
        auth(creds, "ec2", "eucalyptus").add_auth(req)
    return _received(req)


@pytest.mark.parametrize("auth", [SigV4Auth, SigV4QueryAuth, SigV2Auth])
@pytest.mark.parametrize("method", ["POST", "GET"])
def test_botocore_signatures_verify(auth: type, method: str) -> None:
    assert verify(_signed(auth, method=method), KEYS.get) == "AKIDEXAMPLE"


@pytest.mark.parametrize("auth", [SigV4Auth, SigV4QueryAuth, SigV2Auth])
def test_wrong_secret_is_auth_failure(auth: type) -> None:
    with pytest.raises(AuthFailure):
        verify(_signed(auth, secret="not-the-secret"), KEYS.get)


@pytest.mark.parametrize("auth", [SigV4Auth, SigV2Auth])
def test_unknown_key_is_auth_failure(auth: type) -> None:
    with pytest.raises(AuthFailure):
        verify(_signed(auth), {}.get)


def test_tampered_parameter_is_auth_failure() -> None:
    req = _signed(SigV4Auth)
    body = req.body.replace(b"i-12345678", b"i-87654321")
    with pytest.raises(AuthFailure):
        verify(SignedRequest(req.method, req.path, req.query, req.headers, body, req.params), KEYS.get)


@pytest.mark.parametrize("auth", [SigV4Auth, SigV2Auth])
def test_stale_timestamp_is_request_expired(auth: type) -> None:
    with pytest.raises(RequestExpired):
        verify(_signed(auth), KEYS.get, now=time.time() + 16 * 60)
    assert verify(_signed(auth), KEYS.get, now=time.time() + 14 * 60) == "AKIDEXAMPLE"


def test_hmac_sha1_version_2() -> None:
    import base64
    import hashlib
    import hmac
    from urllib.parse import quote

    params = dict(PARAMS, AWSAccessKeyId="AKIDEXAMPLE", SignatureVersion="2", SignatureMethod="HmacSHA1",
                  Timestamp=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    canonical = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(params.items()))
    to_sign = f"GET\n127.0.0.1:8773\n/\n{canonical}"
    params["Signature"] = base64.b64encode(
        hmac.new(KEYS["AKIDEXAMPLE"].encode(), to_sign.encode(), hashlib.sha1).digest()).decode()
    req = SignedRequest("GET", "/", "", {"host": "127.0.0.1:8773"}, b"", params)
    assert verify(req, KEYS.get) == "AKIDEXAMPLE"


def test_no_signature_at_all() -> None:
    with pytest.raises(AuthFailure):
        verify(SignedRequest("GET", "/", "", {}, b"", {"Action": "DescribeRegions"}), KEYS.get)


# --- the payload hash: EC2 signs the body ---------------------------------------------------------

def _v4(data: dict[str, str], headers: dict[str, str] | None = None, presign: bool = False,
        sign_payload: bool = True) -> SignedRequest:
    """A SigV4 (or presigned) form POST; ``sign_payload=False`` signs UNSIGNED-PAYLOAD, as botocore
    does for an operation with payload signing disabled over HTTPS."""
    creds = Credentials("AKIDEXAMPLE", KEYS["AKIDEXAMPLE"])
    scheme = "http" if sign_payload else "https"
    req = AWSRequest("POST", f"{scheme}://127.0.0.1:8773/", data=dict(data), headers={**FORM, **(headers or {})})
    req.context["payload_signing_enabled"] = sign_payload
    (SigV4QueryAuth if presign else SigV4Auth)(creds, "ec2", "eucalyptus").add_auth(req)
    return _received(req)


def _with_body(req: SignedRequest, body: bytes) -> SignedRequest:
    from urllib.parse import parse_qsl

    params = dict(parse_qsl(req.query, keep_blank_values=True))
    params.update(parse_qsl(body.decode(), keep_blank_values=True))
    return SignedRequest(req.method, req.path, req.query, req.headers, body, params)


def test_unsigned_payload_header_is_refused_unless_the_endpoint_allows_it() -> None:
    req = _v4(PARAMS, {"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
    with pytest.raises(AuthFailure, match="UNSIGNED-PAYLOAD is not accepted"):
        verify(req, KEYS.get)
    assert verify(req, KEYS.get, unsigned_payload=True) == "AKIDEXAMPLE"


def test_captured_unsigned_request_cannot_be_replayed_with_another_body() -> None:
    """With UNSIGNED-PAYLOAD accepted, the signature held for any body: here, another instance."""
    captured = _v4(PARAMS, {"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
    replayed = _with_body(captured, captured.body.replace(b"i-12345678", b"i-87654321"))
    assert replayed.params["InstanceId.1"] == "i-87654321"
    with pytest.raises(AuthFailure):
        verify(replayed, KEYS.get)


def test_presigned_request_covers_the_body() -> None:
    """A presigned URL signs the empty body's hash (botocore moves form fields into the query);
    it carries no other body, and one signed over UNSIGNED-PAYLOAD is refused on EC2."""
    presigned = _v4(PARAMS, presign=True)
    assert presigned.body == b"" and "X-Amz-Signature" in presigned.params
    assert verify(presigned, KEYS.get) == "AKIDEXAMPLE"
    with pytest.raises(AuthFailure):
        verify(_with_body(presigned, b"InstanceId.2=i-87654321"), KEYS.get)

    unsigned = _v4(PARAMS, presign=True, sign_payload=False)
    assert verify(unsigned, KEYS.get, unsigned_payload=True) == "AKIDEXAMPLE"
    smuggled = _with_body(unsigned, b"InstanceId.2=i-87654321")
    assert verify(smuggled, KEYS.get, unsigned_payload=True) == "AKIDEXAMPLE"  # what S3 would allow
    with pytest.raises(AuthFailure):
        verify(smuggled, KEYS.get)
    with pytest.raises(AuthFailure):
        verify(unsigned, KEYS.get)


def test_declared_payload_hash_must_be_the_bodys() -> None:
    import hashlib

    declared = hashlib.sha256(_v4(PARAMS).body).hexdigest()
    honest = _v4(PARAMS, {"X-Amz-Content-SHA256": declared})
    assert verify(honest, KEYS.get) == "AKIDEXAMPLE"
    with pytest.raises(AuthFailure, match="x-amz-content-sha256"):
        verify(_with_body(honest, honest.body + b"&InstanceId.2=i-87654321"), KEYS.get)
    streaming = _v4(PARAMS, {"X-Amz-Content-SHA256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"})
    with pytest.raises(AuthFailure):
        verify(streaming, KEYS.get)


def test_ec2_endpoint_refuses_unsigned_payload(tmp_path: Path) -> None:
    import requests

    from tests.ec2_server import running_box

    with running_box(tmp_path, nodes=1) as box:
        access, secret = box.keys()
        for presign in (False, True):
            req = AWSRequest("POST", box.url.replace("http:", "https:") + "/",
                             data={"Action": "DescribeRegions", "Version": "2016-11-15"},
                             headers={**FORM, "X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"} if not presign else FORM)
            req.context["payload_signing_enabled"] = False
            (SigV4QueryAuth if presign else SigV4Auth)(Credentials(access, secret), "ec2", "eucalyptus").add_auth(req)
            prepared = req.prepare()
            url = prepared.url.replace("https:", "http:")
            body = b"Action=DescribeRegions&Version=2016-11-15&RegionName.1=elsewhere" if presign else prepared.body
            headers = {**dict(prepared.headers), **({"Content-Type": FORM["Content-Type"]} if presign else {})}
            with requests.Session() as http:
                r = http.post(url, data=body, headers=headers)
            assert r.status_code == 401, r.text
            assert "<Code>AuthFailure</Code>" in r.text
