"""The History page with AppTest: runs are kept, reopened by link, re-run with drift, exported and deleted."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from core.models import BackendInfo, RunRequest, RunResult
from core.history import HistoryLocation, open_store
from tests.apptest import APP, app, captions, html, plain
from tests.scripted import texts
from tests.test_import_hostile import CORPUS, HOSTILE

pytestmark = pytest.mark.usefixtures("app_environment")


@pytest.fixture
def history(tmp_path):
    return open_store(HistoryLocation(sqlite_path=str(tmp_path / "history.sqlite3")))


def open_history(experiment_id: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("pages/history.py")
    if experiment_id:
        at.query_params["experiment"] = experiment_id
    at.run()
    assert not at.exception
    return at


def test_a_run_is_saved_and_listed(scripted, history):
    scripted(texts("The red panda slept.", "The red panda ate."))
    at = app()
    at.slider(key="runs").set_value(3)
    at.button(key="run").click().run()
    [row] = history.list()
    assert (row.runs_done, row.runs_planned, row.unique_outputs, row.seed, row.complete) == (3, 3, 2, 42, True)
    assert any(f"Saved to the history as `{row.id}`" in c for c in captions(at))
    listing = open_history()
    frame = listing.dataframe[0].value
    assert list(frame["Runs"]) == ["3/3"] and list(frame["Unique"]) == ["2/3"]
    assert list(frame["Prompt"]) == ["Create a story about red panda."]


def test_a_link_opens_one_experiment_with_the_results_view(scripted, history):
    scripted(texts("x"))
    request = RunRequest(prompt="Why is the sky blue?", temperature=0.7, seed=7)
    experiment_id = history.create(request, BackendInfo("azure", "gpt-test", "res.openai.azure.com", "2024-06-01"), 3)
    for index, text in enumerate(("Rayleigh scattering.", "Rayleigh scattering.", "Scattering of light.")):
        history.add_run(experiment_id, RunResult(index=index, latency_ms=10.0, text=text, system_fingerprint="fp_a"))
    at = open_history(experiment_id)
    described = plain(at.markdown[0].value)
    assert "azure gpt-test @ res.openai.azure.com (2024-06-01)" in described
    assert "temperature 0.7 · seed 7" in described and "3/3 runs · **incomplete**" in described
    assert html(at).count('class="rl-card"') == 3
    assert {m.label: m.value for m in at.metric}["Unique outputs"] == "2 / 3"
    assert [b.label for b in at.get("download_button")] == ["JSON", "CSV"]


def test_an_unknown_link_says_so(scripted):
    scripted(texts("x"))
    at = open_history("does-not-exist")
    assert "There is no experiment does-not-exist in the history" in plain(at.error[0].value)


def test_rerun_now_repeats_the_request_and_reports_drift(scripted, history):
    backend = scripted(texts("Same words."), fingerprints=("fp_old",))
    at = app()
    at.slider(key="runs").set_value(3)
    at.button(key="run").click().run()
    [original] = history.list()
    backend.fingerprints = ("fp_new",)
    backend.answer = texts("Other words.")
    at = open_history(original.id)
    at.button(key="history_rerun").click().run()
    assert not at.exception
    rerun = next(row for row in history.list() if row.rerun_of == original.id)
    assert len(backend.calls) == 6
    assert {r.seed for r in backend.calls} == {42}
    at = open_history(rerun.id)
    assert "Fingerprint changed fp_old → fp_new" in plain(at.warning[0].value)
    assert "Runs whose text the original never produced: run 1, run 2, run 3" in [plain(c.value) for c in at.caption]


def test_an_identical_rerun_is_good_news(scripted, history):
    scripted(texts("Same words."))
    app().button(key="run").click().run()
    [original] = history.list()
    at = open_history(original.id)
    at.button(key="history_rerun").click().run()
    rerun = next(row for row in history.list() if row.rerun_of == original.id)
    at = open_history(rerun.id)
    assert plain(at.success[0].value) == "Same outputs, same fingerprint: no drift."


def test_delete_removes_it(scripted, history):
    scripted(texts("x"))
    app().button(key="run").click().run()
    [row] = history.list()
    at = open_history(row.id)
    at.button(key="history_delete").click().run()
    assert history.list() == []
    assert "experiment" not in at.query_params


def test_an_empty_history_says_what_to_do(scripted):
    scripted(texts("x"))
    at = open_history()
    assert "Nothing here yet" in plain(at.info[0].value)


def test_a_crafted_link_or_import_cannot_put_links_or_images_on_the_page(scripted, history):
    scripted(texts("x"))
    at = open_history("x` [Sign in again](https://evil.example) `")
    assert "](https://evil.example)" not in at.error[0].value
    assert "[Sign in again](https://evil.example)" in plain(at.error[0].value)  # shown, as inert text
    hostile = "[click](https://evil.example) ![](https://evil.example/t.png)"
    experiment_id = history.create(RunRequest(prompt="p"), BackendInfo("compatible", hostile, "h"), 1)
    at = open_history(experiment_id)
    assert "](https://evil.example" not in at.markdown[0].value
    assert hostile in plain(at.markdown[0].value)


REFUSED = {
    "nan-latency.json": (HOSTILE / "nan-latency.json").read_bytes(),
    "lone-surrogate-text.json": (HOSTILE / "lone-surrogate-text.json").read_bytes(),
    "token-count-2-63.json": (HOSTILE / "token-count-2-63.json").read_bytes(),
    "deep.json": b'{"format": "repro-lab-experiment", "version": 1, "experiment": ' + b"[" * 100_000 + b"}",
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_a_hostile_import_is_refused_in_words_and_saves_nothing(scripted, history, name):
    scripted(texts("x"))
    at = open_history()
    at.file_uploader(key="history_import").set_value((name, REFUSED[name], "application/json")).run()
    assert not at.exception
    [error] = at.error
    expected = CORPUS.get(name, "The file nests lists and objects 100,001 deep; an export nests at most 64.")
    assert plain(error.value).startswith(f"Not imported: {expected}")
    assert history.list() == []
    assert "experiment" not in at.query_params


def test_a_valid_import_opens_the_imported_experiment(scripted, history):
    scripted(texts("x"))
    at = open_history()
    at.file_uploader(key="history_import").set_value(("valid.json", (HOSTILE / "valid.json").read_bytes(),
                                                      "application/json")).run()
    assert not at.exception
    [row] = history.list()
    assert at.query_params["experiment"] == row.id and (row.runs_done, row.runs_planned) == (1, 2)
