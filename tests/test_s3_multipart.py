"""A multipart object kept as its parts' files: reads across parts (whole, ranges, copies, part
copies, the Python interface), and which files go when the object or its upload does."""

from __future__ import annotations

import gc
import hashlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from euca.walrus.blobs import is_manifest
from tests.ec2_server import Box, running_box
from tests.s3_kit import close_all, s3_client

MIB = 1 << 20


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    with running_box(tmp_path_factory.mktemp("s3mp")) as b:
        yield b


@pytest.fixture
def s3(box: Box) -> Iterator[Any]:
    yield s3_client(box)
    close_all()
    gc.collect()


def _files(box: Box) -> set[str]:
    objects = box.data_dir / "walrus" / "objects"
    return {p.name for d in objects.iterdir() for p in d.iterdir()}


def _bucket(s3: Any) -> str:
    name = f"mp-{time.time_ns() % 10**12}"
    s3.create_bucket(Bucket=name)
    return name


def _upload(s3: Any, bucket: str, key: str, parts: list[bytes], extra: bytes | None = None) -> dict[str, Any]:
    """Upload ``parts`` (and ``extra`` as one more part left out of the object) and complete."""
    up = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    chosen = [{"PartNumber": n, "ETag": s3.upload_part(Bucket=bucket, Key=key, UploadId=up, PartNumber=n,
                                                          Body=body)["ETag"]}
              for n, body in enumerate(parts, 1)]
    if extra is not None:
        s3.upload_part(Bucket=bucket, Key=key, UploadId=up, PartNumber=len(parts) + 1, Body=extra)
    return dict(s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=up,
                                             MultipartUpload={"Parts": chosen}))


