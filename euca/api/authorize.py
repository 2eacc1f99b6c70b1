"""The EC2 endpoint's authorization hook: the policy engine's decision, then the quotas.

``PolicyAuthorizer(cloud)`` is what ``create_app`` plugs into the pipeline (``Ec2Api.authorize``):
for each request it names the action (``ec2:RunInstances``) and the resources it touches as ARNs
(``arn:aws:ec2:<region>:<account id>:instance/i-...``; ``*`` for actions EC2 authorizes without a
resource, the describes), asks ``euca.auth.policy.authorize`` about each with the request's
context (``aws:SourceIp``, ``aws:CurrentTime``, ``ec2:InstanceType``), and refuses with
``UnauthorizedOperation`` unless every one is allowed. It runs before ``DryRun`` is answered, so a
dry run tells a denied user so.

Then Eucalyptus's quotas (``"Effect": "Limit"`` statements on the account, the user's groups and the
user): a request that would take the caller's account past one is refused with EC2's error for it
and changes nothing. Resources belong to accounts here, so a user's or group's limit bounds the
account's count while that user asks. A RunInstances that fits only partly launches what fits if
that is at least ``MinCount``, as Eucalyptus's allocation did.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from euca.auth.policy import INSTANCE_TYPE, Principal, limit
from euca.core.errors import (
    AddressLimitExceeded,
    ApiError,
    InstanceLimitExceeded,
    SecurityGroupLimitExceeded,
    UnauthorizedOperation,
)
from euca.core.iamerrors import ResourceLimitExceeded
from euca.services.cloud import Cloud
from euca.services.common import Caller
from euca.services.images import kind_of_location

# The client's address for the request being handled (set by the endpoint, read for aws:SourceIp).
source_ip: ContextVar[str] = ContextVar("source_ip", default="")

# action -> the (parameter naming resources, resource type) pairs it acts on; every one is authorized
_RESOURCES: dict[str, tuple[tuple[str, str], ...]] = {
    **{a: (("InstanceIds", "instance"),) for a in (
        "TerminateInstances", "StopInstances", "StartInstances", "RebootInstances", "MonitorInstances",
        "UnmonitorInstances")},
    **{a: (("InstanceId", "instance"),) for a in (
        "GetConsoleOutput", "ModifyInstanceAttribute", "DescribeInstanceAttribute", "ResetInstanceAttribute",
        "AssociateAddress", "CreateImage", "ModifyInstanceMetadataOptions")},
    **{a: (("GroupId", "security-group"),) for a in (
        "DeleteSecurityGroup", "AuthorizeSecurityGroupIngress", "AuthorizeSecurityGroupEgress",
        "RevokeSecurityGroupIngress", "RevokeSecurityGroupEgress", "ModifySecurityGroupRules",
        "UpdateSecurityGroupRuleDescriptionsIngress", "UpdateSecurityGroupRuleDescriptionsEgress")},
    **{a: (("KeyName", "key-pair"),) for a in ("CreateKeyPair", "ImportKeyPair", "DeleteKeyPair")},
    **{a: (("ImageId", "image"),) for a in (
        "DeregisterImage", "ModifyImageAttribute", "DescribeImageAttribute", "ResetImageAttribute")},
    **{a: (("VolumeId", "volume"),) for a in (
        "DeleteVolume", "ModifyVolumeAttribute", "DescribeVolumeAttribute", "CreateSnapshot")},
    **{a: (("VolumeId", "volume"), ("InstanceId", "instance")) for a in ("AttachVolume", "DetachVolume")},
    **{a: (("SnapshotId", "snapshot"),) for a in (
        "DeleteSnapshot", "ModifySnapshotAttribute", "DescribeSnapshotAttribute", "ResetSnapshotAttribute")},
    **{a: (("Resources", ""),) for a in ("CreateTags", "DeleteTags")},
}


def account_policy(caller: Caller, action: str, params: dict[str, Any]) -> None:
    """What only the cloud's administrator may do, whatever the policies say: register kernels
    and ramdisks."""
    if caller.admin:
        return
    if action == "RegisterImage":
        kind = kind_of_location(str(params.get("ImageLocation") or ""))
        if kind != "machine":
            raise UnauthorizedOperation(f"Only administrators can register {kind} images")


class PolicyAuthorizer:
    """``(caller, action, params) -> None`` or an ApiError: the pipeline's authorization hook."""

    def __init__(self, cloud: Cloud) -> None:
        self.cloud = cloud

    def __call__(self, caller: Caller, action: str, params: dict[str, Any]) -> None:
        account_policy(caller, action, params)
        if caller.admin:
            return
        context = {INSTANCE_TYPE: params.get("InstanceType") or "m1.small"} if action == "RunInstances" else None
        if not self.cloud.accounts.allows(caller, "ec2:" + action, self.resources(caller, action, params),
                                          source_ip.get(), context):
            raise UnauthorizedOperation("You are not authorized to perform this operation.")
        self.quotas(caller, self.cloud.accounts.principal(caller), action, params)

    def resources(self, caller: Caller, action: str, params: dict[str, Any]) -> list[str]:
        """The ARNs a request acts on (``*`` when EC2 authorizes the action without one)."""
        head = f"arn:aws:ec2:{self.cloud.zones.region}:{caller.account_id}:"
        if action == "RunInstances":
            return [f"arn:aws:ec2:{self.cloud.zones.region}::image/{params.get('ImageId', '')}", head + "instance/*"]
        found = _RESOURCES.get(action)
        if found is None:
            return ["*"]
        out = []
        for param, kind in found:
            value = params.get(param)
            if kind == "security-group" and not value and params.get("GroupName"):
                # a group named by name is authorized as its id, so a Deny on the id holds either way
                group = self.cloud.groups.get(caller.account, str(params["GroupName"]))
                value = group.group_id if group is not None else params["GroupName"]
            ids = value if isinstance(value, list) else [value] if value else ["*"]
            for id_ in ids:
                what = kind or self.cloud.resource_type(str(id_))
                out.append(f"arn:aws:ec2:{self.cloud.zones.region}::image/{id_}" if what == "image"
                           else f"{head}{what}/{id_}")
        return out

    # --- quotas ---------------------------------------------------------------------------------------

    def quotas(self, caller: Caller, principal: Principal, action: str, params: dict[str, Any]) -> None:
        checks = _QUOTAS.get(action)
        if not checks:
            return
        for key, count, error, what in checks:
            bound = limit(principal, "ec2:" + action, key)
            if bound is None:
                continue
            held = count(self.cloud, caller)
            wanted = int(params.get("MinCount") or 1) if action == "RunInstances" else \
                len(params.get("InstanceIds") or ()) if action == "StartInstances" else 1
            if held + wanted > bound:
                raise error(f"You have reached the quota for {what} ({key} = {bound}; {held} in use)")
            if action == "RunInstances":
                params["MaxCount"] = min(int(params.get("MaxCount") or wanted), bound - held)


