"""The IAM (Euare) endpoint at ``/services/Euare``: AWS's query protocol, driven by botocore's ``iam`` model.

The EC2 pipeline's steps with IAM's words: a Version 4 signature for service ``iam`` over the
body (an unknown key is ``InvalidClientTokenId``, a wrong signature ``SignatureDoesNotMatch``),
the parameters parsed against the operation's input shape (``Name.member.N`` lists), the policy
engine's decision on ``iam:<Action>`` for the user or group the request names (``AccessDenied``),
then the handler. Every action works in the caller's own account. Eucalyptus's account actions
(``CreateAccount``, ``ListAccounts``, ``DeleteAccount``) are the system administrator's and are not
in botocore's model: their few parameters are read by hand and their answers written by hand.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import botocore.session
from botocore.model import OperationModel, ServiceModel
from starlette.types import Receive, Scope, Send

from euca.api import query, xml
from euca.api.app import _request_id, form_params, read_body
from euca.api.authorize import source_ip
from euca.auth import SignedRequest, verify
from euca.core.errors import (
    ApiError,
    AuthFailure,
    InternalError,
    InvalidParameter,
    InvalidParameterValue,
    MissingParameter,
    UnknownParameter,
)
from euca.core.iamerrors import (
    AccessDenied,
    InvalidClientTokenId,
    InvalidInput,
    NoSuchEntity,
    SignatureDoesNotMatch,
    ValidationError,
)
from euca.core.text import quoted
from euca.iam import certificate_id, hash_password
from euca.services.accounts import AccessKey, Certificate, Group, Holder, User
from euca.services.cloud import Cloud
from euca.services.common import ADMIN, Caller

log = logging.getLogger("euca.api.iam")

PREFIX = "/services/Euare"
_HEADERS = [(b"content-type", b"text/xml;charset=UTF-8")]
ACCOUNT_ACTIONS = ("CreateAccount", "ListAccounts", "DeleteAccount")

_model: ServiceModel | None = None


def iam_model() -> ServiceModel:
    global _model
    if _model is None:
        _model = botocore.session.get_session().get_service_model("iam")
    return _model


class Call:
    """One authorized request: the directory, the caller, its parsed parameters."""

    def __init__(self, cloud: Cloud, caller: Caller, params: dict[str, Any]) -> None:
        self.cloud, self.caller, self.p = cloud, caller, params
        self.accounts = cloud.accounts
        self.account = caller.account

    @property
    def user_name(self) -> str:
        """The user a request names, else the caller (IAM's default for keys and certificates)."""
        return str(self.p.get("UserName") or self.caller.user)


Handler = Callable[[Call], dict[str, Any]]


def _date(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch or 0, UTC)


def _user(call: Call, user: User) -> dict[str, Any]:
    return {"Path": user.path, "UserName": user.name, "UserId": user.user_id,
            "Arn": user.arn(call.caller.account_id), "CreateDate": _date(user.created)}


def _group(call: Call, group: Group) -> dict[str, Any]:
    return {"Path": group.path, "GroupName": group.name, "GroupId": group.group_id,
            "Arn": group.arn(call.caller.account_id), "CreateDate": _date(group.created)}


def _key(key: AccessKey, secret: bool = False) -> dict[str, Any]:
    out = {"UserName": key.user, "AccessKeyId": key.access_key, "Status": "Active" if key.active else "Inactive",
           "CreateDate": _date(key.created)}
    if secret:
        out["SecretAccessKey"] = key.secret_key
    return out


def _cert(cert: Certificate) -> dict[str, Any]:
    return {"UserName": cert.user, "CertificateId": cert.cert_id, "CertificateBody": cert.pem,
            "Status": "Active" if cert.active else "Inactive", "UploadDate": _date(cert.uploaded)}


def _page(call: Call, items: list[Any], field: str) -> dict[str, Any]:
    """IAM's paging: MaxItems, and Marker as the opaque offset of the next page."""
    start = 0
    marker = call.p.get("Marker")
    if marker:
        try:
            start = int(base64.urlsafe_b64decode(str(marker).encode()).decode())
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise ValidationError("Invalid Marker") from None
        if not 0 <= start <= len(items):
            raise ValidationError("Invalid Marker")
    most = int(call.p.get("MaxItems") or 100)
    end = min(len(items), start + most)
    out: dict[str, Any] = {field: items[start:end], "IsTruncated": end < len(items)}
    if end < len(items):
        out["Marker"] = base64.urlsafe_b64encode(str(end).encode()).decode()
    return out


# --- users and groups --------------------------------------------------------------------------------

def create_user(call: Call) -> dict[str, Any]:
    return {"User": _user(call, call.accounts.create_user(call.account, call.p["UserName"],
                                                          call.p.get("Path") or "/"))}


def get_user(call: Call) -> dict[str, Any]:
    return {"User": _user(call, call.accounts.user(call.account, call.user_name))}


def list_users(call: Call) -> dict[str, Any]:
    users = call.accounts.users(call.account, call.p.get("PathPrefix") or "/")
    return _page(call, [_user(call, u) for u in users], "Users")


def update_user(call: Call) -> dict[str, Any]:
    call.accounts.update_user(call.account, call.p["UserName"], call.p.get("NewUserName"), call.p.get("NewPath"))
    return {}


def delete_user(call: Call) -> dict[str, Any]:
    call.accounts.delete_user(call.account, call.p["UserName"])
    return {}


def create_group(call: Call) -> dict[str, Any]:
    return {"Group": _group(call, call.accounts.create_group(call.account, call.p["GroupName"],
                                                             call.p.get("Path") or "/"))}


def get_group(call: Call) -> dict[str, Any]:
    group = call.accounts.group(call.account, call.p["GroupName"])
    members = [call.accounts.user(call.account, name) for name in group.users]
    return {"Group": _group(call, group), **_page(call, [_user(call, u) for u in members], "Users")}


def list_groups(call: Call) -> dict[str, Any]:
    groups = call.accounts.groups(call.account, call.p.get("PathPrefix") or "/")
    return _page(call, [_group(call, g) for g in groups], "Groups")


def delete_group(call: Call) -> dict[str, Any]:
    call.accounts.delete_group(call.account, call.p["GroupName"])
    return {}


def add_user_to_group(call: Call) -> dict[str, Any]:
    call.accounts.add_to_group(call.account, call.p["GroupName"], call.p["UserName"])
    return {}


def remove_user_from_group(call: Call) -> dict[str, Any]:
    call.accounts.remove_from_group(call.account, call.p["GroupName"], call.p["UserName"])
    return {}


def list_groups_for_user(call: Call) -> dict[str, Any]:
    user = call.accounts.user(call.account, call.p["UserName"])
    return _page(call, [_group(call, g) for g in call.accounts.groups_of(call.account, user.name)], "Groups")


# --- access keys, login profiles, signing certificates -------------------------------------------------

def create_access_key(call: Call) -> dict[str, Any]:
    return {"AccessKey": _key(call.accounts.create_user_key(call.account, call.user_name), secret=True)}


def list_access_keys(call: Call) -> dict[str, Any]:
    user = call.accounts.user(call.account, call.user_name)
    return _page(call, [_key(k) for k in call.accounts.user_keys(call.account, user.name)], "AccessKeyMetadata")


def update_access_key(call: Call) -> dict[str, Any]:
    call.accounts.set_user_key_active(call.account, call.user_name, call.p["AccessKeyId"],
                                      call.p["Status"] == "Active")
    return {}


def delete_access_key(call: Call) -> dict[str, Any]:
    call.accounts.delete_user_key(call.account, call.user_name, call.p["AccessKeyId"])
    return {}


def get_access_key_last_used(call: Call) -> dict[str, Any]:
    access_key = call.p["AccessKeyId"]
    key: AccessKey | None = None
    for user in call.accounts.users(call.account):
        for k in call.accounts.user_keys(call.account, user.name):
            if k.access_key == access_key:
                key = k
    if key is None:
        raise AccessDenied(f"The access key {access_key} does not belong to your account.")
    used = call.accounts.last_used(access_key)
    last: dict[str, Any] = {"ServiceName": "N/A", "Region": "N/A"}
    if used is not None:
        last = {"LastUsedDate": _date(used[0]), "ServiceName": used[1] or "N/A", "Region": used[2] or "N/A"}
    return {"UserName": key.user, "AccessKeyLastUsed": last}


def _login(user: User) -> dict[str, Any]:
    assert user.login is not None
    return {"UserName": user.name, "CreateDate": _date(user.login.get("created", 0.0)),
            "PasswordResetRequired": bool(user.login.get("reset"))}


def create_login_profile(call: Call) -> dict[str, Any]:
    user = call.accounts.user(call.account, call.user_name)
    if user.login is not None:
        call.accounts.set_login(call.account, user.name, None, False, create=True)  # EntityAlreadyExists
    call.accounts.set_login(call.account, user.name, hash_password(call.p["Password"]),
                            bool(call.p.get("PasswordResetRequired")), create=True)
    return {"LoginProfile": _login(call.accounts.user(call.account, user.name))}


def get_login_profile(call: Call) -> dict[str, Any]:
    user = call.accounts.user(call.account, call.user_name)
    if user.login is None:
        raise NoSuchEntity(f"Login Profile for User {user.name} cannot be found.")
    return {"LoginProfile": _login(user)}


def update_login_profile(call: Call) -> dict[str, Any]:
    user = call.accounts.user(call.account, call.user_name)
    password = call.p.get("Password")
    reset = call.p.get("PasswordResetRequired")
    if user.login is None:
        raise NoSuchEntity(f"Login Profile for User {user.name} cannot be found.")
    call.accounts.set_login(call.account, user.name, hash_password(password) if password is not None else None,
                            bool(user.login.get("reset")) if reset is None else bool(reset), create=False)
    return {}


def delete_login_profile(call: Call) -> dict[str, Any]:
    call.accounts.delete_login(call.account, call.user_name)
    return {}


def upload_signing_certificate(call: Call) -> dict[str, Any]:
    pem = call.p["CertificateBody"]
    return {"Certificate": _cert(call.accounts.add_certificate(call.account, call.user_name, certificate_id(pem),
                                                               pem))}


def list_signing_certificates(call: Call) -> dict[str, Any]:
    user = call.accounts.user(call.account, call.user_name)
    return _page(call, [_cert(c) for c in call.accounts.certificates(call.account, user.name)], "Certificates")


def update_signing_certificate(call: Call) -> dict[str, Any]:
    call.accounts.set_certificate_active(call.account, call.user_name, call.p["CertificateId"],
                                         call.p["Status"] == "Active")
    return {}


def delete_signing_certificate(call: Call) -> dict[str, Any]:
    call.accounts.delete_certificate(call.account, call.user_name, call.p["CertificateId"])
    return {}


# --- inline policies -----------------------------------------------------------------------------------

def _holder(kind: Holder, field: str) -> tuple[Handler, Handler, Handler, Handler]:
    """Put, Get, List and Delete of a user's or a group's inline policies."""

    def put(call: Call) -> dict[str, Any]:
        call.accounts.put_policy(kind, call.account, call.p[field], call.p["PolicyName"], call.p["PolicyDocument"])
        return {}

    def get(call: Call) -> dict[str, Any]:
        name = call.p[field]
        text = call.accounts.policy(kind, call.account, name, call.p["PolicyName"])
        # IAM answers the document URL-encoded; botocore decodes it for the caller
        return {field: name, "PolicyName": call.p["PolicyName"], "PolicyDocument": quote(text, safe="")}

    def listing(call: Call) -> dict[str, Any]:
        return _page(call, sorted(call.accounts.policies(kind, call.account, call.p[field])), "PolicyNames")

    def delete(call: Call) -> dict[str, Any]:
        call.accounts.delete_policy(kind, call.account, call.p[field], call.p["PolicyName"])
        return {}
    return put, get, listing, delete


_user_policy = _holder("user", "UserName")
_group_policy = _holder("group", "GroupName")


def list_attached_user_policies(call: Call) -> dict[str, Any]:
    call.accounts.user(call.account, call.p["UserName"])
    return {"AttachedPolicies": [], "IsTruncated": False}


def list_attached_group_policies(call: Call) -> dict[str, Any]:
    call.accounts.group(call.account, call.p["GroupName"])
    return {"AttachedPolicies": [], "IsTruncated": False}


# --- the account ---------------------------------------------------------------------------------------

def create_account_alias(call: Call) -> dict[str, Any]:
    call.accounts.set_alias(call.account, call.p["AccountAlias"])
    return {}


def delete_account_alias(call: Call) -> dict[str, Any]:
    account = call.accounts.get(call.account)
    if account is None or account.alias != call.p["AccountAlias"]:
        raise NoSuchEntity(f"The account alias {call.p['AccountAlias']} cannot be found.")
    call.accounts.set_alias(call.account, None)
    return {}


def list_account_aliases(call: Call) -> dict[str, Any]:
    account = call.accounts.get(call.account)
    return {"AccountAliases": [account.alias] if account and account.alias else [], "IsTruncated": False}


def get_account_summary(call: Call) -> dict[str, Any]:
    return {"SummaryMap": call.accounts.summary(call.account)}


ACTIONS: dict[str, Handler] = {
    "CreateUser": create_user, "GetUser": get_user, "ListUsers": list_users, "UpdateUser": update_user,
    "DeleteUser": delete_user,
    "CreateGroup": create_group, "GetGroup": get_group, "ListGroups": list_groups, "DeleteGroup": delete_group,
    "AddUserToGroup": add_user_to_group, "RemoveUserFromGroup": remove_user_from_group,
    "ListGroupsForUser": list_groups_for_user,
    "CreateAccessKey": create_access_key, "ListAccessKeys": list_access_keys, "UpdateAccessKey": update_access_key,
    "DeleteAccessKey": delete_access_key, "GetAccessKeyLastUsed": get_access_key_last_used,
    "CreateLoginProfile": create_login_profile, "GetLoginProfile": get_login_profile,
    "UpdateLoginProfile": update_login_profile, "DeleteLoginProfile": delete_login_profile,
    "UploadSigningCertificate": upload_signing_certificate, "ListSigningCertificates": list_signing_certificates,
    "UpdateSigningCertificate": update_signing_certificate, "DeleteSigningCertificate": delete_signing_certificate,
    **dict(zip(("PutUserPolicy", "GetUserPolicy", "ListUserPolicies", "DeleteUserPolicy"), _user_policy,
               strict=True)),
    **dict(zip(("PutGroupPolicy", "GetGroupPolicy", "ListGroupPolicies", "DeleteGroupPolicy"), _group_policy,
               strict=True)),
    "ListAttachedUserPolicies": list_attached_user_policies,
    "ListAttachedGroupPolicies": list_attached_group_policies,
    "CreateAccountAlias": create_account_alias, "DeleteAccountAlias": delete_account_alias,
    "ListAccountAliases": list_account_aliases, "GetAccountSummary": get_account_summary,
}
# actions that name a user by default when UserName is left out (the caller)
_CALLER_DEFAULT = frozenset({"GetUser", "CreateAccessKey", "ListAccessKeys", "UpdateAccessKey", "DeleteAccessKey",
                             "UploadSigningCertificate", "ListSigningCertificates", "UpdateSigningCertificate",
                             "DeleteSigningCertificate"})


# --- Eucalyptus's account actions -------------------------------------------------------------------

def _account_action(cloud: Cloud, action: str, params: dict[str, str], request_id: str, namespace: str) -> bytes:
    extra = set(params) - query.AUTH_PARAMS - {"AccountName", "Recursive"}
    if extra:
        raise UnknownParameter(f"The parameter {quoted(sorted(extra)[0], 128)} is not recognized")
    if action == "ListAccounts":
        body = "".join(f"<member><AccountName>{xml._text(a.name)}</AccountName><AccountId>{a.account_id}</AccountId>"
                       "</member>" for a in cloud.accounts.all())
        return _document(action, f"<Accounts>{body}</Accounts>", request_id, namespace)
    name = params.get("AccountName")
    if not name:
        raise MissingParameter("The request must contain the parameter AccountName")
    if action == "CreateAccount":
        try:
            account, _ = cloud.accounts.create(name)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
        return _document(action, f"<Account><AccountName>{xml._text(account.name)}</AccountName>"
                                 f"<AccountId>{account.account_id}</AccountId></Account>", request_id, namespace)
    recursive = params.get("Recursive", "false").lower()
    if recursive not in ("true", "false"):
        raise ValidationError("Recursive must be true or false")
    cloud.accounts.delete_account(name, recursive == "true")
    return _document(action, None, request_id, namespace)


def _document(action: str, result: str | None, request_id: str, namespace: str) -> bytes:
    inner = f"<{action}Result>{result}</{action}Result>" if result is not None else ""
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<{action}Response xmlns="{namespace}">{inner}'
            f"<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata>"
            f"</{action}Response>").encode()


