"""Results that do not change while they are held, so the wire can render each one once."""

from __future__ import annotations

from typing import Any


class Frozen(dict[str, Any]):
    """A result that will not change while it is held: its XML is built once and then reused.

    A service hands out the same Frozen dict until the thing it describes changes (an instance's
    state, address, tags), so describing 200 unchanged instances costs 200 appends."""

    __slots__ = ("shape", "xml")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.shape: object = None  # the output shape ``xml`` was rendered for
        self.xml = ""
