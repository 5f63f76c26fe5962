"""Statistics over batches: bounds against known values, agreement, the runs-needed planner, Fisher's exact test."""

from __future__ import annotations

import json

import pytest

from core.analysis.statistics import (
    BatchStatistics,
    batch_statistics,
    compare_batches,
    contrast,
    describe_runs_needed,
    divergence,
    pairwise_agreement,
    runs_needed,
    upper_bound,
    wilson,
)
from core.analysis.compare import compare
from core.errors import InvalidRequest
from core.models import RunError, RunResult


def ok(index: int, text: str) -> RunResult:
    return RunResult(index=index, latency_ms=1.0, text=text)


def failed(index: int) -> RunResult:
    return RunResult.failed(index, 1.0, RunError("timeout", "too slow"))


def batch(*texts: str) -> BatchStatistics:
    return batch_statistics(compare([ok(k, text) for k, text in enumerate(texts)]))


def test_zero_of_fifty_has_the_exact_one_sided_upper_bound():
    share = upper_bound(50)
    assert (share.count, share.total, share.low, share.method) == (0, 50, 0.0, "exact one-sided")
    assert share.high == pytest.approx(0.0582, abs=5e-5)
    assert 1 - (1 - share.high) ** 50 == pytest.approx(0.95)  # the definition of the exact bound at 0 of n


def test_wilson_interval_for_48_of_60():
    share = wilson(48, 60)
    assert share.value == 0.8
    assert (round(share.low, 3), round(share.high, 3)) == (0.682, 0.882)
    assert share.method == "wilson"


def test_divergence_uses_the_bound_when_none_diverged_and_wilson_otherwise():
    assert divergence(0, 50) == upper_bound(50)
    assert divergence(48, 60) == wilson(48, 60)


def test_runs_needed_for_one_percent_is_299():
    assert runs_needed(0.01) == 299
    assert upper_bound(299).high < 0.01 <= upper_bound(298).high
    assert runs_needed(0.05) == 59
    assert runs_needed(0.01, confidence=0.99) == 459
    assert describe_runs_needed(0.01) == ("299 runs, all identical, show with 95 % confidence that fewer than "
                                          "1 % of requests diverge; one differing run and the claim needs more.")


@pytest.mark.parametrize("below", [0, 1, -0.1, 1.5, "0.01", True, float("nan")])
def test_runs_needed_refuses_a_share_outside_zero_to_one(below):
    with pytest.raises(InvalidRequest, match="below must be a number between 0 and 1"):
        runs_needed(below)


def test_pairwise_agreement_counts_identical_pairs():
    assert pairwise_agreement([1, 1, 1, 1]) == 0
    assert pairwise_agreement([4]) == 1
    assert pairwise_agreement([3, 2]) == pytest.approx(4 / 10)  # 3 pairs inside the 3, 1 inside the 2, of 10
    assert pairwise_agreement([1]) is None


def test_batch_statistics_of_an_identical_batch():
    stats = batch(*["same"] * 50)
    assert (stats.runs, stats.successful, stats.identical, stats.diverged, stats.unique_outputs) == (50, 50, 50, 0, 1)
    assert stats.pairwise_agreement == 1
    assert stats.describe() == "0 of 50 diverged → at most 5.8 % of requests diverge (95 %)"


def test_batch_statistics_of_a_mixed_batch_with_a_failed_run():
    results = [ok(k, "a" if k < 12 else f"other {k}") for k in range(60)] + [failed(60)]
    stats = batch_statistics(compare(results))
    assert (stats.runs, stats.successful, stats.identical, stats.diverged) == (61, 60, 12, 48)
    assert stats.divergence == wilson(48, 60)
    assert stats.pairwise_agreement == pytest.approx(66 / 1770)
    assert stats.describe() == "48 of 60 diverged → 68.2–88.2 % of requests diverge (95 %)"


def test_from_a_summary_alone_everything_but_the_pairwise_agreement():
    comparison = compare([ok(0, "a"), ok(1, "a"), ok(2, "b")])
    from_summary = batch_statistics(comparison.summary)
    assert from_summary.pairwise_agreement is None
    assert from_summary.divergence == batch_statistics(comparison).divergence == wilson(1, 3)


def test_below_two_runs_there_is_no_verdict():
    stats = batch_statistics(compare([ok(0, "a"), failed(1)]))
    assert stats.divergence is None and stats.pairwise_agreement is None
    assert stats.describe() == "one successful run: nothing to compare it with"


def test_to_dict_is_json_with_the_sentence():
    data = json.loads(json.dumps(batch("x", "x", "y").to_dict()))
    assert data["divergence"]["count"] == 1 and data["divergence"]["total"] == 3
    assert data["divergence"]["method"] == "wilson"
    assert data["description"] == "1 of 3 diverged → 6.1–79.2 % of requests diverge (95 %)"


def test_fisher_statement_for_seed_against_no_seed():
    seeded, unseeded = batch(*["same"] * 5), batch(*[f"story {k}" for k in range(5)])
    result = compare_batches(seeded, unseeded, "seed 42", "no seed")
    assert result.p_value == pytest.approx(1 / 42)
    assert result.statement() == "seed 42: 5/5 identical vs no seed: 1/5; p = 0.024, Fisher's exact test (one-sided)"
    both_ways = compare_batches(seeded, unseeded, "seed 42", "no seed", alternative="two-sided")
    assert both_ways.p_value == pytest.approx(2 / 42)
    assert both_ways.statement().endswith("p = 0.048, Fisher's exact test (two-sided)")


def test_fisher_says_p_below_a_thousandth_and_refuses_an_empty_batch():
    assert contrast("a", 50, 50, "b", 1, 50).statement().endswith("p < 0.001, Fisher's exact test (one-sided)")
    with pytest.raises(InvalidRequest, match="b: no successful runs"):
        contrast("a", 5, 5, "b", 0, 0)
