"""The Probe page with AppTest: the cost and a confirmation before anything is sent, then the report card, the load
chart's data and the history item."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from core.history import HistoryLocation, open_store
from core.models import BackendInfo, RunError
from core.probe import ColdWarmFinding, LoadRung, ProbeReport, SeedFinding
from core.probe.findings import load_finding
from tests.apptest import APP, captions, plain
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


def test_the_cost_shows_and_nothing_is_sent_before_confirmation(scripted, monkeypatch):
    backend = scripted(reasoning_model)
    monkeypatch.setenv("REPRO_GLOBAL_CONCURRENCY", "16")
    at = probe_page()
    shown = " ".join(captions(at))
    # A cap of 16 requests in flight keeps K=0 and K=4 of the default ladder with 8 copies.
    assert "This probe: 43 requests (23 for parameters, seed and cold vs warm; load ladder K=0,4: 8 + 12)" in shown
    assert "K=16 is left out: 24 in flight is over the cap of 16." in shown
    assert at.button(key="run_probe").disabled
    at.checkbox(key="probe_confirm").check().run()
    assert not at.button(key="run_probe").disabled
    assert backend.calls == []


def test_a_probe_shows_its_report_card_and_is_saved(scripted, tmp_path):
    backend = scripted(reasoning_model)
    at = probe_page()
    at.number_input(key="probe_runs").set_value(2)
    at.multiselect(key="probe_ladder").set_value([0, 2])
    at.checkbox(key="probe_confirm").check().run()
    at.button(key="run_probe").click().run()
    assert not at.exception
    assert len(backend.calls) == 6 + 5 + 12 + 2 + 4
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


def test_the_load_chart_rows_are_unique_outputs_per_load():
    load = load_finding([LoadRung(0, 4, 4, 1, False), LoadRung(16, 4, 4, 3, True)])
    report = ProbeReport(BackendInfo("compatible", "m"), (), SeedFinding("honoured", ""),
                         ColdWarmFinding("no difference", ""), load)
    assert load_chart_rows(report) == [{"K": 0, "unique outputs": 1, "successful": 4, "vs K=0": "same"},
                                       {"K": 16, "unique outputs": 3, "successful": 4, "vs K=0": "changed"}]
