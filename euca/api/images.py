"""Images kept in Walrus: the EC2 service's image records (``euca.services.images``) joined to
Walrus's side of images (``euca.walrus.images``), which sit on one line and never import each other."""

from __future__ import annotations

from pathlib import Path

from euca.api.s3 import AccountDirectory
from euca.services.images import Images
from euca.services.seed import images_of
from euca.store import Store
from euca.walrus import Walrus
from euca.walrus.images import ImageStore


def keep_images(images: Images, data_dir: Path, walrus: Walrus | None = None) -> ImageStore:
    """From now on ``images`` keep their bytes in ``walrus`` (by default the data directory's,
    opened over the images' store): imports store them there, RegisterImage unbundles into it,
    RunInstances hands nodes presigned URLs. A server then ``start``s the unbundling worker and
    ``close``s it when it stops."""
    if walrus is None:
        walrus = Walrus(images.store, data_dir / "walrus", AccountDirectory(images.accounts))
    stored = ImageStore(walrus, images, data_dir)
    images.bytes = stored
    return stored


def images_in_walrus(store: Store, data_dir: Path) -> Images:
    """The store's images (and its admin account), their bytes in ``<data_dir>/walrus``: what the
    administrator's commands and a fresh cloud's seeding work with."""
    images = images_of(store)
    keep_images(images, data_dir)
    return images