# --- the pipeline --------------------------------------------------------------------------------

class IamApi:
    """The IAM endpoint: an ASGI app."""

    def __init__(self, cloud: Cloud) -> None:
        self.cloud = cloud
        self.model = iam_model()
        self.namespace = str(self.model.metadata["xmlNamespace"])
        self._operations: dict[str, OperationModel] = {name: self.model.operation_model(name) for name in ACTIONS}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = _request_id()
        client = scope.get("client")
        source_ip.set(client[0] if client else "")
        if scope["method"] not in ("GET", "POST"):
            status, payload = 405, xml.query_error("InvalidAction", "Only GET and POST are supported", request_id,
                                                   self.namespace)
        else:
            try:
                body = await read_body(scope, receive)
                if body is None:
                    return
                headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
                status, payload = self.handle(scope["method"], scope["path"], scope["query_string"].decode("latin-1"),
                                              headers, body, request_id)
            except ApiError as exc:
                status, payload = exc.status, xml.query_error(exc.code, exc.message, request_id, self.namespace)
        await send({"type": "http.response.start", "status": status,
                    "headers": [*_HEADERS, (b"content-length", str(len(payload)).encode())]})
        await send({"type": "http.response.body", "body": payload})

    def handle(self, method: str, path: str, raw_query: str, headers: dict[str, str], body: bytes,
               request_id: str) -> tuple[int, bytes]:
        try:
            params = form_params(raw_query, headers, body)
            self.cloud.refresh()
            caller = self._caller(SignedRequest(method, path, raw_query, headers, body, params))
            action = params.get("Action")
            if not action:
                raise MissingParameter("The request must contain the parameter Action")
            if action in ACCOUNT_ACTIONS:
                if not caller.admin:
                    raise self._denied(caller, action, "*")
                return 200, _account_action(self.cloud, action, params, request_id, self.namespace)
            operation = self._operations.get(action)
            if operation is None:
                raise InvalidInput(f"Could not find operation {quoted(action)} for version 2010-05-08")
            try:
                parsed = query.parse(operation.input_shape, params, wrapped=True)
            except (InvalidParameterValue, InvalidParameter, UnknownParameter, MissingParameter) as exc:
                raise ValidationError(exc.message) from None
            self._authorize(caller, action, parsed)
            result = ACTIONS[action](Call(self.cloud, caller, parsed))
            return 200, xml.query_response(operation, result, request_id, self.namespace)
        except ApiError as exc:
            return exc.status, xml.query_error(exc.code, exc.message, request_id, self.namespace,
                                               sender=exc.status < 500)
        except Exception:
            log.exception("request %s failed", request_id)
            internal = InternalError("An internal error has occurred")
            return internal.status, xml.query_error(internal.code, internal.message, request_id, self.namespace,
                                                    sender=False)

    def _caller(self, signed: SignedRequest) -> Caller:
        unknown: list[str] = []

        def secret_of(access_key: str) -> str | None:
            secret = self.cloud.accounts.secret(access_key)
            if secret is None:
                unknown.append(access_key)
            return secret
        try:
            access_key = verify(signed, secret_of)
        except AuthFailure as exc:
            if unknown:
                raise InvalidClientTokenId("The security token included in the request is invalid.") from None
            if "x-amz-content-sha256" in exc.message or "UNSIGNED-PAYLOAD" in exc.message:
                raise SignatureDoesNotMatch(exc.message) from None
            raise SignatureDoesNotMatch("The request signature we calculated does not match the signature you "
                                        "provided. Check your AWS Secret Access Key and signing method.") from None
        return self.cloud.caller(access_key, "iam")

    def _resource(self, caller: Caller, action: str, params: dict[str, Any]) -> str:
        head = f"arn:aws:iam::{caller.account_id}:"
        accounts = self.cloud.accounts
        if "UserName" in params or action in _CALLER_DEFAULT:
            name = str(params.get("UserName") or caller.user)
            try:
                return accounts.user(caller.account, name).arn(caller.account_id)
            except NoSuchEntity:
                return f"{head}user{params.get('Path') or '/'}{name}"
        if "GroupName" in params:
            try:
                return accounts.group(caller.account, params["GroupName"]).arn(caller.account_id)
            except NoSuchEntity:
                return f"{head}group{params.get('Path') or '/'}{params['GroupName']}"
        if action == "ListUsers":
            return f"{head}user{params.get('PathPrefix') or '/'}*"
        if action == "ListGroups":
            return f"{head}group{params.get('PathPrefix') or '/'}*"
        return "*"

    def _authorize(self, caller: Caller, action: str, params: dict[str, Any]) -> None:
        resource = self._resource(caller, action, params)
        if not self.cloud.accounts.allows(caller, "iam:" + action, (resource,), source_ip.get()):
            raise self._denied(caller, action, resource)

    def _denied(self, caller: Caller, action: str, resource: str) -> AccessDenied:
        who = f"arn:aws:iam::{caller.account_id}:user/{caller.user}"
        return AccessDenied(f"User: {who} is not authorized to perform: iam:{action} on resource: {resource}")


__all__ = ["ACTIONS", "ADMIN", "PREFIX", "IamApi"]
