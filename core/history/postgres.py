"""History in PostgreSQL through psycopg 3, for hosts whose disk does not outlive a restart: DATABASE_URL read without
ever showing its password, NUL (which PostgreSQL's text cannot hold) kept through an escape, and the process's one
connection pool per database, which the history and the shared limits (core.shared) both draw from."""

from __future__ import annotations

import atexit
import contextlib
import functools
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

import psycopg
import psycopg.adapt
import psycopg.conninfo
import psycopg.types.string
import psycopg_pool

from core.errors import ConfigurationError, StorageError, redact
from core.history.sql import SQLStore

CONNECT_TIMEOUT_S = 10
POOL_SIZE = 10
WAIT_FOR_CONNECTION_S = 10.0
_SCHEMA_LOCK = 0x52455052  # PostgreSQL advisory lock that serialises migrations of one database
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
_QUERY_PASSWORD = re.compile(r"[?&]password=([^&#]*)")


def _split(url: str) -> tuple[str, str, str | None, tuple[str, ...]]:
    """The URL taken apart without libpq, so this never fails: the URL without its password, the URL to show (each
    password as ***), the password as written (None when the user info has none) and every form of every password
    in it (the user info's and the query's). A text that is not a scheme://… URL shows as *** and is secret whole."""
    scheme, separator, rest = url.partition("://")
    if not separator or not _SCHEME.fullmatch(scheme):
        return url, "***", None, (url,)
    userinfo, _, hosts = rest.rpartition("@")
    user, colon, written = userinfo.partition(":")
    secrets = tuple({form for raw in ([written] if colon else []) + _QUERY_PASSWORD.findall(hosts)
                     for form in (raw, unquote(raw), quote(unquote(raw), safe=""))})
    bare = f"{scheme}://{user}@{hosts}" if user else f"{scheme}://{hosts}"
    masked = redact(f"{scheme}://{user}:***@{hosts}" if colon else bare, secrets)
    return bare, masked, written if colon else None, secrets


def mask_url(url: str) -> str:
    """DATABASE_URL fit to show: each password in it as ***."""
    return _split(url)[1]


def url_secrets(url: str) -> tuple[str, ...]:
    """Every form of every password in DATABASE_URL (encoded or not), for redaction."""
    return _split(url)[3]


@dataclass(frozen=True)
class DatabaseUrl:
    """DATABASE_URL read once: libpq's settings without the password, the password apart, and a masked URL to show.

    The password runs from the first ':' after '://' to the last '@', so it may hold any character, encoded or not;
    libpq never reads it inside a URL, so none of its messages can quote it.
    """

    masked: str
    settings: dict[str, str] = field(repr=False)
    password: str | None = field(default=None, repr=False)
    secrets: tuple[str, ...] = field(default=(), repr=False)

    @classmethod
    def parse(cls, url: str) -> DatabaseUrl:
        scheme, separator, _ = url.partition("://")
        if not separator or scheme not in ("postgres", "postgresql"):
            found = f" (it starts with {scheme}://)" if separator and _SCHEME.fullmatch(scheme) else ""
            raise ConfigurationError(f"DATABASE_URL must be a URL postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
                                     f"{found}.")
        bare, masked, written, secrets = _split(url)
        try:
            settings = psycopg.conninfo.conninfo_to_dict(bare)
        except psycopg.Error as exc:
            reason = redact(" ".join(str(exc).split()), secrets)
            raise ConfigurationError(f"DATABASE_URL {masked} cannot be read: {reason}") from None
        query_password = settings.pop("password", None)
        return cls(masked, settings, query_password if written is None else unquote(written), secrets)

    def scrub(self, text: str) -> str:
        """`text` with every form of the password replaced by ***."""
        return redact(text, self.secrets)

    @functools.cached_property
    def key(self) -> str:
        """Which database and credentials this is, as a digest: the key of its pool, which keeps no password."""
        return hashlib.sha256(json.dumps([self.settings, self.password], sort_keys=True).encode()).hexdigest()


# Noncharacters, reserved by Unicode for internal uses like this one: only a search for one of them (which nobody
# types) could match half of an escaped pair.
_NUL, _ESCAPE, _ESCAPED_NUL = "\x00", "\ufdd0", "\ufdd1"
_ESCAPED = re.compile(f"{_ESCAPE}(.)", re.DOTALL)


