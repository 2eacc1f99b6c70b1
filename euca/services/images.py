"""Images: machine images (emi-), kernels (eki-) and ramdisks (eri-), with launch permissions.

Every image's bytes are in Walrus, under the cloud's own bucket (``euca-images/<image id>``) with
their size and ``tree-sha256`` digest recorded here; nodes download them by presigned URL
(``euca.walrus.images``). They get there two ways:

* RegisterImage names a bundle's manifest in Walrus (``bucket/prefix.manifest.xml``, what
  ``euca bundle-image`` and ``euca upload-bundle`` made). The caller must be able to read it,
  else ``InvalidManifest``: the code AWS answers an unreadable manifest with ("HTTP 403
  (Forbidden) response for URL ...: check your manifest path"), rather than AuthFailure, which EC2
  keeps for the request's own credentials. The manifest's type (``<type>``, or ``kernel_id`` /
  ``ramdisk_id`` of ``true``) says machine, kernel or ramdisk, and only administrators register
  kernels and ramdisks. The image is ``pending`` while the cloud checks the manifest's signature
  and unbundles it off the request path, then ``available``, or ``failed`` with the reason in its
  StateReason.
* ``euca image import`` and the default image of a new cloud store local files directly
  (``euca.services.seed``): ``available`` at once, location ``euca-images/<image id>``.

An EBS-backed machine image has no bytes of its own: RegisterImage with ``RootDeviceName`` and
``BlockDeviceMappings`` whose root is a snapshot (:meth:`Images.register_ebs`), or CreateImage of an
EBS-backed instance, records the mappings, and RunInstances restores each instance's root volume
from the snapshot. A snapshot an image names cannot be deleted.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import orjson

from euca.core.errors import (
    InvalidAMIAttributeItemValue,
    InvalidAMIIDMalformed,
    InvalidAMIIDNotFound,
    InvalidAMIIDUnavailable,
    InvalidAMINameDuplicate,
    InvalidBlockDeviceMapping,
    InvalidManifest,
    InvalidParameterCombination,
    InvalidParameterValue,
    MissingParameter,
    UnauthorizedOperation,
)
from euca.core.text import printable
from euca.node.images import ImageLocation
from euca.services.accounts import Accounts
from euca.services.common import ADMIN, Caller, Ids, matches, present, tag_fields, tag_list, wanted, well_formed
from euca.services.tags import Tags
from euca.store import Store

DEVICE = re.compile(r"^/dev/(?:sd|xvd|vd|hd)[a-z]{1,2}\d{0,2}$")
PREFIX = {"machine": "emi", "kernel": "eki", "ramdisk": "eri"}
PENDING, AVAILABLE, FAILED = "pending", "available", "failed"
# What EC2 documents for DescribeImages. Images here are paravirtual Linux images with no product
# codes, copied from nowhere: the filters on those are accepted and match nothing. The
# block-device-mapping ones compare with the mappings the description shows (none for an
# instance-store image).
FILTERS = ("architecture", "creation-date", "description", "ena-support", "hypervisor", "image-id", "image-type",
           "is-public", "kernel-id", "manifest-location", "name", "owner-alias", "owner-id", "platform-details",
           "ramdisk-id", "root-device-name", "root-device-type", "state", "state-reason-code",
           "state-reason-message", "tag-key", "tag-value", "usage-operation", "virtualization-type",
           *(f"block-device-mapping.{f}" for f in ("delete-on-termination", "device-name", "encrypted",
                                                   "snapshot-id", "volume-size", "volume-type")),
           "free-tier-eligible", "image-allowed", "platform", "product-code", "product-code.type",
           "source-image-id", "source-image-region", "source-instance-id", "sriov-net-support")
# block-device-mapping.* filter -> the mapping's field it compares with
_MAPPING = {"block-device-mapping.device-name": "DeviceName", "block-device-mapping.snapshot-id": "SnapshotId",
            "block-device-mapping.volume-size": "VolumeSize", "block-device-mapping.volume-type": "VolumeType",
            "block-device-mapping.encrypted": "Encrypted",
            "block-device-mapping.delete-on-termination": "DeleteOnTermination"}
ATTRIBUTES = ("launchPermission", "description", "kernel", "ramdisk", "productCodes", "blockDeviceMapping")


@dataclass
class Image:
    image_id: str
    account: str
    kind: str
    location: str
    name: str
    description: str = ""
    architecture: str = "x86_64"
    kernel_id: str = ""
    ramdisk_id: str = ""
    public: bool = False
    launch: list[str] = field(default_factory=list)  # account ids allowed to launch
    created: float = 0.0
    state: str = AVAILABLE  # pending while the cloud unbundles it; failed with ``reason``
    reason: str = ""
    size: int = -1  # bytes of the image in Walrus (-1: a record from before Walrus, not stored)
    digest: str = ""  # its tree-sha256
    # an EBS-backed machine image: its root device and block device mappings (the root's is a snapshot)
    root_device: str = ""
    mappings: list[dict[str, Any]] = field(default_factory=list)

    def body(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @property
    def stored(self) -> bool:
        return self.size >= 0 and bool(self.digest)

    @property
    def ebs(self) -> bool:
        return bool(self.root_device)

    def root_mapping(self) -> dict[str, Any]:
        return next(m for m in self.mappings if m["DeviceName"] == self.root_device)


def _created(img: Image) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(img.created))


def _mapped(mappings: list[dict[str, Any]], key: str) -> list[str]:
    """Each mapping's ``key`` (its own or its EBS volume's) as a filter compares with it."""
    out = []
    for m in mappings:
        value = m[key] if key in m else (m.get("Ebs") or {}).get(key)
        if isinstance(value, bool):
            out.append("true" if value else "false")
        elif value not in (None, ""):
            out.append(str(value))
    return out


class ManifestFacts(Protocol):
    """What RegisterImage reads from a manifest before anything is verified (the worker checks the
    signature later and fails the image if the verified manifest says otherwise)."""

    @property
    def kind(self) -> str: ...
    @property
    def architecture(self) -> str: ...
    @property
    def kernel_id(self) -> str: ...
    @property
    def ramdisk_id(self) -> str: ...


class ImageBytes(Protocol):
    """Where images' bytes live (``euca.walrus.images.ImageStore``)."""

    def manifest_facts(self, account_id: str, location: str) -> ManifestFacts:
        """Read the manifest as the account would; InvalidManifest if it cannot."""
        ...

    def put(self, image_id: str, body: Path | bytes) -> tuple[str, int, str]:
        """Store an image's bytes: where (``euca-images/<image id>``), their size and tree-sha256 digest."""
        ...

    def submit(self, image_id: str) -> None:
        """Unbundle a pending image off the request path."""
        ...

    def node_location(self, image: Image) -> ImageLocation:
        """What a node fetches the image with: a presigned URL, the size and the digest."""
        ...

    def discard(self, image_id: str) -> None:
        """The image is deregistered: its bytes go."""
        ...


