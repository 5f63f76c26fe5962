"""Prompt suites: parsing with errors that name the line and field, extractors, runs against the loopback server and
a scripted backend (TARr@N, TARa@N and accuracy exactly as scripted), and saving a suite run to the history."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from core.analysis.answers import Extractor, answer_of, is_correct
from core.backends import make_backend
from core.errors import InvalidRequest, UnknownExperiment
from core.models import RunError, RunRequest
from core.history.sqlite import SQLiteStore
from core.runner import Fanout
from core.suite import SuitePlan, load_suite, load_suite_run, parse_suite, record_suite, run_suite
from tests.fakeserver import answer_text
from tests.scripted import ScriptedBackend

SUITES = Path(__file__).resolve().parent.parent / "suites"


@pytest.fixture(scope="module")
def fanout():
    with Fanout(None) as fanout:
        yield fanout


def jsonl(*rows: dict) -> str:
    return "\n".join(json.dumps(row) for row in rows)


def test_jsonl_lines_become_prompts_and_blank_lines_are_skipped():
    suite = parse_suite(jsonl({"prompt": "2+2?", "expected": 4, "extractor": "number"}) + "\n\n" +
                        jsonl({"name": "hi", "prompt": "Say hi.", "system": "Be brief."}), "mini.jsonl")
    first, second = suite.prompts
    assert (first.prompt, first.expected, first.extractor, first.system) == ("2+2?", "4", Extractor("number"), "")
    assert (second.name, second.label, second.system, second.expected, second.extractor) == (
        "hi", "hi", "Be brief.", None, None)


def test_csv_rows_become_prompts_and_empty_cells_mean_none():
    suite = parse_suite('\ufeffprompt,expected,extractor\n"Pick, one: A) x B) y",B,choice:A-B\nSay hi.,,\n', "mini.csv",
                        csv_format=True)
    assert [(p.prompt, p.expected, p.extractor) for p in suite.prompts] == [
        ("Pick, one: A) x B) y", "B", Extractor("choice:A-B")), ("Say hi.", None, None)]


@pytest.mark.parametrize("text, message", [
    ('{"prompt": "a"}\n{"prompt": "b",}', "s.jsonl line 2: not a JSON object"),
    ('{"prompt": "a"}\n\n{"promt": "b"}', "s.jsonl line 3: unknown field 'promt'"),
    ('{"expected": "4"}', "s.jsonl line 1: the prompt field is missing"),
    ('{"prompt": "   "}', "s.jsonl line 1: prompt is empty"),
    ('{"prompt": "a", "expected": true}', "s.jsonl line 1: expected must be text"),
    ('{"prompt": "a", "system": ["x"]}', "s.jsonl line 1: system must be text"),
    ('["a"]', "s.jsonl line 1: expected an object with a prompt field"),
    ("[" * 100_000, "s.jsonl line 1: not a JSON object \\(nested too deeply\\)"),
    ('{"prompt": "a", "extractor": "choise:A-E"}', "s.jsonl line 1: extractor 'choise:A-E' is not one of"),
    ('{"prompt": "a", "extractor": "regex:(unclosed"}', "s.jsonl line 1: extractor regex:\\(unclosed is not a valid"),
    ("", "suite s.jsonl: it has no prompts"),
])
def test_jsonl_errors_name_the_line_and_the_field(text, message):
    with pytest.raises(InvalidRequest, match=message):
        parse_suite(text, "s.jsonl")


@pytest.mark.parametrize("text, message", [
    ("question,expected\nhi,1\n", "s.csv line 1: the header must name a prompt column"),
    ("prompt,expected\nhi,1\nthere,1,extra\n", "s.csv line 3: more cells than the header has columns"),
    ("prompt,answer\nhi,1\n", "s.csv line 2: unknown field 'answer'"),
    ("prompt,extractor\nhi,json:\n", "s.csv line 2: extractor 'json:': give a path"),
])
def test_csv_errors_name_the_line_and_the_field(text, message):
    with pytest.raises(InvalidRequest, match=message):
        parse_suite(text, "s.csv", csv_format=True)


def test_files_are_read_by_their_extension(tmp_path):
    (tmp_path / "s.csv").write_text("prompt\nhi\n", encoding="utf-8")
    assert load_suite(tmp_path / "s.csv").prompts[0].prompt == "hi"
    (tmp_path / "s.txt").write_text("hi", encoding="utf-8")
    with pytest.raises(InvalidRequest, match="suite file s.txt: use a .jsonl or .csv file"):
        load_suite(tmp_path / "s.txt")
    with pytest.raises(InvalidRequest, match="does not exist"):
        load_suite(tmp_path / "gone.jsonl")


def test_the_shipped_suites_parse():
    facts, open_ended = load_suite(SUITES / "facts.jsonl"), load_suite(SUITES / "open.jsonl")
    assert len(facts.prompts) == 20 and len(open_ended.prompts) == 10
    assert all(p.expected and p.extractor for p in facts.prompts)
    assert {p.extractor.kind for p in facts.prompts} == {"regex", "number", "choice", "json", "last-line"}
    assert all(p.expected is None for p in open_ended.prompts)
    # Numbers and letters are expected in the form their extractor returns them.
    assert all(p.extractor(p.expected) == p.expected for p in facts.prompts if p.extractor.kind in ("number", "choice"))


@pytest.mark.parametrize("spec, text, answer", [
    ("regex:Answer:\\s*(\\w+)", "Sure. Answer: Paris.", "Paris"),
    ("regex:\\d+", "about 42 or 43", "42"),
    ("json:answer", 'Here: ```json\n{"answer": 8}\n```', "8"),
    ("json:items.1.name", '{"items": [{"name": "a"}, {"name": "b"}]}', "b"),
    ("json:answer", '{"other": 1}', None),
    ("json:answer", "[" * 5000, None),
    ("last-line", "Let me think.\nblue + yellow\n\ngreen  \n", "green"),
    ("number", "17 × 23 = 391.", "391"),
    ("number", "It is 1,024.0 bytes", "1024"),
    ("number", "no digits", None),
    ("choice:A-D", "A red planet? The answer is (B).", "B"),
    ("choice:A-D", "C) Jupiter", "C"),
    ("choice:A-D", "I think Mars, option [B]", "B"),
    ("choice:A-D", "E", None),
])
def test_extractors(spec, text, answer):
    assert answer_of(text, Extractor(spec)) == answer


def test_answers_are_right_ignoring_case_whitespace_and_number_form():
    assert is_correct("391", "391.0", Extractor("number"))
    assert is_correct("B", "b", Extractor("choice:A-D"))
    assert is_correct("New  York", "new york", None)
    assert not is_correct(None, "4", Extractor("number"))
    assert not is_correct("Lyon", "Paris", None)


def test_a_plan_names_the_sampling_value_that_is_wrong_and_caps_the_total():
    with pytest.raises(InvalidRequest, match="temperature 5"):
        SuitePlan(temperature=5)
    with pytest.raises(InvalidRequest, match="runs must be a whole number from 1 to 100"):
        SuitePlan(runs=0)
    two = parse_suite(jsonl({"prompt": "12345678"}, {"prompt": "1234", "system": "12345"}), "two.jsonl")
    assert SuitePlan(runs=3, max_tokens=10).estimate_tokens(two) == 3 * ((2 + 3) + 2 * 10)  # 4 characters a token
    suite = parse_suite(jsonl(*[{"prompt": f"q{k}"} for k in range(21)]), "big.jsonl")
    with pytest.raises(InvalidRequest, match="21 prompts × 100 runs is 2,100 requests; the limit is 2,000"):
        SuitePlan(runs=100).requests(suite)


def test_seeded_suite_on_the_loopback_server_all_prompts_in_parallel(fanout, fake_server, azure_settings):
    fake_server.latency_s = 0.05
    # The loopback server answers a seed and messages with the same words every time; the first is known ahead.
    first_word = answer_text({"seed": 42, "max_tokens": 12,
                              "messages": [{"role": "user", "content": "Tell a story."}]}).split()[0]
    suite = parse_suite(jsonl({"prompt": "Tell a story.", "extractor": "regex:^(\\w+)", "expected": first_word},
                              {"prompt": "Tell another.", "extractor": "regex:^(\\w+)", "expected": "nonsense"},
                              {"prompt": "And one more."}), "seeded.jsonl")
    plan = SuitePlan(runs=3, concurrency=4, temperature=0.7, max_tokens=12, seed=42)
    run = run_suite(fanout, make_backend(azure_settings), suite, plan)
    summary = run.summary()
    assert len(fake_server.received) == 9
    assert fake_server.peak_in_flight == 4  # more than one prompt's 3 runs: the prompts share the cap
    assert [len(results) for results in run.results] == [3, 3, 3]
    assert [[r.index for r in results] for results in run.results] == [[0, 1, 2]] * 3
    assert [(s.tarr, s.tara, s.unique_outputs, s.correct) for s in summary.prompts] == [
        (True, True, 1, 3), (True, True, 1, 0), (True, True, 1, None)]
    assert (summary.tarr.count, summary.tarr.total, summary.tara.count, summary.tara.total) == (3, 3, 3, 3)
    assert [(share.count, share.total) for share in summary.accuracy.per_run] == [(1, 2)] * 3
    assert (summary.accuracy.min.value, summary.accuracy.mean.value, summary.accuracy.max.value) == (0.5, 0.5, 0.5)


def test_unseeded_suite_on_the_loopback_server_differs_raw_but_may_agree_on_answers(fanout, fake_server,
                                                                                   azure_settings):
    suite = parse_suite(jsonl({"prompt": "Tell a story.", "extractor": "regex:\\.$"}, {"prompt": "Tell another."}),
                        "unseeded.jsonl")
    summary = run_suite(fanout, make_backend(azure_settings), suite, SuitePlan(runs=3, temperature=1.0)).summary()
    assert [(s.tarr, s.tara, s.unique_outputs, s.unique_answers) for s in summary.prompts] == [
        (False, True, 3, 1), (False, False, 3, 3)]
    assert (summary.tarr.count, summary.tara.count, summary.tara.total) == (0, 1, 2)
    assert summary.accuracy is None
    assert summary.prompts[0].first_divergence_word is not None


SCRIPT = {  # prompt → the texts of runs 0, 1, 2; the expected answer of every prompt is 4
    "p0": ("4", "The answer is 4.", "4"),
    "p1": ("4", "4", "4"),
    "p2": ("4", "5", "4"),
    "p3": ("4", "5", "5"),
}


def scripted_by_prompt(script: dict[str, tuple[str | RunError, ...]]) -> ScriptedBackend:
    """Run k of a prompt gets script[prompt][k]: calls of one prompt start in run order (no await before them)."""
    calls: Counter[str] = Counter()

    def answer(request: RunRequest, number: int) -> str | RunError:
        k = calls[request.prompt]
        calls[request.prompt] += 1
        return script[request.prompt][k]

    return ScriptedBackend(answer)


def scripted_suite(script: dict) -> tuple:
    suite = parse_suite(jsonl(*[{"prompt": p, "expected": "4", "extractor": "number"} for p in script]), "s.jsonl")
    return suite, scripted_by_prompt(script)


def test_tarr_tara_and_the_accuracy_spread_exactly_as_scripted(fanout):
    suite, backend = scripted_suite(SCRIPT)
    summary = run_suite(fanout, backend, suite, SuitePlan(runs=3)).summary()
    assert [(s.tarr, s.tara, s.correct, s.modal_answer) for s in summary.prompts] == [
        (False, True, 3, "4"), (True, True, 3, "4"), (False, False, 2, "4"), (False, False, 1, "5")]
    assert (summary.tarr.count, summary.tarr.total, summary.tara.count, summary.tara.total) == (1, 4, 2, 4)
    spread = summary.accuracy
    assert [share.value for share in spread.per_run] == [1.0, 0.5, 0.75]
    assert (spread.min.value, spread.mean.value, spread.max.value) == (0.5, 0.75, 1.0)
    assert (spread.mean.count, spread.mean.total) == (9, 12)
    assert summary.describe() == (
        "TARr@3 1/4 = 25.0 % (95 %: 4.6–69.9 %); TARa@3 2/4 = 50.0 % (95 %: 15.0–85.0 %); accuracy across 3 runs: "
        "min 2/4 = 50.0 % (95 %: 15.0–85.0 %), mean 9/12 = 75.0 % (95 %: 46.8–91.1 %), "
        "max 4/4 = 100.0 % (95 %: 51.0–100.0 %)")


def test_a_failed_run_leaves_its_prompt_out_of_tar_and_its_run_out_of_accuracy(fanout):
    suite, backend = scripted_suite({"p0": ("4", RunError("timeout", "too slow"), "4"), "p1": ("4", "4", "5")})
    summary = run_suite(fanout, backend, suite, SuitePlan(runs=3)).summary()
    broken = summary.prompts[0]
    assert (broken.successful, broken.tarr, broken.tara, broken.run_correct) == (2, None, None, (True, None, True))
    assert (summary.tarr.count, summary.tarr.total) == (0, 1)
    assert [(share.count, share.total) for share in summary.accuracy.per_run] == [(2, 2), (1, 1), (1, 2)]


def test_a_suite_run_is_one_history_item_with_a_child_per_prompt(fanout, tmp_path):
    store = SQLiteStore(tmp_path / "history.sqlite3")
    suite, backend = scripted_suite(SCRIPT)
    plan = SuitePlan(runs=3, seed=7)
    recording = record_suite(store, fanout, backend, suite, plan)
    pairs = list(recording)
    assert recording.saved == 12 and recording.save_error is None
    [row] = store.list()
    assert (row.id, row.kind, row.complete, row.runs_planned) == (recording.experiment_id, "suite", True, 12)
    assert row.prompt_preview == "Suite s.jsonl: 4 prompts"
    children = store.children(row.id)
    assert [(c.request.prompt, c.request.seed, c.complete, len(c.runs)) for c in children] == [
        (p, 7, True, 3) for p in SCRIPT]
    loaded = load_suite_run(store, row.id)
    assert loaded.suite == suite and loaded.plan == plan and loaded.backend == backend.info
    assert loaded.summary() == run_suite(fanout, scripted_by_prompt(SCRIPT), suite, plan).summary()
    assert sorted((position, r.index) for position, r in pairs) == [(p, k) for p in range(4) for k in range(3)]
    json.dumps(loaded.to_dict())
    with pytest.raises(UnknownExperiment, match="no suite run"):
        load_suite_run(store, children[0].id)