def escape_nul(text: str) -> str:
    """Text PostgreSQL can keep: NUL becomes U+FDD0 U+FDD1 and U+FDD0 itself is doubled, so no text changes meaning."""
    if _NUL not in text and _ESCAPE not in text:
        return text
    return text.replace(_ESCAPE, _ESCAPE * 2).replace(_NUL, _ESCAPE + _ESCAPED_NUL)


def unescape_nul(text: str) -> str:
    """escape_nul undone."""
    if _ESCAPE not in text:
        return text
    return _ESCAPED.sub(lambda found: _NUL if found[1] == _ESCAPED_NUL else found[1], text)


class _NulSafeDumper(psycopg.types.string.StrDumperUnknown):
    def dump(self, obj: str) -> Any:
        return super().dump(escape_nul(obj))


class _NulSafeLoader(psycopg.types.string.TextLoader):
    def load(self, data: Any) -> Any:
        return unescape_nul(super().load(data))


# Every string parameter and text result of the PostgresStore passes through escape_nul and unescape_nul; search
# keeps working because a search term is escaped the same way.
_NUL_SAFE = psycopg.adapt.AdaptersMap(psycopg.adapters)
_NUL_SAFE.register_dumper(str, _NulSafeDumper)
_NUL_SAFE.register_loader("text", _NulSafeLoader)


def connection_settings(database: DatabaseUrl) -> dict[str, Any]:
    """psycopg.connect's arguments for `database`: the password apart from the URL, and NUL escaped both ways (a no-op
    for the shared limits, whose texts are digests and host names)."""
    return {"connect_timeout": CONNECT_TIMEOUT_S, **database.settings, "password": database.password,
            "context": _NUL_SAFE}


def new_pool(database: DatabaseUrl, *, timeout_s: float = WAIT_FOR_CONNECTION_S) -> psycopg_pool.ConnectionPool:
    """A pool of up to POOL_SIZE connections to `database`, filling in the background; `timeout_s` bounds each wait.

    Each connection is checked as it is lent (psycopg_pool's "connection quality" advice), so one the server dropped
    (a restart, an idle timeout) is replaced instead of failing the call; the pool rolls back any transaction left
    open in a connection given back.
    """
    pool = psycopg_pool.ConnectionPool(kwargs=connection_settings(database), min_size=1, max_size=POOL_SIZE,
                                       open=False, timeout=timeout_s,
                                       check=psycopg_pool.ConnectionPool.check_connection, name="repro")
    pool.open(wait=False)
    return pool


_pools: dict[str, psycopg_pool.ConnectionPool] = {}
_pools_lock = threading.Lock()


def process_pool(database: DatabaseUrl) -> psycopg_pool.ConnectionPool:
    """This process's one pool for `database`: a replica keeps one per DATABASE_URL, for its history and its limits."""
    with _pools_lock:
        if database.key not in _pools:
            _pools[database.key] = new_pool(database)
        return _pools[database.key]


def close_process_pools() -> None:
    """Close every pool process_pool has opened; the next call opens a new one."""
    with _pools_lock:
        for pool in _pools.values():
            pool.close()
        _pools.clear()


atexit.register(close_process_pools)  # else each pool's finaliser stops its workers at exit, a second or two later


class PostgresStore(SQLStore):
    """History in PostgreSQL through psycopg 3: each call borrows a connection of the process's pool for the database,
    and every connection escapes NUL on the way in and out."""

    _placeholder = "%s"
    _driver_error = psycopg.Error

    def __init__(self, url: str):
        self.database = DatabaseUrl.parse(url)
        self._migrate()

    def _open(self) -> contextlib.AbstractContextManager[psycopg.Connection]:
        return process_pool(self.database).connection()

    def _open_alone(self) -> psycopg.Connection:
        return psycopg.connect(**connection_settings(self.database))

    def _failed(self, exc: Exception) -> StorageError:
        failed = f"The history database at {self.database.masked} failed: {type(exc).__name__}: {exc}"
        return StorageError(self.database.scrub(" ".join(failed.split())))

    def _lock_schema(self, conn: psycopg.Connection) -> None:
        self._execute(conn, "SELECT pg_advisory_xact_lock(?)", (_SCHEMA_LOCK,))

