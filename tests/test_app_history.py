"""The History page with AppTest: runs are kept, reopened by link, re-run with drift, exported and deleted."""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter

import pytest
from streamlit.runtime.scriptrunner_utils.exceptions import StopException
from streamlit.testing.v1 import AppTest

import ui.live
from core import Fanout, ProbePlan, ProbeReport, SuitePlan, parse_suite, record_suite, run_probe, save_probe
from core.models import BackendInfo, RunRequest, RunResult
from core.history import HistoryLocation, open_store
from tests.apptest import APP, app, captions, html, plain
from tests.scripted import ScriptedBackend, texts
from tests.test_app_probe import reasoning_model
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
    at = app("pages/experiment.py")
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
    assert re.findall(r'data-runs="([^"]*)"', html(at)) == ["0 1", "2"]  # all three runs, stacked by group
    assert "2 of 3 agree; run 3 parts at word 1" in html(at)  # the verdict of the results view
    assert [b.label for b in at.get("download_button")] == ["JSON", "CSV"]


def test_an_unknown_link_says_so(scripted):
    scripted(texts("x"))
    at = open_history("does-not-exist")
    assert "There is no experiment does-not-exist in the history" in plain(at.error[0].value)


def test_rerun_now_repeats_the_request_and_reports_drift(scripted, history):
    backend = scripted(texts("Same words."), fingerprints=("fp_old",))
    at = app("pages/experiment.py")
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
    assert [plain(c.value) for c in at.caption].count("3 of 3 identical — reproducible") == 2  # both sides
    assert ("Re-run: 3/3 identical vs Original: 3/3; p = 1.000, Fisher's exact test (two-sided): not beyond chance "
            "at these N.") in [plain(c.value) for c in at.caption]


def test_an_identical_rerun_is_good_news(scripted, history):
    scripted(texts("Same words."))
    app("pages/experiment.py").button(key="run").click().run()
    [original] = history.list()
    at = open_history(original.id)
    at.button(key="history_rerun").click().run()
    rerun = next(row for row in history.list() if row.rerun_of == original.id)
    at = open_history(rerun.id)
    assert plain(at.success[0].value) == "Same outputs, same fingerprint: no drift."


def test_delete_removes_it(scripted, history):
    scripted(texts("x"))
    app("pages/experiment.py").button(key="run").click().run()
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


COLOUR = RunRequest(prompt="Name a colour.", seed=42)


def saved(history, backend: BackendInfo, *texts: str, request: RunRequest = COLOUR) -> str:
    """An experiment kept in the history as if `backend` had answered `request` with these texts."""
    experiment_id = history.create(request, backend, len(texts))
    for index, text in enumerate(texts):
        history.add_run(experiment_id, RunResult(index=index, latency_ms=10.0, text=text, system_fingerprint="fp_a"))
    history.finish(experiment_id)
    return experiment_id


SCRIPTED = BackendInfo("compatible", "scripted-model", "scripted.invalid")
EMBEDDED = BackendInfo("local", "SmolLM2-360M-Instruct", mode="deterministic")


def test_the_rerun_button_names_the_backend_it_will_use(scripted, history):
    """Regression: "Re-run now" did not say where the requests would go."""
    backend = scripted(texts("Blue."))
    at = open_history(saved(history, SCRIPTED, "Blue.", "Blue."))
    assert plain(at.button(key="history_rerun").label) == "Re-run on OpenAI-compatible server (scripted-model)"
    assert not at.button(key="history_rerun").disabled
    assert not [box for box in at.checkbox if box.key == "history_rerun_confirm"]  # same backend: nothing to confirm
    assert backend.calls == []


def test_a_rerun_on_another_backend_asks_first_and_sends_nothing_before(azure, history):
    """Regression: re-running an embedded-model experiment sent paid requests to Azure without a word."""
    original = saved(history, EMBEDDED, "Blue.", "Blue.", "Blue.")
    at = open_history(original)
    assert plain(at.button(key="history_rerun").label) == f"Re-run on Azure OpenAI ({azure.deployment})"
    warning = plain(at.main.warning[0].value)
    assert "The original ran on local SmolLM2-360M-Instruct [deterministic]" in warning
    assert "It is a paid backend" in warning
    assert at.button(key="history_rerun").disabled
    at.checkbox(key="history_rerun_confirm").check().run()
    assert not at.button(key="history_rerun").disabled
    assert azure.received == []  # nothing leaves before the click
    at.button(key="history_rerun").click().run()
    assert not at.exception
    assert len(azure.received) == 3
    assert [row.rerun_of for row in history.list() if row.rerun_of] == [original]


