"""Image bundles as euca2ools makes them (euca-bundle-image), and as the cloud reads them back.

A bundle is how an image reaches Walrus: the image file is put in a tar archive of one member,
the SHA1 of that tar stream recorded (``image/digest``), the stream gzipped, encrypted with
AES-128-CBC under a random key and IV (``openssl enc -aes-128-cbc``, PKCS#7 padding) and cut into
10 MiB parts ``<prefix>.part.NN``. The manifest ``<prefix>.manifest.xml`` (version 2007-10-10)
lists the parts with their SHA1s and carries the key and IV, as hex text, RSA-encrypted
(PKCS#1 v1.5) twice: under the cloud's certificate (``ec2_encrypted_*``), so the cloud can
unbundle it, and under the user's (``user_encrypted_*``), so the user can. The user signs
``<machine_configuration>...</machine_configuration><image>...</image>`` with RSA-SHA1, and the
cloud checks that signature against the uploading account's certificate before it trusts the rest.

Both directions stream: one pass over the data through fixed-size buffers, the hashing, deflate
and AES all in C (hashlib, zlib, OpenSSL through ``cryptography``), so a multi-GiB image never
sits in memory. Deflate is the slow stage by far, so bundling runs it on every core, as pigz does
(``_ParallelGzip``); the gzip stream is the same whatever the number of threads.

Unbundling checks each part's SHA1 as its last byte is read, before any byte of the next part is
used; the image is written under a temporary name and renamed into place only
once the whole tar stream's SHA1 matched, so a bad bundle leaves nothing at the output path.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import stat
import struct
import tarfile
import time
import xml.etree.ElementTree as ET
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, ParamSpec, Protocol, TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from euca import __version__

MANIFEST_VERSION = "2007-10-10"
PART_SIZE = 10 * 1024 * 1024  # euca2ools' IMAGE_SPLIT_CHUNK
BUNDLE_SIZE_LIMIT = 10 * 1024**3  # EC2_BUNDLE_SIZE_LIMIT
MANIFEST_LIMIT = 4 * 1024 * 1024  # a 10 GiB bundle's 1024 parts need a few hundred KiB
ARCHITECTURES = ("i386", "x86_64", "armhf")
IMAGE_TYPES = ("machine", "kernel", "ramdisk")
# What euca-bundle-image maps for a machine image unless told otherwise.
DEFAULT_MAPPINGS = {"ami": "sda1", "root": "/dev/sda1", "ephemeral0": "sda2", "swap": "sda3"}
ENCRYPTION = "AES-128-CBC"
DIGEST = "SHA1"

_BUFFER = 1024 * 1024
_BLOCK = 16  # AES
_TAR_BLOCK = 512
_TAR_RECORD = 20 * _TAR_BLOCK  # what tar and Python's tarfile pad an archive to
_GZIP = 31  # zlib window bits for a gzip wrapper
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03"  # deflate, no name, no mtime, unix
_GZIP_BLOCK = 1024 * 1024
_WINDOW = 32 * 1024  # deflate's window: what each block is primed with
_HEX40 = re.compile(r"^[0-9a-fA-F]{40}$")


class BundleError(Exception):
    """A bundle that cannot be made or read; the message says which file or field and why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidManifest(BundleError):
    """The manifest is not one the cloud accepts (malformed, a field missing or unusable)."""


class SignatureMismatch(BundleError):
    """The manifest's signature is not the uploading user's."""


class DigestMismatch(BundleError):
    """A part, or the image inside the parts, is not what the manifest says."""


class UnsafeImage(BundleError):
    """The tar stream holds something other than one plain file with a harmless name."""


class PartStream(Protocol):
    """What ``open_part`` returns: a file on disk, or a Walrus object's body."""

    def read(self, size: int = ..., /) -> bytes: ...

    def close(self) -> None: ...


OpenPart = Callable[[str], PartStream]


@dataclass(frozen=True)
class Part:
    index: int
    filename: str
    digest: str  # hex SHA1 of the part file


@dataclass(frozen=True)
class Manifest:
    """A manifest whose signature was verified, with the AES key and IV decrypted."""

    name: str
    user: str  # the account id of the bundler
    image_type: str
    architecture: str
    kernel_id: str
    ramdisk_id: str
    block_device_mapping: tuple[tuple[str, str], ...]  # (virtual, device)
    digest: str  # hex SHA1 of the tar stream
    size: int  # the image file's bytes
    bundled_size: int  # all parts' bytes
    key: bytes = field(repr=False)
    iv: bytes = field(repr=False)
    parts: tuple[Part, ...]


