"""Plain-Python twin of ``pyx.presence``: which nodes' image caches hold which images."""

from __future__ import annotations


class PresenceMap:
    def __init__(self, n_nodes: int = 0, n_images: int = 0) -> None:
        if n_nodes < 0 or n_images < 0:
            raise ValueError("n_nodes and n_images must be >= 0")
        self._rows: dict[int, set[int]] = {}
        self._shape = (n_nodes, n_images)

    @property
    def shape(self) -> tuple[int, int]:
        return self._shape

    def set(self, node: int, image: int, present: bool) -> None:
        if node < 0 or image < 0:
            raise IndexError("node and image must be >= 0")
        self._shape = (max(self._shape[0], node + 1), max(self._shape[1], image + 1))
        row = self._rows.setdefault(image, set())
        if present:
            row.add(node)
        else:
            row.discard(node)

    def has(self, node: int, image: int) -> bool:
        return node in self._rows.get(image, set())

    def count(self, image: int) -> int:
        return len(self._rows.get(image, set()))

    def nodes_with(self, image: int) -> list[int]:
        return sorted(self._rows.get(image, set()))

    def drop_node(self, node: int) -> None:
        for row in self._rows.values():
            row.discard(node)
