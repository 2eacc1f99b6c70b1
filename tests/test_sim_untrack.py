"""``pyx.untrack.untracked`` against CPython's collector: it untracks the tuples a collection would."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pyx.untrack import untracked

atoms = st.one_of(st.integers(), st.floats(allow_nan=False), st.text(max_size=3), st.binary(max_size=2), st.none(),
                  st.booleans())
# A shape to build: an atom, a tuple, list or dict of shapes (built afresh each time, innermost first).
shapes = st.recursive(atoms.map(lambda a: ("atom", a)),
                      lambda inner: st.tuples(st.sampled_from(["tuple", "list", "dict"]),
                                              st.lists(inner, max_size=4)),
                      max_leaves=12)


def build(shape: tuple[str, Any], settle: Callable[[tuple[Any, ...]], tuple[Any, ...]]) -> Any:
    kind, body = shape
    if kind == "atom":
        return body
    items = [build(s, settle) for s in body]
    if kind == "list":
        return items
    if kind == "dict":
        return dict(enumerate(items))
    return settle(tuple(items))


@contextmanager
def no_collection() -> Iterator[None]:
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def plain(value: Any) -> bool:
    """What the collector leaves untracked once it has been over everything (innermost tuples first):
    a value that is no container, or a tuple of such values."""
    if isinstance(value, list | dict):
        return False
    return type(value) is not tuple or all(plain(item) for item in value)


@settings(max_examples=300, deadline=None)
@given(st.tuples(st.just("tuple"), st.lists(shapes, max_size=5)))
def test_it_untracks_the_tuples_of_plain_values_at_any_depth(shape: tuple[str, Any]) -> None:
    with no_collection():
        ours = build(shape, untracked)
    assert ours == build(shape, lambda t: t)
    assert gc.is_tracked(ours) == (not plain(ours))


@settings(max_examples=200, deadline=None)
@given(st.lists(shapes.filter(lambda shape: shape[0] != "tuple"), max_size=5))
def test_one_level_deep_it_untracks_what_a_collection_untracks(items: list[tuple[str, Any]]) -> None:
    """Items that are no tuples: the collector's answer then does not depend on the order it takes them in."""
    with no_collection():
        by_collector = tuple(build(s, lambda t: t) for s in items)
        ours = untracked(tuple(build(s, lambda t: t) for s in items))
        gc.collect(0)  # a young-generation collection untracks young tuples of plain values
    assert gc.is_tracked(ours) == gc.is_tracked(by_collector)


def test_a_tuple_that_may_hold_a_cycle_stays_tracked() -> None:
    row = (1.0, "i-00000001", 32, b"", ())
    assert untracked(row) is row and not gc.is_tracked(row)
    holders: list[tuple[Any, ...]] = [(1.0, []), (1.0, {}), ("x", (1.0, [])), (1.0, gc)]
    for holder in holders:
        assert untracked(holder) is holder and gc.is_tracked(holder)
    cycle: list[Any] = []
    loop = untracked((cycle,))
    cycle.append(loop)
    del cycle, loop
    assert gc.collect() >= 2  # the list and the tuple: still visible to the collector, and freed
