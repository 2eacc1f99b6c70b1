"""S3's request signatures: Version 4 (header, presigned query, aws-chunked streaming uploads)
and Version 2 (``Authorization: AWS key:signature`` and the ``AWSAccessKeyId/Expires/Signature``
query). The canonical forms are those of ``euca.auth.signing``; the differences from EC2 are S3's:

- the payload hash is whatever ``x-amz-content-sha256`` declares (a hex SHA-256 the body is then
  checked against as it streams in, ``UNSIGNED-PAYLOAD``, or ``STREAMING-AWS4-HMAC-SHA256-PAYLOAD``
  whose chunks each carry a signature chained from the request's), so the signature is checked
  before a byte of the body is read;
- the errors: ``InvalidAccessKeyId``, ``SignatureDoesNotMatch``, ``AccessDenied`` "Request has
  expired" for a presigned URL past its time, ``RequestTimeTooSkewed`` for a clock 15 minutes off.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from functools import lru_cache
from urllib.parse import quote, unquote

from euca.auth.signing import (
    EMPTY_SHA256,
    MAX_PRESIGN,
    MAX_SKEW,
    UNSIGNED_PAYLOAD,
    SecretLookup,
    _canonical_headers,
    _canonical_query,
    _signing_key,
)
from euca.auth.signing import _amz_time as signing_time
from euca.core.errors import AuthFailure
from euca.core.s3errors import (
    AccessDenied,
    AuthorizationHeaderMalformed,
    InvalidAccessKeyId,
    InvalidArgument,
    InvalidRequest,
    RequestTimeTooSkewed,
    SignatureDoesNotMatch,
)

_SHA256_HEX = re.compile("[0-9a-f]{64}")
STREAMING = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
STREAMING_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"

# The query parameters a Version 2 signature covers (S3's sub-resources and response overrides).
_V2_SUBRESOURCES = frozenset((
    "acl", "cors", "delete", "lifecycle", "location", "logging", "notification", "partNumber", "policy",
    "requestPayment", "restore", "tagging", "torrent", "uploadId", "uploads", "versionId", "versioning",
    "versions", "website", "response-cache-control", "response-content-disposition", "response-content-encoding",
    "response-content-language", "response-content-type", "response-expires"))


@dataclass(frozen=True)
class ChunkChain:
    """What the chunks of a ``STREAMING-AWS4-HMAC-SHA256-PAYLOAD`` upload are signed with: each
    chunk's signature covers the previous one's, starting from the request's ("seed")."""

    key: bytes
    amz_date: str
    scope: str
    seed: str

    def signature(self, previous: str, chunk_sha256: str) -> str:
        to_sign = "\n".join(("AWS4-HMAC-SHA256-PAYLOAD", self.amz_date, self.scope, previous, EMPTY_SHA256,
                             chunk_sha256))
        return hmac.digest(self.key, to_sign.encode(), "sha256").hex()


@dataclass(frozen=True)
class S3Signature:
    """A verified request: the access key (None: anonymous), the payload hash it declared (hex,
    ``UNSIGNED-PAYLOAD`` or a streaming mode), and for signed streaming the chunk chain."""

    access_key: str | None
    payload: str = UNSIGNED_PAYLOAD
    chain: ChunkChain | None = None


def verify_s3(method: str, raw_path: str, raw_query: str, headers: Mapping[str, str], params: Mapping[str, str],
              secret_of: SecretLookup, v2_resources: Sequence[str] | Callable[[], Sequence[str]],
              now: float | None = None) -> S3Signature:
    """Check the request's signature, if it has one. ``raw_path`` as sent (percent-encoded);
    ``v2_resources``: the paths a Version 2 signature may have covered (path style with and
    without the service prefix, ``/bucket/key`` for a virtual-hosted request), or what makes
    them (asked only for a Version 2 signature)."""
    now = time.time() if now is None else now
    authorization = headers.get("authorization", "")
    if authorization.startswith("AWS4-HMAC-SHA256"):
        return _v4_header(method, raw_path, raw_query, headers, authorization, secret_of, now)
    if params.get("X-Amz-Algorithm"):
        if params["X-Amz-Algorithm"] != "AWS4-HMAC-SHA256":
            raise InvalidArgument("Unsupported algorithm", ArgumentName="X-Amz-Algorithm")
        return _v4_query(method, raw_path, raw_query, headers, params, secret_of, now)
    if authorization.startswith("AWS "):
        return _v2_header(method, raw_query, headers, authorization, secret_of, _listed(v2_resources), now)
    if "Signature" in params and "AWSAccessKeyId" in params:
        return _v2_query(method, raw_query, headers, params, secret_of, _listed(v2_resources), now)
    if authorization:
        raise InvalidArgument("Unsupported Authorization Type", ArgumentName="Authorization")
    return S3Signature(None)


