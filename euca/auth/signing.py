"""AWS request signatures, checked against the secret the store holds for the access key.

Version 4 in the Authorization header (what boto3 and the aws CLI send) and in the query string
(presigned URLs); Version 2 (HmacSHA256 / HmacSHA1) as older EC2 tools send it. EC2 answers an
unknown key and a wrong signature alike with AuthFailure, and a timestamp more than 15 minutes
off with RequestExpired.

A Version 4 signature covers the body through its payload hash. EC2 (like IAM) signs the hash of
the actual body: ``X-Amz-Content-SHA256: UNSIGNED-PAYLOAD``, in the header or in a presigned
request, would let a captured request be replayed with another body, so it is refused unless the
endpoint passes ``unsigned_payload=True`` (S3 does, for streaming uploads). A declared hash must
be the body's.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from urllib.parse import quote, unquote_plus

from euca.core.errors import AuthFailure, RequestExpired

MAX_SKEW = 15 * 60
MAX_PRESIGN = 7 * 24 * 3600
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"

SecretLookup = Callable[[str], str | None]


@dataclass(frozen=True)
class SignedRequest:
    """What a signature covers: method, path, the raw query string, the headers (lower-case names), the body."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: bytes
    params: Mapping[str, str]  # query and form parameters, decoded


def verify(request: SignedRequest, secret_of: SecretLookup, now: float | None = None,
           unsigned_payload: bool = False) -> str:
    """The access key that signed ``request``, or AuthFailure / RequestExpired. ``unsigned_payload``:
    whether a Version 4 signature may leave the body out (``UNSIGNED-PAYLOAD``); only S3 allows it."""
    now = time.time() if now is None else now
    authorization = request.headers.get("authorization", "")
    if authorization.startswith("AWS4-HMAC-SHA256 "):
        return _verify_v4_header(request, authorization, secret_of, now, unsigned_payload)
    if request.params.get("X-Amz-Algorithm") == "AWS4-HMAC-SHA256":
        return _verify_v4_query(request, secret_of, now, unsigned_payload)
    if request.params.get("SignatureVersion") == "2":
        return _verify_v2(request, secret_of, now)
    raise AuthFailure("AWS was not able to validate the provided access credentials")


def _fail() -> AuthFailure:
    return AuthFailure("AWS was not able to validate the provided access credentials")


def _secret(secret_of: SecretLookup, access_key: str) -> str:
    secret = secret_of(access_key) if 0 < len(access_key) <= 128 else None
    if secret is None:
        raise _fail()
    return secret


# --- Signature Version 4 ---------------------------------------------------------------------------

def _amz_time(text: str) -> float:
    # strptime takes a lock and consults the locale; this fixed layout does not need either
    if len(text) != 16 or text[8] != "T" or text[15] != "Z" or not (text[:8] + text[9:15]).isdigit():
        raise _fail()
    try:
        return datetime(int(text[:4]), int(text[4:6]), int(text[6:8]), int(text[9:11]), int(text[11:13]),
                        int(text[13:15]), tzinfo=UTC).timestamp()
    except ValueError:
        raise _fail() from None


def _canonical_query(query: str, skip: str = "") -> str:
    pairs: list[tuple[str, str]] = []
    for part in query.split("&") if query else ():
        key, _, value = part.partition("=")
        key, value = unquote_plus(key), unquote_plus(value)
        if key == skip:
            continue
        pairs.append((quote(key, safe="-_.~"), quote(value, safe="-_.~")))
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def _canonical_headers(headers: Mapping[str, str], signed: list[str]) -> str:
    lines = []
    for name in signed:
        value = headers.get(name)
        if value is None:
            raise _fail()
        lines.append(f"{name}:{' '.join(value.split())}\n")
    return "".join(lines)


@lru_cache(maxsize=1024)
def _signing_key(secret: str, date: str, region: str, service: str, terminal: str) -> bytes:
    """The derived key changes once a day per secret, region and service; four HMACs saved per request."""
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, terminal):
        key = hmac.digest(key, part.encode(), "sha256")
    return key


def _v4_signature(secret: str, scope: list[str], amz_date: str, canonical: str) -> str:
    string_to_sign = "\n".join([
        "AWS4-HMAC-SHA256", amz_date, "/".join(scope), hashlib.sha256(canonical.encode()).hexdigest()])
    key = _signing_key(secret, *scope)
    return hmac.digest(key, string_to_sign.encode(), "sha256").hex()


def _scope(credential: str) -> tuple[str, list[str]]:
    parts = credential.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request" or len(parts[1]) != 8:
        raise _fail()
    return parts[0], parts[1:]


