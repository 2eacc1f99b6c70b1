"""Multipart upload requests: create, upload a part (or copy one from an object's range), list
parts and uploads, complete, abort."""

from __future__ import annotations

import asyncio
from typing import Any

from euca.api.s3 import grants, wire
from euca.api.s3.body import declared_length, needs_sha256, read_small, to_staged
from euca.api.s3.call import Call, Reply
from euca.api.s3.objects import again_if_changed, copy_source, kept_headers, user_metadata
from euca.core.s3errors import InvalidArgument, InvalidRange, MalformedXML
from euca.walrus.model import NULL_VERSION, Upload


def _part_number(call: Call) -> int:
    text = call.query.get("partNumber", "")
    if not text.isdigit():
        raise InvalidArgument("Part number must be an integer between 1 and 10000, inclusive",
                              ArgumentName="partNumber", ArgumentValue=text)
    return int(text)


async def create(call: Call) -> Reply:
    acl = grants.from_headers(call.headers, call.walrus.directory) or "private"
    upload = call.walrus.uploads.create(call.who, call.bucket, call.key, kept_headers(call.headers),
                                        user_metadata(call.headers), acl)
    return Reply(body=wire.render("CreateMultipartUpload", {"Bucket": call.bucket, "Key": call.key,
                                                            "UploadId": upload.upload_id}))


async def upload_part(call: Call) -> Reply:
    number = _part_number(call)
    upload = call.walrus.uploads.begin_part(call.who, call.bucket, call.key, call.query["uploadId"], number)
    if "x-amz-copy-source" in call.headers:
        return await again_if_changed(lambda: _upload_part_copy(call, upload, number))
    length = declared_length(call.headers, call.signature)
    staged = call.walrus.stage(needs_sha256(call.signature))
    try:
        await to_staged(call.receive, call.signature, staged, length)
    except BaseException:
        staged.discard()
        raise
    part = call.walrus.uploads.commit_part(upload, number, staged, call.headers.get("content-md5"))
    return Reply(headers={"etag": part.etag})


async def _upload_part_copy(call: Call, upload: Upload, number: int) -> Reply:
    source = copy_source(call)
    first, last = 0, source.size - 1
    wanted = call.headers.get("x-amz-copy-source-range")
    if wanted:
        unit, _, spec = wanted.partition("=")
        a, _, b = spec.partition("-")
        if unit != "bytes" or not a.isdigit() or not b.isdigit() or int(a) > int(b):
            raise InvalidArgument("The x-amz-copy-source-range value must be of the form bytes=first-last "
                                  "where first and last are the zero-based offsets of the first and last "
                                  "bytes to copy", ArgumentName="x-amz-copy-source-range")
        first, last = int(a), int(b)
        if last >= source.size:
            raise InvalidRange(ActualObjectSize=str(source.size), RangeRequested=wanted)
    part = await asyncio.to_thread(call.walrus.uploads.copy_part, upload, number, source, first, last)
    headers = {"x-amz-copy-source-version-id": source.version_id} if source.version_id != NULL_VERSION else {}
    return Reply(headers=headers, body=wire.render("UploadPartCopy", {"CopyPartResult": {
        "ETag": part.etag, "LastModified": part.modified}}))


async def list_parts(call: Call) -> Reply:
    upload, parts = call.walrus.uploads.parts(call.who, call.bucket, call.key, call.query["uploadId"])
    marker_text = call.query.get("part-number-marker", "0") or "0"
    most_text = call.query.get("max-parts", "1000")
    if not marker_text.isdigit() or not most_text.isdigit():
        raise InvalidArgument("max-parts and part-number-marker must be integers")
    marker, most = int(marker_text), min(int(most_text), 1000)
    after = [p for p in parts if p.number > marker]
    page = after[:most]
    owner = grants.owner_of(upload.owner, call.walrus.directory)
    result: dict[str, Any] = {
        "Bucket": call.bucket, "Key": call.key, "UploadId": upload.upload_id, "PartNumberMarker": marker,
        "MaxParts": most, "IsTruncated": len(after) > most, "Initiator": owner, "Owner": owner,
        "StorageClass": "STANDARD",
        "Parts": [{"PartNumber": p.number, "LastModified": p.modified, "ETag": p.etag, "Size": p.size} for p in page]}
    if page:
        result["NextPartNumberMarker"] = page[-1].number
    return Reply(body=wire.render("ListParts", result))


async def list_uploads(call: Call) -> Reply:
    prefix = call.query.get("prefix", "")
    uploads = call.walrus.uploads.in_progress(call.who, call.bucket, prefix)
    key_marker = call.query.get("key-marker", "")
    id_marker = call.query.get("upload-id-marker", "")
    if key_marker:
        uploads = [u for u in uploads if u.key > key_marker or (u.key == key_marker and id_marker
                                                                 and u.upload_id > id_marker)]
    most = min(int(call.query.get("max-uploads", "1000") or "1000"), 1000)
    page = uploads[:most]
    result: dict[str, Any] = {
        "Bucket": call.bucket, "KeyMarker": key_marker, "UploadIdMarker": id_marker, "Prefix": prefix,
        "MaxUploads": most, "IsTruncated": len(uploads) > most,
        "Uploads": [{"UploadId": u.upload_id, "Key": u.key, "Initiated": u.initiated, "StorageClass": "STANDARD",
                     "Owner": grants.owner_of(u.owner, call.walrus.directory),
                     "Initiator": grants.owner_of(u.owner, call.walrus.directory)} for u in page]}
    if len(uploads) > most and page:
        result["NextKeyMarker"] = page[-1].key
        result["NextUploadIdMarker"] = page[-1].upload_id
    return Reply(body=wire.render("ListMultipartUploads", result))


async def complete(call: Call) -> Reply:
    doc = wire.parse("CompleteMultipartUpload", await read_small(call.receive, call.signature))
    chosen = []
    for part in doc.get("Parts") or []:
        if "PartNumber" not in part or "ETag" not in part:
            raise MalformedXML()
        chosen.append((int(part["PartNumber"]), str(part["ETag"])))
    info = await asyncio.to_thread(call.walrus.uploads.complete, call.who, call.bucket, call.key,
                                   call.query["uploadId"], chosen)
    headers = {"x-amz-version-id": info.version_id} if info.version_id != NULL_VERSION else {}
    return Reply(headers=headers, body=wire.render("CompleteMultipartUpload", {
        "Location": f"/{call.bucket}/{call.key}", "Bucket": call.bucket, "Key": call.key, "ETag": info.etag}))


async def abort(call: Call) -> Reply:
    call.walrus.uploads.abort(call.who, call.bucket, call.key, call.query["uploadId"])
    return Reply(204)
