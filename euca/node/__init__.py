"""The node controller: image cache, instance disks, the NC service, and the CC's clients of it."""

from euca.node.controller import NodeController, NodeStorage
from euca.node.fleet import Fleet, LocalNode, NodeHandle, Poll, RemoteNode, Sighting
from euca.node.images import ImageCache, ImageSource, LocalFiles, SourceImage

__all__ = [
    "Fleet",
    "ImageCache",
    "ImageSource",
    "LocalFiles",
    "LocalNode",
    "NodeController",
    "NodeHandle",
    "NodeStorage",
    "Poll",
    "RemoteNode",
    "Sighting",
    "SourceImage",
]