def _check_v4(request: SignedRequest, secret_of: SecretLookup, credential: str, signed_headers: str,
              signature: str, amz_date: str, query: str, payloads: tuple[str, ...]) -> str:
    access_key, scope = _scope(credential)
    secret = _secret(secret_of, access_key)
    signed = signed_headers.split(";")
    if "host" not in signed or signed != sorted(signed):
        raise _fail()
    path = quote(request.path or "/", safe="/~")
    head = "\n".join([request.method.upper(), path, query, _canonical_headers(request.headers, signed), signed_headers])
    for payload in payloads:
        expected = _v4_signature(secret, scope, amz_date, f"{head}\n{payload}")
        if hmac.compare_digest(expected, signature):
            return access_key
    raise _fail()


def _payloads(request: SignedRequest, unsigned_payload: bool, presigned: bool) -> tuple[str, ...]:
    """The payload hashes a signature over ``request`` may have used: the body's own, the declared
    ``x-amz-content-sha256`` if it is that, and ``UNSIGNED-PAYLOAD`` only where allowed."""
    actual = hashlib.sha256(request.body).hexdigest()
    declared = request.headers.get("x-amz-content-sha256")
    if declared == UNSIGNED_PAYLOAD or (presigned and declared is None):
        if unsigned_payload:
            return (actual, UNSIGNED_PAYLOAD)
        if declared is not None:
            raise AuthFailure("This service requires the signature to cover the request body: "
                              "UNSIGNED-PAYLOAD is not accepted")
        return (actual,)
    if declared is not None and declared != actual:
        raise AuthFailure("The provided x-amz-content-sha256 header does not match what was computed.")
    return (actual,)


def _verify_v4_header(request: SignedRequest, authorization: str, secret_of: SecretLookup, now: float,
                      unsigned_payload: bool) -> str:
    fields: dict[str, str] = {}
    for item in authorization[len("AWS4-HMAC-SHA256 "):].split(","):
        key, _, value = item.strip().partition("=")
        fields[key] = value
    try:
        credential, signed_headers, signature = fields["Credential"], fields["SignedHeaders"], fields["Signature"]
    except KeyError:
        raise _fail() from None
    amz_date = request.headers.get("x-amz-date", "")
    if not amz_date:
        raise _fail()
    if abs(now - _amz_time(amz_date)) > MAX_SKEW:
        raise RequestExpired(f"Request has expired. Timestamp date is {amz_date}")
    payloads = _payloads(request, unsigned_payload, presigned=False)
    return _check_v4(request, secret_of, credential, signed_headers, signature, amz_date,
                     _canonical_query(request.query), payloads)


def _verify_v4_query(request: SignedRequest, secret_of: SecretLookup, now: float, unsigned_payload: bool) -> str:
    p = request.params
    try:
        credential, signed_headers, signature = p["X-Amz-Credential"], p["X-Amz-SignedHeaders"], p["X-Amz-Signature"]
        amz_date, expires = p["X-Amz-Date"], int(p.get("X-Amz-Expires", "3600"))
    except (KeyError, ValueError):
        raise _fail() from None
    signed_at = _amz_time(amz_date)
    if not 0 < expires <= MAX_PRESIGN:
        raise _fail()
    if now > signed_at + expires or signed_at - now > MAX_SKEW:
        raise RequestExpired(f"Request has expired. Timestamp date is {amz_date}")
    payloads = _payloads(request, unsigned_payload, presigned=True)
    return _check_v4(request, secret_of, credential, signed_headers, signature, amz_date,
                     _canonical_query(request.query, skip="X-Amz-Signature"), payloads)


# --- Signature Version 2 ---------------------------------------------------------------------------

def _iso_time(text: str) -> float:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise _fail() from None


def _verify_v2(request: SignedRequest, secret_of: SecretLookup, now: float) -> str:
    p = request.params
    access_key = p.get("AWSAccessKeyId", "")
    method = p.get("SignatureMethod", "")
    digest = {"HmacSHA256": hashlib.sha256, "HmacSHA1": hashlib.sha1}.get(method)
    signature = p.get("Signature", "")
    if digest is None or not signature:
        raise _fail()
    if "Expires" in p:
        if now > _iso_time(p["Expires"]):
            raise RequestExpired(f"Request has expired. Expires date is {p['Expires']}")
    elif "Timestamp" in p:
        if abs(now - _iso_time(p["Timestamp"])) > MAX_SKEW:
            raise RequestExpired(f"Request has expired. Timestamp date is {p['Timestamp']}")
    else:
        raise _fail()
    secret = _secret(secret_of, access_key)
    pairs = [f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(p.items()) if k != "Signature"]
    host = request.headers.get("host", "").lower()
    to_sign = f"{request.method.upper()}\n{host}\n{request.path or '/'}\n{'&'.join(pairs)}"
    expected = base64.b64encode(hmac.new(secret.encode(), to_sign.encode(), digest).digest()).decode()
    if not hmac.compare_digest(expected, signature):
        raise _fail()
    return access_key
