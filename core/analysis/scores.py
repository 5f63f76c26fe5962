"""A suite run scored as Atil et al. score one: per prompt whether all N raw outputs (TARr) and all N extracted
answers (TARa) agree and how often the answer is right; over the suite TARr@N, TARa@N and accuracy run by run.

Pure functions of the results. A prompt counts towards TARr@N and TARa@N only when all N of its runs succeeded;
a failed run counts towards no accuracy.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from core.analysis.answers import Extractor, answer_of, is_correct
from core.analysis.compare import compare
from core.analysis.statistics import BatchStatistics, Proportion, batch_statistics, wilson
from core.models import RunResult


class Scorable(Protocol):
    """What scoring needs of a suite's prompt (core.suite.SuitePrompt)."""

    label: str
    expected: str | None
    extractor: Extractor | None


@dataclass(frozen=True)
class PromptScore:
    """One prompt's N runs; what needs all N runs is None when some failed or never arrived."""

    position: int
    label: str
    successful: int
    unique_outputs: int
    unique_answers: int
    """Distinct extracted answers among the successful runs (an answer not found counts as one)."""
    tarr: bool | None
    """All N raw outputs byte-identical."""
    tara: bool | None
    """All N extracted answers found and identical."""
    modal_answer: str | None
    expected: str | None
    correct: int | None
    """Successful runs whose answer is the expected one; None without an expected answer."""
    run_correct: tuple[bool | None, ...]
    """For run k of N: whether its answer is right; None when it failed, never arrived or nothing is expected."""
    first_divergence_word: int | None
    statistics: BatchStatistics

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.successful if self.correct is not None and self.successful else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"accuracy": self.accuracy, "statistics": self.statistics.to_dict()}


def score_prompt(position: int, prompt: Scorable, results: Sequence[RunResult], runs: int) -> PromptScore:
    comparison = compare(results)
    ok = [result for result in results if result.ok]
    answers = {result.index: answer_of(result.text, prompt.extractor) for result in ok}
    found = Counter(answer for answer in answers.values() if answer is not None)
    complete = len(ok) == runs
    verdicts = ({index: is_correct(answer, prompt.expected, prompt.extractor) for index, answer in answers.items()}
                if prompt.expected is not None else {})
    return PromptScore(
        position=position,
        label=prompt.label,
        successful=len(ok),
        unique_outputs=comparison.summary.unique_outputs,
        unique_answers=len(set(answers.values())),
        tarr=comparison.summary.unique_outputs == 1 if complete else None,
        tara=len(found) == 1 and found.total() == runs if complete else None,
        modal_answer=found.most_common(1)[0][0] if found else None,
        expected=prompt.expected,
        correct=sum(verdicts.values()) if prompt.expected is not None else None,
        run_correct=tuple(verdicts.get(k) for k in range(runs)),
        first_divergence_word=comparison.summary.first_divergence_word,
        statistics=batch_statistics(comparison),
    )


@dataclass(frozen=True)
class AccuracySpread:
    """Accuracy of run k over the prompts with an expected answer, for each k: how far one run can be from another."""

    per_run: tuple[Proportion | None, ...]
    """None for a run that answered no prompt with an expected answer."""
    min: Proportion
    mean: Proportion
    """All runs pooled (the mean of per_run when every run answered every prompt)."""
    max: Proportion

    def describe(self) -> str:
        return (f"accuracy across {len(self.per_run)} runs: min {self.min.describe()}, mean {self.mean.describe()}, "
                f"max {self.max.describe()}")

    def to_dict(self) -> dict[str, Any]:
        return {"per_run": [share.to_dict() if share else None for share in self.per_run],
                **{name: getattr(self, name).to_dict() for name in ("min", "mean", "max")}}


def accuracy_spread(scores: Sequence[PromptScore], runs: int) -> AccuracySpread | None:
    """None when no prompt has an expected answer that some run answered."""
    per_run = []
    for k in range(runs):
        verdicts = [score.run_correct[k] for score in scores if score.run_correct[k] is not None]
        per_run.append(wilson(sum(verdicts), len(verdicts)) if verdicts else None)
    answered = [share for share in per_run if share is not None]
    if not answered:
        return None
    pooled = wilson(sum(share.count for share in answered), sum(share.total for share in answered))
    return AccuracySpread(tuple(per_run), min(answered, key=lambda share: share.value), pooled,
                          max(answered, key=lambda share: share.value))


def _share(flags: Sequence[bool | None]) -> Proportion | None:
    """True of the known flags, with a Wilson interval; None when none is known."""
    known = [flag for flag in flags if flag is not None]
    return wilson(sum(known), len(known)) if known else None


@dataclass(frozen=True)
class SuiteSummary:
    prompts: tuple[PromptScore, ...]
    runs: int
    """N, the runs planned per prompt."""
    tarr: Proportion | None
    """TARr@N: prompts whose N raw outputs are identical, of those whose N runs all succeeded."""
    tara: Proportion | None
    """TARa@N: prompts whose N extracted answers are identical, of those whose N runs all succeeded."""
    accuracy: AccuracySpread | None

    def describe(self) -> str:
        """One line: TARr@N, TARa@N and the accuracy spread, each with its interval."""
        parts = [f"TAR{kind}@{self.runs} {share.describe() if share else 'n/a (no prompt had all runs succeed)'}"
                 for kind, share in (("r", self.tarr), ("a", self.tara))]
        if self.accuracy:
            parts.append(self.accuracy.describe())
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {"runs": self.runs, "prompts": [score.to_dict() for score in self.prompts],
                "tarr": self.tarr.to_dict() if self.tarr else None, "tara": self.tara.to_dict() if self.tara else None,
                "accuracy": self.accuracy.to_dict() if self.accuracy else None, "description": self.describe()}


def summarize_suite(prompts: Sequence[Scorable], results: Sequence[Sequence[RunResult]], runs: int) -> SuiteSummary:
    """Each prompt's runs scored, then the suite's TARr@N, TARa@N and accuracy spread."""
    scores = tuple(score_prompt(position, prompt, prompt_results, runs)
                   for position, (prompt, prompt_results) in enumerate(zip(prompts, results, strict=True)))
    return SuiteSummary(scores, runs, _share([score.tarr for score in scores]),
                        _share([score.tara for score in scores]), accuracy_spread(scores, runs))
