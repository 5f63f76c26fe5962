"""A throwaway PostgreSQL server for the tests, and a `db` fixture that runs a test on SQLite and on PostgreSQL.

`postgres_url` runs initdb from Debian's postgresql package into a temporary folder and starts the server on a free
port of 127.0.0.1 (its unix socket in that folder), as the `postgres` user when the tests run as root; it stops the
server and removes the folder when the session ends. Missing binaries fail the tests: CI installs them.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import sqlite3
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from core.history.postgres import PostgresStore
from core.history.sqlite import SQLiteStore

_databases = itertools.count()
_SERVER_URL = pytest.StashKey[str]()


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda path: [int(part) for part in Path(path).parent.parent.name.split(".")])
    if not found:
        pytest.fail("PostgreSQL's server binaries are missing (no /usr/lib/postgresql/*/bin/initdb): "
                    "install them with `apt-get install -y postgresql`.")
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start_server(on_exit: Callable[[Callable[[], None]], None]) -> str:
    bin_dir = _bin_dir()
    root = Path(tempfile.mkdtemp(prefix="repro-pg-"))
    as_owner = []
    if os.geteuid() == 0:  # initdb and postgres refuse to run as root
        shutil.chown(root, user="postgres")
        as_owner = ["runuser", "-u", "postgres", "--"]
    data, log, port = root / "data", root / "server.log", _free_port()

    def pg(*args: Any) -> None:
        subprocess.run([*as_owner, *map(str, args)], check=True, capture_output=True, text=True, timeout=120)

    def stop() -> None:
        pg(bin_dir / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)

    try:
        pg(bin_dir / "initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8")
        pg(bin_dir / "pg_ctl", "-D", data, "-l", log, "-w", "start",
           "-o", f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -F")
    except subprocess.CalledProcessError as exc:
        server_log = log.read_text() if log.exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"Could not start PostgreSQL from {bin_dir}: {exc.stderr or exc.stdout}\n{server_log}")
    on_exit(stop)
    return f"postgresql://postgres@127.0.0.1:{port}/postgres"


@pytest.fixture(scope="session")
def postgres_url(request: pytest.FixtureRequest) -> str:
    """postgresql://postgres@127.0.0.1:PORT/postgres (trust auth, no fsync): one server for the whole session,
    however many test modules import this fixture, stopped when the session ends."""
    stash = request.config.stash
    if _SERVER_URL not in stash:
        stash[_SERVER_URL] = _start_server(request.config.add_cleanup)
    return stash[_SERVER_URL]


@dataclass(frozen=True)
class Database:
    """Where a test's store lives: `kind` is "sqlite" (address a file path) or "postgres" (address a URL)."""

    kind: str
    address: str

    def open(self) -> SQLiteStore | PostgresStore:
        return SQLiteStore(self.address) if self.kind == "sqlite" else PostgresStore(self.address)

    def connect(self) -> Any:
        """A plain connection that commits on leaving its `with` block, to look under the store."""
        return sqlite3.connect(self.address) if self.kind == "sqlite" else psycopg.connect(self.address)


def new_database(server: str) -> str:
    """The URL of a new, empty database on the server at `server` (the postgres_url)."""
    name = f"test_{next(_databases)}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return f"{server.rsplit('/', 1)[0]}/{name}"


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    """An empty database of each kind: a new file, or a new database on the session's server."""
    if request.param == "sqlite":
        return Database("sqlite", str(tmp_path / "history.sqlite3"))
    return Database("postgres", new_database(request.getfixturevalue("postgres_url")))


@pytest.fixture
def store(db: Database) -> SQLiteStore | PostgresStore:
    return db.open()
