"""The cloud's images in Walrus: unbundling what RegisterImage names, and URLs for the nodes.

As in Eucalyptus, where Walrus decrypted and cached the bundles the cloud registered, this is
Walrus's side of images; the image records are the EC2 service's (``euca.services.images``), seen
here only through :class:`ImageRecords`.

Every image's bytes are one object of the cloud's own bucket, ``euca-images/<image id>``, owned
by the administrator and private. Imports put files there directly (:meth:`ImageStore.put`); a
registered bundle gets there through the unbundling worker, a thread of the server that takes
pending images one at a time, off the request path:

1. read the manifest as the cloud (the administrator: ``euca upload-bundle`` uploads with
   ``aws-exec-read``, which grants it READ) and check its signature against the certificate of
   the account that uploaded it (``euca account cert``);
2. decrypt with the cloud's key, check every part's SHA1 as it ends and the tar stream's SHA1,
   refuse any tar member but one plain file (``euca.walrus.bundle.unbundle``), into a working
   directory of its own under ``<data-dir>/imaging``;
3. store the image in ``euca-images`` and record its size and ``tree-sha256`` digest: available.

Any mismatch fails the image with the reason in its StateReason, and leaves nothing behind: no
object in ``euca-images``, no working directory. At start-up the worker resumes the images left
pending (unbundling is idempotent: the object is simply written again) and clears what a crash
left. Nodes fetch an image with a presigned GET valid for three hours, as Eucalyptus 4 gave them.
"""

from __future__ import annotations

import logging
import queue
import shutil
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from cryptography.hazmat.primitives.asymmetric import rsa

from euca.auth.certs import account_certificates, cloud_credentials, load_private_key
from euca.core.errors import InvalidManifest
from euca.core.s3errors import AccessDenied, S3Error
from euca.node.images import ImageLocation
from euca.walrus.bundle import BUNDLE_SIZE_LIMIT, IMAGE_TYPES, MANIFEST_LIMIT, BundleError, read_manifest, unbundle
from euca.walrus.model import Requester
from euca.walrus.service import Walrus
from pyx.digest import tree_digest_bytes, tree_digest_file

log = logging.getLogger("euca.imaging")

IMAGES_BUCKET = "euca-images"
NO_ADMIN = "the cloud has no administrator account to keep images with"
URL_SECONDS = 3 * 3600  # how long a node's presigned URL is valid (Eucalyptus 4)
URL_REUSE = 600.0  # s a URL is handed out again, so a node always gets one valid for 2 h 50 min or more
WORK_DIR = "imaging"
PENDING, AVAILABLE, FAILED = "pending", "available", "failed"


