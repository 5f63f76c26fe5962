"""The Store over any DB-API connection: the SQL both drivers share, written once with `?` placeholders."""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from abc import abstractmethod
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import asdict, replace
from datetime import UTC, datetime
from typing import Any, ClassVar

from core.errors import ConfigurationError, StorageError
from core.history.archive import decode
from core.history.migrations import MIGRATIONS
from core.history.store import Experiment, ExperimentRow, Store
from core.models import BackendInfo, RunError, RunRequest, RunResult, TokenLogprob, Usage

PREVIEW_CHARS = 80

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
_FINISH = "UPDATE experiments SET complete = ? WHERE id = ?"
_SEARCHED = ("prompt", "system", "model")


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
        logprobs=decode(tuple[TokenLogprob, ...], json.loads(logprobs), "logprobs") if logprobs is not None else None,
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


class SQLStore(Store):
    """The Store over a DB-API connection; subclasses say how to connect, their placeholder, their driver's error
    class and the migration lock.

    The SQL is written with `?` placeholders; each call holds a connection of its own (opened, or borrowed from a
    pool) for one transaction, so any thread may call.
    """

    _placeholder: ClassVar[str] = "?"
    _driver_error: ClassVar[type[Exception]]

    @abstractmethod
    def _open(self) -> contextlib.AbstractContextManager[Any]:
        """A connection that commits when the block succeeds, rolls back when it raises, and is then closed or given
        back to its pool."""

    def _open_alone(self) -> contextlib.AbstractContextManager[Any]:
        """_open, but a connection opened for this block only: the migration's, so a database that cannot be reached
        says why at once."""
        return self._open()

    @contextlib.contextmanager
    def _connect(self, *, alone: bool = False) -> Iterator[Any]:
        """_open (_open_alone when `alone`), with the driver's errors (and values it cannot store) turned into a
        StorageError."""
        try:
            with self._open_alone() if alone else self._open() as conn:
                yield conn
        except (self._driver_error, UnicodeEncodeError, OverflowError) as exc:
            raise self._failed(exc) from None

    def _failed(self, exc: Exception) -> StorageError:
        """The driver's error on one line, in words fit to show."""
        return StorageError(" ".join(f"The history database failed: {type(exc).__name__}: {exc}".split()))

    @abstractmethod
    def _lock_schema(self, conn: Any) -> None:
        """Begin a transaction no other process can migrate in at the same time."""

    def _sql(self, sql: str) -> str:
        return sql.replace("?", self._placeholder)

    def _execute(self, conn: Any, sql: str, params: Sequence[Any] = ()) -> Any:
        return conn.execute(self._sql(sql), params)

    def _migrate(self) -> None:
        with self._connect(alone=True) as conn:
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

    def add_experiment(self, experiment: Experiment, children: Sequence[Experiment] = ()) -> str:
        experiment_id = uuid.uuid4().hex
        with self._connect() as conn:
            for item_id, item in [(experiment_id, experiment),
                                  *((uuid.uuid4().hex, replace(child, parent_id=experiment_id)) for child in children)]:
                self._execute(conn, _ADD_EXPERIMENT, _experiment_values(item_id, item))
                self._insert_runs(conn, [(item_id, run) for run in item.runs])
        return experiment_id

    def add_run(self, experiment_id: str, result: RunResult) -> None:
        self.add_runs([(experiment_id, result)])

    def add_runs(self, runs: Sequence[tuple[str, RunResult]], *, finished: Sequence[str] = ()) -> None:
        with self._connect() as conn:
            self._insert_runs(conn, runs)
            conn.cursor().executemany(self._sql(_FINISH), [(True, experiment_id) for experiment_id in finished])

    def _insert_runs(self, conn: Any, runs: Sequence[tuple[str, RunResult]]) -> None:
        """Every run in one statement sent with many rows (psycopg pipelines them: one round trip, not one a row)."""
        conn.cursor().executemany(self._sql(_ADD_RUN), [(experiment_id, *_run_values(run))
                                                        for experiment_id, run in runs])

    def finish(self, experiment_id: str) -> None:
        with self._connect() as conn:
            self._execute(conn, _FINISH, (True, experiment_id))

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

    def list(self, *, search: str | None = None, provider: str | None = None, kind: str | None = None,
             limit: int = 200) -> list[ExperimentRow]:
        where, params = ["e.parent_id IS NULL"], []
        for column, value in (("provider", provider), ("kind", kind)):
            if value:
                where.append(f"e.{column} = ?")
                params.append(value)
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

