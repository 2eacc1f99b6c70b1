"""The keys an instance reads, as Eucalyptus 4.4's ``VmInstanceMetadata`` serves them, flattened to
one table of path -> body so that answering is one dictionary lookup.

A directory is in the table twice, with and without its trailing slash, and its body lists its keys
one per line, subdirectories with a ``/`` after them (the top level without, as EC2 lists it).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping

from euca.metadata.facts import InstanceFacts

# What an instance-store image's disks are called (Eucalyptus: sda1 root, sda2 ephemeral, sda3 swap).
BLOCK_DEVICES = {"ami": "sda1", "emi": "sda1", "root": "/dev/sda1", "ephemeral0": "sda2", "swap": "sda3"}
IDENTITY_VERSION = "2010-08-31"

Tree = dict[str, bytes]
# document -> (pkcs7, signature), both base64 text
Sign = Callable[[bytes], tuple[str, str]]


def identity_document(f: InstanceFacts) -> bytes:
    """dynamic/instance-identity/document: the JSON an instance proves who it is with."""
    doc = {
        "accountId": f.account_id, "architecture": "x86_64", "availabilityZone": f.zone,
        "billingProducts": None, "devpayProductCodes": None, "marketplaceProductCodes": None,
        "imageId": f.image_id, "instanceId": f.instance_id, "instanceType": f.vmtype,
        "kernelId": f.kernel_id or None, "pendingTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(f.launched)),
        "privateIp": f.private_ip, "ramdiskId": f.ramdisk_id or None, "region": f.region,
        "version": IDENTITY_VERSION,
    }
    return json.dumps(doc, indent=2).encode()


def _meta_data(f: InstanceFacts) -> dict[str, object]:
    hostname = f.private_ip
    keys: dict[str, object] = {
        "ami-id": f.image_id,
        "ami-launch-index": str(f.launch_index),
        "ami-manifest-path": f.manifest,
        "block-device-mapping": dict(BLOCK_DEVICES),
        "hostname": hostname,
        "instance-id": f.instance_id,
        "instance-type": f.vmtype,
        "local-hostname": hostname,
        "local-ipv4": f.private_ip,
        "mac": f.mac,
        "network": {"interfaces": {"macs": {f.mac: {
            "device-number": "0", "local-hostname": hostname, "local-ipv4s": f.private_ip, "mac": f.mac,
            "owner-id": f.account_id, "security-groups": "\n".join(f.groups),
            "security-group-ids": "\n".join(f.group_ids),
            **({"public-hostname": f.public_ip, "public-ipv4s": f.public_ip} if f.public_ip else {}),
        }}}},
        "placement": {"availability-zone": f.zone},
        "reservation-id": f.reservation_id,
        "security-groups": "\n".join(f.groups),
        "services": {"domain": f.domain},
    }
    if f.public_ip:
        keys["public-hostname"] = f.public_ip
        keys["public-ipv4"] = f.public_ip
    if f.kernel_id:
        keys["kernel-id"] = f.kernel_id
    if f.ramdisk_id:
        keys["ramdisk-id"] = f.ramdisk_id
    if f.public_key:
        line = f.public_key.strip()
        if len(line.split()) == 2:
            line += f" {f.key_name}"  # EC2 names the key in the comment
        line += "\n"
        keys["public-keys"] = {"0": {"openssh-key": line}}
    return keys


def _flatten(tree: Tree, prefix: str, node: Mapping[str, object], top: bool = False) -> None:
    names = []
    for name, value in node.items():
        path = prefix + name
        if isinstance(value, Mapping):
            _flatten(tree, path + "/", value)
            names.append(name if top else name + "/")
        else:
            tree[path] = str(value).encode()
            names.append(name)
    listing = "\n".join(names).encode()
    tree[prefix] = listing
    if prefix:
        tree[prefix[:-1]] = listing


def build(f: InstanceFacts, sign: Sign | None) -> Tree:
    """Every path under a version (``latest/`` or a date) for this instance."""
    document = identity_document(f)
    identity: dict[str, object] = {"document": document.decode()}
    if sign is not None:
        pkcs7, signature = sign(document)
        identity |= {"pkcs7": pkcs7, "signature": signature, "rsa2048": pkcs7}
    top: dict[str, object] = {"dynamic": {"instance-identity": identity}, "meta-data": _meta_data(f)}
    if f.user_data:
        top["user-data"] = ""
    tree: Tree = {}
    _flatten(tree, "", top, top=True)
    # Eucalyptus also answers "ephemeral" for ephemeral0 (LP#513842); it is not listed.
    tree["meta-data/block-device-mapping/ephemeral"] = BLOCK_DEVICES["ephemeral0"].encode()
    if f.public_key:
        # EC2 lists the key as "0=<name>"
        tree["meta-data/public-keys/"] = tree["meta-data/public-keys"] = f"0={f.key_name}".encode()
    if f.user_data:
        tree["user-data"] = f.user_data
    return tree