def test_the_drift_view_diffs_the_modal_answers_escaped(scripted, history):
    """Regression: the drift view said the most common answer moved but showed no text diff."""
    original = saved(history, SCRIPTED, "The sky is <b>blue</b> today.", "The sky is <b>blue</b> today.")
    scripted(texts("The sky is grey today."))
    at = open_history(original)
    at.button(key="history_rerun").click().run()
    rerun = next(row for row in history.list() if row.rerun_of == original)
    at = open_history(rerun.id)
    page = html(at)
    drift_diff = page[page.index("The original&#x27;s most common answer"):]
    left = drift_diff.split('data-side="left">')[1].split("</div>")[0]
    right = drift_diff.split('data-side="right">')[1].split("</div>")[0]
    assert "The re-run&#x27;s most common answer" in drift_diff
    assert left.startswith("The sky is ") and "&lt;b&gt;blue&lt;/b&gt;" in left and "<b>" not in left
    assert right.startswith("The sky is ") and "grey" in right and "today." in right


def test_no_diff_when_the_modal_answer_held(scripted, history):
    original = saved(history, SCRIPTED, "Blue.", "Blue.")
    scripted(texts("Blue."))
    at = open_history(original)
    at.button(key="history_rerun").click().run()
    rerun = next(row for row in history.list() if row.rerun_of == original)
    assert "most common answer" not in html(open_history(rerun.id))


def test_the_share_link_is_offered_with_a_copy_button(scripted, history):
    scripted(texts("x"))
    experiment_id = saved(history, SCRIPTED, "Blue.")
    at = open_history(experiment_id)
    assert f"history?experiment={experiment_id}" in [code.value for code in at.code]  # st.code: a copy button


def test_a_click_while_the_rerun_runs_sends_nothing_twice(scripted, history, monkeypatch):
    """Regression: the re-run was sent inside the script run, so a second click stopped it and sent it again."""
    backend = scripted(texts("Blue."))
    original = saved(history, SCRIPTED, "Blue.", "Blue.", "Blue.")
    draw, interrupted = ui.live.run_card, []

    def card_or_interruption(*args, **kwargs):
        if not interrupted:  # the visitor clicks again as the first card is drawn
            interrupted.append(True)
            raise StopException()
        return draw(*args, **kwargs)

    monkeypatch.setattr(ui.live, "run_card", card_or_interruption)
    monkeypatch.setattr(ui.live, "_visitor_still_here", lambda: True)
    at = open_history(original)
    at.button(key="history_rerun").click().run()
    at.button(key="history_rerun").click().run()
    assert not at.exception
    assert len(backend.calls) == 3
    [rerun] = [row for row in history.list() if row.rerun_of == original]
    assert at.query_params["experiment"] == rerun.id  # the followed re-run opened once it was in


SUMS = {"2+2?": ("4", "4", "4"), "1+3?": ("4", "The answer is 4.", "4"), "5-1?": ("4", "5", "5")}


def sums():
    """Each prompt's answers in turn: the k-th call of a prompt gets its k-th answer, whichever run it is."""
    calls = Counter()

    def answer(request: RunRequest, number: int) -> str:
        calls[request.prompt] += 1
        return SUMS[request.prompt][(calls[request.prompt] - 1) % 3]

    return answer


def saved_suite(history) -> str:
    """A suite of three sums, 3 runs each, answered and kept as the Suite page keeps one; the page's backend is
    another, so what it receives afterwards is only what the History page sent."""
    suite = parse_suite("\n".join(json.dumps({"prompt": p, "expected": "4", "extractor": "number"}) for p in SUMS),
                        "sums.jsonl")
    with Fanout(None) as fanout:
        recording = record_suite(history, fanout, ScriptedBackend(sums()), suite, SuitePlan(runs=3, seed=42))
        list(recording)
    return recording.experiment_id


def suite_verdict(at: AppTest) -> str:
    [block] = [h.value for h in at.html if "data-suite-verdict" in h.value]
    return re.search(r'class="rl-v-sentence">([^<]*)<', block)[1]


def test_a_saved_suite_opens_with_a_row_per_prompt_and_its_verdict_sending_nothing(scripted, history):
    """Regression: a suite item opened as a batch with no runs."""
    backend = scripted(sums())
    suite_id = saved_suite(history)
    at = open_history(suite_id)
    assert plain(at.markdown[0].value).endswith("· suite sums.jsonl · 3 prompts × 3 runs")
    frame = at.dataframe[-1].value
    assert list(frame["Prompt"]) == list(SUMS)
    assert (list(frame["TARr"]), list(frame["Accuracy"])) == (["yes", "no", "no"], [100, 100, 33])
    assert suite_verdict(at) == "TARr@3 33% · TARa@3 67% · accuracy 78%"
    assert [b.label for b in at.get("download_button")] == ["JSON"]  # the whole suite run, its prompts included
    assert backend.calls == []


