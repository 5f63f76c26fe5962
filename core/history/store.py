"""What the history holds and how it is reached: the Store protocol, a saved Experiment and a line of the list."""

from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Sequence
from typing import Protocol

from core.models import BackendInfo, RunRequest, RunResult


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
    """Where experiments are kept: a SQLiteStore or a PostgresStore, as open_store chooses for a HistoryLocation."""

    def create(self, request: RunRequest, backend: BackendInfo, runs_planned: int, *, kind: str = "experiment",
               parent_id: str | None = None, rerun_of: str | None = None, meta: dict | None = None,
               created_at: str | None = None) -> str:
        """Save a new, incomplete experiment (created now unless `created_at` is given) and return its id."""

    def add_experiment(self, experiment: Experiment, children: Sequence[Experiment] = ()) -> str:
        """Save a whole experiment, its runs included, and `children` under it (a sweep's cells, a suite's prompts),
        each under a new id, in one transaction: all of it or nothing."""

    def add_run(self, experiment_id: str, result: RunResult) -> None:
        """Save one run; a second run with the same index is ignored."""

    def add_runs(self, runs: Sequence[tuple[str, RunResult]], *, finished: Sequence[str] = ()) -> None:
        """Save runs (each with its experiment's id) and mark the `finished` experiments complete, in one
        transaction: all of it or nothing. A run whose index its experiment already has is ignored."""

    def finish(self, experiment_id: str) -> None:
        """Mark the experiment complete: every planned run has arrived."""

    def get(self, experiment_id: str) -> Experiment | None:
        """The experiment with its runs, or None."""

    def list(self, *, search: str | None = None, provider: str | None = None, kind: str | None = None,
             limit: int = 200) -> list[ExperimentRow]:
        """Top-level items, newest first; `search` matches prompt, system prompt or model, ignoring case."""

    def children(self, parent_id: str) -> list[Experiment]:
        """The items saved under a parent (a sweep's cells), oldest first."""

    def delete(self, experiment_id: str) -> bool:
        """Delete an item with its runs and children; False when there was none."""

