"""The cluster controller: node registry, scheduler, network manager and image cache view."""

from euca.cluster.controller import ClusterController, Launch, Placed, RunRequest
from euca.cluster.network import GroupNetwork, NetAssignment, NetworkManager
from euca.cluster.nodes import NodeRegistry, Overrides, ResourceReport
from euca.cluster.scheduler import Availability, PowerPlan, Scheduler
from euca.cluster.vmtypes import AWS_VMTYPES, CLOUD_VMTYPES, DEFAULT_VMTYPES, VmType, VmTypes

__all__ = [
    "AWS_VMTYPES",
    "CLOUD_VMTYPES",
    "DEFAULT_VMTYPES",
    "Availability",
    "ClusterController",
    "GroupNetwork",
    "Launch",
    "NetAssignment",
    "NetworkManager",
    "NodeRegistry",
    "Overrides",
    "Placed",
    "PowerPlan",
    "ResourceReport",
    "RunRequest",
    "Scheduler",
    "VmType",
    "VmTypes",
]