def test_the_list_shows_a_suite_as_one_row_whose_runs_live_in_its_prompts(scripted, history):
    scripted(sums())
    saved_suite(history)
    frame = open_history().dataframe[0].value
    assert list(frame["Prompt"]) == ["Suite sums.jsonl: 3 prompts"]
    assert (list(frame["Runs"]), list(frame["Seed"]), list(frame["Status"])) == (
        ["9 in prompts"], ["42"], ["suite · complete"])


def test_rerunning_a_suite_sends_every_prompt_again_not_its_heading(scripted, history):
    """Regression: the batch re-run sent the heading "Suite sums.jsonl: 3 prompts" as a prompt 9 times."""
    backend = scripted(sums())
    suite_id = saved_suite(history)
    at = open_history(suite_id)
    at.button(key="history_rerun").click().run()
    assert not at.exception
    assert Counter(r.prompt for r in backend.calls) == {prompt: 3 for prompt in SUMS}
    assert {(r.seed, r.temperature) for r in backend.calls} == {(42, 0.0)}
    [again] = [row.id for row in history.list() if row.kind == "suite" and row.id != suite_id]
    assert at.query_params["experiment"] == again
    assert [len(child.runs) for child in history.children(again)] == [3, 3, 3]
    assert suite_verdict(open_history(again)) == "TARr@3 33% · TARa@3 67% · accuracy 78%"


def test_a_suite_rerun_over_the_request_limit_is_refused_and_sends_nothing(scripted, history, monkeypatch):
    backend = scripted(sums())
    suite_id = saved_suite(history)
    monkeypatch.setenv("REPRO_MAX_SWEEP_REQUESTS", "5")
    at = open_history(suite_id)
    at.button(key="history_rerun").click().run()
    assert not at.exception
    assert plain(at.error[0].value).startswith("Nothing was sent: 3 prompts × 3 runs is 9 requests, over this "
                                               "instance's limit of 5 (REPRO_MAX_SWEEP_REQUESTS).")
    assert backend.calls == []
    assert [row.id for row in history.list()] == [suite_id]


def test_a_prompt_of_a_suite_opens_as_a_batch_with_the_way_back(scripted, history):
    backend = scripted(sums())
    suite_id = saved_suite(history)
    child = next(c for c in history.children(suite_id) if c.meta["prompt"] == 2)
    at = open_history(child.id)
    assert f"5-1?: one prompt of the suite `{suite_id}`." in captions(at)
    assert "3/3 runs" in plain(at.markdown[0].value)
    assert "2 of 3 agree" in html(at)  # the batch results view of its three runs
    at.button(key="history_rerun").click().run()
    assert [r.prompt for r in backend.calls] == ["5-1?"] * 3  # a prompt re-runs as the batch it is
    at = open_history(child.id)
    at.button(key="history_parent").click().run()
    assert at.query_params["experiment"] == suite_id


def saved_probe(history) -> tuple[str, ProbeReport]:
    """A small probe of a reasoning model, kept as the Probe page keeps one; the page's backend is another, so what it
    receives afterwards is only what the History page sent."""
    plan = ProbePlan(runs=2, ladder=(0, 2), max_tokens=8, fresh_prompts=1, warm_repeats=2, nonce=7)
    probe = asyncio.run(run_probe(ScriptedBackend(reasoning_model), plan))
    return save_probe(history, probe), probe.report


def test_a_saved_probe_opens_with_its_report_card_sending_nothing(scripted, history):
    """Regression: a probe item opened as an experiment with "0/25" runs and a batch Re-run of its last step."""
    backend = scripted(texts("x"))
    probe_id, report = saved_probe(history)
    steps = history.children(probe_id)
    at = open_history(probe_id)
    assert plain(at.markdown[0].value).endswith(f"· probe · compatible scripted-model @ scripted.invalid · "
                                                f"{len(steps)} steps")
    assert "seed honoured · rejects temperature" in report.summary()
    assert [plain(s.value) for s in at.success] == [f"### {report.summary()}"]  # the verdict line, large
    card = at.dataframe[0].value
    assert [list(row) for row in card.itertuples(index=False)] == [list(row) for row in report.rows()]
    assert list(at.dataframe[1].value["Step"]) == [step.meta["label"] for step in steps]
    assert not [b for b in at.button if b.key == "history_rerun"]
    [link] = at.get("page_link")
    assert (link.proto.label, link.proto.page.endswith("probe")) == ("Probe again", True)
    assert [b.label for b in at.get("download_button")] == ["JSON", "Report card as JSON", "Report card as Markdown"]
    assert backend.calls == []


