"""The blob directory's file names: drawn from the OS (a seeded ``random`` does not repeat them),
and a name that is already taken is refused when a body is placed, never replaced."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from euca.walrus import blobs as blobs_module
from euca.walrus.blobs import INLINE, Blobs, new_id


def test_names_do_not_repeat_when_the_process_generator_is_seeded() -> None:
    random.seed(1234)
    first = [new_id() for _ in range(3)]
    random.seed(1234)
    again = [new_id() for _ in range(3)]
    assert not set(first) & set(again)
    assert all(len(name) == 32 and int(name, 16) >= 0 for name in first + again)


def test_placing_a_body_under_a_name_already_taken_is_refused(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    blobs = Blobs(tmp_path / "walrus", min_free=0.0, fsync=False)
    monkeypatch.setattr(blobs_module, "new_id", lambda: "ab" + "0" * 30)
    first_body, second_body = os.urandom(INLINE + 1), os.urandom(INLINE + 1)
    first = blobs.stage(inline=True)
    first.write(first_body)
    name = first.place()
    assert name == "ab" + "0" * 30 and blobs.path(name).read_bytes() == first_body
    second = blobs.stage(inline=True)
    assert second.id == name  # the same name twice, as a generator that repeats would give
    second.write(second_body)
    with pytest.raises(FileExistsError):
        second.place()
    second.discard()
    assert blobs.path(name).read_bytes() == first_body  # the first object's bytes are untouched
    assert not list(blobs.tmp.iterdir())  # and the refused body left nothing behind
