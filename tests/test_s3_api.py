"""S3 through real boto3 against a real server: buckets, objects, listings, versions, ACLs,
multipart, CORS, lifecycle, tags, and the errors S3 answers with."""

from __future__ import annotations

import base64
import gc
import hashlib
import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest
import requests

from tests.ec2_server import Box, running_box
from tests.s3_kit import anonymous, close_all, s3_client


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    with running_box(tmp_path_factory.mktemp("s3")) as b:
        yield b


@pytest.fixture
def s3(box: Box) -> Iterator[Any]:
    yield s3_client(box)
    close_all()
    gc.collect()  # a socket a test left open is reported against that test


def code(exc: pytest.ExceptionInfo[botocore.exceptions.ClientError]) -> tuple[str, int]:
    return exc.value.response["Error"]["Code"], exc.value.response["ResponseMetadata"]["HTTPStatusCode"]


_n = 0


def new_bucket(s3: Any, **kw: Any) -> str:
    global _n
    _n += 1
    name = f"bucket-{_n}-{int(time.time() * 1000) % 100000}"
    s3.create_bucket(Bucket=name, **kw)
    return name


def test_bucket_lifecycle_and_errors(box: Box, s3: Any) -> None:
    name = new_bucket(s3, CreateBucketConfiguration={"LocationConstraint": "eucalyptus"})
    assert name in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert s3.get_bucket_location(Bucket=name)["LocationConstraint"] == "eucalyptus"
    s3.head_bucket(Bucket=name)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.create_bucket(Bucket=name)
    assert code(exc) == ("BucketAlreadyOwnedByYou", 409)
    other = s3_client(box, "bucketeer")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        other.create_bucket(Bucket=name)
    assert code(exc) == ("BucketAlreadyExists", 409)
    for bad in ("ab", "Upper", "a..b", "192.168.1.1", "-dash", "x" * 64):
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            s3.create_bucket(Bucket=bad)
        assert code(exc) == ("InvalidBucketName", 400), bad
    s3.put_object(Bucket=name, Key="k", Body=b"x")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.delete_bucket(Bucket=name)
    assert code(exc) == ("BucketNotEmpty", 409)
    s3.delete_object(Bucket=name, Key="k")
    s3.delete_bucket(Bucket=name)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.head_bucket(Bucket=name)
    assert code(exc)[1] == 404
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.list_objects_v2(Bucket=name)
    assert code(exc) == ("NoSuchBucket", 404)


def test_too_many_buckets(box: Box) -> None:
    s3 = s3_client(box, "hoarder")
    for i in range(100):
        s3.create_bucket(Bucket=f"hoard-{i:03d}")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.create_bucket(Bucket="hoard-100")
    assert code(exc) == ("TooManyBuckets", 400)