@dataclass(frozen=True)
class Bundle:
    """What bundle_image wrote."""

    manifest: Path
    parts: tuple[Path, ...]
    digest: str
    size: int
    bundled_size: int


_P = ParamSpec("_P")
_R = TypeVar("_R")


class Stages:
    """Seconds and bytes per pipeline stage, for the benchmark: where the time of a pass goes."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.bytes: dict[str, int] = {}

    def add(self, name: str, seconds: float, nbytes: int) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds
        self.bytes[name] = self.bytes.get(name, 0) + nbytes

    def timed(self, name: str, work: Callable[_P, _R]) -> Callable[_P, _R]:
        self.seconds.setdefault(name, 0.0)
        self.bytes.setdefault(name, 0)

        def run(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            start = time.perf_counter()
            result = work(*args, **kwargs)
            self.seconds[name] += time.perf_counter() - start
            if isinstance(result, int):
                self.bytes[name] += result
            elif args and isinstance(args[0], bytes | bytearray | memoryview):
                self.bytes[name] += len(args[0])
            elif isinstance(result, bytes):
                self.bytes[name] += len(result)
            return result

        return run


def _timed(stages: Stages | None, name: str, work: Callable[_P, _R]) -> Callable[_P, _R]:
    return work if stages is None else stages.timed(name, work)


# --- the manifest's XML ----------------------------------------------------------------------------

def _escape(text: str, attribute: bool = False) -> str:
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")
    if attribute:
        text = text.replace('"', "&quot;").replace("\n", "&#10;").replace("\t", "&#9;")
    return text.encode("ascii", "xmlcharrefreplace").decode("ascii")


def _compact(element: ET.Element) -> str:
    """An element as ``lxml.etree.tostring`` writes it, which is what euca2ools signs: no
    whitespace between elements, double-quoted attributes, non-ASCII as character references.
    A pretty-printed manifest serializes to the same text, so its signature still verifies."""
    attributes = "".join(f' {k}="{_escape(v, True)}"' for k, v in element.attrib.items())
    children = list(element)
    if not children and element.text is None:
        return f"<{element.tag}{attributes}/>"
    inner = "".join(_compact(c) for c in children) if children else _escape(element.text or "")
    return f"<{element.tag}{attributes}>{inner}</{element.tag}>"


def _add(parent: ET.Element, tag: str, text: str | None = None, **attributes: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attributes)
    element.text = text
    return element


def _to_sign(machine_configuration: ET.Element, image: ET.Element) -> bytes:
    return (_compact(machine_configuration) + _compact(image)).encode("ascii")


def _rsa_public(signer: x509.Certificate | rsa.RSAPublicKey) -> rsa.RSAPublicKey:
    public = signer.public_key() if isinstance(signer, x509.Certificate) else signer
    if not isinstance(public, rsa.RSAPublicKey):
        raise BundleError("the certificate does not hold an RSA key")
    return public


def _encrypt_hex(value: bytes, cert: x509.Certificate) -> str:
    # what euca2ools encrypts is the hex text of the key (openssl rsautl -encrypt of "6f3a...")
    return _rsa_public(cert).encrypt(value.hex().encode("ascii"), padding.PKCS1v15()).hex()


def _manifest_xml(*, name: str, user: str, image_type: str, arch: str, kernel_id: str | None,
                  ramdisk_id: str | None, mappings: Mapping[str, str], digest: str, size: int,
                  parts: list[tuple[str, str, int]], key: bytes, iv: bytes, user_cert: x509.Certificate,
                  user_key: rsa.RSAPrivateKey, cloud_cert: x509.Certificate) -> bytes:
    manifest = ET.Element("manifest")
    _add(manifest, "version", MANIFEST_VERSION)
    bundler = _add(manifest, "bundler")
    _add(bundler, "name", "euca")
    _add(bundler, "version", __version__)
    _add(bundler, "release", "0")
    config = _add(manifest, "machine_configuration")
    _add(config, "architecture", arch)
    if mappings:
        mapping_list = _add(config, "block_device_mapping")
        for virtual, device in sorted(mappings.items()):
            mapping = _add(mapping_list, "mapping")
            _add(mapping, "virtual", virtual)
            _add(mapping, "device", device)
    if kernel_id:
        _add(config, "kernel_id", kernel_id)
    if ramdisk_id:
        _add(config, "ramdisk_id", ramdisk_id)
    image = _add(manifest, "image")
    _add(image, "name", name)
    _add(image, "user", user)
    _add(image, "type", image_type)  # EC2 wants it straight after user
    _add(image, "digest", digest, algorithm=DIGEST)
    _add(image, "size", str(size))
    _add(image, "bundled_size", str(sum(p[2] for p in parts)))
    _add(image, "ec2_encrypted_key", _encrypt_hex(key, cloud_cert), algorithm=ENCRYPTION)
    _add(image, "user_encrypted_key", _encrypt_hex(key, user_cert), algorithm=ENCRYPTION)
    _add(image, "ec2_encrypted_iv", _encrypt_hex(iv, cloud_cert))
    _add(image, "user_encrypted_iv", _encrypt_hex(iv, user_cert))
    part_list = _add(image, "parts", count=str(len(parts)))
    for index, (filename, part_digest, _) in enumerate(parts):
        part = _add(part_list, "part", index=str(index))
        _add(part, "filename", filename)
        _add(part, "digest", part_digest, algorithm=DIGEST)
    signature = user_key.sign(_to_sign(config, image), padding.PKCS1v15(), hashes.SHA1())
    _add(manifest, "signature", signature.hex())
    return b"<?xml version='1.0' encoding='UTF-8' standalone='yes'?>\n" + _compact(manifest).encode("ascii")


# --- bundling --------------------------------------------------------------------------------------

class _PartWriter:
    """The encrypted stream cut into ``<prefix>.part.NN`` files of ``part_size`` bytes, each hashed."""

    def __init__(self, out_dir: Path, prefix: str, part_size: int, stages: Stages | None) -> None:
        self._out_dir, self._prefix, self._part_size = out_dir, prefix, part_size
        self.parts: list[tuple[str, str, int]] = []  # filename, hex SHA1, size
        self.paths: list[Path] = []
        self._file: IO[bytes] | None = None
        self._digest = hashlib.sha1()
        self._written = 0
        self._write = _timed(stages, "split", self._write_part)

    def write(self, data: bytes) -> None:
        if data:
            self._write(data)

    def _write_part(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self._file is None:
                path = self._out_dir / f"{self._prefix}.part.{len(self.parts):02d}"
                self.paths.append(path)
                self._file = path.open("wb")
                self._digest, self._written = hashlib.sha1(), 0
            piece = view[: self._part_size - self._written]
            self._file.write(piece)
            self._digest.update(piece)
            self._written += len(piece)
            view = view[len(piece):]
            if self._written == self._part_size:
                self._finish()

    def _finish(self) -> None:
        assert self._file is not None
        self._file.close()
        self._file = None
        self.parts.append((self.paths[-1].name, self._digest.hexdigest(), self._written))

    def close(self) -> None:
        if self._file is not None:
            self._finish()

    def abandon(self) -> None:
        if self._file is not None:
            self._file.close()
        for path in self.paths:
            path.unlink(missing_ok=True)


def _deflate(block: bytes, primer: bytes, level: int, last: bool) -> tuple[bytes, float, int]:
    start = time.perf_counter()
    deflate = zlib.compressobj(level, zlib.DEFLATED, -15, 8, zlib.Z_DEFAULT_STRATEGY, primer) if primer else \
        zlib.compressobj(level, zlib.DEFLATED, -15)
    out = deflate.compress(block) + deflate.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)
    return out, time.perf_counter() - start, len(block)


class _ParallelGzip:
    """gzip as pigz makes it (euca2ools runs ``pigz -c`` when it can): the stream cut into 1 MiB
    blocks deflated on their own threads, each primed with the 32 KiB before it and ended on a
    byte boundary, joined into one gzip member that any gunzip reads. zlib lets go of the GIL while
    it deflates, so the blocks really run side by side; at most ``threads + 1`` are in flight."""

    def __init__(self, level: int, threads: int, stages: Stages | None) -> None:
        self._level, self._stages = level, stages
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="bundle-gzip")
        self._in_flight: deque[Future[tuple[bytes, float, int]]] = deque()
        self._limit = threads + 1
        self._buffer = bytearray()
        self._primer = b""
        self._crc, self._size = 0, 0
        self._done: list[bytes] = [_GZIP_HEADER]

    def write(self, data: bytes | memoryview) -> list[bytes]:
        """Take more of the stream; returns the gzip bytes that are ready, in order."""
        self._crc = zlib.crc32(data, self._crc)
        self._size += len(data)
        self._buffer += data
        while len(self._buffer) >= _GZIP_BLOCK:
            block = bytes(self._buffer[:_GZIP_BLOCK])
            del self._buffer[:_GZIP_BLOCK]
            self._submit(block, last=False)
        return self._ready()

    def _ready(self) -> list[bytes]:
        done, self._done = self._done, []
        return done

    def _submit(self, block: bytes, last: bool) -> None:
        if len(self._in_flight) >= self._limit:
            self._collect()
        self._in_flight.append(self._pool.submit(_deflate, block, self._primer, self._level, last))
        self._primer = block[-_WINDOW:]

    def _collect(self) -> None:
        out, seconds, taken = self._in_flight.popleft().result()
        if self._stages is not None:
            self._stages.add("gzip deflate (each thread)", seconds, taken)
        self._done.append(out)

    def finish(self) -> list[bytes]:
        """The rest of the gzip stream, its trailer included."""
        self._submit(bytes(self._buffer), last=True)
        self._buffer.clear()
        while self._in_flight:
            self._collect()
        self._done.append(struct.pack("<II", self._crc & 0xFFFFFFFF, self._size & 0xFFFFFFFF))
        self._pool.shutdown()
        return self._ready()

    def abandon(self) -> None:
        self._pool.shutdown(cancel_futures=True)


def _tar_header(path: Path, size: int, mode: int, mtime: float) -> bytes:
    info = tarfile.TarInfo(path.name)
    info.size, info.mode, info.mtime = size, mode & 0o7777, int(mtime)
    info.uname = info.gname = "root"
    return info.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape")


def _check_prefix(prefix: str) -> None:
    if not prefix or prefix.startswith(".") or "/" in prefix or "\\" in prefix or "\0" in prefix:
        raise BundleError(f"prefix {prefix!r}: give a plain file name (no '/', not starting with '.')")


def bundle_image(path: Path, out_dir: Path, prefix: str, user_cert: x509.Certificate, user_key: rsa.RSAPrivateKey,
                 cloud_cert: x509.Certificate, arch: str, kernel_id: str | None = None,
                 ramdisk_id: str | None = None, image_type: str = "machine", *, user: str | None = None,
                 block_device_mapping: Mapping[str, str] | None = None, part_size: int = PART_SIZE,
                 size_limit: int = BUNDLE_SIZE_LIMIT, compresslevel: int = 6, threads: int | None = None,
                 stages: Stages | None = None) -> Bundle:
    """Bundle the image file at ``path`` into ``out_dir`` as euca-bundle-image does.

    ``user`` is the bundler's account id (the ``UID`` the cloud wrote into ``user_cert`` unless
    given). Kernel and ramdisk bundles carry ``kernel_id`` / ``ramdisk_id`` ``true``; a machine
    image gets euca2ools' default block device mapping unless one is given. ``gzip -c`` compresses
    at level 6, and so does this unless told otherwise, on ``threads`` threads (one per core).
    """
    from euca.auth.certs import account_id_of

    if arch not in ARCHITECTURES:
        raise BundleError(f"architecture {arch!r}: one of {', '.join(ARCHITECTURES)}")
    if image_type not in IMAGE_TYPES:
        raise BundleError(f"image type {image_type!r}: one of {', '.join(IMAGE_TYPES)}")
    for kind, given in (("kernel", kernel_id), ("ramdisk", ramdisk_id)):
        if image_type == kind and given not in (None, "true"):
            raise BundleError(f"a {kind} image is not launched with a {kind}: drop --{kind}")
    if image_type == "kernel":
        kernel_id = "true"
    if image_type == "ramdisk":
        ramdisk_id = "true"
    if part_size < _BLOCK:
        raise BundleError(f"part size {part_size}: at least {_BLOCK} bytes")
    _check_prefix(prefix)
    if user_key.public_key().public_numbers() != _rsa_public(user_cert).public_numbers():
        raise BundleError("the private key does not belong to the user certificate")
    mappings = dict(DEFAULT_MAPPINGS if image_type == "machine" else {}) if block_device_mapping is None \
        else dict(block_device_mapping)
    user = account_id_of(user_cert) if user is None else user
    if not user:
        raise BundleError("the user certificate names no account id: give the account id")

    with path.open("rb", buffering=0) as image:
        st = os.fstat(image.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise BundleError(f"{path}: not a regular file")
        if st.st_size > size_limit:
            raise BundleError(f"{path}: {st.st_size} bytes, more than the bundle limit of {size_limit}")
        out_dir.mkdir(parents=True, exist_ok=True)
        key, iv = secrets.token_bytes(16), secrets.token_bytes(16)
        tar_digest = hashlib.sha1()
        encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
        writer = _PartWriter(out_dir, prefix, part_size, stages)
        read = _timed(stages, "read", image.readinto)
        digest = _timed(stages, "tar+sha1", tar_digest.update)
        encrypt = _timed(stages, "aes", encryptor.update)
        encrypted_in = 0

        def encrypted(deflated: list[bytes]) -> None:
            nonlocal encrypted_in
            for chunk in deflated:
                encrypted_in += len(chunk)
                writer.write(encrypt(chunk))

        gzip = _ParallelGzip(compresslevel, threads or min(os.cpu_count() or 1, 8), stages)
        compress = _timed(stages, "gzip (main thread: crc32, waiting)", gzip.write)

        def tar_bytes(data: bytes | memoryview) -> None:
            digest(data)
            encrypted(compress(data))

        try:
            header = _tar_header(path, st.st_size, st.st_mode, st.st_mtime)
            tar_bytes(header)
            buffer = bytearray(_BUFFER)
            view = memoryview(buffer)
            done = 0
            while done < st.st_size and (n := read(buffer)):
                tar_bytes(view[:n])
                done += n
            if done != st.st_size or image.read(1):
                raise BundleError(f"{path}: changed size while being bundled")
            tar_size = len(header) + done
            tail = -tar_size % _TAR_BLOCK + 2 * _TAR_BLOCK  # the member's padding, then end-of-archive
            tail += -(tar_size + tail) % _TAR_RECORD
            tar_bytes(bytes(tail))
            encrypted(_timed(stages, "gzip (main thread: crc32, waiting)", gzip.finish)())
            pad = _BLOCK - encrypted_in % _BLOCK  # PKCS#7, as openssl enc: a whole block when aligned
            writer.write(encrypt(bytes([pad]) * pad) + encryptor.finalize())
            writer.close()
            xml = _manifest_xml(name=prefix, user=user, image_type=image_type, arch=arch, kernel_id=kernel_id,
                                ramdisk_id=ramdisk_id, mappings=mappings, digest=tar_digest.hexdigest(),
                                size=st.st_size, parts=writer.parts, key=key, iv=iv, user_cert=user_cert,
                                user_key=user_key, cloud_cert=cloud_cert)
            manifest = out_dir / f"{prefix}.manifest.xml"
            partial = out_dir / f".{prefix}.manifest.xml.partial"
            partial.write_bytes(xml)
            partial.replace(manifest)
        except BaseException:
            gzip.abandon()
            writer.abandon()
            raise
    return Bundle(manifest, tuple(writer.paths), tar_digest.hexdigest(), st.st_size, sum(p[2] for p in writer.parts))


# --- reading a manifest ----------------------------------------------------------------------------

def _one(parent: ET.Element, path: str, where: str) -> ET.Element:
    found = parent.findall(path)
    if len(found) != 1:
        raise InvalidManifest(f"manifest: {where}/{path} {'missing' if not found else 'given more than once'}")
    return found[0]


def _text(parent: ET.Element, path: str, where: str, *, optional: bool = False) -> str:
    if optional and parent.find(path) is None:
        return ""
    return (_one(parent, path, where).text or "").strip()


def _number(parent: ET.Element, path: str, where: str) -> int:
    text = _text(parent, path, where)
    if not text.isdigit() or not text.isascii():
        raise InvalidManifest(f"manifest: {where}/{path} {text!r} is not a byte count")
    return int(text)


def _verify(xml_config: ET.Element, xml_image: ET.Element, signature: str,
            signers: Iterable[x509.Certificate | rsa.RSAPublicKey]) -> None:
    if signature == "UNSIGNED":
        raise SignatureMismatch("manifest is unsigned")
    try:
        raw = bytes.fromhex(signature)
    except ValueError:
        raise InvalidManifest("manifest: signature is not hex") from None
    signed = _to_sign(xml_config, xml_image)
    keys = [_rsa_public(s) for s in signers]
    if not keys:
        raise SignatureMismatch("no certificate to check the manifest's signature against")
    for public in keys:
        try:
            public.verify(raw, signed, padding.PKCS1v15(), hashes.SHA1())
            return
        except InvalidSignature:
            continue
    raise SignatureMismatch("manifest signature does not match the uploading user's certificate")


def _decrypt_hex(key: rsa.RSAPrivateKey, image: ET.Element, field_name: str, whose: str) -> bytes:
    text = _text(image, field_name, "image")
    try:
        plain = key.decrypt(bytes.fromhex(text), padding.PKCS1v15()).decode("ascii")
        value = bytes.fromhex(plain)
    except ValueError:  # not hex, or not decryptable (OpenSSL's implicit rejection gives random bytes)
        value = b""
    if len(value) != 16:
        raise InvalidManifest(f"manifest: image/{field_name} does not decrypt with the {whose} key to a 128-bit value")
    return value


def _filename(text: str, index: int) -> str:
    if not text or text in (".", "..") or any(c in text for c in "/\\\0"):
        raise InvalidManifest(f"manifest: part {index} filename {text!r} is not a plain file name")
    return text


def _parts(image: ET.Element) -> tuple[Part, ...]:
    part_list = _one(image, "parts", "image")
    parts = []
    for element in part_list.findall("part"):
        index_text = element.get("index", "")
        if not index_text.isdigit() or not index_text.isascii():
            raise InvalidManifest(f"manifest: part index {index_text!r} is not a number")
        index = int(index_text)
        part_digest = _text(element, "digest", f"part {index}")
        if not _HEX40.match(part_digest):
            raise InvalidManifest(f"manifest: part {index} digest {part_digest!r} is not a hex SHA1")
        parts.append(Part(index, _filename(_text(element, "filename", f"part {index}"), index), part_digest.lower()))
    parts.sort(key=lambda p: p.index)
    if [p.index for p in parts] != list(range(len(parts))) or not parts:
        raise InvalidManifest("manifest: the parts are not numbered 0, 1, 2, ...")
    count = part_list.get("count")
    if count is not None and count != str(len(parts)):
        raise InvalidManifest(f"manifest: parts count {count!r} but {len(parts)} parts listed")
    return tuple(parts)


def part_filenames(xml_bytes: bytes) -> tuple[str, ...]:
    """The manifest's part files in order, for copying a bundle around; nothing is verified but
    the manifest's form."""
    return tuple(p.filename for p in _parts(_one(_parse(xml_bytes), "image", "manifest")))


