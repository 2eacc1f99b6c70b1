"""Signatures: what botocore signs verifies; a wrong secret, an unknown key or a stale clock do not."""

from __future__ import annotations

import time
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
