"""Image bundles (euca.walrus.bundle) and the certificates they need (euca.auth.certs)."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import random
import shutil
import stat
import subprocess
import tarfile
import tracemalloc
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from euca.auth.certs import (
    account_certificates,
    account_id_of,
    cloud_credentials,
    eucarc_lines,
    issued_by,
    load_certificate,
    load_private_key,
    user_credentials,
)
from euca.cli import main
from euca.walrus import bundle as bundle_module
from euca.walrus.bundle import (
    BundleError,
    DigestMismatch,
    InvalidManifest,
    Manifest,
    SignatureMismatch,
    UnsafeImage,
    bundle_image,
    part_filenames,
    parts_in,
    read_manifest,
    unbundle,
)

ALICE_ID, BOB_ID = "111122223333", "444455556666"
PART = 256 * 1024


@dataclass(frozen=True)
class Keys:
    data_dir: Path
    cloud_cert: x509.Certificate
    cloud_key: rsa.RSAPrivateKey
    alice_cert: x509.Certificate
    alice_key: rsa.RSAPrivateKey
    bob_cert: x509.Certificate
    bob_key: rsa.RSAPrivateKey


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    data_dir = tmp_path_factory.mktemp("data")
    cloud = cloud_credentials(data_dir)
    alice = user_credentials(data_dir, "alice", ALICE_ID)
    bob = user_credentials(data_dir, "bob", BOB_ID)
    return Keys(data_dir, load_certificate(cloud.cert), load_private_key(cloud.key), load_certificate(alice.cert),
                load_private_key(alice.key), load_certificate(bob.cert), load_private_key(bob.key))


def _image(path: Path, size: int = 3 * 1024 * 1024 + 12345) -> Path:
    # random bytes, then a run of zeros, as a root file system has
    data = random.Random(7).randbytes(size // 2) + bytes(size - size // 2)
    path.write_bytes(data)
    return path


def _bundle(keys: Keys, image: Path, out: Path, *, part_size: int = PART, **kw: Any) -> bundle_module.Bundle:
    return bundle_image(image, out, image.name, keys.alice_cert, keys.alice_key, keys.cloud_cert, "x86_64",
                        part_size=part_size, **kw)


def _cloud_reads(keys: Keys, manifest: Path) -> Manifest:
    return read_manifest(manifest.read_bytes(), keys.cloud_key, [keys.alice_cert])


# --- certificates ----------------------------------------------------------------------------------

def test_cloud_and_user_certificates(keys: Keys) -> None:
    d = keys.data_dir
    assert stat.S_IMODE((d / "cloud-pk.pem").stat().st_mode) == 0o600
    assert stat.S_IMODE((d / "euca-alice-pk.pem").stat().st_mode) == 0o600
    assert keys.cloud_cert.subject == keys.cloud_cert.issuer
    assert issued_by(keys.alice_cert, keys.cloud_cert) and issued_by(keys.cloud_cert, keys.cloud_cert)
    assert not issued_by(keys.alice_cert, keys.bob_cert)
    assert account_id_of(keys.alice_cert) == ALICE_ID
    assert account_certificates(d, "alice") == [keys.alice_cert] and account_certificates(d, "carol") == []
    # asked again: the same files, not new ones
    before = (d / "euca-alice-cert.pem").read_bytes(), (d / "cloud-cert.pem").read_bytes()
    user_credentials(d, "alice", ALICE_ID)
    assert ((d / "euca-alice-cert.pem").read_bytes(), (d / "cloud-cert.pem").read_bytes()) == before


def test_eucarc_lines_name_the_certificates(tmp_path: Path) -> None:
    lines = eucarc_lines(tmp_path, "admin", "000011112222")
    exported = dict(line.removeprefix("export ").split("=", 1) for line in lines.splitlines())
    assert set(exported) == {"EUCALYPTUS_CERT", "EC2_CERT", "EC2_PRIVATE_KEY"}
    assert exported["EUCALYPTUS_CERT"] == str((tmp_path / "cloud-cert.pem").resolve())
    assert account_id_of(load_certificate(Path(exported["EC2_CERT"]))) == "000011112222"
    load_private_key(Path(exported["EC2_PRIVATE_KEY"]))


def test_euca_account_cert_writes_the_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = str(tmp_path)
    assert main(["account", "add", "carol", "--data-dir", d]) == 0
    account_id = capsys.readouterr().out.split("\t")[1]
    assert main(["account", "cert", "carol", "--data-dir", d]) == 0
    written = [str(tmp_path / "euca-carol-cert.pem"), str(tmp_path / "euca-carol-pk.pem")]
    assert capsys.readouterr().out.split() == written
    cert = load_certificate(tmp_path / "euca-carol-cert.pem")
    assert account_id_of(cert) == account_id and issued_by(cert, load_certificate(tmp_path / "cloud-cert.pem"))
    assert main(["account", "cert", "dave", "--data-dir", d]) == 1
    assert "no account named 'dave'" in capsys.readouterr().err


# --- bundling and unbundling -----------------------------------------------------------------------

def test_round_trip_in_several_parts_is_byte_identical(keys: Keys, tmp_path: Path) -> None:
    image = _image(tmp_path / "disk.img")
    made = _bundle(keys, image, tmp_path / "bundle")
    assert [p.name for p in made.parts] == [f"disk.img.part.{i:02d}" for i in range(len(made.parts))]
    assert len(made.parts) >= 5
    assert all(p.stat().st_size == PART for p in made.parts[:-1]) and 0 < made.parts[-1].stat().st_size <= PART
    assert made.bundled_size == sum(p.stat().st_size for p in made.parts) and made.bundled_size % 16 == 0
    manifest = _cloud_reads(keys, made.manifest)
    out = unbundle(manifest, parts_in(tmp_path / "bundle"), tmp_path / "restored.img")
    assert out == tmp_path / "restored.img" and out.read_bytes() == image.read_bytes()
    # into a directory: under the tar member's name
    (tmp_path / "into").mkdir()
    assert unbundle(manifest, parts_in(tmp_path / "bundle"), tmp_path / "into").name == "disk.img"
    # the user can unbundle it too, with the user's own key
    mine = read_manifest(made.manifest.read_bytes(), None, [keys.alice_key.public_key()], user_key=keys.alice_key)
    assert (mine.key, mine.iv) == (manifest.key, manifest.iv)


def test_default_part_size_is_ten_mib(keys: Keys, tmp_path: Path) -> None:
    image = tmp_path / "big.img"
    with image.open("wb") as f:  # sparse: 24 MiB of zeros would gzip into one part, so random
        f.write(random.Random(1).randbytes(21 * 1024 * 1024))
    made = bundle_image(image, tmp_path / "b", "big", keys.alice_cert, keys.alice_key, keys.cloud_cert, "x86_64")
    assert [p.stat().st_size for p in made.parts][:2] == [10 * 1024 * 1024] * 2 and len(made.parts) == 3


def test_manifest_has_euca2ools_fields_and_the_signature_verifies(keys: Keys, tmp_path: Path) -> None:
    image = _image(tmp_path / "disk.img")
    made = _bundle(keys, image, tmp_path / "b", kernel_id="eki-12345678", ramdisk_id="eri-87654321")
    text = made.manifest.read_bytes()
    root = ET.fromstring(text)
    assert [c.tag for c in root] == ["version", "bundler", "machine_configuration", "image", "signature"]
    assert root.findtext("version") == "2007-10-10"
    assert [c.tag for c in root.find("bundler")] == ["name", "version", "release"]  # type: ignore[union-attr]
    config = root.find("machine_configuration")
    assert config is not None
    assert [c.tag for c in config] == ["architecture", "block_device_mapping", "kernel_id", "ramdisk_id"]
    assert config.findtext("architecture") == "x86_64" and config.findtext("kernel_id") == "eki-12345678"
    assert {m.findtext("virtual"): m.findtext("device") for m in config.findall("block_device_mapping/mapping")} == {
        "ami": "sda1", "root": "/dev/sda1", "ephemeral0": "sda2", "swap": "sda3"}
    image_xml = root.find("image")
    assert image_xml is not None
    assert [c.tag for c in image_xml] == ["name", "user", "type", "digest", "size", "bundled_size",
                                          "ec2_encrypted_key", "user_encrypted_key", "ec2_encrypted_iv",
                                          "user_encrypted_iv", "parts"]
    assert image_xml.findtext("user") == ALICE_ID and image_xml.findtext("type") == "machine"
    assert image_xml.findtext("size") == str(image.stat().st_size)
    assert image_xml.findtext("bundled_size") == str(made.bundled_size)
    assert image_xml.find("digest").get("algorithm") == "SHA1"  # type: ignore[union-attr]
    assert image_xml.find("ec2_encrypted_key").get("algorithm") == "AES-128-CBC"  # type: ignore[union-attr]
    parts = image_xml.find("parts")
    assert parts is not None and parts.get("count") == str(len(made.parts))
    for index, (part, path) in enumerate(zip(parts, made.parts, strict=True)):
        assert part.get("index") == str(index) and part.findtext("filename") == path.name
        assert part.findtext("digest") == hashlib.sha1(path.read_bytes()).hexdigest()
    # key and IV: the hex text, under the cloud's certificate and under the user's
    key_hex = keys.cloud_key.decrypt(bytes.fromhex(image_xml.findtext("ec2_encrypted_key", "")), padding.PKCS1v15())
    assert key_hex == keys.alice_key.decrypt(bytes.fromhex(image_xml.findtext("user_encrypted_key", "")),
                                             padding.PKCS1v15())
    assert len(bytes.fromhex(key_hex.decode())) == 16
    # the signature is RSA-SHA1 over the literal text of the two elements, as euca2ools signs it
    raw = text.decode()
    signed = raw[raw.index("<machine_configuration>"): raw.index("</image>") + len("</image>")]
    keys.alice_key.public_key().verify(bytes.fromhex(root.findtext("signature", "")), signed.encode(),
                                       padding.PKCS1v15(), hashes.SHA1())
    # the digest is the tar stream's, and the tar holds the one image file
    iv_hex = keys.cloud_key.decrypt(bytes.fromhex(image_xml.findtext("ec2_encrypted_iv", "")), padding.PKCS1v15())
    decryptor = Cipher(algorithms.AES(bytes.fromhex(key_hex.decode())),
                       modes.CBC(bytes.fromhex(iv_hex.decode()))).decryptor()
    plain = decryptor.update(b"".join(p.read_bytes() for p in made.parts)) + decryptor.finalize()
    tar_bytes = gzip.decompress(plain[: -plain[-1]])
    assert hashlib.sha1(tar_bytes).hexdigest() == image_xml.findtext("digest") == made.digest
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        assert tar.getnames() == ["disk.img"]


def test_kernel_bundles_say_so(keys: Keys, tmp_path: Path) -> None:
    made = _bundle(keys, _image(tmp_path / "vmlinuz", 5000), tmp_path / "b", image_type="kernel")
    manifest = _cloud_reads(keys, made.manifest)
    assert (manifest.image_type, manifest.kernel_id, manifest.ramdisk_id) == ("kernel", "true", "")
    assert manifest.block_device_mapping == ()
    with pytest.raises(BundleError, match="a kernel image is not launched with a kernel"):
        _bundle(keys, tmp_path / "vmlinuz", tmp_path / "c", image_type="kernel", kernel_id="eki-1")


def test_pretty_printed_manifest_still_verifies(keys: Keys, tmp_path: Path) -> None:
    made = _bundle(keys, _image(tmp_path / "disk.img", 4000), tmp_path / "b")
    root = ET.fromstring(made.manifest.read_bytes())
    ET.indent(root)
    assert _cloud_reads(keys, made.manifest).digest == read_manifest(
        ET.tostring(root), keys.cloud_key, [keys.alice_cert]).digest


def test_a_damaged_part_is_named_and_nothing_is_left(keys: Keys, tmp_path: Path) -> None:
    image = _image(tmp_path / "disk.img")
    made = _bundle(keys, image, tmp_path / "b")
    manifest = _cloud_reads(keys, made.manifest)
    for index, offset in ((1, 1000), (3, PART - 1), (0, 0)):
        pristine = made.parts[index].read_bytes()
        damaged = bytearray(pristine)
        damaged[offset] ^= 0x40
        made.parts[index].write_bytes(bytes(damaged))
        target = tmp_path / "out"
        target.mkdir(exist_ok=True)
        with pytest.raises(DigestMismatch, match=f"part {index} \\(disk.img.part.{index:02d}\\) digest mismatch"):
            unbundle(manifest, parts_in(tmp_path / "b"), target / "disk.img")
        assert list(target.iterdir()) == []
        made.parts[index].write_bytes(pristine)
    made.parts[2].unlink()
    with pytest.raises(BundleError, match=r"part 2 \(disk.img.part.02\): cannot open"):
        unbundle(manifest, parts_in(tmp_path / "b"), tmp_path / "out" / "disk.img")
    assert list((tmp_path / "out").iterdir()) == []


def test_a_signature_that_is_not_the_users_is_refused(keys: Keys, tmp_path: Path) -> None:
    made = _bundle(keys, _image(tmp_path / "disk.img", 4000), tmp_path / "b")
    text = made.manifest.read_bytes()
    with pytest.raises(SignatureMismatch, match="signature does not match"):
        read_manifest(text.replace(b"<architecture>x86_64<", b"<architecture>i386<"), keys.cloud_key,
                      [keys.alice_cert])
    with pytest.raises(SignatureMismatch, match="signature does not match"):
        read_manifest(text.replace(b"<size>4000<", b"<size>4001<"), keys.cloud_key, [keys.alice_cert])
    with pytest.raises(SignatureMismatch, match="signature does not match"):  # bob did not sign it
        read_manifest(text, keys.cloud_key, [keys.bob_cert])
    assert read_manifest(text, keys.cloud_key, [keys.bob_cert, keys.alice_cert]).user == ALICE_ID
    signature = ET.fromstring(text).findtext("signature", "")
    with pytest.raises(SignatureMismatch, match="unsigned"):
        read_manifest(text.replace(signature.encode(), b"UNSIGNED"), keys.cloud_key, [keys.alice_cert])
    # bob's bundle, signed by bob, presented as alice's
    bobs = bundle_image(tmp_path / "disk.img", tmp_path / "bob", "bob", keys.bob_cert, keys.bob_key,
                        keys.cloud_cert, "x86_64")
    with pytest.raises(SignatureMismatch):
        read_manifest(bobs.manifest.read_bytes(), keys.cloud_key, [keys.alice_cert])


def test_bad_manifests_are_refused_with_the_field_named(keys: Keys, tmp_path: Path) -> None:
    made = _bundle(keys, _image(tmp_path / "disk.img", 4000), tmp_path / "b")
    text = made.manifest.read_bytes()
    with pytest.raises(InvalidManifest, match="does not decrypt with the cloud's key"):
        read_manifest(text, keys.bob_key, [keys.alice_cert])
    with pytest.raises(InvalidManifest, match="not well-formed"):
        read_manifest(text[:-20], keys.cloud_key, [keys.alice_cert])
    with pytest.raises(InvalidManifest, match="document type"):
        read_manifest(b'<!DOCTYPE m [<!ENTITY a "aaaa">]>' + text.split(b"?>", 1)[1], keys.cloud_key,
                      [keys.alice_cert])
    with pytest.raises(InvalidManifest, match="manifest/image missing"):
        read_manifest(b"<manifest><machine_configuration/></manifest>", keys.cloud_key, [keys.alice_cert])
    with pytest.raises(InvalidManifest, match="not a plain file name"):
        part_filenames(text.replace(b"<filename>disk.img.part.00<", b"<filename>../../etc/passwd<"))
    assert part_filenames(text) == ("disk.img.part.00",)


def _crafted(keys: Keys, tar_bytes: bytes, out: Path) -> Manifest:
    """A bundle, properly signed and encrypted, around a tar stream euca-bundle-image would never make."""
    key, iv = os.urandom(16), os.urandom(16)
    data = gzip.compress(tar_bytes)
    data += bytes([16 - len(data) % 16]) * (16 - len(data) % 16)
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    out.mkdir(parents=True, exist_ok=True)
    part = encryptor.update(data) + encryptor.finalize()
    (out / "evil.part.00").write_bytes(part)
    xml = bundle_module._manifest_xml(
        name="evil", user=ALICE_ID, image_type="machine", arch="x86_64", kernel_id=None, ramdisk_id=None,
        mappings={}, digest=hashlib.sha1(tar_bytes).hexdigest(), size=5,
        parts=[("evil.part.00", hashlib.sha1(part).hexdigest(), len(part))], key=key, iv=iv,
        user_cert=keys.alice_cert, user_key=keys.alice_key, cloud_cert=keys.cloud_cert)
    return read_manifest(xml, keys.cloud_key, [keys.alice_cert])


def _tar(*members: tuple[tarfile.TarInfo, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for info, content in members:
            info.size = len(content) if info.isreg() else 0
            tar.addfile(info, io.BytesIO(content) if info.isreg() else None)
    return buffer.getvalue()


def _member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info


@pytest.mark.parametrize(("members", "message"), [
    ([(_member("../evil"), b"owned")], "would land outside"),
    ([(_member("a/../../evil"), b"owned")], "would land outside"),
    ([(_member("/tmp/evil"), b"owned")], "absolute path"),
    ([(_member("evil", tarfile.SYMTYPE, "/etc/passwd"), b"")], "symbolic link"),
    ([(_member("evil", tarfile.LNKTYPE, "/etc/passwd"), b"")], "hard link"),
    ([(_member("evil", tarfile.CHRTYPE), b"")], "a device"),
    ([(_member("evil", tarfile.DIRTYPE), b"")], "a directory"),
    ([(_member("evil", tarfile.FIFOTYPE), b"")], "a FIFO"),
    ([(_member("evil", b"V"), b"")], "not a regular file"),
    ([(_member("disk.img"), b"12345"), (_member("second"), b"x")], "a second file"),
    ([], "holds no file"),
])
def test_unsafe_tar_members_are_refused(keys: Keys, tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes]],
                                        message: str) -> None:
    manifest = _crafted(keys, _tar(*members), tmp_path / "b")
    target = tmp_path / "deep" / "target"
    target.mkdir(parents=True)
    with pytest.raises(UnsafeImage, match=message):
        unbundle(manifest, parts_in(tmp_path / "b"), target)
    assert list(target.iterdir()) == [] and not (tmp_path / "deep" / "evil").exists()


def test_a_crafted_safe_bundle_unbundles(keys: Keys, tmp_path: Path) -> None:
    manifest = _crafted(keys, _tar((_member("disk.img"), b"12345")), tmp_path / "b")
    assert unbundle(manifest, parts_in(tmp_path / "b"), tmp_path).read_bytes() == b"12345"


def test_streams_in_bounded_memory(keys: Keys, tmp_path: Path) -> None:
    image = tmp_path / "zeros.img"
    with image.open("wb") as f:
        f.truncate(48 * 1024 * 1024)  # gzips a thousandfold: every part inflates to far more than itself
    tracemalloc.start()
    try:
        made = _bundle(keys, image, tmp_path / "b", part_size=1024 * 1024)
        bundled_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        unbundle(_cloud_reads(keys, made.manifest), parts_in(tmp_path / "b"), tmp_path / "out.img")
        unbundled_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (tmp_path / "out.img").stat().st_size == image.stat().st_size
    assert bundled_peak < 12 * 1024 * 1024 and unbundled_peak < 12 * 1024 * 1024, (bundled_peak, unbundled_peak)


# --- OpenSSL: the format is the standard one -------------------------------------------------------

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None or shutil.which("gzip") is None,
                                   reason="openssl or gzip not installed")


@needs_openssl
def test_openssl_decrypts_our_parts(keys: Keys, tmp_path: Path) -> None:
    image = _image(tmp_path / "disk.img")
    made = _bundle(keys, image, tmp_path / "b")
    manifest = _cloud_reads(keys, made.manifest)
    done = subprocess.run(["openssl", "enc", "-d", "-aes-128-cbc", "-K", manifest.key.hex(), "-iv",
                           manifest.iv.hex()], input=b"".join(p.read_bytes() for p in made.parts),
                          capture_output=True, check=True)
    tar_bytes = subprocess.run(["gzip", "-dc"], input=done.stdout, capture_output=True, check=True).stdout
    assert hashlib.sha1(tar_bytes).hexdigest() == manifest.digest
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        member = tar.extractfile("disk.img")
        assert member is not None and member.read() == image.read_bytes()
    # and openssl checks the signature the same way
    raw = made.manifest.read_text()
    (tmp_path / "signed").write_text(raw[raw.index("<machine_configuration>"): raw.index("</image>") + 8])
    (tmp_path / "sig").write_bytes(bytes.fromhex(ET.fromstring(raw).findtext("signature", "")))
    pub = subprocess.run(["openssl", "x509", "-pubkey", "-noout", "-in", str(keys.data_dir / "euca-alice-cert.pem")],
                         capture_output=True, check=True).stdout
    (tmp_path / "pub.pem").write_bytes(pub)
    verified = subprocess.run(["openssl", "dgst", "-sha1", "-verify", str(tmp_path / "pub.pem"), "-signature",
                               str(tmp_path / "sig"), str(tmp_path / "signed")], capture_output=True, text=True)
    assert verified.stdout.strip() == "Verified OK"


@needs_openssl
def test_we_unbundle_what_tar_gzip_and_openssl_make(keys: Keys, tmp_path: Path) -> None:
    """euca2ools' own pipeline: tar, gzip -c, openssl enc -e -aes-128-cbc, split."""
    image = _image(tmp_path / "disk.img", 700_000)
    key, iv = os.urandom(16), os.urandom(16)
    tar_bytes = _tar((tarfile.TarInfo("disk.img"), image.read_bytes()))
    gz = subprocess.run(["gzip", "-c"], input=tar_bytes, capture_output=True, check=True).stdout
    enc = subprocess.run(["openssl", "enc", "-e", "-aes-128-cbc", "-K", key.hex(), "-iv", iv.hex()], input=gz,
                         capture_output=True, check=True).stdout
    out = tmp_path / "b"
    out.mkdir()
    parts = []
    for index in range(0, len(enc), PART):
        name = f"disk.img.part.{index // PART:02d}"
        (out / name).write_bytes(enc[index: index + PART])
        parts.append((name, hashlib.sha1(enc[index: index + PART]).hexdigest(), len(enc[index: index + PART])))
    xml = bundle_module._manifest_xml(
        name="disk.img", user=ALICE_ID, image_type="machine", arch="x86_64", kernel_id=None, ramdisk_id=None,
        mappings={}, digest=hashlib.sha1(tar_bytes).hexdigest(), size=700_000, parts=parts, key=key, iv=iv,
        user_cert=keys.alice_cert, user_key=keys.alice_key, cloud_cert=keys.cloud_cert)
    manifest = read_manifest(xml, keys.cloud_key, [keys.alice_cert])
    assert unbundle(manifest, parts_in(out), tmp_path / "x.img").read_bytes() == image.read_bytes()


