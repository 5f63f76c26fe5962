"""Record a batch or a sweep into the history while it runs, the runs that arrive together saved together the moment
they arrive; re-run a saved experiment; read a saved sweep back. A Recorder starts them, saved when it has a store,
unsaved (saying why) when not.

A batch cut off half-way (the iterator closed, the process killed) keeps every run that was handed on (at most the
group being written is lost) and stays incomplete.
"""

from __future__ import annotations

import contextlib
import functools
from collections import Counter
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from core.backends import Backend
from core.errors import InvalidRequest, StorageError, UnknownExperiment
from core.history.archive import reads_items
from core.history.store import Experiment as SavedItem
from core.history.store import Store
from core.models import BatchPlan, RunRequest, RunResult
from core.runner import Arrivals, Fanout
from core.shared.events import Experiment, logged
from core.sweep import Cell, SweepPlan, SweepResult, stream_sweep

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)

GROUP_MOST = 100  # runs in one transaction at most, so that a large wave is handed on in steps


class Recording(Generic[T]):
    """A batch (or a sweep) being saved: iterate for each result, stored before you see it; `experiment_id` names
    the history item (None for a batch that is not being saved) and `saved` counts the results stored so far.

    Each result waited for is saved with every other that has arrived meanwhile (up to GROUP_MOST), in one
    transaction, before any of them is handed on. A group the database refuses is still handed on, unsaved; the
    others are saved regardless, `save_error` says why the first one was not, and the item stays incomplete.
    Closing it early cancels the runs still in flight.
    """

    def __init__(self, experiment_id: str | None, results: Arrivals[T] | Iterator[T],
                 save: Callable[[list[T]], None] | None = None, finish: Callable[[], None] | None = None):
        self.experiment_id = experiment_id
        self.save_error: str | None = None
        self.saved = 0
        self._results = self._saving(results, save, finish) if save and finish else results

    def _saving(self, results: Arrivals[T], save: Callable[[list[T]], None],
                finish: Callable[[], None]) -> Iterator[T]:
        with contextlib.closing(results):
            for first in results:
                group = [first, *results.ready(GROUP_MOST - 1)]
                if self._try(save, group):
                    self.saved += len(group)
                yield from group
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

    def logged(self, experiment: Experiment, run_of: Callable[[T], RunResult] = lambda item: item) -> Recording[T]:
        """This recording, writing `experiment`'s JSON line (core.shared.events) once its results stop."""
        self._results = logged(experiment, self._results, run_of)
        return self

    @classmethod
    def unsaved(cls, results: Iterator[T], reason: str | None) -> Recording[T]:
        """The results, saved nowhere; `reason` (None when saving was not wanted) becomes save_error."""
        recording = cls(None, results)
        recording.save_error = reason
        return recording


def record(store: Store, fanout: Fanout, backend: Backend, request: RunRequest, plan: BatchPlan, *,
           rerun_of: str | None = None, meta: dict | None = None) -> Recording[RunResult]:
    """fanout.runs, saved: a new experiment now, then the runs as they arrive; complete once all have."""
    experiment_id = store.create(request, backend.info, plan.runs, rerun_of=rerun_of, meta=meta)
    def save(group: list[RunResult]) -> None:
        store.add_runs([(experiment_id, result) for result in group])

    return Recording(experiment_id, fanout.runs(backend, request, plan), save,
                     functools.partial(store.finish, experiment_id))


def rerun(store: Store, fanout: Fanout, backend: Backend, experiment_id: str, *,
          concurrency: int) -> Recording[RunResult]:
    """The saved experiment's request and number of runs again, against `backend`, saved as its re-run."""
    original = store.get(experiment_id)
    if original is None:
        raise UnknownExperiment(f"There is no experiment {experiment_id!r} in the history; it may have been deleted.")
    if original.kind != "experiment":  # a sweep's, suite's or probe's own request is only its heading
        raise InvalidRequest(f"{experiment_id!r} is a {original.kind}; re-run it from its own view.")
    plan = BatchPlan(original.runs_planned, concurrency)
    return record(store, fanout, backend, original.request, plan, rerun_of=experiment_id)


