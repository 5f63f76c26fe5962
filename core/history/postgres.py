"""History in PostgreSQL through psycopg 3, for hosts whose disk does not outlive a restart: DATABASE_URL read without
ever showing its password, and NUL (which PostgreSQL's text cannot hold) kept through an escape."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

import psycopg
import psycopg.adapt
import psycopg.conninfo
import psycopg.types.string

from core.errors import ConfigurationError, StorageError, redact
from core.history.sql import SQLStore

CONNECT_TIMEOUT_S = 10
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


class PostgresStore(SQLStore):
    """History in PostgreSQL through psycopg 3; every connection escapes NUL on the way in and out."""

    _placeholder = "%s"
    _driver_error = psycopg.Error

    def __init__(self, url: str):
        self.database = DatabaseUrl.parse(url)
        self._migrate()

    def _open(self) -> psycopg.Connection:
        settings = {"connect_timeout": CONNECT_TIMEOUT_S, **self.database.settings, "password": self.database.password}
        return psycopg.connect(context=_NUL_SAFE, **settings)

    def _failed(self, exc: Exception) -> StorageError:
        failed = f"The history database at {self.database.masked} failed: {type(exc).__name__}: {exc}"
        return StorageError(self.database.scrub(" ".join(failed.split())))

    def _lock_schema(self, conn: psycopg.Connection) -> None:
        self._execute(conn, "SELECT pg_advisory_xact_lock(?)", (_SCHEMA_LOCK,))

