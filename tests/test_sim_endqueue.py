"""The simulator's queue of instance ends against its plain-Python twin."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyx.endqueue import EndQueue
from pyx.twins import endqueue as twin

# A history: pushes of (time, instance) and pops, in any order; event ids are drawn in push order.
steps = st.lists(st.one_of(st.tuples(st.sampled_from([0.0, 1.0, 2.5, 7.0]) | st.floats(0, 1e6), st.integers(0, 99)),
                           st.none()), max_size=300)


def replay(queue: Any, history: list[tuple[float, int] | None]) -> list[object]:
    """Everything a caller sees while running the history: each push's answer, each pop and the earliest."""
    seen: list[object] = []
    seq = 0
    for step in history:
        if step is None:
            if not len(queue):
                with pytest.raises(IndexError):
                    queue.pop()
                continue
            seen.append(queue.pop())
        else:
            seq += 1
            seen.append(queue.push(step[0], seq, f"i-{step[1]:08X}"))
        seen.append((len(queue), queue.first() if len(queue) else None))
    while len(queue):
        seen.append(queue.pop())
    return seen


@settings(max_examples=300, deadline=None)
@given(steps)
def test_the_kernel_and_the_twin_agree_on_every_history(history: list[tuple[float, int] | None]) -> None:
    assert replay(EndQueue(), history) == replay(twin.EndQueue(), history)


def test_ends_come_earliest_first_and_ties_in_the_order_they_were_queued() -> None:
    queue = EndQueue()
    assert queue.push(5.0, 1, "i-1") is True
    assert queue.push(3.0, 2, "i-2") is True
    assert queue.push(3.0, 3, "i-3") is False  # the same time, queued later: after i-2
    assert queue.push(9.0, 4, "i-4") is False
    assert queue.first() == (3.0, 2)
    assert [queue.pop() for _ in range(4)] == [(2, "i-2"), (3, "i-3"), (1, "i-1"), (4, "i-4")]
    with pytest.raises(IndexError):
        queue.first()
    with pytest.raises(IndexError):
        queue.pop()


def test_the_queue_holds_its_items_until_they_are_taken() -> None:
    queue = EndQueue()
    for k in range(1000):  # past the first growth of its array
        queue.push(float(k % 7), k, [k])
    items = [queue.pop()[1] for _ in range(1000)]
    assert sorted(item[0] for item in items) == list(range(1000))
