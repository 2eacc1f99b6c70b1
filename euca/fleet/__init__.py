"""The cluster controller's side of its nodes: node controller clients, polling, and the box's in-process nodes."""

from euca.fleet.box import STATE_CODES, BoxNodes, NodeSpec, Timings
from euca.fleet.fleet import Fleet, LocalNode, NodeHandle, Poll, RemoteNode, Sighting

__all__ = [
    "STATE_CODES",
    "BoxNodes",
    "Fleet",
    "LocalNode",
    "NodeHandle",
    "NodeSpec",
    "Poll",
    "RemoteNode",
    "Sighting",
    "Timings",
]
