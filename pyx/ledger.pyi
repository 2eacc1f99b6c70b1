from collections.abc import Callable, Sequence
from typing import Any

from pyx.placement import Placement
from pyx.presence import PresenceMap

class Ledger:
    def __init__(
        self,
        placement: Placement,
        presence: PresenceMap,
        names: list[str],
        types: dict[str, int],
        attach: Callable[[str, str], Any],
        detach: Callable[[str], Any],
        use: Callable[[int, int, float], Any],
        unpin: Callable[[int, str], Any],
        node_index: Callable[[str], int],
        placed: type[tuple[Any, ...]] | None = None,
        net: type[tuple[Any, ...]] | None = None,
        cluster: str = "cluster01",
    ) -> None: ...
    def start(
        self, ids: Sequence[str], vmtype: str, min_count: int, image_id: str, image: int, key: str, now: float
    ) -> list[Any]: ...
    def end(self, instance_id: str, now: float) -> Any: ...
    def add(self, record: Sequence[Any]) -> None: ...
    def mark_cached(self, instance_id: str) -> None: ...
    def get(self, instance_id: str) -> Any: ...
    def records(self) -> list[Any]: ...
    def __contains__(self, instance_id: object) -> bool: ...
    def __len__(self) -> int: ...
