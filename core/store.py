"""Experiment history: each request, who answered it and every run the moment it arrives, in SQLite or PostgreSQL.

One schema and one list of migrations serve both databases. Also here: JSON export and import (checked against
limits before anything is written), and CSV export.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import functools
import io
import json
import math
import os
import re
import sqlite3
import types
import typing
import uuid
from abc import abstractmethod
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, unquote

import psycopg
import psycopg.adapt
import psycopg.conninfo
import psycopg.types.string

from core.errors import ConfigurationError, InvalidImport, InvalidRequest, StorageError, redact
from core.models import (
    MAX_RUNS,
    MAX_TOKENS_LIMIT,
    MAX_TOP_LOGPROBS,
    SEED_MAX,
    SEED_MIN,
    BackendInfo,
    RunError,
    RunRequest,
    RunResult,
    TokenLogprob,
    Usage,
)

EXPORT_FORMAT, EXPORT_VERSION = "repro-lab-experiment", 1
DEFAULT_SQLITE_PATH = "~/.local/share/repro-lab/history.sqlite3"
PREVIEW_CHARS = 80
BUSY_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 10
CSV_COLUMNS = ("index", "ok", "text", "error_kind", "error_message", "fingerprint", "latency_ms", "prompt_tokens",
               "completion_tokens", "total_tokens", "finish_reason", "request_id", "retries", "notice")
_SCHEMA_LOCK = 0x52455052  # PostgreSQL advisory lock that serialises migrations of one database
MAX_IMPORT_BYTES = 20 * 2**20  # the History page's uploader and server.maxUploadSize say the same 20 MB
MAX_IMPORT_DEPTH = 64
MAX_TEXT_CHARS = 200_000
MAX_RAW_CHARS = 1_000_000
INTEGER_MAX = 2**31 - 1  # PostgreSQL's INTEGER, the type of every whole-number column but the seed

# Portable SQL only (TEXT, INTEGER, BIGINT, DOUBLE PRECISION, BOOLEAN); entry k brings a database to version k + 1.
# Append, never edit: a database records the versions it has had applied in schema_version.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE experiments (
            id TEXT PRIMARY KEY,
            created_at TEXT NOT NULL,
            prompt TEXT NOT NULL,
            system TEXT NOT NULL,
            temperature DOUBLE PRECISION NOT NULL,
            top_p DOUBLE PRECISION NOT NULL,
            max_tokens INTEGER NOT NULL,
            seed BIGINT,
            logprobs BOOLEAN NOT NULL,
            top_logprobs INTEGER NOT NULL,
            provider TEXT NOT NULL,
            model TEXT NOT NULL,
            endpoint_host TEXT,
            api_version TEXT,
            mode TEXT,
            runs_planned INTEGER NOT NULL,
            complete BOOLEAN NOT NULL DEFAULT FALSE
        )""",
        """CREATE TABLE runs (
            experiment_id TEXT NOT NULL REFERENCES experiments (id) ON DELETE CASCADE,
            run_index INTEGER NOT NULL,
            latency_ms DOUBLE PRECISION NOT NULL,
            text TEXT,
            error_kind TEXT,
            error_message TEXT,
            error_status INTEGER,
            finish_reason TEXT,
            system_fingerprint TEXT,
            model TEXT,
            request_id TEXT,
            prompt_tokens INTEGER,
            completion_tokens INTEGER,
            total_tokens INTEGER,
            logprobs TEXT,
            retries INTEGER NOT NULL,
            raw TEXT,
            notice TEXT,
            PRIMARY KEY (experiment_id, run_index)
        )""",
    ),
    (
        "ALTER TABLE experiments ADD COLUMN kind TEXT NOT NULL DEFAULT 'experiment'",
        "ALTER TABLE experiments ADD COLUMN parent_id TEXT REFERENCES experiments (id) ON DELETE CASCADE",
        "ALTER TABLE experiments ADD COLUMN rerun_of TEXT",
        "ALTER TABLE experiments ADD COLUMN meta TEXT NOT NULL DEFAULT '{}'",
        "CREATE INDEX experiments_by_time ON experiments (created_at)",
        "CREATE INDEX experiments_by_parent ON experiments (parent_id)",
    ),
)

