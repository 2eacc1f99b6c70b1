"""``euca account / node / image / vmtype`` against a data directory, and the store underneath."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from euca.cli import main
from euca.iam import hash_password
from euca.services.accounts import Accounts
from euca.services.cloud import Cloud, stored_nodes, stored_vmtypes
from euca.services.common import Ids
from euca.store import Store
from tests.postgres import Postgres


def test_account_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = ["--data-dir", str(tmp_path)]
    assert main(["account", "add", "alice", *d]) == 0
    name, account_id, access, secret = capsys.readouterr().out.split()
    assert name == "alice" and len(account_id) == 12 and access.startswith("AKI") and len(secret) == 40
    assert main(["account", "add", "alice", *d]) == 1
    assert "already exists" in capsys.readouterr().err
    assert main(["account", "list", *d]) == 0
    assert "alice" in capsys.readouterr().out
    assert main(["account", "keys", "alice", *d]) == 0
    assert capsys.readouterr().out.split() == [access, secret, "Active"]
    assert main(["account", "keys", "nobody", *d]) == 1


def test_node_vmtype_and_image_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = ["--data-dir", str(tmp_path)]
    assert main(["node", "add", "node07", "--cores", "2", "--memory", "2048", "--disk", "50", *d]) == 0
    assert main(["node", "add", "node07", *d]) == 1
    assert main(["vmtype", "set", "m1.small", "--cores", "1", "--memory", "128", "--disk", "2", *d]) == 0
    assert main(["vmtype", "set", "BAD", "--cores", "1", "--memory", "128", "--disk", "2", *d]) == 1
    for name in ("vmlinuz", "initrd", "root.img"):
        (tmp_path / name).write_bytes(name.encode() * 100)
    assert main(["image", "import", "--kernel", str(tmp_path / "vmlinuz"), "--ramdisk", str(tmp_path / "initrd"),
                 "--root", str(tmp_path / "root.img"), *d]) == 0
    out = capsys.readouterr().out
    assert "eki-" in out and "eri-" in out and "emi-" in out
    assert main(["image", "import", "--kernel", "/no/such", "--ramdisk", "x", "--root", "y", *d]) == 1

    store = Store(str(tmp_path / "euca.db"))
    try:
        assert [n.name for n in stored_nodes(store)] == ["node07"]
        assert stored_vmtypes(store)["m1.small"].memory == 128
        cloud = Cloud.open(store)
        assert [n.name for n in cloud.cc.nodes] == ["node07"]
        admin = cloud.accounts.get("admin")
        assert admin is not None
        images = cloud.images.describe(admin.caller, None, None, None, None)
        machine = next(i for i in images if i["ImageType"] == "machine")
        assert machine["KernelId"].startswith("eki-") and machine["Public"] is True
        assert machine["ImageLocation"] == f"euca-images/{machine['ImageId']}"  # its bytes are in Walrus
        stored = cloud.images.get(machine["ImageId"])
        assert stored is not None and stored.size == len(b"root.img" * 100) and stored.digest
    finally:
        store.close()


def test_store_is_wal_and_ids_never_repeat(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "euca.db"))
    try:
        assert store._query("PRAGMA journal_mode")[0][0] == "wal"
        ids = Ids(store)
        with store.transaction() as tx:
            first = ids.new("i", tx)
        with pytest.raises(RuntimeError), store.transaction() as tx:
            tx.put("instance", "x", "a", {})
            raise RuntimeError("rolled back")
        assert store.get("instance", "x") is None
        assert first in Ids(store)
        with pytest.raises(Exception), store.transaction() as tx:  # noqa: B017 - the driver's IntegrityError
            tx.issue(first)
    finally:
        store.close()


def _counted(store: Store) -> None:
    """Store.count: an account's records of a kind, less those whose body sets a field to anything but null."""
    with store.transaction() as tx:
        tx.put("instance", "i-1", "alice", {"terminated": None, "stopped": None})
        tx.put("instance", "i-2", "alice", {"terminated": 12.5, "stopped": None})
        tx.put("instance", "i-3", "alice", {"terminated": None, "stopped": 3.0})
        tx.put("instance", "i-4", "alice", {})
        tx.put("instance", "i-5", "bob", {"terminated": None})
        tx.put("address", "10.0.0.1", "alice", {"instance": None})
    assert store.count("instance", "alice") == 4
    assert store.count("instance", "alice", ("terminated",)) == 3
    assert store.count("instance", "alice", ("terminated", "stopped")) == 2
    assert store.count("instance", "carol") == 0 and store.count("address", "alice", ("dynamic",)) == 1


def test_store_counts_records_on_sqlite(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "euca.db"))
    try:
        _counted(store)
    finally:
        store.close()


