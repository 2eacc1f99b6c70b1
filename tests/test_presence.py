"""The node x image presence map against its twin."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pyx.presence import PresenceMap
from pyx.twins.presence import PresenceMap as TwinMap

ops = st.lists(
    st.one_of(
        st.tuples(st.just("set"), st.integers(-1, 300), st.integers(-1, 6), st.booleans()),
        st.tuples(st.just("drop"), st.integers(-1, 300), st.just(0), st.just(False)),
    ),
    max_size=80,
)


@settings(max_examples=150, deadline=None)
@given(ops)
def test_kernel_matches_twin(steps: list[tuple[str, int, int, bool]]) -> None:
    kernel, twin = PresenceMap(), TwinMap()
    for op, node, image, present in steps:
        outcomes = []
        for m in (kernel, twin):
            try:
                if op == "set":
                    m.set(node, image, present)
                else:
                    m.drop_node(node)
                outcomes.append(None)
            except IndexError as exc:
                outcomes.append(type(exc))
        assert outcomes[0] == outcomes[1]
        assert kernel.shape == twin.shape
        for img in range(-1, 7):
            assert kernel.nodes_with(img) == twin.nodes_with(img)
            assert kernel.count(img) == twin.count(img)
            assert kernel.has(node, img) == twin.has(node, img)


def test_grows_with_nodes_and_images() -> None:
    m = PresenceMap(4, 2)
    assert m.shape == (4, 2)
    m.set(5000, 9, True)
    assert m.shape == (5001, 10)
    assert m.nodes_with(9) == [5000]
    assert m.has(5000, 9) and not m.has(4999, 9)
    m.drop_node(5000)
    assert m.count(9) == 0
