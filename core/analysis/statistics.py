"""How much a batch proves: the divergence probability per request with a 95 % interval, pairwise agreement, how many
runs a claim needs, and two batches compared with Fisher's exact test.

Every distribution comes from scipy.stats; this module only says which test answers which question.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from scipy.stats import binomtest, fisher_exact

from core.analysis.compare import Comparison, Summary
from core.errors import InvalidRequest
from core.models import is_number

CONFIDENCE = 0.95
Method = Literal["exact one-sided", "wilson"]
Alternative = Literal["greater", "less", "two-sided"]


def _percent(value: float) -> str:
    return f"{value * 100:.1f} %"


def _check_share(name: str, value: Any) -> None:
    if not is_number(value) or not 0 < value < 1:
        raise InvalidRequest(f"{name} must be a number between 0 and 1 (0.01 is 1 %), got {value!r}.")


@dataclass(frozen=True)
class Proportion:
    """`count` of `total`, with an interval that holds the true share at `confidence`."""

    count: int
    total: int
    low: float
    high: float
    method: Method
    confidence: float = CONFIDENCE

    @property
    def value(self) -> float:
        return self.count / self.total

    def describe(self) -> str:
        """"12/20 = 60.0 % (95 %: 38.7–78.1 %)"."""
        return (f"{self.count}/{self.total} = {_percent(self.value)} "
                f"({self.confidence * 100:g} %: {self.low * 100:.1f}–{_percent(self.high)})")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"value": self.value}


def wilson(count: int, total: int, confidence: float = CONFIDENCE) -> Proportion:
    """The share count/total with a two-sided Wilson score interval."""
    interval = binomtest(count, total).proportion_ci(confidence, method="wilson")
    return Proportion(count, total, float(interval.low), float(interval.high), "wilson", confidence)


def upper_bound(total: int, confidence: float = CONFIDENCE) -> Proportion:
    """0 of `total`: the exact (Clopper–Pearson) one-sided upper bound, the rule of three made exact."""
    interval = binomtest(0, total, alternative="less").proportion_ci(confidence, method="exact")
    return Proportion(0, total, 0.0, float(interval.high), "exact one-sided", confidence)


def divergence(diverged: int, total: int, confidence: float = CONFIDENCE) -> Proportion:
    """The chance that one more request diverges: an upper bound when none did, else a Wilson interval."""
    return upper_bound(total, confidence) if diverged == 0 else wilson(diverged, total, confidence)


def pairwise_agreement(group_sizes: Sequence[int]) -> float | None:
    """The share of pairs of runs whose outputs are identical; None below two runs."""
    runs = sum(group_sizes)
    if runs < 2:
        return None
    return sum(math.comb(size, 2) for size in group_sizes) / math.comb(runs, 2)


def runs_needed(below: float, confidence: float = CONFIDENCE) -> int:
    """Identical runs in a row that show, at `confidence`, that fewer than `below` of requests diverge."""
    _check_share("below", below)
    _check_share("confidence", confidence)
    # The exact bound after 0 of n is 1 - (1 - confidence)^(1/n); solved for n.
    return math.ceil(math.log(1 - confidence) / math.log1p(-below))


def describe_runs_needed(below: float, confidence: float = CONFIDENCE) -> str:
    runs = runs_needed(below, confidence)
    return (f"{runs} runs, all identical, show with {confidence * 100:g} % confidence that fewer than "
            f"{below * 100:g} % of requests diverge; one differing run and the claim needs more.")


@dataclass(frozen=True)
class BatchStatistics:
    """What one batch proves; what compares runs is None below two successful runs, and `note` says why."""

    runs: int
    successful: int
    identical: int
    """Runs in the largest group of byte-identical outputs (the modal answer)."""
    diverged: int
    """Successful runs whose output differs from the modal answer."""
    unique_outputs: int
    divergence: Proportion | None
    """diverged of successful, with its interval: the chance that one more request diverges."""
    pairwise_agreement: float | None
    """Share of pairs of runs with identical outputs; None from a Summary alone, which has no group sizes."""
    note: str | None = None

    def describe(self) -> str:
        """One sentence: "0 of 50 diverged → at most 5.8 % of requests diverge (95 %)"."""
        if self.divergence is None:
            return self.note or "nothing to compare"
        share = self.divergence
        level = f"({share.confidence * 100:g} %)"
        if share.count == 0:
            return f"0 of {share.total} diverged → at most {_percent(share.high)} of requests diverge {level}"
        return (f"{share.count} of {share.total} diverged → {share.low * 100:.1f}–{_percent(share.high)} "
                f"of requests diverge {level}")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["divergence"] = self.divergence.to_dict() if self.divergence else None
        return data | {"description": self.describe()}


def batch_statistics(source: Comparison | Summary, confidence: float = CONFIDENCE) -> BatchStatistics:
    """The statistics of a compared batch; a Summary alone gives all but the pairwise agreement."""
    summary = source.summary if isinstance(source, Comparison) else source
    compared = summary.successful >= 2
    diverged = summary.successful - summary.modal_count
    sizes = [group.count for group in source.groups] if isinstance(source, Comparison) else None
    return BatchStatistics(
        runs=summary.runs,
        successful=summary.successful,
        identical=summary.modal_count,
        diverged=diverged,
        unique_outputs=summary.unique_outputs,
        divergence=divergence(diverged, summary.successful, confidence) if compared else None,
        pairwise_agreement=pairwise_agreement(sizes) if compared and sizes is not None else None,
        note=summary.note,
    )


@dataclass(frozen=True)
class BatchContrast:
    """Two batches' identical counts compared with Fisher's exact test."""

    label_a: str
    identical_a: int
    successful_a: int
    label_b: str
    identical_b: int
    successful_b: int
    p_value: float
    alternative: Alternative
    """"greater": is batch a more often identical than batch b? "two-sided": do they differ either way?"""

    def statement(self) -> str:
        """"seed 42: 5/5 identical vs no seed: 1/5; p = 0.024, Fisher's exact test (one-sided)"."""
        p = "p < 0.001" if self.p_value < 0.001 else f"p = {self.p_value:.3f}"
        sides = "two-sided" if self.alternative == "two-sided" else "one-sided"
        return (f"{self.label_a}: {self.identical_a}/{self.successful_a} identical vs {self.label_b}: "
                f"{self.identical_b}/{self.successful_b}; {p}, Fisher's exact test ({sides})")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"statement": self.statement()}


def contrast(label_a: str, identical_a: int, successful_a: int, label_b: str, identical_b: int, successful_b: int,
             alternative: Alternative = "greater") -> BatchContrast:
    """Fisher's exact test on the 2×2 table of identical and other runs of batches a and b."""
    for label, successful in ((label_a, successful_a), (label_b, successful_b)):
        if successful == 0:
            raise InvalidRequest(f"{label}: no successful runs, so there is nothing to compare.")
    table = [[identical_a, successful_a - identical_a], [identical_b, successful_b - identical_b]]
    p_value = float(fisher_exact(table, alternative=alternative).pvalue)
    return BatchContrast(label_a, identical_a, successful_a, label_b, identical_b, successful_b, p_value, alternative)


def compare_batches(a: BatchStatistics, b: BatchStatistics, label_a: str, label_b: str,
                    alternative: Alternative = "greater") -> BatchContrast:
    """Two batches' identical counts (runs with their modal answer) compared with Fisher's exact test."""
    return contrast(label_a, a.identical, a.successful, label_b, b.identical, b.successful, alternative)
