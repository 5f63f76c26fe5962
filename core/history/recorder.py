"""Record a batch or a sweep into the history while it runs, each run saved the moment it arrives; re-run a saved
experiment; read a saved sweep back. A Recorder starts them, saved when it has a store, unsaved (saying why) when not.

A batch cut off half-way (the iterator closed, the process killed) keeps every run received and stays incomplete.
"""

from __future__ import annotations

import contextlib
import functools
from collections import Counter
from collections.abc import Callable, Hashable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from core.backends import Backend
from core.errors import StorageError, UnknownExperiment
from core.history.store import Store
from core.models import BatchPlan, RunRequest, RunResult
from core.runner import stream_runs
from core.sweep import Cell, SweepPlan, SweepResult, stream_sweep

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


class Recording(Generic[T]):
    """A batch (or a sweep) being saved: iterate for each result, stored before you see it; `experiment_id` names
    the history item (None for a batch that is not being saved) and `saved` counts the results stored so far.

    A result the database refuses is still yielded, unsaved; the others are saved regardless, `save_error` says
    why the first one was not, and the item stays incomplete. Closing it early cancels the runs still in flight.
    """

    def __init__(self, experiment_id: str | None, results: Iterator[T],
                 save: Callable[[T], None] | None = None, finish: Callable[[], None] | None = None):
        self.experiment_id = experiment_id
        self.save_error: str | None = None
        self.saved = 0
        self._results = self._saving(results, save, finish) if save and finish else results

    def _saving(self, results: Iterator[T], save: Callable[[T], None], finish: Callable[[], None]) -> Iterator[T]:
        with contextlib.closing(results):
            for item in results:
                if self._try(save, item):
                    self.saved += 1
                yield item
        if self.save_error is None:
            self._try(finish)

    def _try(self, step: Callable[..., None], *args: object) -> bool:
        try:
            step(*args)
        except StorageError as exc:
            self.save_error = self.save_error or str(exc)
            return False
        return True

    def __iter__(self) -> Recording[T]:
        return self

    def __next__(self) -> T:
        return next(self._results)

    def close(self) -> None:
        self._results.close()

    @classmethod
    def unsaved(cls, results: Iterator[T], reason: str | None) -> Recording[T]:
        """The results, saved nowhere; `reason` (None when saving was not wanted) becomes save_error."""
        recording = cls(None, results)
        recording.save_error = reason
        return recording


def record(store: Store, backend: Backend, request: RunRequest, plan: BatchPlan, *, rerun_of: str | None = None,
           meta: dict | None = None, process_limit: int | None = None) -> Recording[RunResult]:
    """stream_runs, saved: a new experiment now, then each run the moment it arrives; complete once all have."""
    experiment_id = store.create(request, backend.info, plan.runs, rerun_of=rerun_of, meta=meta)
    results = stream_runs(backend, request, plan, process_limit=process_limit)
    return Recording(experiment_id, results, functools.partial(store.add_run, experiment_id),
                     functools.partial(store.finish, experiment_id))


def rerun(store: Store, backend: Backend, experiment_id: str, *, concurrency: int,
          process_limit: int | None = None) -> Recording[RunResult]:
    """The saved experiment's request and number of runs again, against `backend`, saved as its re-run."""
    original = store.get(experiment_id)
    if original is None:
        raise UnknownExperiment(f"There is no experiment {experiment_id!r} in the history; it may have been deleted.")
    plan = BatchPlan(original.runs_planned, concurrency)
    return record(store, backend, original.request, plan, rerun_of=experiment_id, process_limit=process_limit)


def record_sweep(store: Store, backend: Backend, base: RunRequest, plan: SweepPlan, *,
                 process_limit: int | None = None) -> Recording[tuple[Cell, RunResult]]:
    """stream_sweep, saved as one history item (kind "sweep", the plan in its meta) with a child experiment per
    cell; each run is saved to its cell the moment it arrives, and a cell is complete once all its runs have."""
    sweep_id = store.create(base, backend.info, plan.total_requests, kind="sweep", meta={"plan": plan.to_dict()})
    cells = {cell: store.create(cell.request, backend.info, plan.runs, parent_id=sweep_id, meta={"label": cell.label})
             for cell in plan.cells(base)}
    return record_children(store, sweep_id, cells, plan.runs, stream_sweep(backend, base, plan, process_limit))


def record_children(store: Store, parent_id: str, children: Mapping[K, str], runs: int,
                    results: Iterator[tuple[K, RunResult]]) -> Recording[tuple[K, RunResult]]:
    """An item whose runs belong to its children (a sweep's cells, a suite's prompts): each run saved to its child
    the moment it arrives, a child complete once all `runs` of it have, the parent once the stream ends."""
    arrived: Counter[K] = Counter()

    def save(pair: tuple[K, RunResult]) -> None:
        key, result = pair
        store.add_run(children[key], result)
        arrived[key] += 1
        if arrived[key] == runs:
            store.finish(children[key])

    return Recording(parent_id, results, save, functools.partial(store.finish, parent_id))


def load_sweep(store: Store, sweep_id: str) -> SweepResult:
    """A saved sweep back as a SweepResult (cells in the plan's order, each with the runs that arrived)."""
    sweep = store.get(sweep_id)
    if sweep is None or sweep.kind != "sweep":
        raise UnknownExperiment(f"There is no sweep {sweep_id!r} in the history; it may have been deleted.")
    plan = SweepPlan(**sweep.meta["plan"])
    saved = {(child.request.temperature, child.request.seed): child.runs for child in store.children(sweep_id)}
    return SweepResult(sweep.request, plan, tuple((cell, saved.get((cell.temperature, cell.seed), ()))
                                                   for cell in plan.cells(sweep.request)))


@dataclass(frozen=True)
class Recorder:
    """Starts batches and sweeps, each recorded into `store` while it runs; without a store (`unavailable` says why,
    None when saving was not wanted), or when the store cannot start the recording, the same results arrive unsaved
    and the Recording's save_error says why."""

    store: Store | None
    unavailable: str | None = None

    def batch(self, backend: Backend, request: RunRequest, plan: BatchPlan, *,
              process_limit: int | None = None) -> Recording[RunResult]:
        """`record` the batch, or `stream_runs` it unsaved."""
        return self.start(record, stream_runs, backend, request, plan, process_limit=process_limit)

    def sweep(self, backend: Backend, base: RunRequest, plan: SweepPlan, *,
              process_limit: int | None = None) -> Recording[tuple[Cell, RunResult]]:
        """`record_sweep` the sweep, or `stream_sweep` it unsaved."""
        return self.start(record_sweep, stream_sweep, backend, base, plan, process_limit=process_limit)

    def start(self, recorded: Callable[..., Recording[T]], unsaved: Callable[..., Iterator[T]], *args: Any,
              **options: Any) -> Recording[T]:
        """`recorded(store, *args)`, or `unsaved(*args)` when there is no store or it fails to start the recording:
        each recording function takes its unsaved stream's arguments after the store."""
        reason = self.unavailable
        if self.store is not None:
            try:
                return recorded(self.store, *args, **options)
            except StorageError as exc:
                reason = str(exc)
        return Recording.unsaved(unsaved(*args, **options), reason)
