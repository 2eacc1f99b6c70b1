"""Errors raised by the hot paths and by their plain-Python twins alike.

The cloud turns them into AWS error codes; the messages use Eucalyptus's own wording, which names
what ran out ("Not enough resources available: vlan tags").
"""


class KernelError(Exception):
    """Base of every error a kernel raises on bad input or exhaustion."""


class InsufficientCapacity(KernelError):
    """No node (or not enough nodes for a reservation's minimum) can take the request."""

    def __init__(self, message: str = "Not enough resources available: vm instances") -> None:
        super().__init__(message)


class Exhausted(KernelError):
    """A network pool ran out; ``what`` names it: "vlan tags", "addresses", "public ips", ..."""

    def __init__(self, what: str) -> None:
        super().__init__(f"Not enough resources available: {what}")
        self.what = what


class Conflict(KernelError):
    """An assignment clashes with one already held (two owners of one address, tag or MAC)."""
