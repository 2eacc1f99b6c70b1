"""RunInstances: the request checked, an EBS-backed image's root volumes restored
(``euca.services.ebs_roots``), the instances placed and addressed by the cluster controller,
recorded durably, and only then handed to their node controllers (ncRunInstance). A repeated
ClientToken answers the reservation it made before. What this needs of the instance service is
:class:`LaunchHost` (``euca.services.instances.Instances``)."""

from __future__ import annotations

import base64
import binascii
from typing import Any, Protocol

from drivers.protocol import InstanceSpec
from euca.cluster import ClusterController, RunRequest
from euca.core.errors import (
    IdempotentParameterMismatch,
    InstanceLimitExceeded,
    InsufficientAddressCapacity,
    InsufficientInstanceCapacity,
    InvalidKeyPairNotFound,
    InvalidParameterCombination,
    InvalidParameterValue,
    MissingParameter,
)
from euca.fleet.box import BoxNodes
from euca.services.accounts import Accounts
from euca.services.addresses import Addresses
from euca.services.common import Caller, Ids
from euca.services.ebs_roots import RootVolumes, drop_roots, make_roots, room_for, root_mapping
from euca.services.groups import DEFAULT, Groups
from euca.services.images import Images
from euca.services.instance_record import MAX_USER_DATA, Instance, metadata_options
from euca.services.keypairs import KeyPairs
from euca.services.tags import Tags
from euca.storage import StorageError
from euca.store import Store
from pyx.errors import Exhausted, InsufficientCapacity, KernelError

MAX_PER_REQUEST = 256  # the CC's MAXINSTANCES is 2048; one reservation asks for at most this many


class LaunchHost(Protocol):
    """What RunInstances needs of the instance service."""

    @property
    def roots(self) -> RootVolumes | None: ...

    def with_token(self, account: str, token: str) -> list[Instance]:
        """The account's instances launched with this ClientToken, by launch index."""
        ...

    def admit(self, inst: Instance) -> None:
        """A new instance, recorded durably, joins those the service knows."""
        ...

    def end(self, ending: list[Instance], now: float, failure: str = "") -> None: ...

    def launch_spec(self, inst: Instance) -> InstanceSpec: ...

    def reservation(self, caller: Caller, instances: list[Instance]) -> dict[str, Any]: ...


