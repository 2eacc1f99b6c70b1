"""ImportKeyPair's key formats: what EC2 imports is imported with AWS's fingerprint, and anything
else is InvalidKey.Format (the code and message EC2 answers for ImportKeyPair; its error list also
has InvalidKeyPair.Format, which ImportKeyPair does not answer), never an internal error."""

from __future__ import annotations

import base64
import hashlib
import os
import textwrap
from collections.abc import Callable, Iterator
from typing import Any

import botocore.exceptions
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa

from euca.core.errors import InvalidKeyFormat, InvalidParameterValue
from euca.services.keypairs import MAX_MATERIAL, public_key
from tests.ec2_server import Box, running_box


def _openssh(key: Any) -> bytes:
    return bytes(key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH))


def _spki(key: Any) -> bytes:
    return bytes(key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))


def _ssh2(key: Any, comment: str = "2048-bit RSA, converted by me@example from OpenSSH") -> bytes:
    """RFC 4716, as ``ssh-keygen -e`` writes it, with a header long enough to be continued."""
    blob = _openssh(key).split()[1].decode()
    header = f'Comment: "{comment}{"x" * 80}"'
    header_lines = [header[:70] + "\\", header[70:]]
    return "\n".join(["---- BEGIN SSH2 PUBLIC KEY ----", *header_lines, "Subject: me",
                      *textwrap.wrap(blob, 70), "---- END SSH2 PUBLIC KEY ----", ""]).encode()


RSA_2048 = rsa.generate_private_key(65537, 2048).public_key()
ACCEPTED: dict[str, Callable[[], Any]] = {
    "rsa-1024": lambda: rsa.generate_private_key(65537, 1024).public_key(),
    "rsa-2048": lambda: RSA_2048,
    "rsa-3072": lambda: rsa.generate_private_key(65537, 3072).public_key(),
    "rsa-4096": lambda: rsa.generate_private_key(65537, 4096).public_key(),
    "ed25519": lambda: ed25519.Ed25519PrivateKey.generate().public_key(),
}
FORMATS: dict[str, Callable[[Any], bytes]] = {
    "openssh": lambda k: _openssh(k) + b" me@laptop\n",
    "ssh2": _ssh2,
    "base64-der": lambda k: base64.b64encode(_spki(k)),
    "base64-der-wrapped": lambda k: "\n".join(textwrap.wrap(base64.b64encode(_spki(k)).decode(), 64)).encode(),
    "der": _spki,
    "pem": lambda k: k.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
}


# every key type in every format, but the SSH2 container once for RSA and once for Ed25519
@pytest.mark.parametrize(("kind", "fmt"), [(k, f) for k in ACCEPTED for f in FORMATS
                                           if f != "ssh2" or k in ("rsa-2048", "ed25519")])
def test_accepted_keys_in_every_format(kind: str, fmt: str) -> None:
    key = ACCEPTED[kind]()
    loaded = public_key(FORMATS[fmt](key))
    assert _spki(loaded) == _spki(key)


