"""What the metadata service knows of one instance: the cloud's records, flattened.

The cloud controller's services build one of these per instance (``euca.api.metadata``); the
service turns it into the key tree an instance reads. It is frozen and compared whole, so a
changed public address or security group makes a new tree and nothing else does.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class InstanceFacts:
    instance_id: str
    reservation_id: str
    account_id: str  # the owner's 12 digits
    image_id: str
    manifest: str  # the image's location in Walrus: ami-manifest-path
    launch_index: int
    vmtype: str
    private_ip: str
    public_ip: str  # "" without one; STATIC and SYSTEM report the private address
    mac: str
    zone: str
    region: str
    groups: tuple[str, ...]
    group_ids: tuple[str, ...]
    kernel_id: str
    ramdisk_id: str
    key_name: str
    public_key: str  # OpenSSH line, "" without a key pair
    user_data: bytes
    launched: float  # Unix seconds: the identity document's pendingTime
    http_tokens: str = "optional"  # IMDSv2: "optional" or "required"
    http_endpoint: str = "enabled"  # "disabled": the service answers this instance 404
    domain: str = "eucalyptus.internal"
    hop_limit: int = 1  # HttpPutResponseHopLimit: how many routers past the instance a token may travel