def _parse(xml_bytes: bytes) -> ET.Element:
    if len(xml_bytes) > MANIFEST_LIMIT:
        raise InvalidManifest(f"manifest: {len(xml_bytes)} bytes, more than {MANIFEST_LIMIT}")
    if b"<!DOCTYPE" in xml_bytes or b"<!ENTITY" in xml_bytes:
        raise InvalidManifest("manifest: document type declarations are not allowed")
    try:
        root = ET.fromstring(xml_bytes)
    except ET.ParseError as exc:
        raise InvalidManifest(f"manifest is not well-formed XML: {exc}") from None
    if root.tag != "manifest":
        raise InvalidManifest(f"manifest: the document is <{root.tag}>, not <manifest>")
    return root


def read_manifest(xml_bytes: bytes, cloud_key: rsa.RSAPrivateKey | None,
                  user_certs: Iterable[x509.Certificate | rsa.RSAPublicKey], *,
                  user_key: rsa.RSAPrivateKey | None = None) -> Manifest:
    """Parse a bundle manifest, verify its signature against one of ``user_certs`` (the uploading
    account's certificates, or public keys), and decrypt the AES key and IV with the cloud's key
    (``ec2_encrypted_*``) or, given ``user_key``, with the user's (``user_encrypted_*``)."""
    root = _parse(xml_bytes)
    config = _one(root, "machine_configuration", "manifest")
    image = _one(root, "image", "manifest")
    _verify(config, image, _text(root, "signature", "manifest"), user_certs)

    for element in [*image.findall("digest"), *image.findall("parts/part/digest")]:
        if element.get("algorithm", DIGEST).upper() != DIGEST:
            raise InvalidManifest(f"manifest: a digest algorithm {element.get('algorithm')!r}, not {DIGEST}")
    encryption = image.find("ec2_encrypted_key")
    if encryption is not None and encryption.get("algorithm", ENCRYPTION).upper() != ENCRYPTION:
        raise InvalidManifest(f"manifest: image/ec2_encrypted_key algorithm {encryption.get('algorithm')!r}, "
                              f"not {ENCRYPTION}")
    digest = _text(image, "digest", "image")
    if not _HEX40.match(digest):
        raise InvalidManifest(f"manifest: image/digest {digest!r} is not a hex SHA1")
    parts = _parts(image)

    decrypt_with, prefix, whose = ((user_key, "user", "user's") if user_key is not None
                                   else (cloud_key, "ec2", "cloud's"))
    if decrypt_with is None:
        raise BundleError("no private key to decrypt the bundle's key with")
    key = _decrypt_hex(decrypt_with, image, f"{prefix}_encrypted_key", whose)
    iv = _decrypt_hex(decrypt_with, image, f"{prefix}_encrypted_iv", whose)
    _text(image, "user_encrypted_key", "image")  # EC2 refuses a manifest without it, whoever decrypts
    mappings = tuple((_text(m, "virtual", "block_device_mapping/mapping"), _text(m, "device", "mapping"))
                     for m in config.findall("block_device_mapping/mapping"))
    bundled = _text(image, "bundled_size", "image", optional=True)
    return Manifest(
        name=_text(image, "name", "image", optional=True), user=_text(image, "user", "image"),
        image_type=_text(image, "type", "image", optional=True) or "machine",
        architecture=_text(config, "architecture", "machine_configuration", optional=True) or "i386",
        kernel_id=_text(config, "kernel_id", "machine_configuration", optional=True),
        ramdisk_id=_text(config, "ramdisk_id", "machine_configuration", optional=True),
        block_device_mapping=mappings, digest=digest.lower(), size=_number(image, "size", "image"),
        bundled_size=_number(image, "bundled_size", "image") if bundled else -1,
        key=key, iv=iv, parts=parts)


