"""Recording batches into the history on SQLite and PostgreSQL: each run saved as it arrives, a killed process,
two processes at once, re-runs and their drift, and no secret in the database or an export."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections import deque
from pathlib import Path

import pytest

from core.backends import make_backend
from core.settings import load_settings
from core.analysis.drift import drift
from core.errors import InvalidRequest, StorageError, UnknownExperiment
from core.history import HistoryLocation, open_store, to_csv, to_json
from core.history import recorder
from core.history.recorder import Recorder, Recording, load_sweep, record, record_children, record_sweep, rerun
from core.models import BatchPlan, RunRequest, RunResult
from core.runner import Arrivals, Fanout
from core.sweep import SweepPlan, SweepResult
from tests.scripted import ScriptedBackend, texts

ROOT = Path(__file__).resolve().parent.parent
DEMO = RunRequest(prompt="Create a story about red panda.", system="You always produce 3-sentence answers.", seed=42)


@pytest.fixture(scope="module")
def fanout():
    with Fanout(None) as fanout:
        yield fanout


OPEN_STORE = """
import json, sys
from core.history.postgres import PostgresStore
from core.history.sqlite import SQLiteStore
kind, address, arg = json.loads(sys.argv[1])
store = {"sqlite": SQLiteStore, "postgres": PostgresStore}[kind](address)
"""
RECORD_AGAINST_SERVER = OPEN_STORE + """
from core.backends import make_backend
from core.settings import load_settings
from core.history.recorder import record
from core.models import BatchPlan, RunRequest
from core.runner import Fanout
environ, runs, concurrency = arg
backend = make_backend(load_settings(environ=environ, dotenv_path=None))
request = RunRequest(prompt="Create a story about red panda.", seed=42)
recording = record(store, Fanout(None), backend, request, BatchPlan(runs, concurrency))
print(recording.experiment_id, flush=True)
for result in recording:
    print(result.index, recording.saved, flush=True)
"""
RECORD_SCRIPTED = OPEN_STORE + """
from core.history.recorder import record
from core.models import BatchPlan, RunRequest
from core.runner import Fanout
from tests.scripted import ScriptedBackend
print("ready", flush=True)
sys.stdin.readline()
fanout = Fanout(None)
for batch in range(3):
    backend = ScriptedBackend(lambda request, number: f"{arg} answer {number}")
    for _ in record(store, fanout, backend, RunRequest(prompt=f"{arg} batch {batch}"), BatchPlan(20, 20)):
        pass
