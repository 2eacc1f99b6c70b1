"""Types of ``pyx.slotpool``: the lowest-free-first pool every network allocator is built on."""

class SlotPool:
    """Slots handed out lowest free first; each network pool maps its items onto them."""

    @property
    def free_count(self) -> int: ...
