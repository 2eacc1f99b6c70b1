"""SQLite's write-ahead log under a steady stream of commits: it rewinds and is cut back, instead of
growing by every commit for good, and nothing committed is lost on the way."""

from __future__ import annotations

import os
from pathlib import Path

from euca.store import Store
from euca.store.db import WAL_LIMIT

COMMITS = 16_000
ROW = 16 << 10  # each commit writes about five pages: some 300 MB of log in all


def test_the_log_stays_bounded_under_back_to_back_commits(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "euca.db"))
    wal = tmp_path / "euca.db-wal"
    body = "x" * ROW
    sizes = []
    try:
        for n in range(COMMITS):
            with store.transaction() as tx:
                tx.put("thing", f"t-{n % 2000}", "acct", {"n": n, "pad": body})
            if n % 100 == 0:
                sizes.append(os.path.getsize(wal))
        assert store.count("thing", "acct") == 2000
        assert store.get("thing", "t-1999") == {"n": COMMITS - 1, "pad": body}
    finally:
        store.close()
    written = COMMITS * ROW
    assert written > 6 * WAL_LIMIT  # without the rewinds the log would be about this long
    assert max(sizes) < 4 * WAL_LIMIT, f"the log grew to {max(sizes) >> 20} MiB"
    # it came back down during the stream, not only at its end
    peak_at = sizes.index(max(sizes))
    assert min(sizes[peak_at:]) <= WAL_LIMIT + (1 << 20) or peak_at == len(sizes) - 1
    reopened = Store(str(tmp_path / "euca.db"))
    try:
        assert reopened.get("thing", "t-0") == {"n": COMMITS - 2000, "pad": body}
    finally:
        reopened.close()
