"""Signing certificates users upload (IAM's UploadSigningCertificate), read as X.509 PEM."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from euca.core.iamerrors import MalformedCertificate


def certificate_id(pem: str) -> str:
    """The certificate's id: its SHA-1 fingerprint in upper-case hex (the same certificate always
    has the same id); MalformedCertificate if ``pem`` is not one PEM certificate."""
    try:
        cert = x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        raise MalformedCertificate("The certificate is not a valid PEM-encoded X.509 certificate.") from None
    return cert.fingerprint(hashes.SHA1()).hex().upper()  # an identifier, not a signature
