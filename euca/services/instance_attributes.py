"""What EC2 lets a client read and change about a running instance: its attributes
(Describe/Modify/ResetInstanceAttribute), its status checks (DescribeInstanceStatus), detailed
monitoring (Monitor/UnmonitorInstances) and, for burstable types, CPU credits.

The attributes EC2 changes only on a stopped instance (type, kernel, ramdisk, user data) change on
a stopped EBS-backed instance and answer IncorrectInstanceState otherwise (an instance-store one
never stops); the VPC-only ones (groupSet, sourceDestCheck) answer that this is not a VPC
instance. An instance's system status is ``impaired`` while its node
is DOWN; its instance status is ``initializing`` while it boots and ``ok`` once it runs.
"""

from __future__ import annotations

import base64
from typing import Any

from euca.core.errors import (
    IncorrectInstanceState,
    InvalidParameterCombination,
    InvalidParameterValue,
    MissingParameter,
    UnsupportedOperation,
)
from euca.core.text import quoted
from euca.fleet.box import STATE_CODES
from euca.services.common import Caller, matches, page, wanted
from euca.services.instances import MAX_USER_DATA, Instance, Instances

ATTRIBUTES = ("instanceType", "kernel", "ramdisk", "userData", "disableApiTermination",
              "instanceInitiatedShutdownBehavior", "rootDeviceName", "blockDeviceMapping", "productCodes",
              "sourceDestCheck", "groupSet", "ebsOptimized", "sriovNetSupport", "enaSupport", "disableApiStop")
STATUS_FILTERS = ("availability-zone", "event.code", "event.description", "event.instance-event-id",
                  "event.not-after", "event.not-before", "event.not-before-deadline", "instance-state-code",
                  "instance-state-name", "instance-status.reachability", "instance-status.status",
                  "system-status.reachability", "system-status.status", "operator.managed", "operator.principal",
                  "attached-ebs-status.status")
# the structured form of ModifyInstanceAttribute: parameter -> the attribute it sets
MODIFY_MEMBERS = {"InstanceType": "instanceType", "Kernel": "kernel", "Ramdisk": "ramdisk", "UserData": "userData",
                  "DisableApiTermination": "disableApiTermination", "EbsOptimized": "ebsOptimized",
                  "InstanceInitiatedShutdownBehavior": "instanceInitiatedShutdownBehavior",
                  "SourceDestCheck": "sourceDestCheck", "Groups": "groupSet", "SriovNetSupport": "sriovNetSupport",
                  "EnaSupport": "enaSupport", "DisableApiStop": "disableApiStop",
                  "BlockDeviceMappings": "blockDeviceMapping"}


def _not_stopped(inst: Instance) -> IncorrectInstanceState:
    return IncorrectInstanceState(f"The instance '{inst.instance_id}' is not in the 'stopped' state.")


def _vpc_only(attribute: str) -> InvalidParameterCombination:
    return InvalidParameterCombination(f"The attribute '{attribute}' can only be used with VPC instances")


