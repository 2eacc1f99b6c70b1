"""Bucket requests: the service listing, create, delete, head, location, listings, versioning,
ACL, CORS, lifecycle and tags."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from euca.api.s3 import grants, wire
from euca.api.s3.body import read_small
from euca.api.s3.call import Call, Reply
from euca.api.s3.objects import check_tags
from euca.core.s3errors import (
    AccessDenied,
    InvalidArgument,
    InvalidLocationConstraint,
    InvalidRequest,
    MalformedXML,
    NoSuchCORSConfiguration,
    NoSuchLifecycleConfiguration,
    NoSuchTagSet,
)
from euca.walrus.acl import READ, READ_ACP
from euca.walrus.model import NULL_VERSION, Listed


async def list_buckets(call: Call) -> Reply:
    if call.who is None:
        raise AccessDenied()
    buckets = call.walrus.list_buckets(call.who)
    return Reply(body=wire.render("ListBuckets", {
        "Buckets": [{"Name": b.name, "CreationDate": b.created} for b in buckets],
        "Owner": grants.owner_of(call.who.account_id, call.walrus.directory)}))


async def create_bucket(call: Call) -> Reply:
    body = await read_small(call.receive, call.signature)
    doc = wire.parse("CreateBucket", body)
    location = str(doc.get("LocationConstraint", ""))
    if location and (len(location) > 64 or not location.replace("-", "").isalnum()):
        raise InvalidLocationConstraint()
    acl = grants.from_headers(call.headers, call.walrus.directory) or "private"
    call.walrus.create_bucket(call.who, call.bucket, location, acl)
    return Reply(headers={"location": f"/{call.bucket}"})


async def delete_bucket(call: Call) -> Reply:
    call.walrus.delete_bucket(call.who, call.bucket)
    return Reply(204)


async def head_bucket(call: Call) -> Reply:
    bucket = call.walrus.bucket(call.who, call.bucket, READ)
    return Reply(headers={"x-amz-bucket-region": bucket.location or "eucalyptus"})


async def get_location(call: Call) -> Reply:
    bucket = call.walrus.bucket(call.who, call.bucket)
    return Reply(body=wire.location(bucket.location))


def _max_keys(call: Call, name: str = "max-keys") -> int:
    text = call.query.get(name, "1000")
    if not text.lstrip("-").isdigit() or int(text) < 0:
        raise InvalidArgument(f"Provided {name} not an integer or within integer range", ArgumentName=name,
                              ArgumentValue=text)
    return min(int(text), 1000)


def _encoder(call: Call) -> Any:
    encoding = call.query.get("encoding-type")
    if encoding is None:
        return lambda s: s
    if encoding != "url":
        raise InvalidArgument("Invalid Encoding Method specified in Request", ArgumentName="encoding-type")
    return lambda s: quote(s, safe="/")


async def list_objects(call: Call) -> Reply:
    v2 = call.query.get("list-type") == "2"
    if "list-type" in call.query and not v2:
        raise InvalidArgument("Invalid List Type specified in Request", ArgumentName="list-type")
    encode = _encoder(call)
    prefix, delimiter = call.query.get("prefix", ""), call.query.get("delimiter", "")
    max_keys = _max_keys(call)
    if v2:
        token = call.query.get("continuation-token")
        after = call.query.get("start-after", "")
        if token is not None:
            after = _untoken(token)
    else:
        after = call.query.get("marker", "")
    listing = call.walrus.list_objects(call.who, call.bucket, prefix, delimiter, after, max_keys)
    contents = _contents_xml(listing.objects, call, encode, owner=not v2 or call.query.get("fetch-owner") == "true")
    result: dict[str, Any] = {
        "Name": call.bucket, "Prefix": encode(prefix), "MaxKeys": max_keys, "IsTruncated": listing.truncated,
        "Contents": [{"Key": _SLOT}] if contents else [],
        "CommonPrefixes": [{"Prefix": encode(p)} for p in listing.prefixes]}
    if delimiter:
        result["Delimiter"] = encode(delimiter)
    if "encoding-type" in call.query:
        result["EncodingType"] = "url"
    if v2:
        result["KeyCount"] = len(listing.objects) + len(listing.prefixes)
        if "continuation-token" in call.query:
            result["ContinuationToken"] = call.query["continuation-token"]
        if "start-after" in call.query:
            result["StartAfter"] = encode(call.query["start-after"])
        if listing.truncated:
            result["NextContinuationToken"] = _token(listing.next_marker)
        return Reply(body=_fill(wire.render("ListObjectsV2", result), contents))
    result["Marker"] = encode(after)
    if listing.truncated and delimiter:
        result["NextMarker"] = encode(listing.next_marker)
    return Reply(body=_fill(wire.render("ListObjects", result), contents))


# A listing's <Contents> elements are written straight from fragments (the model-driven writer
# costs more than the database for a page of 1,000 keys) and put where the writer left a marker.
_SLOT = "euca-listing-contents-slot"
_SLOT_XML = f"<Contents><Key>{_SLOT}</Key></Contents>".encode()


def _contents_xml(objects: list[Listed], call: Call, encode: Any, owner: bool) -> bytes:
    owners: dict[str, str] = {}
    out: list[str] = []
    escape, stamp = wire.escape, wire.timestamp
    for info in objects:
        tail = ""
        if owner:
            tail = owners.get(info.owner, "")
            if not tail:
                found = grants.owner_of(info.owner, call.walrus.directory)
                tail = owners[info.owner] = (f"<Owner><ID>{escape(found['ID'])}</ID>"
                                             f"<DisplayName>{escape(found['DisplayName'])}</DisplayName></Owner>")
        # an ETag is this server's own hex digest in quotes: nothing in it to escape
        out.append(f"<Contents><Key>{escape(encode(info.key))}</Key><LastModified>{stamp(info.modified)}"
                   f"</LastModified><ETag>{info.etag}</ETag><Size>{info.size}</Size>"
                   f"<StorageClass>STANDARD</StorageClass>{tail}</Contents>")
    return "".join(out).encode()


def _fill(document: bytes, contents: bytes) -> bytes:
    return document.replace(_SLOT_XML, contents, 1) if contents else document


def _token(key: str) -> str:
    import base64

    return base64.urlsafe_b64encode(key.encode()).decode()


def _untoken(token: str) -> str:
    import base64
    import binascii

    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, ValueError):
        raise InvalidArgument("The continuation token provided is incorrect",
                              ArgumentName="continuation-token") from None


async def list_versions(call: Call) -> Reply:
    encode = _encoder(call)
    prefix, delimiter = call.query.get("prefix", ""), call.query.get("delimiter", "")
    key_marker, version_marker = call.query.get("key-marker", ""), call.query.get("version-id-marker", "")
    max_keys = _max_keys(call)
    listing = call.walrus.list_versions(call.who, call.bucket, prefix, delimiter, key_marker, version_marker,
                                        max_keys)
    versions, markers = [], []
    for o in listing.objects:
        entry = {"Key": encode(o.key), "VersionId": o.version_id, "IsLatest": o.latest, "LastModified": o.modified,
                 "Owner": grants.owner_of(o.owner, call.walrus.directory)}
        if o.delete_marker:
            markers.append(entry)
        else:
            versions.append({**entry, "ETag": o.etag, "Size": o.size, "StorageClass": "STANDARD"})
    result: dict[str, Any] = {
        "Name": call.bucket, "Prefix": encode(prefix), "KeyMarker": encode(key_marker),
        "VersionIdMarker": version_marker, "MaxKeys": max_keys, "IsTruncated": listing.truncated,
        "Versions": versions, "DeleteMarkers": markers,
        "CommonPrefixes": [{"Prefix": encode(p)} for p in listing.prefixes]}
    if delimiter:
        result["Delimiter"] = encode(delimiter)
    if listing.truncated:
        result["NextKeyMarker"] = encode(listing.next_marker)
        result["NextVersionIdMarker"] = listing.next_version or NULL_VERSION
    return Reply(body=wire.render("ListObjectVersions", result))


# --- settings ----------------------------------------------------------------------------------------

async def get_versioning(call: Call) -> Reply:
    bucket = call.walrus.bucket(call.who, call.bucket)
    return Reply(body=wire.render("GetBucketVersioning", {"Status": bucket.versioning or None}))


async def put_versioning(call: Call) -> Reply:
    doc = wire.parse("PutBucketVersioning", await read_small(call.receive, call.signature))
    call.walrus.set_versioning(call.who, call.bucket, str(doc.get("Status", "")))
    return Reply()


async def get_bucket_acl(call: Call) -> Reply:
    bucket = call.walrus.bucket(call.who, call.bucket, READ_ACP)
    return Reply(body=wire.render("GetBucketAcl", grants.to_document(bucket.acl, call.walrus.directory)))


async def put_bucket_acl(call: Call) -> Reply:
    body = await read_small(call.receive, call.signature)
    acl = grants.from_headers(call.headers, call.walrus.directory)
    if body.strip():
        if acl is not None:
            raise InvalidRequest("Specifying both an ACL document and ACL headers is not allowed")
        acl = grants.from_document(wire.parse("PutBucketAcl", body), call.walrus.directory)
    if acl is None:
        raise MalformedXML()
    call.walrus.set_bucket_acl(call.who, call.bucket, acl)
    return Reply()


async def get_cors(call: Call) -> Reply:
    bucket = call.walrus.bucket(call.who, call.bucket)
    if not bucket.cors:
        raise NoSuchCORSConfiguration(BucketName=call.bucket)
    return Reply(body=wire.render("GetBucketCors", {"CORSRules": bucket.cors}))


async def put_cors(call: Call) -> Reply:
    doc = wire.parse("PutBucketCors", await read_small(call.receive, call.signature))
    rules = doc.get("CORSRules") or []
    if not rules or len(rules) > 100:
        raise MalformedXML()
    for rule in rules:
        if not rule.get("AllowedMethods") or not rule.get("AllowedOrigins"):
            raise MalformedXML()
        for method in rule["AllowedMethods"]:
            if method not in ("GET", "PUT", "HEAD", "POST", "DELETE"):
                raise InvalidRequest(f"Found unsupported HTTP method in CORS config. Unsupported method is {method}")
    call.walrus.configure(call.who, call.bucket, cors=rules)
    return Reply()


async def delete_cors(call: Call) -> Reply:
    call.walrus.configure(call.who, call.bucket, cors=None)
    return Reply(204)


async def get_lifecycle(call: Call) -> Reply:
    bucket = call.walrus.bucket(call.who, call.bucket)
    if not bucket.lifecycle:
        raise NoSuchLifecycleConfiguration(BucketName=call.bucket)
    return Reply(body=wire.render("GetBucketLifecycleConfiguration", {"Rules": bucket.lifecycle}))


async def put_lifecycle(call: Call) -> Reply:
    doc = wire.parse("PutBucketLifecycleConfiguration", await read_small(call.receive, call.signature))
    rules = doc.get("Rules") or []
    if not rules or len(rules) > 1000:
        raise MalformedXML()
    for rule in rules:
        if rule.get("Status") not in ("Enabled", "Disabled"):
            raise MalformedXML()
        expiration = rule.get("Expiration") or {}
        days = expiration.get("Days")
        if days is not None and (not isinstance(days, int) or days <= 0):
            raise InvalidArgument("'Days' for Expiration action must be a positive integer")
    call.walrus.configure(call.who, call.bucket, lifecycle=rules)
    return Reply()


async def delete_lifecycle(call: Call) -> Reply:
    call.walrus.configure(call.who, call.bucket, lifecycle=None)
    return Reply(204)


async def get_bucket_tagging(call: Call) -> Reply:
    bucket = call.walrus.bucket(call.who, call.bucket)
    if not bucket.tags:
        raise NoSuchTagSet(BucketName=call.bucket)
    return Reply(body=wire.render("GetBucketTagging", {"TagSet": [{"Key": k, "Value": v}
                                                                  for k, v in bucket.tags.items()]}))


async def put_bucket_tagging(call: Call) -> Reply:
    doc = wire.parse("PutBucketTagging", await read_small(call.receive, call.signature))
    if "TagSet" not in doc:
        raise MalformedXML()
    pairs = [(t.get("Key", ""), t.get("Value", "")) for t in doc["TagSet"]]
    tags = check_tags(pairs, limit=50)
    call.walrus.configure(call.who, call.bucket, tags=tags)
    return Reply(204)


async def delete_bucket_tagging(call: Call) -> Reply:
    call.walrus.configure(call.who, call.bucket, tags=None)
    return Reply(204)
