"""The Suite page with AppTest and a scripted backend: a shipped or uploaded suite, its cost before sending, every
prompt's runs at once, the scores per prompt and overall, one history item with a child per prompt; a bad line in an
uploaded file, or a suite over the limits, sends nothing."""

from __future__ import annotations

import json
import re
from html import unescape
from types import SimpleNamespace
from collections import Counter

import pytest
from streamlit.testing.v1 import AppTest

from core import BackendInfo, RunError, RunResult, Suite, SuitePlan, SuiteRun
from core.analysis.scores import summarize_suite
from core.history import HistoryLocation, open_store
from core.suite import SuitePrompt
from tests.apptest import APP, captions, plain
from tests.test_app_probe import probed_reasoning_server  # noqa: F401 - a fixture: a probe that rejects temperature
from ui.live import JOB
from ui.suites import verdict_html
from ui.verdict import STALE_LABEL

pytestmark = pytest.mark.usefixtures("app_environment")

SUMS = {"2+2?": ("4", "4", "4"), "1+3?": ("4", "The answer is 4.", "4"), "5-1?": ("4", "5", "5")}


def suite_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("pages/suite.py").run()
    assert not at.exception
    return at


def upload(at: AppTest, name: str, lines: list[str]) -> AppTest:
    at.radio(key="suite_source").set_value("upload").run()
    at.file_uploader(key="suite_upload").set_value((name, "\n".join(lines).encode(), "application/jsonl")).run()
    return at


def sums_file() -> list[str]:
    return [json.dumps({"prompt": prompt, "expected": "4", "extractor": "number"}) for prompt in SUMS]


def sums_answers():
    """Each prompt's answers in turn: the k-th call of a prompt gets its k-th answer (whichever run it is)."""
    calls = Counter()

    def answer(request, number) -> str:
        calls[request.prompt] += 1
        answers = SUMS[request.prompt]
        return answers[(calls[request.prompt] - 1) % len(answers)]

    return answer


def open_answers(request, number) -> str:
    """The haiku differs on every call; every other prompt gets the same words each time."""
    return f"Leaves fall, take {number}." if "haiku" in request.prompt else f"The same words for: {request.prompt}"


def verdict(at: AppTest) -> tuple[str, list[str]]:
    """The suite verdict's tone and its texts in order, as the visitor reads them."""
    [block] = [h.value for h in at.html if "data-suite-verdict" in h.value]
    texts = [unescape(text) for text in re.findall(r">([^<>]+)<", block)]
    return re.search(r'class="rl-verdict (rl-v-\w+)"', block)[1], texts


def store(tmp_path):
    return open_store(HistoryLocation(sqlite_path=str(tmp_path / "history.sqlite3")))


def test_a_shipped_suite_shows_its_cost_then_a_row_per_prompt_and_the_verdict(scripted):
    backend = scripted(open_answers)
    at = suite_page()
    at.selectbox(key="suite_shipped").set_value("open.jsonl")
    at.number_input(key="suite_runs").set_value(3)
    at.text_input(key="suite_seed").set_value("7").run()
    [cost] = [c for c in captions(at) if c.startswith("This suite: ")]
    assert backend.calls == []

    at.button(key="run_suite").click().run()
    assert not at.exception
    assert len(backend.calls) == 30
    [(seed, temperature, max_tokens)] = {(r.seed, r.temperature, r.max_tokens) for r in backend.calls}
    assert (seed, temperature) == (7, 0.0)
    assert cost == (f"This suite: 10 prompts × 3 runs = 30 requests, at most {30 * max_tokens:,} completion tokens · "
                    "600 of 600 requests left this hour")
    frame = at.dataframe[-1].value
    assert list(frame["#"]) == list(range(1, 11))
    assert list(frame["Prompt"])[:2] == ["red-panda", "haiku"]
    assert list(frame["Outputs"])[:3] == [1, 3, 1]
    assert list(frame["TARr"]) == ["yes", "no"] + ["yes"] * 8
    assert list(frame["First divergence"].isna()) == [True, False] + [True] * 8
    tone, texts = verdict(at)
    assert tone == "rl-v-split"
    assert texts == ["TARr@3 90% · TARa@3 90%",  # the line a room reads; Wilson 95 % intervals of 9/10 below
                     "TARr@3: prompts whose outputs are all identical (95% interval)", "9 of 10 · 59.6–98.2%",
                     "TARa@3: prompts whose answers are all identical (95% interval)", "9 of 10 · 59.6–98.2%",
                     "accuracy", "n/a: no prompt has an expected answer",
                     "OpenAI-compatible server · scripted-model · T 0 · top_p 1 · seed 7 · N 3 per prompt · "
                     "open.jsonl: 10 prompts"]


