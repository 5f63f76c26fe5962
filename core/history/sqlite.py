"""History in one SQLite file: the default, for a laptop or any host whose disk outlives a restart."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from core.errors import ConfigurationError
from core.history.sql import SQLStore

BUSY_TIMEOUT_S = 30.0


class SQLiteStore(SQLStore):
    """History in one SQLite file in WAL mode, so readers never wait for the writer; waits out other writers."""

    _driver_error = sqlite3.Error

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path).expanduser()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or exc
            raise ConfigurationError(f"The history file {self.path} cannot be used: its folder cannot be created "
                                     f"({reason}); set REPRO_HISTORY_PATH to a file in a folder you can write.") from None
        self._migrate()

    @contextlib.contextmanager
    def _open(self) -> Iterator[sqlite3.Connection]:
        with contextlib.closing(sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S)) as conn, conn:
            conn.execute("PRAGMA foreign_keys = ON")
            # SQLite's own lower() folds ASCII only; PostgreSQL's folds every script.
            conn.create_function("lower", 1, str.lower, deterministic=True)
            yield conn

    def _lock_schema(self, conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("BEGIN IMMEDIATE")