"""


def start(script: str, db, arg, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", script, json.dumps([db.kind, db.address, arg])], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True, **popen)


def test_each_run_is_saved_before_it_is_seen_and_the_batch_completes(fanout, store):
    recording = record(store, fanout, ScriptedBackend(texts("A", "B", "A")), DEMO, BatchPlan(3, 1),
                       meta={"page": "demo"})
    assert store.get(recording.experiment_id).runs == ()
    seen = []
    for result in recording:
        seen.append(result)
        stored = store.get(recording.experiment_id).runs
        assert set(seen) <= set(stored) and len(stored) == recording.saved  # with those that arrived alongside
        assert not store.get(recording.experiment_id).complete
    experiment = store.get(recording.experiment_id)
    assert experiment.complete
    assert [run.text for run in experiment.runs] == ["A", "B", "A"]
    assert (experiment.request, experiment.backend, experiment.runs_planned, experiment.meta) == (
        DEMO, ScriptedBackend(texts("A")).info, 3, {"page": "demo"})


def test_closing_early_keeps_the_runs_seen_and_stays_incomplete(fanout, store):
    recording = record(store, fanout, ScriptedBackend(texts("A")), DEMO, BatchPlan(10, 1))
    seen = {next(recording).index, next(recording).index}
    recording.close()
    experiment = store.get(recording.experiment_id)
    assert seen <= {run.index for run in experiment.runs} and len(experiment.runs) == recording.saved
    assert not experiment.complete
    assert experiment.runs_planned == 10


def test_a_killed_process_keeps_the_runs_that_had_arrived(db, fake_server, azure_env):
    fake_server.latency_s = 0.5
    process = start(RECORD_AGAINST_SERVER, db, [azure_env, 6, 2])
    try:
        experiment_id = process.stdout.readline().strip()
        arrived = {int(process.stdout.readline().split()[0]) for _ in range(2)}
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    assert process.returncode == -signal.SIGKILL
    experiment = db.open().get(experiment_id)
    saved = {run.index for run in experiment.runs}
    assert arrived <= saved and len(saved) < 6
    assert all(run.ok and run.system_fingerprint == "fp_fake_1" for run in experiment.runs)
    assert (experiment.runs_planned, experiment.complete) == (6, False)


def test_two_processes_writing_at_once_lose_nothing(db):
    db.open()
    writers = [start(RECORD_SCRIPTED, db, name, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
               for name in ("left", "right")]
    for writer in writers:
        assert writer.stdout.readline() == "ready\n", writer.communicate(timeout=30)
    for writer in writers:
        writer.stdin.write("go\n")
        writer.stdin.flush()
    for writer in writers:
        _, errors = writer.communicate(timeout=60)
        assert writer.returncode == 0, errors
    store = db.open()
    rows = store.list()
    assert sorted(row.prompt_preview for row in rows) == sorted(
        f"{name} batch {batch}" for name in ("left", "right") for batch in range(3))
    assert all((row.runs_done, row.unique_outputs, row.complete) == (20, 20, True) for row in rows)
    for row in rows:
        name = row.prompt_preview.split()[0]
        assert sorted(run.text for run in store.get(row.id).runs) == sorted(f"{name} answer {k}" for k in range(20))


def test_a_rerun_with_a_changed_fingerprint_is_reported_as_drift(fanout, store):
    backend = ScriptedBackend(texts("Red panda climbs."), fingerprints=["fp_a"])
    original = record(store, fanout, backend, DEMO, BatchPlan(5))
    list(original)
    answers = texts("Red panda climbs.", "Red panda sleeps.", "Red panda sleeps.", "Red panda eats.")
    again = rerun(store, fanout, ScriptedBackend(answers, fingerprints=["fp_b"]), original.experiment_id, concurrency=1)
    list(again)
    before, after = store.get(original.experiment_id), store.get(again.experiment_id)
    assert (after.request, after.runs_planned, after.rerun_of, after.complete) == (
        DEMO, 5, original.experiment_id, True)
    assert [row.rerun_of for row in store.list()] == [original.experiment_id, None]

    found = drift(before.runs, after.runs)
    assert found.fingerprint_changed and found.outputs_changed and found.modal_changed
    assert (found.fingerprints_before, found.fingerprints_after) == (("fp_a",), ("fp_b",))
    assert found.moved_runs == (1, 2, 3, 4)
    assert found.summary_line() == ("Fingerprint changed fp_a → fp_b; 4 of 5 runs produced text never seen in the "
                                    "original; the most common output now parts from the original's at word 3.")


def test_an_identical_rerun_shows_no_drift(fanout, store):
    original = record(store, fanout, ScriptedBackend(texts("Same.")), DEMO, BatchPlan(3))
    list(original)
    again = rerun(store, fanout, ScriptedBackend(texts("Same.")), original.experiment_id, concurrency=3)
    list(again)
    found = drift(store.get(original.experiment_id).runs, store.get(again.experiment_id).runs)
    assert found.summary_line() == "Same outputs, same fingerprint: no drift."


def test_rerun_of_an_unknown_experiment_says_so(fanout, store):
    with pytest.raises(UnknownExperiment, match="There is no experiment 'gone' in the history"):
        rerun(store, fanout, ScriptedBackend(texts("A")), "gone", concurrency=1)


def test_a_sweep_is_not_rerun_as_a_batch_of_its_heading(fanout, store):
    """Regression: rerun sent a sweep's (or suite's) heading, its parent item's request, N times."""
    backend = ScriptedBackend(texts("A"))
    plan = SweepPlan(temperatures=(0.0,), seeds=(42,), runs=2, concurrency=2)
    recording = record_sweep(store, fanout, backend, RunRequest(prompt="p"), plan)
    list(recording)
    sent = len(backend.calls)
    with pytest.raises(InvalidRequest, match="is a sweep; re-run it from its own view"):
        rerun(store, fanout, backend, recording.experiment_id, concurrency=1)
    assert len(backend.calls) == sent