def test_object_round_trip_headers_metadata_and_digests(s3: Any) -> None:
    b = new_bucket(s3)
    body = b"hello walrus" * 100
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    put = s3.put_object(Bucket=b, Key="dir/ünï cödé+&.txt", Body=body, ContentMD5=md5, ContentType="text/plain",
                        ContentEncoding="identity", ContentDisposition="attachment", CacheControl="max-age=5",
                        Expires="Wed, 21 Oct 2015 07:28:00 GMT", Metadata={"colour": "blue"})
    assert put["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
    got = s3.get_object(Bucket=b, Key="dir/ünï cödé+&.txt")
    assert got["Body"].read() == body
    assert got["ContentType"] == "text/plain" and got["Metadata"] == {"colour": "blue"}
    assert got["ContentDisposition"] == "attachment" and got["CacheControl"] == "max-age=5"
    assert got["ContentEncoding"] == "identity" and got["ETag"] == put["ETag"]
    head = s3.head_object(Bucket=b, Key="dir/ünï cödé+&.txt")
    assert head["ContentLength"] == len(body)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.put_object(Bucket=b, Key="bad", Body=body, ContentMD5=base64.b64encode(b"0" * 16).decode())
    assert code(exc) == ("BadDigest", 400)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.put_object(Bucket=b, Key="bad", Body=body, ContentMD5="not-base64!")
    assert code(exc) == ("InvalidDigest", 400)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.head_object(Bucket=b, Key="bad")
    assert code(exc)[1] == 404
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.put_object(Bucket=b, Key="k" * 1025, Body=b"")
    assert code(exc) == ("KeyTooLongError", 400)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.get_object(Bucket=b, Key="missing")
    assert code(exc) == ("NoSuchKey", 404)
    s3.delete_object(Bucket=b, Key="missing")  # idempotent


def test_ranges_conditionals_and_overrides(s3: Any) -> None:
    b = new_bucket(s3)
    body = bytes(range(256)) * 4
    etag = s3.put_object(Bucket=b, Key="r", Body=body)["ETag"]
    part = s3.get_object(Bucket=b, Key="r", Range="bytes=10-19")
    assert part["Body"].read() == body[10:20] and part["ContentRange"] == f"bytes 10-19/{len(body)}"
    assert part["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert s3.get_object(Bucket=b, Key="r", Range="bytes=-5")["Body"].read() == body[-5:]
    assert s3.get_object(Bucket=b, Key="r", Range="bytes=1000-")["Body"].read() == body[1000:]
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.get_object(Bucket=b, Key="r", Range="bytes=5000-6000")
    assert code(exc) == ("InvalidRange", 416)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.get_object(Bucket=b, Key="r", IfMatch='"nope"')
    assert code(exc)[1] == 412
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.get_object(Bucket=b, Key="r", IfNoneMatch=etag)
    assert code(exc)[1] == 304
    future, past = time.time() + 3600, time.time() - 3600
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.get_object(Bucket=b, Key="r", IfModifiedSince=future)
    assert code(exc)[1] == 304
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.get_object(Bucket=b, Key="r", IfUnmodifiedSince=past)
    assert code(exc)[1] == 412
    # If-Match holding outweighs a failing If-Unmodified-Since, as S3 documents
    held = s3.get_object(Bucket=b, Key="r", IfMatch=etag, IfUnmodifiedSince=past)
    assert held["ETag"] == etag and held["Body"].read() == body
    got = s3.get_object(Bucket=b, Key="r", ResponseContentType="image/png", ResponseCacheControl="no-cache",
                        ResponseContentDisposition="inline")
    assert got["ContentType"] == "image/png" and got["CacheControl"] == "no-cache" and got["Body"].read() == body


def test_copy_and_multi_delete(s3: Any) -> None:
    b = new_bucket(s3)
    s3.put_object(Bucket=b, Key="src", Body=b"copy me", Metadata={"a": "1"}, ContentType="text/x")
    s3.copy_object(Bucket=b, Key="dst", CopySource={"Bucket": b, "Key": "src"})
    got = s3.get_object(Bucket=b, Key="dst")
    assert got["Body"].read() == b"copy me" and got["Metadata"] == {"a": "1"} and got["ContentType"] == "text/x"
    s3.copy_object(Bucket=b, Key="dst2", CopySource=f"{b}/src", MetadataDirective="REPLACE", Metadata={"b": "2"})
    assert s3.head_object(Bucket=b, Key="dst2")["Metadata"] == {"b": "2"}
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.copy_object(Bucket=b, Key="src", CopySource=f"{b}/src")
    assert code(exc) == ("InvalidRequest", 400)
    s3.copy_object(Bucket=b, Key="src", CopySource=f"{b}/src", MetadataDirective="REPLACE", Metadata={"c": "3"})
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.copy_object(Bucket=b, Key="x", CopySource=f"{b}/src", CopySourceIfMatch='"other"')
    assert code(exc)[1] == 412
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.copy_object(Bucket=b, Key="x", CopySource=f"{b}/missing")
    assert code(exc) == ("NoSuchKey", 404)
    out = s3.delete_objects(Bucket=b, Delete={"Objects": [{"Key": "dst"}, {"Key": "dst2"}, {"Key": "never"}]})
    assert sorted(d["Key"] for d in out["Deleted"]) == ["dst", "dst2", "never"]
    quiet = s3.delete_objects(Bucket=b, Delete={"Objects": [{"Key": "src"}], "Quiet": True})
    assert quiet.get("Deleted", []) == []
    assert s3.list_objects_v2(Bucket=b)["KeyCount"] == 0


def test_listings_v1_v2_delimiters_pages_and_url_encoding(s3: Any) -> None:
    b = new_bucket(s3)
    keys = ["a/1", "a/2", "b", "c/d/e", "c/f", "d", "e f", "é"]
    for k in keys:
        s3.put_object(Bucket=b, Key=k, Body=k.encode())
    v2 = s3.list_objects_v2(Bucket=b)
    assert [o["Key"] for o in v2["Contents"]] == sorted(keys, key=lambda k: k.encode())
    assert "Owner" not in v2["Contents"][0]
    assert "Owner" in s3.list_objects_v2(Bucket=b, FetchOwner=True)["Contents"][0]
    top = s3.list_objects_v2(Bucket=b, Delimiter="/")
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["a/", "c/"]
    assert [o["Key"] for o in top["Contents"]] == ["b", "d", "e f", "é"]
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=b, Prefix="c/", Delimiter="/")["Contents"]] == ["c/f"]
    seen: list[str] = []
    kwargs: dict[str, Any] = {"Bucket": b, "MaxKeys": 3, "Delimiter": "/"}
    while True:
        page = s3.list_objects_v2(**kwargs)
        seen += [o["Key"] for o in page.get("Contents", [])] + [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        if not page["IsTruncated"]:
            break
        kwargs["ContinuationToken"] = page["NextContinuationToken"]
    assert sorted(seen) == sorted(["a/", "b", "c/", "d", "e f", "é"])
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=b, StartAfter="c/f")["Contents"]] == ["d", "e f", "é"]
    v1 = s3.list_objects(Bucket=b, Marker="b", MaxKeys=2)
    assert [o["Key"] for o in v1["Contents"]] == ["c/d/e", "c/f"] and v1["IsTruncated"]
    pages, kwargs = [], {"Bucket": b, "MaxKeys": 3}
    while True:  # no delimiter: pages of rows as they are
        page = s3.list_objects_v2(**kwargs)
        pages.append([o["Key"] for o in page.get("Contents", [])])
        if not page["IsTruncated"]:
            break
        kwargs["ContinuationToken"] = page["NextContinuationToken"]
    assert pages == [["a/1", "a/2", "b"], ["c/d/e", "c/f", "d"], ["e f", "é"]]
    # no keys asked for: an empty page, not truncated and with nothing to continue from (as S3 and moto answer)
    for delimiter in ("", "/"):
        empty = s3.list_objects_v2(Bucket=b, MaxKeys=0, Delimiter=delimiter)
        assert "Contents" not in empty and "CommonPrefixes" not in empty and empty["KeyCount"] == 0
        assert empty["IsTruncated"] is False and "NextContinuationToken" not in empty and empty["MaxKeys"] == 0
        empty_v1 = s3.list_objects(Bucket=b, MaxKeys=0, Delimiter=delimiter)
        assert "Contents" not in empty_v1 and empty_v1["IsTruncated"] is False and "NextMarker" not in empty_v1
    s3.put_object(Bucket=b, Key="x<&>\"'y", Body=b"")
    assert s3.list_objects_v2(Bucket=b, Prefix="x")["Contents"][0]["Key"] == "x<&>\"'y"
    s3.delete_object(Bucket=b, Key="x<&>\"'y")
    raw = s3.list_objects_v2(Bucket=b, EncodingType="url")  # asked for explicitly, boto3 leaves them encoded
    assert {"e%20f", "%C3%A9"} <= {o["Key"] for o in raw["Contents"]}
    paginator = s3.get_paginator("list_objects")
    assert sum(len(p.get("Contents", [])) for p in paginator.paginate(Bucket=b, PaginationConfig={"PageSize": 3})) \
        == len(keys)


