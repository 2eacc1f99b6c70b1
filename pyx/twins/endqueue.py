"""Plain-Python twin of ``pyx.endqueue``: instance ends on a heap of (time, event id, item) tuples."""

from __future__ import annotations

from heapq import heappop, heappush
from typing import Any


class EndQueue:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Any]] = []

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, when: float, seq: int, item: Any) -> bool:
        heappush(self._heap, (when, seq, item))
        return self._heap[0][1] == seq

    def first(self) -> tuple[float, int]:
        if not self._heap:
            raise IndexError("first of an empty EndQueue")
        return self._heap[0][0], self._heap[0][1]

    def pop(self) -> tuple[int, Any]:
        if not self._heap:
            raise IndexError("pop from an empty EndQueue")
        _, seq, item = heappop(self._heap)
        return seq, item