# --- unbundling ------------------------------------------------------------------------------------

class _Parts:
    """The parts' bytes in order; a part's SHA1 is checked when its end is read, before the next
    part's first byte is handed on."""

    def __init__(self, parts: tuple[Part, ...], open_part: OpenPart, stages: Stages | None) -> None:
        self._parts, self._open = parts, open_part
        self._index = 0
        self._stream: PartStream | None = None
        self._digest = hashlib.sha1()
        self.size = 0
        self._read = _timed(stages, "read+sha1", self._read_some)

    def read(self) -> bytes:
        """The next chunk of ciphertext; b"" after the last part."""
        while self._index < len(self._parts):
            data = self._read()
            if data:
                return data
            self._end_of_part()
        return b""

    def _read_some(self) -> bytes:
        if self._stream is None:
            part = self._parts[self._index]
            try:
                self._stream = self._open(part.filename)
            except OSError as exc:
                raise BundleError(f"part {part.index} ({part.filename}): cannot open: {exc.strerror or exc}") from None
            self._digest = hashlib.sha1()
        data = self._stream.read(_BUFFER)
        self._digest.update(data)
        self.size += len(data)
        return data

    def _end_of_part(self) -> None:
        part = self._parts[self._index]
        assert self._stream is not None
        self._stream.close()
        self._stream = None
        self._index += 1
        if self._digest.hexdigest() != part.digest:
            raise DigestMismatch(f"part {part.index} ({part.filename}) digest mismatch: the manifest says "
                                 f"{part.digest}, the part's is {self._digest.hexdigest()}")

    def blame(self) -> None:
        """After a failure downstream: read the rest of the current part and raise its digest
        mismatch if it has one (a damaged part, not a bad bundle)."""
        if self._stream is not None:
            while self._read():
                pass
            self._end_of_part()

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None


