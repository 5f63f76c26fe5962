"""The limits several replicas share through one PostgreSQL (core.shared): the hourly quota, passcode failures, the
cap on requests in flight, the readiness check and the JSON event line. Each "replica" is a pool of its own (or a
process of its own) on a throwaway server from tests/pgserver.py."""

from __future__ import annotations

import asyncio
import json
import logging
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
import types
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from core.backends import make_backend
from core.errors import InvalidRequest
from core.history.recorder import Recorder
from core.models import BackendInfo, BatchPlan, RunError, RunRequest, RunResult, Usage
from core.policy import Quota
from core.runner import Fanout
from core.settings import load_settings
from core.shared import Experiment, SharedFailureLog, SharedQuota, SharedSlots, logged, readiness
from core.shared.pool import SharedDatabase, open_database, visitor_key
from tests.environment import clean_environment
from tests import pgserver
from tests.apptest import captions, experiment
from tests.scripted import texts
from tests.test_cli import cli

DEMO = RunRequest(prompt="Create a story about red panda.", seed=42)
PASSWORD = "s3cret-Pw"  # trust authentication never asks for it: here only to prove it is never shown


@pytest.fixture
def url(postgres_url: str) -> str:
    return pgserver.new_database(postgres_url)


@pytest.fixture
def replicas(url: str) -> Iterator[tuple[SharedDatabase, SharedDatabase]]:
    """Two pools on one database, as two replicas with one DATABASE_URL have."""
    first, second = open_database(url), open_database(url)
    yield first, second
    first.pool.close()
    second.pool.close()


def _with_password(url: str) -> str:
    return url.replace("postgres@", f"postgres:{PASSWORD}@", 1)


def _drop(url: str) -> None:
    server, name = url.rsplit("/", 1)
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


def _rows(url: str, sql: str, *params: object) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()


# The hourly quota

def test_ten_requests_on_one_replica_leave_two_on_the_other(replicas) -> None:
    first, second = (SharedQuota(database, "ip:203.0.113.7", 12) for database in replicas)
    first.take(10)
    assert second.remaining() == 2
    with pytest.raises(InvalidRequest, match="This needs 3 requests but 2 of your 12 per hour are left"):
        second.take(3)
    second.take(2)
    for quota in (first, second):
        with pytest.raises(InvalidRequest, match="needs 1 requests but 0 of your 12"):
            quota.take(1)
        assert quota.remaining() == 0
    assert SharedQuota(replicas[0], "ip:203.0.113.8", 12).remaining() == 12  # another visitor has their own


def test_a_refusal_reads_as_the_in_process_quota_reads(replicas) -> None:
    in_process, shared = Quota(12), SharedQuota(replicas[0], "user:ada@example.com", 12)
    for quota in (in_process, shared):
        quota.take(4)
        quota.take(6)
    messages = []
    for requests in (3, 13):
        for quota in (in_process, shared):
            with pytest.raises(InvalidRequest) as refused:
                quota.take(requests)
            messages.append(str(refused.value))
    assert messages[0] == messages[1] == ("This needs 3 requests but 2 of your 12 per hour are left "
                                          "(REPRO_REQUESTS_PER_HOUR). Enough frees up in 60 min.")
    assert messages[2] == messages[3] == ("This needs 13 requests but 2 of your 12 per hour are left "
                                          "(REPRO_REQUESTS_PER_HOUR).")


def test_a_restarted_replica_keeps_the_counts(url: str) -> None:
    before = open_database(url)
    SharedQuota(before, "ip:198.51.100.1", 12).take(5)
    before.pool.close()
    after = open_database(url)
    try:
        assert SharedQuota(after, "ip:198.51.100.1", 12).remaining() == 7
    finally:
        after.pool.close()


def test_a_take_deletes_rows_older_than_the_window(replicas, url: str) -> None:
    visitor, gone = visitor_key("ip:192.0.2.1"), visitor_key("ip:192.0.2.99")
    with psycopg.connect(url) as conn:
        for key, age, requests in ((visitor, "59 minutes", 4), (visitor, "61 minutes", 5), (gone, "2 hours", 3)):
            conn.execute("INSERT INTO repro_quota_requests VALUES (%s, clock_timestamp() - %s::interval, %s)",
                         (key, age, requests))
    quota = SharedQuota(replicas[0], "ip:192.0.2.1", 12)
    assert quota.remaining() == 8  # the 59-minute-old row counts, the 61-minute-old one no longer does
    quota.take(1)
    assert _rows(url, "SELECT requests FROM repro_quota_requests ORDER BY requests") == [(1,), (4,)]


