"""The history store, the same tests on SQLite and on a real PostgreSQL server; JSON and CSV exports and imports."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import socket
import threading
from urllib.parse import quote, unquote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import ConfigurationError, InvalidImport, StorageError
from core.models import Alternative, BackendInfo, RunError, RunRequest, RunResult, TokenLogprob, Usage
from core.history import (
    CSV_COLUMNS,
    Experiment,
    HistoryLocation,
    from_json,
    import_experiment,
    open_store,
    to_csv,
    to_json,
)
from core.history.migrations import MIGRATIONS
from core.history.postgres import DatabaseUrl, PostgresStore
from core.history.sqlite import SQLiteStore
from tests import pgserver

REQUEST = RunRequest(prompt="Create a story about red panda.", system="You always produce 3-sentence answers.",
                     temperature=0.7, top_p=0.9, max_tokens=64, seed=-(2**63), logprobs=True, top_logprobs=2)
BACKEND = BackendInfo("azure", "gpt-test", "example.openai.azure.com", "2024-06-01", "deterministic")
LOGPROBS = (TokenLogprob("Red", -0.25, (Alternative("Red", -0.25), Alternative("A", -1.5))),
            TokenLogprob(" panda", -0.0001220703125, ()))
FULL = RunResult(index=2, latency_ms=812.3, text="Red panda.", error=RunError("auth", "unused", 401),
                 finish_reason="length", system_fingerprint="fp_a", model="gpt-test-0613", request_id="chatcmpl-2",
                 usage=Usage(10, 2, 12), logprobs=LOGPROBS, retries=1, raw='{"id": "chatcmpl-2"}',
                 notice="sent again without logprobs")
OK = RunResult(index=0, latency_ms=95.0, text="Red panda.", finish_reason="stop", system_fingerprint="fp_a",
               model="gpt-test", request_id="chatcmpl-0", usage=Usage(10, 2, 12), raw='{"id": "chatcmpl-0"}')
FAILED = RunResult.failed(1, 5003.5, RunError("timeout", "No answer within 5 s; raise REPRO_TIMEOUT."), retries=2)
HARD_TEXT = ("שלום עולם — مرحبا بالعالم 👩🏽‍🚀🇯🇵 e\u0301 <script>alert('x')</script> &amp; \"quotes\", commas\n"
             "second line\ttab 中文字符 \\ backslash %_ \u200f")


def saved(store, runs=(OK, FAILED, FULL), *, planned=3, finish=True, **extra) -> str:
    experiment_id = store.create(REQUEST, BACKEND, planned, **extra)
    for run in runs:
        store.add_run(experiment_id, run)
    if finish:
        store.finish(experiment_id)
    return experiment_id


def test_every_run_field_is_exercised():
    unset = [f.name for f in dataclasses.fields(RunResult) if getattr(FULL, f.name) == f.default]
    assert unset == [], "a new RunResult field: store it in core/history/sql.py and set it in FULL"


def test_round_trip_save_read_export_import(store):
    experiment_id = saved(store, (FULL, OK, FAILED), meta={"note": "demo", "cells": [0.0, 0.7]})
    got = store.get(experiment_id)
    assert got == Experiment(id=experiment_id, created_at=got.created_at, request=REQUEST, backend=BACKEND,
                             runs_planned=3, complete=True, runs=(OK, FAILED, FULL),
                             meta={"note": "demo", "cells": [0.0, 0.7]})
    assert got.runs[2].raw == FULL.raw
    assert got.created_at.endswith("+00:00")

    assert from_json(to_json(got)) == got
    imported_id = import_experiment(store, from_json(to_json(got)))
    assert imported_id != experiment_id
    assert store.get(imported_id) == dataclasses.replace(got, id=imported_id)


def test_runs_are_idempotent_per_index_and_incomplete_until_finished(store):
    experiment_id = saved(store, (OK, OK, dataclasses.replace(OK, text="a later copy")), finish=False)
    got = store.get(experiment_id)
    assert got.runs == (OK,)
    assert not got.complete
    store.finish(experiment_id)
    assert store.get(experiment_id).complete


def test_runs_of_several_experiments_are_added_and_finished_in_one_transaction(store):
    first, second = (store.create(REQUEST, BACKEND, 2) for _ in range(2))
    store.add_runs([(first, OK), (second, OK), (first, FAILED), (first, dataclasses.replace(OK, text="a copy"))],
                   finished=[first])
    assert (store.get(first).runs, store.get(first).complete) == ((OK, FAILED), True)
    assert (store.get(second).runs, store.get(second).complete) == ((OK,), False)


def test_a_group_the_database_refuses_is_saved_not_in_part(store):
    experiment_id = store.create(REQUEST, BACKEND, 3)
    with pytest.raises(StorageError, match="The history database.* failed"):
        store.add_runs([(experiment_id, OK), ("no-such-experiment", FAILED)], finished=[experiment_id])
    assert (store.get(experiment_id).runs, store.get(experiment_id).complete) == ((), False)


def test_get_unknown_is_none(store):
    assert store.get("nope") is None


def test_hard_text_round_trips_untouched(store):
    request = dataclasses.replace(REQUEST, prompt=HARD_TEXT, system=HARD_TEXT)
    run = dataclasses.replace(OK, text=HARD_TEXT, raw=json.dumps({"content": HARD_TEXT}, ensure_ascii=False))
    experiment_id = store.create(request, BACKEND, 1)
    store.add_run(experiment_id, run)
    got = store.get(experiment_id)
    assert got.request == request
    assert got.runs == (run,)
    assert from_json(to_json(got)) == got
    [row] = csv.DictReader(io.StringIO(to_csv(got)))
    assert row["text"] == HARD_TEXT


def test_csv_has_one_row_per_run(store):
    experiment = store.get(saved(store))
    rows = list(csv.reader(io.StringIO(to_csv(experiment))))
    assert rows == [
        list(CSV_COLUMNS),
        ["0", "True", "Red panda.", "", "", "fp_a", "95.0", "10", "2", "12", "stop", "chatcmpl-0", "0", ""],
        ["1", "False", "", "timeout", "No answer within 5 s; raise REPRO_TIMEOUT.", "", "5003.5", "", "", "", "", "",
         "2", ""],
        ["2", "False", "Red panda.", "auth", "unused", "fp_a", "812.3", "10", "2", "12", "length", "chatcmpl-2", "1",
         "sent again without logprobs"],
    ]


def test_csv_cells_a_spreadsheet_would_run_as_formulas_are_defused(store):
    formula = dataclasses.replace(OK, text='=HYPERLINK("http://evil.invalid","click")')
    experiment = store.get(saved(store, (formula, dataclasses.replace(OK, index=1, text="-1 + 2"))))
    rows = list(csv.DictReader(io.StringIO(to_csv(experiment))))
    assert [row["text"] for row in rows] == ['\'=HYPERLINK("http://evil.invalid","click")', "'-1 + 2"]
    assert from_json(to_json(experiment)).runs[0].text == formula.text  # the JSON export keeps the text exact


def test_every_text_column_of_the_csv_is_defused_and_numbers_stay_numbers():
    hostile = RunResult(index=0, latency_ms=-5.5, text="+1", error=RunError("@kind", "\tmessage", 500),
                        finish_reason="=stop", system_fingerprint="-1+1", model="m", request_id="@id",
                        usage=Usage(-1, 2, 1), retries=0, notice="\rnotice")
    experiment = Experiment("x", "2025-01-01T00:00:00+00:00", REQUEST, BACKEND, 1, True, (hostile,))
    [row] = csv.DictReader(io.StringIO(to_csv(experiment), newline=""))
    assert row == {"index": "0", "ok": "False", "text": "'+1", "error_kind": "'@kind", "error_message": "'\tmessage",
                   "fingerprint": "'-1+1", "latency_ms": "-5.5", "prompt_tokens": "-1", "completion_tokens": "2",
                   "total_tokens": "1", "finish_reason": "'=stop", "request_id": "'@id", "retries": "0",
                   "notice": "'\rnotice"}


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
TEXT_COLUMNS = ("text", "error_kind", "error_message", "fingerprint", "finish_reason", "request_id", "notice")
cell_text = st.one_of(st.none(), st.text(), st.sampled_from(FORMULA_STARTS).flatmap(
    lambda start: st.text().map(lambda rest: start + rest)))
numbers = st.integers(min_value=-(2**40), max_value=2**40)
hostile_runs = st.builds(
    RunResult, index=st.integers(0, 99), latency_ms=st.floats(allow_nan=False, allow_infinity=False), text=cell_text,
    error=st.none() | st.builds(RunError, cell_text.filter(bool), st.text(), st.none() | numbers),
    finish_reason=cell_text, system_fingerprint=cell_text, request_id=cell_text, notice=cell_text,
    usage=st.none() | st.builds(Usage, numbers, numbers, numbers), retries=numbers)


@settings(max_examples=300, deadline=None)
@given(st.lists(hostile_runs, max_size=4))
def test_no_text_cell_of_any_csv_starts_like_a_formula(runs):
    experiment = Experiment("x", "2025-01-01T00:00:00+00:00", REQUEST, BACKEND, 1, True, tuple(runs))
    rows = list(csv.DictReader(io.StringIO(to_csv(experiment), newline="")))
    assert len(rows) == len(runs)
    for run, row in zip(runs, rows, strict=True):
        written = {"text": run.text, "error_kind": run.error and run.error.kind,
                   "error_message": run.error and run.error.message, "fingerprint": run.system_fingerprint,
                   "finish_reason": run.finish_reason, "request_id": run.request_id, "notice": run.notice}
        for column in TEXT_COLUMNS:
            assert not row[column].startswith(FORMULA_STARTS)
            assert row[column] in (written[column] or "", "'" + (written[column] or ""))
        for column, number in (("index", run.index), ("latency_ms", run.latency_ms), ("retries", run.retries)):
            assert float(row[column]) == number  # a negative number is written as a number

def test_list_shows_top_level_items_newest_first_with_their_numbers(store):
    first = saved(store)
    second = saved(store, (OK, dataclasses.replace(OK, index=1, text="Other.", system_fingerprint="fp_b"),
                           dataclasses.replace(OK, index=2, system_fingerprint="fp_b")), planned=4, finish=False,
                   rerun_of=first)
    sweep = store.create(REQUEST, BACKEND, 0, kind="sweep", meta={"temperatures": [0, 1]})
    saved(store, parent_id=sweep)
    rows = store.list()
    assert [row.id for row in rows] == [sweep, second, first]
    row = rows[1]
    assert (row.kind, row.provider, row.model, row.endpoint_host, row.prompt_preview) == (
        "experiment", "azure", "gpt-test", "example.openai.azure.com", "Create a story about red panda.")
    assert (row.runs_planned, row.runs_done, row.unique_outputs, row.fingerprints, row.complete, row.rerun_of) == (
        4, 3, 2, ("fp_b", "fp_a"), False, first)
    assert (row.seed, row.temperature) == (-(2**63), 0.7)
    assert (rows[0].kind, rows[0].runs_done, rows[0].fingerprints) == ("sweep", 0, ())
    assert (rows[2].runs_done, rows[2].unique_outputs, rows[2].complete) == (3, 1, True)
    assert [row.id for row in store.list(limit=2)] == [sweep, second]


def test_prompt_preview_is_one_short_line(store):
    store.create(dataclasses.replace(REQUEST, prompt="line one\nline two " + "x" * 200), BACKEND, 1)
    [row] = store.list()
    assert row.prompt_preview == "line one line two " + "x" * 61 + "…"
    assert len(row.prompt_preview) == 80


def test_search_matches_prompt_system_or_model_ignoring_case_and_provider_and_kind_filter(store):
    panda = saved(store)
    eclair = store.create(RunRequest(prompt="Décris un ÉCLAIR au café."), BACKEND, 1)
    percent = store.create(RunRequest(prompt="Is 100% of it fine?", system="Answer in 5_words"),
                           BackendInfo("openai", "gpt-4o-mini", "api.openai.com"), 1)

    def found(**query):
        return {row.id for row in store.list(**query)}

    assert found(search="RED PANDA") == {panda}
    assert found(search="éclair") == {eclair}
    assert found(search="3-SENTENCE") == {panda}
    assert found(search="4O-MINI") == {percent}
    assert found(search="100%") == {percent}
    assert found(search="5_w") == {percent}
    assert found(search="0%") == {percent}
    assert found(search="5%w") == set()
    assert found(search="_") == {percent}
    assert found(provider="azure") == {panda, eclair}
    assert found(provider="azure", search="café") == {eclair}
    assert found(provider="local") == set()
    probe = store.create(RunRequest(prompt="Reply OK."), BACKEND, 1, kind="probe")
    assert found(kind="probe") == {probe}
    assert found(provider="azure", kind="experiment") == {panda, eclair}


def test_delete_takes_runs_and_children_with_it(db):
    store = db.open()
    sweep = store.create(REQUEST, BACKEND, 0, kind="sweep")
    cells = [saved(store, parent_id=sweep, meta={"temperature": t}) for t in (0.0, 1.0)]
    keep = saved(store)
    assert [cell.id for cell in store.children(sweep)] == cells
    assert [cell.meta for cell in store.children(sweep)] == [{"temperature": 0.0}, {"temperature": 1.0}]
    assert store.children(sweep)[0].runs == (OK, FAILED, FULL)

    assert store.delete(sweep) is True
    assert store.delete(sweep) is False
    assert [store.get(i) for i in (sweep, *cells)] == [None, None, None]
    assert store.children(sweep) == []
    assert [row.id for row in store.list()] == [keep]
    with db.connect() as conn:
        assert conn.execute("SELECT COUNT(*), MIN(experiment_id) FROM runs").fetchone() == (3, keep)


def test_threads_writing_at_once_lose_nothing(store):
    ids = [store.create(REQUEST, BACKEND, 25) for _ in range(4)]
    start = threading.Barrier(8)

    def write(experiment_id, first):
        start.wait()
        for index in range(first, 25, 2):
            store.add_run(experiment_id, dataclasses.replace(OK, index=index, text=f"run {index}"))

    threads = [threading.Thread(target=write, args=(i, first)) for i in ids for first in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for experiment_id in ids:
        assert [run.text for run in store.get(experiment_id).runs] == [f"run {k}" for k in range(25)]


def test_schema_version_is_recorded(db):
    db.open()
    with db.connect() as conn:
        versions = [row[0] for row in conn.execute("SELECT version FROM schema_version ORDER BY version")]
    assert versions == list(range(1, len(MIGRATIONS) + 1))
    db.open()  # opening again applies nothing twice
    with db.connect() as conn:
        assert conn.execute("SELECT COUNT(*) FROM schema_version").fetchone() == (len(MIGRATIONS),)


def test_a_version_1_database_is_migrated_and_keeps_its_data(db):
    with db.connect() as conn:
        conn.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)")
        conn.execute("INSERT INTO schema_version VALUES (1, '2025-01-01T00:00:00+00:00')")
        for statement in MIGRATIONS[0]:
            conn.execute(statement)
        conn.execute("INSERT INTO experiments (id, created_at, prompt, system, temperature, top_p, max_tokens, seed, "
                     "logprobs, top_logprobs, provider, model, endpoint_host, api_version, mode, runs_planned, "
                     "complete) VALUES ('old', '2025-01-01T00:00:00+00:00', 'Old prompt', '', 0.1, 1.0, 256, 42, "
                     "FALSE, 5, 'openai', 'gpt-4o-mini', 'api.openai.com', NULL, NULL, 1, TRUE)")
        conn.execute("INSERT INTO runs (experiment_id, run_index, latency_ms, text, system_fingerprint, retries) "
                     "VALUES ('old', 0, 120.5, 'Old answer.', 'fp_old', 0)")

    store = db.open()
    old = store.get("old")
    assert old == Experiment(id="old", created_at="2025-01-01T00:00:00+00:00",
                             request=RunRequest(prompt="Old prompt", seed=42),
                             backend=BackendInfo("openai", "gpt-4o-mini", "api.openai.com"), runs_planned=1,
                             complete=True, runs=(RunResult(index=0, latency_ms=120.5, text="Old answer.",
                                                            system_fingerprint="fp_old"),))
    assert (old.kind, old.parent_id, old.rerun_of, old.meta) == ("experiment", None, None, {})
    with db.connect() as conn:
        assert [row[0] for row in conn.execute("SELECT version FROM schema_version ORDER BY version")] == [1, 2]
    sweep = store.create(REQUEST, BACKEND, 0, kind="sweep")
    store.create(REQUEST, BACKEND, 1, parent_id=sweep, rerun_of="old")
    assert [row.id for row in store.list()] == [sweep, "old"]


def test_a_newer_schema_is_refused(db):
    db.open()
    with db.connect() as conn:
        conn.execute("INSERT INTO schema_version VALUES (99, '2030-01-01T00:00:00+00:00')")
    with pytest.raises(ConfigurationError, match="schema version 99, newer than this Repro Lab knows"):
        db.open()


def test_open_store_opens_the_location_it_is_given_and_reads_no_environment(monkeypatch, tmp_path, postgres_url):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@[ignored/db")
    monkeypatch.setenv("REPRO_HISTORY_PATH", str(tmp_path / "ignored.sqlite3"))
    default = open_store(HistoryLocation())
    assert isinstance(default, SQLiteStore)
    assert default.path == tmp_path / "home/.local/share/repro-lab/history.sqlite3"
    assert default.path.exists()
    assert open_store(HistoryLocation("", "")).path == default.path

    assert open_store(HistoryLocation(sqlite_path=str(tmp_path / "arg.sqlite3"))).path == tmp_path / "arg.sqlite3"
    assert isinstance(open_store(HistoryLocation(postgres_url)), PostgresStore)
    assert isinstance(open_store(HistoryLocation(postgres_url, str(tmp_path / "not.sqlite3"))), PostgresStore)
    assert not (tmp_path / "ignored.sqlite3").exists() and not (tmp_path / "not.sqlite3").exists()


def test_a_history_location_shows_its_url_masked_and_names_its_secrets():
    location = HistoryLocation("postgresql://alice:p%40ss w@rd@db.example/app?sslmode=require", "unused.sqlite3")
    assert location.masked_url == "postgresql://alice:***@db.example/app?sslmode=require"
    assert set(location.secrets) == {"p%40ss w@rd", "p@ss w@rd", "p%40ss%20w%40rd"}
    assert "p@ss" not in repr(location) and "p%40ss" not in repr(location)
    assert HistoryLocation("postgres://bob@db/app?password=hunter2").masked_url == "postgres://bob@db/app?password=***"
    assert HistoryLocation("host=db password=hunter2").masked_url == "***"  # not a URL: nothing of it is shown
    assert HistoryLocation("host=db password=hunter2").secrets == ("host=db password=hunter2",)
    assert (HistoryLocation().masked_url, HistoryLocation().secrets) == (None, ())
    assert (HistoryLocation(sqlite_path="h.sqlite3").masked_url, HistoryLocation("").secrets) == (None, ())


@pytest.mark.parametrize(("url", "found"), [("postgresql+psycopg://user:hunter2secret@db.example/app",
                                            " (it starts with postgresql+psycopg://)"),
                                           ("host=db.example password=hunter2secret", "")])
def test_a_database_url_that_is_not_postgres_is_refused_without_echoing_it(url, found):
    with pytest.raises(ConfigurationError) as caught:
        open_store(HistoryLocation(url))
    assert str(caught.value) == f"DATABASE_URL must be a URL postgresql://USER:PASSWORD@HOST:PORT/DATABASE{found}."


def test_the_postgres_fixture_fails_clearly_without_the_server_binaries(monkeypatch):
    monkeypatch.setattr(pgserver.glob, "glob", lambda pattern: [])
    with pytest.raises(pytest.fail.Exception, match=r"install them with `apt-get install -y postgresql`"):
        pgserver._bin_dir()


def export(**changes) -> str:
    """A valid export, one run, with `changes` made to the experiment object (None deletes a field)."""
    document = json.loads(to_json(Experiment("x", "2025-01-01T00:00:00+00:00", REQUEST, BACKEND, 3, True, (OK,))))
    for path, value in changes.items():
        *parents, last = path.split("__")
        target = document["experiment"]
        for key in parents:
            target = target[int(key)] if isinstance(target, list) else target[key]
        if value is None:
            del target[last]
        else:
            target[last] = value
    return json.dumps(document)


@pytest.mark.parametrize(("text", "message"), [
    ("{not json", "The file is not JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)."),
    (b"\xff\xfe\x00", "The file is not JSON: "),
    ("[1, 2]", "The file is not a Repro Lab experiment export: its format should be 'repro-lab-experiment'."),
    ('{"format": "other"}', "The file is not a Repro Lab experiment export: its format should be "
                            "'repro-lab-experiment'."),
    ('{"format": "repro-lab-experiment", "version": 2}', "Export version 2 is not supported; this Repro Lab reads "
                                                         "version 1."),
    ('{"format": "repro-lab-experiment", "version": 1}', "The export has no 'experiment'."),
    (export(id=None), "experiment.id is missing."),
    (export(runs__0__latency_ms=None), "experiment.runs[0].latency_ms is missing."),
    (export(runs__0__index="0"), "experiment.runs[0].index must be a whole number, got '0'."),
    (export(runs__0__index=True), "experiment.runs[0].index must be a whole number, got True."),
    (export(runs__0__usage__total_tokens=1.5), "experiment.runs[0].usage.total_tokens must be a whole number, "
                                               "got 1.5."),
    (export(runs__0__logprobs=[{"token": "a"}]), "experiment.runs[0].logprobs[0].logprob is missing."),
    (export(runs="all"), "experiment.runs must be a list, got 'all'."),
    (export(backend=["azure"]), "experiment.backend must be an object, got ['azure']."),
    (export(complete="yes"), "experiment.complete must be true or false, got 'yes'."),
    (export(meta=[]), "experiment.meta must be an object, got []."),
    (export(backend__secret_key="sk-1"), "experiment.backend has an unknown field 'secret_key'."),
    (export(request__temperature=5), "experiment.request is not valid: temperature 5.0 is outside 0–2; pick a value "
                                     "from 0 to 2."),
    (export(request__prompt=" "), "experiment.request is not valid: prompt is empty: type the text the model should "
                                  "answer."),
    (export(created_at="yesterday"), "experiment.created_at must be an ISO 8601 time, got 'yesterday'."),
    (export(runs__0__index=3), "experiment.runs must have distinct indices from 0 to runs_planned - 1 (2) in order, "
                               "got [3]."),
])
def test_from_json_names_what_is_wrong(text, message):
    with pytest.raises(InvalidImport) as caught:
        from_json(text)
    assert str(caught.value).startswith(message)
    assert str(caught.value).endswith(".")


def test_from_json_reads_its_own_export_as_bytes():
    experiment = Experiment("x", "2025-01-01T00:00:00+00:00", REQUEST, BACKEND, 3, False, (OK, FAILED, FULL),
                            kind="experiment", parent_id="p", rerun_of="r", meta={"a": [1, 2.5, None]})
    assert from_json(to_json(experiment).encode()) == experiment


def test_an_import_of_another_kind_is_refused(store):
    plan = {"temperatures": [0.0], "seeds": [1], "runs": 4}
    sweep = store.get(store.create(REQUEST, BACKEND, 4, kind="sweep", meta={"plan": plan}))
    with pytest.raises(InvalidImport, match="^The export is a sweep with 0 child experiments; import it whole"):
        from_json(to_json(sweep))


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# Passwords that broke libpq's URL parsing, each with the pieces a misread URL would have shown.
PASSWORDS = {"hunter2%zz w0rd@s3cr3t": ("hunter2%zz", "w0rd@s3cr3t", "s3cr3t"),
             "p@ssw0rd%20with space": ("p@ssw0rd", "ssw0rd%20with", "with space"),
             "%41%42c:d/e?f#g@hhhh": ("%41%42c", "d/e?f#g", "hhhh")}


def leaked(password: str, text: str) -> list[str]:
    """Every form and piece of the password found in `text`."""
    forms = {password, unquote(password), quote(password, safe=""), *PASSWORDS[password]}
    return [form for form in forms if form in text]


@pytest.mark.parametrize("password", sorted(PASSWORDS))
@pytest.mark.parametrize("encoded", [False, True])
@pytest.mark.parametrize("host", ["[bad", "127.0.0.1:{port}", "[::1"])
def test_a_database_password_is_in_no_message(password, encoded, host):
    written = quote(password, safe="") if encoded else password
    url = f"postgresql://alice:{written}@{host.format(port=unused_port())}/app?sslmode=disable"
    with pytest.raises((ConfigurationError, StorageError)) as caught:
        open_store(HistoryLocation(url))
    message = str(caught.value)
    assert leaked(password, message) == []
    assert "postgresql://alice:***@" in message and "\n" not in message
    assert ("Connection refused" in message) == (host == "127.0.0.1:{port}")


def test_a_password_in_the_query_is_masked_and_scrubbed_too():
    with pytest.raises(ConfigurationError) as caught:
        open_store(HistoryLocation("postgresql://alice@[bad/app?password=hunter2%25zz%20w0rd"))
    assert str(caught.value) == ('DATABASE_URL postgresql://alice@[bad/app?password=*** cannot be read: end of string '
                                 'reached when looking for matching "]" in IPv6 host address in URI: '
                                 '"postgresql://alice@[bad/app?password=***"')


def test_a_database_url_is_read_once_into_settings_a_password_and_a_masked_form():
    url = DatabaseUrl.parse("postgres://alice:p%40ss w@rd@db.example:5433,db2.example/app?sslmode=require")
    assert url.masked == "postgres://alice:***@db.example:5433,db2.example/app?sslmode=require"
    assert url.password == "p@ss w@rd"
    assert url.settings == {"user": "alice", "host": "db.example,db2.example", "port": "5433,", "dbname": "app",
                            "sslmode": "require"}
    assert "p@ss" not in repr(url) and url.scrub("auth failed for p%40ss w@rd and p@ss w@rd") == (
        "auth failed for *** and ***")
    assert DatabaseUrl.parse("postgresql://postgres@127.0.0.1/db").password is None


def test_a_password_libpq_could_not_read_in_a_url_now_connects(postgres_url):
    with_password = postgres_url.replace("postgres@", "postgres:hunter2%zz w0rd@s3cr3t@", 1)
    store = PostgresStore(with_password)
    assert store.database.masked == postgres_url.replace("postgres@", "postgres:***@", 1)
    assert store.get(store.create(REQUEST, BACKEND, 1)).request == REQUEST


def test_a_history_path_that_cannot_be_created_names_the_variable(tmp_path):
    (tmp_path / "a-file").write_text("")
    with pytest.raises(ConfigurationError) as caught:
        open_store(HistoryLocation(sqlite_path=str(tmp_path / "a-file" / "history.sqlite3")))
    assert str(caught.value) == (f"The history file {tmp_path}/a-file/history.sqlite3 cannot be used: its folder "
                                 "cannot be created (File exists); set REPRO_HISTORY_PATH to a file in a folder you "
                                 "can write.")
    with pytest.raises(ConfigurationError, match=r"/proc/repro-lab/history.sqlite3 cannot be used: .*REPRO_HISTORY"):
        open_store(HistoryLocation(sqlite_path="/proc/repro-lab/history.sqlite3"))
    with pytest.raises(StorageError, match="The history database failed: OperationalError: unable to open"):
        open_store(HistoryLocation(sqlite_path="/proc/history.sqlite3"))


NUL_TEXT = "a\x00b \ufdd0 \ufdd0\ufdd1 \ufdd1\x00"  # NUL, and the characters PostgreSQL's copy escapes it with


def test_nul_is_kept_exactly_in_every_text_and_found_by_search(store):
    backend = dataclasses.replace(BACKEND, model="model\x00x\ufdd0")
    run = dataclasses.replace(FULL, text=NUL_TEXT, finish_reason="\x00", system_fingerprint=NUL_TEXT,
                              model=NUL_TEXT, request_id=NUL_TEXT, raw=NUL_TEXT, notice=NUL_TEXT,
                              error=RunError(NUL_TEXT, NUL_TEXT, 500),
                              logprobs=(TokenLogprob("\x00", -0.5, (Alternative("\x00\ufdd0", -1.0),)),))
    experiment_id = store.create(REQUEST, backend, 2, meta={"\x00": NUL_TEXT})
    store.add_run(experiment_id, run)
    got = store.get(experiment_id)
    assert (got.runs, got.backend, got.meta) == ((run,), backend, {"\x00": NUL_TEXT})
    assert [row.id for row in store.list(search="\x00X\ufdd0")] == [experiment_id]
    assert [row.fingerprints for row in store.list()] == [(NUL_TEXT,)]
    assert store.list(search="0x") == []  # "0" would have matched one half of an escaped NUL