def _listed(resources: Sequence[str] | Callable[[], Sequence[str]]) -> Sequence[str]:
    return resources() if callable(resources) else resources


def _secret(secret_of: SecretLookup, access_key: str) -> str:
    secret = secret_of(access_key) if 0 < len(access_key) <= 128 else None
    if secret is None:
        raise InvalidAccessKeyId(AWSAccessKeyId=access_key[:128])
    return secret


def _amz_time(text: str) -> float:
    try:
        return _signed_at(text)
    except AuthFailure:
        raise AccessDenied("AWS authentication requires a valid Date or x-amz-date header") from None


@lru_cache(maxsize=256)  # the requests of one second carry the same timestamp
def _signed_at(text: str) -> float:
    return signing_time(text)


_PLAIN_PATH = re.compile("[A-Za-z0-9/._~-]*")


def _canonical_path(raw_path: str) -> str:
    # S3 signs the path as sent, without normalising it; re-encoding the decoded form gives the
    # same string for anything botocore or the aws CLI sends, and a canonical one for the rest.
    if _PLAIN_PATH.fullmatch(raw_path) and raw_path:
        return raw_path  # nothing encoded, nothing to encode
    return quote(unquote(raw_path or "/"), safe="/~")


def _v4_check(method: str, raw_path: str, query: str, headers: Mapping[str, str], credential: str,
              signed_headers: str, signature: str, amz_date: str, payload: str,
              secret_of: SecretLookup) -> tuple[str, bytes, str]:
    parts = credential.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request" or len(parts[1]) != 8:
        raise AuthorizationHeaderMalformed("The authorization header is malformed; the Credential is mal-formed; "
                                           "expecting \"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\".")
    access_key, scope = parts[0], parts[1:]
    secret = _secret(secret_of, access_key)
    signed = signed_headers.split(";")
    if "host" not in signed:
        raise AccessDenied("Signed headers must include host")
    try:
        canonical_headers = _canonical_headers(headers, signed)
    except Exception:
        raise SignatureDoesNotMatch() from None
    canonical = "\n".join([method.upper(), _canonical_path(raw_path), query, canonical_headers, signed_headers,
                           payload])
    string_to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, "/".join(scope),
                                hashlib.sha256(canonical.encode()).hexdigest()])
    key = _signing_key(secret, *scope)
    expected = hmac.digest(key, string_to_sign.encode(), "sha256").hex()
    if not hmac.compare_digest(expected, signature):
        raise SignatureDoesNotMatch(AWSAccessKeyId=access_key, StringToSign=string_to_sign)
    return access_key, key, "/".join(scope)


