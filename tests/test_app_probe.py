"""The Probe page with AppTest: the cost and a confirmation before anything is sent, then the report card, the load
chart's data and the history item."""

from __future__ import annotations

import asyncio
import json
import logging
import re

import psycopg
import pytest
from streamlit.testing.v1 import AppTest

import ui.resources
from core import make_backend
from core.history import HistoryLocation, open_store
from core.models import BackendInfo, RunError
from core.probe import (LOCAL_LADDER, ColdWarmFinding, LoadRung, ProbePlan, ProbeReport, SeedFinding, run_probe,
                        save_probe)
from core.probe.findings import load_finding
from core.shared import close_pools
from core.shared.pool import open_database
from tests import pgserver
from tests.apptest import APP, EXPERIMENT, app, captions, html, made_by_lines, plain
from tests.scripted import ScriptedBackend, texts
from ui.probe import load_chart_rows

pytestmark = pytest.mark.usefixtures("app_environment")


def reasoning_model(request, number):
    """Refuses any temperature but 1, as reasoning models do; honours the seed."""
    if request.temperature != 1.0:
        return RunError("bad_request", "The server rejected the request (400): Unsupported value: 'temperature' "
                                       "does not support 0.5 with this model.", 400)
    return f"Seeded answer {request.seed} to {request.prompt[:12]}." if request.seed else f"Fresh answer {number}."


def probe_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("pages/probe.py").run()
    assert not at.exception
    return at


def small_probe() -> AppTest:
    """The Probe page after a confirmed probe of 2 copies of R at K=0 and K=2."""
    at = probe_page()
    at.number_input(key="probe_runs").set_value(2)
    at.multiselect(key="probe_ladder").set_value([0, 2])
    at.checkbox(key="probe_confirm").check().run()
    at.button(key="run_probe").click().run()
    assert not at.exception
    return at


def test_the_cost_shows_and_nothing_is_sent_before_confirmation(scripted, monkeypatch):
    backend = scripted(reasoning_model)
    monkeypatch.setenv("REPRO_GLOBAL_CONCURRENCY", "16")
    at = probe_page()
    shown = " ".join(captions(at))
    # A cap of 16 requests in flight keeps K=0 and K=4 of the default ladder with 8 copies.
    assert "This probe: 44 requests (24 for parameters, seed and cold vs warm; load ladder K=0,4: 8 + 12)" in shown
    assert "K=16 is left out: 24 in flight is over the cap of 16." in shown
    assert at.button(key="run_probe").disabled
    at.checkbox(key="probe_confirm").check().run()
    assert not at.button(key="run_probe").disabled
    assert backend.calls == []


def test_a_probe_shows_its_report_card_and_is_saved(scripted, tmp_path):
    backend = scripted(reasoning_model)
    at = small_probe()
    assert len(backend.calls) == 7 + 5 + 12 + 2 + 4
    summary = plain(at.success[0].value)
    assert "seed honoured · rejects temperature · cold vs warm: no difference · invariant up to K=2" in summary
    card = at.dataframe[0].value
    assert dict(zip(card["Check"], card["Verdict"]))["parameter temperature"] == "rejected"
    loads = [r.temperature for r in backend.calls if r.prompt.startswith("In one sentence")]
    assert set(loads) == {1.0}  # the load request asks for 0, which the endpoint rejects: it was sent as 1
    [row] = open_store(HistoryLocation(sqlite_path=str(tmp_path / "history.sqlite3"))).list()
    assert row.kind == "probe"
    at.run()  # a rerun shows the last probe of this endpoint before the next one
    assert any(c.startswith("Last probe of this endpoint: compatible scripted-model") for c in captions(at))


@pytest.fixture
def event_log(caplog):
    """What the "repro.events" logger writes while the test runs (it does not propagate to caplog's root handler)."""
    events = logging.getLogger("repro.events")
    events.addHandler(caplog.handler)
    yield caplog
    events.removeHandler(caplog.handler)