class ImageRecord(Protocol):
    """An image as its record has it (``euca.services.images.Image``)."""

    @property
    def image_id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def location(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def digest(self) -> str: ...


class ImageRecords(Protocol):
    """The cloud's image records (``euca.services.images.Images``)."""

    def get(self, image_id: str) -> ImageRecord | None: ...
    def pending(self) -> Sequence[ImageRecord]: ...
    def settle(self, image_id: str, state: str, reason: str = "", size: int = -1, digest: str = "") -> bool: ...


@dataclass(frozen=True)
class Declared:
    """What a manifest declares, before anything is verified: its type (machine, kernel or
    ramdisk), architecture, and a machine image's kernel and ramdisk."""

    kind: str
    architecture: str = ""
    kernel_id: str = ""
    ramdisk_id: str = ""


class ImageFailure(Exception):
    """Why a pending image failed, in words for its StateReason."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class _Stopped(Exception):
    """The server is stopping: the image stays pending and is resumed at the next start."""


def split_location(location: str) -> tuple[str, str]:
    """``bucket/key`` of a manifest, or InvalidManifest."""
    bucket, _, key = location.partition("/")
    if not bucket or not key:
        raise InvalidManifest(f"ImageLocation {location[:256]!r} is not bucket/prefix.manifest.xml")
    return bucket, key


def kind_of(image_type: str, kernel_id: str, ramdisk_id: str) -> str:
    """The image type a manifest declares: ``<type>``, or euca2ools' older ``kernel_id`` /
    ``ramdisk_id`` of ``true``."""
    if image_type in IMAGE_TYPES and image_type != "machine":
        return image_type
    if kernel_id == "true":
        return "kernel"
    if ramdisk_id == "true":
        return "ramdisk"
    return "machine"


def declared(xml: bytes, location: str) -> Declared:
    """The type, architecture, kernel and ramdisk a manifest declares, nothing verified yet."""
    if len(xml) > MANIFEST_LIMIT or b"<!DOCTYPE" in xml or b"<!ENTITY" in xml:
        raise InvalidManifest(f"The manifest {location[:256]} is not a bundle manifest")
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        raise InvalidManifest(f"The manifest {location[:256]} is not well-formed XML") from None
    if root.tag != "manifest" or root.find("image") is None:
        raise InvalidManifest(f"The manifest {location[:256]} is not a bundle manifest")

    def text(path: str) -> str:
        return (root.findtext(path) or "").strip()

    kernel, ramdisk = text("machine_configuration/kernel_id"), text("machine_configuration/ramdisk_id")
    kind = kind_of(text("image/type"), kernel, ramdisk)
    if kind != "machine":
        kernel = ramdisk = ""
    return Declared(kind, text("machine_configuration/architecture"), kernel, ramdisk)


class ImageStore:
    """Images' bytes in Walrus for one cloud: ``images`` is its image records, ``data_dir`` holds
    its key and the accounts' certificates."""

    def __init__(self, walrus: Walrus, images: ImageRecords, data_dir: Path) -> None:
        self.walrus = walrus
        self.images = images
        self.data_dir = data_dir
        self.work_dir = data_dir / WORK_DIR
        self._queue: queue.Queue[str] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._busy = 0
        self._idle = threading.Condition()
        self._urls: dict[str, tuple[str, float, str]] = {}  # image id -> (URL, made at, digest)
        self._cloud_key: rsa.RSAPrivateKey | None = None

    # --- the cloud's side of Walrus --------------------------------------------------------------------

    def _admin(self) -> Requester:
        admin = self.walrus.directory.admin()
        if admin is None:
            raise ImageFailure(NO_ADMIN)
        return admin

    def put(self, image_id: str, body: Path | bytes) -> tuple[str, int, str]:
        """Store an image's bytes as ``euca-images/<image id>``: that location, the size and the
        tree-sha256 digest (what a node checks its download against)."""
        admin = self.walrus.cloud_bucket(IMAGES_BUCKET)
        if admin is None:
            raise ImageFailure(NO_ADMIN)
        if isinstance(body, Path):
            digest = tree_digest_file(body)
            with body.open("rb") as f:
                info = self.walrus.put_object(admin, IMAGES_BUCKET, image_id, f, metadata={"tree-sha256": digest})
        else:
            digest = tree_digest_bytes(body)
            info = self.walrus.put_object(admin, IMAGES_BUCKET, image_id, body, metadata={"tree-sha256": digest})
        return f"{IMAGES_BUCKET}/{image_id}", info.size, digest

    def discard(self, image_id: str) -> None:
        self._urls.pop(image_id, None)
        admin = self.walrus.directory.admin()
        if admin is not None and self.walrus.catalog.bucket(IMAGES_BUCKET) is not None:
            self.walrus.delete_object(admin, IMAGES_BUCKET, image_id)

    def node_location(self, image: ImageRecord) -> ImageLocation:
        """A presigned GET for the image, with its size and digest; the same URL for ten minutes."""
        now = time.time()
        cached = self._urls.get(image.image_id)
        if cached is not None and now - cached[1] < URL_REUSE and cached[2] == image.digest:
            url = cached[0]
        else:
            url = self.walrus.presign(self._admin(), "GET", IMAGES_BUCKET, image.image_id, expires=URL_SECONDS)
            self._urls[image.image_id] = (url, now, image.digest)
        return ImageLocation(url, image.size, image.digest)

    # --- RegisterImage ------------------------------------------------------------------------------------

    def manifest_facts(self, account_id: str, location: str) -> Declared:
        """Read the manifest as the account would; InvalidManifest if it cannot."""
        bucket, key = split_location(location)
        who = self.walrus.directory.by_account_id(account_id)
        try:
            if who is None:
                raise AccessDenied()
            _, body = self.walrus.open_object(who, bucket, key)
        except S3Error as exc:
            raise InvalidManifest(f"The manifest {location[:256]} is not accessible ({exc.code}): check the bucket "
                                  "and key, and that you may read it") from None
        with body:
            xml = body.read(MANIFEST_LIMIT + 1)
        return declared(xml, location)

    def submit(self, image_id: str) -> None:
        with self._idle:
            self._busy += 1
        self._queue.put(image_id)

    # --- the worker -------------------------------------------------------------------------------------

    def start(self) -> None:
        """Clear what a crash left, queue the images left pending, and start the worker."""
        shutil.rmtree(self.work_dir, ignore_errors=True)
        self._sweep()
        for image in self.images.pending():
            log.info("%s: resuming its unbundling", image.image_id)
            self.submit(image.image_id)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="image-unbundler", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 30.0) -> None:
        """Stop the worker; an image it was unbundling stays pending, for the next start."""
        self._stop.set()
        self._queue.put("")
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def wait_idle(self, timeout: float) -> bool:
        """Until every submitted image is settled (tests); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def _sweep(self) -> None:
        """Objects of ``euca-images`` no image record names (an import that died before its record)."""
        admin = self.walrus.directory.admin()
        if admin is None or self.walrus.catalog.bucket(IMAGES_BUCKET) is None:
            return
        after = ""
        while True:
            listing = self.walrus.list_objects(admin, IMAGES_BUCKET, after=after)
            for info in listing.objects:
                if self.images.get(info.key) is None:
                    log.info("%s/%s: no image names it; deleted", IMAGES_BUCKET, info.key)
                    self.walrus.delete_object(admin, IMAGES_BUCKET, info.key)
            if not listing.truncated or not listing.objects:
                return
            after = listing.objects[-1].key

    def _run(self) -> None:
        while not self._stop.is_set():
            image_id = self._queue.get()
            if not image_id:
                continue
            try:
                self._unbundle(image_id)
            except Exception:  # the worker outlives any one image
                log.exception("%s: unbundling failed", image_id)
            finally:
                with self._idle:
                    self._busy -= 1
                    self._idle.notify_all()

    def _unbundle(self, image_id: str) -> None:
        image = self.images.get(image_id)
        if image is None or image.state != PENDING:
            return
        work = self.work_dir / image_id
        try:
            size, digest = self._stored(image, work)
        except _Stopped:
            return
        except (ImageFailure, BundleError) as exc:
            reason = exc.message
        except Exception as exc:
            if self._stop.is_set():
                return
            log.exception("%s: unbundling %s", image_id, image.location)
            reason = f"the cloud could not unbundle it: {exc}"
        else:
            if not self.images.settle(image_id, AVAILABLE, size=size, digest=digest):
                self.discard(image_id)  # deregistered while it was being unbundled
            else:
                log.info("%s: available (%d bytes from %s)", image_id, size, image.location)
            return
        finally:
            shutil.rmtree(work, ignore_errors=True)
        log.warning("%s: failed: %s", image_id, reason)
        self.discard(image_id)
        self.images.settle(image_id, FAILED, reason)

    def _key(self) -> rsa.RSAPrivateKey:
        if self._cloud_key is None:
            self._cloud_key = load_private_key(cloud_credentials(self.data_dir).key)
        return self._cloud_key

    def _stored(self, image: ImageRecord, work: Path) -> tuple[int, str]:
        bucket, key = split_location(image.location)
        admin = self._admin()
        try:
            info, body = self.walrus.open_object(admin, bucket, key)
        except AccessDenied:
            raise ImageFailure(f"the cloud cannot read the manifest {image.location}: it is gone, or was uploaded "
                               "without the aws-exec-read ACL (euca upload-bundle's default)") from None
        except S3Error as exc:
            raise ImageFailure(f"the manifest {image.location} is not accessible ({exc.code})") from None
        with body:
            xml = body.read(MANIFEST_LIMIT + 1)
        uploader = self.walrus.directory.by_account_id(info.owner)
        certificates = account_certificates(self.data_dir, uploader.account) if uploader is not None else []
        if not certificates:
            raise ImageFailure(f"the account that uploaded {image.location} has no certificate to check the "
                               "manifest's signature with")
        manifest = read_manifest(xml, self._key(), certificates)
        kind = kind_of(manifest.image_type, manifest.kernel_id, manifest.ramdisk_id)
        if kind != image.kind:
            raise ImageFailure(f"the manifest now says {kind}, not {image.kind} as when it was registered")
        if manifest.size > BUNDLE_SIZE_LIMIT:
            raise ImageFailure(f"the image is {manifest.size} bytes, more than {BUNDLE_SIZE_LIMIT}")
        prefix = key.rsplit("/", 1)[0] + "/" if "/" in key else ""

        def open_part(name: str) -> BinaryIO:
            if self._stop.is_set():
                raise _Stopped()
            try:
                return self.walrus.open_object(admin, bucket, prefix + name)[1]
            except S3Error as exc:
                raise OSError(f"the cloud cannot read {bucket}/{prefix}{name} ({exc.code})") from None

        work.mkdir(parents=True, exist_ok=True)
        unbundled = unbundle(manifest, open_part, work / "image")
        _, size, digest = self.put(image.image_id, unbundled)
        return size, digest