def _v4_header(method: str, raw_path: str, raw_query: str, headers: Mapping[str, str], authorization: str,
               secret_of: SecretLookup, now: float) -> S3Signature:
    fields: dict[str, str] = {}
    for item in authorization[len("AWS4-HMAC-SHA256"):].split(","):
        name, _, value = item.strip().partition("=")
        fields[name] = value
    try:
        credential, signed_headers, signature = fields["Credential"], fields["SignedHeaders"], fields["Signature"]
    except KeyError:
        raise AuthorizationHeaderMalformed() from None
    amz_date = headers.get("x-amz-date", "")
    if not amz_date:
        date = headers.get("date", "")
        try:
            amz_date = time.strftime("%Y%m%dT%H%M%SZ", parsedate_to_datetime(date).utctimetuple())
        except (TypeError, ValueError):
            raise AccessDenied("AWS authentication requires a valid Date or x-amz-date header") from None
    signed_at = _amz_time(amz_date)
    if abs(now - signed_at) > MAX_SKEW:
        raise RequestTimeTooSkewed(RequestTime=amz_date, MaxAllowedSkewMilliseconds=str(MAX_SKEW * 1000))
    payload = headers.get("x-amz-content-sha256")
    if payload is None:
        raise InvalidRequest("Missing required header for this request: x-amz-content-sha256")
    if payload not in (UNSIGNED_PAYLOAD, STREAMING, STREAMING_UNSIGNED_TRAILER) and not _SHA256_HEX.fullmatch(payload):
        raise InvalidArgument("x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD "
                              "or a valid sha256 value.", ArgumentName="x-amz-content-sha256",
                              ArgumentValue=payload[:80])
    access_key, key, scope = _v4_check(method, raw_path, _canonical_query(raw_query), headers, credential,
                                       signed_headers, signature, amz_date, payload, secret_of)
    chain = ChunkChain(key, amz_date, scope, signature) if payload == STREAMING else None
    return S3Signature(access_key, payload, chain)


def _v4_query(method: str, raw_path: str, raw_query: str, headers: Mapping[str, str], params: Mapping[str, str],
              secret_of: SecretLookup, now: float) -> S3Signature:
    try:
        credential, signed_headers = params["X-Amz-Credential"], params["X-Amz-SignedHeaders"]
        signature, amz_date = params["X-Amz-Signature"], params["X-Amz-Date"]
        expires = int(params.get("X-Amz-Expires", "604800"))
    except (KeyError, ValueError):
        raise AuthorizationHeaderMalformed("Query-string authentication requires the X-Amz-Credential, "
                                           "X-Amz-SignedHeaders, X-Amz-Signature and X-Amz-Date parameters") from None
    if not 0 < expires <= MAX_PRESIGN:
        raise AuthorizationHeaderMalformed("X-Amz-Expires must be between 1 and 604800 seconds")
    signed_at = _amz_time(amz_date)
    if now > signed_at + expires:
        raise AccessDenied("Request has expired", X_Amz_Expires=str(expires))
    if signed_at - now > MAX_SKEW:
        raise AccessDenied("Request is not valid yet")
    access_key, _, _ = _v4_check(method, raw_path, _canonical_query(raw_query, skip="X-Amz-Signature"), headers,
                                 credential, signed_headers, signature, amz_date,
                                 headers.get("x-amz-content-sha256", UNSIGNED_PAYLOAD), secret_of)
    return S3Signature(access_key, headers.get("x-amz-content-sha256", UNSIGNED_PAYLOAD))


# --- Signature Version 2 ---------------------------------------------------------------------------

def _v2_string(method: str, headers: Mapping[str, str], date: str, resource: str, raw_query: str) -> str:
    amz = sorted((k, " ".join(v.split())) for k, v in headers.items() if k.startswith("x-amz-"))
    sub = []
    for part in raw_query.split("&") if raw_query else ():
        name, eq, value = part.partition("=")
        name = unquote(name)
        if name in _V2_SUBRESOURCES:
            sub.append(f"{name}={unquote(value)}" if eq and value != "" else name)
    resource += ("?" + "&".join(sorted(sub))) if sub else ""
    return "\n".join([method.upper(), headers.get("content-md5", ""), headers.get("content-type", ""), date,
                      *(f"{k}:{v}" for k, v in amz), resource])


def _v2_check(method: str, raw_query: str, headers: Mapping[str, str], access_key: str, signature: str,
              dates: Sequence[str], secret_of: SecretLookup, resources: Sequence[str]) -> S3Signature:
    secret = _secret(secret_of, access_key)
    for resource in resources:
        for date in dates:
            to_sign = _v2_string(method, headers, date, resource, raw_query)
            expected = base64.b64encode(hmac.digest(secret.encode(), to_sign.encode(), "sha1")).decode()
            if hmac.compare_digest(expected, signature):
                return S3Signature(access_key)
    raise SignatureDoesNotMatch(AWSAccessKeyId=access_key)