def test_a_probe_writes_one_json_line_with_its_requests_and_never_the_key(azure, event_log, monkeypatch):
    azure.reasoning = True
    monkeypatch.setenv("REPRO_LOG_PROMPTS", "1")  # a probe's line carries no prompt even so: its prompts are many
    at = small_probe()
    [line] = [record.getMessage() for record in event_log.records if record.name == "repro.events"]
    event = json.loads(line)
    [cost] = [c for c in captions(at) if c.startswith("This probe: ")]
    sent = int(re.match(r"This probe: (\d+) requests", cost)[1])  # the load ladder's background requests too
    assert (event["kind"], event["who"], event["outcome"]) == (
        "probe", f"session:{at.session_state['session_identity']}", "complete")
    assert (event["runs_planned"], event["runs_received"], event["cost"]["requests"]) == (sent, sent, sent)
    assert (event["backend"]["provider"], event["backend"]["model"]) == ("azure", "gpt-test")
    assert event["failed"] >= 2 and event["errors"] == {"bad_request": event["failed"]}  # temperature, top_p
    assert event["duration_s"] > 0 and "request" not in event
    assert azure.api_key not in line and "In one sentence" not in line


def _report(load, load_control=None) -> ProbeReport:
    return ProbeReport(BackendInfo("compatible", "m"), (), SeedFinding("honoured", ""),
                       ColdWarmFinding("no difference", ""), load, load_control=load_control)


def test_the_load_chart_rows_are_unique_outputs_per_load():
    report = _report(load_finding([LoadRung(0, 4, 4, 1, False), LoadRung(16, 4, 4, 3, True)]))
    assert load_chart_rows(report) == [
        {"variant": "endpoint", "K": 0, "unique outputs": 1, "successful": 4, "vs reference": "same"},
        {"variant": "endpoint", "K": 16, "unique outputs": 3, "successful": 4, "vs reference": "changed"}]


def test_the_load_chart_has_a_line_per_variant_of_the_embedded_engine():
    isolated = load_finding([LoadRung(0, 2, 2, 1, False), LoadRung(4, 2, 2, 1, False)], variant="isolated cells",
                            against_alone=True)
    shared = load_finding([LoadRung(0, 2, 2, 2, True), LoadRung(4, 2, 2, 2, True)], variant="shared cells",
                          against_alone=True)
    rows = load_chart_rows(_report(isolated, shared))
    assert [(r["variant"], r["K"], r["unique outputs"], r["vs reference"]) for r in rows] == [
        ("isolated cells", 0, 1, "same"), ("isolated cells", 4, 1, "same"),
        ("shared cells", 0, 2, "changed"), ("shared cells", 4, 2, "changed")]


def test_on_the_embedded_engine_the_ladder_is_the_local_one_and_the_cost_counts_both_variants(event_log):
    at = probe_page()  # no provider configured: the embedded engine
    assert at.multiselect(key="probe_ladder").value == list(LOCAL_LADDER)
    assert ("This probe: 117 requests (24 for parameters, seed and cold vs warm; 1 of R alone, then load ladder "
            "K=0,2,4,8: 8 + 10 + 12 + 16 for each of isolated cells and shared cells)") in " ".join(captions(at))
    at.number_input(key="probe_runs").set_value(2)
    at.multiselect(key="probe_ladder").set_value([0])
    at.number_input(key="probe_max_tokens").set_value(1)
    at.checkbox(key="probe_confirm").check().run()
    before = _requests_left(at)
    at.button(key="run_probe").click().run()
    assert not at.exception
    shown = [plain(m.value) for m in at.main.markdown]
    assert any(line.startswith("**isolated cells: ") for line in shown)
    assert any(line.startswith("**shared cells: ") for line in shown)
    at.run()
    assert before - _requests_left(at) == 24 + 1 + 2 * 2  # R alone, then K=0 once per variant
    # The events line counts the requests sent; the ladder is decoded in one batch on this machine, not sent.
    [line] = [record.getMessage() for record in event_log.records if record.name == "repro.events"]
    event = json.loads(line)
    assert (event["kind"], event["outcome"], event["runs_planned"], event["cost"]["requests"]) == (
        "probe", "complete", 24, 24)


def _requests_left(at: AppTest) -> int:
    [line] = [c for c in captions(at) if c.startswith("This probe: ")]
    return int(line.rsplit(" · ", 1)[1].split(" of ")[0])


# What a saved probe changes on the other pages

NOTE = "The endpoint rejects these (see its probe): temperature 0 sent as 1."


def _history(tmp_path):
    return open_store(HistoryLocation(sqlite_path=str(tmp_path / "history.sqlite3")))


