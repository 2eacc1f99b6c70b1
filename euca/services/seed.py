"""What the administrator puts into a cloud from local files: nodes of a fresh box, and images.

``euca up`` seeds a fresh data directory with its nodes and a public default machine image (a
kernel, a ramdisk and a root disk it writes itself, which the box's simulated nodes boot), so a
newcomer can run an instance the moment the cloud is up. ``euca image import`` registers images
from files the same way.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path

from euca.services.accounts import Accounts
from euca.services.common import ADMIN, Ids
from euca.services.images import Image, Images
from euca.services.tags import Tags
from euca.store import Store

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


def _copy_in(path: Path, target: Path) -> Path:
    """The file under the data directory, named by its content so that the same file is kept once."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    stored = target / f"{digest.hexdigest()[:16]}-{path.name}"
    if not stored.exists():
        target.mkdir(parents=True, exist_ok=True)
        partial = stored.with_name(stored.name + ".partial")
        shutil.copyfile(path, partial)
        partial.replace(stored)
    return stored


def _registered(images: Images, location: str, kind: str) -> Image | None:
    return next((i for i in images.all() if i.location == location and i.kind == kind), None)


def import_files(images: Images, target: Path, root: Path, *, kernel: Path | None = None,
                 ramdisk: Path | None = None, kernel_id: str | None = None, ramdisk_id: str | None = None,
                 name: str | None = None, public: bool = True) -> Imported:
    """Copy the files into ``target`` and register them as the admin account. A kernel or ramdisk
    file that is already registered (same content) is reused, as is one named by id."""
    admin = images.admin_caller()
    parts: dict[str, str] = {}
    for kind, path, given in (("kernel", kernel, kernel_id), ("ramdisk", ramdisk, ramdisk_id)):
        if given:
            parts[kind] = images.visible(admin, given, kind).image_id
            continue
        if path is None:
            raise ValueError(f"give --{kind} FILE or --{kind}-id {'eki' if kind == 'kernel' else 'eri'}-...")
        stored = str(_copy_in(path, target))
        found = _registered(images, stored, kind)
        parts[kind] = found.image_id if found is not None else images.register(
            admin, stored, name=f"{path.name}-{Path(stored).name[:8]}", kind=kind, public=public)
    stored_root = str(_copy_in(root, target))
    machine = images.register(admin, stored_root, name=name or root.name, kind="machine", public=public,
                              kernel_id=parts["kernel"], ramdisk_id=parts["ramdisk"])
    return Imported(machine, parts["kernel"], parts["ramdisk"])


def default_image(images: Images, data_dir: Path) -> Imported:
    """The public default machine image, registered on first use and found again after that."""
    found = next((i for i in images.all() if i.name == DEFAULT_IMAGE and i.kind == "machine"), None)
    if found is not None:
        return Imported(found.image_id, found.kernel_id, found.ramdisk_id)
    source = data_dir / "images" / "default"
    source.mkdir(parents=True, exist_ok=True)
    files = {}
    for kind, content in _DEFAULT_FILES.items():
        files[kind] = source / f"{DEFAULT_IMAGE}-{kind}.img"
        files[kind].write_bytes(content)
    return import_files(images, data_dir / "images", files["machine"], kernel=files["kernel"],
                        ramdisk=files["ramdisk"], name=DEFAULT_IMAGE)


def first_start(store: Store, data_dir: Path, nodes: int, cores: int, memory: int, disk: int) -> Imported | None:
    """Seed a fresh store: ``nodes`` in-box nodes of the given size (unless nodes are registered
    already), the admin account and the default image. None if the store was seeded before."""
    from euca.services.cloud import stored_nodes

    if store.meta("initialised") is not None:
        return None
    if not stored_nodes(store):
        with store.transaction() as tx:
            for i in range(1, nodes + 1):
                tx.put("node", f"node{i:02d}", ADMIN, {"cores": cores, "memory": memory, "disk": disk})
    image = default_image(images_of(store), data_dir)
    with store.transaction() as tx:
        tx.set_meta("initialised", "1")
    return image
