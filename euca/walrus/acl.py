"""Access-control lists: canned ACLs, explicit grants, and who may do what.

An ACL names its owner and a list of grants; a grantee is an account (by canonical id) or one of
S3's two groups. The owner of a bucket or object may always read and change its ACL. Eucalyptus's
two canned ACLs for images, ``aws-exec-read`` and ``ec2-bundle-read``, let the cloud's
administrator (who registers and decrypts images) read beside the owner.
"""

from __future__ import annotations

from collections.abc import Iterable

from euca.core.s3errors import AccessDenied, InvalidArgument
from euca.walrus.model import Acl, Grant, Requester

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
AUTHENTICATED_USERS = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"
LOG_DELIVERY = "http://acs.amazonaws.com/groups/s3/LogDelivery"
GROUPS = (ALL_USERS, AUTHENTICATED_USERS, LOG_DELIVERY)

FULL_CONTROL, READ, WRITE, READ_ACP, WRITE_ACP = "FULL_CONTROL", "READ", "WRITE", "READ_ACP", "WRITE_ACP"
PERMISSIONS = (FULL_CONTROL, READ, WRITE, READ_ACP, WRITE_ACP)

CANNED = ("private", "public-read", "public-read-write", "authenticated-read", "bucket-owner-read",
          "bucket-owner-full-control", "log-delivery-write", "aws-exec-read", "ec2-bundle-read")
NAMING_BUCKET_OWNER = frozenset(("bucket-owner-read", "bucket-owner-full-control"))
NAMING_ADMIN = frozenset(("aws-exec-read", "ec2-bundle-read"))


def canned(name: str, owner: str, bucket_owner: str = "", admin: str = "") -> Acl:
    """The ACL a canned name stands for; ``owner``, ``bucket_owner`` and ``admin`` are canonical ids."""
    grants = [Grant("user", owner, FULL_CONTROL)]
    if name == "public-read":
        grants.append(Grant("group", ALL_USERS, READ))
    elif name == "public-read-write":
        grants += [Grant("group", ALL_USERS, READ), Grant("group", ALL_USERS, WRITE)]
    elif name == "authenticated-read":
        grants.append(Grant("group", AUTHENTICATED_USERS, READ))
    elif name == "bucket-owner-read":
        if bucket_owner and bucket_owner != owner:
            grants.append(Grant("user", bucket_owner, READ))
    elif name == "bucket-owner-full-control":
        if bucket_owner and bucket_owner != owner:
            grants.append(Grant("user", bucket_owner, FULL_CONTROL))
    elif name == "log-delivery-write":
        grants += [Grant("group", LOG_DELIVERY, WRITE), Grant("group", LOG_DELIVERY, READ_ACP)]
    elif name in ("aws-exec-read", "ec2-bundle-read"):
        if admin and admin != owner:
            grants.append(Grant("user", admin, READ))
    elif name != "private":
        raise InvalidArgument(f"Invalid canned ACL: {name}", ArgumentName="x-amz-acl")
    return Acl(owner, tuple(grants))


def _matches(grant: Grant, who: Requester | None) -> bool:
    if grant.kind == "group":
        return grant.grantee == ALL_USERS or (grant.grantee == AUTHENTICATED_USERS and who is not None)
    return who is not None and grant.grantee == who.canonical_id


def allows(acl: Acl, who: Requester | None, permission: str) -> bool:
    if who is not None and acl.owner == who.canonical_id and permission in (READ_ACP, WRITE_ACP):
        return True
    return any(g.permission in (permission, FULL_CONTROL) and _matches(g, who) for g in acl.grants)


def require(acl: Acl, who: Requester | None, permission: str) -> None:
    if not allows(acl, who, permission):
        raise AccessDenied()


def check_grants(grants: Iterable[Grant]) -> tuple[Grant, ...]:
    out = []
    for g in grants:
        if g.permission not in PERMISSIONS:
            raise InvalidArgument(f"Invalid permission: {g.permission}")
        if g.kind == "group" and g.grantee not in GROUPS:
            raise InvalidArgument(f"Invalid group uri: {g.grantee}", ArgumentName="uri")
        out.append(g)
    return tuple(out)

