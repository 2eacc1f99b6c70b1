"""Login profile passwords, kept only as Argon2id hashes (argon2-cffi, the Password Hashing
Competition's winner with the parameters its authors recommend)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from euca.core.iamerrors import PasswordPolicyViolation

MIN_LENGTH = 8  # IAM's default password policy
MAX_LENGTH = 128

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    """The hash to store, or PasswordPolicyViolation for a password too short or too long."""
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        raise PasswordPolicyViolation(f"Password should have at least {MIN_LENGTH} and at most {MAX_LENGTH} "
                                      "characters")
    return _hasher.hash(password)


def check_password(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False
