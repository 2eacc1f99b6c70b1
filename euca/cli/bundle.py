"""``euca bundle-image``, ``upload-bundle``, ``download-bundle`` and ``unbundle``: euca2ools'
commands of those names, over ``euca.walrus.bundle``.

Certificates and keys default to what eucarc exports (``EC2_CERT``, ``EC2_PRIVATE_KEY``,
``EUCALYPTUS_CERT``); uploads go to ``$S3_URL`` with the access keys the aws CLI would use
(``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``, else ``EC2_ACCESS_KEY`` / ``EC2_SECRET_KEY``).
A bad argument or a bad bundle is a one-line message and exit status 2; a refusal from Walrus
exit status 1.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import rsa

BAD_INPUT, REFUSED = 2, 1
DEFAULT_ACL = "aws-exec-read"


class _Usage(Exception):
    """A missing or unusable argument; the message names it."""


def _fail(command: str, message: str, status: int) -> int:
    print(f"euca {command}: {message}", file=sys.stderr)
    return status


def _guard(command: str, work: Callable[[], int]) -> int:
    """Run a command, turning every expected failure into one line on stderr and an exit status."""
    from botocore.exceptions import BotoCoreError, ClientError

    from euca.walrus.bundle import BundleError

    try:
        return work()
    except _Usage as exc:
        return _fail(command, str(exc), BAD_INPUT)
    except BundleError as exc:
        return _fail(command, exc.message, BAD_INPUT)
    except ValueError as exc:
        return _fail(command, str(exc), BAD_INPUT)
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        return _fail(command, f"{where}{exc.strerror or exc}", BAD_INPUT)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        return _fail(command, f"{error.get('Code', 'error')}: {error.get('Message', '')}".rstrip(": "), REFUSED)
    except BotoCoreError as exc:
        return _fail(command, str(exc), REFUSED)


def _path(given: str | None, variable: str, what: str, option: str) -> Path:
    value = given or os.environ.get(variable)
    if not value:
        raise _Usage(f"no {what}: give {option} or set {variable} (source eucarc)")
    path = Path(value)
    if not path.is_file():
        raise _Usage(f"{what} {path}: no such file")
    return path


def _certificate(path: Path) -> x509.Certificate:
    from euca.auth.certs import load_certificate

    return load_certificate(path)


def _private_key(path: Path) -> rsa.RSAPrivateKey:
    from euca.auth.certs import load_private_key

    return load_private_key(path)


# --- bundle-image ----------------------------------------------------------------------------------

def _mappings(text: str) -> dict[str, str]:
    mappings = {}
    for item in text.split(","):
        virtual, _, device = item.partition("=")
        if not virtual or not device:
            raise _Usage(f"--block-device-mappings {item!r}: give VIRTUAL=DEVICE, e.g. ephemeral0=sdb")
        mappings[virtual.strip()] = device.strip()
    return mappings


def add_bundle_image(parser: argparse.ArgumentParser) -> None:
    # the choices are checked by euca.walrus.bundle, which is not imported to build the parser
    parser.add_argument("-i", "--image", required=True, help="the image file to bundle")
    parser.add_argument("-d", "--destination", help="where to write the bundle (default: $TMPDIR or /tmp)")
    parser.add_argument("-p", "--prefix", help="the bundle's file names (default: the image's file name)")
    parser.add_argument("-r", "--arch", default="x86_64", help="i386, x86_64 or armhf (x86_64)")
    parser.add_argument("--kernel", metavar="EKI", help="the kernel a machine image launches with")
    parser.add_argument("--ramdisk", metavar="ERI", help="the ramdisk a machine image launches with")
    parser.add_argument("--image-type", default="machine", help="machine, kernel or ramdisk (machine)")
    parser.add_argument("-B", "--block-device-mappings", metavar="VIRTUAL=DEVICE,...",
                        help="default for a machine image: ami=sda1,root=/dev/sda1,ephemeral0=sda2,swap=sda3")
    parser.add_argument("-c", "--cert", help="your certificate (default $EC2_CERT)")
    parser.add_argument("-k", "--privatekey", help="your private key (default $EC2_PRIVATE_KEY)")
    parser.add_argument("--ec2cert", help="the cloud's certificate (default $EUCALYPTUS_CERT)")
    parser.add_argument("-u", "--user", help="your account id (default: the one your certificate names)")
    parser.add_argument("--part-size", type=int, default=10 * 1024 * 1024, help="bytes per part (10 MiB)")


def run_bundle_image(args: argparse.Namespace) -> int:
    return _guard("bundle-image", lambda: _bundle_image(args))


def _bundle_image(args: argparse.Namespace) -> int:
    from euca.walrus.bundle import bundle_image

    image = Path(args.image)
    if not image.is_file():
        raise _Usage(f"image {image}: no such file")
    user_cert = _certificate(_path(args.cert, "EC2_CERT", "user certificate", "-c CERT"))
    user_key = _private_key(_path(args.privatekey, "EC2_PRIVATE_KEY", "private key", "-k KEY"))
    cloud_cert = _certificate(_path(args.ec2cert, "EUCALYPTUS_CERT", "cloud certificate", "--ec2cert CERT"))
    out_dir = Path(args.destination or tempfile.gettempdir())
    mappings = _mappings(args.block_device_mappings) if args.block_device_mappings else None
    done = bundle_image(image, out_dir, args.prefix or image.name, user_cert, user_key, cloud_cert, args.arch,
                        kernel_id=args.kernel, ramdisk_id=args.ramdisk, image_type=args.image_type,
                        user=args.user, block_device_mapping=mappings, part_size=args.part_size)
    for part in done.parts:
        print(f"Wrote {part}")
    print(f"Wrote manifest {done.manifest}")
    return 0


# --- upload-bundle and download-bundle -------------------------------------------------------------

def _s3(url: str | None) -> Any:
    import boto3
    from botocore.config import Config

    endpoint = url or os.environ.get("S3_URL")
    if not endpoint:
        raise _Usage("no Walrus endpoint: give --url or set S3_URL (source eucarc)")
    access = os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("EC2_ACCESS_KEY")
    secret = os.environ.get("AWS_SECRET_ACCESS_KEY") or os.environ.get("EC2_SECRET_KEY")
    # Walrus, like Eucalyptus's, answers path-style requests and knows no CRC32 trailers
    config = Config(s3={"addressing_style": "path"}, signature_version="s3v4",
                    request_checksum_calculation="when_required", response_checksum_validation="when_required")
    return boto3.client("s3", endpoint_url=endpoint, region_name=os.environ.get("AWS_DEFAULT_REGION", "eucalyptus"),
                        aws_access_key_id=access, aws_secret_access_key=secret, config=config)


def _bucket_and_prefix(text: str) -> tuple[str, str]:
    bucket, _, prefix = text.partition("/")
    if not bucket:
        raise _Usage(f"bucket {text!r}: give BUCKET or BUCKET/PREFIX")
    return bucket, (prefix.rstrip("/") + "/" if prefix.strip("/") else "")


def add_upload_bundle(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-b", "--bucket", required=True, metavar="BUCKET[/PREFIX]", help="where to upload")
    parser.add_argument("-m", "--manifest", required=True, help="the bundle's manifest (its parts beside it)")
    parser.add_argument("-d", "--directory", help="where the parts are (default: beside the manifest)")
    parser.add_argument("--acl", default=DEFAULT_ACL, help=f"canned ACL for every file ({DEFAULT_ACL})")
    parser.add_argument("--url", help="Walrus's S3 endpoint (default $S3_URL)")


def run_upload_bundle(args: argparse.Namespace) -> int:
    return _guard("upload-bundle", lambda: _upload_bundle(args))


def _upload_bundle(args: argparse.Namespace) -> int:
    from botocore.exceptions import ClientError

    from euca.walrus.bundle import part_filenames

    manifest = Path(args.manifest)
    if not manifest.is_file():
        raise _Usage(f"manifest {manifest}: no such file")
    names = part_filenames(manifest.read_bytes())
    directory = Path(args.directory) if args.directory else manifest.parent
    missing = [n for n in names if not (directory / n).is_file()]
    if missing:
        raise _Usage(f"part {directory / missing[0]}: no such file ({len(missing)} of {len(names)} missing)")
    bucket, prefix = _bucket_and_prefix(args.bucket)
    s3 = _s3(args.url)
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket"):
            raise
        s3.create_bucket(Bucket=bucket)
    # the manifest last: once it is there, so is every part it names
    for path in [*(directory / n for n in names), manifest]:
        with path.open("rb") as body:
            s3.put_object(Bucket=bucket, Key=prefix + path.name, Body=body, ACL=args.acl)
        print(f"Uploaded {bucket}/{prefix}{path.name}")
    return 0


def add_download_bundle(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-b", "--bucket", required=True, metavar="BUCKET[/PREFIX]")
    parser.add_argument("-m", "--manifest", required=True, help="the manifest's key (e.g. image.manifest.xml)")
    parser.add_argument("-d", "--directory", default=".", help="where to write the files (.)")
    parser.add_argument("--url", help="Walrus's S3 endpoint (default $S3_URL)")


def run_download_bundle(args: argparse.Namespace) -> int:
    return _guard("download-bundle", lambda: _download_bundle(args))


def _download_bundle(args: argparse.Namespace) -> int:
    import shutil

    from euca.walrus.bundle import part_filenames

    bucket, prefix = _bucket_and_prefix(args.bucket)
    directory = Path(args.directory)
    directory.mkdir(parents=True, exist_ok=True)
    s3 = _s3(args.url)
    manifest_name = Path(args.manifest).name
    xml = s3.get_object(Bucket=bucket, Key=prefix + manifest_name)["Body"].read()
    names = part_filenames(xml)
    for name in names:
        body = s3.get_object(Bucket=bucket, Key=prefix + name)["Body"]
        partial = directory / f".{name}.partial"
        with partial.open("wb") as out:
            shutil.copyfileobj(body, out, 1024 * 1024)
        partial.replace(directory / name)
        print(f"Wrote {directory / name}")
    (directory / manifest_name).write_bytes(xml)
    print(f"Wrote manifest {directory / manifest_name}")
    return 0


# --- unbundle --------------------------------------------------------------------------------------

def add_unbundle(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-m", "--manifest", required=True)
    parser.add_argument("-k", "--privatekey", help="the private key the bundle was made with "
                        "(default $EC2_PRIVATE_KEY)")
    parser.add_argument("-c", "--cert", help="also accept a signature by this certificate's key")
    parser.add_argument("-s", "--source", help="where the parts are (default: beside the manifest)")
    parser.add_argument("-d", "--destination", default=".", help="where to write the image (.)")


def run_unbundle(args: argparse.Namespace) -> int:
    return _guard("unbundle", lambda: _unbundle(args))


def _unbundle(args: argparse.Namespace) -> int:
    from euca.walrus.bundle import SignatureMismatch, parts_in, read_manifest, unbundle

    manifest = Path(args.manifest)
    if not manifest.is_file():
        raise _Usage(f"manifest {manifest}: no such file")
    key_path = _path(args.privatekey, "EC2_PRIVATE_KEY", "private key", "-k KEY")
    key = _private_key(key_path)
    signers: list[Any] = [key.public_key()]
    if args.cert:
        signers.append(_certificate(Path(args.cert)))
    try:
        parsed = read_manifest(manifest.read_bytes(), None, signers, user_key=key)
    except SignatureMismatch as exc:
        raise SignatureMismatch(f"{manifest}: {exc.message} (was it bundled with {key_path}?)") from None
    source = Path(args.source) if args.source else manifest.parent
    destination = Path(args.destination)
    if not destination.is_dir():
        raise _Usage(f"destination {destination}: no such directory")
    print(f"Wrote {unbundle(parsed, parts_in(source), destination)}")
    return 0