# The quotas count what the account holds in the store, not what a Describe would show it.

def _instances(cloud: Cloud, caller: Caller) -> int:
    """Instances not yet terminated (running, pending, stopping or stopped)."""
    return cloud.store.count("instance", caller.account, ("terminated",))


def _active(cloud: Cloud, caller: Caller) -> int:
    """Instances neither terminated nor stopped."""
    return cloud.store.count("instance", caller.account, ("terminated", "stopped"))


def _addresses(cloud: Cloud, caller: Caller) -> int:
    return cloud.store.count("address", caller.account, ("dynamic",))


def _groups(cloud: Cloud, caller: Caller) -> int:
    return cloud.store.count("group", caller.account)


def _keypairs(cloud: Cloud, caller: Caller) -> int:
    return cloud.store.count("keypair", caller.account)


def _images(cloud: Cloud, caller: Caller) -> int:
    return cloud.store.count("image", caller.account)


Count = Callable[[Cloud, Caller], int]
_Quota = tuple[str, Count, type[ApiError], str]
_QUOTAS: dict[str, tuple[_Quota, ...]] = {
    "RunInstances": (("ec2:quota-vminstancenumber", _instances, InstanceLimitExceeded, "instances"),
                     ("ec2:quota-vminstanceactivenumber", _active, InstanceLimitExceeded, "running instances")),
    "StartInstances": (("ec2:quota-vminstanceactivenumber", _active, InstanceLimitExceeded, "running instances"),),
    "AllocateAddress": (("ec2:quota-addressnumber", _addresses, AddressLimitExceeded, "elastic IP addresses"),),
    "CreateSecurityGroup": (("ec2:quota-securitygroupnumber", _groups, SecurityGroupLimitExceeded,
                             "security groups"),),
    "CreateKeyPair": (("ec2:quota-keypairnumber", _keypairs, ResourceLimitExceeded, "key pairs"),),
    "ImportKeyPair": (("ec2:quota-keypairnumber", _keypairs, ResourceLimitExceeded, "key pairs"),),
    "RegisterImage": (("ec2:quota-imagenumber", _images, ResourceLimitExceeded, "images"),),
}
