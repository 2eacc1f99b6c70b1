"""Walrus's tables in the store: a store written by the earlier layout (small bodies in a table
of their own) opens with every body in place, on SQLite and PostgreSQL; versions' sequence
numbers order each key's versions whatever the clock did."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from euca.store import Store
from euca.walrus.catalog import Catalog, next_seq

# The layout before small bodies moved into their versions' rows.
_EARLIER = (
    "CREATE TABLE s3_object (bucket TEXT NOT NULL, key TEXT NOT NULL, version TEXT NOT NULL, seq BIGINT NOT NULL, "
    "latest INTEGER NOT NULL, marker INTEGER NOT NULL, blob TEXT NOT NULL, size BIGINT NOT NULL, etag TEXT NOT NULL, "
    "modified {real} NOT NULL, owner TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (bucket, key, version))",
    "CREATE INDEX s3_object_listing ON s3_object (bucket, latest, key)",
    "CREATE INDEX s3_object_blob ON s3_object (blob)",
    "CREATE TABLE s3_inline (blob TEXT PRIMARY KEY, data {binary} NOT NULL)",
    "CREATE TABLE s3_seq (id INTEGER PRIMARY KEY, value BIGINT NOT NULL)",  # the one counter versions came from
)
_BODY = '{"headers": {"content-type": "text/plain"}, "metadata": {}}'


def _earlier_store(url: str) -> None:
    store = Store(url)
    real, binary = ("DOUBLE PRECISION", "BYTEA") if store.is_postgres else ("REAL", "BLOB")
    with store.transaction() as tx:
        for statement in _EARLIER:
            tx.execute(statement.format(real=real, binary=binary))
        for n, (key, version, latest) in enumerate((("small", "null", 1), ("old", "v1", 0), ("old", "v2", 1))):
            tx.execute("INSERT INTO s3_object VALUES (?, ?, ?, ?, ?, 0, ?, 5, '\"e\"', 1.0, '1', ?)",
                       ("b", key, version, n, latest, f"=blob{n}", _BODY))
            tx.execute("INSERT INTO s3_inline VALUES (?, ?)", (f"=blob{n}", f"body{n}".encode()))
        tx.execute("INSERT INTO s3_seq VALUES (1, 3)")
        tx.execute("INSERT INTO s3_object VALUES ('b', 'large', 'null', 9, 1, 0, 'abc123', 99, '\"e\"', 1.0, '1', ?)",
                   (_BODY,))
    store.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_an_earlier_store_opens_with_its_small_bodies_in_their_rows(backend: str, tmp_path: Path,
                                                                     request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("postgres").database() if backend == "postgresql" else str(tmp_path / "db")
    _earlier_store(url)
    store = Store(url)
    catalog = Catalog(store)
    found = catalog.latest_with_data("b", "small")
    assert found is not None and found[1] == b"body0"
    old = catalog.version("b", "old", "v1")
    assert old is not None and catalog.inline_data(old) == b"body1"
    newest = catalog.latest_with_data("b", "old")
    assert newest is not None and newest[0].version_id == "v2" and newest[1] == b"body2"
    large = catalog.latest_with_data("b", "large")
    assert large is not None and large[1] is None and large[0].blob == "abc123"
    assert not store.rows("SELECT 1 FROM s3_object WHERE substr(blob, 1, 1) = '=' AND data IS NULL")
    assert not _tables(store) & {"s3_seq", "s3_inline"} and "s3_object" in _tables(store)
    store.close()
    Catalog(reopened := Store(url))  # opened again: already in this layout, nothing to do or to break
    assert [bytes(r[0]) for r in reopened.rows("SELECT data FROM s3_object WHERE key = 'small'")] == [b"body0"]
    reopened.close()


def _tables(store: Store) -> set[str]:
    if store.is_postgres:
        return {r[0] for r in store.rows("SELECT table_name FROM information_schema.tables "
                                          "WHERE table_schema = current_schema()")}
    return {r[0] for r in store.rows("SELECT name FROM sqlite_master WHERE type = 'table'")}


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_store_with_bodies_in_rows_and_the_old_counter_loses_the_counter(backend: str, tmp_path: Path,
                                                                           request: pytest.FixtureRequest) -> None:
    """The layout between the two: small bodies already in their rows, versions still numbered from
    ``s3_seq``. The counter table goes; the rows stay as they were."""
    url = request.getfixturevalue("postgres").database() if backend == "postgresql" else str(tmp_path / "db")
    store = Store(url)
    Catalog(store)
    with store.transaction() as tx:
        tx.execute("CREATE TABLE s3_seq (id INTEGER PRIMARY KEY, value BIGINT NOT NULL)")
        tx.execute("INSERT INTO s3_seq VALUES (1, 7)")
        tx.execute("INSERT INTO s3_object VALUES ('b', 'k', 'null', 7, 1, 0, '=x', 4, '\"e\"', 1.0, '1', ?, ?)",
                   (_BODY, b"data"))
    store.close()
    store = Store(url)
    catalog = Catalog(store)
    assert "s3_seq" not in _tables(store)
    found = catalog.latest_with_data("b", "k")
    assert found is not None and found[1] == b"data" and found[0].blob == "=x"
    store.close()


def test_a_new_versions_sequence_number_is_above_every_earlier_one_of_its_key() -> None:
    now = time.time_ns() // 1000
    assert next_seq() >= now and next_seq(None, None) >= now
    assert next_seq(3, 7) >= now  # an earlier layout's counter: far below the clock
    ahead = now + 3_600_000_000  # versions written while the clock was an hour ahead
    assert next_seq(ahead, None) == ahead + 1 and next_seq(None, ahead) == ahead + 1
    assert next_seq(ahead - 5, ahead) == ahead + 1