def test_takes_at_the_same_moment_on_two_replicas_never_overdraw(replicas, url: str) -> None:
    quotas = [SharedQuota(database, "ip:203.0.113.50", 12) for database in replicas]
    admitted = []

    def take(quota: SharedQuota) -> None:
        try:
            quota.take(1)
            admitted.append(1)
        except InvalidRequest:
            pass

    threads = [threading.Thread(target=take, args=(quotas[i % 2],)) for i in range(20)]
    with psycopg.connect(url) as hold_up:  # every take that gets past its line waits here, then all go at once
        hold_up.execute("LOCK TABLE repro_quota_requests IN SHARE ROW EXCLUSIVE MODE")
        for thread in threads:
            thread.start()
        time.sleep(0.5)
    for thread in threads:
        thread.join()
    assert len(admitted) == 12
    assert quotas[1].remaining() == 0


def test_a_failed_database_refuses_the_take_without_showing_the_password(url: str) -> None:
    database = open_database(_with_password(url), timeout_s=1)
    try:
        quota = SharedQuota(database, "ip:203.0.113.9", 12)
        quota.take(1)
        _drop(url)
        with pytest.raises(InvalidRequest, match="cannot be counted against the hourly quota") as refused:
            quota.take(1)
    finally:
        database.pool.close()
    assert PASSWORD not in str(refused.value)
    assert f"postgres:***@{url.split('@')[1]}" in str(refused.value)


# Passcode failures

class _Sleeps(list):
    """A real sleep that remembers each wait, and the moment it ended."""

    def __call__(self, seconds: float) -> None:
        time.sleep(seconds)
        self.append((round(seconds, 2), time.monotonic()))


def _ramp(failures: int) -> float:
    return 0.0 if failures < 3 else 0.3 * (failures - 2)


def test_failures_on_one_replica_slow_the_next_attempt_on_another(replicas) -> None:
    first_sleeps, second_sleeps = _Sleeps(), _Sleeps()
    first = SharedFailureLog(replicas[0], delay=_ramp, sleep=first_sleeps)
    second = SharedFailureLog(replicas[1], delay=_ramp, sleep=second_sleeps)
    assert [first.attempt("ip:203.0.113.66", "guess", "right") for _ in range(3)] == [False] * 3
    assert second.attempt("ip:203.0.113.66", "guess", "right") is False
    assert second.attempt("ip:203.0.113.66", "right", "right") is True
    assert first.attempt("ip:203.0.113.66", "guess", "right") is False
    assert [wait for wait, _ in first_sleeps] == [0.0, 0.0, 0.0, 0.0]  # the match forgave the four failures
    assert [wait for wait, _ in second_sleeps] == [0.3, 0.6]
    assert len(first) == len(second) == 1


