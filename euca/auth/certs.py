"""X.509 credentials: the cloud's certificate and the certificates it issues to accounts.

Eucalyptus keeps an RSA key pair and a self-signed certificate for the cloud (``cloud-cert.pem``,
``cloud-pk.pem``) and gives each user a certificate signed by it in the credentials zip
(``euca2-<user>-cert.pem`` / ``-pk.pem``). Bundles need both: euca-bundle-image encrypts the
bundle's AES key under the cloud's certificate (``ec2_encrypted_key``) and the user's own
(``user_encrypted_key``), and signs the manifest with the user's key; the cloud checks that
signature against the uploading account's certificate and decrypts the key with its own.

Everything lives in the data directory; private keys are created 0600 and written under a
temporary name, then renamed, so a reader sees a whole file or none.
"""

from __future__ import annotations

import datetime
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

CLOUD_CERT = "cloud-cert.pem"
CLOUD_KEY = "cloud-pk.pem"
KEY_BITS = 2048
CLOUD_DAYS = 10 * 365
USER_DAYS = 5 * 365


@dataclass(frozen=True)
class Credentials:
    """A certificate and its private key, as files."""

    cert: Path
    key: Path


def user_files(data_dir: Path, account: str) -> Credentials:
    return Credentials(data_dir / f"euca-{account}-cert.pem", data_dir / f"euca-{account}-pk.pem")


def load_certificate(path: Path) -> x509.Certificate:
    """A PEM certificate; ValueError naming the file if it is not one."""
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except ValueError as exc:
        raise ValueError(f"{path}: not a PEM certificate ({exc})") from None


def load_private_key(path: Path) -> rsa.RSAPrivateKey:
    """A PEM RSA private key (PKCS#1 or PKCS#8, unencrypted); ValueError naming the file otherwise."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path}: not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"{path}: not an RSA private key")
    return key


def _write(path: Path, data: bytes, mode: int) -> None:
    partial = path.with_name(f".{path.name}.{secrets.token_hex(4)}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(partial, mode)  # whatever the umask
        partial.replace(path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    # PKCS#1 ("BEGIN RSA PRIVATE KEY"), what Eucalyptus's credentials and euca2ools' openssl calls use
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def _name(common: str, *, uid: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COUNTRY_NAME, "US"), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "euca"),
                  x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Eucalyptus")]
    if uid is not None:
        attributes.append(x509.NameAttribute(NameOID.USER_ID, uid))
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common))
    return x509.Name(attributes)


def _builder(subject: x509.Name, issuer: x509.Name, public: rsa.RSAPublicKey, days: int) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))  # clocks of other hosts lag a little
            .not_valid_after(now + datetime.timedelta(days=days)))


def cloud_credentials(data_dir: Path) -> Credentials:
    """The cloud's key pair and self-signed certificate, made on first call and kept after that."""
    found = Credentials(data_dir / CLOUD_CERT, data_dir / CLOUD_KEY)
    if found.cert.exists() and found.key.exists():
        return found
    data_dir.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    name = _name("euca cloud")
    cert = (_builder(name, name, key.public_key(), CLOUD_DAYS)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=True,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    # the key first: a certificate on disk always has its key beside it
    _write(found.key, _key_pem(key), 0o600)
    _write(found.cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return found


def user_credentials(data_dir: Path, account: str, account_id: str) -> Credentials:
    """The account's certificate, signed by the cloud, and its key (``euca-<account>-cert.pem`` and
    ``-pk.pem``): made on first call, kept after that unless another cloud certificate issued them."""
    cloud = cloud_credentials(data_dir)
    cloud_cert = load_certificate(cloud.cert)
    found = user_files(data_dir, account)
    if found.cert.exists() and found.key.exists() and issued_by(load_certificate(found.cert), cloud_cert):
        return found
    cloud_public = cloud_cert.public_key()
    if not isinstance(cloud_public, rsa.RSAPublicKey):
        raise ValueError(f"{cloud.cert}: not an RSA certificate")
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    cert = (_builder(_name(account, uid=account_id), cloud_cert.subject, key.public_key(), USER_DAYS)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=True,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(cloud_public), critical=False)
            .sign(load_private_key(cloud.key), hashes.SHA256()))
    _write(found.key, _key_pem(key), 0o600)
    _write(found.cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return found


def issued_by(cert: x509.Certificate, cloud_cert: x509.Certificate) -> bool:
    """Whether the cloud's key signed this certificate."""
    public = cloud_cert.public_key()
    if cert.issuer != cloud_cert.subject or not isinstance(public, rsa.RSAPublicKey):
        return False
    assert cert.signature_hash_algorithm is not None
    try:
        public.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), cert.signature_hash_algorithm)
    except Exception:
        return False
    return True


def account_id_of(cert: x509.Certificate) -> str:
    """The account id a user certificate names (its UID), or "" for one that names none."""
    found = cert.subject.get_attributes_for_oid(NameOID.USER_ID)
    return str(found[0].value) if found else ""


def account_certificates(data_dir: Path, account: str) -> list[x509.Certificate]:
    """The certificates a manifest uploaded by ``account`` may be signed with (none if never issued)."""
    path = user_files(data_dir, account).cert
    return [load_certificate(path)] if path.exists() else []


def eucarc_lines(data_dir: Path, account: str, account_id: str) -> str:
    """What eucarc says about certificates, as Eucalyptus's credentials zip has it: the cloud's
    certificate and the account's certificate and key, by absolute path (made if missing)."""
    cloud = cloud_credentials(data_dir)
    user = user_credentials(data_dir, account, account_id)
    return (f"export EUCALYPTUS_CERT={cloud.cert.resolve()}\n"
            f"export EC2_CERT={user.cert.resolve()}\n"
            f"export EC2_PRIVATE_KEY={user.key.resolve()}\n")