class InstanceAttributes:
    def __init__(self, instances: Instances) -> None:
        self._instances = instances

    def describe(self, caller: Caller, instance_id: str, attribute: str) -> dict[str, Any]:
        if attribute not in ATTRIBUTES:
            raise InvalidParameterValue(f"Value ({quoted(attribute)}) for parameter attribute is invalid. "
                                        "Unknown attribute.")
        inst = self._instances.visible(caller, [instance_id])[0]
        out: dict[str, Any] = {"InstanceId": inst.instance_id}
        values: dict[str, dict[str, Any]] = {
            "instanceType": {"InstanceType": {"Value": inst.vmtype}},
            "kernel": {"KernelId": {"Value": inst.kernel_id} if inst.kernel_id else {}},
            "ramdisk": {"RamdiskId": {"Value": inst.ramdisk_id} if inst.ramdisk_id else {}},
            "userData": {"UserData": {"Value": inst.user_data} if inst.user_data else {}},
            "disableApiTermination": {"DisableApiTermination": {"Value": inst.api_termination_disabled}},
            "instanceInitiatedShutdownBehavior": {"InstanceInitiatedShutdownBehavior": {
                "Value": inst.shutdown_behavior}},
            "rootDeviceName": {"RootDeviceName": {"Value": inst.root_device or "/dev/sda1"}},
            "blockDeviceMapping": {"BlockDeviceMappings": self._instances.block_devices(inst)},
            "productCodes": {"ProductCodes": []},
            "sourceDestCheck": {"SourceDestCheck": {"Value": True}},
            "groupSet": {"Groups": self._instances.group_ids(inst)},
            "ebsOptimized": {"EbsOptimized": {"Value": False}},
            "sriovNetSupport": {"SriovNetSupport": {}},
            "enaSupport": {"EnaSupport": {"Value": False}},
            "disableApiStop": {"DisableApiStop": {"Value": inst.api_stop_disabled}},
        }
        return out | values[attribute]

    def modify(self, caller: Caller, p: dict[str, Any]) -> None:
        inst = self._instances.visible(caller, [p["InstanceId"]])[0]
        changes: list[tuple[str, Any]] = []
        if p.get("Attribute"):
            if p["Attribute"] not in ATTRIBUTES:
                raise InvalidParameterValue(f"Value ({quoted(p['Attribute'])}) for parameter attribute is invalid.")
            changes.append((p["Attribute"], p.get("Value")))
        for member, attribute in MODIFY_MEMBERS.items():
            if p.get(member) is not None:
                given = p[member]
                changes.append((attribute, given.get("Value") if isinstance(given, dict) else given))
        if not changes:
            raise MissingParameter("The request must contain an attribute to modify")
        if len(changes) > 1:
            raise InvalidParameterCombination("Only one attribute can be modified at a time")
        attribute, value = changes[0]
        if attribute in ("instanceType", "kernel", "ramdisk", "userData"):
            if self._instances.state_of(inst) != "stopped":
                raise _not_stopped(inst)
            self._while_stopped(caller, inst, attribute, value)
            return
        if attribute in ("ebsOptimized", "blockDeviceMapping"):
            raise _not_stopped(inst) if not inst.root_device else InvalidParameterCombination(
                f"The attribute '{attribute}' cannot be modified on this cloud")
        if attribute in ("groupSet", "sourceDestCheck", "sriovNetSupport", "enaSupport"):
            raise _vpc_only(attribute)
        if attribute == "disableApiTermination":
            self._instances.update([inst], api_termination_disabled=_boolean(value, attribute))
        elif attribute == "instanceInitiatedShutdownBehavior":
            if value not in ("terminate", "stop"):
                raise InvalidParameterValue(f"Value ({quoted(str(value))}) for parameter "
                                            "instanceInitiatedShutdownBehavior is invalid: stop or terminate")
            if value == "stop" and not inst.root_device:
                raise UnsupportedOperation("instance-store backed instances cannot be stopped: "
                                           "instanceInitiatedShutdownBehavior must be terminate")
            self._instances.update([inst], shutdown_behavior=value)
        elif attribute == "disableApiStop":
            on = _boolean(value, attribute)
            if on and not inst.root_device:
                raise UnsupportedOperation("instance-store backed instances cannot be stopped")
            self._instances.update([inst], api_stop_disabled=on)
        else:
            raise InvalidParameterValue(f"Value ({attribute}) for parameter attribute cannot be modified")

    def reset(self, caller: Caller, instance_id: str, attribute: str) -> None:
        if attribute not in ("kernel", "ramdisk", "sourceDestCheck", "disableApiStop"):
            raise InvalidParameterValue(f"Value ({quoted(attribute)}) for parameter attribute is invalid. "
                                        "Only kernel, ramdisk, sourceDestCheck and disableApiStop can be reset.")
        inst = self._instances.visible(caller, [instance_id])[0]
        if attribute in ("kernel", "ramdisk"):
            if self._instances.state_of(inst) != "stopped":
                raise _not_stopped(inst)
            image = self._instances.image_of(inst)
            default = (image.kernel_id if attribute == "kernel" else image.ramdisk_id) if image else ""
            self._instances.update([inst], **{f"{attribute}_id": default})
        if attribute == "sourceDestCheck":
            raise _vpc_only(attribute)
        if attribute == "disableApiStop":
            self._instances.update([inst], api_stop_disabled=False)

    def _while_stopped(self, caller: Caller, inst: Instance, attribute: str, value: Any) -> None:
        """instanceType, kernel, ramdisk or userData of a stopped instance: used when it starts again."""
        if not isinstance(value, (str, bytes)):
            raise InvalidParameterValue(f"Value for parameter {attribute} is invalid")
        if attribute == "instanceType":
            value = value.decode() if isinstance(value, bytes) else value
            if not self._instances.vmtype_known(value):
                raise InvalidParameterValue(f"Invalid value '{quoted(value[:32])}' for InstanceType")
            self._instances.update([inst], vmtype=value)
        elif attribute in ("kernel", "ramdisk"):
            value = value.decode() if isinstance(value, bytes) else value
            chosen = self._instances.image_for(caller, value, attribute) if value else ""
            self._instances.update([inst], **{f"{attribute}_id": chosen})
        else:
            raw = value if isinstance(value, bytes) else value.encode()  # the query parser decodes a blob
            if len(raw) > MAX_USER_DATA:
                raise InvalidParameterValue(f"User data is limited to {MAX_USER_DATA} bytes")
            data = base64.b64encode(raw)
            self._instances.update([inst], user_data=data.decode())
    # --- status --------------------------------------------------------------------------------------

    def status(self, caller: Caller, p: dict[str, Any]) -> dict[str, Any]:
        ids, limit, token = p.get("InstanceIds") or [], p.get("MaxResults"), p.get("NextToken")
        if ids and limit is not None:
            raise InvalidParameterCombination("The parameter instancesSet cannot be used with the parameter maxResults")
        if limit is not None and not 5 <= limit <= 1000:
            raise InvalidParameterValue("MaxResults must be between 5 and 1000")
        chosen = wanted(p.get("Filters"), STATUS_FILTERS, tags=False)
        every = bool(p.get("IncludeAllInstances"))
        if ids:
            rows = [(inst, self._instances.state_of(inst)) for inst in self._instances.visible(caller, ids)]
        else:
            rows = self._instances.listed(caller)
        out = []
        for inst, state in rows:
            if state != "running" and not every:
                continue
            item = self._status(inst, state)
            fields = {"availability-zone": [inst.zone], "instance-state-code": [str(STATE_CODES[state])],
                      "instance-state-name": [state],
                      "instance-status.status": [item["InstanceStatus"]["Status"]],
                      "instance-status.reachability": [d["Status"] for d in item["InstanceStatus"]["Details"]],
                      "system-status.status": [item["SystemStatus"]["Status"]],
                      "system-status.reachability": [d["Status"] for d in item["SystemStatus"]["Details"]],
                      "operator.managed": ["false"]}
            if matches(chosen, lambda n, f=fields: f.get(n, [])):  # type: ignore[misc]
                out.append(item)
        chunk, following = page(out, limit, token)
        return {"InstanceStatuses": chunk, "NextToken": following}

    def _status(self, inst: Instance, state: str) -> dict[str, Any]:
        if state == "running":
            down = self._instances.node_down(inst)
            system = ("impaired", "failed") if down else ("ok", "passed")
            instance = ("insufficient-data", "insufficient-data") if down else ("ok", "passed")
        elif state == "pending":
            system = instance = ("initializing", "initializing")
        else:
            system = instance = ("not-applicable", "")

        def check(status: tuple[str, str]) -> dict[str, Any]:
            details = [{"Name": "reachability", "Status": status[1]}] if status[1] else []
            return {"Status": status[0], "Details": details}
        return {"InstanceId": inst.instance_id, "AvailabilityZone": inst.zone,
                "InstanceState": {"Code": STATE_CODES[state], "Name": state},
                "InstanceStatus": check(instance), "SystemStatus": check(system), "Events": []}

    # --- monitoring and credits -------------------------------------------------------------------------

    def monitor(self, caller: Caller, ids: list[str], on: bool) -> list[dict[str, Any]]:
        chosen = self._instances.visible(caller, ids)
        self._instances.update(chosen, monitored=on)
        # EC2 answers pending / disabling; the next describe shows enabled / disabled
        return [{"InstanceId": i.instance_id, "Monitoring": {"State": "pending" if on else "disabling"}}
                for i in chosen]

    def credits(self, caller: Caller, p: dict[str, Any]) -> dict[str, Any]:
        ids, limit, token = p.get("InstanceIds") or [], p.get("MaxResults"), p.get("NextToken")
        chosen = wanted(p.get("Filters"), ("instance-id",), tags=False)
        rows = [(i, self._instances.state_of(i)) for i in self._instances.visible(caller, ids)] if ids else \
            self._instances.listed(caller)
        out = [{"InstanceId": i.instance_id, "CpuCredits": "unlimited" if i.vmtype.startswith("t3.") else "standard"}
               for i, state in rows if i.vmtype.startswith(("t2.", "t3.")) and state in ("pending", "running")
               and matches(chosen, lambda n, i=i: [i.instance_id])]  # type: ignore[misc]
        chunk, following = page(out, limit, token)
        return {"InstanceCreditSpecifications": chunk, "NextToken": following}


def _boolean(value: Any, attribute: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise InvalidParameterValue(f"Value ({quoted(str(value))}) for parameter {attribute} is invalid. "
                                "It must be true or false.")