def test_parallel_attempts_across_replicas_wait_in_line(replicas) -> None:
    sleeps = _Sleeps()
    logs = [SharedFailureLog(database, delay=lambda n: 0.2 * n, sleep=sleeps) for database in replicas]
    barrier = threading.Barrier(4)

    def guess(log: SharedFailureLog) -> None:
        barrier.wait()
        log.attempt("ip:198.51.100.23", "guess", "right")

    threads = [threading.Thread(target=guess, args=(logs[i % 2],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    checked = sorted(moment for _, moment in sleeps)
    gaps = [later - earlier for earlier, later in zip(checked, checked[1:])]
    assert min(gaps) >= 0.15, gaps  # never two guesses checked together: each waited for the one before it


def test_failure_rows_expire(replicas, url: str) -> None:
    sleeps = _Sleeps()
    log = SharedFailureLog(replicas[0], delay=_ramp, sleep=sleeps)
    for _ in range(4):
        log.attempt("ip:192.0.2.200", "guess", "right")
    assert len(log) == 1
    with psycopg.connect(url) as conn:
        conn.execute("UPDATE repro_passcode_failures SET last_attempt = last_attempt - interval '2 hours', "
                     "next_turn = next_turn - interval '2 hours'")
    assert len(log) == 0
    log.attempt("ip:192.0.2.201", "right", "right")  # anyone's attempt deletes the forgotten rows
    assert _rows(url, "SELECT visitor FROM repro_passcode_failures") == [(visitor_key("ip:192.0.2.201"),)]
    log.attempt("ip:192.0.2.200", "guess", "right")
    assert sleeps[-1][0] == 0.0  # forgotten: this visitor starts afresh


# The cap on requests in flight

def _hammer(url: str, cap: int, tasks: int, rounds: int, in_flight, peak, lock) -> None:
    """One replica: `tasks` coroutines, each holding a slot `rounds` times, counting holders in shared memory."""
    slots = SharedSlots(open_database(url), cap)

    async def attempt() -> None:
        with lock:
            in_flight.value += 1
            peak.value = max(peak.value, in_flight.value)
        await asyncio.sleep(0.03)
        with lock:
            in_flight.value -= 1

    async def worker() -> None:
        for _ in range(rounds):
            await slots.holding(await slots.acquire(), attempt)

    async def main() -> None:
        await asyncio.gather(*(worker() for _ in range(tasks)))

    asyncio.run(main())
    slots.close()


@pytest.fixture
def spawnable(monkeypatch) -> None:
    """A plain __main__ for spawned children to re-import: after an AppTest, sys.modules["__main__"] may be the last
    script Streamlit ran (app.py), which a spawned child would run again."""
    monkeypatch.setitem(sys.modules, "__main__", types.ModuleType("__main__"))


@pytest.mark.usefixtures("spawnable")
def test_two_processes_never_exceed_the_shared_cap(url: str) -> None:
    spawn = multiprocessing.get_context("spawn")
    lock, in_flight, peak = spawn.Lock(), spawn.Value("i", 0, lock=False), spawn.Value("i", 0, lock=False)
    replicas = [spawn.Process(target=_hammer, args=(url, 3, 6, 4, in_flight, peak, lock)) for _ in range(2)]
    for replica in replicas:
        replica.start()
    for replica in replicas:
        replica.join(timeout=120)
    assert [replica.exitcode for replica in replicas] == [0, 0]
    assert peak.value == 3
    assert _rows(url, "SELECT count(*) FROM repro_slot_leases WHERE holder IS NOT NULL") == [(0,)]


def test_an_expired_lease_is_reclaimed(replicas) -> None:
    # Leases of seconds, not tenths: on a busy machine the checks before the sleep take a while themselves.
    killed, survivor = SharedSlots(replicas[0], 2, lease_s=2.0), SharedSlots(replicas[1], 2, lease_s=2.0)
    assert {killed.claim("killed-1"), killed.claim("killed-2")} == {0, 1}  # never renewed nor released
    assert survivor.claim("survivor") is None
    assert survivor.in_flight() == 2
    time.sleep(2.1)
    assert survivor.in_flight() == 0
    assert survivor.claim("survivor") in (0, 1)


def test_a_lease_is_renewed_while_its_request_runs(replicas) -> None:
    holder, other = SharedSlots(replicas[0], 1, lease_s=1.5), SharedSlots(replicas[1], 1, lease_s=1.5)

    async def long_request() -> str:
        await asyncio.sleep(3.5)  # over twice the lease
        return other.claim("other") or "still held"

    async def main() -> str:
        return await holder.holding(await holder.acquire(), long_request)

    assert asyncio.run(main()) == "still held"
    assert other.claim("other") == 0  # given back once the request ended
    holder.close()


def test_a_cancelled_wait_for_a_slot_leaks_none(replicas) -> None:
    first, second = SharedSlots(replicas[0], 1), SharedSlots(replicas[1], 1)

    async def main() -> None:
        held = await first.acquire()
        waiting = asyncio.ensure_future(second.acquire())
        await asyncio.sleep(0.2)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await first.holding(held, lambda: asyncio.sleep(0))
        assert await asyncio.wait_for(second.acquire(), timeout=2) is not None

    asyncio.run(main())
    first.close()
    second.close()


def test_two_fanouts_sharing_slots_keep_the_shared_cap_at_the_server(replicas, url: str, fake_server,
                                                                     azure_settings) -> None:
    fake_server.latency_s = 0.1
    backend = make_backend(azure_settings)
    fanouts = [Fanout(5, slots=SharedSlots(database, 3)) for database in replicas]
    counts: list[int] = []

    def visitor(fanout: Fanout) -> None:
        counts.append(sum(result.ok for result in fanout.runs(backend, DEMO, BatchPlan(12, 12))))

    visitors = [threading.Thread(target=visitor, args=(fanout,)) for fanout in fanouts]
    for thread in visitors:
        thread.start()
    for thread in visitors:
        thread.join()
    for fanout in fanouts:
        fanout.close()
    assert counts == [12, 12]
    assert fake_server.peak_in_flight == 3  # not 5 (one process's cap) nor 10 (two)
    assert _rows(url, "SELECT count(*) FROM repro_slot_leases WHERE holder IS NOT NULL") == [(0,)]


def test_a_batch_closed_early_leaves_no_shared_slot_held(replicas, url: str, fake_server, azure_settings) -> None:
    fake_server.latency_s = 0.2
    fanout = Fanout(4, slots=SharedSlots(replicas[0], 2))
    results = fanout.runs(make_backend(azure_settings), DEMO, BatchPlan(8, 8))
    assert next(results).ok
    results.close()  # six runs still wait for a shared slot, one is at the server
    time.sleep(0.6)
    fanout.close()
    assert fake_server.peak_in_flight == 2
    assert len(fake_server.received) < 8  # the waves started before the close took; the runs still waiting, never
    assert _rows(url, "SELECT count(*) FROM repro_slot_leases WHERE holder IS NOT NULL") == [(0,)]


def _replica_batch(url: str, environ: dict[str, str], cap: int, lease_s: float) -> None:
    """A replica sending a batch of twice `cap` runs under the shared cap, its leases `lease_s` long."""
    fanout = Fanout(cap, slots=SharedSlots(open_database(url), cap, lease_s=lease_s))
    backend = make_backend(load_settings(environ=environ, dotenv_path=None))
    for _ in fanout.runs(backend, DEMO, BatchPlan(2 * cap, cap)):
        pass


def _until(condition, within_s: float) -> float:
    """Seconds until `condition()` held; fails after `within_s`."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < within_s, f"not within {within_s} s"
        time.sleep(0.02)
    return time.monotonic() - started


@pytest.mark.usefixtures("spawnable")
def test_a_replica_killed_mid_batch_frees_its_slots_within_the_lease(replicas, url: str, fake_server,
                                                                   azure_env) -> None:
    cap, lease_s = 4, 4.0  # long enough that a busy machine reaches the two checks below before the lease ends
    fake_server.latency_s = 3.0  # the killed replica's requests are still at the server when it dies
    killed = multiprocessing.get_context("spawn").Process(target=_replica_batch, args=(url, azure_env, cap, lease_s))
    killed.start()
    survivor = SharedSlots(replicas[1], cap, lease_s=lease_s)
    _until(lambda: len(fake_server.received) == cap, within_s=60)
    os.kill(killed.pid, signal.SIGKILL)
    killed.join()
    assert survivor.in_flight() == cap  # held by a process that will never give them back
    assert survivor.claim("survivor") is None
    assert _until(lambda: survivor.in_flight() == 0, within_s=lease_s + 2) <= lease_s + 1

    fake_server.latency_s = 1.0
    fanout = Fanout(cap, slots=survivor)
    results = list(fanout.runs(make_backend(load_settings(environ=azure_env, dotenv_path=None)), DEMO,
                               BatchPlan(cap, cap)))
    fanout.close()
    assert [result.ok for result in results] == [True] * cap
    starts = [request.started for request in fake_server.received[cap:]]
    assert len(starts) == cap
    assert max(starts) - min(starts) < 2.0  # the full cap at once: a slot still held would delay one by seconds
    assert _rows(url, "SELECT count(*) FROM repro_slot_leases WHERE holder IS NOT NULL") == [(0,)]


def test_a_failed_database_lets_the_request_go_under_the_process_cap(url: str, caplog) -> None:
    database = open_database(_with_password(url), timeout_s=1)
    slots = SharedSlots(database, 2)
    try:
        _drop(url)
        assert asyncio.run(slots.acquire()) is None
    finally:
        slots.close()
        database.pool.close()
    assert "not enforced" in caplog.text and PASSWORD not in caplog.text


# Readiness and the event line

def test_readiness_checks_the_database_and_the_backend(url: str) -> None:
    ready = readiness(environ={"DATABASE_URL": url, "REPRO_BACKEND": "local", "REPRO_GLOBAL_CONCURRENCY": "8"})
    assert ready.ready, ready
    assert [check.name for check in ready.checks] == ["backend", "limits", "history", "shared cap"]
    assert ready.checks[3].detail == "0 of 8 slots in flight across replicas"


def test_readiness_fails_on_a_missing_database_without_the_password(url: str) -> None:
    gone = _with_password(url) + "_missing"
    ready = readiness(environ={"DATABASE_URL": gone, "REPRO_BACKEND": "local"})
    history = {check.name: check for check in ready.checks}["history"]
    assert not ready.ready and not history.ok
    assert "does not exist" in history.detail  # said at once, not after the pool's wait for a connection
    assert PASSWORD not in json.dumps(ready.to_dict()) and "postgres:***@" in history.detail


def test_python_m_core_health_exits_0_when_ready_and_2_when_not(url: str, tmp_path) -> None:
    ready = cli("health", "--json", env={"DATABASE_URL": url, "REPRO_BACKEND": "local"}, cwd=tmp_path)
    assert ready.returncode == 0, ready.stderr
    assert json.loads(ready.stdout)["ready"] is True
    gone = cli("health", env={"DATABASE_URL": _with_password(url) + "_missing", "REPRO_BACKEND": "local"},
               cwd=tmp_path)
    assert gone.returncode == 2
    assert "FAILED history:" in gone.stdout and PASSWORD not in gone.stdout + gone.stderr


def _ready_status(port: int) -> tuple[int, dict]:
    """GET /ready once the health server listens: its status and JSON body."""
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=10) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as refused:
            return refused.code, json.loads(refused.read())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.mark.parametrize("database_ok", [True, False])
def test_the_health_server_answers_the_proxy_200_when_ready_and_503_when_not(url: str, tmp_path, database_ok):
    port = pgserver._free_port()
    database = url if database_ok else _with_password(url) + "_missing"
    clean = clean_environment("DATABASE_URL")
    server = subprocess.Popen([sys.executable, "-m", "core", "health", "--serve", f"127.0.0.1:{port}"], cwd=tmp_path,
                              env={**clean, "DATABASE_URL": database, "REPRO_BACKEND": "local",
                                   "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    try:
        status, body = _ready_status(port)
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert (status, body["ready"]) == ((200, True) if database_ok else (503, False))
    assert PASSWORD not in json.dumps(body)


KEY = "sk-test-KEY-0123456789"


def _results() -> list[RunResult]:
    usage = Usage(prompt_tokens=11, completion_tokens=5, total_tokens=16)
    return [RunResult(index=0, latency_ms=10.0, text="Paris", usage=usage),
            RunResult(index=1, latency_ms=12.0, text="Paris.", usage=usage),
            RunResult.failed(2, 3.0, RunError("auth", f"Incorrect API key provided: {KEY}", 401))]


def _experiment(log_prompt: bool = False) -> Experiment:
    request = RunRequest(prompt="What is the capital of France? PROMPT-7f3a", system="Be brief.", seed=7)
    return Experiment("ip:203.0.113.7", BackendInfo("openai", "gpt-4o-mini", "api.openai.com"), request, 3,
                      experiment_id="exp-1", log_prompt=log_prompt)


def test_the_event_line_says_who_what_and_cost_but_never_the_key_or_the_prompt() -> None:
    lines: list[str] = []
    assert list(logged(_experiment(), iter(_results()), write=lines.append)) == _results()
    [line] = lines
    event = json.loads(line)
    assert {key: event[key] for key in ("who", "runs_planned", "runs_received", "outcome", "ok", "failed",
                                        "errors", "distinct_answers", "cost")} == {
        "who": "ip:203.0.113.7", "runs_planned": 3, "runs_received": 3, "outcome": "complete", "ok": 2, "failed": 1,
        "errors": {"auth": 1}, "distinct_answers": 2,
        "cost": {"requests": 3, "prompt_tokens": 22, "completion_tokens": 10, "total_tokens": 32}}
    assert event["backend"] == {"provider": "openai", "model": "gpt-4o-mini", "endpoint_host": "api.openai.com"}
    assert KEY not in line and "PROMPT-7f3a" not in line and "Be brief" not in line


def test_the_prompt_is_logged_only_when_opted_in_and_the_key_never() -> None:
    lines: list[str] = []
    list(logged(_experiment(log_prompt=True), iter(_results()), write=lines.append))
    event = json.loads(lines[0])
    assert event["request"]["prompt"].endswith("PROMPT-7f3a") and event["request"]["system"] == "Be brief."
    assert KEY not in lines[0]


def test_closing_early_logs_a_cancelled_experiment_and_closes_the_runs() -> None:
    closed, lines = [], []

    def runs() -> Iterator[RunResult]:
        try:
            yield from _results()
        finally:
            closed.append(True)

    stream = logged(_experiment(), runs(), write=lines.append)
    next(stream)
    stream.close()
    assert closed == [True]
    assert json.loads(lines[0])["outcome"] == "cancelled" and json.loads(lines[0])["runs_received"] == 1


@pytest.fixture
def event_lines() -> Iterator[list[str]]:
    """The lines the "repro.events" logger writes while the test runs."""
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    events = logging.getLogger("repro.events")
    events.addHandler(handler)
    yield lines
    events.removeHandler(handler)


def test_a_recording_writes_its_line_to_the_events_log_once_its_runs_end(fake_server, azure_settings,
                                                                         event_lines) -> None:
    lines = event_lines
    backend = make_backend(azure_settings)
    with Fanout(None) as fanout:
        recording = Recorder(fanout, None).batch(backend, DEMO, BatchPlan(3, 3))
        logged_too = recording.logged(Experiment("ip:203.0.113.7", backend.info, DEMO, 3))
        assert logged_too is recording and not lines  # nothing is written before the runs end
        assert sum(result.ok for result in recording) == 3
    [line] = lines
    event = json.loads(line)
    assert (event["who"], event["outcome"], event["ok"], event["cost"]["requests"]) == ("ip:203.0.113.7", "complete",
                                                                                       3, 3)
    assert fake_server.api_key not in line


# The app: its session logs each batch and, with DATABASE_URL, counts the quota in the database

@pytest.mark.usefixtures("app_environment")
def test_the_app_logs_an_experiment_and_a_suite_with_their_planned_requests(scripted, event_lines) -> None:
    scripted(texts("x"))
    at = experiment()
    at.button(key="run").click().run()
    at.switch_page("pages/suite.py").run()
    at.selectbox(key="suite_shipped").set_value("open.jsonl")
    at.number_input(key="suite_runs").set_value(2).run()
    at.button(key="run_suite").click().run()
    assert not at.exception
    events = [json.loads(line) for line in event_lines]
    assert [(event["kind"], event["runs_planned"], event["runs_received"], event["outcome"]) for event in events] == [
        ("experiment", 5, 5, "complete"), ("suite", 20, 20, "complete")]
    assert {event["who"] for event in events} == {f"session:{at.session_state['session_identity']}"}


@pytest.mark.usefixtures("app_environment")
def test_with_a_database_the_app_counts_the_quota_there(scripted, url: str, monkeypatch) -> None:
    scripted(texts("x"))
    monkeypatch.setenv("DATABASE_URL", url)
    at = experiment()
    at.button(key="run").click().run()
    assert not at.exception
    assert any("595 of 600 requests left this hour" in caption for caption in captions(at))
    assert _rows(url, "SELECT requests FROM repro_quota_requests") == [(5,)]


@pytest.mark.usefixtures("app_environment")
def test_while_the_database_cannot_be_reached_the_app_counts_the_quota_itself(scripted, url: str,
                                                                              monkeypatch) -> None:
    backend = scripted(texts("x"))
    monkeypatch.setenv("DATABASE_URL", url + "_missing")
    at = experiment()
    at.button(key="run").click().run()
    assert not at.exception
    assert len(backend.calls) == 5
    assert any("595 of 600 requests left this hour" in caption for caption in captions(at))
