"""Sweeps against a scripted backend (plan checks, cells, one shared cap, exact summaries and chart rows), and once
over HTTP against the loopback server."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter

import pytest

from core.backends import make_backend
from core.errors import InvalidRequest
from core.models import MAX_RUNS, BackendInfo, Completion, RunError, RunRequest, RunResult
from core.runner import Fanout
from core.sweep import (
    MAX_SWEEP_REQUESTS,
    Cell,
    CellSummary,
    SweepPlan,
    SweepResult,
    chart_rows,
    parse_seeds,
    parse_temperatures,
    run_sweep,
    stream_sweep,
    summarize_sweep,
)
from tests.scripted import ScriptedBackend

BASE = RunRequest(prompt="Create a story about red panda.", system="You always produce 3-sentence answers.",
                  max_tokens=100)
FAILED = RunError("server", "The server failed (500).", 500)


@pytest.fixture(scope="module")
def fanout():
    with Fanout(None) as fanout:
        yield fanout


# What each cell's 1st, 2nd and 3rd call answers, whichever run index the runner gives it.
SCRIPT = {
    (0.0, 42): ["The panda slept."] * 3,
    (0.0, None): ["The panda slept."] * 3,
    (0.7, 42): ["The panda slept.", "The panda slept.", "The panda ate bamboo."],
    (0.7, None): ["The panda slept.", "The panda ate.", "A panda ate."],
    (1.5, 42): [FAILED, "The panda slept.", FAILED],
    (1.5, None): ["One.", "Two.", "Three."],
}


def scripted() -> ScriptedBackend:
    calls: Counter = Counter()

    def answer(request: RunRequest, number: int) -> str | RunError:
        key = (request.temperature, request.seed)
        calls[key] += 1
        return SCRIPT[key][calls[key] - 1]

    return ScriptedBackend(answer)


def ok(index: int, text: str) -> RunResult:
    return RunResult(index=index, latency_ms=10.0, text=text)


class SlowBackend:
    """Answers after `delay_s`, counting requests started and the most in flight at once."""

    max_concurrency = None
    info = BackendInfo("compatible", "slow-model", "slow.invalid")

    def __init__(self, delay_s: float = 0.05):
        self.delay_s = delay_s
        self.started = 0
        self.in_flight = 0
        self.peak = 0

    async def complete(self, request: RunRequest) -> Completion:
        self.started += 1
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(self.delay_s)
        finally:
            self.in_flight -= 1
        return Completion(text=f"T={request.temperature} seed={request.seed}")


# The plan


def test_plan_counts_requests_and_normalises_temperatures():
    plan = SweepPlan([-0.0, 0.7, 1.5], [42, None], runs=3, concurrency=4)
    assert plan.temperatures == (0.0, 0.7, 1.5)
    assert plan.cells(BASE)[0].label == "T=0 · seed 42"
    assert plan.seeds == (42, None)
    assert plan.total_requests == 18
    assert plan.to_dict() == {"temperatures": (0.0, 0.7, 1.5), "seeds": (42, None), "runs": 3, "concurrency": 4}


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"temperatures": ()}, r"^temperatures is empty"),
    ({"seeds": []}, r"^seeds is empty"),
    ({"temperatures": "0,1"}, r"^temperatures must be a list"),
    ({"temperatures": (0, 0.5, 0.0)}, r"^temperatures: 0\.0 appears more than once"),
    ({"seeds": (None, 1, None)}, r"^seeds: none appears more than once"),  # as the visitor writes it
    ({"seeds": (7, None, 7, None)}, r"^seeds: 7, none each appear more than once"),
    ({"temperatures": (0, 2.5)}, r"^temperatures: 2\.5 is outside 0–2"),
    ({"temperatures": (-0.1,)}, r"^temperatures: -0\.1 is outside 0–2"),
    ({"temperatures": (float("nan"),)}, r"^temperatures: nan is outside 0–2"),
    ({"temperatures": (True,)}, r"^temperatures: True is outside 0–2"),
    ({"seeds": (2**63,)}, r"^seeds: 9223372036854775808 is outside the signed 64-bit range"),
    ({"seeds": (-(2**63) - 1,)}, r"^seeds: -9223372036854775809 is outside"),
    ({"seeds": (4.2,)}, r"^seeds: 4\.2 is not a whole number"),
    ({"runs": 0}, rf"^runs must be a whole number from 1 to {MAX_RUNS}, got 0"),
    ({"runs": MAX_RUNS + 1}, rf"^runs must be a whole number from 1 to {MAX_RUNS}, got {MAX_RUNS + 1}"),
    ({"concurrency": 0}, rf"^concurrency must be a whole number from 1 to {MAX_RUNS}"),
    ({"temperatures": tuple(k / 10 for k in range(21)), "seeds": (None, 1), "runs": 48},
     r"^total requests: 21 temperatures × 2 seeds × 48 runs is 2,016 requests; the limit is 2,000"),
])
def test_plan_names_the_wrong_field(kwargs, message):
    with pytest.raises(InvalidRequest, match=message):
        SweepPlan(**{"temperatures": (0.0,), "seeds": (None,), "runs": 5, "concurrency": 10, **kwargs})


def test_plan_accepts_the_extremes():
    plan = SweepPlan(tuple(k / 10 for k in range(20)), (None,), runs=100)
    assert plan.total_requests == MAX_SWEEP_REQUESTS
    assert SweepPlan((0, 2), (-(2**63), 2**63 - 1), runs=1).total_requests == 4


def test_cells_are_temperature_by_seed_with_labels():
    cells = SweepPlan((0, 0.7), (42, None), runs=2).cells(BASE)
    assert [(c.temperature, c.seed, c.label) for c in cells] == [
        (0.0, 42, "T=0 · seed 42"), (0.0, None, "T=0 · no seed"),
        (0.7, 42, "T=0.7 · seed 42"), (0.7, None, "T=0.7 · no seed"),
    ]
    assert cells[2].request == RunRequest(prompt=BASE.prompt, system=BASE.system, max_tokens=100,
                                          temperature=0.7, seed=42)


def test_token_estimate_is_prompt_characters_over_four_plus_max_tokens_per_request():
    # (38 + 31) characters → 18 tokens (rounded up), + 100 max_tokens, × 18 requests
    assert SweepPlan((0, 0.7, 1.5), (42, None), runs=3).estimate_tokens(BASE) == 18 * 118


def test_parsing_the_command_line_lists():
    assert parse_temperatures("0, 0.7,1.2,") == (0.0, 0.7, 1.2)
    assert parse_seeds("42, none,OFF,-7") == (42, None, None, -7)
    with pytest.raises(InvalidRequest, match=r"^temperatures: 'warm' is not a number"):
        parse_temperatures("0,warm")
    with pytest.raises(InvalidRequest, match=r"^seeds: '4.2' is not a whole number or 'none'"):
        parse_seeds("4.2")


# Running


def test_every_cell_gets_its_runs_indexed_from_zero(fanout):
    backend = scripted()
    plan = SweepPlan((0, 0.7, 1.5), (42, None), runs=3, concurrency=5)
    pairs = list(stream_sweep(fanout, backend, BASE, plan))
    assert len(pairs) == len(backend.calls) == 18
    by_cell: dict[Cell, list[int]] = {}
    for cell, result in pairs:
        by_cell.setdefault(cell, []).append(result.index)
        assert result.ok == (result.text is not None)
    assert list(map(sorted, by_cell.values())) == [[0, 1, 2]] * 6
    assert Counter((r.temperature, r.seed) for r in backend.calls) == {key: 3 for key in SCRIPT}


def test_cells_share_one_concurrency_cap(fanout):
    backend = SlowBackend(delay_s=0.2)
    plan = SweepPlan((0, 0.5, 1), (1, None), runs=2, concurrency=4)
    started = time.perf_counter()
    pairs = list(stream_sweep(fanout, backend, BASE, plan))
    elapsed = time.perf_counter() - started
    assert len(pairs) == 12
    assert backend.peak == 4
    assert elapsed < 12 * 0.2  # 3 waves of 4 (0.6 s), not one request after another
    assert all(result.text == f"T={cell.temperature} seed={cell.seed}" for cell, result in pairs)


def test_closing_a_sweep_early_cancels_the_runs_not_yet_started(fanout):
    backend = SlowBackend(delay_s=0.05)
    sweep = stream_sweep(fanout, backend, BASE, SweepPlan((0, 0.5, 1), (1, None), runs=5, concurrency=2))
    next(sweep)
    sweep.close()
    time.sleep(0.3)
    assert backend.started < 10


def test_summaries_are_exact_per_cell(fanout):
    result = run_sweep(fanout, scripted(), BASE, SweepPlan((0, 0.7, 1.5), (42, None), runs=3, concurrency=3))
    summaries = result.summaries()
    assert [s.label for s in summaries] == ["T=0 · seed 42", "T=0 · no seed", "T=0.7 · seed 42", "T=0.7 · no seed",
                                           "T=1.5 · seed 42", "T=1.5 · no seed"]
    rows = [(s.runs, s.successful, s.unique_outputs, s.identical_rate, s.first_divergence_word) for s in summaries]
    assert rows == [
        (3, 3, 1, 1.0, None),
        (3, 3, 1, 1.0, None),
        (3, 3, 2, 2 / 3, 2),
        (3, 3, 3, 1 / 3, 0),
        (3, 1, 1, None, None),
        (3, 3, 3, 1 / 3, 0),
    ]
    # Indel similarity of token lists: slept/slept 1, slept/"ate bamboo." 4/7 twice; slept/ate 4/6, …
    assert [s.mean_similarity for s in summaries] == pytest.approx([1.0, 1.0, 5 / 7, 5 / 9, None, 0.0])


def test_chart_rows_are_one_line_per_seed_ordered_by_temperature(fanout):
    result = run_sweep(fanout, scripted(), BASE, SweepPlan((0.7, 0, 1.5), (42, None), runs=3))
    assert chart_rows(result.summaries()) == [
        {"temperature": 0.0, "series": "seed 42", "pairwise_agreement": 1.0, "identical_rate": 1.0, "unique_outputs": 1, "successful": 3,
         "label": "T=0 · seed 42"},
        {"temperature": 0.7, "series": "seed 42", "pairwise_agreement": 1 / 3, "identical_rate": 2 / 3, "unique_outputs": 2, "successful": 3,
         "label": "T=0.7 · seed 42"},
        {"temperature": 1.5, "series": "seed 42", "pairwise_agreement": None, "identical_rate": None, "unique_outputs": 1, "successful": 1,
         "label": "T=1.5 · seed 42"},
        {"temperature": 0.0, "series": "no seed", "pairwise_agreement": 1.0, "identical_rate": 1.0, "unique_outputs": 1, "successful": 3,
         "label": "T=0 · no seed"},
        {"temperature": 0.7, "series": "no seed", "pairwise_agreement": 0.0, "identical_rate": 1 / 3, "unique_outputs": 3, "successful": 3,
         "label": "T=0.7 · no seed"},
        {"temperature": 1.5, "series": "no seed", "pairwise_agreement": 0.0, "identical_rate": 1 / 3, "unique_outputs": 3, "successful": 3,
         "label": "T=1.5 · no seed"},
    ]


def test_a_cell_with_no_successful_run_charts_nothing():
    [cell] = SweepPlan((1.0,), (7,), runs=2).cells(BASE)
    failed = [RunResult.failed(k, 5.0, FAILED) for k in range(2)]
    [summary] = summarize_sweep({cell: failed})
    assert summary == CellSummary(temperature=1.0, seed=7, label="T=1 · seed 7", runs=2, successful=0,
                                  unique_outputs=0, identical_rate=None, first_divergence_word=None,
                                  mean_similarity=None)
    assert chart_rows([summary]) == [{"temperature": 1.0, "series": "seed 7", "pairwise_agreement": None, "identical_rate": None,
                                      "unique_outputs": None, "successful": 0, "label": "T=1 · seed 7"}]


def test_summaries_keep_the_mapping_order_and_reuse_compare():
    plan = SweepPlan((0.3,), (None, 5), runs=2)
    unseeded, seeded = plan.cells(BASE)
    summaries = summarize_sweep({seeded: [ok(0, "a b c"), ok(1, "a b d")], unseeded: [ok(1, "x"), ok(0, "x")]})
    assert [(s.label, s.identical_rate, s.first_divergence_word) for s in summaries] == [
        ("T=0.3 · seed 5", 0.5, 2), ("T=0.3 · no seed", 1.0, None)]


def test_a_sweep_result_is_one_json_item(fanout):
    plan = SweepPlan((0, 0.7, 1.5), (42, None), runs=3)
    seen: list[str] = []
    result = run_sweep(fanout, scripted(), BASE, plan, on_result=lambda cell, run: seen.append(cell.label))
    assert len(seen) == 18
    assert [len(runs) for _, runs in result.cells] == [3] * 6
    assert all([r.index for r in runs] == [0, 1, 2] for _, runs in result.cells)
    data = json.loads(json.dumps(result.to_dict()))
    assert data["request"]["prompt"] == BASE.prompt
    assert data["plan"] == {"temperatures": [0.0, 0.7, 1.5], "seeds": [42, None], "runs": 3, "concurrency": 10}
    assert [c["label"] for c in data["cells"]] == [s["label"] for s in data["summaries"]]
    assert data["cells"][4]["runs"][0]["error"] == {"kind": "server", "message": "The server failed (500).",
                                                    "status": 500}
    assert "raw" not in data["cells"][0]["runs"][0]


def test_collect_keeps_cells_without_results():
    plan = SweepPlan((0, 1), (None,), runs=2)
    first, _ = plan.cells(BASE)
    result = SweepResult.collect(BASE, plan, [(first, ok(1, "b")), (first, ok(0, "a"))])
    assert [(cell.label, [r.text for r in runs]) for cell, runs in result.cells] == [
        ("T=0 · no seed", ["a", "b"]), ("T=1 · no seed", [])]


def test_a_sweep_over_http_sends_each_cell_its_temperature_and_seed(fanout, fake_server, azure_settings):
    fake_server.latency_s = 0.05
    plan = SweepPlan((0, 1.2), (42, None), runs=3, concurrency=3)
    result = run_sweep(fanout, make_backend(azure_settings), BASE, plan)
    bodies = Counter((r.body["temperature"], r.body.get("seed", "absent")) for r in fake_server.received)
    assert bodies == {(0, 42): 3, (0, "absent"): 3, (1.2, 42): 3, (1.2, "absent"): 3}
    assert fake_server.peak_in_flight == 3
    assert [(s.label, s.successful, s.unique_outputs) for s in result.summaries()] == [
        ("T=0 · seed 42", 3, 1), ("T=0 · no seed", 3, 3), ("T=1.2 · seed 42", 3, 1), ("T=1.2 · no seed", 3, 3)]
