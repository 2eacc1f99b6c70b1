"""Two Walrus servers sharing one PostgreSQL database write the same keys of a versioned bucket at
the same moments: each key keeps exactly one latest version, its newest, and every version
written is listed."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from euca.store import Store
from euca.walrus.model import Requester
from euca.walrus.service import Walrus

ADMIN = Requester("admin", "000000000001", admin=True)
KEYS = 8
ROUNDS = 40


class _Directory:
    def by_account_id(self, account_id: str) -> Requester | None:
        return ADMIN if account_id == ADMIN.account_id else None

    def by_canonical_id(self, canonical_id: str) -> Requester | None:
        return ADMIN if canonical_id == ADMIN.canonical_id else None

    def admin(self) -> Requester | None:
        return ADMIN

    def credentials(self, account: str) -> tuple[str, str] | None:
        return None


def _latest_rows(store: Store) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for key, version, seq in store.rows("SELECT key, version, seq FROM s3_object WHERE bucket = 'race' AND latest = 1"):
        found.setdefault(str(key), []).append((version, seq))
    return found


def test_two_servers_writing_one_key_leave_one_latest_version(postgres: Any, tmp_path: Path) -> None:
    url = postgres.database()
    stores = [Store(url), Store(url)]
    servers = [Walrus(store, tmp_path / f"walrus-{n}", _Directory(), fsync=False) for n, store in enumerate(stores)]
    servers[0].create_bucket(ADMIN, "race")
    servers[0].set_versioning(ADMIN, "race", "Enabled")
    start, done = threading.Barrier(2), threading.Barrier(2)
    failures: list[BaseException] = []
    doubled: list[dict[str, list[Any]]] = []  # after each round: keys with more than one latest version

    def write(server: Walrus, n: int) -> None:
        try:
            for r in range(ROUNDS):
                start.wait(10)
                for k in range(KEYS):
                    server.put_object(ADMIN, "race", f"key-{k}", f"{n}-{r}-{k}".encode())
                if r % 5 == 4:  # a delete marker racing the other server's PUT
                    server.delete_object(ADMIN, "race", f"key-{r % KEYS}")
                done.wait(10)
                if n == 0:
                    found = {key: rows for key, rows in _latest_rows(server.store).items() if len(rows) != 1}
                    if found:
                        doubled.append(found)
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    threads = [threading.Thread(target=write, args=(server, n)) for n, server in enumerate(servers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not failures, failures
    try:
        assert not doubled, f"keys with more than one latest version, in {len(doubled)} rounds: {doubled[0]}"
        latest = _latest_rows(stores[0])
        assert sorted(latest) == [f"key-{k}" for k in range(KEYS)]
        for key, [(_, seq)] in latest.items():
            newest = stores[0].rows("SELECT max(seq) FROM s3_object WHERE bucket = 'race' AND key = ?", (key,))
            assert seq == newest[0][0], f"{key}: the latest version is not its newest"
        versions = servers[1].list_versions(ADMIN, "race", max_keys=1000)
        written = 2 * ROUNDS * KEYS + 2 * (ROUNDS // 5)
        assert len(versions.objects) == written
        assert sum(v.latest for v in versions.objects) == KEYS
    finally:
        for store in stores:
            store.close()
