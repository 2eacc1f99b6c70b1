"""How DescribeInstances, RunInstances and the state-changing calls show an instance and its
reservation. Each shape is a Frozen dict kept while nothing a client sees of it has changed, so its
XML is built once; whoever changes a record calls :meth:`InstanceView.forget`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from euca.cluster import ClusterController
from euca.core.frozen import Frozen
from euca.fleet.box import STATE_CODES
from euca.services.accounts import Accounts
from euca.services.addresses import Addresses
from euca.services.common import tag_list
from euca.services.groups import Groups
from euca.services.instance_record import Instance
from euca.services.tags import Tags

USER_SHUTDOWN = {"Code": "Client.UserInitiatedShutdown",
                 "Message": "Client.UserInitiatedShutdown: User initiated shutdown"}
LAUNCH_FAILED = "Server.InternalError"  # EC2's code for an instance that could not be started
PENDING = {"Code": "pending", "Message": "pending"}


class InstanceView:
    def __init__(self, cc: ClusterController, accounts: Accounts, groups: Groups, addresses: Addresses,
                 tags: Tags) -> None:
        self._cc, self._accounts, self._groups, self._addresses, self._tags = cc, accounts, groups, addresses, tags
        # instance or reservation id -> (what it showed, its record)
        self._memo: dict[str, tuple[tuple[Any, ...], Frozen]] = {}

    def forget(self, *ids: str) -> None:
        """The shapes of these instances or reservations are built again when next shown."""
        for id_ in ids:
            self._memo.pop(id_, None)

    def group_ids(self, inst: Instance) -> list[dict[str, Any]]:
        out = []
        for name in inst.groups:
            g = self._groups.get(inst.account, name)
            out.append({"GroupName": name, "GroupId": g.group_id if g else None})
        return out

    def reservation(self, items: list[tuple[Instance, str]]) -> dict[str, Any]:
        first = items[0][0]
        account = self._accounts.get(first.account)
        owner = account.account_id if account else first.account
        groups = []
        for name in first.groups:
            g = self._groups.get(first.account, name)
            groups.append({"GroupName": name, "GroupId": g.group_id if g else None})
        instances = [self.instance(i, state, groups) for i, state in items]
        # the instance records are held by the memo, so their ids cannot be reused while it is
        key = (owner, tuple(g["GroupId"] for g in groups), *map(id, instances))
        memo = self._memo.get(first.reservation_id)
        if memo is not None and memo[0] == key:
            return memo[1]
        record = Frozen({"ReservationId": first.reservation_id, "OwnerId": owner, "Groups": groups,
                         "Instances": instances})
        self._memo[first.reservation_id] = (key, record)
        return record

    def instance(self, inst: Instance, state: str, groups: list[dict[str, Any]]) -> dict[str, Any]:
        """The same Frozen dict while nothing a client sees has changed, so its XML is built once."""
        public = self._addresses.public_of(inst.instance_id) if inst.terminated is None else None
        tags = self._tags.of(inst.instance_id)
        key = (state, public, inst.terminated, tuple(tags.items()) if tags else (),
               tuple(g["GroupId"] for g in groups))
        memo = self._memo.get(inst.instance_id)
        if memo is not None and memo[0] == key:
            return memo[1]
        record = Frozen(self._fields(inst, state, groups, public, tags))
        self._memo[inst.instance_id] = (key, record)
        return record

    def _fields(self, inst: Instance, state: str, groups: list[dict[str, Any]], public: str | None,
                tags: Mapping[str, str]) -> dict[str, Any]:
        live = state in ("pending", "running")
        return {
            "InstanceId": inst.instance_id, "ImageId": inst.image_id,
            "State": {"Code": STATE_CODES[state], "Name": state},
            "PrivateDnsName": inst.private_ip if live else "", "PublicDnsName": (public or "") if live else "",
            "KeyName": inst.key_name or None, "AmiLaunchIndex": inst.launch_index, "InstanceType": inst.vmtype,
            "LaunchTime": inst.launched, "Placement": {"AvailabilityZone": inst.zone, "Tenancy": "default"},
            "KernelId": inst.kernel_id or None, "RamdiskId": inst.ramdisk_id or None,
            "Monitoring": {"State": "enabled" if inst.monitored else "disabled"},
            "BlockDeviceMappings": block_devices(inst), "EbsOptimized": False, "EnaSupport": False,
            "SourceDestCheck": True,
            "CpuOptions": {"CoreCount": self._cores(inst.vmtype), "ThreadsPerCore": 1},
            "PlatformDetails": "Linux/UNIX", "UsageOperation": "RunInstances",
            "MetadataOptions": metadata_options_of(inst),
            "PrivateIpAddress": inst.private_ip if live else None, "PublicIpAddress": public if live else None,
            "Architecture": "x86_64", "RootDeviceType": "ebs" if inst.root_device else "instance-store",
            "RootDeviceName": inst.root_device or "/dev/sda1",
            "VirtualizationType": "paravirtual", "Hypervisor": "xen", "ClientToken": inst.client_token or None,
            "SecurityGroups": groups, "Tags": tag_list(tags),
            "StateTransitionReason": ("Server initiated" if inst.failure else "User initiated")
            if inst.terminated is not None else "",
            "StateReason": state_reason(inst, state),
        }

    def _cores(self, vmtype: str) -> int:
        return self._cc.vmtypes[vmtype].cores if vmtype in self._cc.vmtypes else 1


def block_devices(inst: Instance) -> list[dict[str, Any]]:
    if not inst.root_volume:
        return []
    return [{"DeviceName": inst.root_device, "Ebs": {
        "VolumeId": inst.root_volume, "Status": "attached", "AttachTime": inst.launched,
        "DeleteOnTermination": inst.root_delete}}]


def metadata_options_of(inst: Instance) -> dict[str, Any]:
    return {"State": "applied", "HttpTokens": inst.http_tokens, "HttpPutResponseHopLimit": inst.hop_limit,
            "HttpEndpoint": inst.http_endpoint}


def state_reason(inst: Instance, state: str) -> dict[str, str] | None:
    if inst.failure and (inst.terminated is not None or state in ("stopping", "stopped")):
        return {"Code": LAUNCH_FAILED, "Message": f"{LAUNCH_FAILED}: {inst.failure}"}
    if inst.terminated is not None or state in ("stopping", "stopped"):
        return USER_SHUTDOWN
    return PENDING if state == "pending" else None
