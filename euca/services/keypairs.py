"""Key pairs: the SSH key a node injects into an instance (``add_key.pl``), per account and name.

Each key pair has an id (``key-`` and 17 hex digits) that is never issued again, a type (``rsa``
or ``ed25519``), the time it was made or imported, and tags. Fingerprints are computed as AWS
computes them:

- a created RSA key's is the SHA-1 of its PKCS#8 DER private key, an imported RSA key's the MD5 of
  its DER public key (SubjectPublicKeyInfo), both as colon-separated hex;
- an Ed25519 key's, created or imported, is the base64 SHA-256 of its OpenSSH public key blob, as
  OpenSSH 6.8 and later show it but with base64's padding and without the ``SHA256:`` label, as
  EC2 shows it.

ImportKeyPair takes what EC2 takes: an OpenSSH public key line (``ssh-rsa AAAA... comment``), an
RFC 4716 "SSH2" public key file, or a DER SubjectPublicKeyInfo, base64 (or raw); and, as
Eucalyptus did, a PEM public key. RSA keys of 1024 to 4096 bits and Ed25519; EC2 imports no other
type (ECDSA and DSA among them), and the API's ``KeyType`` has no name for one. Anything else is
``InvalidKey.Format``, "Key is not in valid OpenSSH public key format", the code and message EC2
answers, whatever the key library made of it.

CreateKeyPair hands out the private key as EC2 does: ``pem`` is the traditional PKCS#1 PEM for
RSA and the OpenSSH private key format for Ed25519; ``ppk`` is a PuTTY private key file, version 3
(PuTTY 0.75 and later), unencrypted.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import textwrap
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from euca.core.clock import Clock, wall
from euca.core.errors import (
    InvalidKeyFormat,
    InvalidKeyPairDuplicate,
    InvalidKeyPairNotFound,
    MissingParameter,
)
from euca.core.text import check_name, quoted
from euca.services.common import Caller, Ids, matches, tag_fields, tag_list, wanted
from euca.services.tags import Tags
from euca.store import Store, Tx

MAX_MATERIAL = 16384  # bytes of PublicKeyMaterial; a 4096-bit RSA key in any accepted form is under 1 KiB
RSA_BITS = range(1024, 4097)
NOT_OPENSSH = "Key is not in valid OpenSSH public key format"
# The OpenSSH key types EC2 imports; the key library would take DSA and ECDSA too.
SSH_TYPES = (b"ssh-rsa", b"ssh-ed25519")
SSH2_BEGIN, SSH2_END = b"---- BEGIN SSH2 PUBLIC KEY ----", b"---- END SSH2 PUBLIC KEY ----"
FILTERS = ("key-pair-id", "key-name", "fingerprint", "key-type", "tag-key", "tag-value")
RESOURCE_TYPE = "key-pair"
_KEY_STARTS = (b"ssh-", b"----", b"\x30")  # OpenSSH line, SSH2 or PEM file, DER

PublicKey = rsa.RSAPublicKey | ed25519.Ed25519PublicKey
PrivateKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


@dataclass(frozen=True)
class KeyPair:
    key_pair_id: str
    account: str
    name: str
    key_type: str  # "rsa" | "ed25519"
    fingerprint: str
    public_key: str  # OpenSSH format, what the node writes into authorized_keys
    created: float  # seconds since the epoch

    def body(self) -> dict[str, Any]:
        return {"key_pair_id": self.key_pair_id, "name": self.name, "key_type": self.key_type,
                "fingerprint": self.fingerprint, "public_key": self.public_key, "created": self.created}


# --- fingerprints ------------------------------------------------------------------------------------

def _colons(digest: bytes) -> str:
    return ":".join(f"{b:02x}" for b in digest)


def _openssh_line(key: PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)


def _spki(key: PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _sha256_blob(key: PublicKey) -> str:
    return base64.b64encode(hashlib.sha256(base64.b64decode(_openssh_line(key).split()[1])).digest()).decode()


def created_fingerprint(private: PrivateKey) -> str:
    if isinstance(private, ed25519.Ed25519PrivateKey):
        return _sha256_blob(private.public_key())
    pkcs8 = private.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption())
    return _colons(hashlib.sha1(pkcs8).digest())


def imported_fingerprint(key: PublicKey) -> str:
    if isinstance(key, ed25519.Ed25519PublicKey):
        return _sha256_blob(key)
    return _colons(hashlib.md5(_spki(key)).digest())


def key_type(key: PublicKey) -> str:
    return "ed25519" if isinstance(key, ed25519.Ed25519PublicKey) else "rsa"


# --- reading public keys -----------------------------------------------------------------------------

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


def _decoded(text: bytes) -> bytes:
    try:
        return base64.b64decode(b"".join(text.split()), validate=True).strip()
    except (binascii.Error, ValueError):
        return b""


def _unwrapped(material: bytes) -> bytes:
    """The key text itself. boto3 base64-encodes PublicKeyMaterial as the model's blob type says and
    the parser decodes it, as the aws CLI does with ``fileb://``; a client that encoded the key once
    more (EC2's API reference tells API callers to) sends base64 of it, which EC2 takes too."""
    text = material.strip()
    if not text or text.startswith(_KEY_STARTS):
        return text
    inner = _decoded(text)
    if inner.startswith(_KEY_STARTS[:2]) or _decoded(inner).startswith(b"\x30"):
        return inner
    return text


def public_key(material: bytes) -> PublicKey:
    """The public key in ``material`` if EC2 would import it, else InvalidKey.Format."""
    if len(material) > MAX_MATERIAL:
        raise InvalidKeyFormat(NOT_OPENSSH)
    text = _unwrapped(material)
    try:
        if text.startswith(SSH2_BEGIN):
            loaded = _ssh2(text)
        elif text.startswith(b"-----BEGIN "):
            loaded = serialization.load_pem_public_key(text)
        elif text.startswith(b"ssh-"):
            loaded = _openssh(text.splitlines()[0])
        else:
            loaded = _der(text)
    except (ValueError, TypeError, IndexError, UnsupportedAlgorithm, binascii.Error):
        raise InvalidKeyFormat(NOT_OPENSSH) from None
    if isinstance(loaded, rsa.RSAPublicKey) and loaded.key_size in RSA_BITS:
        return loaded
    if isinstance(loaded, ed25519.Ed25519PublicKey):
        return loaded
    raise InvalidKeyFormat(NOT_OPENSSH)


# --- private keys handed out ---------------------------------------------------------------------------

def _ssh_string(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


def _mpint(value: int) -> bytes:
    """SSH's mpint of a positive number: big-endian, a leading zero byte when the top bit is set."""
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return _ssh_string(b"\x00" + raw if raw and raw[0] & 0x80 else raw)


def ppk(private: PrivateKey, comment: str) -> str:
    """A PuTTY-User-Key-File-3, unencrypted: public and private blobs in base64 lines of 64, and an
    HMAC-SHA-256 (with an empty key, as PuTTY uses for a file without a passphrase) over the
    algorithm, encryption, comment and both blobs."""
    public = base64.b64decode(_openssh_line(private.public_key()).split()[1])
    algorithm = public[4:4 + int.from_bytes(public[:4], "big")]
    if isinstance(private, ed25519.Ed25519PrivateKey):
        seed = private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                     serialization.NoEncryption())
        # PuTTY keeps the EdDSA private key as a little-endian integer, written without high zero bytes
        secret = _ssh_string(seed.rstrip(b"\x00"))
    else:
        n = private.private_numbers()
        secret = b"".join(_mpint(v) for v in (n.d, n.p, n.q, n.iqmp))
    encryption, note = b"none", comment.encode()
    mac = hmac.new(b"", b"".join(_ssh_string(x) for x in (algorithm, encryption, note, public, secret)),
                   hashlib.sha256).hexdigest()
    public_lines = textwrap.wrap(base64.b64encode(public).decode(), 64)
    private_lines = textwrap.wrap(base64.b64encode(secret).decode(), 64)
    return "\n".join([f"PuTTY-User-Key-File-3: {algorithm.decode()}", f"Encryption: {encryption.decode()}",
                      f"Comment: {comment}", f"Public-Lines: {len(public_lines)}", *public_lines,
                      f"Private-Lines: {len(private_lines)}", *private_lines, f"Private-MAC: {mac}", ""])


def pem(private: PrivateKey) -> str:
    fmt = (serialization.PrivateFormat.OpenSSH if isinstance(private, ed25519.Ed25519PrivateKey)
           else serialization.PrivateFormat.TraditionalOpenSSL)
    return private.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()).decode().strip()


