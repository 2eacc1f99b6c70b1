"""Walrus, the cloud's object store (S3 2006-03-01): buckets, object versions, ACLs, multipart.

The REST wire is ``euca.api.s3``; this package is the service behind it, and what other parts of
the cloud (image bundles) call directly. Build one per cloud::

    walrus = Walrus(store, data_dir / "walrus", directory, endpoint=s3_url)
    walrus.sweep()                      # at start-up: orphan files a crash left behind

``directory`` (``Directory``) answers who an account is (``by_account_id``, ``by_canonical_id``,
``admin``) and with which keys to sign (``credentials``); ``euca.api.s3.open_walrus`` builds it
from the cloud's accounts. A ``Requester`` is an account (``Requester(name, account_id, admin)``);
``None`` is an anonymous request. Every call checks the ACLs as an S3 request would and raises the
S3 error (``euca.core.s3errors``: ``NoSuchBucket``, ``NoSuchKey``, ``AccessDenied``, ...).

Objects::

    info = walrus.put_object(who, bucket, key, body, headers={"content-type": "..."},
                             metadata={"name": "value"}, acl="aws-exec-read")
        # body: bytes, a binary file, or an iterable of byte chunks; streamed to disk, never held whole
    info, f = walrus.open_object(who, bucket, key)        # f: an open binary file; close it
    info = walrus.head_object(who, bucket, key, version_id=None)
    walrus.delete_object(who, bucket, key)
    url = walrus.presign(who, "GET", bucket, key, expires=3 * 3600)   # SigV4 query-signed URL
    listing = walrus.list_objects(who, bucket, prefix="", delimiter="", after="", max_keys=1000)

Buckets: ``create_bucket(who, name, location="", acl="private")``, ``delete_bucket``,
``list_buckets``, ``bucket(who, name, permission)``, ``set_versioning``, ``set_bucket_acl``.
Multipart: ``walrus.uploads`` (``create``, ``begin_part`` + ``commit_part``, ``complete``, ``abort``).
Canned ACLs are S3's plus Eucalyptus's ``aws-exec-read`` and ``ec2-bundle-read`` (owner and the
cloud's administrator read).
"""

from euca.walrus.model import Acl, Bucket, Grant, Listing, ObjectInfo, Requester, canonical_id
from euca.walrus.service import Directory, Walrus

__all__ = ["Acl", "Bucket", "Directory", "Grant", "Listing", "ObjectInfo", "Requester", "Walrus", "canonical_id"]
