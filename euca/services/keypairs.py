"""Key pairs: the SSH key a node injects into an instance (``add_key.pl``), per account and name.

Fingerprints are computed as AWS computes them: a created key's is the SHA-1 of the PKCS#8 DER
private key, an imported key's the MD5 of the DER public key, both as colon-separated hex.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from euca.core.errors import (
    InvalidKeyFormat,
    InvalidKeyPairDuplicate,
    InvalidKeyPairNotFound,
    InvalidParameterValue,
)
from euca.services.common import Caller
from euca.store import Store


@dataclass(frozen=True)
class KeyPair:
    account: str
    name: str
    fingerprint: str
    public_key: str  # OpenSSH format, what the node writes into authorized_keys


def _colons(digest: bytes) -> str:
    return ":".join(f"{b:02x}" for b in digest)


def _check_name(name: str) -> None:
    if not 1 <= len(name) <= 255 or not name.isascii() or not name.isprintable():
        raise InvalidParameterValue("key pair names are 1-255 printable ASCII characters")


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
        if len(material) > 16384:
            raise InvalidKeyFormat("Key is too long")
        try:
            if material.lstrip().startswith(b"-----"):
                loaded: Any = serialization.load_pem_public_key(material)
            elif material.lstrip().startswith((b"ssh-", b"ecdsa-")):
                loaded = serialization.load_ssh_public_key(material.strip().split(b"\n")[0])
            else:
                loaded = serialization.load_der_public_key(material)
        except (ValueError, TypeError, IndexError):
            raise InvalidKeyFormat("Key is not in valid OpenSSH public key format") from None
        if not isinstance(loaded, (rsa.RSAPublicKey, ed25519.Ed25519PublicKey, ec.EllipticCurvePublicKey)):
            raise InvalidKeyFormat("Key type is not supported")
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