def record_sweep(store: Store, fanout: Fanout, backend: Backend, base: RunRequest,
                 plan: SweepPlan) -> Recording[tuple[Cell, RunResult]]:
    """stream_sweep, saved as one history item (kind "sweep", the plan in its meta) with a child experiment per
    cell; each run is saved to its cell the moment it arrives, and a cell is complete once all its runs have."""
    sweep_id = store.create(base, backend.info, plan.total_requests, kind="sweep", meta={"plan": plan.to_dict()})
    cells = {cell: store.create(cell.request, backend.info, plan.runs, parent_id=sweep_id, meta={"label": cell.label})
             for cell in plan.cells(base)}
    return record_children(store, sweep_id, cells, plan.runs, stream_sweep(fanout, backend, base, plan))


def record_children(store: Store, parent_id: str, children: Mapping[K, str], runs: int,
                    results: Arrivals[tuple[K, RunResult]]) -> Recording[tuple[K, RunResult]]:
    """An item whose runs belong to its children (a sweep's cells, a suite's prompts): each run saved to its child
    the moment it arrives, a child complete (in the same transaction) once all `runs` of it have, the parent once
    the stream ends."""
    arrived: Counter[K] = Counter()

    def save(pairs: list[tuple[K, RunResult]]) -> None:
        now = arrived + Counter(key for key, _ in pairs)
        finished = [children[key] for key in dict.fromkeys(key for key, _ in pairs) if now[key] == runs]
        store.add_runs([(children[key], result) for key, result in pairs], finished=finished)
        arrived.update(key for key, _ in pairs)

    return Recording(parent_id, results, save, functools.partial(store.finish, parent_id))


def load_sweep(store: Store, sweep_id: str) -> SweepResult:
    """A saved sweep back as a SweepResult (cells in the plan's order, each with the runs that arrived)."""
    sweep = store.get(sweep_id)
    if sweep is None or sweep.kind != "sweep":
        raise UnknownExperiment(f"There is no sweep {sweep_id!r} in the history; it may have been deleted.")
    return sweep_of(sweep, store.children(sweep_id))


def sweep_of(sweep: SavedItem, cells: Sequence[SavedItem]) -> SweepResult:
    """A sweep item and its cells as a SweepResult."""
    plan = SweepPlan(**sweep.meta["plan"])
    saved = {(child.request.temperature, child.request.seed): child.runs for child in cells}
    return SweepResult(sweep.request, plan, tuple((cell, saved.get((cell.temperature, cell.seed), ()))
                                                   for cell in plan.cells(sweep.request)))


reads_items("sweep", lambda item: sweep_of(item.experiment, item.children))


@dataclass(frozen=True)
class Recorder:
    """Starts batches and sweeps on `fanout`, each recorded into `store` while it runs; without a store
    (`unavailable` says why, None when saving was not wanted), or when the store cannot start the recording, the same
    results arrive unsaved and the Recording's save_error says why."""

    fanout: Fanout
    store: Store | None
    unavailable: str | None = None

    def batch(self, backend: Backend, request: RunRequest, plan: BatchPlan) -> Recording[RunResult]:
        """`record` the batch, or `Fanout.runs` it unsaved."""
        return self.start(record, Fanout.runs, backend, request, plan)

    def sweep(self, backend: Backend, base: RunRequest, plan: SweepPlan) -> Recording[tuple[Cell, RunResult]]:
        """`record_sweep` the sweep, or `stream_sweep` it unsaved."""
        return self.start(record_sweep, stream_sweep, backend, base, plan)

    def start(self, recorded: Callable[..., Recording[T]], unsaved: Callable[..., Iterator[T]],
              *args: Any) -> Recording[T]:
        """`recorded(store, fanout, *args)`, or `unsaved(fanout, *args)` when there is no store or it fails to start
        the recording: each recording function takes its unsaved stream's arguments after the store."""
        reason = self.unavailable
        if self.store is not None:
            try:
                return recorded(self.store, self.fanout, *args)
            except StorageError as exc:
                reason = str(exc)
        return Recording.unsaved(unsaved(self.fanout, *args), reason)
