"""What the administrator puts into a cloud from local files: nodes of a fresh box, and images.

``euca up`` seeds a fresh data directory with its nodes and a public default machine image (a
kernel, a ramdisk and a root disk it makes itself, which the box's simulated nodes boot), so a
newcomer can run an instance the moment the cloud is up. ``euca image import`` registers images
from files the same way. Either way the bytes go into Walrus (``euca-images/<image id>``), where
every image is, and the image is available at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from euca.services.accounts import Accounts
from euca.services.common import ADMIN, Ids
from euca.services.images import AVAILABLE, Image, ImageBytes, Images
from euca.services.tags import Tags
from euca.store import Store
from pyx.digest import tree_digest_bytes, tree_digest_file

DEFAULT_IMAGE = "euca-default"
# What the default image's files hold: enough bytes to have a digest; the box's nodes never read them.
_DEFAULT_FILES = {
    "kernel": b"euca default kernel: booted by the simulated nodes of a cloud in a box\n",
    "ramdisk": b"euca default ramdisk\n",
    "machine": b"euca default root file system\n" + bytes(4096),
}


@dataclass(frozen=True)
class Imported:
    """The three images a machine image is launched with."""

    machine: str
    kernel: str
    ramdisk: str


def images_of(store: Store) -> Images:
    accounts = Accounts(store)
    if accounts.get(ADMIN) is None:
        accounts.create(ADMIN, admin=True)
    return Images(store, Ids(store), accounts, Tags(store))


def _bytes(images: Images) -> ImageBytes:
    if images.bytes is None:
        raise ValueError("images need Walrus to keep their bytes in")
    return images.bytes


def _digest(body: Path | bytes) -> str:
    return tree_digest_file(body) if isinstance(body, Path) else tree_digest_bytes(body)


def _same(images: Images, kind: str, digest: str) -> Image | None:
    return next((i for i in images.all() if i.kind == kind and i.digest == digest and i.state == AVAILABLE), None)


def store_image(images: Images, kind: str, body: Path | bytes, name: str, *,
                kernel_id: str | None = None, ramdisk_id: str | None = None, public: bool = True) -> str:
    """Put the bytes into Walrus and register them as the admin account: an image id, available."""
    admin = images.admin_caller()
    stored = _bytes(images)
    image_id = images.new_id(kind)
    location, size, digest = stored.put(image_id, body)
    try:
        return images.add(admin, image_id, location, name, size, digest, kernel_id=kernel_id,
                          ramdisk_id=ramdisk_id, public=public)
    except BaseException:
        stored.discard(image_id)
        raise


def import_files(images: Images, root: Path | bytes, *, kernel: Path | bytes | None = None,
                 ramdisk: Path | bytes | None = None, kernel_id: str | None = None, ramdisk_id: str | None = None,
                 name: str | None = None, public: bool = True) -> Imported:
    """Store the files in Walrus and register them as the admin account. A kernel or ramdisk that
    is already registered (same content) is reused, as is one named by id."""
    admin = images.admin_caller()
    parts: dict[str, str] = {}
    for kind, body, given in (("kernel", kernel, kernel_id), ("ramdisk", ramdisk, ramdisk_id)):
        if given:
            parts[kind] = images.visible(admin, given, kind).image_id
            continue
        if body is None:
            raise ValueError(f"give --{kind} FILE or --{kind}-id {'eki' if kind == 'kernel' else 'eri'}-...")
        digest = _digest(body)
        found = _same(images, kind, digest)
        label = body.name if isinstance(body, Path) else f"{DEFAULT_IMAGE}-{kind}"
        parts[kind] = found.image_id if found is not None else store_image(
            images, kind, body, f"{label}-{digest[:8]}", public=public)
    machine = store_image(images, "machine", root,
                          name or (root.name if isinstance(root, Path) else DEFAULT_IMAGE),
                          kernel_id=parts["kernel"], ramdisk_id=parts["ramdisk"], public=public)
    return Imported(machine, parts["kernel"], parts["ramdisk"])


def default_image(images: Images) -> Imported:
    """The public default machine image, registered on first use and found again after that."""
    found = next((i for i in images.all() if i.name == DEFAULT_IMAGE and i.kind == "machine"), None)
    if found is not None:
        return Imported(found.image_id, found.kernel_id, found.ramdisk_id)
    return import_files(images, _DEFAULT_FILES["machine"], kernel=_DEFAULT_FILES["kernel"],
                        ramdisk=_DEFAULT_FILES["ramdisk"], name=DEFAULT_IMAGE)


def first_start(store: Store, images: Images, nodes: int, cores: int, memory: int, disk: int) -> Imported | None:
    """Seed a fresh store: ``nodes`` in-box nodes of the given size (unless nodes are registered
    already), the admin account and the default image (``images``: the store's, with Walrus to keep
    the bytes in; ``euca.api.images.images_in_walrus``). None if the store was seeded before."""
    from euca.services.cloud import stored_nodes

    if store.meta("initialised") is not None:
        return None
    if not stored_nodes(store):
        with store.transaction() as tx:
            for i in range(1, nodes + 1):
                tx.put("node", f"node{i:02d}", ADMIN, {"cores": cores, "memory": memory, "disk": disk})
    image = default_image(images)
    with store.transaction() as tx:
        tx.set_meta("initialised", "1")
    return image