def test_store_counts_records_on_postgresql(postgres: Postgres) -> None:
    store = Store(postgres.database())
    try:
        _counted(store)
    finally:
        store.close()


def test_postgresql_store(postgres: Postgres) -> None:
    """The same contract as SQLite's: rollback on error, issued ids refused twice, bodies round-trip."""
    url = postgres.database()
    store = Store(url)
    try:
        ids = Ids(store)
        with store.transaction() as tx:
            first = ids.new("i", tx)
            tx.put("instance", first, "alice", {"n": 1, "names": ["a", "b"], "at": 1.5, "gone": None})
            tx.tag(first, "role", "db", "alice")
            tx.set_meta("initialised", "1")
        with pytest.raises(RuntimeError), store.transaction() as tx:
            tx.put("instance", "x", "a", {})
            raise RuntimeError("rolled back")
        assert store.get("instance", "x") is None
        with pytest.raises(Exception), store.transaction() as tx:  # noqa: B017 - the driver's IntegrityError
            tx.issue(first)
        # the connection is usable after a failed transaction
        with store.transaction() as tx:
            tx.put("instance", first, "alice", {"n": 2})
    finally:
        store.close()
    again = Store(url)  # a second process's view
    try:
        assert again.load("instance") == [(first, "alice", {"n": 2})]
        assert first in Ids(again) and again.is_issued(first)
        assert again.tags() == [(first, "role", "db", "alice")]
        assert again.meta("initialised") == "1"
    finally:
        again.close()


def _user_with_everything(store: Store) -> Accounts:
    accounts = Accounts(store)
    accounts.create("acme")
    accounts.create_user("acme", "bob")
    accounts.create_user_key("acme", "bob")
    accounts.put_policy("user", "acme", "bob", "all", json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ec2:*", "Resource": "*"}]}))
    accounts.create_group("acme", "ops")
    accounts.add_to_group("acme", "ops", "bob")
    accounts.set_login("acme", "bob", hash_password("s3cret-Pass"), reset=False, create=True)
    accounts.add_certificate("acme", "bob", "CERT1", "-----BEGIN CERTIFICATE-----")
    return accounts


def _holdings(store: Store) -> dict[str, Any]:
    """What the store holds for acme's bob, read afresh."""
    accounts = Accounts(store)
    bob = accounts.user("acme", "bob")
    return {"keys": len(accounts.user_keys("acme", "bob")), "policies": sorted(bob.policies),
            "groups": [g.name for g in accounts.groups_of("acme", "bob")], "login": bob.login is not None,
            "certificates": [c.cert_id for c in accounts.certificates("acme", "bob")]}


def test_user_delete_is_all_or_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = Store(str(tmp_path / "euca.db"))
    _user_with_everything(store)
    whole = _holdings(store)
    assert whole == {"keys": 1, "policies": ["all"], "groups": ["ops"], "login": True, "certificates": ["CERT1"]}
    # The database itself refuses the user's last step (a trigger, as a constraint would): nothing
    # the delete did before that step may stay done.
    with store.transaction() as tx:
        tx.execute("CREATE TRIGGER keep_bob BEFORE DELETE ON records WHEN old.kind = 'user' AND old.id = 'acme/bob' "
                   "BEGIN SELECT RAISE(ABORT, 'bob stays'); END")
    with pytest.raises(sqlite3.IntegrityError, match="bob stays"):
        main(["user", "delete", "acme", "bob", "--data-dir", str(tmp_path)])
    assert _holdings(store) == whole
    with store.transaction() as tx:
        tx.execute("DROP TRIGGER keep_bob")
    assert main(["user", "delete", "acme", "bob", "--data-dir", str(tmp_path)]) == 0
    assert [u.name for u in Accounts(store).users("acme")] == ["admin"]
    assert Accounts(store).group("acme", "ops").users == ()
    assert not [r for r in store.rows("SELECT id, body FROM records WHERE kind IN ('accesskey', 'signingcert')")
                if '"bob"' in r[1]]
    store.close()


def test_user_delete_takes_what_another_server_gave_the_user_since_it_looked(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "euca.db"))
    _user_with_everything(store)
    cli_store = Store(str(tmp_path / "euca.db"))
    admin_cli = Accounts(cli_store)  # loaded now, as the CLI loads the directory
    server = Accounts(store)
    second = server.create_user_key("acme", "bob")  # the running server, after the CLI looked
    admin_cli.remove_user("acme", "bob")
    cli_store.close()
    assert not store.rows("SELECT id FROM records WHERE kind = 'accesskey' AND id = ?", (second.access_key,))
    assert [u.name for u in Accounts(store).users("acme")] == ["admin"]
    store.close()