def test_versioning(s3: Any) -> None:
    b = new_bucket(s3)
    assert "Status" not in s3.get_bucket_versioning(Bucket=b)
    s3.put_object(Bucket=b, Key="k", Body=b"null version")
    s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
    assert s3.get_bucket_versioning(Bucket=b)["Status"] == "Enabled"
    v1 = s3.put_object(Bucket=b, Key="k", Body=b"one")["VersionId"]
    v2 = s3.put_object(Bucket=b, Key="k", Body=b"two")["VersionId"]
    assert v1 != v2
    assert s3.get_object(Bucket=b, Key="k")["Body"].read() == b"two"
    assert s3.get_object(Bucket=b, Key="k", VersionId=v1)["Body"].read() == b"one"
    assert s3.get_object(Bucket=b, Key="k", VersionId="null")["Body"].read() == b"null version"
    marker = s3.delete_object(Bucket=b, Key="k")
    assert marker["DeleteMarker"] is True
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.get_object(Bucket=b, Key="k")
    assert code(exc) == ("NoSuchKey", 404)
    assert exc.value.response["ResponseMetadata"]["HTTPHeaders"].get("x-amz-delete-marker") == "true"
    listing = s3.list_object_versions(Bucket=b)
    assert [v["VersionId"] for v in listing["Versions"]] == [v2, v1, "null"]
    assert [m["VersionId"] for m in listing["DeleteMarkers"]] == [marker["VersionId"]]
    assert s3.list_objects_v2(Bucket=b)["KeyCount"] == 0
    s3.delete_object(Bucket=b, Key="k", VersionId=marker["VersionId"])
    assert s3.get_object(Bucket=b, Key="k")["Body"].read() == b"two"
    s3.delete_object(Bucket=b, Key="k", VersionId=v2)
    assert s3.get_object(Bucket=b, Key="k")["Body"].read() == b"one"
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.get_object(Bucket=b, Key="k", VersionId="A" * 32)
    assert code(exc) == ("NoSuchVersion", 404)
    s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Suspended"})
    assert s3.put_object(Bucket=b, Key="k", Body=b"suspended").get("VersionId") == "null"
    assert s3.get_object(Bucket=b, Key="k", VersionId=v1)["Body"].read() == b"one"


