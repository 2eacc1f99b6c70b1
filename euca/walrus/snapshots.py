"""EBS snapshots' bytes in Walrus: one object per snapshot in the cloud's own bucket, written as a
multipart upload (one part per ``PART`` bytes, as Eucalyptus's SC sent them) and owned by the
cloud's administrator, so no account reads another's snapshot through S3."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

from euca.core.errors import ServiceUnavailable
from euca.core.s3errors import S3Error
from euca.walrus.model import Requester
from euca.walrus.service import Walrus

PART = 8 << 20  # S3's minimum part is 5 MiB
READ = 1 << 20


class WalrusSnapshots:
    def __init__(self, walrus: Walrus, bucket: str) -> None:
        self.walrus, self.bucket = walrus, bucket

    def _admin(self) -> Requester:
        admin = self.walrus.cloud_bucket(self.bucket)
        if admin is None:
            raise ServiceUnavailable("Walrus has no administrator to keep snapshots")
        return admin

    def write(self, key: str, chunks: Iterable[bytes]) -> None:
        """The stream as the object ``key``; a failure aborts the upload and raises."""
        admin, uploads = self._admin(), self.walrus.uploads
        upload = uploads.create(admin, self.bucket, key, headers={"content-type": "application/gzip"})
        staged = None
        try:
            parts: list[tuple[int, str]] = []
            for chunk in chunks:
                if staged is None:
                    uploads.begin_part(admin, self.bucket, key, upload.upload_id, len(parts) + 1)
                    staged = self.walrus.stage()
                staged.write(chunk)
                if staged.size >= PART:
                    parts.append((len(parts) + 1, uploads.commit_part(upload, len(parts) + 1, staged).etag))
                    staged = None
            if staged is not None or not parts:
                if staged is None:
                    uploads.begin_part(admin, self.bucket, key, upload.upload_id, 1)
                    staged = self.walrus.stage()
                parts.append((len(parts) + 1, uploads.commit_part(upload, len(parts) + 1, staged).etag))
            uploads.complete(admin, self.bucket, key, upload.upload_id, parts)
        except BaseException:
            if staged is not None:
                staged.discard()  # the part being written: its file and descriptor
            with contextlib.suppress(S3Error, OSError):
                uploads.abort(admin, self.bucket, key, upload.upload_id)
            raise

    def read(self, key: str) -> Iterator[bytes]:
        _, f = self.walrus.open_object(self._admin(), self.bucket, key)
        with f:
            while chunk := f.read(READ):
                yield chunk

    def delete(self, key: str) -> None:
        self.walrus.delete_object(self._admin(), self.bucket, key)
