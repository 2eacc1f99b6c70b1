"""Walrus's metadata in the cloud's store: tables of its own beside ``records``.

Keys sort by their UTF-8 bytes, as S3 lists them: SQLite's BINARY collation does that for TEXT, and
on PostgreSQL the key columns are declared ``COLLATE "C"``.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import orjson

from euca.store import Store, Tx
from euca.walrus.blobs import files
from euca.walrus.model import Acl, Bucket, Listed, ObjectInfo, Part, Upload


def _schema(postgres: bool) -> tuple[str, ...]:
    c = ' COLLATE "C"' if postgres else ""
    real = "DOUBLE PRECISION" if postgres else "REAL"
    binary = "BYTEA" if postgres else "BLOB"
    return (
        f"CREATE TABLE IF NOT EXISTS s3_bucket (name TEXT{c} PRIMARY KEY, owner TEXT NOT NULL, "
        f"created {real} NOT NULL, body TEXT NOT NULL)",
        # ``data``: the body of a small object (``blobs.INLINE``), kept in its version's row so that a
        # PUT writes one row and a GET reads one (NULL when the body is in a file)
        f"CREATE TABLE IF NOT EXISTS s3_object (bucket TEXT{c} NOT NULL, key TEXT{c} NOT NULL, version TEXT NOT NULL, "
        f"seq BIGINT NOT NULL, latest INTEGER NOT NULL, marker INTEGER NOT NULL, blob TEXT NOT NULL, "
        f"size BIGINT NOT NULL, etag TEXT NOT NULL, modified {real} NOT NULL, owner TEXT NOT NULL, "
        f"body TEXT NOT NULL, data {binary}, PRIMARY KEY (bucket, key, version))",
        "CREATE INDEX IF NOT EXISTS s3_object_listing ON s3_object (bucket, latest, key)",
        f"CREATE TABLE IF NOT EXISTS s3_upload (id TEXT PRIMARY KEY, bucket TEXT{c} NOT NULL, key TEXT{c} NOT NULL, "
        f"owner TEXT NOT NULL, initiated {real} NOT NULL, body TEXT NOT NULL)",
        f"CREATE TABLE IF NOT EXISTS s3_part (upload TEXT NOT NULL, number INTEGER NOT NULL, blob TEXT NOT NULL, "
        f"size BIGINT NOT NULL, etag TEXT NOT NULL, modified {real} NOT NULL, PRIMARY KEY (upload, number))",
    )


def _has_table(tx: Tx, postgres: bool, name: str) -> bool:
    if postgres:
        return tx.execute("SELECT to_regclass(?)", (name,)).fetchone()[0] is not None
    return tx.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() is not None


def _upgrade(store: Store) -> None:
    """Bring a store written by an earlier layout up to this one, in one transaction: small bodies
    move from the ``s3_inline`` table into their versions' rows; the index by blob (which only
    that table's join used) goes; so does ``s3_seq``, the one counter versions were numbered from
    before each key's versions numbered themselves (left by either earlier layout). Nothing happens
    when the store already has this layout, and a second server upgrading the same PostgreSQL at
    the same moment finds nothing left to do."""
    postgres = store.is_postgres
    with store.transaction() as tx:
        if _has_table(tx, postgres, "s3_seq"):
            tx.execute("DROP TABLE IF EXISTS s3_seq")
        if postgres:
            done = tx.execute("SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() "
                              "AND table_name = 's3_object' AND column_name = 'data'").fetchone()
        else:
            done = tx.execute("SELECT 1 FROM pragma_table_info('s3_object') WHERE name = 'data'").fetchone()
        if done:
            return
        tx.execute("ALTER TABLE s3_object ADD COLUMN IF NOT EXISTS data BYTEA" if postgres
                   else "ALTER TABLE s3_object ADD COLUMN data BLOB")
        if _has_table(tx, postgres, "s3_inline"):
            tx.execute("UPDATE s3_object SET data = (SELECT i.data FROM s3_inline i WHERE i.blob = s3_object.blob) "
                       "WHERE blob IN (SELECT blob FROM s3_inline)")
            tx.execute("DROP TABLE IF EXISTS s3_inline")
        tx.execute("DROP INDEX IF EXISTS s3_object_blob")


_OBJECT_COLUMNS = "bucket, key, version, seq, latest, marker, blob, size, etag, modified, owner, body"


def _bytes(value: Any) -> bytes | None:
    return None if value is None else bytes(value)


def _object(row: tuple[Any, ...]) -> ObjectInfo:
    body = orjson.loads(row[11])
    acl = body.get("acl")
    return ObjectInfo(row[0], row[1], row[2], int(row[7]), row[8], float(row[9]), row[10], row[6],
                      latest=bool(row[4]), delete_marker=bool(row[5]), headers=body.get("headers", {}),
                      metadata=body.get("metadata", {}), acl=Acl.from_json(acl) if acl else None,
                      tags=body.get("tags"), parts=int(body.get("parts", 0)))


_LISTED_COLUMNS = "key, size, etag, modified, owner"  # ``Listed``'s fields, in its order


def _bucket(row: tuple[Any, ...]) -> Bucket:
    body = orjson.loads(row[3])
    return Bucket(row[0], row[1], float(row[2]), body.get("location", ""), body.get("versioning", ""),
                  Acl.from_json(body["acl"]), body.get("cors"), body.get("lifecycle"), body.get("tags"))


class Catalog:
    """Reads and writes of Walrus's tables; writes take the request's transaction."""

    BUCKET_KIND = "s3bucket"  # the store's change counter bucket writes bump
    RECHECK = 0.5  # seconds a cached bucket is trusted without a look at the counter

    def __init__(self, store: Store) -> None:
        self.store = store
        # buckets by name (None: known not to exist), good while the store's change counter
        # stays what it was when they were read (every bucket write bumps it)
        self._buckets: dict[str, Bucket | None] = {}
        self._seen = ""
        self._checked = 0.0
        self._parsed: dict[str, tuple[tuple[Any, ...], Bucket]] = {}  # name -> (its row, parsed)
        with store.transaction() as tx:
            for statement in _schema(store.is_postgres):
                tx.execute(statement)
        _upgrade(store)

    # --- buckets ------------------------------------------------------------------------------------

    def revalidate(self) -> bool:
        """Drop the cached buckets if the store's change counter moved (another server, or the
        admin CLI, wrote); whether it did. One small query: the S3 endpoint calls it per request."""
        count = self.store.change_count()
        self._checked = time.monotonic()
        if count == self._seen:
            return False
        self._buckets.clear()
        self._seen = count
        return True

    def bucket(self, name: str) -> Bucket | None:
        if time.monotonic() - self._checked > self.RECHECK:
            self.revalidate()
        try:
            return self._buckets[name]
        except KeyError:
            pass
        seen = self._seen
        rows = self.store.rows("SELECT name, owner, created, body FROM s3_bucket WHERE name = ?", (name,))
        found = _bucket(rows[0]) if rows else None
        if seen == self._seen and len(self._buckets) < 100_000:
            self._buckets[name] = found
        return found

    def tx_bucket(self, tx: Tx, name: str) -> Bucket | None:
        """The bucket as this transaction sees it (a write that depends on its settings). Read
        again by every PUT, parsed again only when its row is not the one parsed last time."""
        row = tx.execute("SELECT name, owner, created, body FROM s3_bucket WHERE name = ?", (name,)).fetchone()
        if row is None:
            return None
        row = tuple(row)
        parsed = self._parsed.get(name)
        if parsed is not None and parsed[0] == row:
            return parsed[1]
        bucket = _bucket(row)
        if len(self._parsed) >= 10_000:
            self._parsed.clear()
        self._parsed[name] = (row, bucket)
        return bucket

    def _forget(self, tx: Tx, name: str) -> None:
        tx.changed(self.BUCKET_KIND)
        self._buckets.pop(name, None)  # now, and again once it is durable
        tx.on_commit(lambda: self._buckets.pop(name, None))

    def buckets(self, owner: str | None = None) -> list[Bucket]:
        if owner is None:
            rows = self.store.rows("SELECT name, owner, created, body FROM s3_bucket ORDER BY name")
        else:
            rows = self.store.rows("SELECT name, owner, created, body FROM s3_bucket WHERE owner = ? ORDER BY name",
                                   (owner,))
        return [_bucket(r) for r in rows]

    def bucket_count(self, owner: str) -> int:
        return int(self.store.rows("SELECT COUNT(*) FROM s3_bucket WHERE owner = ?", (owner,))[0][0])

    def put_bucket(self, tx: Tx, b: Bucket) -> None:
        self._forget(tx, b.name)
        body = {"location": b.location, "versioning": b.versioning, "acl": b.acl.to_json(), "cors": b.cors,
                "lifecycle": b.lifecycle, "tags": b.tags}
        tx.execute("INSERT INTO s3_bucket (name, owner, created, body) VALUES (?, ?, ?, ?) ON CONFLICT (name) "
                   "DO UPDATE SET body = excluded.body", (b.name, b.owner, b.created, orjson.dumps(body).decode()))

    def delete_bucket(self, tx: Tx, name: str) -> None:
        self._forget(tx, name)
        tx.execute("DELETE FROM s3_bucket WHERE name = ?", (name,))

    def has_objects(self, bucket: str) -> bool:
        return bool(self.store.rows("SELECT 1 FROM s3_object WHERE bucket = ? LIMIT 1", (bucket,))
                    or self.store.rows("SELECT 1 FROM s3_upload WHERE bucket = ? LIMIT 1", (bucket,)))

    # --- objects ------------------------------------------------------------------------------------

    def latest(self, bucket: str, key: str) -> ObjectInfo | None:
        rows = self.store.rows(f"SELECT {_OBJECT_COLUMNS} FROM s3_object WHERE bucket = ? AND key = ? AND latest = 1",
                               (bucket, key))
        return _object(rows[0]) if rows else None

    def version(self, bucket: str, key: str, version: str) -> ObjectInfo | None:
        rows = self.store.rows(f"SELECT {_OBJECT_COLUMNS} FROM s3_object WHERE bucket = ? AND key = ? AND version = ?",
                               (bucket, key, version))
        return _object(rows[0]) if rows else None

    def latest_with_data(self, bucket: str, key: str) -> tuple[ObjectInfo, bytes | None] | None:
        """The latest version and, if its body is inline, the body: one query (a GET)."""
        rows = self.store.rows(f"SELECT {_OBJECT_COLUMNS}, data FROM s3_object "
                               "WHERE bucket = ? AND key = ? AND latest = 1", (bucket, key))
        return (_object(rows[0]), _bytes(rows[0][12])) if rows else None

    def inline_data(self, o: ObjectInfo) -> bytes | None:
        rows = self.store.rows("SELECT data FROM s3_object WHERE bucket = ? AND key = ? AND version = ? AND blob = ?",
                               (o.bucket, o.key, o.version_id, o.blob))
        return _bytes(rows[0][0]) if rows else None

    def lock_key(self, tx: Tx, bucket: str, key: str) -> None:
        """Hold the key until ``tx`` ends, against other servers writing it: which of its versions
        is the latest is read and switched in one transaction at a time. On PostgreSQL a transaction
        advisory lock on a 64-bit hash of the key (two keys sharing one only wait for each other);
        SQLite already runs one write transaction at a time (BEGIN IMMEDIATE)."""
        if self.store.is_postgres:
            digest = hashlib.blake2b(f"{bucket}/{key}".encode(), digest_size=8, person=b"euca-s3-key").digest()
            tx.execute("SELECT pg_advisory_xact_lock(?)", (int.from_bytes(digest, "big", signed=True),))

    @staticmethod
    def take_version(tx: Tx, bucket: str, key: str, version: str) -> tuple[str, bool, int] | None:
        """Delete one version in a single statement; its blob, whether it was the latest, and its
        sequence number."""
        row = tx.execute("DELETE FROM s3_object WHERE bucket = ? AND key = ? AND version = ? "
                         "RETURNING blob, latest, seq", (bucket, key, version)).fetchone()
        return (str(row[0]), bool(row[1]), int(row[2])) if row else None

    @staticmethod
    def tx_version(tx: Tx, bucket: str, key: str, version: str) -> ObjectInfo | None:
        row = tx.execute(f"SELECT {_OBJECT_COLUMNS} FROM s3_object WHERE bucket = ? AND key = ? AND version = ?",
                         (bucket, key, version)).fetchone()
        return _object(row) if row else None

    @staticmethod
    def tx_latest(tx: Tx, bucket: str, key: str) -> ObjectInfo | None:
        row = tx.execute(f"SELECT {_OBJECT_COLUMNS} FROM s3_object WHERE bucket = ? AND key = ? AND latest = 1",
                         (bucket, key)).fetchone()
        return _object(row) if row else None

    @staticmethod
    def put_object(tx: Tx, o: ObjectInfo, seq: int, data: bytes | None = None) -> None:
        """Write a version (``data``: its body, when small enough to be kept in the row)."""
        body: dict[str, Any] = {"headers": o.headers, "metadata": o.metadata}
        if o.acl is not None:
            body["acl"] = o.acl.to_json()
        if o.tags:
            body["tags"] = o.tags
        if o.parts:
            body["parts"] = o.parts
        tx.execute(f"INSERT INTO s3_object ({_OBJECT_COLUMNS}, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                   "ON CONFLICT (bucket, key, version) DO UPDATE SET seq = excluded.seq, latest = excluded.latest, "
                   "marker = excluded.marker, blob = excluded.blob, size = excluded.size, etag = excluded.etag, "
                   "modified = excluded.modified, owner = excluded.owner, body = excluded.body, data = excluded.data",
                   (o.bucket, o.key, o.version_id, seq, int(o.latest), int(o.delete_marker), o.blob, o.size, o.etag,
                    o.modified, o.owner, orjson.dumps(body).decode(), data))

    @staticmethod
    def set_body(tx: Tx, o: ObjectInfo) -> None:
        """Rewrite a version's ACL, tags, headers in place (PutObjectAcl, PutObjectTagging)."""
        body: dict[str, Any] = {"headers": o.headers, "metadata": o.metadata}
        if o.acl is not None:
            body["acl"] = o.acl.to_json()
        if o.tags:
            body["tags"] = o.tags
        if o.parts:
            body["parts"] = o.parts
        tx.execute("UPDATE s3_object SET body = ? WHERE bucket = ? AND key = ? AND version = ?",
                   (orjson.dumps(body).decode(), o.bucket, o.key, o.version_id))

    @staticmethod
    def unset_latest(tx: Tx, bucket: str, key: str) -> int | None:
        """The key's latest version is the latest no more; its sequence number (the key's highest)."""
        rows = tx.execute("UPDATE s3_object SET latest = 0 WHERE bucket = ? AND key = ? AND latest = 1 RETURNING seq",
                          (bucket, key)).fetchall()
        return max(int(r[0]) for r in rows) if rows else None

    @staticmethod
    def promote_newest(tx: Tx, bucket: str, key: str) -> None:
        """After the latest version was deleted, the newest remaining one becomes latest."""
        row = tx.execute("SELECT version FROM s3_object WHERE bucket = ? AND key = ? ORDER BY seq DESC LIMIT 1",
                         (bucket, key)).fetchone()
        if row is not None:
            tx.execute("UPDATE s3_object SET latest = 1 WHERE bucket = ? AND key = ? AND version = ?",
                       (bucket, key, row[0]))

    @staticmethod
    def delete_version(tx: Tx, bucket: str, key: str, version: str) -> None:
        tx.execute("DELETE FROM s3_object WHERE bucket = ? AND key = ? AND version = ?", (bucket, key, version))

    def page(self, bucket: str, prefix: str, after: str, limit: int, inclusive: bool = False) -> list[Listed]:
        """Up to ``limit`` live latest objects with keys after ``after`` (or from it), starting with
        ``prefix``; only what a listing shows of each (no headers, metadata or ACL)."""
        low, op = max(after, prefix), ">"
        if inclusive or (prefix > after):
            op = ">="
        sql = (f"SELECT {_LISTED_COLUMNS} FROM s3_object WHERE bucket = ? AND latest = 1 AND key {op} ? "
               "AND marker = 0")
        params: list[Any] = [bucket, low]
        end = successor(prefix)
        if end:
            sql += " AND key < ?"
            params.append(end)
        sql += " ORDER BY key LIMIT ?"
        params.append(limit)
        return list(map(Listed._make, self.store.rows(sql, params)))

    def version_page(self, bucket: str, prefix: str, after_key: str, after_seq: int | None,
                     limit: int, inclusive: bool = False) -> list[tuple[ObjectInfo, int]]:
        """Up to ``limit`` versions in key order, newest first within a key, after (after_key,
        after_seq), or from ``after_key`` on when ``inclusive``; with their sequence numbers."""
        sql = f"SELECT {_OBJECT_COLUMNS} FROM s3_object WHERE bucket = ? AND key >= ?"
        params: list[Any] = [bucket, max(after_key, prefix)]
        if not inclusive and after_seq is not None:
            sql += " AND (key > ? OR seq < ?)"
            params += [after_key, after_seq]
        elif not inclusive and after_key and after_key >= prefix:
            sql += " AND key > ?"
            params.append(after_key)
        end = successor(prefix)
        if end:
            sql += " AND key < ?"
            params.append(end)
        sql += " ORDER BY key, seq DESC LIMIT ?"
        params.append(limit)
        return [(_object(r), int(r[3])) for r in self.store.rows(sql, params)]

    def seq_of(self, bucket: str, key: str, version: str) -> int | None:
        rows = self.store.rows("SELECT seq FROM s3_object WHERE bucket = ? AND key = ? AND version = ?",
                               (bucket, key, version))
        return int(rows[0][0]) if rows else None

    def live_objects(self, bucket: str) -> list[ObjectInfo]:
        rows = self.store.rows(f"SELECT {_OBJECT_COLUMNS} FROM s3_object WHERE bucket = ? AND latest = 1 "
                               "AND marker = 0 ORDER BY key", (bucket,))
        return [_object(r) for r in rows]

    def referenced_blobs(self) -> set[str]:
        """The files some version or upload part names (a multipart version names its parts')."""
        blobs = {name for r in self.store.rows("SELECT blob FROM s3_object WHERE blob <> ''")
                 for name in files(str(r[0]))}
        return blobs | {str(r[0]) for r in self.store.rows("SELECT blob FROM s3_part")}

    # --- multipart uploads --------------------------------------------------------------------------

    @staticmethod
    def put_upload(tx: Tx, u: Upload) -> None:
        body = {"headers": u.headers, "metadata": u.metadata, "acl": u.acl.to_json()}
        tx.execute("INSERT INTO s3_upload (id, bucket, key, owner, initiated, body) VALUES (?, ?, ?, ?, ?, ?)",
                   (u.upload_id, u.bucket, u.key, u.owner, u.initiated, orjson.dumps(body).decode()))

    def upload(self, upload_id: str) -> Upload | None:
        rows = self.store.rows("SELECT id, bucket, key, owner, initiated, body FROM s3_upload WHERE id = ?",
                               (upload_id,))
        return _upload(rows[0]) if rows else None

    def uploads(self, bucket: str, prefix: str) -> list[Upload]:
        rows = self.store.rows("SELECT id, bucket, key, owner, initiated, body FROM s3_upload WHERE bucket = ? "
                               "ORDER BY key, initiated", (bucket,))
        return [_upload(r) for r in rows if str(r[2]).startswith(prefix)]

    @staticmethod
    def delete_upload(tx: Tx, upload_id: str) -> list[str]:
        """Forget an upload and its parts; the part blobs to delete once this commits."""
        blobs = [str(r[0]) for r in tx.execute("SELECT blob FROM s3_part WHERE upload = ?", (upload_id,)).fetchall()]
        tx.execute("DELETE FROM s3_part WHERE upload = ?", (upload_id,))
        tx.execute("DELETE FROM s3_upload WHERE id = ?", (upload_id,))
        return blobs

    @staticmethod
    def put_part(tx: Tx, upload_id: str, p: Part) -> str | None:
        """Record a part; the blob of the part it replaces, if any."""
        row = tx.execute("SELECT blob FROM s3_part WHERE upload = ? AND number = ?", (upload_id, p.number)).fetchone()
        tx.execute("INSERT INTO s3_part (upload, number, blob, size, etag, modified) VALUES (?, ?, ?, ?, ?, ?) "
                   "ON CONFLICT (upload, number) DO UPDATE SET blob = excluded.blob, size = excluded.size, "
                   "etag = excluded.etag, modified = excluded.modified",
                   (upload_id, p.number, p.blob, p.size, p.etag, p.modified))
        return str(row[0]) if row else None

    def parts(self, upload_id: str) -> list[Part]:
        rows = self.store.rows("SELECT number, size, etag, modified, blob FROM s3_part WHERE upload = ? "
                               "ORDER BY number", (upload_id,))
        return [Part(int(r[0]), int(r[1]), str(r[2]), float(r[3]), str(r[4])) for r in rows]

    @staticmethod
    def tx_upload_exists(tx: Tx, upload_id: str) -> bool:
        return tx.execute("SELECT 1 FROM s3_upload WHERE id = ?", (upload_id,)).fetchone() is not None


def _upload(row: tuple[Any, ...]) -> Upload:
    body = orjson.loads(row[5])
    return Upload(row[0], row[1], row[2], row[3], float(row[4]), body.get("headers", {}), body.get("metadata", {}),
                  Acl.from_json(body["acl"]))


def next_seq(*before: int | None) -> int:
    """A new version's sequence number, which orders the versions of its key: above the key's
    highest so far (the one just replaced or unset as latest, when there was one), and at least
    the clock in microseconds, so that the first versions of a key written at the same moment by
    two servers sharing a database do not share one. Per key, not from one counter every write
    would update: that row was a page of its own in every PUT's commit."""
    return max([time.time_ns() // 1000, *(seq + 1 for seq in before if seq is not None)])


def successor(prefix: str) -> str:
    """The least string greater than every string that starts with ``prefix`` ("" when unbounded)."""
    while prefix:
        last = ord(prefix[-1])
        if last < 0x10FFFF:
            nxt = last + 1
            if 0xD800 <= nxt <= 0xDFFF:
                nxt = 0xE000
            return prefix[:-1] + chr(nxt)
        prefix = prefix[:-1]
    return ""