def test_reads_stream_across_the_parts(box: Box, s3: Any) -> None:
    b = _bucket(s3)
    parts = [os.urandom(5 * MIB), os.urandom(5 * MIB + 7), os.urandom(1234)]
    body = b"".join(parts)
    before = _files(box)
    done = _upload(s3, b, "k", parts, extra=os.urandom(100))
    joined = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest()
    assert done["ETag"] == f'"{joined}-3"'
    # completion kept the three parts' files as the object and dropped the part left out
    assert box.walrus is not None
    info = box.walrus.head_object(box.walrus.directory.admin(), b, "k")
    assert is_manifest(info.blob) and info.size == len(body)
    assert len(_files(box) - before) == 3
    got = s3.get_object(Bucket=b, Key="k")
    assert got["ContentLength"] == len(body) and got["Body"].read() == body
    for first, last in ((0, 9), (5 * MIB - 3, 5 * MIB + 2), (5 * MIB - 1, 10 * MIB + 10), (len(body) - 5,
                                                                                            len(body) - 1)):
        ranged = s3.get_object(Bucket=b, Key="k", Range=f"bytes={first}-{last}")
        assert ranged["Body"].read() == body[first:last + 1]
        assert ranged["ContentRange"] == f"bytes {first}-{last}/{len(body)}"
    assert s3.head_object(Bucket=b, Key="k")["ContentLength"] == len(body)
    # a copy of the whole object, and a part copied from a range spanning two parts
    s3.copy_object(Bucket=b, Key="copy", CopySource=f"{b}/k")
    assert s3.get_object(Bucket=b, Key="copy")["Body"].read() == body
    up = s3.create_multipart_upload(Bucket=b, Key="from-range")["UploadId"]
    first, last = 5 * MIB - 100, 10 * MIB + 50
    etag = s3.upload_part_copy(Bucket=b, Key="from-range", UploadId=up, PartNumber=1, CopySource=f"{b}/k",
                               CopySourceRange=f"bytes={first}-{last}")["CopyPartResult"]["ETag"]
    assert etag == f'"{hashlib.md5(body[first:last + 1]).hexdigest()}"'
    s3.complete_multipart_upload(Bucket=b, Key="from-range", UploadId=up,
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
    assert s3.get_object(Bucket=b, Key="from-range")["Body"].read() == body[first:last + 1]
    # the Python interface reads it as one file
    _, f = box.walrus.open_object(box.walrus.directory.admin(), b, "k")
    with f:
        assert f.read(10) == body[:10] and f.read() == body[10:]


def test_replacing_deleting_and_aborting_remove_the_parts_files(box: Box, s3: Any) -> None:
    b = _bucket(s3)
    start = _files(box)
    _upload(s3, b, "k", [os.urandom(5 * MIB), b"tail" * 100])
    first = _files(box) - start
    assert len(first) == 2
    s3.put_object(Bucket=b, Key="k", Body=os.urandom(100 * 1024))  # replaces it: its parts go
    assert not first & _files(box) and len(_files(box) - start) == 1
    _upload(s3, b, "k", [os.urandom(5 * MIB), b"x"])
    s3.delete_object(Bucket=b, Key="k")
    assert _files(box) == start
    up = s3.create_multipart_upload(Bucket=b, Key="gone")["UploadId"]
    s3.upload_part(Bucket=b, Key="gone", UploadId=up, PartNumber=1, Body=os.urandom(5 * MIB))
    assert len(_files(box) - start) == 1
    s3.abort_multipart_upload(Bucket=b, Key="gone", UploadId=up)
    assert _files(box) == start
    # versioned: each version keeps its own parts until that version is deleted
    s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
    one = os.urandom(5 * MIB) + b"1"
    two = os.urandom(5 * MIB) + b"2"
    v1 = _upload(s3, b, "v", [one[:5 * MIB], one[5 * MIB:]])["VersionId"]
    v2 = _upload(s3, b, "v", [two[:5 * MIB], two[5 * MIB:]])["VersionId"]
    assert len(_files(box) - start) == 4
    assert s3.get_object(Bucket=b, Key="v", VersionId=v1)["Body"].read() == one
    assert s3.get_object(Bucket=b, Key="v")["Body"].read() == two
    s3.delete_object(Bucket=b, Key="v", VersionId=v2)
    assert s3.get_object(Bucket=b, Key="v")["Body"].read() == one
    assert len(_files(box) - start) == 2
    s3.delete_object(Bucket=b, Key="v", VersionId=v1)
    assert _files(box) == start


def test_the_sweep_keeps_a_multipart_objects_parts(box: Box, s3: Any) -> None:
    b = _bucket(s3)
    body = os.urandom(5 * MIB) + b"end"
    _upload(s3, b, "kept", [body[:5 * MIB], body[5 * MIB:]])
    assert box.walrus is not None
    box.walrus.sweep()
    assert s3.get_object(Bucket=b, Key="kept")["Body"].read() == body


# --- reads and copies racing a replacement or a delete ------------------------------------------------

def _big(s3: Any, bucket: str, key: str) -> bytes:
    """A six-part object of 25 MiB and a bit: more than a socket's buffers hold, so a reader that has
    taken the first part's worth has not yet had the last parts sent."""
    parts = [os.urandom(5 * MIB) for _ in range(5)] + [os.urandom(4321)]
    _upload(s3, bucket, key, parts)
    return b"".join(parts)


@pytest.mark.parametrize("change", ["overwrite", "delete"])
def test_a_get_in_progress_gets_the_whole_old_object(box: Box, s3: Any, change: str) -> None:
    b = _bucket(s3)
    body = _big(s3, b, "k")
    before = _files(box)
    got = s3.get_object(Bucket=b, Key="k")
    assert got["ContentLength"] == len(body)
    stream = got["Body"]
    head = stream.read(5 * MIB)
    if change == "overwrite":
        s3.put_object(Bucket=b, Key="k", Body=b"new" * 100_000)
    else:
        s3.delete_object(Bucket=b, Key="k")
    assert not _files(box) >= before  # the old parts' files are unlinked already
    rest = stream.read()
    assert hashlib.md5(head + rest).hexdigest() == hashlib.md5(body).hexdigest()
    # and the Python interface's file, read across the change
    body = _big(s3, b, "py")
    assert box.walrus is not None
    admin = box.walrus.directory.admin()
    _, f = box.walrus.open_object(admin, b, "py")
    with f:
        head = f.read(MIB)
        box.walrus.delete_object(admin, b, "py")
        assert f.read() == body[MIB:] and head == body[:MIB]


def test_a_copy_racing_a_delete_copies_the_old_bytes_or_finds_no_key(box: Box, s3: Any,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from botocore.exceptions import ClientError

    assert box.walrus is not None
    walrus, admin = box.walrus, box.walrus.directory.admin()
    blobs = walrus.blobs
    b = _bucket(s3)
    armed: list[str] = []

    def delete_source() -> None:
        if armed:
            walrus.delete_object(admin, b, armed.pop())

    # deleted once the copy has written its first bytes (its source files are read part by part)
    written = blobs.written

    def deleting_written(size: int) -> None:
        delete_source()
        written(size)
    monkeypatch.setattr(blobs, "written", deleting_written)
    body = _big(s3, b, "k")
    armed.append("k")
    s3.copy_object(Bucket=b, Key="copy", CopySource=f"{b}/k")
    assert not armed and "Contents" not in s3.list_objects_v2(Bucket=b, Prefix="k")
    assert hashlib.md5(s3.get_object(Bucket=b, Key="copy")["Body"].read()).digest() == hashlib.md5(body).digest()
    body = _big(s3, b, "k")
    up = s3.create_multipart_upload(Bucket=b, Key="part")["UploadId"]
    first, last = 3 * MIB, 18 * MIB
    armed.append("k")
    etag = s3.upload_part_copy(Bucket=b, Key="part", UploadId=up, PartNumber=1, CopySource=f"{b}/k",
                               CopySourceRange=f"bytes={first}-{last}")["CopyPartResult"]["ETag"]
    assert not armed and etag == f'"{hashlib.md5(body[first:last + 1]).hexdigest()}"'
    monkeypatch.setattr(blobs, "written", written)

    # deleted after the copy looked the source up, before it opened the files: no such key (not a 500)
    segments = blobs.segments
    change = delete_source

    def changing_segments(blob: str, first: int, length: int) -> list[tuple[Path, int, int]]:
        change()
        return segments(blob, first, length)
    monkeypatch.setattr(blobs, "segments", changing_segments)
    copies: list[Callable[[], Any]] = [
        lambda: s3.copy_object(Bucket=b, Key="copy2", CopySource=f"{b}/k"),
        lambda: s3.upload_part_copy(Bucket=b, Key="part", UploadId=up, PartNumber=2, CopySource=f"{b}/k",
                                    CopySourceRange="bytes=0-99"),
        lambda: s3.get_object(Bucket=b, Key="k")]
    for copy in copies:
        _big(s3, b, "k")
        armed.append("k")
        with pytest.raises(ClientError) as caught:
            copy()
        assert not armed and caught.value.response["Error"]["Code"] == "NoSuchKey"

    # replaced rather than deleted at that moment: the copy takes the new object whole
    def replace_source() -> None:
        if armed:
            walrus.put_object(admin, b, armed.pop(), b"replacement" * 10_000)
    change = replace_source
    _big(s3, b, "k")
    armed.append("k")
    s3.copy_object(Bucket=b, Key="copy3", CopySource=f"{b}/k")
    assert not armed and s3.get_object(Bucket=b, Key="copy3")["Body"].read() == b"replacement" * 10_000
    s3.abort_multipart_upload(Bucket=b, Key="part", UploadId=up)
