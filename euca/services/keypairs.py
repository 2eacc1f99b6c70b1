"""Key pairs: the SSH key a node injects into an instance (``add_key.pl``), per account and name.

Fingerprints are computed as AWS computes them: a created key's is the SHA-1 of the PKCS#8 DER
private key, an imported key's the MD5 of the DER public key, both as colon-separated hex.

ImportKeyPair takes what EC2 takes: an OpenSSH public key line (``ssh-rsa AAAA... comment``), an
RFC 4716 "SSH2" public key file, or a DER SubjectPublicKeyInfo, base64 (or raw); and, as
Eucalyptus did, a PEM public key. RSA keys of 1024 to 4096 bits, Ed25519, and ECDSA on the NIST
curves P-256, P-384 and P-521. Anything else is ``InvalidKey.Format``, "Key is not in valid
OpenSSH public key format", whatever the key library made of it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from euca.core.errors import (
    InvalidKeyFormat,
    InvalidKeyPairDuplicate,
    InvalidKeyPairNotFound,
)
from euca.core.text import check_name
from euca.services.common import Caller
from euca.store import Store

MAX_MATERIAL = 16384  # bytes of PublicKeyMaterial; a 4096-bit RSA key in any accepted form is under 1 KiB
RSA_BITS = range(1024, 4097)
CURVES = ("secp256r1", "secp384r1", "secp521r1")
NOT_OPENSSH = "Key is not in valid OpenSSH public key format"
# The OpenSSH key types EC2 imports; the key library would take DSA and tell others apart only by raising.
SSH_TYPES = (b"ssh-rsa", b"ssh-ed25519", b"ecdsa-sha2-nistp256", b"ecdsa-sha2-nistp384", b"ecdsa-sha2-nistp521")
SSH2_BEGIN, SSH2_END = b"---- BEGIN SSH2 PUBLIC KEY ----", b"---- END SSH2 PUBLIC KEY ----"

PublicKey = rsa.RSAPublicKey | ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey


@dataclass(frozen=True)
class KeyPair:
    account: str
    name: str
    fingerprint: str
    public_key: str  # OpenSSH format, what the node writes into authorized_keys


def _colons(digest: bytes) -> str:
    return ":".join(f"{b:02x}" for b in digest)


def _check_name(name: str) -> None:
    check_name("KeyName", name, 255, ascii_only=True)


def _openssh(line: bytes) -> Any:
    """``type base64 [comment]``, with the type one EC2 imports and the blob's own type the same."""
    fields = line.split()
    if len(fields) < 2 or fields[0] not in SSH_TYPES:
        raise ValueError("not an OpenSSH key line EC2 imports")
    blob = base64.b64decode(fields[1], validate=True)
    if blob[4:4 + int.from_bytes(blob[:4], "big")] != fields[0]:
        raise ValueError("the key blob is of another type than its line says")
    return serialization.load_ssh_public_key(fields[0] + b" " + fields[1])


def _ssh2(text: bytes) -> Any:
    """An RFC 4716 public key file: BEGIN line, ``Tag: value`` headers (a trailing backslash
    continues one), base64 body, END line."""
    lines = [line.strip() for line in text.splitlines()]
    if lines[0] != SSH2_BEGIN or lines[-1] != SSH2_END:
        raise ValueError("not an SSH2 public key file")
    body: list[bytes] = []
    continued = False
    for line in lines[1:-1]:
        if continued or (not body and b":" in line):
            continued = line.endswith(b"\\")
            continue
        body.append(line)
    blob = base64.b64decode(b"".join(body), validate=True)
    kind = blob[4:4 + int.from_bytes(blob[:4], "big")]
    return _openssh(kind + b" " + base64.b64encode(blob))


def _der(text: bytes) -> Any:
    """A DER SubjectPublicKeyInfo, raw or base64 (EC2's "base64 encoded DER format")."""
    if not text.startswith(b"\x30"):
        text = base64.b64decode(b"".join(text.split()), validate=True)
    return serialization.load_der_public_key(text)