def test_the_list_shows_a_probe_as_one_row_whose_runs_live_in_its_steps(scripted, history):
    scripted(texts("x"))
    probe_id, _ = saved_probe(history)
    runs = sum(len(step.runs) for step in history.children(probe_id))
    frame = open_history().dataframe[0].value
    assert (list(frame["Prompt"]), list(frame["Runs"]), list(frame["Status"])) == (
        ["Probe: parameters, seed, cold vs warm, load"], [f"{runs} in steps"], ["probe · complete"])


def test_a_step_of_a_probe_opens_as_a_batch_with_the_way_back(scripted, history):
    backend = scripted(texts("x"))
    probe_id, _ = saved_probe(history)
    step = next(s for s in history.children(probe_id) if s.meta["label"] == "parameter temperature")
    at = open_history(step.id)
    assert f"parameter temperature: one step of the probe `{probe_id}`." in captions(at)
    assert "1/1 runs" in plain(at.markdown[0].value)
    at.button(key="history_rerun").click().run()
    assert not at.exception
    assert [(r.prompt, r.temperature) for r in backend.calls] == [(step.request.prompt, step.request.temperature)]
    at = open_history(step.id)
    at.button(key="history_parent").click().run()
    assert at.query_params["experiment"] == probe_id


def test_a_probe_whose_report_cannot_be_read_says_so_and_can_be_deleted(scripted, history):
    scripted(texts("x"))
    probe_id = history.create(RunRequest(prompt="p"), SCRIPTED, 0, kind="probe", meta={"report": {"backend": 1}})
    at = open_history(probe_id)
    assert plain(at.error[0].value).startswith(f"The probe {probe_id!r} in the history cannot be read:")
    at.button(key="history_delete").click().run()
    assert history.list() == []


def compare_choice(at: AppTest, experiment_id: str):
    return at.selectbox(key=f"history_compare_{experiment_id}")


def verdict_titles(at: AppTest) -> list[str]:
    return re.findall(r'class="rl-v-title">([^<]*)<', html(at))


def test_a_batch_compared_with_another_from_the_history_gets_fishers_line_and_both_verdicts(scripted, history):
    backend = scripted(texts("x"))
    steady = saved(history, SCRIPTED, *["Blue."] * 10)
    scattered = saved(history, SCRIPTED, *[f"Colour {i}." for i in range(10)])
    at = open_history(steady)
    choice = compare_choice(at, steady)
    when = history.get(scattered).created_at[:19].replace("T", " ")
    assert choice.value is None and choice.options == [f"{when} · Name a colour. · N 10 · seed 42 · T 0.1"]
    assert verdict_titles(at) == [] and not [c for c in captions(at) if "Fisher" in c]  # nothing before B is chosen
    choice.set_value(scattered).run()
    assert not at.exception
    assert ("A: 10/10 identical vs B: 1/10; p < 0.001, Fisher's exact test (two-sided): more than chance explains."
            in captions(at))
    assert [title.split(" · ")[0] for title in verdict_titles(at)] == ["A", "B"]
    assert verdict_titles(at)[1] == f"B · {when}"
    assert not at.main.info  # the same request: no note
    assert backend.calls == []


def test_comparing_with_a_different_request_says_which_fields_differ(scripted, history):
    scripted(texts("x"))
    steady = saved(history, SCRIPTED, *["Blue."] * 10)
    other = saved(history, EMBEDDED, *["Red."] * 9, "Green.", request=RunRequest("Name a fruit.", seed=None))
    at = open_history(steady)
    compare_choice(at, steady).set_value(other).run()
    assert not at.exception
    assert [plain(i.value) for i in at.main.info] == [
        "A and B are not the same request: they differ in prompt, seed and backend, and that alone can explain "
        "different outputs."]
    assert ("A: 10/10 identical vs B: 9/10; p = 1.000, Fisher's exact test (two-sided): not beyond chance at these N."
            in captions(at))


def test_a_lone_batch_offers_nothing_to_compare_with(scripted, history):
    scripted(texts("x"))
    alone = saved(history, SCRIPTED, "Blue.", "Blue.")
    at = open_history(alone)
    assert not [box for box in at.selectbox if box.key == f"history_compare_{alone}"]
