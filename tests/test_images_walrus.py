"""Images through Walrus: bundles registered and unbundled by the cloud (euca.walrus.images),
imports stored there, and nodes downloading them by presigned URL (euca.node.images.HttpImages)."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import random
import re
import tarfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from drivers.protocol import InstanceSpec, NcState, NodeError
from drivers.sim import NodeShape, SimNode
from euca.auth.certs import cloud_credentials, load_certificate, load_private_key, user_credentials
from euca.cli import main
from euca.node import ImageLocation, ImageSources, NodeController, NodeStorage
from euca.services.common import ADMIN
from euca.walrus import Requester
from euca.walrus import bundle as bundle_module
from euca.walrus.images import IMAGES_BUCKET, ImageStore
from pyx.digest import tree_digest_bytes
from tests.ec2_server import Box, running_box

PART = 64 * 1024


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    with running_box(tmp_path_factory.mktemp("box")) as box:
        yield box


def alice(box: Box) -> Requester:
    box.keys("alice")
    found = box.cloud.accounts.get("alice")
    assert found is not None
    return Requester("alice", found.account_id, False)


def admin(box: Box) -> Requester:
    found = box.cloud.accounts.get(ADMIN)
    assert found is not None
    return Requester(ADMIN, found.account_id, True)


def described(client: Any, image_id: str, timeout: float = 20.0) -> dict[str, Any]:
    """The image once it is no longer pending."""
    deadline = time.monotonic() + timeout
    while True:
        image: dict[str, Any] = client.describe_images(ImageIds=[image_id])["Images"][0]
        if image["State"] != "pending" or time.monotonic() > deadline:
            return image
        time.sleep(0.05)


def stored_keys(box: Box) -> list[str]:
    assert box.walrus is not None
    return [o.key for o in box.walrus.list_objects(admin(box), IMAGES_BUCKET).objects]


def nothing_behind(box: Box, image_id: str) -> None:
    assert image_id not in stored_keys(box)
    work = box.data_dir / "imaging"
    assert not work.exists() or list(work.iterdir()) == []


def _image_bytes(size: int = 300_000) -> bytes:
    return random.Random(5).randbytes(size // 2) + bytes(size - size // 2)


# --- bundle-image, upload-bundle, RegisterImage, RunInstances ----------------------------------------

def test_a_bundle_from_the_cli_is_registered_unbundled_and_launched(box: Box, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    me = alice(box)
    access, secret = box.keys("alice")
    mine = user_credentials(box.data_dir, "alice", me.account_id)
    for name, value in (("S3_URL", f"{box.url}/services/Walrus"), ("AWS_ACCESS_KEY_ID", access),
                        ("AWS_SECRET_ACCESS_KEY", secret), ("EC2_CERT", str(mine.cert)),
                        ("EC2_PRIVATE_KEY", str(mine.key)),
                        ("EUCALYPTUS_CERT", str(cloud_credentials(box.data_dir).cert))):
        monkeypatch.setenv(name, value)
    disk = tmp_path / "web.img"
    disk.write_bytes(_image_bytes())
    assert main(["bundle-image", "-i", str(disk), "-d", str(tmp_path / "b"), "--part-size", str(PART)]) == 0
    assert main(["upload-bundle", "-b", "alice-images/web", "-m", str(tmp_path / "b" / "web.img.manifest.xml")]) == 0
    capsys.readouterr()

    ec2 = box.client("alice")
    image_id = ec2.register_image(ImageLocation="alice-images/web/web.img.manifest.xml", Name="web")["ImageId"]
    assert image_id.startswith("emi-")
    image = described(ec2, image_id)
    assert image["State"] == "available", image.get("StateReason")
    assert image["ImageLocation"] == "alice-images/web/web.img.manifest.xml" and image["Architecture"] == "x86_64"
    record = box.cloud.images.get(image_id)
    assert record is not None and record.size == disk.stat().st_size
    assert record.digest == tree_digest_bytes(disk.read_bytes())
    assert box.walrus is not None
    info, body = box.walrus.open_object(admin(box), IMAGES_BUCKET, image_id)
    with body:
        assert body.read() == disk.read_bytes()
    assert info.metadata.get("tree-sha256") == record.digest
    nothing_behind_but(box, image_id)

    # launched on a simulated node, with the default image's kernel and ramdisk
    default = ec2.describe_images(Filters=[{"Name": "name", "Values": ["euca-default"]}])["Images"][0]
    run = ec2.run_instances(ImageId=image_id, MinCount=1, MaxCount=1, KernelId=default["KernelId"],
                            RamdiskId=default["RamdiskId"])
    instance = run["Instances"][0]["InstanceId"]
    deadline = time.monotonic() + 10
    while ec2.describe_instances(InstanceIds=[instance])["Reservations"][0]["Instances"][0]["State"]["Name"] \
            != "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    ec2.terminate_instances(InstanceIds=[instance])


def nothing_behind_but(box: Box, image_id: str) -> None:
    work = box.data_dir / "imaging"
    assert not work.exists() or list(work.iterdir()) == []
    assert image_id in stored_keys(box)


def test_run_instances_hands_the_node_presigned_urls_with_size_and_digest(box: Box,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    emi = box.image()
    handed: list[dict[str, Any]] = []
    fleet = box.cloud.box.fleet
    launch = fleet.launch

    def spy(node: str, spec: InstanceSpec, locations: Any) -> None:
        handed.append(dict(locations))
        launch(node, spec, locations)

    monkeypatch.setattr(fleet, "launch", spy)
    ec2 = box.client()
    run = ec2.run_instances(ImageId=emi, MinCount=1, MaxCount=1)
    ec2.terminate_instances(InstanceIds=[run["Instances"][0]["InstanceId"]])
    (locations,) = handed
    image = box.cloud.images.get(emi)
    assert image is not None
    assert set(locations) == {emi, image.kernel_id, image.ramdisk_id}
    for image_id, where in locations.items():
        assert isinstance(where, ImageLocation)
        assert where.location.startswith(f"{box.url}/services/Walrus/{IMAGES_BUCKET}/{image_id}?")
        assert "X-Amz-Expires=10800" in where.location  # three hours, as Eucalyptus 4 gave its nodes
        with urllib.request.urlopen(where.location) as answer:  # anyone holding it reads, no keys needed
            data = answer.read()
        assert len(data) == where.size and tree_digest_bytes(data) == where.digest


# --- what fails, and leaves nothing behind ---------------------------------------------------------

def _upload(box: Box, location: str, files: dict[str, bytes], acl: str = "aws-exec-read") -> None:
    assert box.walrus is not None
    bucket, _, key = location.partition("/")
    folder = key.rpartition("/")[0]
    who = alice(box)
    if box.walrus.catalog.bucket(bucket) is None:
        box.walrus.create_bucket(who, bucket)
    for name, data in files.items():
        box.walrus.put_object(who, bucket, f"{folder}/{name}" if folder else name, data, acl=acl)


def _bundle_files(box: Box, tmp_path: Path, name: str) -> dict[str, bytes]:
    location = box.upload_bundle("alice", f"scratch-{name}/{name}.manifest.xml", _image_bytes(200_000))
    assert box.walrus is not None
    bucket, _, manifest = location.partition("/")
    xml = box.walrus.open_object(admin(box), bucket, manifest)[1].read()
    out = {f"{name}.manifest.xml": xml}
    for part in bundle_module.part_filenames(xml):
        out[part] = box.walrus.open_object(admin(box), bucket, part)[1].read()
    return out


def _evil_bundle(box: Box, tar_bytes: bytes) -> dict[str, bytes]:
    """Signed by alice and encrypted for the cloud, around a tar stream euca bundle-image never makes."""
    me = alice(box)
    mine = user_credentials(box.data_dir, "alice", me.account_id)
    cloud = cloud_credentials(box.data_dir)
    key, iv = os.urandom(16), os.urandom(16)
    data = gzip.compress(tar_bytes)
    data += bytes([16 - len(data) % 16]) * (16 - len(data) % 16)
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    part = encryptor.update(data) + encryptor.finalize()
    xml = bundle_module._manifest_xml(
        name="evil", user=me.account_id, image_type="machine", arch="x86_64", kernel_id=None, ramdisk_id=None,
        mappings={}, digest=hashlib.sha1(tar_bytes).hexdigest(), size=5,
        parts=[("evil.part.00", hashlib.sha1(part).hexdigest(), len(part))], key=key, iv=iv,
        user_cert=load_certificate(mine.cert), user_key=load_private_key(mine.key),
        cloud_cert=load_certificate(cloud.cert))
    return {"evil.manifest.xml": xml, "evil.part.00": part}


def _tar(name: str, content: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def _tampered_part(files: dict[str, bytes]) -> dict[str, bytes]:
    name = sorted(n for n in files if ".part." in n)[1]
    bad = bytearray(files[name])
    bad[100] ^= 0x01
    return files | {name: bytes(bad)}


def _resigned(files: dict[str, bytes]) -> dict[str, bytes]:
    manifest = next(n for n in files if n.endswith(".manifest.xml"))
    return files | {manifest: files[manifest].replace(b"<size>200000<", b"<size>200001<")}


@pytest.mark.parametrize(("case", "message"), [
    ("tampered-part", r"part 1 \(\S+\.part\.01\) digest mismatch"),
    ("wrong-signature", "signature does not match"),
    ("cloud-cannot-read", "the cloud cannot read the manifest .*aws-exec-read"),
    ("unsafe-tar", "would land outside the target directory"),
    ("absolute-tar", "has an absolute path"),
])
def test_a_bad_bundle_fails_with_the_reason_and_leaves_nothing(box: Box, tmp_path: Path, case: str,
                                                               message: str) -> None:
    acl = "aws-exec-read"
    if case == "tampered-part":
        files = _tampered_part(_bundle_files(box, tmp_path, "tampered"))
    elif case == "wrong-signature":
        files = _resigned(_bundle_files(box, tmp_path, "resigned"))
    elif case == "cloud-cannot-read":
        files, acl = _bundle_files(box, tmp_path, "private"), "private"
    elif case == "unsafe-tar":
        files = _evil_bundle(box, _tar("../../evil", b"owned"))
    else:
        files = _evil_bundle(box, _tar("/tmp/evil", b"owned"))
    location = f"alice-bad/{case}/" + next(n for n in files if n.endswith(".manifest.xml"))
    _upload(box, location, files, acl)
    ec2 = box.client("alice")
    image_id = ec2.register_image(ImageLocation=location, Name=f"bad-{case}")["ImageId"]
    image = described(ec2, image_id)
    assert image["State"] == "failed"
    assert re.search(message, image["StateReason"]["Message"]), image["StateReason"]
    assert ec2.describe_images(ImageIds=[image_id], Filters=[{"Name": "state", "Values": ["failed"]}])["Images"]
    nothing_behind(box, image_id)
    assert not (box.data_dir / "evil").exists() and not (box.data_dir.parent / "evil").exists()
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        ec2.run_instances(ImageId=image_id, MinCount=1, MaxCount=1)
    assert refused.value.response["Error"]["Code"] == "InvalidAMIID.Unavailable"
    ec2.deregister_image(ImageId=image_id)


def test_a_manifest_the_caller_cannot_read_is_invalid_manifest(box: Box, tmp_path: Path) -> None:
    location = box.upload_bundle("alice", "alice-only/app.manifest.xml", acl="private")
    bob = box.client("bob")
    for where in (location, "alice-only/none.manifest.xml", "no-such-bucket/x.manifest.xml", "nobucketkey"):
        with pytest.raises(botocore.exceptions.ClientError) as refused:
            bob.register_image(ImageLocation=where, Name="stolen")
        assert refused.value.response["Error"]["Code"] == "InvalidManifest", where
    assert [i for i in bob.describe_images(Owners=["self"])["Images"]] == []


def test_only_administrators_register_kernels_as_the_manifest_says(box: Box) -> None:
    # named like a machine image, but the manifest says kernel
    location = box.upload_bundle("alice", "alice-k/app.manifest.xml", image_type="kernel")
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        box.client("alice").register_image(ImageLocation=location, Name="app-kernel")
    assert refused.value.response["Error"]["Code"] == "UnauthorizedOperation"
    ramdisk = box.upload_bundle(ADMIN, "admin-r/initrd.manifest.xml", image_type="ramdisk")
    image_id = box.registered(box.client(), ramdisk, "admin-initrd")
    assert image_id.startswith("eri-")


def test_deregistering_removes_the_stored_image(box: Box) -> None:
    ec2 = box.client("alice")
    image_id = box.registered(ec2, box.upload_bundle("alice", "alice-gone/app.manifest.xml"), "gone")
    assert image_id in stored_keys(box)
    ec2.deregister_image(ImageId=image_id)
    assert image_id not in stored_keys(box)


def test_pending_images_are_resumed_or_failed_at_the_next_start(tmp_path: Path) -> None:
    with running_box(tmp_path) as box:
        assert box.imaging is not None
        box.imaging.close()  # the server stops before the worker gets to them
        ec2 = box.client("alice")
        kept = ec2.register_image(ImageLocation=box.upload_bundle("alice", "alice-r/kept.manifest.xml"),
                                  Name="kept")["ImageId"]
        lost = ec2.register_image(ImageLocation=box.upload_bundle("alice", "alice-r/lost.manifest.xml"),
                                  Name="lost")["ImageId"]
        assert box.walrus is not None
        box.walrus.delete_object(alice(box), "alice-r", "lost.manifest.xml")
        assert {i["State"] for i in ec2.describe_images(Owners=["self"])["Images"]} == {"pending"}
    with running_box(tmp_path) as box:
        ec2 = box.client("alice")
        assert described(ec2, kept)["State"] == "available"
        image = described(ec2, lost)
        assert image["State"] == "failed"
        assert "cannot read the manifest alice-r/lost.manifest.xml" in image["StateReason"]["Message"]
        nothing_behind(box, lost)


# --- imports --------------------------------------------------------------------------------------------

def test_image_import_stores_the_files_in_walrus(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from euca.api.images import images_in_walrus
    from euca.store import Store

    d = ["--data-dir", str(tmp_path)]
    for name in ("vmlinuz", "initrd", "root.img"):
        (tmp_path / name).write_bytes(name.encode() * 1000)
    files = ["--kernel", str(tmp_path / "vmlinuz"), "--ramdisk", str(tmp_path / "initrd")]
    assert main(["image", "import", *files, "--root", str(tmp_path / "root.img"), *d]) == 0
    assert main(["image", "import", *files, "--root", str(tmp_path / "root.img"), "--name", "again", *d]) == 0
    printed = capsys.readouterr().out.split()
    assert len([w for w in printed if w.startswith("eki-")]) == 2  # the same kernel, reported twice
    store = Store(str(tmp_path / "euca.db"))
    try:
        images = images_in_walrus(store, tmp_path)
        stored = images.bytes
        assert isinstance(stored, ImageStore)
        by_kind: dict[str, list[str]] = {}
        for image in images.all():
            by_kind.setdefault(image.kind, []).append(image.image_id)
            assert image.location == f"{IMAGES_BUCKET}/{image.image_id}" and image.state == "available"
            _, body = stored.walrus.open_object(stored._admin(), IMAGES_BUCKET, image.image_id)
            with body:
                data = body.read()
            assert len(data) == image.size and tree_digest_bytes(data) == image.digest
        # the same kernel and ramdisk imported twice are stored and registered once
        assert [len(by_kind[k]) for k in ("kernel", "ramdisk", "machine")] == [1, 1, 2]
        machine = by_kind["machine"][0]
        images.deregister(images.admin_caller(), machine)
        assert machine not in [o.key for o in stored.walrus.list_objects(stored._admin(), IMAGES_BUCKET).objects]
    finally:
        store.close()


# --- a node downloading by presigned URL -----------------------------------------------------------------

def _node(tmp_path: Path) -> NodeController:
    storage = NodeStorage(tmp_path / "instances", ImageSources(), cache_size_mb=100, concurrent_disk_ops=2,
                          swap_mb=16)
    return NodeController(SimNode("node01", NodeShape(boot_time=0.0)), storage, name="node01")


def _spec(n: int, emi: str, eki: str, eri: str) -> InstanceSpec:
    return InstanceSpec(f"i-0000{n:04X}", "r-00000001", "alice", "m1.small", 1, 128, 1, emi, eki, eri)


def test_a_node_downloads_by_presigned_url_and_starts(box: Box, tmp_path: Path) -> None:
    emi = box.image()
    image = box.cloud.images.get(emi)
    assert image is not None
    ids = (emi, image.kernel_id, image.ramdisk_id)
    locations: dict[str, ImageLocation | str] = {}
    for image_id in ids:
        found = box.cloud.images.get(image_id)
        assert found is not None
        locations[image_id] = box.cloud.images.node_location(found)
    nc = _node(tmp_path)
    try:
        spec = _spec(1, *ids)
        nc.run(spec, locations, wait=True)
        assert {s.instance_id: s.state for s in nc.describe_instances()}[spec.instance_id] is NcState.RUNNING
        assert nc.storage is not None and sorted(nc.storage.cache.cached()) == sorted(ids)
        assert nc.storage.cache.fetches == 3
        files = nc.storage.disks.files("alice", spec.instance_id)
        assert files.root.read_bytes().startswith(b"ubuntu-") and files.root.stat().st_size == image.size
        assert not list((nc.storage.cache.root).rglob("*.part"))
    finally:
        nc.close()


@pytest.mark.parametrize("spoil", ["expired", "tampered", "gone"])
def test_an_expired_or_tampered_url_fails_the_start_naming_the_image(box: Box, tmp_path: Path, spoil: str) -> None:
    emi = box.image(kernel=False)
    image = box.cloud.images.get(emi)
    assert image is not None and box.walrus is not None
    if spoil == "expired":
        url = box.walrus.presign(admin(box), "GET", IMAGES_BUCKET, emi, expires=1)
        time.sleep(2.1)
    elif spoil == "tampered":
        url = box.walrus.presign(admin(box), "GET", IMAGES_BUCKET, emi, expires=60)
        url = url[:-1] + ("0" if url[-1] != "0" else "1")
    else:
        url = box.walrus.presign(admin(box), "GET", IMAGES_BUCKET, emi + "-nothing", expires=60)
    nc = _node(tmp_path)
    try:
        spec = InstanceSpec("i-00000001", "r-00000001", "alice", "m1.small", 1, 128, 1, emi, "", "")
        assert nc.storage is not None
        with pytest.raises(NodeError, match=f"^{emi}: Walrus refused the download .*HTTP 40[34]") as refused:
            nc.storage.stage(spec, {emi: ImageLocation(url, image.size, image.digest)})
        assert "Signature=" not in str(refused.value) and "X-Amz" not in str(refused.value)
        assert nc.storage.cache.cached() == [] and not list(nc.storage.cache.root.rglob("*.part"))
        # through ncRunInstance: the instance ends, with the reason
        nc.run(spec, {emi: ImageLocation(url, image.size, image.digest)}, wait=True)
        assert {s.instance_id: s.state for s in nc.describe_instances()}[spec.instance_id] is NcState.TEARDOWN
    finally:
        nc.close()