# The request and backend columns carry their dataclass fields' names, so a new field needs a migration to match.
_REQUEST_FIELDS = tuple(RunRequest.__dataclass_fields__)
_BACKEND_FIELDS = tuple(BackendInfo.__dataclass_fields__)
_EXPERIMENT_COLUMNS = ("id", "created_at", "kind", "parent_id", "rerun_of", "meta", "runs_planned", "complete",
                       *_REQUEST_FIELDS, *_BACKEND_FIELDS)
_RUN_COLUMNS = ("run_index", "latency_ms", "text", "error_kind", "error_message", "error_status", "finish_reason",
                "system_fingerprint", "model", "request_id", "prompt_tokens", "completion_tokens", "total_tokens",
                "logprobs", "retries", "raw", "notice")
_ADD_EXPERIMENT = (f"INSERT INTO experiments ({', '.join(_EXPERIMENT_COLUMNS)}) "
                   f"VALUES (?{', ?' * (len(_EXPERIMENT_COLUMNS) - 1)})")
_ADD_RUN = (f"INSERT INTO runs (experiment_id, {', '.join(_RUN_COLUMNS)}) VALUES (?{', ?' * len(_RUN_COLUMNS)}) "
            "ON CONFLICT (experiment_id, run_index) DO NOTHING")
_SEARCHED = ("prompt", "system", "model")


@dataclass(frozen=True)
class Experiment:
    """One saved batch (or a sweep, whose cells are child experiments): the request, who answered, runs by index."""

    id: str
    created_at: str
    request: RunRequest
    backend: BackendInfo
    runs_planned: int
    complete: bool
    runs: tuple[RunResult, ...]
    kind: str = "experiment"
    parent_id: str | None = None
    rerun_of: str | None = None
    meta: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ExperimentRow:
    """One line of the history list: enough to recognise and filter an item without loading its runs."""

    id: str
    created_at: str
    kind: str
    provider: str
    model: str
    endpoint_host: str | None
    prompt_preview: str
    runs_planned: int
    runs_done: int
    seed: int | None
    temperature: float
    unique_outputs: int
    fingerprints: tuple[str, ...]
    complete: bool
    rerun_of: str | None


