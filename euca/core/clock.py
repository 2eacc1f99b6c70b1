"""The cloud's one clock.

Every component that reads the time takes a :data:`Clock` (a function returning seconds) and
defaults to :func:`wall`: the cluster controller, the node fleet, the node controllers and the
services all compare and store instants on the same scale. The simulator passes SimPy's clock
instead; tests pass a clock they move by hand.
"""

from __future__ import annotations

import time

from drivers.protocol import Clock

# Seconds since the epoch. Launch and termination times are stored and shown to clients, and a
# restarted server compares them with the time now, so the cloud cannot use a monotonic clock.
wall: Clock = time.time

__all__ = ["Clock", "wall"]
