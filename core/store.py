"""Experiment history: each request, who answered it and every run the moment it arrives, in SQLite or PostgreSQL.

One schema and one list of migrations serve both databases. Also here: JSON export and import, and CSV export.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import functools
import io
import json
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
from urllib.parse import urlsplit

import psycopg

from core.errors import ConfigurationError, InvalidImport, InvalidRequest, StorageError
from core.models import BackendInfo, RunError, RunRequest, RunResult, TokenLogprob, Usage

EXPORT_FORMAT, EXPORT_VERSION = "repro-lab-experiment", 1
DEFAULT_SQLITE_PATH = "~/.local/share/repro-lab/history.sqlite3"
PREVIEW_CHARS = 80
BUSY_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 10
CSV_COLUMNS = ("index", "ok", "text", "error_kind", "error_message", "fingerprint", "latency_ms", "prompt_tokens",
               "completion_tokens", "total_tokens", "finish_reason", "request_id", "retries", "notice")
_SCHEMA_LOCK = 0x52455052  # PostgreSQL advisory lock that serialises migrations of one database

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
        """_open, with the driver's errors turned into StorageError (its words never hold the URL's password)."""
        try:
            with self._open() as conn:
                yield conn
        except (sqlite3.Error, psycopg.Error) as exc:
            raise StorageError(f"The history database failed: {type(exc).__name__}: {exc}".strip()) from None

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
        experiment_id = uuid.uuid4().hex
        values = {"id": experiment_id, "created_at": created_at or _now(), "kind": kind, "parent_id": parent_id,
                  "rerun_of": rerun_of, "meta": json.dumps(meta or {}, ensure_ascii=False),
                  "runs_planned": runs_planned, "complete": False, **request.to_dict(), **backend.to_dict()}
        with self._connect() as conn:
            self._execute(conn, f"INSERT INTO experiments ({', '.join(values)}) "
                                f"VALUES ({', '.join('?' * len(values))})", tuple(values.values()))
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
        self.path.parent.mkdir(parents=True, exist_ok=True)
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


class PostgresStore(_SQLStore):
    """History in PostgreSQL through psycopg 3, for hosts whose disk does not outlive a restart."""

    _placeholder = "%s"

    def __init__(self, url: str):
        scheme = urlsplit(url).scheme
        if scheme not in ("postgres", "postgresql"):
            # psycopg would echo the whole URL, password included, in its error.
            found = f" (it starts with {scheme}://)" if scheme else ""
            raise ConfigurationError(f"DATABASE_URL must be a URL postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
                                     f"{found}.")
        self.url = url
        self._migrate()

    def _open(self) -> psycopg.Connection:
        return psycopg.connect(self.url, connect_timeout=CONNECT_TIMEOUT_S)

    def _lock_schema(self, conn: psycopg.Connection) -> None:
        self._execute(conn, "SELECT pg_advisory_xact_lock(?)", (_SCHEMA_LOCK,))


def open_store(database_url: str | None = None, sqlite_path: str | os.PathLike | None = None) -> Store:
    """PostgreSQL at `database_url` or $DATABASE_URL; else SQLite at `sqlite_path`, $REPRO_HISTORY_PATH or default."""
    url = database_url or os.environ.get("DATABASE_URL")
    if url:
        return PostgresStore(url)
    return SQLiteStore(sqlite_path or os.environ.get("REPRO_HISTORY_PATH") or DEFAULT_SQLITE_PATH)


def to_json(experiment: Experiment) -> str:
    """The whole experiment, raw bodies and log-probabilities included, as a JSON document `from_json` reads back."""
    document = {"format": EXPORT_FORMAT, "version": EXPORT_VERSION, "experiment": asdict(experiment)}
    return json.dumps(document, ensure_ascii=False, indent=2)


def from_json(text: str | bytes) -> Experiment:
    """Read a `to_json` export; InvalidImport names what is wrong (not JSON, format, version, a field, a value)."""
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise InvalidImport(f"The file is not JSON: {exc}.") from None
    if not isinstance(document, dict) or document.get("format") != EXPORT_FORMAT:
        raise InvalidImport(f"The file is not a Repro Lab experiment export: its format should be {EXPORT_FORMAT!r}.")
    if document.get("version") != EXPORT_VERSION:
        raise InvalidImport(f"Export version {document.get('version')!r} is not supported; "
                            f"this Repro Lab reads version {EXPORT_VERSION}.")
    if "experiment" not in document:
        raise InvalidImport("The export has no 'experiment'.")
    experiment = _decode(Experiment, document["experiment"], "experiment")
    if experiment.kind != "experiment":
        raise InvalidImport(f"experiment.kind must be 'experiment' (a {experiment.kind!r} is not exported whole), "
                            f"got {experiment.kind!r}.")
    try:
        datetime.fromisoformat(experiment.created_at)
    except ValueError:
        raise InvalidImport(f"experiment.created_at must be an ISO 8601 time, got {experiment.created_at!r}.") from None
    indices = [run.index for run in experiment.runs]
    if sorted(set(indices)) != indices or not all(0 <= k < experiment.runs_planned for k in indices):
        raise InvalidImport(f"experiment.runs must have distinct indices from 0 to runs_planned - 1 "
                            f"({experiment.runs_planned - 1}) in order, got {indices}.")
    return experiment


_TYPE_WORDS = {str: "text", int: "a whole number", float: "a number", bool: "true or false", dict: "an object"}
_hints = functools.cache(typing.get_type_hints)


def _decode(kind: Any, value: Any, where: str) -> Any:
    """`value` parsed from JSON, checked and built as `kind`: a dataclass, `X | None`, `tuple[X, ...]` or JSON."""
    if dataclasses.is_dataclass(kind):
        if not isinstance(value, dict):
            raise InvalidImport(f"{where} must be an object, got {value!r:.40}.")
        hints = _hints(kind)
        if unknown := sorted(value.keys() - hints.keys()):
            raise InvalidImport(f"{where} has an unknown field {unknown[0]!r}.")
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
    return value


def _cell(text: str | None) -> str | None:
    """Model text that a spreadsheet would run as a formula (=, +, -, @ first) gets a leading apostrophe."""
    return "'" + text if text and text[0] in "=+-@\t\r" else text


def to_csv(experiment: Experiment) -> str:
    """One row per run, by index, with the columns in CSV_COLUMNS; text cells are made formula-safe."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for run in experiment.runs:
        error, usage = run.error, run.usage
        writer.writerow((run.index, run.ok, _cell(run.text), error and error.kind, error and _cell(error.message),
                         run.system_fingerprint, run.latency_ms, usage and usage.prompt_tokens,
                         usage and usage.completion_tokens, usage and usage.total_tokens, run.finish_reason,
                         run.request_id, run.retries, run.notice))
    return out.getvalue()


def import_experiment(store: Store, experiment: Experiment) -> str:
    """Save an imported experiment as a new top-level item (a new id; created_at, runs and the rest kept)."""
    experiment_id = store.create(experiment.request, experiment.backend, experiment.runs_planned, kind=experiment.kind,
                                 rerun_of=experiment.rerun_of, meta=experiment.meta, created_at=experiment.created_at)
    for run in experiment.runs:
        store.add_run(experiment_id, run)
    if experiment.complete:
        store.finish(experiment_id)
    return experiment_id