# --- the command line ------------------------------------------------------------------------------

@pytest.fixture
def eucarc(keys: Keys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EC2_CERT", str(keys.data_dir / "euca-alice-cert.pem"))
    monkeypatch.setenv("EC2_PRIVATE_KEY", str(keys.data_dir / "euca-alice-pk.pem"))
    monkeypatch.setenv("EUCALYPTUS_CERT", str(keys.data_dir / "cloud-cert.pem"))
    monkeypatch.delenv("S3_URL", raising=False)


@pytest.mark.usefixtures("eucarc")
def test_cli_bundle_and_unbundle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image = _image(tmp_path / "disk.img", 600_000)
    assert main(["bundle-image", "-i", str(image), "-d", str(tmp_path / "b"), "-p", "web",
                 "--part-size", str(PART)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [f"Wrote {tmp_path / 'b' / f'web.part.0{i}'}" for i in range(2)] + [
        f"Wrote manifest {tmp_path / 'b' / 'web.manifest.xml'}"]
    (tmp_path / "o").mkdir()
    assert main(["unbundle", "-m", str(tmp_path / "b" / "web.manifest.xml"), "-d", str(tmp_path / "o")]) == 0
    assert (tmp_path / "o" / "disk.img").read_bytes() == image.read_bytes()


@pytest.mark.usefixtures("eucarc")
def test_cli_errors_name_the_file_or_field(keys: Keys, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    image = _image(tmp_path / "disk.img", 5000)

    def fails(argv: list[str], message: str) -> None:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err and "Traceback" not in err, err

    fails(["bundle-image", "-i", str(tmp_path / "nope")], f"euca bundle-image: image {tmp_path / 'nope'}: no such file")
    fails(["bundle-image", "-i", str(image), "-r", "sparc"], "architecture 'sparc': one of i386, x86_64, armhf")
    fails(["bundle-image", "-i", str(image), "-c", str(image)], f"{image}: not a PEM certificate")
    fails(["bundle-image", "-i", str(image), "-k", str(keys.data_dir / "euca-bob-pk.pem")],
          "the private key does not belong to the user certificate")
    fails(["bundle-image", "-i", str(image), "-p", "../x"], "prefix '../x': give a plain file name")
    monkeypatch.delenv("EC2_CERT")
    fails(["bundle-image", "-i", str(image)], "no user certificate: give -c CERT or set EC2_CERT")
    monkeypatch.setenv("EC2_CERT", str(keys.data_dir / "euca-alice-cert.pem"))

    assert main(["bundle-image", "-i", str(image), "-d", str(tmp_path / "b")]) == 0
    manifest = str(tmp_path / "b" / "disk.img.manifest.xml")
    fails(["unbundle", "-m", manifest, "-k", str(keys.data_dir / "euca-bob-pk.pem")],
          "signature does not match")
    part = tmp_path / "b" / "disk.img.part.00"
    part.write_bytes(b"x" + part.read_bytes()[1:])
    fails(["unbundle", "-m", manifest, "-d", str(tmp_path)], "part 0 (disk.img.part.00) digest mismatch")
    fails(["unbundle", "-m", str(tmp_path / "none.xml")], "manifest")
    fails(["upload-bundle", "-b", "images", "-m", manifest], "no Walrus endpoint: give --url or set S3_URL")
    part.unlink()
    fails(["upload-bundle", "-b", "images", "-m", manifest, "--url", "http://127.0.0.1:9"],
          f"part {part}: no such file")


def test_the_gzip_stream_does_not_depend_on_the_thread_count(keys: Keys, tmp_path: Path) -> None:
    image = _image(tmp_path / "disk.img")
    streams = []
    for threads in (1, 3):
        made = _bundle(keys, image, tmp_path / str(threads), threads=threads)
        manifest = _cloud_reads(keys, made.manifest)
        decryptor = Cipher(algorithms.AES(manifest.key), modes.CBC(manifest.iv)).decryptor()
        plain = decryptor.update(b"".join(p.read_bytes() for p in made.parts)) + decryptor.finalize()
        streams.append(plain[: -plain[-1]])
    assert streams[0] == streams[1]
    assert len(streams[0]) < image.stat().st_size * 0.6  # the zeros compress, priming or not


# --- through Walrus --------------------------------------------------------------------------------

def test_upload_bundle_to_walrus_and_the_cloud_unbundles_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError

    from euca.services.common import ADMIN
    from euca.walrus import Requester
    from tests.ec2_server import running_box

    with running_box(tmp_path / "cloud") as box:
        walrus = box.walrus
        assert walrus is not None
        access, secret = box.keys("alice")
        alice, admin = box.cloud.accounts.get("alice"), box.cloud.accounts.get(ADMIN)
        assert alice is not None and admin is not None
        mine = user_credentials(box.data_dir, "alice", alice.account_id)
        cloud = cloud_credentials(box.data_dir)
        s3_url = f"{box.url}/services/Walrus"
        for name, value in (("S3_URL", s3_url), ("AWS_ACCESS_KEY_ID", access), ("AWS_SECRET_ACCESS_KEY", secret),
                            ("EC2_CERT", str(mine.cert)), ("EC2_PRIVATE_KEY", str(mine.key)),
                            ("EUCALYPTUS_CERT", str(cloud.cert))):
            monkeypatch.setenv(name, value)
        image = _image(tmp_path / "disk.img", 700_000)
        assert main(["bundle-image", "-i", str(image), "-d", str(tmp_path / "b"), "--part-size", str(PART)]) == 0
        manifest_path = tmp_path / "b" / "disk.img.manifest.xml"
        names = part_filenames(manifest_path.read_bytes())
        capsys.readouterr()
        assert main(["upload-bundle", "-b", "images/v1", "-m", str(manifest_path)]) == 0
        assert capsys.readouterr().out.splitlines() == [f"Uploaded images/v1/{n}" for n in [*names,
                                                                                           "disk.img.manifest.xml"]]

        # the cloud reads it as its administrator (aws-exec-read) and checks alice's signature
        cloud_reader = Requester(ADMIN, admin.account_id, True)
        _, body = walrus.open_object(cloud_reader, "images", "v1/disk.img.manifest.xml")
        with body:
            manifest = read_manifest(body.read(), load_private_key(cloud.key),
                                     account_certificates(box.data_dir, "alice"))
        restored = unbundle(manifest, lambda name: walrus.open_object(cloud_reader, "images", f"v1/{name}")[1],
                            tmp_path / "from-walrus.img")
        assert restored.read_bytes() == image.read_bytes()

        # the canned ACL aws-exec-read: alice has it all, the cloud's administrator reads
        from euca.walrus import canonical_id

        alice_s3 = boto3.client("s3", endpoint_url=s3_url, aws_access_key_id=access, aws_secret_access_key=secret,
                                region_name="eucalyptus", config=Config(s3={"addressing_style": "path"}))
        for name in [*names, "disk.img.manifest.xml"]:
            grants = alice_s3.get_object_acl(Bucket="images", Key=f"v1/{name}")["Grants"]
            assert sorted((g["Grantee"].get("ID"), g["Permission"]) for g in grants) == sorted(
                [(canonical_id(alice.account_id), "FULL_CONTROL"), (canonical_id(admin.account_id), "READ")])

        # nobody else reads it
        bob_access, bob_secret = box.keys("bob")
        bob = boto3.client("s3", endpoint_url=s3_url, aws_access_key_id=bob_access, aws_secret_access_key=bob_secret,
                           region_name="eucalyptus", config=Config(s3={"addressing_style": "path"}))
        with pytest.raises(ClientError) as refused:
            bob.get_object(Bucket="images", Key="v1/disk.img.manifest.xml")
        assert refused.value.response["Error"]["Code"] == "AccessDenied"

        # and alice gets it back as she put it
        assert main(["download-bundle", "-b", "images/v1", "-m", "disk.img.manifest.xml",
                     "-d", str(tmp_path / "down")]) == 0
        for name in [*names, "disk.img.manifest.xml"]:
            assert (tmp_path / "down" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
        capsys.readouterr()
        assert main(["download-bundle", "-b", "images", "-m", "none.manifest.xml", "-d", str(tmp_path / "x")]) == 1
        assert "euca download-bundle: NoSuchKey" in capsys.readouterr().err