class _Decrypted:
    """AES-128-CBC decryption of the parts, PKCS#7 padding removed at the end."""

    def __init__(self, parts: _Parts, key: bytes, iv: bytes, stages: Stages | None) -> None:
        self._parts = parts
        decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
        self._decrypt, self._finalize = _timed(stages, "aes", decryptor.update), decryptor.finalize
        self._held = b""  # the last block seen: it may be all padding
        self._done = False

    def read(self) -> bytes:
        while not self._done:
            data = self._parts.read()
            if not data:
                self._done = True
                try:
                    last = self._held + self._finalize()
                except ValueError:
                    raise BundleError("the bundle is not a whole number of AES blocks") from None
                pad = last[-1] if last else 0
                if not 1 <= pad <= _BLOCK or last[-pad:] != bytes([pad]) * pad:
                    raise BundleError("the bundle does not decrypt with the manifest's key (bad padding)")
                return last[:-pad]
            plain = self._held + self._decrypt(data)
            keep = len(plain) - (len(plain) % _BLOCK or _BLOCK)
            self._held = plain[keep:]
            if keep:
                return plain[:keep]
        return b""


class _TarStream:
    """The gunzipped tar stream as a file for ``tarfile``, hashed as it is read. Output is bounded
    by the read size, so a small part that inflates to gigabytes is never held at once."""

    def __init__(self, source: _Decrypted, stages: Stages | None) -> None:
        self._source = source
        self._inflater = zlib.decompressobj(_GZIP)
        self._inflate = _timed(stages, "gunzip", self._inflate_some)
        self._pending = b""
        self._fed = 0  # bytes given to the current gzip member
        self.digest = hashlib.sha1()
        self._update = _timed(stages, "tar+sha1", self.digest.update)
        self.size = 0

    def _inflate_some(self, size: int) -> bytes:
        out = self._inflater.decompress(self._pending, size)
        self._pending = self._inflater.unconsumed_tail
        return out

    def read(self, size: int = -1) -> bytes:
        size = size if size > 0 else _BUFFER
        while True:
            if self._pending:
                self._fed += 1
                out = self._inflate(size)
                if self._inflater.eof:  # gzip allows members one after another
                    self._pending = self._inflater.unused_data + self._pending
                    self._inflater, self._fed = zlib.decompressobj(_GZIP), 0
                if out:
                    self._update(out)
                    self.size += len(out)
                    return out
                continue
            self._pending = self._source.read()
            if not self._pending:
                if self._fed:
                    raise BundleError("the bundle ends in the middle of its gzip stream")
                return b""

    def drain(self) -> None:
        while self.read(_BUFFER):
            pass


