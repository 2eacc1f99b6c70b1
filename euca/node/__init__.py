"""The node controller (NC): instances through a hypervisor driver, the image cache, instance disks, the NC service."""

from euca.node.controller import NodeController, NodeStorage
from euca.node.images import (
    HttpImages,
    ImageCache,
    ImageLocation,
    ImageSource,
    ImageSources,
    LocalFiles,
    SourceImage,
)

__all__ = [
    "HttpImages",
    "ImageCache",
    "ImageLocation",
    "ImageSource",
    "ImageSources",
    "LocalFiles",
    "NodeController",
    "NodeStorage",
    "SourceImage",
]
