"""Plain-Python twin of ``pyx.ledger``: the cluster controller's running instances."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pyx.errors import Conflict, KernelError


def _record(kind: type[tuple[Any, ...]] | None, fields: tuple[Any, ...]) -> Any:
    return fields if kind is None else tuple.__new__(kind, fields)


class Ledger:
    def __init__(self, placement: Any, presence: Any, names: list[str], types: dict[str, int],
                 attach: Callable[[str, str], Any], detach: Callable[[str], Any],
                 use: Callable[[int, int, float], Any], unpin: Callable[[int, str], Any],
                 node_index: Callable[[str], int], placed: type[tuple[Any, ...]] | None = None,
                 net: type[tuple[Any, ...]] | None = None, cluster: str = "cluster01") -> None:
        if placement is None or presence is None:
            raise TypeError("a placement and a presence map are needed")
        self._placement = placement
        self._presence = presence
        self._names = names
        self._types = types
        self._attach, self._detach, self._use, self._unpin = attach, detach, use, unpin
        self._node_index = node_index
        self._placed, self._net, self._cluster = placed, net, cluster
        self._running: dict[str, tuple[Any, ...]] = {}

    def _view(self, r: tuple[Any, ...]) -> Any:
        return _record(self._placed, (r[0], r[1], r[2], _record(self._net, r[6:]), r[3], r[4], r[5]))

    def start(self, ids: Sequence[str], vmtype: str, min_count: int, image_id: str, image: int, key: str,
              now: float) -> list[Any]:
        t = self._types[vmtype]
        if len(set(ids)) != len(ids) or any(i in self._running for i in ids):
            raise Conflict("instance ids must be new and unique")
        nodes = self._placement.place_many(t, min_count, len(ids), image, now)
        nets: list[Any] = []
        try:
            for instance_id in ids[:len(nodes)]:
                nets.append(self._attach(instance_id, key))
        except KernelError:
            if len(nets) < min_count:
                for instance_id in ids[:len(nets)]:
                    self._detach(instance_id)
                for node in nodes:
                    self._placement.release(node, t, now)
                raise
        for node in nodes[len(nets):]:
            self._placement.release(node, t, now)
        launches = []
        for instance_id, node, net in zip(ids, nodes, nets, strict=False):
            cached = image >= 0 and self._presence.has(node, image)
            name = self._names[node]
            self._running[instance_id] = (instance_id, name, vmtype, image_id, node, cached, *net)
            launches.append(_record(self._placed, (instance_id, name, vmtype, net, image_id, node, cached)))
            if cached:
                self._use(node, image, now)
        return launches

    def end(self, instance_id: str, now: float) -> Any:
        r = self._running.pop(instance_id, None)
        if r is None:
            raise KeyError(f"{instance_id} is not running in {self._cluster}")
        node = r[4] if r[4] >= 0 else self._node_index(r[1])
        self._placement.release(node, self._types[r[2]], now)
        self._detach(instance_id)
        if r[5]:
            self._unpin(node, r[3])
        return self._view(r)

    def add(self, record: Sequence[Any]) -> None:
        if record[0] in self._running:
            raise Conflict(f"{record[0]}: listed twice")
        self._running[record[0]] = (record[0], record[1], record[2], record[4], record[5], bool(record[6]),
                                    *record[3])

    def mark_cached(self, instance_id: str) -> None:
        r = self._running[instance_id]
        self._running[instance_id] = (*r[:5], True, *r[6:])

    def get(self, instance_id: str) -> Any:
        r = self._running.get(instance_id)
        return None if r is None else self._view(r)

    def records(self) -> list[Any]:
        return [self._view(r) for r in self._running.values()]

    def __contains__(self, instance_id: object) -> bool:
        return instance_id in self._running

    def __len__(self) -> int:
        return len(self._running)
