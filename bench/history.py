"""History write benchmark: what saving costs a batch, one transaction per run (before) against the runs that arrive
together written together (after), for N = 50 and 200, in SQLite and (when its binaries are installed) PostgreSQL.

Two figures per database and N, medians of a few rounds:
- store: N runs written one transaction each (add_run) against one add_runs, ms in all and per run;
- batch: a recorded batch whose N runs all answer after 300 ms (a scripted backend, no HTTP, so only the history
  differs), its wall time over the same batch unsaved: the ms the history adds, per run, and the transactions.
PostgreSQL here is the tests' throwaway server (fsync off, 127.0.0.1). Last line: JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.history import recorder  # noqa: E402
from core.history.recorder import record  # noqa: E402
from core.history.sqlite import SQLiteStore  # noqa: E402
from core.models import BackendInfo, BatchPlan, Completion, RunRequest, RunResult  # noqa: E402
from core.runner import Fanout  # noqa: E402

SIZES = (50, 200)
LATENCY_S = 0.3
REQUEST = RunRequest(prompt="Create a story about red panda.", system="You always produce 3-sentence answers.")
TEXT = "The red panda climbed the tallest tree in the valley and watched the snow fall over the bamboo. " * 4
INFO = BackendInfo("compatible", "bench-model", "bench.invalid")


class Sleepy:
    """Answers every request after LATENCY_S, all of a wave together, as identical requests to a server do."""

    info, max_concurrency = INFO, None

    async def complete(self, request: RunRequest) -> Completion:
        await asyncio.sleep(LATENCY_S)
        return Completion(text=TEXT, finish_reason="stop", system_fingerprint="fp_bench", model="bench-model")


class Counted:
    """The store, counting the transactions that write runs."""

    def __init__(self, store):
        self.store, self.transactions = store, 0

    def __getattr__(self, name):
        return getattr(self.store, name)

    def add_runs(self, runs, *, finished=()):
        self.transactions += 1
        self.store.add_runs(runs, finished=finished)


def median_ms(work: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        work()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def store_figures(store, runs: int, rounds: int) -> dict:
    results = [RunResult(index=k, latency_ms=300.0, text=TEXT, system_fingerprint="fp_bench") for k in range(runs)]

    def one_by_one() -> None:
        experiment_id = store.create(REQUEST, INFO, runs)
        for result in results:
            store.add_run(experiment_id, result)

    def together() -> None:
        experiment_id = store.create(REQUEST, INFO, runs)
        store.add_runs([(experiment_id, result) for result in results])

    before, after = median_ms(one_by_one, rounds), median_ms(together, rounds)
    return {"store_before_ms": round(before, 1), "store_after_ms": round(after, 1),
            "store_before_per_run_ms": round(before / runs, 3), "store_after_per_run_ms": round(after / runs, 3)}


def batch_figures(store, fanout: Fanout, runs: int, rounds: int) -> dict:
    plan, counted = BatchPlan(runs, runs), Counted(store)
    unsaved = median_ms(lambda: list(fanout.runs(Sleepy(), REQUEST, plan)), rounds)
    figures = {}
    for name, group_most in (("before", 1), ("after", recorder.GROUP_MOST)):  # before: each run alone, as it was
        recorder.GROUP_MOST, counted.transactions = group_most, 0
        saved = median_ms(lambda: list(record(counted, fanout, Sleepy(), REQUEST, plan)), rounds)
        figures |= {f"batch_{name}_added_ms": round(saved - unsaved, 1),
                    f"batch_{name}_per_run_ms": round((saved - unsaved) / runs, 3),
                    f"batch_{name}_transactions": round(counted.transactions / rounds, 1)}
    return figures


def stores(postgres: bool) -> dict:
    found = {"sqlite": SQLiteStore(Path(tempfile.mkdtemp(prefix="repro-bench-")) / "history.sqlite3")}
    if postgres:
        from core.history.postgres import PostgresStore
        from tests import pgserver
        found["postgres"] = PostgresStore(pgserver.new_database(pgserver._start_server(atexit.register)))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    args = parser.parse_args()
    figures = {}
    with Fanout(None) as fanout:
        for kind, store in stores(not args.no_postgres).items():
            for runs in SIZES:
                row = store_figures(store, runs, args.rounds) | batch_figures(store, fanout, runs, args.rounds)
                figures[f"{kind}_n{runs}"] = row
                print(f"{kind:8} N={runs:<3}  store: {row['store_before_ms']:7.1f} → {row['store_after_ms']:6.1f} ms "
                      f"({row['store_before_per_run_ms']:.3f} → {row['store_after_per_run_ms']:.3f} ms a run)  "
                      f"batch: +{row['batch_before_added_ms']:6.1f} → +{row['batch_after_added_ms']:6.1f} ms "
                      f"({row['batch_before_transactions']:g} → {row['batch_after_transactions']:g} transactions)")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