def test_an_uploaded_suite_is_scored_against_its_expected_answers(scripted):
    backend = scripted(sums_answers())
    at = upload(suite_page(), "sums.jsonl", sums_file())
    at.number_input(key="suite_runs").set_value(3)
    at.number_input(key="suite_temperature").set_value(0.5)
    at.text_input(key="suite_seed").set_value("none").run()
    at.button(key="run_suite").click().run()
    assert not at.exception
    assert {(r.seed, r.temperature) for r in backend.calls} == {(None, 0.5)}
    frame = at.dataframe[-1].value
    assert list(frame["TARr"]) == ["yes", "no", "no"]
    assert list(frame["TARa"]) == ["yes", "yes", "no"]
    assert list(frame["Accuracy"]) == [100, 100, 33]
    assert list(frame["Modal answer"]) == ["4", "4", "5"]
    tone, texts = verdict(at)
    assert texts[0] == "TARr@3 33% · TARa@3 67% · accuracy 78%"
    assert texts[1:-1] == ["TARr@3: prompts whose outputs are all identical (95% interval)", "1 of 3 · 6.1–79.2%",
                           "TARa@3: prompts whose answers are all identical (95% interval)", "2 of 3 · 20.8–93.9%",
                           "accuracy, worst run (95% interval)", "2/3 = 67% · 20.8–93.9%",
                           "accuracy, all 3 runs (95% interval)", "7/9 = 78% · 45.3–93.7%",
                           "accuracy, best run (95% interval)", "3/3 = 100% · 43.9–100.0%"]


def test_a_prompt_with_a_failed_run_has_no_verdict_of_its_own(scripted):
    answers = sums_answers()
    scripted(lambda request, number: RunError("timeout", "too slow") if number == 0 else answers(request, number))
    at = upload(suite_page(), "sums.jsonl", sums_file()[:1])
    at.number_input(key="suite_runs").set_value(2).run()
    at.button(key="run_suite").click().run()
    frame = at.dataframe[-1].value
    assert (list(frame["Runs ok"]), list(frame["TARr"]), list(frame["TARa"])) == ([1], ["–"], ["–"])
    assert verdict(at)[1][0] == "TARr@2 n/a · TARa@2 n/a · accuracy 100%"


def test_a_suite_run_is_one_history_item_with_a_child_per_prompt(scripted, tmp_path):
    scripted(sums_answers())
    at = upload(suite_page(), "sums.jsonl", sums_file())
    at.number_input(key="suite_runs").set_value(2).run()
    at.button(key="run_suite").click().run()
    [item] = store(tmp_path).list()
    assert (item.kind, item.runs_planned) == ("suite", 6)
    children = store(tmp_path).children(item.id)
    assert sorted(child.meta["prompt"] for child in children) == [0, 1, 2]
    assert all(len(child.runs) == 2 for child in children)
    assert f"Saved to the history as `{item.id}`" in " ".join(captions(at))


def test_a_click_while_a_job_runs_sends_nothing_and_takes_no_quota(scripted):
    backend = scripted(open_answers)
    at = suite_page()
    # What ui.live keeps while a batch started on this page is on its way.
    at.session_state[JOB] = SimpleNamespace(key="experiment", page="Suite", relay=SimpleNamespace(cancel=lambda: None))
    at.button(key="run_suite").click().run()
    assert not at.exception
    assert "this click sent nothing" in plain(at.warning[0].value)
    assert backend.calls == []
    assert any(c.endswith("600 of 600 requests left this hour") for c in captions(at))


def test_results_made_with_other_settings_are_marked_stale(scripted):
    scripted(open_answers)
    at = suite_page()
    at.selectbox(key="suite_shipped").set_value("open.jsonl")
    at.number_input(key="suite_runs").set_value(2).run()
    at.button(key="run_suite").click().run()
    assert not any(STALE_LABEL in h.value for h in at.html)
    at.text_input(key="suite_seed").set_value("none").run()
    assert any(STALE_LABEL in h.value for h in at.html)
    at.text_input(key="suite_seed").set_value("42").run()
    assert not any(STALE_LABEL in h.value for h in at.html)


@pytest.mark.parametrize("line, reason", [
    ('{"prompt": "3+3?", "answer": "6"}', "bad.jsonl line 2: unknown field 'answer'"),
    ('{"system": "Be brief."}', "bad.jsonl line 2: the prompt field is missing."),
    ('{"prompt": "3+3?", "extractor": "digits"}', "bad.jsonl line 2: extractor 'digits' is not one of"),
    ('{"prompt": "3+3?"', "bad.jsonl line 2: not a JSON object"),
])
def test_a_bad_line_in_an_uploaded_suite_is_named_and_nothing_is_sent(scripted, tmp_path, line, reason):
    backend = scripted(sums_answers())
    at = upload(suite_page(), "bad.jsonl", [sums_file()[0], line, sums_file()[1]])
    assert not at.exception
    [error] = at.error
    assert plain(error.value).startswith(f"Nothing can be sent: {reason}")
    assert not [b for b in at.button if b.key == "run_suite"]
    assert backend.calls == [] and store(tmp_path).list() == []


