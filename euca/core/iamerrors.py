"""IAM's error codes (Euare), one class per code, with the HTTP status IAM answers each with.

The IAM endpoint renders them as IAM's query-protocol error document
``<ErrorResponse><Error><Type>Sender</Type><Code/><Message/></Error><RequestId/></ErrorResponse>``.
Quota refusals on EC2 actions that EC2 has no code of its own for are here too.
"""

from __future__ import annotations

from euca.core.errors import ApiError


class NoSuchEntity(ApiError):
    code, status = "NoSuchEntity", 404


class EntityAlreadyExists(ApiError):
    code, status = "EntityAlreadyExists", 409


class LimitExceeded(ApiError):
    code, status = "LimitExceeded", 409


class DeleteConflict(ApiError):
    code, status = "DeleteConflict", 409


class MalformedPolicyDocument(ApiError):
    code = "MalformedPolicyDocument"


class MalformedCertificate(ApiError):
    code = "MalformedCertificate"


class DuplicateCertificate(ApiError):
    code, status = "DuplicateCertificate", 409


class ValidationError(ApiError):
    code = "ValidationError"


class InvalidInput(ApiError):
    code = "InvalidInput"


class PasswordPolicyViolation(ApiError):
    code = "PasswordPolicyViolation"


class AccessDenied(ApiError):
    code, status = "AccessDenied", 403


class InvalidClientTokenId(ApiError):
    code, status = "InvalidClientTokenId", 403


class SignatureDoesNotMatch(ApiError):
    code, status = "SignatureDoesNotMatch", 403


class ResourceLimitExceeded(ApiError):
    """A quota (``"Effect": "Limit"``) on an EC2 resource EC2 has no limit code of its own for."""

    code = "ResourceLimitExceeded"
