"""Multipart uploads: parts written as blobs of their own, kept as the object's body at completion.

Completion copies nothing and reads nothing: the new version's blob is a manifest of the chosen
parts' files (``blobs.manifest``), and its ETag the MD5 of the parts' MD5s (each computed once, as
the part streamed in) with ``-N``, as S3's. One transaction makes it the key's newest version and
forgets the upload; parts left out of the object go after that commit. A crash before the commit
leaves the upload as it was (the client completes it again); after it, the object.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import TYPE_CHECKING

from euca.core.s3errors import (
    AccessDenied,
    EntityTooSmall,
    InvalidArgument,
    InvalidPart,
    InvalidPartOrder,
    MalformedXML,
    NoSuchUpload,
)
from euca.walrus import acl as acls
from euca.walrus.blobs import Staged, manifest
from euca.walrus.model import Acl, ObjectInfo, Part, Requester, Upload

if TYPE_CHECKING:
    from euca.walrus.service import Walrus

MIN_PART_SIZE = 5 << 20
MAX_PART_NUMBER = 10_000


class Uploads:
    def __init__(self, walrus: Walrus) -> None:
        self.walrus = walrus
        self.min_part_size = MIN_PART_SIZE

    def create(self, who: Requester | None, bucket: str, key: str, headers: dict[str, str] | None = None,
               metadata: dict[str, str] | None = None, acl: Acl | str = "private") -> Upload:
        found = self.walrus.begin_put(who, bucket, key)
        owner = who or self.walrus.directory.by_account_id(found.owner)
        upload = Upload(secrets.token_urlsafe(48), bucket, key, who.account_id if who else found.owner,
                        self.walrus.clock(), dict(headers or {}), dict(metadata or {}),
                        self.walrus.acl_for(acl, owner, found.owner))
        with self.walrus.store.transaction() as tx:
            self.walrus.catalog.put_upload(tx, upload)
        return upload

    def get(self, who: Requester | None, bucket: str, key: str, upload_id: str) -> Upload:
        self.walrus.bucket(who, bucket, acls.WRITE)
        upload = self.walrus.catalog.upload(upload_id)
        if upload is None or (upload.bucket, upload.key) != (bucket, key):
            raise NoSuchUpload(UploadId=upload_id)
        return upload

    def begin_part(self, who: Requester | None, bucket: str, key: str, upload_id: str, number: int) -> Upload:
        if not 1 <= number <= MAX_PART_NUMBER:
            raise InvalidArgument("Part number must be an integer between 1 and 10000, inclusive",
                                  ArgumentName="partNumber", ArgumentValue=str(number))
        upload = self.get(who, bucket, key, upload_id)
        self.walrus.blobs.check_space()
        return upload

    def commit_part(self, upload: Upload, number: int, staged: Staged, content_md5: str | None = None) -> Part:
        from euca.walrus.service import check_md5

        try:
            md5 = staged.md5.digest()
            if content_md5 is not None:
                check_md5(content_md5, md5)
            blob = staged.place()
            part = Part(number, staged.size, f'"{md5.hex()}"', self.walrus.clock(), blob)
            with self.walrus.store.transaction() as tx:
                if not self.walrus.catalog.tx_upload_exists(tx, upload.upload_id):
                    raise NoSuchUpload(UploadId=upload.upload_id)
                replaced = self.walrus.catalog.put_part(tx, upload.upload_id, part)
                if replaced:
                    tx.on_commit(lambda: self.walrus.blobs.delete(replaced))
            return part
        except BaseException:
            staged.discard()
            raise

    def copy_part(self, upload: Upload, number: int, source: ObjectInfo, first: int, last: int) -> Part:
        staged = self.walrus.copy_range(source, first, last)
        return self.commit_part(upload, number, staged)

    def parts(self, who: Requester | None, bucket: str, key: str, upload_id: str) -> tuple[Upload, list[Part]]:
        upload = self.get(who, bucket, key, upload_id)
        return upload, self.walrus.catalog.parts(upload_id)

    def in_progress(self, who: Requester | None, bucket: str, prefix: str = "") -> list[Upload]:
        self.walrus.bucket(who, bucket, acls.READ)
        return self.walrus.catalog.uploads(bucket, prefix)

    def abort(self, who: Requester | None, bucket: str, key: str, upload_id: str) -> None:
        upload = self.get(who, bucket, key, upload_id)
        del upload
        with self.walrus.store.transaction() as tx:
            blobs = self.walrus.catalog.delete_upload(tx, upload_id)
            tx.on_commit(lambda: self.walrus.blobs.delete_all(blobs))

    def complete(self, who: Requester | None, bucket: str, key: str, upload_id: str,
                 chosen: list[tuple[int, str]]) -> ObjectInfo:
        """Join the chosen (part number, ETag) parts, in order, into the key's newest version."""
        upload = self.get(who, bucket, key, upload_id)
        if not chosen:
            raise MalformedXML()
        numbers = [n for n, _ in chosen]
        if numbers != sorted(numbers) or len(set(numbers)) != len(numbers):
            raise InvalidPartOrder()
        stored = {p.number: p for p in self.walrus.catalog.parts(upload_id)}
        parts: list[Part] = []
        for number, etag in chosen:
            part = stored.get(number)
            if part is None or _bare(part.etag) != _bare(etag):
                raise InvalidPart(UploadId=upload_id, PartNumber=str(number), ETag=etag)
            parts.append(part)
        for part in parts[:-1]:
            if part.size < self.min_part_size:
                raise EntityTooSmall(ProposedSize=str(part.size), MinSizeAllowed=str(self.min_part_size),
                                     PartNumber=str(part.number), ETag=part.etag)
        joined = hashlib.md5(b"".join(bytes.fromhex(_bare(p.etag)) for p in parts), usedforsecurity=False)
        etag = f'"{joined.hexdigest()}-{len(parts)}"'
        if self.walrus.catalog.bucket(bucket) is None:
            raise AccessDenied()
        blob = manifest((p.blob, p.size) for p in parts)
        info = ObjectInfo(bucket, key, "", sum(p.size for p in parts), etag, self.walrus.clock(), upload.owner,
                          blob, headers=upload.headers, metadata=upload.metadata, acl=upload.acl, parts=len(parts))
        return self.walrus.write_version(bucket, info, upload_id=upload_id)


def _bare(etag: str) -> str:
    return etag.strip().strip('"').lower()