def public_key(material: bytes) -> PublicKey:
    """The public key in ``material`` if EC2 would import it, else InvalidKey.Format."""
    if len(material) > MAX_MATERIAL:
        raise InvalidKeyFormat(NOT_OPENSSH)
    text = material.strip()
    try:
        if text.startswith(SSH2_BEGIN):
            loaded = _ssh2(text)
        elif text.startswith(b"-----BEGIN "):
            loaded = serialization.load_pem_public_key(text)
        elif text.startswith((b"ssh-", b"ecdsa-")):
            loaded = _openssh(text.splitlines()[0])
        else:
            loaded = _der(text)
    except (ValueError, TypeError, IndexError, UnsupportedAlgorithm, binascii.Error):
        raise InvalidKeyFormat(NOT_OPENSSH) from None
    if isinstance(loaded, rsa.RSAPublicKey) and loaded.key_size in RSA_BITS:
        return loaded
    if isinstance(loaded, ed25519.Ed25519PublicKey):
        return loaded
    if isinstance(loaded, ec.EllipticCurvePublicKey) and loaded.curve.name in CURVES:
        return loaded
    raise InvalidKeyFormat(NOT_OPENSSH)


class KeyPairs:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._keys: dict[tuple[str, str], KeyPair] = {}
        for _, account, body in store.load("keypair"):
            key = KeyPair(account, body["name"], body["fingerprint"], body["public_key"])
            self._keys[(account, key.name)] = key

    def get(self, account: str, name: str) -> KeyPair | None:
        return self._keys.get((account, name))

    def _save(self, key: KeyPair) -> None:
        if (key.account, key.name) in self._keys:
            raise InvalidKeyPairDuplicate(f"The keypair '{key.name}' already exists.")
        with self._store.transaction() as tx:
            tx.put("keypair", f"{key.account}/{key.name}", key.account,
                   {"name": key.name, "fingerprint": key.fingerprint, "public_key": key.public_key})
        self._keys[(key.account, key.name)] = key

    def create(self, caller: Caller, name: str) -> dict[str, Any]:
        _check_name(name)
        if (caller.account, name) in self._keys:
            raise InvalidKeyPairDuplicate(f"The keypair '{name}' already exists.")
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pkcs8 = private.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())
        material = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                         serialization.NoEncryption()).decode().strip()
        public = private.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                   serialization.PublicFormat.OpenSSH).decode()
        key = KeyPair(caller.account, name, _colons(hashlib.sha1(pkcs8).digest()), public)
        self._save(key)
        return {"KeyName": name, "KeyFingerprint": key.fingerprint, "KeyMaterial": material}

    def import_(self, caller: Caller, name: str, material: bytes) -> dict[str, Any]:
        _check_name(name)
        loaded = public_key(material)
        der = loaded.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        public = loaded.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
        key = KeyPair(caller.account, name, _colons(hashlib.md5(der).digest()), public)
        self._save(key)
        return {"KeyName": name, "KeyFingerprint": key.fingerprint}

    def describe(self, caller: Caller, names: list[str] | None, filters: Any = None) -> list[dict[str, Any]]:
        from euca.services.common import matches, wanted

        chosen = wanted(filters, ("key-name", "fingerprint"))
        mine = [k for k in self._keys.values() if caller.sees(k.account)]
        if names:
            for name in names:
                if not any(k.name == name for k in mine):
                    raise InvalidKeyPairNotFound(f"The key pair '{name[:255]}' does not exist")
            mine = [k for k in mine if k.name in names]
        out = []
        for k in sorted(mine, key=lambda k: (k.account, k.name)):
            fields = {"key-name": [k.name], "fingerprint": [k.fingerprint]}
            if matches(chosen, lambda n, f=fields: f.get(n, [])):  # type: ignore[misc]
                out.append({"KeyName": k.name, "KeyFingerprint": k.fingerprint})
        return out

    def delete(self, caller: Caller, name: str) -> None:
        key = self._keys.get((caller.account, name))
        if key is None:
            return  # EC2 answers true for a key pair that is not there
        with self._store.transaction() as tx:
            tx.delete("keypair", f"{caller.account}/{name}")
        del self._keys[(caller.account, name)]
