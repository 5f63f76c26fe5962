"""The Sweep page with AppTest: the plan and its cost before sending, cells in parallel, chart data, history."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from core.history import HistoryLocation, open_store
from tests.apptest import APP, captions, plain

pytestmark = pytest.mark.usefixtures("app_environment")


def by_cell(request, number):
    return f"T{request.temperature} seed {request.seed}." if request.seed is not None else f"Fresh words {number}."


def sweep_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("pages/sweep.py").run()
    assert not at.exception
    return at


def test_the_plan_and_its_cost_show_before_anything_is_sent(scripted):
    backend = scripted(by_cell)
    at = sweep_page()
    assert at.multiselect(key="sweep_temperatures").value == [0.0, 0.1, 0.3, 0.7, 1.0, 1.5]
    assert "6 temperatures × 2 seed settings × 5 runs = **60 requests**" in " ".join(captions(at))
    assert backend.calls == []


def test_a_sweep_runs_every_cell_and_opens_a_cell(scripted, tmp_path):
    backend = scripted(by_cell)
    at = sweep_page()
    at.multiselect(key="sweep_temperatures").set_value([0.0, 1.0])
    at.number_input(key="sweep_runs").set_value(3)
    at.button(key="run_sweep").click().run()
    assert not at.exception
    assert len(backend.calls) == 12
    assert {(r.temperature, r.seed) for r in backend.calls} == {(0.0, 42), (0.0, None), (1.0, 42), (1.0, None)}
    frame = at.dataframe[-1].value
    assert list(frame["Cell"]) == ["T=0 · seed 42", "T=0 · no seed", "T=1 · seed 42", "T=1 · no seed"]
    assert list(frame["Unique"]) == [1, 3, 1, 3]
    assert list(frame["Identical rate"]) == [100, 33, 100, 33]
    [row] = open_store(HistoryLocation(sqlite_path=str(tmp_path / "history.sqlite3"))).list()
    assert (row.kind, row.runs_planned) == ("sweep", 12)


def test_a_large_sweep_asks_for_confirmation(scripted, monkeypatch):
    backend = scripted(by_cell)
    monkeypatch.setenv("REPRO_CONFIRM_ABOVE", "10")
    at = sweep_page()
    assert at.button(key="run_sweep").disabled
    at.checkbox(key="sweep_confirm").check().run()
    assert not at.button(key="run_sweep").disabled
    assert backend.calls == []


def test_a_sweep_over_the_limit_is_refused(scripted, monkeypatch):
    backend = scripted(by_cell)
    monkeypatch.setenv("REPRO_MAX_SWEEP_REQUESTS", "20")
    at = sweep_page()
    at.button(key="run_sweep").click().run()
    assert "60 requests in one sweep is over this instance's limit of 20" in plain(at.error[0].value)
    assert backend.calls == []


def test_bad_seeds_are_named(scripted):
    scripted(by_cell)
    at = sweep_page()
    at.text_input(key="sweep_seeds").set_value("42, forty").run()
    assert "seeds" in plain(at.error[0].value) and "forty" in plain(at.error[0].value)
    assert not [b for b in at.button if b.key == "run_sweep"]


def test_a_saved_sweep_opens_in_history(scripted, tmp_path):
    scripted(by_cell)
    at = sweep_page()
    at.multiselect(key="sweep_temperatures").set_value([0.5])
    at.number_input(key="sweep_runs").set_value(2)
    at.button(key="run_sweep").click().run()
    [row] = open_store(HistoryLocation(sqlite_path=str(tmp_path / "history.sqlite3"))).list()
    history = AppTest.from_file(APP, default_timeout=60)
    history.run()
    history.switch_page("pages/history.py")
    history.query_params["experiment"] = row.id
    history.run()
    assert not history.exception
    assert "sweep" in plain(history.markdown[0].value) and "temperatures 0.5" in plain(history.markdown[0].value)
    assert list(history.dataframe[-1].value["Cell"]) == ["T=0.5 · seed 42", "T=0.5 · no seed"]


def test_runs_per_cell_are_held_to_repro_max_runs(scripted, monkeypatch):
    monkeypatch.setenv("REPRO_MAX_RUNS", "3")
    scripted(by_cell)
    at = sweep_page()
    assert (at.number_input(key="sweep_runs").max, at.number_input(key="sweep_runs").value) == (3, 3)


def test_a_sweep_with_more_runs_per_cell_than_repro_max_runs_sends_nothing(scripted, monkeypatch):
    backend = scripted(by_cell)
    monkeypatch.setenv("REPRO_MAX_RUNS", "1")
    at = sweep_page()
    at.multiselect(key="sweep_temperatures").set_value([0.7])
    at.button(key="run_sweep").click().run()
    assert not at.exception
    assert plain(at.error[0].value) == ("Nothing was sent: 2 runs per cell is over this instance's limit of 1 "
                                        "(REPRO_MAX_RUNS).")
    assert backend.calls == []


def test_a_repeated_seed_is_named_as_it_was_written(scripted):
    scripted(by_cell)
    at = sweep_page()
    at.text_input(key="sweep_seeds").set_value("none, 42, NONE").run()
    assert plain(at.error[0].value) == ("Nothing can be sent yet: seeds: none appears more than once; "
                                        "list each once.")