class Store(Protocol):
    """Where experiments are kept: a SQLiteStore or a PostgresStore, as open_store chooses."""

    def create(self, request: RunRequest, backend: BackendInfo, runs_planned: int, *, kind: str = "experiment",
               parent_id: str | None = None, rerun_of: str | None = None, meta: dict | None = None,
               created_at: str | None = None) -> str:
        """Save a new, incomplete experiment (created now unless `created_at` is given) and return its id."""

    def add_experiment(self, experiment: Experiment) -> str:
        """Save a whole experiment, its runs included, under a new id in one transaction: all of it or nothing."""

    def add_run(self, experiment_id: str, result: RunResult) -> None:
        """Save one run; a second run with the same index is ignored."""

    def finish(self, experiment_id: str) -> None:
        """Mark the experiment complete: every planned run has arrived."""

    def get(self, experiment_id: str) -> Experiment | None:
        """The experiment with its runs, or None."""

    def list(self, *, search: str | None = None, provider: str | None = None, limit: int = 200) -> list[ExperimentRow]:
        """Top-level items, newest first; `search` matches prompt, system prompt or model, ignoring case."""

    def children(self, parent_id: str) -> list[Experiment]:
        """The items saved under a parent (a sweep's cells), oldest first."""

    def delete(self, experiment_id: str) -> bool:
        """Delete an item with its runs and children; False when there was none."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _experiment_values(experiment_id: str, experiment: Experiment) -> tuple[Any, ...]:
    """The row of _ADD_EXPERIMENT, in _EXPERIMENT_COLUMNS order."""
    return (experiment_id, experiment.created_at, experiment.kind, experiment.parent_id, experiment.rerun_of,
            json.dumps(experiment.meta, ensure_ascii=False), experiment.runs_planned, experiment.complete,
            *experiment.request.to_dict().values(), *experiment.backend.to_dict().values())


def _run_values(result: RunResult) -> tuple[Any, ...]:
    error, usage = result.error, result.usage
    logprobs = json.dumps([asdict(token) for token in result.logprobs]) if result.logprobs is not None else None
    return (result.index, result.latency_ms, result.text, error and error.kind, error and error.message,
            error and error.status, result.finish_reason, result.system_fingerprint, result.model, result.request_id,
            usage and usage.prompt_tokens, usage and usage.completion_tokens, usage and usage.total_tokens,
            logprobs, result.retries, result.raw, result.notice)


def _run_from(values: Sequence[Any]) -> RunResult:
    (index, latency_ms, text, error_kind, error_message, error_status, finish_reason, fingerprint, model, request_id,
     prompt_tokens, completion_tokens, total_tokens, logprobs, retries, raw, notice) = values
    return RunResult(
        index=index, latency_ms=latency_ms, text=text,
        error=RunError(error_kind, error_message, error_status) if error_kind is not None else None,
        finish_reason=finish_reason, system_fingerprint=fingerprint, model=model, request_id=request_id,
        usage=Usage(prompt_tokens, completion_tokens, total_tokens) if prompt_tokens is not None else None,
        logprobs=_decode(tuple[TokenLogprob, ...], json.loads(logprobs), "logprobs") if logprobs is not None else None,
        retries=retries, raw=raw, notice=notice,
    )


def _experiment_from(row: dict[str, Any], runs: list[RunResult]) -> Experiment:
    request = {name: row[name] for name in _REQUEST_FIELDS} | {"logprobs": bool(row["logprobs"])}
    return Experiment(
        id=row["id"], created_at=row["created_at"], request=RunRequest(**request),
        backend=BackendInfo(**{name: row[name] for name in _BACKEND_FIELDS}), runs_planned=row["runs_planned"],
        complete=bool(row["complete"]), runs=tuple(runs), kind=row["kind"], parent_id=row["parent_id"],
        rerun_of=row["rerun_of"], meta=json.loads(row["meta"]),
    )


def _preview(prompt_start: str) -> str:
    line = " ".join(prompt_start.split())
    return line if len(line) <= PREVIEW_CHARS else line[: PREVIEW_CHARS - 1] + "…"


def _like(text: str) -> str:
    """A LIKE pattern that finds `text` anywhere, its own % and _ taken literally."""
    return "%" + re.sub(r"([\\%_])", r"\\\1", text.lower()) + "%"


class _SQLStore(Store):
    """The Store over a DB-API connection; subclasses say how to connect, their placeholder and the migration lock.

    The SQL is written with `?` placeholders; each call opens and closes its own connection, so any thread may call.
    """

    _placeholder = "?"

    @abstractmethod
    def _open(self) -> contextlib.AbstractContextManager[Any]:
        """A connection that commits when the block succeeds, rolls back when it raises, and closes."""

    @contextlib.contextmanager
    def _connect(self) -> Iterator[Any]:
        """_open, with the driver's errors (and values it cannot store) turned into a StorageError."""
        try:
            with self._open() as conn:
                yield conn
        except (sqlite3.Error, psycopg.Error, UnicodeEncodeError, OverflowError) as exc:
            raise self._failed(exc) from None

    def _failed(self, exc: Exception) -> StorageError:
        """The driver's error on one line, in words fit to show."""
        return StorageError(" ".join(f"The history database failed: {type(exc).__name__}: {exc}".split()))

    @abstractmethod
    def _lock_schema(self, conn: Any) -> None:
        """Begin a transaction no other process can migrate in at the same time."""

    def _execute(self, conn: Any, sql: str, params: Sequence[Any] = ()) -> Any:
        return conn.execute(sql.replace("?", self._placeholder), params)

    def _migrate(self) -> None:
        with self._connect() as conn:
            self._lock_schema(conn)
            self._execute(conn, "CREATE TABLE IF NOT EXISTS schema_version "
                                "(version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)")
            current = self._execute(conn, "SELECT MAX(version) FROM schema_version").fetchone()[0] or 0
            if current > len(MIGRATIONS):
                raise ConfigurationError(f"The history database has schema version {current}, newer than this "
                                         f"Repro Lab knows ({len(MIGRATIONS)}); update Repro Lab to open it.")
            for version, statements in enumerate(MIGRATIONS[current:], start=current + 1):
                for statement in statements:
                    self._execute(conn, statement)
                self._execute(conn, "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                              (version, _now()))

    def create(self, request: RunRequest, backend: BackendInfo, runs_planned: int, *, kind: str = "experiment",
               parent_id: str | None = None, rerun_of: str | None = None, meta: dict | None = None,
               created_at: str | None = None) -> str:
        return self.add_experiment(Experiment(id="", created_at=created_at or _now(), request=request, backend=backend,
                                              runs_planned=runs_planned, complete=False, runs=(), kind=kind,
                                              parent_id=parent_id, rerun_of=rerun_of, meta=meta or {}))

    def add_experiment(self, experiment: Experiment) -> str:
        experiment_id = uuid.uuid4().hex
        with self._connect() as conn:
            self._execute(conn, _ADD_EXPERIMENT, _experiment_values(experiment_id, experiment))
            for run in experiment.runs:
                self._execute(conn, _ADD_RUN, (experiment_id, *_run_values(run)))
        return experiment_id

    def add_run(self, experiment_id: str, result: RunResult) -> None:
        with self._connect() as conn:
            self._execute(conn, _ADD_RUN, (experiment_id, *_run_values(result)))

    def finish(self, experiment_id: str) -> None:
        with self._connect() as conn:
            self._execute(conn, "UPDATE experiments SET complete = ? WHERE id = ?", (True, experiment_id))

    def get(self, experiment_id: str) -> Experiment | None:
        found = self._experiments("id = ?", (experiment_id,))
        return found[0] if found else None

    def children(self, parent_id: str) -> list[Experiment]:
        return self._experiments("parent_id = ?", (parent_id,))

    def _experiments(self, where: str, params: Sequence[Any]) -> list[Experiment]:
        with self._connect() as conn:
            rows = self._execute(conn, f"SELECT {', '.join(_EXPERIMENT_COLUMNS)} FROM experiments WHERE {where} "
                                       "ORDER BY created_at, id", params).fetchall()
            run_rows = self._execute(conn, f"SELECT experiment_id, {', '.join(_RUN_COLUMNS)} FROM runs "
                                           f"WHERE experiment_id IN (SELECT id FROM experiments WHERE {where}) "
                                           "ORDER BY run_index", params).fetchall()
        runs: dict[str, list[RunResult]] = defaultdict(list)
        for experiment_id, *values in run_rows:
            runs[experiment_id].append(_run_from(values))
        return [_experiment_from(dict(zip(_EXPERIMENT_COLUMNS, row, strict=True)), runs[row[0]]) for row in rows]

    def list(self, *, search: str | None = None, provider: str | None = None, limit: int = 200) -> list[ExperimentRow]:
        where, params = ["e.parent_id IS NULL"], []
        if provider:
            where.append("e.provider = ?")
            params.append(provider)
        if search:
            where.append("(" + " OR ".join(f"LOWER(e.{column}) LIKE ? ESCAPE '\\'" for column in _SEARCHED) + ")")
            params += [_like(search)] * len(_SEARCHED)
        with self._connect() as conn:
            rows = self._execute(conn, f"""
                SELECT e.id, e.created_at, e.kind, e.provider, e.model, e.endpoint_host,
                       SUBSTR(e.prompt, 1, {PREVIEW_CHARS * 2}), e.runs_planned, COUNT(r.run_index), e.seed,
                       e.temperature, COUNT(DISTINCT CASE WHEN r.error_kind IS NULL THEN r.text END), e.complete,
                       e.rerun_of
                FROM experiments e LEFT JOIN runs r ON r.experiment_id = e.id
                WHERE {' AND '.join(where)}
                GROUP BY e.id ORDER BY e.created_at DESC, e.id DESC LIMIT ?""", (*params, limit)).fetchall()
            ids = [row[0] for row in rows]
            fingerprints: dict[str, list[str]] = defaultdict(list)
            if ids:
                for experiment_id, fingerprint in self._execute(conn, f"""
                        SELECT experiment_id, system_fingerprint FROM runs
                        WHERE system_fingerprint IS NOT NULL AND experiment_id IN ({', '.join('?' * len(ids))})
                        GROUP BY experiment_id, system_fingerprint
                        ORDER BY COUNT(*) DESC, system_fingerprint""", ids).fetchall():
                    fingerprints[experiment_id].append(fingerprint)
        return [
            ExperimentRow(id=id_, created_at=created_at, kind=kind, provider=provider_, model=model,
                          endpoint_host=host, prompt_preview=_preview(prompt), runs_planned=planned, runs_done=done,
                          seed=seed, temperature=temperature, unique_outputs=unique,
                          fingerprints=tuple(fingerprints[id_]), complete=bool(complete), rerun_of=rerun_of)
            for (id_, created_at, kind, provider_, model, host, prompt, planned, done, seed, temperature, unique,
                 complete, rerun_of) in rows
        ]

    def delete(self, experiment_id: str) -> bool:
        with self._connect() as conn:
            return self._execute(conn, "DELETE FROM experiments WHERE id = ?", (experiment_id,)).rowcount > 0


class SQLiteStore(_SQLStore):
    """History in one SQLite file in WAL mode, so readers never wait for the writer; waits out other writers."""

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


_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
_QUERY_PASSWORD = re.compile(r"[?&]password=([^&#]*)")


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
        scheme, separator, rest = url.partition("://")
        if not separator or scheme not in ("postgres", "postgresql"):
            found = f" (it starts with {scheme}://)" if separator and _SCHEME.fullmatch(scheme) else ""
            raise ConfigurationError(f"DATABASE_URL must be a URL postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
                                     f"{found}.")
        userinfo, _, hosts = rest.rpartition("@")
        user, colon, written = userinfo.partition(":")
        secrets = tuple({form for raw in ([written] if colon else []) + _QUERY_PASSWORD.findall(hosts)
                         for form in (raw, unquote(raw), quote(unquote(raw), safe=""))})
        bare = f"{scheme}://{user}@{hosts}" if user else f"{scheme}://{hosts}"
        masked = redact(f"{scheme}://{user}:***@{hosts}" if colon else bare, secrets)
        try:
            settings = psycopg.conninfo.conninfo_to_dict(bare)
        except psycopg.Error as exc:
            reason = redact(" ".join(str(exc).split()), secrets)
            raise ConfigurationError(f"DATABASE_URL {masked} cannot be read: {reason}") from None
        query_password = settings.pop("password", None)
        return cls(masked, settings, unquote(written) if colon else query_password, secrets)

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


class PostgresStore(_SQLStore):
    """History in PostgreSQL through psycopg 3, for hosts whose disk does not outlive a restart."""

    _placeholder = "%s"

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


def open_store(database_url: str | None = None, sqlite_path: str | os.PathLike | None = None) -> Store:
    """PostgreSQL at `database_url` or $DATABASE_URL; else SQLite at `sqlite_path`, $REPRO_HISTORY_PATH or default."""
    url = database_url or os.environ.get("DATABASE_URL")
    if url:
        return PostgresStore(url)
    return SQLiteStore(sqlite_path or os.environ.get("REPRO_HISTORY_PATH") or DEFAULT_SQLITE_PATH)


def strict_json(data: Any, **options: Any) -> str:
    """JSON any parser reads: NaN and the infinities, which json.dumps writes bare, become null."""
    return json.dumps(_finite(data), ensure_ascii=False, allow_nan=False, **options)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def to_json(experiment: Experiment) -> str:
    """The whole experiment, raw bodies and log-probabilities included, as a JSON document `from_json` reads back."""
    return strict_json({"format": EXPORT_FORMAT, "version": EXPORT_VERSION, "experiment": asdict(experiment)},
                       indent=2)


def from_json(text: str | bytes) -> Experiment:
    """Read a `to_json` export; InvalidImport names what is wrong (not JSON, format, version, a field, a value) and
    refuses what no store could keep or no page could show (see _check_limits) before anything is written."""
    document = _parse(text)
    if not isinstance(document, dict) or document.get("format") != EXPORT_FORMAT:
        raise InvalidImport(f"The file is not a Repro Lab experiment export: its format should be {EXPORT_FORMAT!r}.")
    if document.get("version") != EXPORT_VERSION:
        raise InvalidImport(f"Export version {document.get('version')!r:.40} is not supported; "
                            f"this Repro Lab reads version {EXPORT_VERSION}.")
    if "experiment" not in document:
        raise InvalidImport("The export has no 'experiment'.")
    _check_limits(document["experiment"], "experiment", "experiment")
    experiment = _decode(Experiment, document["experiment"], "experiment")
    if experiment.kind != "experiment":
        raise InvalidImport(f"experiment.kind must be 'experiment' (a {experiment.kind!r:.40} is not exported whole), "
                            f"got {experiment.kind!r:.40}.")
    try:
        datetime.fromisoformat(experiment.created_at)
    except ValueError:
        raise InvalidImport(f"experiment.created_at must be an ISO 8601 time, got {experiment.created_at!r:.40}.") from None
    indices = [run.index for run in experiment.runs]
    if sorted(set(indices)) != indices or not all(0 <= k < experiment.runs_planned for k in indices):
        raise InvalidImport(f"experiment.runs must have distinct indices from 0 to runs_planned - 1 "
                            f"({experiment.runs_planned - 1}) in order, got {indices}.")
    return experiment


_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


def _parse(text: str | bytes) -> Any:
    """The JSON document, once its size, encoding and nesting are within bounds; NaN and Infinity are kept as floats
    for _check_limits to refuse with the field's name."""
    if len(text) > MAX_IMPORT_BYTES:
        raise InvalidImport(f"The file is over the {MAX_IMPORT_BYTES // 2**20} MB an import may have "
                            f"({MAX_IMPORT_BYTES:,} bytes).")
    if isinstance(text, bytes):
        try:
            text = text.decode(json.detect_encoding(text))
        except UnicodeDecodeError as exc:
            raise InvalidImport(f"The file is not JSON: it is not UTF-8 text ({exc.reason} at byte {exc.start}).") from None
    # Measured before parsing, as json.loads would recurse once per level and fail with a RecursionError.
    if (deepest := _deepest_nesting(text)) > MAX_IMPORT_DEPTH:
        raise InvalidImport(f"The file nests lists and objects {deepest:,} deep; an export nests at most "
                            f"{MAX_IMPORT_DEPTH}.")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise InvalidImport(f"The file is not JSON: {exc}.") from None


def _deepest_nesting(text: str) -> int:
    """How deep the lists and objects of a JSON text nest (its strings' brackets left out)."""
    depth = deepest = 0
    for bracket in _NOT_BRACKET.sub("", _JSON_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


_LIST_LIMITS = {"runs": MAX_RUNS, "logprobs": MAX_TOKENS_LIMIT, "top": MAX_TOP_LOGPROBS}
_TEXT_LIMITS = {"raw": MAX_RAW_CHARS}
_FREE_INT_RANGE = (-(2**63), 2**63 - 1)  # a whole number in `meta` is kept as JSON text; others fit INTEGER columns
_INT_RANGES = {"seed": (SEED_MIN, SEED_MAX), "runs_planned": (1, MAX_RUNS),
               **dict.fromkeys(("temperature", "top_p", "latency_ms", "logprob"), _FREE_INT_RANGE)}  # floats
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _check_limits(value: Any, where: str, name: str, free: bool = False) -> None:
    """Refuse, naming the field, what a store cannot keep or a page should not show: text that is not Unicode or too
    long, whole numbers out of their column's range, NaN and the infinities, lists longer than a run can be.
    `free` is for `meta`, whose names are not ours: only its text, numbers and 64-bit range are checked."""
    if isinstance(value, dict):
        for key, item in value.items():
            _check_text(key, f"{where} (a name in it)", MAX_TEXT_CHARS)
            inside = f"{where}.{key}" if key.isidentifier() else f"{where}[{key!r:.40}]"
            _check_limits(item, inside, key, free or key == "meta")
    elif isinstance(value, list):
        limit = None if free else _LIST_LIMITS.get(name)
        if limit is not None and len(value) > limit:
            raise InvalidImport(f"{where} has {len(value):,} items; the limit is {limit:,}.")
        for k, item in enumerate(value):
            _check_limits(item, f"{where}[{k}]", name, free)
    elif isinstance(value, str):
        _check_text(value, where, MAX_TEXT_CHARS if free else _TEXT_LIMITS.get(name, MAX_TEXT_CHARS))
    elif isinstance(value, float) and not math.isfinite(value):
        raise InvalidImport(f"{where} must be a finite number, got {value}.")
    elif isinstance(value, int) and not isinstance(value, bool):
        low, high = _FREE_INT_RANGE if free else _INT_RANGES.get(name, (0, INTEGER_MAX))
        if not low <= value <= high:
            raise InvalidImport(f"{where} must be a whole number from {low:,} to {high:,}, got {value!r:.40}.")


def _check_text(text: str, where: str, limit: int) -> None:
    if len(text) > limit:
        raise InvalidImport(f"{where} has {len(text):,} characters; the limit is {limit:,}.")
    if surrogate := _LONE_SURROGATE.search(text):
        raise InvalidImport(f"{where} holds a lone surrogate U+{ord(surrogate.group()):04X} at position "
                            f"{surrogate.start()}, which is not Unicode text.")


_TYPE_WORDS = {str: "text", int: "a whole number", float: "a number", bool: "true or false", dict: "an object"}
_hints = functools.cache(typing.get_type_hints)


def _decode(kind: Any, value: Any, where: str) -> Any:
    """`value` parsed from JSON, checked and built as `kind`: a dataclass, `X | None`, `tuple[X, ...]` or JSON."""
    if dataclasses.is_dataclass(kind):
        if not isinstance(value, dict):
            raise InvalidImport(f"{where} must be an object, got {value!r:.40}.")
        hints = _hints(kind)
        if unknown := sorted(value.keys() - hints.keys()):
            raise InvalidImport(f"{where} has an unknown field {unknown[0]!r:.40}.")
        fields = {}
        for spec in dataclasses.fields(kind):
            if spec.name in value:
                fields[spec.name] = _decode(hints[spec.name], value[spec.name], f"{where}.{spec.name}")
            elif spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
                raise InvalidImport(f"{where}.{spec.name} is missing.")
        try:
            return kind(**fields)
        except InvalidRequest as exc:
            raise InvalidImport(f"{where} is not valid: {exc}") from None
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin is types.UnionType:
        return None if value is None else _decode(args[0], value, where)
    if origin is tuple:
        if not isinstance(value, list):
            raise InvalidImport(f"{where} must be a list, got {value!r:.40}.")
        return tuple(_decode(args[0], item, f"{where}[{k}]") for k, item in enumerate(value))
    accepted = (int, float) if kind is float else kind
    if not isinstance(value, accepted) or (isinstance(value, bool) and kind is not bool):
        raise InvalidImport(f"{where} must be {_TYPE_WORDS[kind]}, got {value!r:.40}.")
    return float(value) if kind is float else value


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _inert(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula (= + - @, tab or CR first) gets a leading apostrophe; numbers
    stay numbers, so a negative latency is still a number while the text "-1+1" from a server is text."""
    return "'" + value if isinstance(value, str) and value.startswith(_FORMULA_START) else value


def to_csv(experiment: Experiment) -> str:
    """One row per run, by index, with the columns in CSV_COLUMNS; every text cell is made formula-safe."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for run in experiment.runs:
        error, usage = run.error, run.usage
        writer.writerow(map(_inert, (
            run.index, run.ok, run.text, error and error.kind, error and error.message, run.system_fingerprint,
            run.latency_ms, usage and usage.prompt_tokens, usage and usage.completion_tokens,
            usage and usage.total_tokens, run.finish_reason, run.request_id, run.retries, run.notice)))
    return out.getvalue()


def import_experiment(store: Store, experiment: Experiment) -> str:
    """Save an imported experiment as a new top-level item (a new id; created_at, runs and the rest kept), in one
    transaction: an import that fails leaves nothing behind."""
    return store.add_experiment(dataclasses.replace(experiment, parent_id=None))
