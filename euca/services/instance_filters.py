"""DescribeInstances' filters: which names EC2 documents, and the values each one compares with in
an instance's description. Plain tables and functions; ``euca.services.instances`` applies them."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from euca.services.accounts import Accounts
from euca.services.common import present, tag_fields, timestamp
from euca.services.instance_record import Instance
from euca.services.tags import Tags

# What EC2 documents for DescribeInstances. A filter compares with what the instance's description
# shows (``_SHOWN``): one on a field it leaves out (a VPC, an IAM profile, a spot request, a
# platform other than Linux) is accepted and matches nothing, as in EC2-Classic. An instance here
# has no network interface of its own: the interface's addresses are the instance's (``_ADDRESSES``),
# its other fields match nothing.
_ADDRESSES = {
    "network-interface.addresses.private-ip-address": "private-ip-address",
    "network-interface.private-ip-address": "private-ip-address",
    "network-interface.addresses.private-dns-name": "private-dns-name",
    "network-interface.private-dns-name": "private-dns-name",
    "network-interface.addresses.association.public-ip": "ip-address",
    "network-interface.association.public-ip": "ip-address",
    "network-interface.addresses.association.public-dns-name": "dns-name",
    "network-interface.association.public-dns-name": "dns-name",
    "network-interface.public-dns-name": "dns-name",
}
_NEVER = (
    "affinity", "boot-mode", "capacity-reservation-id",
    "capacity-reservation-specification.capacity-reservation-preference",
    "capacity-reservation-specification.capacity-reservation-target.capacity-reservation-id",
    "capacity-reservation-specification.capacity-reservation-target.capacity-reservation-resource-group-arn",
    "host-id", "iam-instance-profile.id", "ipv6-address",
    "license-pool", "outpost-arn", "placement-group-name", "placement-partition-number",
    "private-dns-name-options.enable-resource-name-dns-a-record",
    "private-dns-name-options.enable-resource-name-dns-aaaa-record", "private-dns-name-options.hostname-type",
    "product-code", "product-code.type", "requester-id", "tpm-support", "operator.principal",
    *(f"network-interface.{f}" for f in (
        "addresses.association.allocation-id", "addresses.association.association-id",
        "addresses.association.carrier-ip", "addresses.association.customer-owned-ip",
        "addresses.association.ip-owner-id", "addresses.primary", "association.allocation-id",
        "association.association-id", "association.carrier-ip", "association.customer-owned-ip",
        "association.ip-owner-id", "attachment.attach-time", "attachment.attachment-id",
        "attachment.delete-on-termination", "attachment.device-index", "attachment.instance-id",
        "attachment.instance-owner-id", "attachment.network-card-index", "attachment.status",
        "availability-zone", "deny-all-igw-traffic", "description", "group-id", "group-name",
        "ipv4-prefixes.ipv4-prefix", "ipv6-address", "ipv6-addresses.ipv6-address",
        "ipv6-addresses.is-primary-ipv6", "ipv6-native", "ipv6-prefixes.ipv6-prefix", "mac-address",
        "network-interface-id", "outpost-arn", "owner-id", "requester-id", "requester-managed", "status",
        "source-dest-check", "subnet-id", "tag-key", "tag-value", "vpc-id")),
)
FILTERS = (
    "architecture", "availability-zone", "client-token", "current-instance-boot-mode", "dns-name", "ebs-optimized",
    "ena-support", "enclave-options.enabled", "group-id", "group-name", "hibernation-options.configured",
    "hypervisor", "image-id", "instance-id", "instance-state-code", "instance-state-name", "instance-type",
    "instance.group-id", "instance.group-name", "ip-address", "kernel-id", "key-name", "launch-index",
    "launch-time", "maintenance-options.auto-recovery", "metadata-options.http-endpoint",
    "metadata-options.http-protocol-ipv4", "metadata-options.http-protocol-ipv6",
    "metadata-options.http-put-response-hop-limit", "metadata-options.http-tokens",
    "metadata-options.instance-metadata-tags", "monitoring-state", "owner-id", "platform-details",
    "private-dns-name", "private-ip-address", "ramdisk-id", "reason", "reservation-id", "root-device-name",
    "root-device-type", "source-dest-check", "state-reason-code", "state-reason-message", "tag-key", "tag-value",
    "tenancy", "usage-operation", "usage-operation-update-time", "virtualization-type", "platform",
    "operator.managed",
    "iam-instance-profile.arn", "instance-lifecycle", "spot-instance-request-id", "subnet-id", "vpc-id",
    *(f"block-device-mapping.{f}" for f in ("attach-time", "delete-on-termination", "device-name", "status",
                                            "volume-id")),
    *_ADDRESSES, *_NEVER)
# filter -> where the instance's description shows its value
_SHOWN = {
    "instance-id": ("InstanceId",), "image-id": ("ImageId",), "instance-type": ("InstanceType",),
    "instance-state-name": ("State", "Name"), "instance-state-code": ("State", "Code"),
    "kernel-id": ("KernelId",), "ramdisk-id": ("RamdiskId",), "key-name": ("KeyName",),
    "launch-index": ("AmiLaunchIndex",), "launch-time": ("LaunchTime",), "client-token": ("ClientToken",),
    "usage-operation-update-time": ("LaunchTime",),
    "availability-zone": ("Placement", "AvailabilityZone"), "tenancy": ("Placement", "Tenancy"),
    "private-ip-address": ("PrivateIpAddress",), "private-dns-name": ("PrivateDnsName",),
    "ip-address": ("PublicIpAddress",), "dns-name": ("PublicDnsName",),
    "monitoring-state": ("Monitoring", "State"), "ebs-optimized": ("EbsOptimized",),
    "ena-support": ("EnaSupport",), "source-dest-check": ("SourceDestCheck",),
    "platform": ("Platform",), "platform-details": ("PlatformDetails",), "usage-operation": ("UsageOperation",),
    "architecture": ("Architecture",), "hypervisor": ("Hypervisor",),
    "virtualization-type": ("VirtualizationType",), "root-device-type": ("RootDeviceType",),
    "root-device-name": ("RootDeviceName",), "reason": ("StateTransitionReason",),
    "state-reason-code": ("StateReason", "Code"), "state-reason-message": ("StateReason", "Message"),
    "metadata-options.http-tokens": ("MetadataOptions", "HttpTokens"),
    "metadata-options.http-endpoint": ("MetadataOptions", "HttpEndpoint"),
    "metadata-options.http-put-response-hop-limit": ("MetadataOptions", "HttpPutResponseHopLimit"),
    "iam-instance-profile.arn": ("IamInstanceProfile", "Arn"), "instance-lifecycle": ("InstanceLifecycle",),
    "spot-instance-request-id": ("SpotInstanceRequestId",), "subnet-id": ("SubnetId",), "vpc-id": ("VpcId",),
}
# each block device mapping's field a block-device-mapping.* filter compares with
_MAPPING = {"block-device-mapping.device-name": "DeviceName", "block-device-mapping.volume-id": "VolumeId",
            "block-device-mapping.status": "Status", "block-device-mapping.attach-time": "AttachTime",
            "block-device-mapping.delete-on-termination": "DeleteOnTermination"}
# what EC2 says of every instance like these, though DescribeInstances leaves it out
_ALWAYS = {"metadata-options.http-protocol-ipv4": "enabled", "metadata-options.http-protocol-ipv6": "disabled",
           "metadata-options.instance-metadata-tags": "disabled", "maintenance-options.auto-recovery": "default",
           "enclave-options.enabled": "false", "hibernation-options.configured": "false",
           "current-instance-boot-mode": "legacy-bios", "operator.managed": "false"}


def filter_values(inst: Instance, shown: Mapping[str, Any], name: str, accounts: Accounts, tags: Tags) -> list[str]:
    """The values filter ``name`` compares with: those ``shown``, the instance's description, has."""
    name = _ADDRESSES.get(name, name)
    if name in _SHOWN:
        value: Any = shown
        for key in _SHOWN[name]:
            value = value.get(key) if isinstance(value, Mapping) else None
        return present(_text(value))
    if name in _MAPPING:
        field_name = _MAPPING[name]
        return present(*(_text(m.get(field_name, (m.get("Ebs") or {}).get(field_name)))
                         for m in shown.get("BlockDeviceMappings") or []))
    if name in _ALWAYS:
        return [_ALWAYS[name]]
    if name in ("group-id", "instance.group-id"):
        return present(*(g["GroupId"] or "" for g in shown.get("SecurityGroups") or []))
    if name in ("group-name", "instance.group-name"):
        return present(*(g["GroupName"] for g in shown.get("SecurityGroups") or []))
    if name == "reservation-id":
        return [inst.reservation_id]
    if name == "owner-id":
        account = accounts.get(inst.account)
        return [account.account_id if account else inst.account]
    if name.startswith(("tag:", "tag-")):
        return tag_fields(tags.of(inst.instance_id), name)
    return []


def _text(value: Any) -> str:
    """A shown value as a filter compares with it: booleans as true/false, times as EC2 writes them."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return timestamp(value)
    if isinstance(value, datetime):
        return timestamp(value.timestamp())
    return str(value)