def _rsa_numbers(bits: int) -> rsa.RSAPublicKey:
    n = int.from_bytes(os.urandom(bits // 8), "big") | (1 << (bits - 1)) | 1
    return rsa.RSAPublicNumbers(65537, n).public_key()


def _ssh_line(kind: bytes, *fields: bytes) -> bytes:
    blob = b"".join(len(f).to_bytes(4, "big") + f for f in (kind, *fields))
    return kind + b" " + base64.b64encode(blob)


def _mpint(value: int) -> bytes:
    return value.to_bytes(value.bit_length() // 8 + 1, "big")


_DSA = dsa.generate_private_key(1024).public_key().public_numbers()
_line = _openssh(RSA_2048)
_ed_line = _openssh(ed25519.Ed25519PrivateKey.generate().public_key())
REFUSED: dict[str, bytes] = {
    "unknown type": _ssh_line(b"ssh-foo", b"\x01\x02\x03"),
    "unknown type, plain": b"ssh-foo AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 me@host",
    "unknown curve": _ssh_line(b"ecdsa-sha2-nistp999", b"nistp999", b"\x04" + b"\x01" * 64),
    "curve and type disagree": _ssh_line(b"ecdsa-sha2-nistp256", b"nistp384", b"\x04" + b"\x01" * 96),
    "dsa": _ssh_line(b"ssh-dss", *(_mpint(v) for v in (_DSA.parameter_numbers.p, _DSA.parameter_numbers.q,
                                                        _DSA.parameter_numbers.g, _DSA.y))),
    "dsa der": base64.b64encode(_spki(_DSA.public_key())),
    "rsa 512": _openssh(_rsa_numbers(512)),
    "rsa 8192": _openssh(_rsa_numbers(8192)),
    # EC2 imports "an RSA or ED25519 key pair" (ImportKeyPair); its KeyType has no name for ECDSA
    **{f"ecdsa {curve.name}": _openssh(ec.generate_private_key(curve).public_key())
       for curve in (ec.SECP256R1(), ec.SECP384R1(), ec.SECP521R1())},
    "ecdsa der": base64.b64encode(_spki(ec.generate_private_key(ec.SECP256R1()).public_key())),
    "secp256k1": base64.b64encode(_spki(ec.generate_private_key(ec.SECP256K1()).public_key())),
    "certificate": b"ssh-ed25519-cert-v01@openssh.com AAAAIHNzaC1lZDI1NTE5LWNlcnQtdjAxQG9wZW5zc2guY29tAAAA",
    "type mismatch": b"ssh-rsa " + _ed_line.split()[1],
    "truncated blob": _line[: len(_line) // 2],
    "truncated base64": _line[:-3],
    "base64 garbage": b"ssh-rsa !!!not*base64!!!",
    "no blob": b"ssh-rsa",
    "options before the type": b'from="10.0.0.0/8" ' + _line,
    "empty": b"",
    "whitespace": b" \n\t ",
    "nul bytes": b"ssh-rsa \x00\x00\x00\x07ssh-rsa",
    "not utf-8": b"\xff\xfe\xfa" * 40,
    "random bytes": bytes(range(256)) * 4,
    "der garbage": b"\x30\x82\x01\x22" + b"\x00" * 40,
    "base64 of garbage": base64.b64encode(b"\x30\x03\x02\x01\x01"),
    "pem private key": rsa.generate_private_key(65537, 1024).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    "pem garbage": b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
    "ssh2 without end": _ssh2(RSA_2048).replace(b"---- END SSH2 PUBLIC KEY ----", b""),
    "ssh2 empty body": b"---- BEGIN SSH2 PUBLIC KEY ----\n---- END SSH2 PUBLIC KEY ----\n",
    "ssh2 of unknown type": b"---- BEGIN SSH2 PUBLIC KEY ----\n" + _ssh_line(b"ssh-foo", b"x").split()[1]
                            + b"\n---- END SSH2 PUBLIC KEY ----\n",
    "huge": b"ssh-rsa " + b"A" * MAX_MATERIAL,
}


@pytest.mark.parametrize("name", REFUSED)
def test_refused_keys_are_invalid_key_format(name: str) -> None:
    with pytest.raises(InvalidKeyFormat) as exc:
        public_key(REFUSED[name])
    assert exc.value.code == "InvalidKey.Format"
    assert exc.value.message == "Key is not in valid OpenSSH public key format"


# --- through the API -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    with running_box(tmp_path_factory.mktemp("keys"), nodes=1) as b:
        yield b


@pytest.fixture(scope="module")
def ec2(box: Box) -> Iterator[Any]:
    client = box.client("keyholder")
    yield client
    client.close()


@pytest.mark.parametrize("name", ["unknown type", "unknown curve", "dsa", "rsa 8192", "truncated blob", "random bytes"])
def test_import_refuses_with_ec2s_error_and_stores_nothing(ec2: Any, name: str) -> None:
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ec2.import_key_pair(KeyName="refused", PublicKeyMaterial=REFUSED[name])
    assert exc.value.response["Error"]["Code"] == "InvalidKey.Format"
    assert exc.value.response["Error"]["Message"] == "Key is not in valid OpenSSH public key format"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert [k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]] == []


def test_import_accepts_ssh2_and_base64_der_with_awss_fingerprint(ec2: Any) -> None:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    got = ec2.import_key_pair(KeyName="ssh2", PublicKeyMaterial=_ssh2(key))
    blob = base64.b64decode(_openssh(key).split()[1])
    assert got["KeyFingerprint"] == base64.b64encode(hashlib.sha256(blob).digest()).decode()
    got = ec2.import_key_pair(KeyName="der", PublicKeyMaterial=FORMATS["base64-der"](RSA_2048))
    assert got["KeyFingerprint"] == ":".join(f"{b:02x}" for b in hashlib.md5(_spki(RSA_2048)).digest())
    assert sorted(k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]) == ["der", "ssh2"]
    ec2.delete_key_pair(KeyName="ssh2")
    ec2.delete_key_pair(KeyName="der")


@pytest.mark.parametrize("name", ["", "x" * 256, "tab\there", "caf\u00e9", "bell\x07"])
def test_key_names_are_checked(ec2: Any, box: Box, name: str) -> None:
    from euca.services.common import Caller

    with pytest.raises(InvalidParameterValue, match="KeyName"):
        box.cloud.keypairs.import_(Caller("keyholder", "0" * 12), name, _openssh(RSA_2048))

