"""One thin handler per EC2 action: parsed parameters in, the output shape's dict out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from euca.core.errors import MissingParameter
from euca.services.cloud import Cloud
from euca.services.common import Caller

Params = dict[str, Any]
Result = dict[str, Any]
Handler = Callable[[Cloud, Caller, Params], Result]

OK: Result = {"Return": True}


def _need(p: Params, name: str) -> Any:
    value = p.get(name)
    if value is None or value == "":
        raise MissingParameter(f"The request must contain the parameter {name}")
    return value


def describe_availability_zones(c: Cloud, who: Caller, p: Params) -> Result:
    return {"AvailabilityZones": c.zones.describe(who, p.get("ZoneNames"), p.get("Filters"), p.get("ZoneIds"),
                                                  bool(p.get("AllAvailabilityZones")))}


def describe_regions(c: Cloud, who: Caller, p: Params) -> Result:
    return {"Regions": c.zones.regions(p.get("RegionNames"), p.get("Filters"), bool(p.get("AllRegions")))}


def describe_account_attributes(c: Cloud, who: Caller, p: Params) -> Result:
    return {"AccountAttributes": c.zones.account_attributes(who, p.get("AttributeNames"))}


# --- instance types, attributes, status, monitoring --------------------------------------------------

def describe_instance_types(c: Cloud, who: Caller, p: Params) -> Result:
    types, token = c.instance_types.describe(who, p.get("InstanceTypes"), p.get("Filters"), p.get("MaxResults"),
                                             p.get("NextToken"))
    return {"InstanceTypes": types, "NextToken": token}


def describe_instance_type_offerings(c: Cloud, who: Caller, p: Params) -> Result:
    offers, token = c.instance_types.offerings(who, p.get("LocationType"), p.get("Filters"), p.get("MaxResults"),
                                               p.get("NextToken"))
    return {"InstanceTypeOfferings": offers, "NextToken": token}


def describe_instance_attribute(c: Cloud, who: Caller, p: Params) -> Result:
    return c.attributes.describe(who, p["InstanceId"], p["Attribute"])


def modify_instance_attribute(c: Cloud, who: Caller, p: Params) -> Result:
    c.attributes.modify(who, p)
    return {}


def reset_instance_attribute(c: Cloud, who: Caller, p: Params) -> Result:
    c.attributes.reset(who, p["InstanceId"], p["Attribute"])
    return {}


def describe_instance_status(c: Cloud, who: Caller, p: Params) -> Result:
    return c.attributes.status(who, p)


def monitor_instances(c: Cloud, who: Caller, p: Params) -> Result:
    return {"InstanceMonitorings": c.attributes.monitor(who, _need(p, "InstanceIds"), True)}


def unmonitor_instances(c: Cloud, who: Caller, p: Params) -> Result:
    return {"InstanceMonitorings": c.attributes.monitor(who, _need(p, "InstanceIds"), False)}


def describe_instance_credit_specifications(c: Cloud, who: Caller, p: Params) -> Result:
    return c.attributes.credits(who, p)


def create_key_pair(c: Cloud, who: Caller, p: Params) -> Result:
    return c.keypairs.create(who, p["KeyName"], p.get("KeyType"), p.get("KeyFormat"), p.get("TagSpecifications"))


def import_key_pair(c: Cloud, who: Caller, p: Params) -> Result:
    return c.keypairs.import_(who, p["KeyName"], p["PublicKeyMaterial"], p.get("TagSpecifications"))


def describe_key_pairs(c: Cloud, who: Caller, p: Params) -> Result:
    return {"KeyPairs": c.keypairs.describe(who, p.get("KeyNames"), p.get("KeyPairIds"), p.get("Filters"),
                                            bool(p.get("IncludePublicKey")))}


def delete_key_pair(c: Cloud, who: Caller, p: Params) -> Result:
    return c.keypairs.delete(who, p.get("KeyName"), p.get("KeyPairId"))


def create_security_group(c: Cloud, who: Caller, p: Params) -> Result:
    return c.groups.create(who, p["GroupName"], p["Description"], p.get("VpcId"), p.get("TagSpecifications"))


def delete_security_group(c: Cloud, who: Caller, p: Params) -> Result:
    return c.groups.delete(who, p.get("GroupName"), p.get("GroupId"))


def describe_security_groups(c: Cloud, who: Caller, p: Params) -> Result:
    return c.groups.describe(who, p.get("GroupNames"), p.get("GroupIds"), p.get("Filters"), p.get("MaxResults"),
                             p.get("NextToken"))


def describe_security_group_rules(c: Cloud, who: Caller, p: Params) -> Result:
    return c.groups.describe_rules(who, p.get("SecurityGroupRuleIds"), p.get("Filters"), p.get("MaxResults"),
                                   p.get("NextToken"))


def authorize_security_group_ingress(c: Cloud, who: Caller, p: Params) -> Result:
    return c.groups.authorize(who, p)


def authorize_security_group_egress(c: Cloud, who: Caller, p: Params) -> Result:
    return c.groups.authorize(who, p, egress=True)


def revoke_security_group_ingress(c: Cloud, who: Caller, p: Params) -> Result:
    return c.groups.revoke(who, p)


def revoke_security_group_egress(c: Cloud, who: Caller, p: Params) -> Result:
    return c.groups.revoke(who, p, egress=True)


def update_security_group_rule_descriptions_ingress(c: Cloud, who: Caller, p: Params) -> Result:
    return c.groups.update_descriptions(who, p, egress=False)


def update_security_group_rule_descriptions_egress(c: Cloud, who: Caller, p: Params) -> Result:
    return c.groups.update_descriptions(who, p, egress=True)


def modify_security_group_rules(c: Cloud, who: Caller, p: Params) -> Result:
    return c.groups.modify(who, p)


def allocate_address(c: Cloud, who: Caller, p: Params) -> Result:
    return c.addresses.allocate(who, p.get("Domain"))


def release_address(c: Cloud, who: Caller, p: Params) -> Result:
    c.addresses.release(who, p.get("PublicIp"), p.get("AllocationId"))
    return OK


def associate_address(c: Cloud, who: Caller, p: Params) -> Result:
    return c.addresses.associate(who, p.get("PublicIp"), p.get("InstanceId"), p.get("AllocationId"))


def disassociate_address(c: Cloud, who: Caller, p: Params) -> Result:
    c.addresses.disassociate(who, p.get("PublicIp"), p.get("AssociationId"))
    return OK


def describe_addresses(c: Cloud, who: Caller, p: Params) -> Result:
    return {"Addresses": c.addresses.describe(who, p.get("PublicIps"), p.get("Filters"), p.get("AllocationIds"))}


def run_instances(c: Cloud, who: Caller, p: Params) -> Result:
    return c.instances.run(who, p)


def describe_instances(c: Cloud, who: Caller, p: Params) -> Result:
    return c.instances.describe(who, p)


def terminate_instances(c: Cloud, who: Caller, p: Params) -> Result:
    return {"TerminatingInstances": c.instances.terminate(who, _need(p, "InstanceIds"))}


def stop_instances(c: Cloud, who: Caller, p: Params) -> Result:
    return {"StoppingInstances": c.instances.stop(who, _need(p, "InstanceIds"))}


def start_instances(c: Cloud, who: Caller, p: Params) -> Result:
    return {"StartingInstances": c.instances.start(who, _need(p, "InstanceIds"))}


def reboot_instances(c: Cloud, who: Caller, p: Params) -> Result:
    c.instances.reboot(who, _need(p, "InstanceIds"))
    return OK


def get_console_output(c: Cloud, who: Caller, p: Params) -> Result:
    return c.instances.console(who, p["InstanceId"])


def describe_images(c: Cloud, who: Caller, p: Params) -> Result:
    return {"Images": c.images.describe(who, p.get("ImageIds"), p.get("Owners"), p.get("ExecutableUsers"),
                                        p.get("Filters"))}


def register_image(c: Cloud, who: Caller, p: Params) -> Result:
    if not p.get("ImageLocation") and (p.get("RootDeviceName") or p.get("BlockDeviceMappings")):
        return {"ImageId": c.images.register_ebs(who, p)}
    image_id = c.images.register(who, _need(p, "ImageLocation"), p.get("Name"), p.get("Description") or "",
                                 p.get("Architecture"), p.get("KernelId"), p.get("RamdiskId"))
    return {"ImageId": image_id}


def create_image(c: Cloud, who: Caller, p: Params) -> Result:
    return {"ImageId": c.instances.create_image(who, _need(p, "InstanceId"), str(_need(p, "Name")),
                                                p.get("Description") or "")}


def deregister_image(c: Cloud, who: Caller, p: Params) -> Result:
    c.images.deregister(who, p["ImageId"])
    return OK


def describe_image_attribute(c: Cloud, who: Caller, p: Params) -> Result:
    return c.images.attribute(who, p["ImageId"], p["Attribute"])


def modify_image_attribute(c: Cloud, who: Caller, p: Params) -> Result:
    c.images.modify(who, p)
    return OK


def reset_image_attribute(c: Cloud, who: Caller, p: Params) -> Result:
    c.images.reset(who, p["ImageId"], p["Attribute"])
    return OK


def create_tags(c: Cloud, who: Caller, p: Params) -> Result:
    c.tags.create(who, p["Resources"], p["Tags"])
    return OK


def delete_tags(c: Cloud, who: Caller, p: Params) -> Result:
    c.tags.delete(who, p["Resources"], p.get("Tags"))
    return OK


def describe_tags(c: Cloud, who: Caller, p: Params) -> Result:
    return {"Tags": c.tags.describe(who, p.get("Filters"), c.resource_type)}


ACTIONS: dict[str, Handler] = {
    "DescribeAvailabilityZones": describe_availability_zones,
    "DescribeRegions": describe_regions,
    "DescribeAccountAttributes": describe_account_attributes,
    "DescribeInstanceTypes": describe_instance_types,
    "DescribeInstanceTypeOfferings": describe_instance_type_offerings,
    "DescribeInstanceAttribute": describe_instance_attribute,
    "ModifyInstanceAttribute": modify_instance_attribute,
    "ResetInstanceAttribute": reset_instance_attribute,
    "DescribeInstanceStatus": describe_instance_status,
    "MonitorInstances": monitor_instances,
    "UnmonitorInstances": unmonitor_instances,
    "DescribeInstanceCreditSpecifications": describe_instance_credit_specifications,
    "CreateKeyPair": create_key_pair,
    "ImportKeyPair": import_key_pair,
    "DescribeKeyPairs": describe_key_pairs,
    "DeleteKeyPair": delete_key_pair,
    "CreateSecurityGroup": create_security_group,
    "DeleteSecurityGroup": delete_security_group,
    "DescribeSecurityGroups": describe_security_groups,
    "AuthorizeSecurityGroupIngress": authorize_security_group_ingress,
    "RevokeSecurityGroupIngress": revoke_security_group_ingress,
    "AuthorizeSecurityGroupEgress": authorize_security_group_egress,
    "RevokeSecurityGroupEgress": revoke_security_group_egress,
    "DescribeSecurityGroupRules": describe_security_group_rules,
    "UpdateSecurityGroupRuleDescriptionsIngress": update_security_group_rule_descriptions_ingress,
    "UpdateSecurityGroupRuleDescriptionsEgress": update_security_group_rule_descriptions_egress,
    "ModifySecurityGroupRules": modify_security_group_rules,
    "AllocateAddress": allocate_address,
    "ReleaseAddress": release_address,
    "AssociateAddress": associate_address,
    "DisassociateAddress": disassociate_address,
    "DescribeAddresses": describe_addresses,
    "RunInstances": run_instances,
    "DescribeInstances": describe_instances,
    "TerminateInstances": terminate_instances,
    "RebootInstances": reboot_instances,
    "StopInstances": stop_instances,
    "StartInstances": start_instances,
    "GetConsoleOutput": get_console_output,
    "DescribeImages": describe_images,
    "RegisterImage": register_image,
    "DeregisterImage": deregister_image,
    "CreateImage": create_image,
    "DescribeImageAttribute": describe_image_attribute,
    "ModifyImageAttribute": modify_image_attribute,
    "ResetImageAttribute": reset_image_attribute,
    "CreateTags": create_tags,
    "DeleteTags": delete_tags,
    "DescribeTags": describe_tags,
}


def modify_instance_metadata_options(c: Cloud, who: Caller, p: Params) -> Result:
    """IMDSv2 required or optional, the hop limit, and the metadata service on or off for an instance."""
    _need(p, "InstanceId")
    return c.instances.modify_metadata_options(who, p)


ACTIONS["ModifyInstanceMetadataOptions"] = modify_instance_metadata_options


# --- EBS: volumes and snapshots (euca.services.volumes, euca.services.snapshots) ----------------------

def create_volume(c: Cloud, who: Caller, p: Params) -> Result:
    return c.volumes.create(who, p)


def describe_volumes(c: Cloud, who: Caller, p: Params) -> Result:
    return c.volumes.describe(who, p)


def delete_volume(c: Cloud, who: Caller, p: Params) -> Result:
    c.volumes.delete(who, _need(p, "VolumeId"))
    return {}


def attach_volume(c: Cloud, who: Caller, p: Params) -> Result:
    return c.volumes.attach(who, _need(p, "VolumeId"), _need(p, "InstanceId"), _need(p, "Device"))


def detach_volume(c: Cloud, who: Caller, p: Params) -> Result:
    return c.volumes.detach(who, _need(p, "VolumeId"), p.get("InstanceId"), p.get("Device"), bool(p.get("Force")))


def describe_volume_status(c: Cloud, who: Caller, p: Params) -> Result:
    return c.volumes.status(who, p)


def describe_volume_attribute(c: Cloud, who: Caller, p: Params) -> Result:
    return c.volumes.attribute(who, _need(p, "VolumeId"), _need(p, "Attribute"))


def modify_volume_attribute(c: Cloud, who: Caller, p: Params) -> Result:
    c.volumes.modify_attribute(who, _need(p, "VolumeId"), p.get("AutoEnableIO"))
    return {}


def create_snapshot(c: Cloud, who: Caller, p: Params) -> Result:
    return c.snapshots.create(who, _need(p, "VolumeId"), p.get("Description") or "", p.get("TagSpecifications"))


def describe_snapshots(c: Cloud, who: Caller, p: Params) -> Result:
    return c.snapshots.describe(who, p)


def delete_snapshot(c: Cloud, who: Caller, p: Params) -> Result:
    c.snapshots.delete(who, _need(p, "SnapshotId"))
    return {}


def copy_snapshot(c: Cloud, who: Caller, p: Params) -> Result:
    _need(p, "SourceSnapshotId")
    return c.snapshots.copy(who, p, c.zones.region)


def describe_snapshot_attribute(c: Cloud, who: Caller, p: Params) -> Result:
    return c.snapshots.attribute(who, _need(p, "SnapshotId"), _need(p, "Attribute"))


def modify_snapshot_attribute(c: Cloud, who: Caller, p: Params) -> Result:
    c.snapshots.modify(who, p)
    return {}


def reset_snapshot_attribute(c: Cloud, who: Caller, p: Params) -> Result:
    c.snapshots.reset(who, _need(p, "SnapshotId"), _need(p, "Attribute"))
    return {}


ACTIONS.update({
    "CreateVolume": create_volume,
    "DescribeVolumes": describe_volumes,
    "DeleteVolume": delete_volume,
    "AttachVolume": attach_volume,
    "DetachVolume": detach_volume,
    "DescribeVolumeStatus": describe_volume_status,
    "DescribeVolumeAttribute": describe_volume_attribute,
    "ModifyVolumeAttribute": modify_volume_attribute,
    "CreateSnapshot": create_snapshot,
    "DescribeSnapshots": describe_snapshots,
    "DeleteSnapshot": delete_snapshot,
    "CopySnapshot": copy_snapshot,
    "DescribeSnapshotAttribute": describe_snapshot_attribute,
    "ModifySnapshotAttribute": modify_snapshot_attribute,
    "ResetSnapshotAttribute": reset_snapshot_attribute,
})