def test_no_secret_in_the_database_or_any_export(fanout, db, fake_server, azure_env):
    store = db.open()
    wrong_key = "wrong-key-9f8e7d6c5b4a"
    ids = []
    for key in (fake_server.api_key, wrong_key):
        backend = make_backend(load_settings(environ={**azure_env, "OPENAI_API_KEY": key}, dotenv_path=None))
        recording = record(store, fanout, backend, RunRequest(prompt="hi", seed=1, logprobs=True), BatchPlan(2))
        list(recording)
        ids.append(recording.experiment_id)
    good, refused = (store.get(experiment_id) for experiment_id in ids)
    assert all(run.ok and run.raw for run in good.runs)
    assert all(run.error.kind == "auth" and "***" in run.error.message for run in refused.runs)  # the body echoed it

    if db.kind == "sqlite":
        stored = b"".join(path.read_bytes() for path in Path(db.address).parent.glob("history.sqlite3*"))
    else:
        with db.connect() as conn:
            tables = [row[0] for row in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")]
            stored = repr([conn.execute(f"SELECT * FROM {table}").fetchall() for table in tables]).encode()
    assert b"chatcmpl-" in stored and b"Incorrect API key provided" in stored
    exports = "".join(to_json(e) + to_csv(e) for e in (good, refused))
    for key in (fake_server.api_key, wrong_key):
        assert key.encode() not in stored
        assert key not in exports


def test_a_sweep_is_one_history_item_with_a_cell_per_child(fanout, store):
    def answer(request, number):
        return f"T{request.temperature} seed {request.seed}" if request.seed is not None else f"fresh {number}"

    backend = ScriptedBackend(answer)
    base = RunRequest(prompt="Create a story about red panda.", max_tokens=20)
    plan = SweepPlan(temperatures=(0.0, 1.0), seeds=(42, None), runs=3, concurrency=4)
    recording = record_sweep(store, fanout, backend, base, plan)
    pairs = list(recording)
    assert len(pairs) == 12
    [row] = store.list()
    assert (row.id, row.kind, row.runs_planned) == (recording.experiment_id, "sweep", 12)
    assert store.get(row.id).complete
    children = store.children(row.id)
    assert [(c.request.temperature, c.request.seed, len(c.runs), c.complete) for c in children] == [
        (0.0, 42, 3, True), (0.0, None, 3, True), (1.0, 42, 3, True), (1.0, None, 3, True)]
    loaded = load_sweep(store, row.id)
    assert loaded == SweepResult.collect(base, plan, pairs)
    assert [s.unique_outputs for s in loaded.summaries()] == [1, 3, 1, 3]


def test_loading_something_that_is_not_a_sweep_says_so(fanout, store):
    backend = ScriptedBackend(texts("x"))
    experiment_id = record(store, fanout, backend, RunRequest(prompt="p"), BatchPlan(1, 1)).experiment_id
    with pytest.raises(UnknownExperiment, match="no sweep"):
        load_sweep(store, experiment_id)


class FailingStore:
    """A store whose add_runs breaks from its nth call on (or on the nth call only), as a database that goes away
    half-way through a batch or refuses one group of runs."""

    def __init__(self, store, fail_at: int, only: bool = False):
        self.store, self.fail_at, self.only, self.calls = store, fail_at, only, 0

    def __getattr__(self, name):
        return getattr(self.store, name)

    def add_runs(self, runs, *, finished=()):
        self.calls += 1
        if self.calls == self.fail_at or (self.calls > self.fail_at and not self.only):
            raise StorageError(f"The history database failed: OperationalError: disk I/O error (call {self.calls})")
        self.store.add_runs(runs, finished=finished)


@pytest.fixture
def one_run_a_group(monkeypatch):
    """Every run written alone, so that a FailingStore's nth call is the nth run."""
    monkeypatch.setattr(recorder, "GROUP_MOST", 1)


def test_a_database_that_fails_half_way_loses_no_result(fanout, store, one_run_a_group):
    failing = FailingStore(store, fail_at=3)
    recording = record(failing, fanout, ScriptedBackend(texts("a")), RunRequest(prompt="p"), BatchPlan(5, 1))
    assert len(list(recording)) == 5
    assert recording.save_error == "The history database failed: OperationalError: disk I/O error (call 3)"
    assert failing.calls == 5  # every run was still offered to the database
    saved = store.get(recording.experiment_id)
    assert len(saved.runs) == recording.saved == 2 and not saved.complete


def test_one_run_that_fails_to_save_does_not_stop_the_others(fanout, store, one_run_a_group):
    recording = record(FailingStore(store, fail_at=2, only=True), fanout, ScriptedBackend(texts("a")),
                       RunRequest(prompt="p"), BatchPlan(5, 1))
    assert [result.index for result in recording] == [0, 1, 2, 3, 4]
    assert recording.save_error == "The history database failed: OperationalError: disk I/O error (call 2)"
    saved = store.get(recording.experiment_id)
    assert (len(saved.runs), recording.saved, saved.complete) == (4, 4, False)


def test_a_sweep_keeps_saving_past_a_run_that_failed(fanout, store, one_run_a_group):
    plan = SweepPlan(temperatures=(0.0, 1.0), seeds=(7,), runs=2, concurrency=1)
    recording = record_sweep(FailingStore(store, fail_at=1, only=True), fanout, ScriptedBackend(texts("a")),
                             RunRequest(prompt="p"), plan)
    assert len(list(recording)) == 4
    assert recording.saved == 3 and recording.save_error
    assert sorted(len(cell.runs) for cell in store.children(recording.experiment_id)) == [1, 2]
    assert [c.complete for c in store.children(recording.experiment_id)].count(True) == 1
    assert not store.get(recording.experiment_id).complete


def test_answers_holding_nul_are_saved_exactly_with_the_rest_of_the_batch(fanout, db, fake_server, azure_env):
    fake_server.answers.extend(["before\x00after", "\x00", "plain"])
    store = db.open()
    backend = make_backend(load_settings(environ=azure_env, dotenv_path=None))
    recording = record(store, fanout, backend, DEMO, BatchPlan(3, 1))
    results = list(recording)
    assert (recording.saved, recording.save_error) == (3, None)
    experiment = store.get(recording.experiment_id)
    assert experiment.complete
    assert sorted(run.text for run in experiment.runs) == sorted(r.text for r in results) == [
        "\x00", "before\x00after", "plain"]


def test_a_history_path_that_is_not_a_database_is_a_storage_error(tmp_path):
    (tmp_path / "history.sqlite3").mkdir()
    with pytest.raises(StorageError, match="The history database failed: OperationalError"):
        open_store(HistoryLocation(sqlite_path=str(tmp_path / "history.sqlite3")))


class LockedStore(FailingStore):
    """A store that cannot start a recording: creating an item fails as a locked database does."""

    def create(self, *args, **kwargs):
        raise StorageError("The history database failed: OperationalError: database is locked")


def test_a_store_that_cannot_start_a_recording_leaves_the_runs_unsaved_and_says_why(fanout, store):
    backend, request = ScriptedBackend(texts("a")), RunRequest(prompt="p")
    recording = Recorder(fanout, LockedStore(store, fail_at=1)).batch(backend, request, BatchPlan(3, 1))
    assert len(list(recording)) == 3
    assert recording.experiment_id is None
    assert recording.save_error == "The history database failed: OperationalError: database is locked"
    assert store.list() == []


def test_a_store_that_cannot_start_a_sweep_leaves_it_unsaved_and_says_why(fanout, store):
    plan = SweepPlan(temperatures=(0.0, 1.0), seeds=(7,), runs=1, concurrency=1)
    recorder = Recorder(fanout, LockedStore(store, fail_at=1))
    recording = recorder.sweep(ScriptedBackend(texts("a")), RunRequest(prompt="p"), plan)
    assert [cell.temperature for cell, _ in recording] == [0.0, 1.0]
    assert (recording.experiment_id, recording.save_error) == (
        None, "The history database failed: OperationalError: database is locked")
    assert store.list() == []


@pytest.mark.parametrize("unavailable", [None, "The history is unavailable, so runs are not saved: disk full"])
def test_without_a_store_the_runs_arrive_unsaved_and_say_why(fanout, unavailable):
    recording = Recorder(fanout, None, unavailable).batch(ScriptedBackend(texts("a", "b")), RunRequest(prompt="p"),
                                                          BatchPlan(2, 1))
    assert sorted(result.text for result in recording) == ["a", "b"]
    assert (recording.experiment_id, recording.saved, recording.save_error) == (None, 0, unavailable)


def test_a_recorder_with_a_store_records_batches_and_sweeps(fanout, store):
    recorder = Recorder(fanout, store, "unused while there is a store")
    batch = recorder.batch(ScriptedBackend(texts("a")), RunRequest(prompt="p"), BatchPlan(2, 1))
    sweep = recorder.sweep(ScriptedBackend(texts("a")), RunRequest(prompt="p"),
                           SweepPlan(temperatures=(0.0,), seeds=(7,), runs=2, concurrency=1))
    assert (len(list(batch)), len(list(sweep))) == (2, 2)
    assert (batch.save_error, sweep.save_error, batch.saved, sweep.saved) == (None, None, 2, 2)
    assert {row.id: (row.kind, row.complete) for row in store.list()} == {
        batch.experiment_id: ("experiment", True), sweep.experiment_id: ("sweep", True)}


class WriteLog:
    """A store that notes each group of runs it is asked to write (and which items that group finishes)."""

    def __init__(self, store):
        self.store, self.writes = store, []

    def __getattr__(self, name):
        return getattr(self.store, name)

    def add_runs(self, runs, *, finished=()):
        self.writes.append(([result.index for _, result in runs], list(finished)))
        self.store.add_runs(runs, finished=finished)


def waves(*groups: list) -> Arrivals:
    """Results that come in waves: a wave's results are all there at once, the next comes only once waited for."""
    pending = deque(deque(group) for group in groups)

    def take(block: bool):
        if pending and not pending[0] and block:
            pending.popleft()
        return pending[0].popleft() if pending and pending[0] else None

    return Arrivals(take, lambda: None)


def test_runs_that_arrive_together_are_written_in_one_transaction(store):
    log, parent = WriteLog(store), store.create(DEMO, ScriptedBackend(texts("a")).info, 6, kind="sweep")
    children = {cell: store.create(DEMO, ScriptedBackend(texts("a")).info, 3, parent_id=parent) for cell in "AB"}
    ok = [RunResult(index=k, latency_ms=1.0, text="a") for k in range(3)]
    recording = record_children(log, parent, children, 3, waves(
        [("A", ok[0]), ("B", ok[0]), ("A", ok[1]), ("A", ok[2])], [("B", ok[1])], [("B", ok[2])]))
    assert len(list(recording)) == recording.saved == 6
    assert log.writes == [([0, 0, 1, 2], [children["A"]]), ([1], []), ([2], [children["B"]])]
    assert store.get(parent).complete and all(store.get(child).complete for child in children.values())


def test_a_wave_larger_than_a_group_is_written_in_steps(store):
    log, experiment_id = WriteLog(store), store.create(DEMO, ScriptedBackend(texts("a")).info, 250)
    recording = Recording(experiment_id, waves([RunResult(index=k, latency_ms=1.0, text="a") for k in range(250)]),
                          lambda group: log.add_runs([(experiment_id, result) for result in group]),
                          lambda: store.finish(experiment_id))
    assert len(list(recording)) == 250
    assert [len(indices) for indices, _ in log.writes] == [recorder.GROUP_MOST] * 2 + [50]


def test_a_process_killed_mid_batch_keeps_every_group_it_had_written(db, fake_server, azure_env):
    fake_server.latency_s, fake_server.hang_s = 0.3, 5.0
    fake_server.faults.extend([None] * 5 + ["timeout"] * 3)  # five answers come together, three hang
    process = start(RECORD_AGAINST_SERVER, db, [{**azure_env, "REPRO_MAX_RETRIES": "0"}, 8, 8])
    try:
        experiment_id = process.stdout.readline().strip()
        lines = [process.stdout.readline().split() for _ in range(5)]
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    assert process.returncode == -signal.SIGKILL
    experiment = db.open().get(experiment_id)
    assert {run.index for run in experiment.runs} == {int(index) for index, _ in lines}
    assert int(lines[-1][1]) == 5 and not experiment.complete
