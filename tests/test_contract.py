"""The determinism contract: a baseline saved and loaded as JSON, checked again against the loopback server (exit 0
unchanged, 1 after its answers or fingerprint change, 3 when nothing answers) and under each tolerance."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from core.backends import make_backend
from core.contract import (
    DRIFT,
    HOLDS,
    NO_ANSWER,
    Tolerance,
    baseline,
    baseline_from_history,
    check,
    contract_from_json,
    load_contract,
    save_contract,
)
from core.errors import InvalidImport, InvalidRequest, ReproError
from core.history.recorder import record
from core.models import MAX_RUNS, BackendInfo, BatchPlan, RunRequest, RunResult
from core.runner import Fanout
from core.history import Experiment
from core.history.sqlite import SQLiteStore
from core.suite import SuitePlan, parse_suite, record_suite, run_suite
from tests.scripted import ScriptedBackend, texts

REQUEST = RunRequest(prompt="Name a capital.", temperature=0.0, seed=7, max_tokens=12)


@pytest.fixture
def store(tmp_path) -> SQLiteStore:
    return SQLiteStore(tmp_path / "history.sqlite3")


@pytest.fixture(scope="module")
def fanout():
    with Fanout(None) as fanout:
        yield fanout


def recorded(store, fanout, backend, request=REQUEST, runs=5) -> str:
    recording = record(store, fanout, backend, request, BatchPlan(runs, 5))
    list(recording)
    return recording.experiment_id


def experiment(outputs, request=REQUEST, backend=ScriptedBackend(texts("x")).info) -> Experiment:
    runs = tuple(RunResult(index=k, latency_ms=1.0, text=text, system_fingerprint="fp_scripted")
                 for k, text in enumerate(outputs))
    return Experiment("e1", "2026-01-01T00:00:00+00:00", request, backend, len(runs), True, runs)


def kinds(report) -> list[str]:
    return [drift.kind for item in report.items for drift in item.drifts] + [drift.kind for drift in report.drifts]


def test_unchanged_server_holds_and_the_contract_survives_a_file(fanout, fake_server, azure_settings, store, tmp_path):
    backend = make_backend(azure_settings)
    contract = baseline_from_history(store, recorded(store, fanout, backend))
    [item] = contract.items
    assert (item.request, item.runs, item.answered, item.agreeing, item.fingerprints) == (
        REQUEST, 5, 5, 5, ("fp_fake_1",))
    assert contract.tolerance == "exact" and contract.backend == backend.info
    save_contract(contract, tmp_path / "contract.json")
    assert load_contract(tmp_path / "contract.json") == contract
    report = check(fanout, contract, backend)
    assert report.exit_code == HOLDS and kinds(report) == []
    assert report.describe() == ["contract holds: 1 request(s), 5 runs, tolerance exact"]


def test_changed_answers_are_drift(fanout, fake_server, azure_settings, store):
    backend = make_backend(azure_settings)
    fake_server.answers.extend(["Paris is the capital of France."] * 5)
    contract = baseline_from_history(store, recorded(store, fanout, backend))
    fake_server.answers.extend(["Paris is a city in France."] * 3)
    report = check(fanout, contract, backend, runs=3)
    assert report.exit_code == DRIFT
    assert kinds(report) == ["answers", "agreement"]
    answers, agreement = report.items[0].drifts
    assert answers.message == ("the modal answer was 'Paris is the capital of France.', now "
                               "'Paris is a city in France.'; they part at word 3")
    assert agreement.message == "0 of 3 runs agree with the baseline answer (5 of 5 did)"
    assert report.describe()[0] == "contract DRIFT: 1 request(s), 3 runs, tolerance exact"


def test_one_run_that_differs_breaks_a_baseline_that_fully_agreed(fanout, fake_server, azure_settings, store):
    backend = make_backend(azure_settings)
    contract = baseline_from_history(store, recorded(store, fanout, backend))
    fake_server.answers.append("Something else entirely.")
    report = check(fanout, contract, backend)
    assert report.exit_code == DRIFT and kinds(report) == ["agreement"]


def test_a_new_fingerprint_is_drift(fanout, fake_server, azure_settings, store):
    backend = make_backend(azure_settings)
    contract = baseline_from_history(store, recorded(store, fanout, backend))
    fake_server.fingerprint = "fp_fake_2"
    report = check(fanout, contract, backend)
    assert report.exit_code == DRIFT and kinds(report) == ["fingerprint"]
    assert report.items[0].drifts[0].message == "new fingerprint fp_fake_2 (the baseline saw fp_fake_1)"


def test_no_run_succeeding_is_exit_three(fanout, fake_server, azure_settings, store):
    backend = make_backend(azure_settings)
    contract = baseline_from_history(store, recorded(store, fanout, backend))
    fake_server.faults.extend(["401"] * 5)
    report = check(fanout, contract, backend)
    assert report.exit_code == NO_ANSWER
    assert kinds(report) == ["unanswered"]
    assert report.items[0].drifts[0].message.startswith("no run answered: The endpoint refused the credentials")
    assert fake_server.api_key not in json.dumps(report.to_dict())


def test_another_backend_is_drift(fanout):
    contract = baseline(experiment(["Paris."] * 3))
    other = ScriptedBackend(texts("Paris."))
    other.info = BackendInfo("openai", "gpt-other")
    report = check(fanout, contract, other)
    assert report.exit_code == DRIFT and kinds(report) == ["backend"]
    assert report.drifts[0].message == ("the contract was made on compatible scripted-model @ scripted.invalid, "
                                        "this check ran on openai gpt-other")


@pytest.mark.parametrize("tolerance, later, holds", [
    ("exact", "The answer is  Paris.", False),
    ("normalised", "the answer is  PARIS.", True),
    ("normalised", "The answer is Lyon.", False),
    ("similarity>=0.8", "The answer is probably Paris.", True),
    ("similarity>=0.8", "Lyon, I would say, is what it is.", False),
])
def test_each_tolerance_decides_what_still_agrees(fanout, tolerance, later, holds):
    contract = baseline(experiment(["The answer is Paris."] * 3), tolerance)
    report = check(fanout, contract, ScriptedBackend(texts(later)))
    assert report.exit_code == (HOLDS if holds else DRIFT)


def test_the_answer_tolerance_compares_extracted_answers(fanout):
    contract = baseline(experiment(["It is 42.", "42", "It is 42."]), "answer", extractor="number")
    assert contract.items[0].expected == "42" and contract.items[0].agreeing == 3
    assert check(fanout, contract, ScriptedBackend(texts("Forty-two, written 42.0"))).exit_code == HOLDS
    assert check(fanout, contract, ScriptedBackend(texts("It is 41."))).exit_code == DRIFT


def test_a_baseline_that_did_not_agree_drifts_only_on_a_significant_fall(fanout):
    contract = baseline(experiment(["A."] * 9 + ["B."]))
    assert (contract.items[0].agreeing, contract.items[0].answered) == (9, 10)
    small_fall = check(fanout, contract, ScriptedBackend(texts(*["A."] * 8, "B.", "C.")))
    assert small_fall.exit_code == HOLDS  # 8 of 10 against 9 of 10 is chance
    big_fall = check(fanout, contract, ScriptedBackend(texts("A.", "A.", *[f"other {k}." for k in range(8)])))
    assert big_fall.exit_code == DRIFT and kinds(big_fall) == ["agreement"]  # A. is still the modal answer


SCRIPT = {"2+2?": "4", "3+3?": "The answer is 6."}


def test_a_suite_becomes_one_item_per_prompt_and_is_checked_on_answers(fanout, store):
    suite = parse_suite("\n".join(json.dumps({"prompt": p, "extractor": "number"}) for p in SCRIPT), "m.jsonl")
    backend = ScriptedBackend(lambda request, number: SCRIPT[request.prompt])
    plan = SuitePlan(runs=3, seed=1)
    recording = record_suite(store, fanout, backend, suite, plan)
    list(recording)
    contract = baseline_from_history(store, recording.experiment_id, "answer")
    assert baseline(run_suite(fanout, backend, suite, plan), "answer").items == contract.items
    assert [(item.label, item.expected, item.extractor, item.request.seed) for item in contract.items] == [
        ("2+2?", "4", "number", 1), ("3+3?", "6", "number", 1)]
    assert check(fanout, contract, backend).exit_code == HOLDS
    changed = ScriptedBackend(lambda request, number: "6" if request.prompt == "3+3?" else "5")
    report = check(fanout, contract, changed, runs=2)
    assert report.exit_code == DRIFT
    assert [(item.label, [d.kind for d in item.drifts]) for item in report.items] == [
        ("2+2?", ["answers", "agreement"]), ("3+3?", [])]
    assert report.items[0].drifts[0].message == "the modal answer was '4', now '5'"


@pytest.mark.parametrize("edit, message", [
    (lambda d: "not json", "The file is not JSON"),
    (lambda d: d | {"format": "something"}, "contract is not valid: format must be 'repro-lab-contract'"),
    (lambda d: d | {"tolerance": "similar"}, "tolerance 'similar' is not one of exact, normalised, answer"),
    (lambda d: d | {"tolerance": "similarity>=1.5"}, "tolerance 'similarity>=1.5' is not one of"),
    (lambda d: d | {"items": []}, "items is empty"),
    (lambda d: d | {"items": [d["items"][0] | {"runs": 0}]}, r"contract.items\[0\] is not valid: runs must be"),
    (lambda d: d | {"items": [d["items"][0] | {"extractor": "nope"}]}, "extractor 'nope' is not one of"),
    (lambda d: d | {"items": [d["items"][0] | {"colour": 1}]}, r"contract.items\[0\] has an unknown field 'colour'"),
    (lambda d: d | {"items": [d["items"][0] | {"request": {"prompt": "x", "temperature": 9}}]},
     r"contract.items\[0\].request is not valid: temperature 9.0 is outside"),
    (lambda d: d | {"tolerance": "answer"}, r"items\[0\].extractor is missing; the answer tolerance needs one"),
])
def test_a_contract_file_that_does_not_validate_says_what_is_wrong(edit, message):
    document = json.loads(baseline(experiment(["Paris."] * 2)).to_json())
    edited = edit(document)
    with pytest.raises(InvalidImport, match=message):
        contract_from_json(edited if isinstance(edited, str) else json.dumps(edited))


def test_bad_input_raises_the_errors_the_command_line_turns_into_exit_two(fanout, tmp_path):
    with pytest.raises(InvalidRequest, match="contract file .*missing.json cannot be read"):
        load_contract(tmp_path / "missing.json")
    with pytest.raises(InvalidRequest, match="the answer tolerance needs an extractor"):
        baseline(experiment(["Paris."]), "answer")
    with pytest.raises(InvalidRequest, match="no successful run"):
        baseline(replace(experiment(["x"]), runs=()))
    with pytest.raises(InvalidRequest, match="A sweep cannot be a baseline as a whole"):
        baseline(replace(experiment(["x"]), kind="sweep"))
    for runs in (0, MAX_RUNS + 1):
        with pytest.raises(InvalidRequest, match=f"runs must be a whole number from 1 to {MAX_RUNS}"):
            check(fanout, baseline(experiment(["x"])), ScriptedBackend(texts("x")), runs=runs)
    assert issubclass(InvalidImport, ReproError) and issubclass(InvalidRequest, ReproError)


def test_tolerances_read_and_write_back():
    written = ("exact", "normalized", "answer", "similarity>=0.90", "similarity >= 1")
    assert [str(Tolerance.parse(t)) for t in written] == ["exact", "normalised", "answer", "similarity>=0.9",
                                                          "similarity>=1"]
    with pytest.raises(InvalidRequest, match="tolerance 'similarity>=0'"):
        Tolerance.parse("similarity>=0")
