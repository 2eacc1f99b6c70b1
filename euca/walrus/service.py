"""Walrus: buckets and object versions over the blob directory and the cloud's store.

Every method takes the requester (None for an anonymous request) and checks the bucket's or the
object's ACL before it does anything. A write is one store transaction; bytes are placed on disk
before the transaction that names them commits, and a replaced blob is deleted only after it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import logging
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO, Protocol

from euca.core.s3errors import (
    AccessDenied,
    BadDigest,
    BucketAlreadyExists,
    BucketAlreadyOwnedByYou,
    BucketNotEmpty,
    InternalError,
    InvalidArgument,
    InvalidDigest,
    InvalidPart,
    InvalidRequest,
    MethodNotAllowed,
    NoSuchBucket,
    NoSuchKey,
    NoSuchUpload,
    NoSuchVersion,
    TooManyBuckets,
)
from euca.store import Store, Tx
from euca.walrus import acl as acls
from euca.walrus.blobs import Blobs, Gone, Run, Staged, files, is_inline
from euca.walrus.catalog import Catalog, next_seq, successor
from euca.walrus.model import NULL_VERSION, Acl, Bucket, Listed, Listing, ObjectInfo, Requester
from euca.walrus.names import check_bucket_name, check_key

log = logging.getLogger("euca.walrus")

MAX_BUCKETS = 100  # per account (Eucalyptus 4.x's default)
MAX_KEYS = 1000
READ_TRIES = 3  # lookups of a version being read, when it is replaced or deleted before its files open


class Directory(Protocol):
    """What Walrus needs to know about accounts, handed in by whoever builds it (the API layer)."""

    def by_account_id(self, account_id: str) -> Requester | None: ...
    def by_canonical_id(self, canonical_id: str) -> Requester | None: ...
    def admin(self) -> Requester | None: ...
    def credentials(self, account: str) -> tuple[str, str] | None: ...


def _version_id() -> str:
    return secrets.token_urlsafe(24)


def quoted_md5(md5_hex: str) -> str:
    return f'"{md5_hex}"'


class Walrus:
    """The object store. ``root`` is ``<data-dir>/walrus``; ``min_free`` the fraction of the disk
    that must be free for a write to start (Walrus stopped at 10%)."""

    def __init__(self, store: Store, root: Path, directory: Directory, min_free: float = 0.10,
                 fsync: bool = True, endpoint: str = "", clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.catalog = Catalog(store)
        self.blobs = Blobs(root, min_free, fsync)
        self.directory = directory
        self.endpoint = endpoint  # the S3 URL presigned links point at
        self.clock = clock
        from euca.walrus.multipart import Uploads

        self.uploads = Uploads(self)

    # --- start-up ----------------------------------------------------------------------------------

    def sweep(self) -> int:
        """Delete temporary files and blobs no metadata names (what a crash left); how many."""
        gone = self.blobs.sweep(self.catalog.referenced_blobs())
        if gone:
            log.info("walrus: swept %d orphan files", gone)
        return gone

    # --- buckets -----------------------------------------------------------------------------------

    def bucket(self, who: Requester | None, name: str, permission: str | None = None) -> Bucket:
        """The bucket, if ``who`` holds ``permission`` on it (None: only its owner may)."""
        bucket = self.catalog.bucket(name)
        if bucket is None:
            raise NoSuchBucket(BucketName=name)
        if permission is None:
            if who is None or who.account_id != bucket.owner:
                raise AccessDenied()
        else:
            acls.require(bucket.acl, who, permission)
        return bucket

    def create_bucket(self, who: Requester | None, name: str, location: str = "",
                      acl: Acl | str = "private") -> Bucket:
        if who is None:
            raise AccessDenied()
        check_bucket_name(name)
        existing = self.catalog.bucket(name)
        if existing is not None:
            if existing.owner == who.account_id:
                raise BucketAlreadyOwnedByYou(BucketName=name)
            raise BucketAlreadyExists(BucketName=name)
        if self.catalog.bucket_count(who.account_id) >= MAX_BUCKETS:
            raise TooManyBuckets()
        bucket = Bucket(name, who.account_id, self.clock(), location, "", self.acl_for(acl, who))
        with self.store.transaction() as tx:
            if tx.execute("SELECT 1 FROM s3_bucket WHERE name = ?", (name,)).fetchone():
                raise BucketAlreadyExists(BucketName=name)
            self.catalog.put_bucket(tx, bucket)
        return bucket

    def cloud_bucket(self, name: str) -> Requester | None:
        """The cloud's administrator, who keeps the cloud's own objects (images, snapshots) in the
        bucket ``name``, made here the first time it is needed; None when there is no administrator."""
        admin = self.directory.admin()
        if admin is not None and self.catalog.bucket(name) is None:
            with contextlib.suppress(BucketAlreadyOwnedByYou):  # made meanwhile by another request
                self.create_bucket(admin, name)
        return admin

    def delete_bucket(self, who: Requester | None, name: str) -> None:
        self.bucket(who, name)
        if self.catalog.has_objects(name):
            raise BucketNotEmpty(BucketName=name)
        with self.store.transaction() as tx:
            self.catalog.delete_bucket(tx, name)

    def list_buckets(self, who: Requester | None) -> list[Bucket]:
        if who is None:
            raise AccessDenied()
        return self.catalog.buckets(who.account_id)

    def configure(self, who: Requester | None, name: str, **changes: object) -> Bucket:
        """Change a bucket's settings (versioning, cors, lifecycle, tags): its owner only."""
        bucket = replace(self.bucket(who, name), **changes)  # type: ignore[arg-type]
        with self.store.transaction() as tx:
            self.catalog.put_bucket(tx, bucket)
        return bucket

    def set_versioning(self, who: Requester | None, name: str, status: str) -> Bucket:
        if status not in ("Enabled", "Suspended"):
            raise InvalidArgument("The versioning status must be Enabled or Suspended")
        return self.configure(who, name, versioning=status)

    def set_bucket_acl(self, who: Requester | None, name: str, acl: Acl | str) -> None:
        bucket = self.bucket(who, name, acls.WRITE_ACP)
        owner = self.directory.by_account_id(bucket.owner)
        with self.store.transaction() as tx:
            self.catalog.put_bucket(tx, replace(bucket, acl=self.acl_for(acl, owner, bucket_owner=bucket.owner)))

    def acl_for(self, acl: Acl | str, owner: Requester | None, bucket_owner: str = "") -> Acl:
        """A canned name expanded for ``owner``, or an explicit ACL checked."""
        owner_id = owner.canonical_id if owner is not None else ""
        if isinstance(acl, Acl):
            return Acl(owner_id or acl.owner, acls.check_grants(acl.grants))
        bucket_owner_id = admin_id = ""
        if acl in acls.NAMING_BUCKET_OWNER and bucket_owner:
            bucket_requester = self.directory.by_account_id(bucket_owner)
            bucket_owner_id = bucket_requester.canonical_id if bucket_requester else ""
        if acl in acls.NAMING_ADMIN:
            admin = self.directory.admin()
            admin_id = admin.canonical_id if admin else ""
        return acls.canned(acl, owner_id, bucket_owner_id, admin_id)

    # --- objects -----------------------------------------------------------------------------------

    def begin_put(self, who: Requester | None, bucket: str, key: str) -> Bucket:
        """Checks made before a body is read: the bucket, the permission, the key, the disk."""
        found = self.bucket(who, bucket, acls.WRITE)
        check_key(key)
        self.blobs.check_space()
        return found

    def stage(self, with_sha256: bool = False, inline: bool = False) -> Staged:
        """A body to write; ``inline``: kept in the store if it turns out small (an object's
        body, not a multipart part, which is joined from files)."""
        return self.blobs.stage(with_sha256, inline)

    def refresh(self) -> bool:
        """Forget cached buckets if another server changed them; whether the store changed at all."""
        return self.catalog.revalidate()

    def commit_put(self, who: Requester | None, bucket: Bucket, key: str, staged: Staged,
                   headers: dict[str, str] | None = None, metadata: dict[str, str] | None = None,
                   acl: Acl | str = "private", tags: dict[str, str] | None = None, content_md5: str | None = None,
                   etag: str | None = None, parts: int = 0) -> ObjectInfo:
        """Make a staged body the key's newest version (the only one, unless versioning is on)."""
        try:
            md5 = staged.md5.digest()
            if content_md5 is not None:
                check_md5(content_md5, md5)
            blob = staged.place()
            owner = who.account_id if who is not None else bucket.owner
            owner_requester = who or self.directory.by_account_id(bucket.owner)
            info = ObjectInfo(bucket.name, key, NULL_VERSION, staged.size, etag or quoted_md5(md5.hex()),
                              self.clock(), owner, blob, headers=dict(headers or {}), metadata=dict(metadata or {}),
                              acl=self.acl_for(acl, owner_requester, bucket.owner), tags=tags or None, parts=parts)
            return self.write_version(bucket.name, info, inline=staged.data)
        except BaseException:
            staged.discard()
            raise

    def write_version(self, bucket_name: str, info: ObjectInfo, upload_id: str = "",
                      inline: bytes | None = None) -> ObjectInfo:
        """Commit ``info`` (its blob already in place, or ``inline`` its bytes) as the key's latest
        version; with ``upload_id``, in the same transaction forget that multipart upload, whose
        parts' files ``info.blob`` names (those it leaves out go once this commits)."""
        try:
            return self._write_version(bucket_name, info, upload_id, inline)
        except BaseException:
            if not upload_id:  # an upload's parts stay its own until the commit
                self.blobs.delete(info.blob)
            raise

    def _write_version(self, bucket_name: str, info: ObjectInfo, upload_id: str, inline: bytes | None) -> ObjectInfo:
        with self.store.transaction() as tx:
            if upload_id:
                if not self.catalog.tx_upload_exists(tx, upload_id):
                    raise NoSuchUpload(UploadId=upload_id)
                parts = self.catalog.delete_upload(tx, upload_id)
                kept = files(info.blob)
                if not set(kept) <= set(parts):  # a part replaced since the completion read them
                    raise InvalidPart(UploadId=upload_id)
                left_out = [blob for blob in parts if blob not in set(kept)]
                tx.on_commit(lambda: self.blobs.delete_all(left_out))
            self.catalog.lock_key(tx, bucket_name, info.key)
            bucket = self.catalog.tx_bucket(tx, bucket_name)
            if bucket is None:
                raise NoSuchBucket(BucketName=bucket_name)
            if bucket.versioning == "Enabled":
                info = replace(info, version_id=_version_id(), latest=True)
            elif info.version_id != NULL_VERSION or not info.latest:
                info = replace(info, version_id=NULL_VERSION, latest=True)
            dropped = self._drop_null(tx, bucket, info.key, keep_blob=info.blob)
            # versions besides the null one may exist
            latest = self.catalog.unset_latest(tx, bucket.name, info.key) if bucket.versioning else None
            self.catalog.put_object(tx, info, next_seq(dropped, latest), inline)
        return info

    def _forget_blob(self, tx: Tx, blob: str) -> None:
        """A blob no version names once ``tx`` commits: a file goes after it (an inline body went
        with its row)."""
        if blob and not is_inline(blob):
            tx.on_commit(lambda: self.blobs.delete(blob))

    def _drop_null(self, tx: Tx, bucket: Bucket, key: str, keep_blob: str = "") -> int | None:
        """Unless versioning is on, a write replaces the "null" version: forget it, and its blob;
        its sequence number, if there was one."""
        if bucket.versioning == "Enabled":
            return None
        old = self.catalog.take_version(tx, bucket.name, key, NULL_VERSION)
        if old is None:
            return None
        if old[0] != keep_blob:
            self._forget_blob(tx, old[0])
        return old[2]

    def put_object(self, who: Requester | None, bucket: str, key: str, body: bytes | BinaryIO | Iterable[bytes],
                   headers: dict[str, str] | None = None, metadata: dict[str, str] | None = None,
                   acl: Acl | str = "private", tags: dict[str, str] | None = None) -> ObjectInfo:
        """Write an object from bytes, a file or an iterable of chunks (streamed to disk)."""
        found = self.begin_put(who, bucket, key)
        staged = self.stage(inline=True)
        try:
            if isinstance(body, bytes):
                staged.write(body)
            elif hasattr(body, "read"):
                while chunk := body.read(1 << 20):
                    staged.write(chunk)
            else:
                staged.write_all(body)
        except BaseException:
            staged.discard()
            raise
        return self.commit_put(who, found, key, staged, headers, metadata, acl, tags)

    def head_object(self, who: Requester | None, bucket: str, key: str, version_id: str | None = None,
                    permission: str = acls.READ) -> ObjectInfo:
        """The version a GET would return, if ``who`` may read it."""
        return self._find(who, bucket, key, version_id, permission, False)[0]

    def get_object(self, who: Requester | None, bucket: str, key: str,
                   version_id: str | None = None) -> tuple[ObjectInfo, bytes | None]:
        """As ``head_object``, with the bytes of a small (inline) version found in the same query;
        None when they are in files (``segments``)."""
        return self._find(who, bucket, key, version_id, acls.READ, True)

    def _find(self, who: Requester | None, bucket: str, key: str, version_id: str | None, permission: str,
              with_data: bool) -> tuple[ObjectInfo, bytes | None]:
        found_bucket = self.catalog.bucket(bucket)
        if found_bucket is None:
            raise NoSuchBucket(BucketName=bucket)
        data: bytes | None = None
        if version_id is None:
            if with_data:
                found = self.catalog.latest_with_data(bucket, key)
                info, data = found if found is not None else (None, None)
            else:
                info = self.catalog.latest(bucket, key)
            if info is None or info.delete_marker:
                headers = {"x-amz-delete-marker": "true", "x-amz-version-id": info.version_id} if info else {}
                if not acls.allows(found_bucket.acl, who, acls.READ):
                    raise AccessDenied()
                raise NoSuchKey(headers=headers, Key=key)
        else:
            info = self.catalog.version(bucket, key, version_id)
            if info is None:
                if not acls.allows(found_bucket.acl, who, acls.READ):
                    raise AccessDenied()
                if version_id != NULL_VERSION and not _valid_version(version_id):
                    raise InvalidArgument("Invalid version id specified", ArgumentName="versionId")
                raise NoSuchVersion(Key=key, VersionId=version_id)
            if info.delete_marker:
                raise MethodNotAllowed(headers={"x-amz-delete-marker": "true", "x-amz-version-id": version_id,
                                                "allow": "DELETE"})
        assert info.acl is not None
        acls.require(info.acl, who, permission)
        if with_data and data is None and is_inline(info.blob):
            data = self.inline_data(info)
        return info, data

    def open_runs(self, info: ObjectInfo, first: int, length: int) -> list[Run]:
        """The (descriptor, offset, length) runs holding ``length`` bytes of a version from
        ``first``, in order, every file open (one, or one per part touched; not for an inline
        version: ``inline_data``); the caller closes them (``blobs.close_runs``). ``Gone`` when
        the version was replaced or deleted since it was looked up."""
        return self.blobs.open_runs(info.blob, first, length)

    def inline_data(self, info: ObjectInfo) -> bytes | None:
        """The bytes of a version kept in the store (a small one), None when they are in a file."""
        if not is_inline(info.blob):
            return None
        data = self.catalog.inline_data(info)
        if data is None:
            raise NoSuchKey(Key=info.key)  # deleted between the lookup and now
        return data

    def copy_range(self, info: ObjectInfo, first: int, last: int) -> Staged:
        """A staged body holding bytes first..last (inclusive) of a version; ``Gone`` when the
        version was replaced or deleted since it was looked up (the caller looks again)."""
        data = None
        if is_inline(info.blob):
            data = self.catalog.inline_data(info)
            if data is None:
                raise Gone(info.blob)
        return self.blobs.copy_range(info.blob, first, last, data)

    def open_object(self, who: Requester | None, bucket: str, key: str,
                    version_id: str | None = None) -> tuple[ObjectInfo, BinaryIO]:
        """The object's description and its bytes as an open file (the caller closes it); the
        version as it was when the file opened, whatever replaces it while it is read."""
        for _ in range(READ_TRIES):
            info = self.head_object(who, bucket, key, version_id)
            try:
                if not is_inline(info.blob):
                    return info, self.blobs.open(info.blob, info.size)
                data = self.catalog.inline_data(info)
                if data is None:
                    raise Gone(info.blob)
                return info, io.BytesIO(data)
            except Gone:
                continue  # replaced or deleted since the lookup: look again
        raise InternalError("The object changed while it was read; try again")

    def delete_object(self, who: Requester | None, bucket: str, key: str,
                      version_id: str | None = None) -> ObjectInfo | None:
        """S3's DELETE: without a version, removes the null version or (versioning on) adds a delete
        marker; with one, removes exactly that version. The marker or version removed, if any."""
        found = self.bucket(who, bucket, acls.WRITE)
        check_key(key)
        with self.store.transaction() as tx:
            self.catalog.lock_key(tx, bucket, key)
            if version_id is not None:
                old = self.catalog.tx_version(tx, bucket, key, version_id)
                if old is None:
                    if version_id != NULL_VERSION and not _valid_version(version_id):
                        raise InvalidArgument("Invalid version id specified", ArgumentName="versionId")
                    return None
                self.catalog.delete_version(tx, bucket, key, version_id)
                if old.latest:
                    self.catalog.promote_newest(tx, bucket, key)
                self._forget_blob(tx, old.blob)
                return old
            if not found.versioning:
                null = self.catalog.take_version(tx, bucket, key, NULL_VERSION)
                if null is not None:
                    self._forget_blob(tx, null[0])
                return None
            dropped = self._drop_null(tx, found, key)
            latest = self.catalog.unset_latest(tx, bucket, key)
            marker = ObjectInfo(bucket, key, _version_id() if found.versioning == "Enabled" else NULL_VERSION, 0,
                                "", self.clock(), who.account_id if who else found.owner, "", delete_marker=True)
            self.catalog.put_object(tx, marker, next_seq(dropped, latest))
            return marker

    def copy_object(self, who: Requester | None, source: ObjectInfo, bucket: str, key: str,
                    headers: dict[str, str] | None, metadata: dict[str, str] | None, acl: Acl | str = "private",
                    tags: dict[str, str] | None = None) -> ObjectInfo:
        """Copy a readable version (``head_object`` found it) to bucket/key; ``headers`` and
        ``metadata`` None keep the source's (COPY), else replace them (REPLACE)."""
        found = self.begin_put(who, bucket, key)
        if (source.bucket, source.key) == (bucket, key) and headers is None and metadata is None \
                and found.versioning != "Enabled" and source.version_id == NULL_VERSION:
            raise InvalidRequest("This copy request is illegal because it is trying to copy an object to itself "
                                 "without changing the object's metadata, storage class, website redirect location "
                                 "or encryption attributes.")
        staged = self.copy_range(source, 0, source.size - 1)
        return self.commit_put(who, found, key, staged, source.headers if headers is None else headers,
                               source.metadata if metadata is None else metadata, acl,
                               tags if tags is not None else source.tags,
                               etag=source.etag if source.parts else None, parts=source.parts)

    def set_object_acl(self, who: Requester | None, bucket: str, key: str, version_id: str | None,
                       acl: Acl | str) -> ObjectInfo:
        info = self.head_object(who, bucket, key, version_id, permission=acls.WRITE_ACP)
        owner = self.directory.by_account_id(info.owner)
        found = self.catalog.bucket(bucket)
        changed = replace(info, acl=self.acl_for(acl, owner, found.owner if found else ""))
        with self.store.transaction() as tx:
            self.catalog.set_body(tx, changed)
        return changed

    def set_object_tags(self, who: Requester | None, bucket: str, key: str, version_id: str | None,
                        tags: dict[str, str] | None) -> ObjectInfo:
        info = self.head_object(who, bucket, key, version_id, permission=acls.WRITE)
        bucket_found = self.catalog.bucket(bucket)
        if (bucket_found is None or not acls.allows(bucket_found.acl, who, acls.WRITE)) \
                and (who is None or who.account_id != info.owner):
            raise AccessDenied()
        changed = replace(info, tags=tags or None)
        with self.store.transaction() as tx:
            self.catalog.set_body(tx, changed)
        return changed

    def presign(self, who: Requester, method: str, bucket: str, key: str, expires: int = 3600) -> str:
        """A URL anyone may ``method`` (GET, PUT, HEAD, DELETE) bucket/key with, as ``who``, for
        ``expires`` seconds (at most 7 days), signed with one of ``who``'s access keys."""
        credentials = self.directory.credentials(who.account)
        if credentials is None or not self.endpoint:
            raise AccessDenied("No access key to sign with")
        return presigned_url(self.endpoint, credentials[0], credentials[1], method, bucket, key, expires)

    def expire_object(self, bucket: str, key: str) -> None:
        """Delete as the bucket's owner would (the lifecycle sweep)."""
        found = self.catalog.bucket(bucket)
        owner = self.directory.by_account_id(found.owner) if found else None
        if owner is not None:
            self.delete_object(owner, bucket, key)

    def tick(self) -> int:
        """Periodic work (the cloud's housekeeping): lifecycle expiration."""
        from euca.walrus.lifecycle import expire

        return expire(self, self.clock())

    # --- listings ----------------------------------------------------------------------------------

    def list_objects(self, who: Requester | None, bucket: str, prefix: str = "", delimiter: str = "",
                     after: str = "", max_keys: int = MAX_KEYS) -> Listing[Listed]:
        """One page of the bucket's live objects in key order, keys sharing a prefix up to the
        delimiter rolled up into one common prefix; ``after`` is the marker / start-after /
        continuation key. A page of no keys (``max_keys`` 0) is empty and not truncated, as S3's."""
        self.bucket(who, bucket, acls.READ)
        max_keys = max(0, min(max_keys, MAX_KEYS))
        if max_keys == 0:  # S3 answers an empty page that is not truncated, whatever the bucket holds
            return Listing([], [], False)
        if not delimiter:  # nothing rolls up: the page is the rows, one more telling whether there are more
            rows = self.catalog.page(bucket, prefix, after, max_keys + 1)
            if len(rows) <= max_keys:
                return Listing(rows, [], False)
            del rows[max_keys:]
            return Listing(rows, [], True, rows[-1].key if rows else "")
        objects: list[Listed] = []
        prefixes: list[str] = []
        cursor, inclusive, last = after, False, ""
        page = max_keys + 1
        while True:
            batch = self.catalog.page(bucket, prefix, cursor, page, inclusive)
            inclusive = False
            for info in batch:
                rolled = _common_prefix(info.key, prefix, delimiter)
                if rolled is not None and rolled <= after:
                    cursor, inclusive = successor(rolled), True  # the marker sits inside this prefix
                    break
                if len(objects) + len(prefixes) == max_keys:
                    return Listing(objects, prefixes, True, last)
                if rolled is not None:
                    prefixes.append(rolled)
                    last = rolled
                    cursor, inclusive = successor(rolled), True
                    break
                objects.append(info)
                cursor = last = info.key
            else:
                if len(batch) < page:
                    return Listing(objects, prefixes, False)
                continue
            if not cursor:
                return Listing(objects, prefixes, False)

    def list_versions(self, who: Requester | None, bucket: str, prefix: str = "", delimiter: str = "",
                      key_marker: str = "", version_marker: str = "", max_keys: int = MAX_KEYS) -> Listing[ObjectInfo]:
        """One page of the bucket's versions and delete markers, in key order and newest first
        within a key, after (``key_marker``, ``version_marker``). Read from the store a page at a
        time (and past a whole common prefix at once), never more rows than the answer needs. A
        page of no keys (``max_keys`` 0) is empty and not truncated, as ``list_objects``'s."""
        self.bucket(who, bucket, acls.READ)
        max_keys = max(0, min(max_keys, MAX_KEYS))
        if max_keys == 0:
            return Listing([], [], False)
        after_seq = None
        if key_marker and version_marker:
            after_seq = self.catalog.seq_of(bucket, key_marker, version_marker)
        objects: list[ObjectInfo] = []
        prefixes: list[str] = []
        next_key = next_version = ""  # where a truncated page ends
        cursor, cursor_seq, inclusive = key_marker, after_seq, False
        page = max_keys + 1
        while True:
            rows = self.catalog.version_page(bucket, prefix, cursor, cursor_seq, page, inclusive)
            inclusive = False
            for info, seq in rows:
                rolled = _common_prefix(info.key, prefix, delimiter)
                if len(objects) + len(prefixes) == max_keys:
                    return Listing(objects, prefixes, True, next_key, next_version)
                if rolled is not None:
                    if rolled > key_marker:
                        prefixes.append(rolled)
                        next_key, next_version = rolled, ""
                    # the prefix is listed once (or sits at or before the marker): go past all of it
                    cursor, cursor_seq, inclusive = successor(rolled), None, True
                    break
                objects.append(info)
                next_key, next_version = info.key, info.version_id
                cursor, cursor_seq = info.key, seq
            else:
                if len(rows) < page:
                    return Listing(objects, prefixes, False)
                continue
            if not cursor:  # nothing sorts after the prefix
                return Listing(objects, prefixes, False)


def _common_prefix(key: str, prefix: str, delimiter: str) -> str | None:
    if not delimiter:
        return None
    at = key.find(delimiter, len(prefix))
    return key[:at + len(delimiter)] if at >= 0 else None


def _valid_version(version_id: str) -> bool:
    return len(version_id) == 32 and all(c.isalnum() or c in "-_" for c in version_id)


def check_md5(content_md5: str, md5: bytes) -> None:
    try:
        expected = base64.b64decode(content_md5, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidDigest() from None
    if len(expected) != 16:
        raise InvalidDigest()
    if expected != md5:
        raise BadDigest()


def presigned_url(endpoint: str, access_key: str, secret: str, method: str, bucket: str, key: str,
                  expires: int, region: str = "eucalyptus") -> str:
    """A SigV4 query-signed URL for ``method`` on bucket/key under ``endpoint`` (path style)."""
    from urllib.parse import quote

    from botocore.auth import S3SigV4QueryAuth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(method, f"{endpoint.rstrip('/')}/{bucket}/{quote(key, safe='/~')}")
    S3SigV4QueryAuth(Credentials(access_key, secret), "s3", region, expires=expires).add_auth(request)
    return str(request.prepare().url)
