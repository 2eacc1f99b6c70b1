"""The state store: every record the cloud controller keeps, in SQLite (WAL) or PostgreSQL.

Records are rows of one table keyed by (kind, id), with the owning account and a JSON body; tags and
access keys have their own tables, and every identifier ever issued is kept in ``issued`` so none
is handed out twice. Services write a change in one transaction and only then answer; after a
crash they load everything back with ``load``.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import orjson

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS records (kind TEXT NOT NULL, id TEXT NOT NULL, account TEXT NOT NULL, "
    "body TEXT NOT NULL, PRIMARY KEY (kind, id))",
    "CREATE TABLE IF NOT EXISTS issued (id TEXT PRIMARY KEY)",
    "CREATE TABLE IF NOT EXISTS tags (resource TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, "
    "account TEXT NOT NULL, PRIMARY KEY (resource, key))",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
)

Row = tuple[Any, ...]
WAL_LIMIT = 32 << 20  # bytes of SQLite's write-ahead log kept on disk once it rewinds
# log frames (a 4 KiB page and its header) past which a checkpoint finishes under the store's lock,
# so that the log rewinds: about WAL_LIMIT bytes of them
WAL_REWIND = WAL_LIMIT // (4096 + 24)
WAL_BUSY = 1024  # log frames past which the next checkpoint comes sooner (commits are streaming in)
WAL_LOOK = 64  # commits between looks at the log file's size
CHANGED = "changed"  # meta key of the change counter; per kind it is "changed:<kind>"


class _Connection(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ...) -> Any: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...
    def close(self) -> None: ...


class Tx:
    """One transaction: every write of one request."""

    def __init__(self, conn: _Connection, placeholder: str) -> None:
        self._conn = conn
        self._ph = placeholder
        self.committed: list[Callable[[], object]] = []  # run once the transaction is durable
        self.rolled_back: list[Callable[[], object]] = []  # run if it is not
        self.applied: list[str] = []  # kinds whose change counters this process's own view follows

    def on_commit(self, action: Callable[[], object]) -> None:
        """In-memory state that mirrors this transaction's writes changes only once they are durable."""
        self.committed.append(action)

    def on_rollback(self, action: Callable[[], object]) -> None:
        """Undo what was taken outside the store (an address from a pool) for this transaction."""
        self.rolled_back.append(action)

    def _sql(self, sql: str) -> str:
        return sql if self._ph == "?" else sql.replace("?", self._ph)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._conn.execute(self._sql(sql), params)

    def put(self, kind: str, id_: str, account: str, body: dict[str, Any]) -> None:
        self.execute("INSERT INTO records (kind, id, account, body) VALUES (?, ?, ?, ?) "
                     "ON CONFLICT (kind, id) DO UPDATE SET account = excluded.account, body = excluded.body",
                     (kind, id_, account, orjson.dumps(body).decode()))

    def delete(self, kind: str, id_: str) -> None:
        self.execute("DELETE FROM records WHERE kind = ? AND id = ?", (kind, id_))

    def load(self, kind: str, account: str) -> list[tuple[str, dict[str, Any]]]:
        """An account's records of a kind as this transaction sees them: (id, body). Read here,
        not from a view loaded earlier, what the transaction changes is what the store holds now."""
        rows = self.execute("SELECT id, body FROM records WHERE kind = ? AND account = ? ORDER BY id",
                            (kind, account)).fetchall()
        return [(r[0], orjson.loads(r[1])) for r in rows]

    def issue_fresh(self, id_: str) -> bool:
        """Record an identifier as handed out, unless it ever was: False then (the caller draws
        another). The transaction stays usable either way, on SQLite and PostgreSQL alike."""
        row = self.execute("INSERT INTO issued (id) VALUES (?) ON CONFLICT (id) DO NOTHING RETURNING id",
                           (id_,)).fetchone()
        return row is not None

    def issue(self, id_: str) -> None:
        """Record an identifier as handed out; raises if it ever was (the caller draws another)."""
        self.execute("INSERT INTO issued (id) VALUES (?)", (id_,))

    def tag(self, resource: str, key: str, value: str, account: str) -> None:
        self.execute("INSERT INTO tags (resource, key, value, account) VALUES (?, ?, ?, ?) "
                     "ON CONFLICT (resource, key) DO UPDATE SET value = excluded.value",
                     (resource, key, value, account))

    def untag(self, resource: str, key: str) -> None:
        self.execute("DELETE FROM tags WHERE resource = ? AND key = ?", (resource, key))

    def changed(self, kind: str, applied: bool = False) -> None:
        """Tell running servers that records of ``kind`` changed: each server compares the counters at
        every request and reloads that kind. ``applied``: the service writing them keeps its own
        view in step already, so the server it runs in need not reload them (``Store.foreign_changes``);
        other servers and processes still do. Without it (the admin CLI), every server reloads."""
        for key in (CHANGED, f"{CHANGED}:{kind}"):
            self.execute("INSERT INTO meta (key, value) VALUES (?, '1') ON CONFLICT (key) DO UPDATE SET "
                         "value = CAST(CAST(meta.value AS INTEGER) + 1 AS TEXT)", (key,))
        if applied:
            self.applied.append(kind)

    def set_meta(self, key: str, value: str) -> None:
        self.execute("INSERT INTO meta (key, value) VALUES (?, ?) "
                     "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value))


class Store:
    """A connection to the state store. ``url`` is a file path (SQLite) or ``postgresql://...``."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._lock = threading.RLock()
        self.is_postgres = url.startswith(("postgresql://", "postgres://"))
        self._conn: _Connection
        self._checkpointer: _Checkpointer | None = None
        # how many of the store's change-counter increments were this object's own applied ones
        self._own: dict[str, int] = {}
        if self.is_postgres:
            try:
                import psycopg  # type: ignore[import-not-found, unused-ignore]
            except ImportError:
                raise RuntimeError("a PostgreSQL store needs psycopg: pip install 'euca[postgres]'") from None
            # autocommit, with transactions opened explicitly as on SQLite: a read outside a transaction
            # (the change counter every request checks) is one round trip, not BEGIN, SELECT, COMMIT
            self._conn = psycopg.connect(url, autocommit=True)
            self._placeholder = "%s"
        else:
            Path(url).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(url, isolation_level=None, check_same_thread=False, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a committed transaction survives the process being killed; only a
            # power cut can lose the last ones. FULL (--sync full) pays an fsync per request for that.
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            # Checkpoints (copying the WAL into the database file, with an fsync) run on a thread of
            # their own instead of inside whichever commit crosses 1000 pages; that commit used to take
            # milliseconds. A commit is durable once it is in the WAL, checkpointed or not.
            conn.execute("PRAGMA wal_autocheckpoint=0")
            # a WAL rewound after a burst is cut back to this size (without it the file keeps its
            # largest size for good, every later commit writing into the same long file)
            conn.execute(f"PRAGMA journal_size_limit={WAL_LIMIT}")
            self._conn = _SqliteConnection(conn)
            self._placeholder = "?"
            self._checkpointer = _Checkpointer(url, self._lock)
        with self.transaction() as tx:
            for statement in SCHEMA:
                tx.execute(statement)

    def set_synchronous(self, mode: str) -> None:
        if not self.is_postgres and mode.upper() in ("OFF", "NORMAL", "FULL"):
            self._conn.execute(f"PRAGMA synchronous={mode.upper()}")

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
        with self._lock:
            self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        """Commit when the block ends, roll back if it raises."""
        with self._lock:
            self._conn.execute("BEGIN" if self.is_postgres else "BEGIN IMMEDIATE")
            tx = Tx(self._conn, self._placeholder)
            try:
                yield tx
                self._conn.commit()
            except BaseException:
                self._conn.rollback()
                for undo in reversed(tx.rolled_back):
                    undo()
                raise
            for kind in tx.applied:  # under the lock: a reader sees the counters and these together
                self._own[""] = self._own.get("", 0) + 1
                self._own[kind] = self._own.get(kind, 0) + 1
            for action in tx.committed:
                action()
            if self._checkpointer is not None:
                self._checkpointer.committed()

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        with self._lock:
            if self._placeholder != "?":
                sql = sql.replace("?", self._placeholder)
            return list(self._conn.execute(sql, params).fetchall())

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """A read outside any transaction, for the stores that keep tables of their own (Walrus)."""
        return self._query(sql, params)

    def load(self, kind: str) -> list[tuple[str, str, dict[str, Any]]]:
        """Every record of a kind: (id, account, body)."""
        rows = self._query("SELECT id, account, body FROM records WHERE kind = ? ORDER BY id", (kind,))
        return [(r[0], r[1], orjson.loads(r[2])) for r in rows]

    def get(self, kind: str, id_: str) -> dict[str, Any] | None:
        rows = self._query("SELECT body FROM records WHERE kind = ? AND id = ?", (kind, id_))
        return orjson.loads(rows[0][0]) if rows else None

    def count(self, kind: str, account: str, unset: Sequence[str] = ()) -> int:
        """How many records of a kind an account holds, leaving out those whose body gives any of
        the fields ``unset`` a value (an instance with ``terminated``): the quotas' counts, one
        aggregate query instead of every record read and described."""
        sql = "SELECT COUNT(*) FROM records WHERE kind = ? AND account = ?"
        params: list[Any] = [kind, account]
        for name in unset:
            sql += " AND (CAST(body AS json) ->> ?) IS NULL" if self.is_postgres else \
                " AND json_extract(body, ?) IS NULL"
            params.append(name if self.is_postgres else f'$."{name}"')
        return int(self._query(sql, params)[0][0])

    def is_issued(self, id_: str) -> bool:
        return bool(self._query("SELECT 1 FROM issued WHERE id = ?", (id_,)))

    def tags(self) -> list[tuple[str, str, str, str]]:
        return [(r[0], r[1], r[2], r[3]) for r in self._query("SELECT resource, key, value, account FROM tags")]

    def changes(self) -> dict[str, str]:
        """The change counters, by kind ("" for the total)."""
        rows = self._query("SELECT key, value FROM meta WHERE key = ? OR key LIKE ?", (CHANGED, CHANGED + ":%"))
        return {str(r[0]).partition(":")[2]: str(r[1]) for r in rows}

    def change_count(self) -> str:
        return self.meta(CHANGED) or "0"

    def foreign_changes(self) -> dict[str, int]:
        """The change counters less this object's own applied changes, by kind ("" for the total):
        what other processes (and unapplied writes) changed. A server reloads a kind when its number
        moves, and so never reloads what it wrote and already follows."""
        with self._lock:
            return {kind: int(count) - self._own.get(kind, 0) for kind, count in self.changes().items()}

    def foreign_change_count(self) -> int:
        """The total of :meth:`foreign_changes`, in one small query: servers call it per request."""
        with self._lock:
            return int(self.change_count()) - self._own.get("", 0)

    def meta(self, key: str) -> str | None:
        rows = self._query("SELECT value FROM meta WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None


class _SqliteConnection:
    """sqlite3 in autocommit mode, with transactions opened explicitly (BEGIN IMMEDIATE)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self._conn.execute(sql, params)

    def commit(self) -> None:
        if self._conn.in_transaction:
            self._conn.execute("COMMIT")

    def rollback(self) -> None:
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

    def close(self) -> None:
        self._conn.close()


class _Checkpointer:
    """Copies committed WAL pages into the database file every ``every`` seconds, on its own
    connection and thread (sqlite3 lets go of the GIL while it writes), so no request waits for it.

    The log only rewinds (its next commit written at its start) when a transaction begins after a
    checkpoint copied every frame in it; under a steady stream of commits the next one has always
    begun (and committed more) by then, and the log grows without end. So when the log is longer
    than ``WAL_REWIND`` pages, the round is finished holding the store's own lock: what was
    committed while it ran (a small part) is copied with this process's transactions waiting that
    long, and the next commit rewinds the log (``journal_size_limit`` then cuts the file back).
    Rounds come sooner while commits stream in, so each copies less, and at once when a commit
    finds the log file longer than ``WAL_LIMIT`` (looked at every ``WAL_LOOK`` commits)."""

    def __init__(self, path: str, lock: threading.RLock, every: float = 0.25, busy_every: float = 0.1) -> None:
        self._path, self._lock, self._every, self._busy_every = path, lock, every, busy_every
        self._wal = path + "-wal"
        self._commits = 0
        self._stopping = False
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
        self._thread.start()

    def committed(self) -> None:
        """A commit landed (called under the store's lock): now and then, a look at the log's size."""
        self._commits += 1
        if self._commits % WAL_LOOK == 0 and not self._wake.is_set():
            with contextlib.suppress(OSError):
                if os.stat(self._wal).st_size > WAL_LIMIT:
                    self._wake.set()

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False, timeout=30)
        except sqlite3.Error:
            return  # the store's own connection opened this file; without this one, commits still land
        try:
            wait = self._every
            while True:
                self._wake.wait(wait)
                self._wake.clear()
                if self._stopping:
                    break
                wait = self._busy_every if self._round(conn) else self._every
            self._checkpoint(conn)
        finally:
            conn.close()

    def _round(self, conn: sqlite3.Connection) -> bool:
        """One checkpoint, finished under the lock if the log is long; whether it is growing fast."""
        log = self._checkpoint(conn)
        if log <= WAL_REWIND:
            return log > WAL_BUSY
        if self._lock.acquire(timeout=self._every):
            try:
                self._checkpoint(conn)
            finally:
                self._lock.release()
        return True

    @staticmethod
    def _checkpoint(conn: sqlite3.Connection) -> int:
        """Copy what the log holds; how many pages long the log is."""
        # busy, locked or gone: the WAL keeps every commit until the next round
        with contextlib.suppress(sqlite3.Error):
            return max(0, int(conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]))
        return 0

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        self._thread.join(10)
