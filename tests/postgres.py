"""A throwaway PostgreSQL server for the tests: Debian's server binaries, a cluster in a temporary
directory, reached over a Unix socket in that directory, gone after the session. Loaded as a pytest
plugin (``tests/conftest.py``) for its session fixture ``postgres``.

PostgreSQL refuses to run as root, so under root the cluster belongs to ``nobody`` and its commands
run through ``runuser``. Every caller gets a database of its own (``Postgres.database()``).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

USER = "euca"


def server_binaries() -> Path | None:
    """The newest installed PostgreSQL's bin directory with initdb and pg_ctl, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                   key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0)
    for pg_ctl in reversed(found):
        bindir = Path(pg_ctl).parent
        if (bindir / "initdb").exists() and (bindir / "postgres").exists():
            return bindir
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(on_path).parent
    return None


def unavailable() -> str | None:
    """Why the PostgreSQL tests cannot run here, or None when they can."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install 'euca[postgres]')"
    if server_binaries() is None:
        return "no PostgreSQL server binaries (initdb, pg_ctl); apt-get install postgresql"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser to start PostgreSQL as an unprivileged user"
    return None


class Postgres:
    def __init__(self, socket_dir: Path) -> None:
        self.socket_dir = socket_dir
        self._count = 0

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{USER}@/{dbname}?host={self.socket_dir}"

    def database(self) -> str:
        """A fresh, empty database's URL."""
        import psycopg

        self._count += 1
        name = f"euca{os.getpid()}_{self._count}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@contextmanager
def running_postgres() -> Iterator[Postgres]:
    bindir = server_binaries()
    assert bindir is not None
    top = Path(tempfile.mkdtemp(prefix="euca-pg-"))
    data = top / "data"
    as_user: list[str] = []
    if os.geteuid() == 0:
        as_user = ["runuser", "-u", "nobody", "--"]
        os.chown(top, 65534, 65534)
        top.chmod(0o700)
    env = {**os.environ, "LC_ALL": "C", "TZ": "UTC"}

    def run(*cmd: str) -> None:
        done = subprocess.run([*as_user, *cmd], cwd=top, env=env, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{cmd[0]} failed: {done.stdout}{done.stderr}")

    try:
        run(str(bindir / "initdb"), "-D", str(data), "-U", USER, "-A", "trust", "-E", "UTF8", "--no-sync")
        # no TCP, the socket in our own directory; fsync off: the tests kill euca, never PostgreSQL
        options = f"-c listen_addresses='' -k {top} -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        run(str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(top / "log"), "-w", "-t", "60", "start")
        try:
            yield Postgres(top)
        finally:
            run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(top, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A PostgreSQL server for the whole session, started on first use; skipped, with the reason,
    where psycopg or the server binaries are missing."""
    reason = unavailable()
    if reason is not None:
        pytest.skip(f"PostgreSQL: {reason}")
    with running_postgres() as pg:
        yield pg
