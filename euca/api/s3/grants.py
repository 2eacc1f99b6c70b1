"""ACLs on the wire: ``x-amz-acl`` / ``x-amz-grant-*`` headers and AccessControlPolicy documents,
to and from ``euca.walrus.Acl``."""

from __future__ import annotations

from typing import Any

from euca.core.s3errors import InvalidArgument, InvalidRequest, MalformedXML
from euca.walrus import Acl, Grant, Requester, canonical_id
from euca.walrus.acl import CANNED, GROUPS
from euca.walrus.service import Directory

_GRANT_HEADERS = {"x-amz-grant-read": "READ", "x-amz-grant-write": "WRITE", "x-amz-grant-read-acp": "READ_ACP",
                  "x-amz-grant-write-acp": "WRITE_ACP", "x-amz-grant-full-control": "FULL_CONTROL"}


def _grantee(kind: str, value: str, directory: Directory) -> Grant | None:
    value = value.strip().strip('"')
    if kind == "uri":
        if value not in GROUPS:
            raise InvalidArgument(f"Invalid group uri: {value}", ArgumentName="uri")
        return Grant("group", value, "")
    if kind == "id":
        if directory.by_canonical_id(value) is None and directory.by_account_id(value) is None:
            raise InvalidArgument("Invalid id", ArgumentName="id", ArgumentValue=value)
        found = directory.by_account_id(value)
        return Grant("user", found.canonical_id if found else value, "")
    if kind == "emailaddress":
        raise InvalidArgument("Grants by email address are not supported by this cloud", ArgumentName="emailAddress")
    raise InvalidArgument(f"Invalid grantee type: {kind}")


def from_headers(headers: dict[str, str], directory: Directory) -> Acl | str | None:
    """The ACL a request's headers ask for: a canned name, explicit grants, or None (the default)."""
    canned = headers.get("x-amz-acl")
    grants: list[Grant] = []
    for header, permission in _GRANT_HEADERS.items():
        for item in headers.get(header, "").split(","):
            if not item.strip():
                continue
            kind, sep, value = item.strip().partition("=")
            if not sep:
                raise InvalidArgument(f"Invalid grant: {item.strip()}", ArgumentName=header)
            found = _grantee(kind.strip().lower(), value, directory)
            if found is not None:
                grants.append(Grant(found.kind, found.grantee, permission))
    if canned is not None and grants:
        raise InvalidRequest("Specifying both Canned ACLs and Header Grants is not allowed")
    if canned is not None:
        if canned not in CANNED:
            raise InvalidArgument(f"Invalid canned ACL: {canned}", ArgumentName="x-amz-acl")
        return canned
    return Acl("", tuple(grants)) if grants else None


def from_document(doc: dict[str, Any], directory: Directory) -> Acl:
    grants: list[Grant] = []
    for item in doc.get("Grants", []):
        grantee, permission = item.get("Grantee") or {}, item.get("Permission", "")
        kind = grantee.get("Type", "")
        if kind == "CanonicalUser" and grantee.get("ID"):
            found = _grantee("id", grantee["ID"], directory)
        elif kind == "Group" and grantee.get("URI"):
            found = _grantee("uri", grantee["URI"], directory)
        elif kind == "AmazonCustomerByEmail":
            found = _grantee("emailaddress", grantee.get("EmailAddress", ""), directory)
        else:
            raise MalformedXML()
        assert found is not None
        grants.append(Grant(found.kind, found.grantee, permission))
    return Acl("", tuple(grants))


def to_document(acl: Acl, directory: Directory) -> dict[str, Any]:
    def owner(cid: str) -> dict[str, str]:
        found: Requester | None = directory.by_canonical_id(cid)
        return {"ID": cid, "DisplayName": found.account if found else ""}

    grants = []
    for g in acl.grants:
        if g.kind == "group":
            grantee: dict[str, str] = {"Type": "Group", "URI": g.grantee}
        else:
            grantee = {"Type": "CanonicalUser", **owner(g.grantee)}
        grants.append({"Grantee": grantee, "Permission": g.permission})
    return {"Owner": owner(acl.owner), "Grants": grants}


def owner_of(account_id: str, directory: Directory) -> dict[str, str]:
    found = directory.by_account_id(account_id)
    return {"ID": canonical_id(account_id), "DisplayName": found.account if found else ""}