# --- the service -------------------------------------------------------------------------------------

def _check_name(name: str) -> None:
    check_name("KeyName", name, 255, ascii_only=True)


class KeyPairs:
    def __init__(self, store: Store, ids: Ids, tags: Tags, clock: Clock = wall) -> None:
        self._store, self._ids, self._tags, self._clock = store, ids, tags, clock
        self._keys: dict[tuple[str, str], KeyPair] = {}
        self._by_id: dict[str, KeyPair] = {}
        legacy: list[tuple[str, str, dict[str, Any]]] = []
        for record_id, account, body in store.load("keypair"):
            if "key_pair_id" not in body:
                legacy.append((record_id, account, body))
                continue
            self._remember(KeyPair(body["key_pair_id"], account, body["name"], body["key_type"],
                                   body["fingerprint"], body["public_key"], body["created"]))
        if legacy:
            self._give_ids(legacy)
        tags.add_resolver(self._resolve)

    def _give_ids(self, legacy: list[tuple[str, str, dict[str, Any]]]) -> None:
        """Key pairs stored before they had ids (keyed by account and name) get one, once."""
        now = self._clock()
        with self._store.transaction() as tx:
            added = []
            for record_id, account, body in legacy:
                kind = "ed25519" if body["public_key"].startswith("ssh-ed25519 ") else "rsa"
                key = KeyPair(self._ids.new_long("key", tx), account, body["name"], kind, body["fingerprint"],
                              body["public_key"], now)
                tx.delete("keypair", record_id)
                tx.put("keypair", key.key_pair_id, account, key.body())
                added.append(key)
        for key in added:
            self._remember(key)

    def _remember(self, key: KeyPair) -> None:
        self._keys[(key.account, key.name)] = key
        self._by_id[key.key_pair_id] = key

    def _resolve(self, caller: Caller, resource: str) -> tuple[str, str] | None:
        key = self._by_id.get(resource)
        return (key.account, RESOURCE_TYPE) if key is not None and caller.sees(key.account) else None

    def get(self, account: str, name: str) -> KeyPair | None:
        return self._keys.get((account, name))

    def _save(self, caller: Caller, name: str, kind: str, fingerprint: str, public: str,
              tags: list[tuple[str, str]]) -> KeyPair:
        if (caller.account, name) in self._keys:
            raise InvalidKeyPairDuplicate(f"The keypair '{name}' already exists.")
        with self._store.transaction() as tx:
            key = KeyPair(self._ids.new_long("key", tx), caller.account, name, kind, fingerprint, public,
                          self._clock())
            tx.put("keypair", key.key_pair_id, key.account, key.body())
            if tags:
                self._tags.write(tx, [(key.key_pair_id, key.account)], tags)
            tx.on_commit(lambda: self._remember(key))
        return key

    def create(self, caller: Caller, name: str, kind: str | None = None, fmt: str | None = None,
               tag_specs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        _check_name(name)
        kind, fmt = kind or "rsa", fmt or "pem"
        tags = Tags.specified(tag_specs, RESOURCE_TYPE)
        if (caller.account, name) in self._keys:
            raise InvalidKeyPairDuplicate(f"The keypair '{name}' already exists.")
        private: PrivateKey = (ed25519.Ed25519PrivateKey.generate() if kind == "ed25519"
                               else rsa.generate_private_key(public_exponent=65537, key_size=2048))
        public = _openssh_line(private.public_key()).decode()
        key = self._save(caller, name, kind, created_fingerprint(private), public, tags)
        material = ppk(private, name) if fmt == "ppk" else pem(private)
        return {"KeyPairId": key.key_pair_id, "KeyName": name, "KeyFingerprint": key.fingerprint,
                "KeyMaterial": material, "Tags": tag_list(dict(tags))}

    def import_(self, caller: Caller, name: str, material: bytes,
                tag_specs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        _check_name(name)
        tags = Tags.specified(tag_specs, RESOURCE_TYPE)
        loaded = public_key(material)
        public = _openssh_line(loaded).decode()
        key = self._save(caller, name, key_type(loaded), imported_fingerprint(loaded), public, tags)
        return {"KeyPairId": key.key_pair_id, "KeyName": name, "KeyFingerprint": key.fingerprint,
                "Tags": tag_list(dict(tags))}

    def describe(self, caller: Caller, names: list[str] | None = None, key_ids: list[str] | None = None,
                 filters: Any = None, include_public_key: bool = False) -> list[dict[str, Any]]:
        chosen = wanted(filters, FILTERS)
        mine = [k for k in self._keys.values() if caller.sees(k.account)]
        if names:
            for name in names:
                if not any(k.name == name for k in mine):
                    raise InvalidKeyPairNotFound(f"The key pair '{quoted(name, 255)}' does not exist")
            mine = [k for k in mine if k.name in names]
        if key_ids:
            for key_id in key_ids:
                if not any(k.key_pair_id == key_id for k in mine):
                    raise InvalidKeyPairNotFound(f"The key pair '{quoted(key_id, 64)}' does not exist")
            mine = [k for k in mine if k.key_pair_id in key_ids]
        out = []
        for k in sorted(mine, key=lambda k: (k.account, k.name)):
            tags = self._tags.of(k.key_pair_id)
            fields = {"key-pair-id": [k.key_pair_id], "key-name": [k.name], "fingerprint": [k.fingerprint],
                      "key-type": [k.key_type]}

            def field(name: str, fields: dict[str, list[str]] = fields, tags: Any = tags) -> list[str]:
                return fields.get(name) or tag_fields(tags, name)
            if matches(chosen, field):
                out.append({"KeyPairId": k.key_pair_id, "KeyName": k.name, "KeyFingerprint": k.fingerprint,
                            "KeyType": k.key_type, "Tags": tag_list(tags), "CreateTime": k.created,
                            "PublicKey": k.public_key if include_public_key else None})
        return out

    def delete(self, caller: Caller, name: str | None, key_id: str | None) -> dict[str, Any]:
        """EC2 answers true for a key name that is not there; an id names one key pair, so an id the
        caller has not got is not found."""
        if not name and not key_id:
            raise MissingParameter("The request must contain the parameter KeyName or KeyPairId")
        if key_id:
            key = self._by_id.get(key_id)
            if key is None or key.account != caller.account or (name and key.name != name):
                raise InvalidKeyPairNotFound(f"The key pair '{quoted(key_id)}' does not exist")
        else:
            key = self._keys.get((caller.account, name or ""))
            if key is None:
                return {"Return": True}
        with self._store.transaction() as tx:
            self._forget(tx, key)
        return {"Return": True, "KeyPairId": key.key_pair_id}

    def _forget(self, tx: Tx, key: KeyPair) -> None:
        tx.delete("keypair", key.key_pair_id)
        self._tags.drop_in(tx, key.key_pair_id)

        def gone() -> None:
            self._keys.pop((key.account, key.name), None)
            self._by_id.pop(key.key_pair_id, None)
        tx.on_commit(gone)
