"""Record a batch into the history while it runs, each run saved the moment it arrives; re-run a saved experiment.

A batch cut off half-way (the iterator closed, the process killed) keeps every run received and stays incomplete.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from core.backends import Backend
from core.errors import UnknownExperiment
from core.models import BatchPlan, RunRequest, RunResult
from core.runner import stream_runs
from core.store import Store


class Recording:
    """A batch being saved: iterate for each result (stored before you see it); `experiment_id` names it
    (None for a batch that is not being saved).

    Closing it early cancels the runs still in flight.
    """

    def __init__(self, experiment_id: str | None, results: Iterator[RunResult]):
        self.experiment_id = experiment_id
        self._results = results

    def __iter__(self) -> Recording:
        return self

    def __next__(self) -> RunResult:
        return next(self._results)

    def close(self) -> None:
        self._results.close()


def _saved(store: Store, experiment_id: str, results: Iterator[RunResult]) -> Iterator[RunResult]:
    with contextlib.closing(results):
        for result in results:
            store.add_run(experiment_id, result)
            yield result
    store.finish(experiment_id)


def record(store: Store, backend: Backend, request: RunRequest, plan: BatchPlan, *, kind: str = "experiment",
           parent_id: str | None = None, rerun_of: str | None = None, meta: dict | None = None,
           process_limit: int | None = None) -> Recording:
    """Save a new experiment now, then each run of the batch the moment it arrives; complete once all have."""
    experiment_id = store.create(request, backend.info, plan.runs, kind=kind, parent_id=parent_id,
                                 rerun_of=rerun_of, meta=meta)
    results = stream_runs(backend, request, plan, process_limit=process_limit)
    return Recording(experiment_id, _saved(store, experiment_id, results))


def rerun(store: Store, backend: Backend, experiment_id: str, *, concurrency: int,
          process_limit: int | None = None) -> Recording:
    """The saved experiment's request and number of runs again, against `backend`, saved as its re-run."""
    original = store.get(experiment_id)
    if original is None:
        raise UnknownExperiment(f"There is no experiment {experiment_id!r} in the history; it may have been deleted.")
    plan = BatchPlan(original.runs_planned, concurrency)
    return record(store, backend, original.request, plan, rerun_of=experiment_id, process_limit=process_limit)
