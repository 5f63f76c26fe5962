"""The Sweep page with AppTest: the plan and its cost before sending, cells in parallel, chart data, history."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest
from streamlit.runtime.scriptrunner_utils.exceptions import StopException
from streamlit.testing.v1 import AppTest

import ui.live
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
    assert list(frame["Identical pairs"]) == [100, 0, 100, 0]
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


def charts(at: AppTest) -> list[tuple[dict, list[dict]]]:
    """Each Vega-Lite chart on the page: its spec, and its data rows."""
    found = []
    for chart in at.get("vega_lite_chart"):
        rows = pa.ipc.open_stream(chart.proto.datasets[0].data.data).read_all().to_pylist()
        found.append((json.loads(chart.proto.spec), rows))
    return found


def run_a_small_sweep(at: AppTest, seeds: str = "42, none") -> AppTest:
    at.multiselect(key="sweep_temperatures").set_value([0.0, 1.0])
    at.text_input(key="sweep_seeds").set_value(seeds)
    at.number_input(key="sweep_runs").set_value(3)
    return at.button(key="run_sweep").click().run()


def test_the_chart_plots_identical_pairs_which_read_zero_when_every_run_differs(scripted):
    """Regression: the chart plotted the identical rate, 33 % for three runs that all differ (one matches itself)."""
    scripted(by_cell)
    at = run_a_small_sweep(sweep_page())
    assert not at.exception
    [(agreement, rows), (unique, _)] = charts(at)
    assert agreement["encoding"]["y"]["field"] == "pairwise_agreement"
    assert agreement["encoding"]["y"]["scale"]["domain"] == [0, 1]
    assert [(r["series"], r["temperature"], r["pairwise_agreement"]) for r in rows] == [
        ("seed 42", 0.0, 1.0), ("seed 42", 1.0, 1.0), ("no seed", 0.0, 0.0), ("no seed", 1.0, 0.0)]
    assert unique["encoding"]["y"]["field"] == "unique_outputs"


@pytest.mark.parametrize("seeds", ["42, none", "none, 42"])
def test_each_series_has_its_own_fixed_colour_and_the_unseeded_one_is_dashed(scripted, seeds):
    """Regression: the theme coloured the two series, two blues that swapped between light and dark."""
    scripted(by_cell)
    at = run_a_small_sweep(sweep_page(), seeds)
    for spec, _ in charts(at):
        colour, dash = spec["encoding"]["color"]["scale"], spec["encoding"]["strokeDash"]["scale"]
        assert dict(zip(colour["domain"], colour["range"])) == {"seed 42": "#0072B2", "no seed": "#D55E00"}
        assert dict(zip(dash["domain"], dash["range"])) == {"seed 42": [1, 0], "no seed": [6, 4]}


def test_the_charts_are_drawn_while_the_runs_arrive(scripted, monkeypatch):
    """Regression: the charts appeared only once the whole sweep had ended."""
    scripted(by_cell, stagger_s=0.05)  # the runs arrive one by one
    drawn = []
    draw = ui.live.sweep_charts
    monkeypatch.setattr(ui.live, "sweep_charts", lambda summaries: (drawn.append(
        sum(s.successful for s in summaries)), draw(summaries)))
    at = run_a_small_sweep(sweep_page())
    assert not at.exception
    assert drawn[0] == 0 and drawn == sorted(drawn)
    assert any(0 < count < 12 for count in drawn)  # some charts showed a sweep half done
    assert len(charts(at)) == 2  # the live charts gave way to the finished ones


def test_a_click_while_the_sweep_runs_sends_nothing_twice_and_counts_no_quota(scripted, monkeypatch):
    """Regression: the Sweep page sent its requests inside the script run, so a second click stopped the sweep and
    sent it all again, counting the quota twice."""
    backend = scripted(by_cell)
    draw, interrupted = ui.live.sweep_charts, []

    def draw_or_interrupt(summaries):
        if not interrupted:  # the visitor clicks again while the first charts are drawn
            interrupted.append(True)
            raise StopException()
        return draw(summaries)

    monkeypatch.setattr(ui.live, "sweep_charts", draw_or_interrupt)
    monkeypatch.setattr(ui.live, "_visitor_still_here", lambda: True)
    at = run_a_small_sweep(sweep_page())
    at.button(key="run_sweep").click().run()
    assert not at.exception
    assert len(backend.calls) == 12
    assert "this click sent nothing and took nothing from your quota" in plain(at.warning[0].value)
    assert list(at.dataframe[-1].value["Unique"]) == [1, 3, 1, 3]
    assert "588 of 600 requests left this hour" in " ".join(captions(at))


def test_the_runs_needed_planner_is_under_runs_per_cell(scripted):
    scripted(by_cell)
    at = sweep_page()
    at.number_input(key="sweep_runs").set_value(4).run()
    assert ("If all 4 agree: fewer than 52.7 % of requests diverge (95 %). To show fewer than 1 %: 299 runs."
            in captions(at))
