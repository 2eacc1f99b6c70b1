"""Euare's pieces that stand apart from the directory: login passwords and signing certificates.

The directory itself (accounts, users, groups, keys, policies) is ``euca.services.accounts``, where
every EC2 service can reach it; the IAM endpoint is ``euca.api.iam``; the policy engine is
``euca.auth.policy``.
"""

from euca.iam.certificates import certificate_id
from euca.iam.passwords import check_password, hash_password

__all__ = ["certificate_id", "check_password", "hash_password"]