def test_a_csv_suite_with_an_extra_cell_is_named_by_line(scripted):
    scripted(sums_answers())
    at = upload(suite_page(), "bad.csv", ["prompt,expected", "2+2?,4", "3+3?,6,extra"])
    assert plain(at.error[0].value) == ("Nothing can be sent: bad.csv line 3: more cells than the header has columns; "
                                        "quote cells that hold commas.")


def test_a_file_that_is_not_utf8_is_refused(scripted):
    scripted(sums_answers())
    at = suite_page()
    at.radio(key="suite_source").set_value("upload").run()
    at.file_uploader(key="suite_upload").set_value(("latin.csv", b"prompt\nCaf\xe9?\n", "text/csv")).run()
    assert plain(at.error[0].value) == ("Nothing can be sent: latin.csv: byte 11 is not UTF-8 text; "
                                        "save the file as UTF-8.")


def test_a_suite_over_the_request_limit_sends_nothing_and_takes_no_quota(scripted, monkeypatch):
    backend = scripted(open_answers)
    monkeypatch.setenv("REPRO_MAX_SWEEP_REQUESTS", "20")
    at = suite_page()
    at.selectbox(key="suite_shipped").set_value("open.jsonl")
    at.number_input(key="suite_runs").set_value(3).run()
    at.button(key="run_suite").click().run()
    assert plain(at.error[0].value) == (
        "Nothing was sent: 10 prompts × 3 runs is 30 requests, over this instance's limit of 20 "
        "(REPRO_MAX_SWEEP_REQUESTS). Lower the runs per prompt or split the suite.")
    assert backend.calls == []
    assert "600 of 600 requests left this hour" in " ".join(captions(at))


def test_a_prompt_over_the_length_limit_is_named(scripted, monkeypatch):
    backend = scripted(sums_answers())
    monkeypatch.setenv("REPRO_MAX_PROMPT_CHARS", "10")
    at = upload(suite_page(), "long.jsonl", sums_file() + [json.dumps({"name": "essay", "prompt": "Write at length."})])
    at.button(key="run_suite").click().run()
    assert plain(at.error[0].value) == ("Nothing was sent: prompt 'essay': The prompt has 16 characters; this instance "
                                        "allows 10 (REPRO_MAX_PROMPT_CHARS). Shorten it.")
    assert backend.calls == []


def test_a_large_suite_asks_for_confirmation_first(scripted, monkeypatch):
    backend = scripted(open_answers)
    monkeypatch.setenv("REPRO_CONFIRM_ABOVE", "10")
    at = suite_page()
    assert at.button(key="run_suite").disabled
    at.checkbox(key="suite_confirm").check().run()
    assert not at.button(key="run_suite").disabled
    assert backend.calls == []


def test_a_bad_seed_is_named(scripted):
    scripted(open_answers)
    at = suite_page()
    at.text_input(key="suite_seed").set_value("forty").run()
    assert plain(at.error[0].value) == "Nothing can be sent yet: seed must be a whole number or 'none', got 'forty'."
    assert not [b for b in at.button if b.key == "run_suite"]


def test_the_suite_name_is_escaped_in_the_verdict():
    suite = Suite('<img src=x onerror="alert(1)">.jsonl', (SuitePrompt("2+2?"),))
    runs = tuple(RunResult(index=k, latency_ms=1.0, text="4") for k in range(2))
    block = verdict_html(SuiteRun(suite, SuitePlan(runs=2), BackendInfo("azure", "gpt-test"), (runs,)),
                         summarize_suite(suite.prompts, (runs,), 2))
    assert "<img" not in block and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;.jsonl: 1 prompt" in block


def test_the_runs_needed_planner_is_under_runs_per_prompt(scripted):
    scripted(open_answers)
    at = suite_page()
    at.number_input(key="suite_runs").set_value(3).run()
    assert ("If all 3 agree: fewer than 63.2 % of requests diverge (95 %). To show fewer than 1 %: 299 runs."
            in captions(at))


def test_a_temperature_the_endpoint_rejects_is_disabled_with_the_reason_and_sent_as_it_accepts(
        probed_reasoning_server):
    at = suite_page()
    temperature = at.number_input(key="suite_temperature")
    assert temperature.disabled and temperature.value == 1.0
    reason = "This endpoint rejects temperature (found by the probe): The server rejected the request (400)"
    assert plain(temperature.help).startswith(reason)
    assert any(c.startswith(reason) for c in captions(at))
    assert not at.text_input(key="suite_seed").disabled  # the seed was accepted
    at.number_input(key="suite_runs").set_value(2).run()
    at.button(key="run_suite").click().run()
    assert not at.exception
    bodies = [r.body for r in probed_reasoning_server.received]
    assert len(bodies) == 2 * 20 and {b.get("temperature", 1) for b in bodies} == {1}  # 20 prompts, twice