def _version_pages(s3: Any, **kwargs: Any) -> list[list[str]]:
    """ListObjectVersions page by page: each page's entries as "key@version" (or a prefix), in
    key order, newest first within a key."""
    pages: list[list[str]] = []
    while True:
        page = s3.list_object_versions(**kwargs)
        entries = [(v["Key"], v["LastModified"], v["VersionId"])
                   for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
        entries.sort(key=lambda e: (e[0].encode(), -e[1].timestamp()))
        pages.append([f"{k}@{v}" for k, _, v in entries] + [p["Prefix"] for p in page.get("CommonPrefixes", [])])
        if not page["IsTruncated"]:
            return pages
        kwargs["KeyMarker"] = page["NextKeyMarker"]
        kwargs["VersionIdMarker"] = page.get("NextVersionIdMarker", "")


def test_version_listings_page_through_every_version(s3: Any) -> None:
    b = new_bucket(s3)
    s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
    written: dict[str, list[str]] = {}  # key -> version ids, oldest first
    for key, count in (("a", 3), ("b/1", 2), ("b/2", 1), ("c", 2), ("d/e/f", 1)):
        for _ in range(count):
            time.sleep(0.002)  # distinct LastModified to the millisecond: newest first is checkable
            written.setdefault(key, []).append(s3.put_object(Bucket=b, Key=key, Body=b"v")["VersionId"])
    time.sleep(0.002)
    written["c"].append(s3.delete_object(Bucket=b, Key="c")["VersionId"])  # a delete marker, now the newest
    expected = [f"{k}@{v}" for k in sorted(written) for v in reversed(written[k])]
    pages = _version_pages(s3, Bucket=b, MaxKeys=3)
    assert [len(p) for p in pages] == [3, 3, 3, 1] and [e for p in pages for e in p] == expected
    assert _version_pages(s3, Bucket=b) == [expected]
    # with a delimiter, each common prefix once, where its first key sorts
    pages = _version_pages(s3, Bucket=b, Delimiter="/", MaxKeys=2)
    assert [e for p in pages for e in p] == [e for e in expected if e.startswith("a@")] + ["b/"] + \
        [e for e in expected if e.startswith("c@")] + ["d/"]
    pages = _version_pages(s3, Bucket=b, Prefix="b/", Delimiter="/", MaxKeys=1)
    assert [e for p in pages for e in p] == [e for e in expected if e.startswith("b/")]
    # a key marker inside a prefix already listed: the listing goes on after it
    after = s3.list_object_versions(Bucket=b, Delimiter="/", KeyMarker="b/1")
    assert [p["Prefix"] for p in after.get("CommonPrefixes", [])] == ["d/"]
    # no keys asked for: an empty page, not truncated and with nothing to continue from, as ListObjects answers
    for delimiter in ("", "/"):
        for marker in ({}, {"KeyMarker": "a"}):
            empty = s3.list_object_versions(Bucket=b, MaxKeys=0, Delimiter=delimiter, **marker)
            assert not {"Versions", "DeleteMarkers", "CommonPrefixes", "NextKeyMarker",
                        "NextVersionIdMarker"} & set(empty)
            assert empty["IsTruncated"] is False and empty["MaxKeys"] == 0


def test_acls_canned_explicit_and_enforced(box: Box, s3: Any) -> None:
    b = new_bucket(s3)
    anon = anonymous(box)
    other = s3_client(box, "stranger")
    s3.put_object(Bucket=b, Key="private", Body=b"secret")
    s3.put_object(Bucket=b, Key="public", Body=b"for all", ACL="public-read")
    assert anon.get_object(Bucket=b, Key="public")["Body"].read() == b"for all"
    for client in (anon, other):
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            client.get_object(Bucket=b, Key="private")
        assert code(exc) == ("AccessDenied", 403)
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            client.put_object(Bucket=b, Key="intrude", Body=b"x")
        assert code(exc) == ("AccessDenied", 403)
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            client.list_objects_v2(Bucket=b)
        assert code(exc) == ("AccessDenied", 403)
    s3.put_object(Bucket=b, Key="auth", Body=b"members", ACL="authenticated-read")
    assert other.get_object(Bucket=b, Key="auth")["Body"].read() == b"members"
    with pytest.raises(botocore.exceptions.ClientError):
        anon.get_object(Bucket=b, Key="auth")
    # explicit grants: by account id in a header, by group in a document
    stranger_id = box.cloud.accounts.get("stranger").account_id  # type: ignore[union-attr]
    s3.put_object_acl(Bucket=b, Key="private", GrantRead=f"id={stranger_id}")
    assert other.get_object(Bucket=b, Key="private")["Body"].read() == b"secret"
    acl = s3.get_object_acl(Bucket=b, Key="private")
    owner = acl["Owner"]
    s3.put_bucket_acl(Bucket=b, AccessControlPolicy={"Owner": owner, "Grants": [
        {"Grantee": {"Type": "CanonicalUser", "ID": owner["ID"]}, "Permission": "FULL_CONTROL"},
        {"Grantee": {"Type": "Group", "URI": "http://acs.amazonaws.com/groups/global/AllUsers"},
         "Permission": "READ"}]})
    assert "private" in [o["Key"] for o in anon.list_objects_v2(Bucket=b)["Contents"]]
    grants = s3.get_bucket_acl(Bucket=b)["Grants"]
    assert {"Type": "Group", "URI": "http://acs.amazonaws.com/groups/global/AllUsers"} in [g["Grantee"]
                                                                                           for g in grants]
    s3.put_bucket_acl(Bucket=b, ACL="public-read-write")
    other.put_object(Bucket=b, Key="dropped", Body=b"x")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.put_object(Bucket=b, Key="bad", Body=b"x", ACL="no-such-acl")
    assert code(exc) == ("InvalidArgument", 400)


def test_eucalyptus_image_acls_let_the_admin_read(box: Box) -> None:
    user = s3_client(box, "bundler")
    admin = s3_client(box)
    stranger = s3_client(box, "stranger")
    b = new_bucket(user)
    for acl in ("aws-exec-read", "ec2-bundle-read"):
        user.put_object(Bucket=b, Key=f"image.{acl}", Body=b"part", ACL=acl)
        assert admin.get_object(Bucket=b, Key=f"image.{acl}")["Body"].read() == b"part"
        with pytest.raises(botocore.exceptions.ClientError):
            stranger.get_object(Bucket=b, Key=f"image.{acl}")


def test_multipart(s3: Any) -> None:
    b = new_bucket(s3)
    up = s3.create_multipart_upload(Bucket=b, Key="mp", ContentType="video/x", Metadata={"m": "1"})["UploadId"]
    p1 = b"a" * (5 << 20)
    p2 = b"b" * 1000
    e1 = s3.upload_part(Bucket=b, Key="mp", UploadId=up, PartNumber=1, Body=p1)["ETag"]
    e2 = s3.upload_part(Bucket=b, Key="mp", UploadId=up, PartNumber=2, Body=p2)["ETag"]
    assert [p["PartNumber"] for p in s3.list_parts(Bucket=b, Key="mp", UploadId=up)["Parts"]] == [1, 2]
    assert [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=b)["Uploads"]] == [up]
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.complete_multipart_upload(Bucket=b, Key="mp", UploadId=up, MultipartUpload={"Parts": [
            {"PartNumber": 2, "ETag": e2}, {"PartNumber": 1, "ETag": e1}]})
    assert code(exc) == ("InvalidPartOrder", 400)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.complete_multipart_upload(Bucket=b, Key="mp", UploadId=up, MultipartUpload={"Parts": [
            {"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": '"0000"'}]})
    assert code(exc) == ("InvalidPart", 400)
    done = s3.complete_multipart_upload(Bucket=b, Key="mp", UploadId=up, MultipartUpload={"Parts": [
        {"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
    joined = hashlib.md5(hashlib.md5(p1).digest() + hashlib.md5(p2).digest()).hexdigest()
    assert done["ETag"] == f'"{joined}-2"'
    got = s3.get_object(Bucket=b, Key="mp")
    assert got["Body"].read() == p1 + p2 and got["ContentType"] == "video/x" and got["Metadata"] == {"m": "1"}
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.upload_part(Bucket=b, Key="mp", UploadId=up, PartNumber=3, Body=b"x")
    assert code(exc) == ("NoSuchUpload", 404)
    # small parts: EntityTooSmall; copy a part from a range; abort
    up = s3.create_multipart_upload(Bucket=b, Key="small")["UploadId"]
    e1 = s3.upload_part(Bucket=b, Key="small", UploadId=up, PartNumber=1, Body=b"x" * 100)["ETag"]
    e2 = s3.upload_part_copy(Bucket=b, Key="small", UploadId=up, PartNumber=2, CopySource=f"{b}/mp",
                             CopySourceRange="bytes=0-9")["CopyPartResult"]["ETag"]
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.complete_multipart_upload(Bucket=b, Key="small", UploadId=up, MultipartUpload={"Parts": [
            {"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
    assert code(exc) == ("EntityTooSmall", 400)
    s3.abort_multipart_upload(Bucket=b, Key="small", UploadId=up)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.list_parts(Bucket=b, Key="small", UploadId=up)
    assert code(exc) == ("NoSuchUpload", 404)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.upload_part(Bucket=b, Key="mp", UploadId=up, PartNumber=10001, Body=b"x")
    assert code(exc)[1] in (400, 404)


def test_cors_preflight(box: Box, s3: Any) -> None:
    b = new_bucket(s3)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.get_bucket_cors(Bucket=b)
    assert code(exc) == ("NoSuchCORSConfiguration", 404)
    s3.put_bucket_cors(Bucket=b, CORSConfiguration={"CORSRules": [
        {"AllowedOrigins": ["https://*.example.com"], "AllowedMethods": ["GET", "PUT"],
         "AllowedHeaders": ["x-custom"], "MaxAgeSeconds": 60, "ExposeHeaders": ["ETag"]}]})
    assert s3.get_bucket_cors(Bucket=b)["CORSRules"][0]["MaxAgeSeconds"] == 60
    url = f"{box.url}/services/Walrus/{b}/key"
    ok = requests.options(url, headers={"Origin": "https://app.example.com", "Access-Control-Request-Method": "PUT",
                                        "Access-Control-Request-Headers": "x-custom"}, timeout=5)
    assert ok.status_code == 200
    assert ok.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "PUT" in ok.headers["Access-Control-Allow-Methods"] and ok.headers["Access-Control-Max-Age"] == "60"
    no = requests.options(url, headers={"Origin": "https://evil.test", "Access-Control-Request-Method": "GET"},
                          timeout=5)
    assert no.status_code == 403
    s3.delete_bucket_cors(Bucket=b)
    with pytest.raises(botocore.exceptions.ClientError):
        s3.get_bucket_cors(Bucket=b)


def test_tagging(s3: Any) -> None:
    b = new_bucket(s3)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.get_bucket_tagging(Bucket=b)
    assert code(exc) == ("NoSuchTagSet", 404)
    s3.put_bucket_tagging(Bucket=b, Tagging={"TagSet": [{"Key": "team", "Value": "cloud"}]})
    assert s3.get_bucket_tagging(Bucket=b)["TagSet"] == [{"Key": "team", "Value": "cloud"}]
    s3.delete_bucket_tagging(Bucket=b)
    s3.put_object(Bucket=b, Key="t", Body=b"x", Tagging="a=1&b=2")
    assert s3.get_object_tagging(Bucket=b, Key="t")["TagSet"] == [{"Key": "a", "Value": "1"},
                                                                  {"Key": "b", "Value": "2"}]
    s3.put_object_tagging(Bucket=b, Key="t", Tagging={"TagSet": [{"Key": "c", "Value": "3"}]})
    assert s3.get_object_tagging(Bucket=b, Key="t")["TagSet"] == [{"Key": "c", "Value": "3"}]
    s3.delete_object_tagging(Bucket=b, Key="t")
    assert s3.get_object_tagging(Bucket=b, Key="t")["TagSet"] == []


def test_lifecycle_expiration_sweep(box: Box, s3: Any) -> None:
    b = new_bucket(s3)
    s3.put_object(Bucket=b, Key="logs/old", Body=b"x")
    s3.put_object(Bucket=b, Key="keep/old", Body=b"x")
    s3.put_bucket_lifecycle_configuration(Bucket=b, LifecycleConfiguration={"Rules": [
        {"ID": "logs", "Filter": {"Prefix": "logs/"}, "Status": "Enabled", "Expiration": {"Days": 1}}]})
    rules = s3.get_bucket_lifecycle_configuration(Bucket=b)["Rules"]
    assert rules[0]["Expiration"]["Days"] == 1
    assert box.walrus is not None
    from euca.walrus.lifecycle import expire

    assert expire(box.walrus, time.time()) == 0
    assert expire(box.walrus, time.time() + 3 * 86400) == 1
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=b)["Contents"]] == ["keep/old"]
    s3.delete_bucket_lifecycle(Bucket=b)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.get_bucket_lifecycle_configuration(Bucket=b)
    assert code(exc) == ("NoSuchLifecycleConfiguration", 404)


def test_disk_nearly_full_refuses_writes(box: Box, s3: Any) -> None:
    b = new_bucket(s3)
    assert box.walrus is not None
    box.walrus.blobs.min_free = 1.0
    try:
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            s3.put_object(Bucket=b, Key="k", Body=b"x")
        assert code(exc) == ("InsufficientStorage", 507)
    finally:
        box.walrus.blobs.min_free = 0.10
    s3.put_object(Bucket=b, Key="k", Body=b"x")


def test_errors_are_s3_documents_and_never_tracebacks(box: Box, s3: Any) -> None:
    b = new_bucket(s3)
    base = f"{box.url}/services/Walrus"
    r = requests.get(f"{base}/{b}/nothing", timeout=5)
    assert r.status_code == 403 and b"<Code>AccessDenied</Code>" in r.content and b"<RequestId>" in r.content
    r = requests.post(f"{base}/{b}/k?uploadId=x", data=b"<oops", timeout=5)
    assert r.status_code in (400, 403)
    s3.put_bucket_acl(Bucket=b, ACL="public-read-write")
    r = requests.put(f"{base}/{b}/nolength", data=iter([b"abc"]), timeout=5)  # chunked, no length: accepted
    assert r.status_code == 200
    r = requests.post(f"{base}/{b}?delete", data=b"<Delete><Object>", timeout=5)
    assert r.status_code == 400 and b"MalformedXML" in r.content
    r = requests.request("PATCH", f"{base}/{b}/k", timeout=5)
    assert r.status_code == 405 and b"MethodNotAllowed" in r.content
    r = requests.get(f"{base}/{b}?policy", timeout=5)
    assert r.status_code == 501
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.list_objects_v2(Bucket=b, MaxKeys=-1)
    assert code(exc)[1] == 400


def test_python_interface_streams_files(box: Box, tmp_path: Path) -> None:
    assert box.walrus is not None
    from euca.walrus import Requester

    account = box.cloud.accounts.get("admin")
    assert account is not None
    who = Requester(account.name, account.account_id, True)
    box.walrus.create_bucket(who, "python-interface")
    info = box.walrus.put_object(who, "python-interface", "f", io.BytesIO(b"z" * 3_000_000), acl="aws-exec-read")
    assert info.size == 3_000_000
    info, f = box.walrus.open_object(who, "python-interface", "f")
    assert info.size == 3_000_000
    with f:
        assert f.read() == b"z" * 3_000_000
    url = box.walrus.presign(who, "GET", "python-interface", "f", 60)
    assert requests.get(url, timeout=5).content == b"z" * 3_000_000


def test_canned_acls_for_the_bucket_owner_and_log_delivery(box: Box, s3: Any) -> None:
    b = new_bucket(s3)
    writer = s3_client(box, "writer")
    writer_id = canonical(box, "writer")
    admin_id = canonical(box, "admin")
    s3.put_bucket_acl(Bucket=b, GrantFullControl=f"id={admin_id}", GrantWrite=f"id={writer_id}")
    for acl in ("private", "bucket-owner-read", "bucket-owner-full-control"):
        writer.put_object(Bucket=b, Key=acl, Body=acl.encode(), ACL=acl)
        grants = {(g["Grantee"].get("ID"), g["Permission"])
                  for g in writer.get_object_acl(Bucket=b, Key=acl)["Grants"]}
        expected = {(writer_id, "FULL_CONTROL")} | {
            "private": set(), "bucket-owner-read": {(admin_id, "READ")},
            "bucket-owner-full-control": {(admin_id, "FULL_CONTROL")}}[acl]
        assert grants == expected, acl
    # the bucket's owner reads only what was shared with it, and changes only the ACL it was given
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.get_object(Bucket=b, Key="private")
    assert code(exc) == ("AccessDenied", 403)
    assert s3.get_object(Bucket=b, Key="bucket-owner-read")["Body"].read() == b"bucket-owner-read"
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.put_object_acl(Bucket=b, Key="bucket-owner-read", ACL="public-read")
    assert code(exc) == ("AccessDenied", 403)
    assert s3.get_object(Bucket=b, Key="bucket-owner-full-control")["Body"].read() == b"bucket-owner-full-control"
    s3.put_object_acl(Bucket=b, Key="bucket-owner-full-control", ACL="public-read")
    assert anonymous(box).get_object(Bucket=b, Key="bucket-owner-full-control")["Body"].read()
    # the bucket's owner writing its own object: no second grant to itself
    s3.put_object(Bucket=b, Key="own", Body=b"x", ACL="bucket-owner-full-control")
    assert [g["Permission"] for g in s3.get_object_acl(Bucket=b, Key="own")["Grants"]] == ["FULL_CONTROL"]
    # log-delivery-write: S3's log delivery group may write the bucket and read its ACL
    logs = new_bucket(s3, ACL="log-delivery-write")
    grants = {(g["Grantee"].get("URI") or g["Grantee"].get("ID"), g["Permission"])
              for g in s3.get_bucket_acl(Bucket=logs)["Grants"]}
    assert grants == {(admin_id, "FULL_CONTROL"), ("http://acs.amazonaws.com/groups/s3/LogDelivery", "WRITE"),
                      ("http://acs.amazonaws.com/groups/s3/LogDelivery", "READ_ACP")}
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        anonymous(box).put_object(Bucket=logs, Key="x", Body=b"x")  # not anyone's group
    assert code(exc) == ("AccessDenied", 403)


def canonical(box: Box, account: str) -> str:
    box.keys(account)
    found = box.cloud.accounts.get(account)
    assert found is not None
    from euca.walrus import canonical_id

    return canonical_id(found.account_id)


def test_lifecycle_sweep_runs_from_the_housekeeping_loop(box: Box, s3: Any) -> None:
    # the test server ticks every 0.2 s; the sweep reads Walrus's clock, moved three days on
    b = new_bucket(s3)
    s3.put_object(Bucket=b, Key="tmp/a", Body=b"x")
    s3.put_object(Bucket=b, Key="tmp/b", Body=b"y" * 100_000)
    s3.put_object(Bucket=b, Key="kept", Body=b"x")
    s3.put_bucket_lifecycle_configuration(Bucket=b, LifecycleConfiguration={"Rules": [
        {"ID": "tmp", "Filter": {"Prefix": "tmp/"}, "Status": "Enabled", "Expiration": {"Days": 2}}]})
    time.sleep(0.5)
    assert len(s3.list_objects_v2(Bucket=b)["Contents"]) == 3  # not due yet: nothing swept
    assert box.walrus is not None
    real = box.walrus.clock
    box.walrus.clock = lambda: real() + 3 * 86400
    try:
        deadline = time.monotonic() + 10
        while [o["Key"] for o in s3.list_objects_v2(Bucket=b)["Contents"]] != ["kept"]:
            assert time.monotonic() < deadline, "the housekeeping loop did not expire the objects"
            time.sleep(0.1)
    finally:
        box.walrus.clock = real
