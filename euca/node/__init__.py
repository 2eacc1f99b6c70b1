"""The node controller (NC): instances through a hypervisor driver, the image cache, instance disks, the NC service."""

from euca.node.controller import NodeController, NodeStorage
from euca.node.images import ImageCache, ImageSource, LocalFiles, SourceImage

__all__ = [
    "ImageCache",
    "ImageSource",
    "LocalFiles",
    "NodeController",
    "NodeStorage",
    "SourceImage",
]