class InstanceLauncher:
    def __init__(self, host: LaunchHost, store: Store, ids: Ids, cc: ClusterController, box: BoxNodes,
                 accounts: Accounts, images: Images, keypairs: KeyPairs, groups: Groups, addresses: Addresses,
                 tags: Tags) -> None:
        self._host, self._store, self._ids, self._cc, self._box = host, store, ids, cc, box
        self._accounts, self._images, self._keypairs = accounts, images, keypairs
        self._groups, self._addresses, self._tags = groups, addresses, tags

    def run(self, caller: Caller, p: dict[str, Any]) -> dict[str, Any]:
        image_id = p.get("ImageId")
        if not image_id:
            raise MissingParameter("The request must contain the parameter ImageId")
        low, high = p["MinCount"], p["MaxCount"]
        if low < 1 or high < 1:
            raise InvalidParameterValue("MinCount and MaxCount must be at least 1")
        if low > high:
            raise InvalidParameterValue(f"MinCount ({low}) must not exceed MaxCount ({high})")
        if low > MAX_PER_REQUEST:
            raise InstanceLimitExceeded(f"at most {MAX_PER_REQUEST} instances per request")
        high = min(high, MAX_PER_REQUEST)
        token = p.get("ClientToken") or ""
        if len(token) > 64 or not token.isascii() or not token.isprintable():
            raise InvalidParameterValue("ClientToken is at most 64 printable ASCII characters")
        addressing = p.get("AddressingType")
        if addressing not in (None, "", "public", "private"):
            raise InvalidParameterValue(f"AddressingType must be public or private, not {addressing[:32]}")
        tag_pairs = self._tags.specified(p.get("TagSpecifications"), "instance")
        vmtype = p.get("InstanceType") or "m1.small"
        if vmtype not in self._cc.vmtypes:
            raise InvalidParameterValue(f"Invalid value '{vmtype[:32]}' for InstanceType")
        image = self._images.launchable(self._images.visible(caller, image_id, "machine"))
        kernel_id = p.get("KernelId") or image.kernel_id
        ramdisk_id = p.get("RamdiskId") or image.ramdisk_id
        kernel = self._images.launchable(self._images.visible(caller, kernel_id, "kernel")) if kernel_id else None
        ramdisk = self._images.launchable(self._images.visible(caller, ramdisk_id, "ramdisk")) if ramdisk_id else None
        behavior = p.get("InstanceInitiatedShutdownBehavior") or "terminate"
        if behavior not in ("terminate", "stop"):
            raise InvalidParameterValue(f"InstanceInitiatedShutdownBehavior must be stop or terminate, "
                                        f"not {str(behavior)[:32]}")
        if behavior == "stop" and not image.ebs:
            raise InvalidParameterCombination("instance-store backed instances cannot be stopped: "
                                              "InstanceInitiatedShutdownBehavior must be terminate")
        if p.get("DisableApiStop") and not image.ebs:
            raise InvalidParameterCombination("instance-store backed instances cannot be stopped: "
                                              "DisableApiStop applies to EBS-backed instances")
        root_size, root_delete = root_mapping(image, p) if image.ebs else (0, True)
        key_name = p.get("KeyName") or ""
        if key_name and self._keypairs.get(caller.account, key_name) is None:
            raise InvalidKeyPairNotFound(f"The key pair '{key_name[:255]}' does not exist")
        self._groups.ensure_default(caller.account)
        names = list(p.get("SecurityGroups") or [])
        names += [self._groups.find(caller, group_id=g).name for g in p.get("SecurityGroupIds") or []]
        for name in names:
            self._groups.find(caller, name)
        names = list(dict.fromkeys(names)) or [DEFAULT]
        zone = (p.get("Placement") or {}).get("AvailabilityZone") or self._cc.name
        if zone != self._cc.name:
            raise InvalidParameterValue(f"Invalid availability zone: [{zone[:64]}]")
        http_tokens, hop_limit, http_endpoint = metadata_options(p.get("MetadataOptions") or {})
        user_data = p.get("UserData") or ""
        try:
            if len(base64.b64decode(user_data, validate=True)) > MAX_USER_DATA:
                raise InvalidParameterValue(f"User data is limited to {MAX_USER_DATA} bytes")
        except (binascii.Error, ValueError):
            raise InvalidParameterValue("UserData must be base64 encoded") from None
        request_shape = (image_id, vmtype, key_name, tuple(names), low, high)
        if token:
            same = self._host.with_token(caller.account, token)
            if same:
                first = same[0]
                if (first.image_id, first.vmtype, first.key_name, tuple(first.groups)) != request_shape[:4]:
                    raise IdempotentParameterMismatch("The client token was used with different parameters")
                return self._host.reservation(caller, same)

        # An EBS-backed image: each instance's root volume is made from the snapshot first, as many as
        # the cluster has room for (not MaxCount's worth, to drop most of them again), and no more
        # instances than roots are placed.
        if image.ebs:
            high = room_for(self._cc, vmtype, low, high)
        roots = (make_roots(self._host.roots, self._accounts, self._cc.name, caller, image, root_size, high)
                 if image.ebs else [])
        launches = []
        try:
            with self._store.transaction() as tx:
                reservation_id = self._ids.new("r", tx)
                instance_ids = [self._ids.new("i", tx) for _ in range(high)]
                try:
                    launches = self._cc.run(RunRequest(instance_ids, vmtype, low, caller.account, names[0], image_id,
                                                       self._addresses.dynamic and addressing != "private"))
                except Exhausted as exc:
                    raise InsufficientAddressCapacity(str(exc)) from None
                except InsufficientCapacity as exc:
                    raise InsufficientInstanceCapacity(str(exc)) from None
                except KernelError as exc:
                    raise InsufficientInstanceCapacity(str(exc)) from None
                now = self._box.clock()
                created = [Instance(
                    launch.instance_id, reservation_id, caller.account, image_id, vmtype, launch.node,
                    launch.net.mac, launch.net.private_ip, launch.net.vlan, launch.net.group, now, self._cc.name,
                    names, kernel_id, ramdisk_id, key_name, user_data, index, token, None,
                    bool(p.get("DisableApiTermination")), bool((p.get("Monitoring") or {}).get("Enabled")),
                    http_tokens, hop_limit, http_endpoint)
                    for index, launch in enumerate(launches)]
                for inst, volume_id in zip(created, roots, strict=False):
                    inst.root_device, inst.root_volume, inst.root_delete = image.root_device, volume_id, root_delete
                for inst in created:
                    inst.shutdown_behavior, inst.api_stop_disabled = behavior, bool(p.get("DisableApiStop"))
                    inst.private_addressing = addressing == "private"
                    tx.put("instance", inst.instance_id, inst.account, inst.body())
                self._addresses.launched(tx, [i.instance_id for i in created])
                if tag_pairs:
                    self._tags.write(tx, [(i.instance_id, i.account) for i in created], list(dict(tag_pairs).items()))
        except BaseException:
            for launch in launches:
                self._cc.terminate(launch.instance_id)
            drop_roots(self._host.roots, roots)
            raise
        drop_roots(self._host.roots, roots[len(created):])
        for inst in created:
            self._host.admit(inst)
            if inst.root_volume and self._host.roots is not None:
                self._host.roots.attach_root(inst.root_volume, inst.instance_id, inst.root_device, inst.node,
                                       inst.root_delete)
        # The records are durable before any node hears of them: a crash in between leaves instances
        # that no node reports, which the cloud ends after INSTANCE_TIMEOUT + SHUT_DOWN_TIME.
        # each node downloads the images from Walrus by presigned URL, checking size and digest
        locations = {i.image_id: self._images.node_location(i) for i in (image, kernel, ramdisk)
                     if i is not None and not i.ebs}
        for inst in created:
            try:
                spec = self._host.launch_spec(inst)
            except StorageError as exc:
                # no node hears of it: ended at once, with the reason DescribeInstances gives
                self._host.end([inst], self._box.clock(), failure=f"its root volume {inst.root_volume}: {exc}")
                continue
            self._box.fleet.launch(inst.node, spec, locations)
            if inst.root_volume and self._host.roots is not None:
                self._host.roots.plug_root(inst.root_volume)
        return self._host.reservation(caller, created)
