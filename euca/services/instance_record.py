"""An instance's durable record (what the store keeps of it, one row per instance) and the
MetadataOptions checks RunInstances and ModifyInstanceMetadataOptions share."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from euca.cluster import NetAssignment, Placed
from euca.core.errors import InvalidParameterValue

MAX_USER_DATA = 16384


@dataclass
class Instance:
    instance_id: str
    reservation_id: str
    account: str
    image_id: str
    vmtype: str
    node: str
    mac: str
    private_ip: str
    vlan: int
    netgroup: str
    launched: float
    zone: str
    groups: list[str] = field(default_factory=list)
    kernel_id: str = ""
    ramdisk_id: str = ""
    key_name: str = ""
    user_data: str = ""
    launch_index: int = 0
    client_token: str = ""
    terminated: float | None = None
    api_termination_disabled: bool = False  # disableApiTermination
    monitored: bool = False  # Monitor/UnmonitorInstances
    # MetadataOptions: IMDSv2 required or optional, the PUT response's hop limit, the service on or off
    http_tokens: str = "optional"
    hop_limit: int = 1
    http_endpoint: str = "enabled"
    # EBS-backed: the root device and the volume there; when StopInstances stopped it (None: not stopped)
    root_device: str = ""
    root_volume: str = ""
    root_delete: bool = True
    stopped: float | None = None
    shutdown_behavior: str = "terminate"  # InstanceInitiatedShutdownBehavior
    api_stop_disabled: bool = False  # disableApiStop
    private_addressing: bool = False  # AddressingType=private: no dynamic public address, at start or restart
    # why the cloud, not its user, ended or stopped it as it started: the storage controller's reason
    failure: str = ""

    def body(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def placed(self) -> Placed:
        return Placed(self.instance_id, self.node, self.vmtype,
                      NetAssignment(self.instance_id, self.mac, self.private_ip, self.vlan, self.netgroup),
                      self.image_id)


def metadata_options(p: Mapping[str, Any], current: tuple[str, int, str] = ("optional", 1, "enabled"),
                     ) -> tuple[str, int, str]:
    """HttpTokens, HttpPutResponseHopLimit and HttpEndpoint, checked, over ``current``."""
    tokens = p.get("HttpTokens") or current[0]
    if tokens not in ("optional", "required"):
        raise InvalidParameterValue(f"HttpTokens must be optional or required, not {str(tokens)[:32]}")
    hops = p.get("HttpPutResponseHopLimit")
    hops = current[1] if hops is None else hops
    if not isinstance(hops, int) or not 1 <= hops <= 64:
        raise InvalidParameterValue("HttpPutResponseHopLimit must be between 1 and 64")
    endpoint = p.get("HttpEndpoint") or current[2]
    if endpoint not in ("enabled", "disabled"):
        raise InvalidParameterValue(f"HttpEndpoint must be enabled or disabled, not {str(endpoint)[:32]}")
    return tokens, hops, endpoint
