"""Signatures over the instance identity document, with the cloud's key (``cloud-pk.pem``).

``pkcs7`` (and ``rsa2048``) is a detached PKCS#7 signature carrying the cloud's certificate, as EC2
prints it: base64 without the PEM armour; ``signature`` is the bare RSA signature (SHA-256,
PKCS#1 v1.5). Anyone holding ``cloud-cert.pem`` can check that a document came from this cloud.
"""

from __future__ import annotations

import base64
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.serialization import pkcs7

from euca.auth.certs import Credentials, load_certificate, load_private_key


class IdentitySigner:
    def __init__(self, credentials: Credentials) -> None:
        self.certificate = load_certificate(credentials.cert)
        self._key = load_private_key(credentials.key)

    def secret(self) -> bytes:
        """Key material for other MACs this cloud makes (IMDSv2 tokens): the same in every worker
        and after a restart, because it comes from the cloud's own key."""
        der = self._key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())
        digest = hashes.Hash(hashes.SHA256())
        digest.update(b"euca imdsv2 tokens\0" + der)
        return digest.finalize()

    def __call__(self, document: bytes) -> tuple[str, str]:
        signed = (pkcs7.PKCS7SignatureBuilder().set_data(document)
                  .add_signer(self.certificate, self._key, hashes.SHA256())
                  .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.DetachedSignature]))
        text = base64.b64encode(signed).decode()
        armourless = "\n".join(text[i:i + 64] for i in range(0, len(text), 64))
        bare = self._key.sign(document, padding.PKCS1v15(), hashes.SHA256())
        return armourless, base64.b64encode(bare).decode()


def signer_for(data_dir: Path) -> IdentitySigner:
    from euca.auth.certs import cloud_credentials

    return IdentitySigner(cloud_credentials(data_dir))