@pytest.fixture
def probed_reasoning_server(azure, azure_settings, tmp_path):
    """The loopback server as a reasoning model, with a saved probe of it (temperature, top_p, logprobs rejected)."""
    azure.reasoning = True
    probe = asyncio.run(run_probe(make_backend(azure_settings), ProbePlan(2, (0,), 16)))
    assert "rejects temperature, top_p, logprobs" in probe.report.summary()
    save_probe(_history(tmp_path), probe)
    azure.received.clear()
    return azure


def test_a_rejected_parameter_is_disabled_with_the_reason_and_never_sent(probed_reasoning_server, tmp_path):
    at = app(EXPERIMENT)
    temperature = at.slider(key="temperature")
    assert temperature.disabled and temperature.value == 1.0
    assert plain(temperature.help).startswith("This endpoint rejects temperature (found by the probe): "
                                              "The server rejected the request (400)")
    assert at.slider(key="top_p").disabled and at.toggle(key="logprobs").disabled
    assert not at.toggle(key="use_seed").disabled  # the seed was accepted
    shown = [plain(c.value) for c in at.sidebar.caption]
    assert any(c.startswith("This endpoint rejects temperature (found by the probe)") for c in shown)
    at.button(key="run").click().run()
    assert not at.exception
    bodies = [r.body for r in probed_reasoning_server.received]
    assert len(bodies) == at.slider(key="runs").value
    assert {(b.get("temperature", 1), b.get("top_p", 1), b.get("logprobs", False)) for b in bodies} == {(1, 1, False)}
    assert made_by_lines(at) and made_by_lines(at)[0].split(" · ")[2:4] == ["T 1", "top_p 1"]
    [saved] = [row for row in _history(tmp_path).list() if row.kind == "experiment"]
    assert all(run.ok for run in _history(tmp_path).get(saved.id).runs)


def test_a_sweep_sends_every_temperature_as_the_endpoint_accepts_and_notes_it_on_each_run(probed_reasoning_server,
                                                                                          tmp_path):
    at = app("pages/sweep.py")
    assert any(c.startswith("This endpoint rejects temperature (found by the probe)") for c in captions(at))
    at.multiselect(key="sweep_temperatures").set_value([0.0, 1.0])
    at.text_input(key="sweep_seeds").set_value("42")
    at.number_input(key="sweep_runs").set_value(2)
    at.button(key="run_sweep").click().run()
    assert not at.exception
    assert [r.body.get("temperature", 1) for r in probed_reasoning_server.received] == [1] * 4
    [sweep] = [row for row in _history(tmp_path).list() if row.kind == "sweep"]
    cells = {cell.request.temperature: cell.runs for cell in _history(tmp_path).children(sweep.id)}
    assert [run.notice for run in cells[0.0]] == [NOTE, NOTE]
    assert all(run.ok for run in cells[0.0])
    assert [run.notice for run in cells[1.0]] == [None, None]  # nothing was left out of these


def test_a_probe_of_another_endpoint_changes_nothing_here(probed_reasoning_server, monkeypatch):
    other = ScriptedBackend(texts("An answer."))
    monkeypatch.setattr(ui.resources, "make_backend", lambda settings: other)
    ui.resources._cached_backend.clear()
    at = app(EXPERIMENT)
    assert not at.slider(key="temperature").disabled and not at.toggle(key="logprobs").disabled
    at.slider(key="temperature").set_value(0.5)
    at.button(key="run").click().run()
    assert not at.exception
    assert {request.temperature for request in other.calls} == {0.5}
    assert 'class="rl-notice"' not in html(at)
    assert probed_reasoning_server.received == []


def test_a_quota_that_cannot_be_counted_is_said_not_raised(scripted, postgres_url, monkeypatch):
    scripted(texts("An answer."))
    url = pgserver.new_database(postgres_url)
    monkeypatch.setenv("DATABASE_URL", url)
    database = open_database(url, timeout_s=1)  # waits a second for the lost database, not ten
    monkeypatch.setattr(ui.resources, "shared_database", lambda _: database)
    at = app("pages/sweep.py")
    server, name = url.rsplit("/", 1)
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")
    try:
        at.run()
        assert not at.exception
        assert captions(at)[-1].endswith("· the requests left this hour cannot be counted right now")
        at.switch_page("pages/probe.py").run()
        assert not at.exception
        [error] = [plain(e.value) for e in at.main.error]
        assert error.startswith("Nothing can be sent yet: Requests cannot be counted against the hourly quota")
    finally:
        database.pool.close()
        close_pools()
