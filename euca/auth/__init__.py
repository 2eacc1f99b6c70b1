"""Request signing: AWS Signature Version 4 and 2, verified against stored secrets."""

from euca.auth.signing import SignedRequest, verify

__all__ = ["SignedRequest", "verify"]