def _check_member(member: tarfile.TarInfo) -> None:
    name = member.name
    kind = ("a symbolic link" if member.issym() else "a hard link" if member.islnk() else
            "a FIFO" if member.isfifo() else "a device" if member.isdev() else "a directory" if member.isdir() else
            None if member.isreg() else "not a regular file")
    if kind is not None:
        raise UnsafeImage(f"tar member {name!r} is {kind}: an image bundle holds one plain file")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise UnsafeImage(f"tar member {name!r} has an absolute path")
    if ".." in name.replace("\\", "/").split("/") or not Path(name).name or "\0" in name:
        raise UnsafeImage(f"tar member {name!r} would land outside the target directory")


def unbundle(manifest: Manifest, open_part: OpenPart, out_path: Path, *, stages: Stages | None = None) -> Path:
    """Check, decrypt, gunzip and untar a bundle's parts; the image goes to ``out_path`` (or into
    it, under the member's name, if it is a directory). Returns the image's path. Nothing is left
    at that path unless every part's digest and the tar stream's digest matched."""
    target_dir, target = (out_path, None) if out_path.is_dir() else (out_path.parent, out_path)
    parts = _Parts(manifest.parts, open_part, stages)
    stream = _TarStream(_Decrypted(parts, manifest.key, manifest.iv, stages), stages)
    partial: Path | None = None
    try:
        try:
            with tarfile.open(fileobj=stream, mode="r|", bufsize=_BUFFER) as tar:  # type: ignore[call-overload]
                member = tar.next()
                if member is None:
                    raise UnsafeImage("the bundle's tar stream holds no file")
                _check_member(member)
                if member.size != manifest.size:
                    # the member's own size bounds what is written: a bundle cannot unpack into more
                    # disk than its manifest declared (and the cloud's size limit checked)
                    raise DigestMismatch(f"the image in the bundle is {member.size} bytes, "
                                         f"its manifest says {manifest.size}")
                target = target or target_dir / Path(member.name).name
                partial = target_dir / f".{target.name}.{secrets.token_hex(4)}.partial"
                source = tar.extractfile(member)
                assert source is not None
                write = _timed(stages, "write", _write_to)
                with partial.open("wb") as out:
                    while chunk := source.read(_BUFFER):
                        write(chunk, out)
                extra = tar.next()
                if extra is not None:
                    raise UnsafeImage(f"the bundle holds a second file, {extra.name!r}: an image bundle holds one")
            stream.drain()
        except (tarfile.TarError, zlib.error, EOFError, BundleError) as exc:
            if isinstance(exc, DigestMismatch):
                raise
            parts.blame()
            if isinstance(exc, BundleError):
                raise
            raise BundleError(f"the bundle's contents are damaged: {exc}") from None
        if manifest.bundled_size >= 0 and parts.size != manifest.bundled_size:
            raise DigestMismatch(f"the parts hold {parts.size} bytes, the manifest says {manifest.bundled_size}")
        if stream.digest.hexdigest() != manifest.digest:
            raise DigestMismatch(f"image digest mismatch: the manifest says {manifest.digest}, the tar stream's is "
                                 f"{stream.digest.hexdigest()}")
        assert partial is not None and target is not None
        if partial.stat().st_size != manifest.size:
            raise DigestMismatch(f"the image is {partial.stat().st_size} bytes, the manifest says {manifest.size}")
        partial.replace(target)
        return target
    except BaseException:
        if partial is not None:
            partial.unlink(missing_ok=True)
        raise
    finally:
        parts.close()


def _write_to(chunk: bytes, out: IO[bytes]) -> int:
    return out.write(chunk)


def parts_in(directory: Path) -> OpenPart:
    """``open_part`` for a bundle whose parts are files in ``directory``."""

    def open_part(filename: str) -> PartStream:
        return (directory / _filename(filename, -1)).open("rb")

    return open_part

