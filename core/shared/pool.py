"""The limits every replica shares, on the process's one psycopg_pool per database (core.history.postgres.process_pool,
which the history draws from too), and the tables they live in.

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
from core.history.postgres import (
    POOL_SIZE,
    WAIT_FOR_CONNECTION_S,
    DatabaseUrl,
    close_process_pools,
    connection_settings,
    new_pool,
    process_pool,
)

__all__ = ["POOL_SIZE", "SharedDatabase", "close_pools", "open_database", "shared_database", "visitor_key"]
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


_with_tables: dict[str, SharedDatabase] = {}  # by DatabaseUrl.key: the databases whose tables this process created
_with_tables_lock = threading.Lock()


def shared_database(url: str) -> SharedDatabase:
    """The limits on the process's pool for `url` (DATABASE_URL), their tables created on first use:
    ConfigurationError for a URL that cannot be read, StorageError when the database fails."""
    database = DatabaseUrl.parse(url)
    with _with_tables_lock:
        if database.key not in _with_tables:
            _create_tables(database)
            _with_tables[database.key] = SharedDatabase(database, process_pool(database))
        return _with_tables[database.key]


def open_database(url: str, *, timeout_s: float = WAIT_FOR_CONNECTION_S) -> SharedDatabase:
    """The limits on a new pool of their own for `url`, their tables created (shared_database shares the process's
    pool; a test opens several, one per replica it plays); `timeout_s` bounds each wait for a connection."""
    database = DatabaseUrl.parse(url)
    _create_tables(database)
    return SharedDatabase(database, new_pool(database, timeout_s=timeout_s))


def _create_tables(database: DatabaseUrl) -> None:
    try:  # on a connection of its own, so a database that cannot be reached says why at once, not after a wait
        with psycopg.connect(**connection_settings(database)) as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            for statement in SCHEMA:
                conn.execute(statement)
    except psycopg.Error as exc:
        raise _failed(database, exc) from None


def close_pools() -> None:
    """Close every pool this process shares, the history's with the limits' (tests)."""
    with _with_tables_lock:
        close_process_pools()
        _with_tables.clear()
