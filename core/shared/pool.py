"""One psycopg_pool per process and database for the limits every replica shares, and the tables they live in.

The password is handed to libpq apart from the URL (core.history.postgres.DatabaseUrl), and every failure becomes a
StorageError that shows the URL masked and never the password.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import psycopg_pool

from core.errors import StorageError
from core.history.postgres import CONNECT_TIMEOUT_S, DatabaseUrl

POOL_SIZE = 10
WAIT_FOR_CONNECTION_S = 10.0
_SCHEMA_LOCK = 0x52455053  # advisory lock serialising the creation of these tables (the history uses 0x52455052)

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS repro_quota_requests (
        visitor TEXT NOT NULL,
        sent_at TIMESTAMPTZ NOT NULL,
        requests INTEGER NOT NULL CHECK (requests > 0)
    )""",
    "CREATE INDEX IF NOT EXISTS repro_quota_by_visitor ON repro_quota_requests (visitor, sent_at)",
    "CREATE INDEX IF NOT EXISTS repro_quota_by_time ON repro_quota_requests (sent_at)",
    """CREATE TABLE IF NOT EXISTS repro_passcode_failures (
        visitor TEXT PRIMARY KEY,
        failures INTEGER NOT NULL,
        pending INTEGER NOT NULL,
        last_attempt TIMESTAMPTZ NOT NULL,
        next_turn TIMESTAMPTZ NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS repro_passcode_failures_by_time ON repro_passcode_failures (last_attempt)",
    """CREATE TABLE IF NOT EXISTS repro_slot_leases (
        slot INTEGER PRIMARY KEY,
        holder TEXT,
        expires_at TIMESTAMPTZ
    )""",
)


def visitor_key(identity: str) -> str:
    """What the tables keep for a visitor: a digest, so no address or e-mail is stored, and no NUL can reach them."""
    return hashlib.sha256(identity.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class SharedDatabase:
    """The pool for one DATABASE_URL; `transaction` lends a connection for one transaction."""

    database: DatabaseUrl
    pool: psycopg_pool.ConnectionPool

    @contextlib.contextmanager
    def transaction(self) -> Iterator[psycopg.Connection]:
        """A pooled connection: committed when the block ends, rolled back when it raises; a database failure
        becomes a StorageError (URL masked)."""
        try:
            with self.pool.connection() as conn:
                yield conn
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            raise _failed(self.database, exc) from None

    def ping(self) -> None:
        """SELECT 1 through the pool, or StorageError."""
        with self.transaction() as conn:
            conn.execute("SELECT 1")


def _failed(database: DatabaseUrl, exc: Exception) -> StorageError:
    words = " ".join(f"{type(exc).__name__}: {exc}".split())
    return StorageError(database.scrub(f"The database at {database.masked} failed: {words}"))


_pools: dict[str, SharedDatabase] = {}
_pools_lock = threading.Lock()


def shared_database(url: str) -> SharedDatabase:
    """The process's pool for `url` (DATABASE_URL), its tables created on first use: ConfigurationError for a URL
    that cannot be read, StorageError when the database fails."""
    key = hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()  # no password kept, even in memory keys
    with _pools_lock:
        if key not in _pools:
            _pools[key] = open_database(url)
        return _pools[key]


def open_database(url: str, *, timeout_s: float = WAIT_FOR_CONNECTION_S) -> SharedDatabase:
    """A new pool for `url` with its tables created (shared_database keeps one per process; a test opens several,
    one per replica it plays); `timeout_s` bounds each wait for a connection."""
    database = DatabaseUrl.parse(url)
    settings = {"connect_timeout": CONNECT_TIMEOUT_S, **database.settings, "password": database.password}
    try:  # on a connection of its own, so a database that cannot be reached says why at once, not after timeout_s
        with psycopg.connect(**settings) as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            for statement in SCHEMA:
                conn.execute(statement)
    except psycopg.Error as exc:
        raise _failed(database, exc) from None
    pool = psycopg_pool.ConnectionPool(kwargs=settings, min_size=1, max_size=POOL_SIZE, open=False,
                                       timeout=timeout_s, check=psycopg_pool.ConnectionPool.check_connection,
                                       name="repro-shared")
    pool.open(wait=False)
    return SharedDatabase(database, pool)


def close_pools() -> None:
    """Close every pool of this process (tests; a process that ends closes them anyway)."""
    with _pools_lock:
        for shared in _pools.values():
            shared.pool.close()
        _pools.clear()