def _v2_header(method: str, raw_query: str, headers: Mapping[str, str], authorization: str,
               secret_of: SecretLookup, resources: Sequence[str], now: float) -> S3Signature:
    access_key, sep, signature = authorization[4:].strip().rpartition(":")
    if not sep:
        raise AuthorizationHeaderMalformed()
    when = headers.get("x-amz-date") or headers.get("date", "")
    try:
        signed_at = parsedate_to_datetime(when).timestamp()
    except (TypeError, ValueError):
        raise AccessDenied("AWS authentication requires a valid Date or x-amz-date header") from None
    if abs(now - signed_at) > MAX_SKEW:
        raise RequestTimeTooSkewed(RequestTime=when, MaxAllowedSkewMilliseconds=str(MAX_SKEW * 1000))
    dates = [headers.get("date", "")] + ([""] if "x-amz-date" in headers else [])
    return _v2_check(method, raw_query, headers, access_key, signature, dates, secret_of, resources)


def _v2_query(method: str, raw_query: str, headers: Mapping[str, str], params: Mapping[str, str],
              secret_of: SecretLookup, resources: Sequence[str], now: float) -> S3Signature:
    expires = params.get("Expires", "")
    if not expires.isdigit():
        raise AccessDenied("Query-string authentication requires the Signature, Expires and AWSAccessKeyId "
                           "parameters")
    if now > int(expires):
        raise AccessDenied("Request has expired", Expires=expires)
    return _v2_check(method, raw_query, headers, params["AWSAccessKeyId"], params["Signature"], [expires],
                     secret_of, resources)


# --- browser forms (POST Object) -------------------------------------------------------------------

def verify_post(fields: Mapping[str, str], secret_of: SecretLookup) -> str | None:
    """The access key whose secret signed a browser form's ``policy`` (None: an anonymous form, no
    signature). ``fields``: the form's fields by lower-case name. Version 4 signs the base64 policy
    with the day's derived key (``x-amz-credential``); Version 2 with the secret itself (HMAC-SHA1)."""
    policy = fields.get("policy", "")
    if "x-amz-signature" in fields or "x-amz-algorithm" in fields or "x-amz-credential" in fields:
        if fields.get("x-amz-algorithm") != "AWS4-HMAC-SHA256":
            raise InvalidArgument("POST requires the x-amz-algorithm field to be AWS4-HMAC-SHA256",
                                  ArgumentName="x-amz-algorithm", ArgumentValue=fields.get("x-amz-algorithm", ""))
        for name in ("x-amz-credential", "x-amz-date", "x-amz-signature", "policy"):
            if not fields.get(name):
                raise InvalidArgument(f"Bucket POST must contain a field named '{name}'.  If it is specified, "
                                      "please check the order of the fields.", ArgumentName=name)
        parts = fields["x-amz-credential"].split("/")
        if len(parts) != 5 or parts[4] != "aws4_request" or len(parts[1]) != 8:
            raise InvalidArgument("The credential is malformed; expecting "
                                  "\"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\".",
                                  ArgumentName="x-amz-credential", ArgumentValue=fields["x-amz-credential"])
        access_key = parts[0]
        key = _signing_key(_secret(secret_of, access_key), *parts[1:])
        expected = hmac.digest(key, policy.encode(), "sha256").hex()
        if not hmac.compare_digest(expected, fields["x-amz-signature"]):
            raise SignatureDoesNotMatch(AWSAccessKeyId=access_key, StringToSign=policy)
        return access_key
    if "signature" in fields or "awsaccesskeyid" in fields:
        for name in ("awsaccesskeyid", "signature", "policy"):
            if not fields.get(name):
                raise InvalidArgument(f"Bucket POST must contain a field named '{name}'.  If it is specified, "
                                      "please check the order of the fields.", ArgumentName=name)
        access_key = fields["awsaccesskeyid"]
        secret = _secret(secret_of, access_key)
        expected = base64.b64encode(hmac.digest(secret.encode(), policy.encode(), "sha1")).decode()
        if not hmac.compare_digest(expected, fields["signature"]):
            raise SignatureDoesNotMatch(AWSAccessKeyId=access_key, StringToSign=policy)
        return access_key
    return None
