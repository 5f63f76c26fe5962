"""Where the history is kept, as a value the settings build, and opening the store it names."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.history.postgres import PostgresStore, mask_url, url_secrets
from core.history.sqlite import SQLiteStore
from core.history.store import Store

DEFAULT_SQLITE_PATH = "~/.local/share/repro-lab/history.sqlite3"


@dataclass(frozen=True)
class HistoryLocation:
    """PostgreSQL at `database_url` (DATABASE_URL) when it is set, else the SQLite file at `sqlite_path`
    (REPRO_HISTORY_PATH) or DEFAULT_SQLITE_PATH. The URL may hold a password, so only `masked_url` is ever shown."""

    database_url: str | None = field(default=None, repr=False)
    sqlite_path: str | None = None

    @property
    def masked_url(self) -> str | None:
        """The database URL with each password as ***; None without one."""
        return mask_url(self.database_url) if self.database_url else None

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every form of the database password, for the redaction of anything shown."""
        return url_secrets(self.database_url) if self.database_url else ()


def open_store(location: HistoryLocation) -> Store:
    """The store at `location`, its schema migrated to this version: ConfigurationError when the location cannot be
    used as written, StorageError when the database fails."""
    if location.database_url:
        return PostgresStore(location.database_url)
    return SQLiteStore(location.sqlite_path or DEFAULT_SQLITE_PATH)
