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


_OUT_OF_DESCRIPTORS = """
import os, resource, sys
from pathlib import Path
from euca.core.s3errors import ServiceUnavailable
from euca.walrus.blobs import Blobs, close_runs, manifest

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
blobs = Blobs(Path(sys.argv[1]), min_free=0.0, fsync=False)
print("raised", resource.getrlimit(resource.RLIMIT_NOFILE)[0] == hard)
parts = []
for n in range(100):
    staged = blobs.stage()
    staged.write(bytes([n]) * 10)
    parts.append((staged.place(), 10))
blob = manifest(parts)
before = len(os.listdir("/proc/self/fd"))
resource.setrlimit(resource.RLIMIT_NOFILE, (before + 40, before + 40))
try:
    blobs.open_runs(blob, 0, 1000)
except ServiceUnavailable as exc:
    print("refused", exc.status, len(os.listdir("/proc/self/fd")) == before)
runs = blobs.open_runs(blob, 15, 20)  # a range touches only its parts: three files
print("range", [(offset, length) for _, offset, length in runs])
close_runs(runs)
try:
    blobs.open(blob, 1000)  # the joined file of the Python interface: the same
except ServiceUnavailable:
    print("joined refused", len(os.listdir("/proc/self/fd")) == before)
"""


def test_a_read_needing_more_descriptors_than_the_process_may_open_is_refused_with_503(tmp_path: Path) -> None:
    """In a process of its own (its limits are lowered for good): the soft limit is lifted to the hard
    one when the blob directory opens; a read of more parts than descriptors are left answers 503 and
    closes what it opened; a range opens only the parts it touches."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _OUT_OF_DESCRIPTORS, str(tmp_path / "walrus")],
                          capture_output=True, text=True, timeout=60, cwd=Path(__file__).parent.parent)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["raised True", "refused 503 True", "range [(5, 5), (0, 10), (0, 5)]",
                                        "joined refused True"]