def kind_of_location(location: str) -> str:
    base = location.rsplit("/", 1)[-1].lower()
    if base.startswith("vmlinu") or "kernel" in base:
        return "kernel"
    if base.startswith("initrd") or "ramdisk" in base or base.startswith("initramfs"):
        return "ramdisk"
    return "machine"


class Images:
    def __init__(self, store: Store, ids: Ids, accounts: Accounts, tags: Tags) -> None:
        self._store, self._ids, self._accounts, self._tags = store, ids, accounts, tags
        self.bytes: ImageBytes | None = None  # Walrus, once the cloud keeps images there
        # (caller, snapshot id) -> its size in GiB, for an EBS-backed image's root; set by the snapshots
        self.snapshot_size: Callable[[Caller, str], int] | None = None
        self._images: dict[str, Image] = {}
        for _, _, body in store.load("image"):
            img = Image(**body)
            self._images[img.image_id] = img
        tags.add_resolver(self._resolve)

    @property
    def store(self) -> Store:
        return self._store

    @property
    def accounts(self) -> Accounts:
        return self._accounts

    def reload(self) -> None:
        self._images = {b["image_id"]: Image(**b) for _, _, b in self._store.load("image")}

    def all(self) -> list[Image]:
        return sorted(self._images.values(), key=lambda i: i.image_id)

    def admin_caller(self) -> Caller:
        admin = self._accounts.get(ADMIN)
        if admin is None:
            raise ValueError("the cloud has no admin account yet")
        return admin.caller

    def _resolve(self, caller: Caller, resource: str) -> tuple[str, str] | None:
        img = self._images.get(resource)
        return (img.account, "image") if img is not None and caller.sees(img.account) else None

    def _may_launch(self, caller: Caller, img: Image) -> bool:
        return caller.sees(img.account) or img.public or caller.account_id in img.launch

    def visible(self, caller: Caller, image_id: str, kind: str | None = None) -> Image:
        """An image the caller may launch, or the NotFound error EC2 gives."""
        if not well_formed(image_id, "emi", "eki", "eri", "ami", "aki", "ari"):
            raise InvalidAMIIDMalformed(f"Invalid id: \"{image_id[:64]}\"")
        img = self._images.get(image_id)
        if img is None or not self._may_launch(caller, img) or (kind is not None and img.kind != kind):
            raise InvalidAMIIDNotFound(f"The image id '[{image_id}]' does not exist")
        return img

    def _owned(self, caller: Caller, image_id: str) -> Image:
        img = self.visible(caller, image_id)
        if not caller.sees(img.account):
            raise UnauthorizedOperation(f"You are not the owner of {image_id}")
        return img

    def _checked(self, caller: Caller, kind: str, name: str, description: str, architecture: str,
                 kernel_id: str, ramdisk_id: str) -> None:
        if kind != "machine" and not caller.admin:
            raise UnauthorizedOperation(f"Only administrators can register {kind} images")
        if not 3 <= len(name) <= 128 or not name.isprintable():
            raise InvalidParameterValue("image names are 3-128 printable characters")
        if any(i.name == name and i.account == caller.account for i in self._images.values()):
            raise InvalidAMINameDuplicate(f"AMI name {name} is already in use by {caller.account}")
        if not printable(description, 255):
            raise InvalidParameterValue("Description: at most 255 printable characters")
        if architecture not in ("i386", "x86_64"):
            raise InvalidParameterValue(f"architecture {architecture[:32]}: i386 or x86_64")
        if kind != "machine" and (kernel_id or ramdisk_id):
            raise InvalidParameterCombination("kernels and ramdisks take no kernel or ramdisk")
        if kernel_id:
            self.visible(caller, kernel_id, "kernel")
        if ramdisk_id:
            self.visible(caller, ramdisk_id, "ramdisk")

    def register(self, caller: Caller, location: str, name: str | None = None, description: str = "",
                 architecture: str | None = None, kernel_id: str | None = None, ramdisk_id: str | None = None,
                 public: bool = False) -> str:
        """RegisterImage: a bundle's manifest in Walrus. The image is pending until the cloud has
        unbundled it; its type, and unless given its architecture, kernel and ramdisk, are the
        manifest's."""
        if not location or len(location) > 1024 or not location.isprintable():
            raise MissingParameter("The request must contain the parameter ImageLocation")
        if self.bytes is None:
            raise InvalidManifest(f"The manifest {location[:256]} is not accessible: this cloud has no Walrus")
        facts = self.bytes.manifest_facts(caller.account_id, location)
        kind = facts.kind
        name = name or location.rsplit("/", 1)[-1].removesuffix(".manifest.xml")
        architecture = architecture or facts.architecture or "x86_64"
        if kind == "machine":
            kernel_id = kernel_id or facts.kernel_id or None
            ramdisk_id = ramdisk_id or facts.ramdisk_id or None
        self._checked(caller, kind, name, description, architecture, kernel_id or "", ramdisk_id or "")
        image_id = self._record(caller, kind, location, name, description, architecture, kernel_id or "",
                                ramdisk_id or "", public, PENDING)
        self.bytes.submit(image_id)
        return image_id

    def register_ebs(self, caller: Caller, p: dict[str, Any], made: dict[str, int] | None = None) -> str:
        """RegisterImage of an EBS-backed machine image: ``RootDeviceName`` and
        ``BlockDeviceMappings`` whose root is a snapshot the caller owns or may restore. It is
        available at once: RunInstances makes each instance's root volume from the snapshot.
        CreateImage gives the snapshots it has just begun (``made``: id -> GiB): the image is
        pending until they complete (:meth:`snapshot_done`)."""
        made = made or {}
        root = p.get("RootDeviceName") or ""
        if not root:
            raise MissingParameter("The request must contain the parameter RootDeviceName")
        if self.snapshot_size is None:
            raise InvalidParameterValue("EBS-backed images need snapshots, and this cloud has no Walrus")
        if not DEVICE.match(root):
            raise InvalidParameterValue(f"Value ({root[:32]}) for parameter rootDeviceName is invalid.")
        mappings: list[dict[str, Any]] = []
        for n, given in enumerate(p.get("BlockDeviceMappings") or [], 1):
            device = given.get("DeviceName") or ""
            if not DEVICE.match(device) or any(m["DeviceName"] == device for m in mappings):
                raise InvalidBlockDeviceMapping(f"BlockDeviceMapping.{n}: device {device[:32]!r} is invalid or "
                                                "given twice")
            ebs = given.get("Ebs")
            if given.get("VirtualName"):
                mappings.append({"DeviceName": device, "VirtualName": str(given["VirtualName"])[:32]})
                continue
            if given.get("NoDevice") is not None or not isinstance(ebs, dict):
                raise InvalidBlockDeviceMapping(f"BlockDeviceMapping.{n}: give Ebs or VirtualName")
            snapshot_id = ebs.get("SnapshotId") or ""
            size = ebs.get("VolumeSize")
            if snapshot_id:
                least = made[snapshot_id] if snapshot_id in made else self.snapshot_size(caller, snapshot_id)
                size = least if size is None else size
                if not isinstance(size, int) or size < least:
                    raise InvalidBlockDeviceMapping(f"BlockDeviceMapping.{n}: volume size {size}GiB is smaller "
                                                    f"than the snapshot's {least}GiB")
            elif device == root:
                raise InvalidBlockDeviceMapping(f"The root device {root} must be given a snapshot (Ebs.SnapshotId)")
            elif not isinstance(size, int) or size < 1:
                raise InvalidBlockDeviceMapping(f"BlockDeviceMapping.{n}: give Ebs.SnapshotId or Ebs.VolumeSize")
            delete = ebs.get("DeleteOnTermination")
            mappings.append({"DeviceName": device, "Ebs": {
                "SnapshotId": snapshot_id, "VolumeSize": size, "VolumeType": "standard", "Encrypted": False,
                "DeleteOnTermination": True if delete is None else bool(delete)}})
        if not any(m["DeviceName"] == root and "Ebs" in m for m in mappings):
            raise InvalidBlockDeviceMapping(f"The root device {root} has no EBS block device mapping")
        name = p.get("Name") or ""
        architecture = p.get("Architecture") or "x86_64"
        kernel_id, ramdisk_id = p.get("KernelId") or "", p.get("RamdiskId") or ""
        description = p.get("Description") or ""
        self._checked(caller, "machine", name, description, architecture, kernel_id, ramdisk_id)
        with self._store.transaction() as tx:
            img = Image(self._ids.new("emi", tx), caller.account, "machine", "", name, description, architecture,
                        kernel_id, ramdisk_id, False, [], time.time(), PENDING if made else AVAILABLE, "", -1, "",
                        root, mappings)
            img.location = f"{self._owner_id(caller.account)}/{name}"
            tx.put("image", img.image_id, img.account, img.body())
            tx.changed("image", applied=True)
        self._images[img.image_id] = img
        return img.image_id

    def check_new(self, caller: Caller, name: str, description: str, kernel_id: str, ramdisk_id: str) -> None:
        """CreateImage's checks before it snapshots anything: RegisterImage's for a machine image."""
        self._checked(caller, "machine", name, description, "x86_64", kernel_id, ramdisk_id)

    def snapshot_done(self, snapshot_id: str, completed: bool) -> None:
        """A snapshot CreateImage began is completed (its image is available) or failed (so is the image)."""
        for img in list(self._images.values()):
            if img.state == PENDING and img.ebs and any(
                    (m.get("Ebs") or {}).get("SnapshotId") == snapshot_id for m in img.mappings):
                self.settle(img.image_id, AVAILABLE if completed else FAILED,
                            "" if completed else f"the snapshot {snapshot_id} of its root volume failed")

    def using_snapshot(self, snapshot_id: str) -> str | None:
        """The image whose block device mappings name this snapshot, if any (it cannot be deleted)."""
        for img in self._images.values():
            if any((m.get("Ebs") or {}).get("SnapshotId") == snapshot_id for m in img.mappings):
                return img.image_id
        return None

    def new_id(self, kind: str) -> str:
        """An image id issued now, for bytes stored before their record is written (an import)."""
        with self._store.transaction() as tx:
            return self._ids.new(PREFIX[kind], tx)

    def add(self, caller: Caller, image_id: str, location: str, name: str, size: int, digest: str,
            description: str = "", architecture: str = "x86_64", kernel_id: str | None = None,
            ramdisk_id: str | None = None, public: bool = False) -> str:
        """An image whose bytes are already stored (``size`` bytes, ``digest`` their tree-sha256):
        available at once. ``image_id`` comes from :meth:`new_id`; its prefix says the kind."""
        kind = next(k for k, p in PREFIX.items() if image_id.startswith(p + "-"))
        self._checked(caller, kind, name, description, architecture, kernel_id or "", ramdisk_id or "")
        return self._record(caller, kind, location, name, description, architecture, kernel_id or "",
                            ramdisk_id or "", public, AVAILABLE, image_id=image_id, size=size, digest=digest)

    def _record(self, caller: Caller, kind: str, location: str, name: str, description: str, architecture: str,
                kernel_id: str, ramdisk_id: str, public: bool, state: str, image_id: str = "", size: int = -1,
                digest: str = "") -> str:
        with self._store.transaction() as tx:
            img = Image(image_id or self._ids.new(PREFIX[kind], tx), caller.account, kind, location, name,
                        description, architecture, kernel_id, ramdisk_id, public, [], time.time(), state, "",
                        size, digest)
            tx.put("image", img.image_id, img.account, img.body())
            tx.changed("image", applied=True)
        self._images[img.image_id] = img
        return img.image_id

    # --- what the unbundling worker and RunInstances use ---------------------------------------------

    def get(self, image_id: str) -> Image | None:
        return self._images.get(image_id)

    def pending(self) -> list[Image]:
        return [i for i in self.all() if i.state == PENDING]

    def settle(self, image_id: str, state: str, reason: str = "", size: int = -1, digest: str = "") -> bool:
        """A pending image is available (its bytes stored) or failed. False if it was deregistered
        meanwhile (its bytes are then the caller's to remove)."""
        with self._store.transaction() as tx:
            row = tx.execute("SELECT body FROM records WHERE kind = 'image' AND id = ?", (image_id,)).fetchone()
            if row is None:
                return False
            body = orjson.loads(row[0]) | {"state": state, "reason": reason, "size": size, "digest": digest}
            tx.put("image", image_id, body["account"], body)
        img = self._images.get(image_id)
        if img is not None:
            img.state, img.reason, img.size, img.digest = state, reason, size, digest
        return True

    def launchable(self, img: Image) -> Image:
        """RunInstances' check: only an available image is launched."""
        if img.state != AVAILABLE:
            raise InvalidAMIIDUnavailable(f"The image {img.image_id} is {img.state}"
                                          + (f": {img.reason}" if img.reason else ""))
        return img

    def node_location(self, img: Image) -> ImageLocation | str:
        """What a node fetches the image with: a presigned URL with size and digest for an image
        in Walrus; a record from before Walrus names a file."""
        if self.bytes is not None and img.stored:
            return self.bytes.node_location(img)
        return img.location

    def deregister(self, caller: Caller, image_id: str) -> None:
        img = self._owned(caller, image_id)
        with self._store.transaction() as tx:
            tx.delete("image", img.image_id)
            self._tags.drop_in(tx, img.image_id)
            tx.changed("image", applied=True)
        del self._images[img.image_id]
        if self.bytes is not None and (img.stored or img.state == PENDING):
            self.bytes.discard(img.image_id)

    def describe(self, caller: Caller, image_ids: list[str] | None, owners: list[str] | None,
                 executable_by: list[str] | None, filters: Any) -> list[dict[str, Any]]:
        chosen = wanted(filters, FILTERS)
        images = [i for i in self._images.values() if self._may_launch(caller, i)]
        if image_ids:
            for id_ in image_ids:
                if not any(i.image_id == id_ for i in images):
                    if not well_formed(id_, "emi", "eki", "eri", "ami", "aki", "ari"):
                        raise InvalidAMIIDMalformed(f"Invalid id: \"{id_[:64]}\"")
                    raise InvalidAMIIDNotFound(f"The image id '[{id_}]' does not exist")
            images = [i for i in images if i.image_id in image_ids]
        if owners:
            ids = {caller.account_id if o == "self" else o for o in owners}
            images = [i for i in images if self._owner_id(i.account) in ids or i.account in ids]
        if executable_by:
            def runs(i: Image) -> bool:
                for who in executable_by:
                    if who == "all" and i.public:
                        return True
                    if who == "self" and (i.account == caller.account or caller.account_id in i.launch or i.public):
                        return True
                    if who in i.launch:
                        return True
                return False
            images = [i for i in images if runs(i)]
        out = []
        for i in sorted(images, key=lambda i: i.image_id):
            owner = self._owner_id(i.account)
            tags = self._tags.of(i.image_id)
            failed, root = i.state == FAILED, self._root(i)
            fields = {"image-id": [i.image_id], "image-type": [i.kind], "name": [i.name], "owner-id": [owner],
                      "state": [i.state], "is-public": ["true" if i.public else "false"],
                      "architecture": [i.architecture], "kernel-id": present(i.kernel_id),
                      "ramdisk-id": present(i.ramdisk_id), "manifest-location": [i.location],
                      "description": present(i.description), "root-device-type": [root["RootDeviceType"]],
                      "root-device-name": [root["RootDeviceName"]], "owner-alias": [i.account],
                      "creation-date": [_created(i)], "ena-support": ["false"], "hypervisor": ["xen"],
                      "virtualization-type": ["paravirtual"], "platform-details": ["Linux/UNIX"],
                      "usage-operation": ["RunInstances"],
                      "state-reason-code": ["Client.InvalidManifest"] if failed else [],
                      "state-reason-message": present(i.reason) if failed else [],
                      **{n: _mapped(root.get("BlockDeviceMappings") or [], k) for n, k in _MAPPING.items()}}
            if matches(chosen, lambda n, f=fields, t=tags: f[n] if n in f else tag_fields(t, n)):  # type: ignore[misc]
                out.append({
                    "ImageId": i.image_id, "ImageLocation": i.location, "State": i.state, "OwnerId": owner,
                    "Public": i.public, "Architecture": i.architecture, "ImageType": i.kind,
                    "KernelId": i.kernel_id or None, "RamdiskId": i.ramdisk_id or None, "Name": i.name,
                    "Description": i.description or None, **self._root(i),
                    "VirtualizationType": "paravirtual", "Hypervisor": "xen",
                    "ImageOwnerAlias": i.account,
                    "CreationDate": _created(i),
                    "Tags": tag_list(tags),
                    "StateReason": {"Code": "Client.InvalidManifest", "Message": i.reason}
                    if failed else None})
        return out

    @staticmethod
    def _root(i: Image) -> dict[str, Any]:
        if i.ebs:
            return {"RootDeviceType": "ebs", "RootDeviceName": i.root_device, "BlockDeviceMappings": i.mappings}
        return {"RootDeviceType": "instance-store", "RootDeviceName": "/dev/sda1"}

    def _owner_id(self, account: str) -> str:
        a = self._accounts.get(account)
        return a.account_id if a else account

    # --- attributes --------------------------------------------------------------------------------

    def attribute(self, caller: Caller, image_id: str, attribute: str) -> dict[str, Any]:
        if attribute not in ATTRIBUTES:
            raise InvalidParameterValue(f"Attribute {attribute[:64]} is not one of {', '.join(ATTRIBUTES)}")
        img = self.visible(caller, image_id)
        out: dict[str, Any] = {"ImageId": img.image_id}
        if attribute == "launchPermission":
            if not caller.sees(img.account):
                raise UnauthorizedOperation(f"You are not the owner of {image_id}")
            out["LaunchPermissions"] = ([{"Group": "all"}] if img.public else []) + [{"UserId": u} for u in img.launch]
        elif attribute == "description":
            out["Description"] = {"Value": img.description}
        elif attribute == "kernel":
            out["KernelId"] = {"Value": img.kernel_id} if img.kernel_id else {}
        elif attribute == "ramdisk":
            out["RamdiskId"] = {"Value": img.ramdisk_id} if img.ramdisk_id else {}
        elif attribute == "productCodes":
            out["ProductCodes"] = []
        elif img.ebs:
            out["BlockDeviceMappings"] = img.mappings
        else:
            out["BlockDeviceMappings"] = [{"DeviceName": "sda1", "VirtualName": "ami"},
                                          {"DeviceName": "sda2", "VirtualName": "ephemeral0"},
                                          {"DeviceName": "sda3", "VirtualName": "swap"}]
        return out

    def modify(self, caller: Caller, p: dict[str, Any]) -> None:
        img = self._owned(caller, p["ImageId"])
        public, launch, description = img.public, list(img.launch), img.description
        attribute = p.get("Attribute")
        if "Description" in p or attribute == "description":
            value = (p.get("Description") or {}).get("Value", p.get("Value"))
            if not isinstance(value, str) or not printable(value, 255):
                raise InvalidParameterValue("Description: at most 255 printable characters")
            description = value
        changes: list[tuple[str, dict[str, Any]]] = []
        lp = p.get("LaunchPermission") or {}
        changes += [("add", x) for x in lp.get("Add") or []] + [("remove", x) for x in lp.get("Remove") or []]
        op = p.get("OperationType")
        if attribute == "launchPermission" or p.get("UserIds") or p.get("UserGroups"):
            if op not in ("add", "remove"):
                raise InvalidParameterValue("OperationType must be add or remove")
            changes += [(op, {"UserId": u}) for u in p.get("UserIds") or []]
            changes += [(op, {"Group": g}) for g in p.get("UserGroups") or []]
        if not changes and description == img.description:
            raise MissingParameter("Nothing to modify: give LaunchPermission, UserId, UserGroup or Description")
        for how, item in changes:
            if "Group" in item and item["Group"] is not None:
                if item["Group"] != "all":
                    raise InvalidAMIAttributeItemValue(f"Invalid attribute item value \"{item['Group'][:32]}\"")
                public = how == "add"
            elif item.get("UserId"):
                user = str(item["UserId"])
                if not (user.isdigit() and len(user) == 12):
                    raise InvalidAMIAttributeItemValue(f"Invalid attribute item value \"{user[:32]}\" for UserId")
                if how == "add" and user not in launch:
                    launch.append(user)
                elif how == "remove" and user in launch:
                    launch.remove(user)
        self._replace(img, public=public, launch=launch, description=description)

    def reset(self, caller: Caller, image_id: str, attribute: str) -> None:
        img = self._owned(caller, image_id)
        if attribute != "launchPermission":
            raise InvalidParameterValue("only launchPermission can be reset")
        self._replace(img, public=False, launch=[], description=img.description)

    def _replace(self, img: Image, public: bool, launch: list[str], description: str) -> None:
        body = img.body() | {"public": public, "launch": launch, "description": description}
        with self._store.transaction() as tx:
            tx.put("image", img.image_id, img.account, body)
        img.public, img.launch, img.description = public, launch, description
