"""What a probe found, as values: one frozen dataclass per part, the verdicts computed from run results (pure
functions, no I/O), and the report card that puts them in one table and one line."""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from core.backends.openai_chat import TOKEN_LIMITS
from core.models import BackendInfo, RunResult

ACCEPTED, REJECTED, IGNORED, UNTESTED = "accepted", "rejected", "ignored", "untested"
HONOURED, SEED_IGNORED, DETERMINISTIC, UNKNOWN = "honoured", "ignored", "deterministic regardless", "unknown"
FIRST_DIFFERS, NO_DIFFERENCE, INCONCLUSIVE = "first answer differs", "no difference", "inconclusive"
INVARIANT, CHANGES, UNSETTLED = "invariant", "changes", "not reproducible without load"
SHORT_TOKENS = 2  # the limit of the request that tells whether max_tokens (or max_completion_tokens) is obeyed


@dataclass(frozen=True)
class ParameterFinding:
    """Whether the endpoint accepted one parameter: accepted, rejected (the server's words), ignored, or untested."""

    parameter: str
    status: str
    evidence: str


@dataclass(frozen=True)
class Sample:
    """One answer a verdict rests on: its label (seed A, cold, K=16 …) and its text, or the error instead."""

    label: str
    text: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class SeedFinding:
    """At temperature 1: seed A twice, seed B once, no seed twice, and what that says about the seed."""

    verdict: str
    evidence: str
    samples: tuple[Sample, ...] = ()


@dataclass(frozen=True)
class ColdWarmFinding:
    """Fresh prompts each sent once cold, then again warm: whether the first answer differs from the later ones."""

    verdict: str
    evidence: str
    samples: tuple[Sample, ...] = ()


@dataclass(frozen=True)
class LoadRung:
    """The seeded request R sent `runs` times while `background` other requests were in flight."""

    background: int
    runs: int
    successful: int
    unique: int
    changed: bool
    first_error: str | None = None


@dataclass(frozen=True)
class SkippedRung:
    background: int
    reason: str


@dataclass(frozen=True)
class LoadFinding:
    """Unique outputs of R at each load, and the verdict: invariant up to the largest load, or from where it changes.
    `variant` names how the embedded engine batched them ("isolated cells", "shared cells"; empty for a server)."""

    verdict: str
    summary: str
    rungs: tuple[LoadRung, ...] = ()
    skipped: tuple[SkippedRung, ...] = ()
    variant: str = ""

    @property
    def verdict_line(self) -> str:
        """The summary, after the variant when there is one: "shared cells: answers change from K=0"."""
        return f"{self.variant}: {self.summary}" if self.variant else self.summary


@dataclass(frozen=True)
class ProbeReport:
    """The report card of one endpoint: every finding, one table and one line."""

    backend: BackendInfo
    parameters: tuple[ParameterFinding, ...]
    seed: SeedFinding
    cold_warm: ColdWarmFinding
    load: LoadFinding
    baseline_error: str | None = None  # why the request with no optional parameter failed, if it did
    # The embedded engine's positive control: its load ladder again with shared prompt cells, expected to change.
    load_control: LoadFinding | None = None

    @property
    def loads(self) -> tuple[LoadFinding, ...]:
        return (self.load, self.load_control) if self.load_control else (self.load,)

    def rows(self) -> list[tuple[str, str, str]]:
        """(check, verdict, evidence), one row per parameter and per part."""
        baseline = [("baseline request", "failed", self.baseline_error)] if self.baseline_error else []
        return [*baseline, *((f"parameter {p.parameter}", p.status, p.evidence) for p in self.parameters),
                ("seed honoured", self.seed.verdict, self.seed.evidence),
                ("cold vs warm", self.cold_warm.verdict, self.cold_warm.evidence),
                *((" ".join(("load sensitivity", load.variant)).strip(), load.verdict_line, _rungs_line(load))
                  for load in self.loads)]

    def summary(self) -> str:
        rejected = [p.parameter for p in self.parameters if p.status == REJECTED]
        parts = [f"seed {self.seed.verdict}",
                 f"rejects {', '.join(rejected)}" if rejected else "accepts every parameter tried",
                 f"cold vs warm: {self.cold_warm.verdict}", *(load.verdict_line for load in self.loads)]
        return f"{self.backend.label}: " + " · ".join(parts)

    def problems(self) -> list[str]:
        """What a CI check fails on: a seed that is not honoured, or seeded answers that load changes."""
        found = [f"the seed is {self.seed.verdict}"] if self.seed.verdict == SEED_IGNORED else []
        if self.load.verdict in (CHANGES, UNSETTLED):
            found.append(self.load.verdict_line)
        return found

    def markdown(self) -> str:
        lines = [f"**{_cell(self.summary())}**", "", "| check | verdict | evidence |", "| --- | --- | --- |"]
        return "\n".join([*lines, *(f"| {' | '.join(map(_cell, row))} |" for row in self.rows())]) + "\n"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell: no pipe, no line break, no markup from a server's words."""
    return re.sub(r"([\\`*_\[\]<>|#])", r"\\\1", " ".join(text.split()))


def _rungs_line(load: LoadFinding) -> str:
    shown = ", ".join(f"K={r.background}: {r.unique} unique of {r.successful}" for r in load.rungs)
    skipped = "; ".join(f"K={s.background} skipped ({s.reason})" for s in load.skipped)
    return "; ".join(part for part in (shown, skipped) if part)


def text_of(result: RunResult) -> str | None:
    return result.text if result.ok else None


def failure(result: RunResult) -> str | None:
    return None if result.ok else f"{result.error.kind}: {result.error.message}"


def sample(label: str, result: RunResult) -> Sample:
    return Sample(label, text_of(result), failure(result))


def names(parameter: str, message: str) -> bool:
    """Whether a server's message names `parameter` (max_tokens is not named by "max_completion_tokens")."""
    return re.search(rf"(?<![\w]){re.escape(parameter)}(?![\w])", message) is not None


def parameter_finding(parameter: str, result: RunResult, baseline: RunResult) -> ParameterFinding:
    """What one request that adds or changes `parameter` says, next to the baseline request without it."""
    if not result.ok:
        message = result.error.message
        # vLLM and other servers refuse an unknown parameter with 422, OpenAI with 400.
        refused = result.error.kind == "bad_request" or result.error.status == 422
        if refused and (baseline.ok or names(parameter, message)):
            return ParameterFinding(parameter, REJECTED, message)
        return ParameterFinding(parameter, UNTESTED, f"the request failed ({failure(result)})")
    if parameter == "logprobs":
        if result.notice and "logprobs" in result.notice:
            return ParameterFinding(parameter, REJECTED, result.notice)
        if not result.logprobs:
            return ParameterFinding(parameter, IGNORED, "asked for log-probabilities; the answer carried none")
        return ParameterFinding(parameter, ACCEPTED, f"{len(result.logprobs)} tokens with their log-probabilities")
    if parameter in TOKEN_LIMITS and result.usage and result.usage.completion_tokens > SHORT_TOKENS:
        return ParameterFinding(parameter, IGNORED, f"asked for at most {SHORT_TOKENS} tokens, got "
                                                    f"{result.usage.completion_tokens}")
    return ParameterFinding(parameter, ACCEPTED, "answered")


def seed_finding(samples: Sequence[Sample]) -> SeedFinding:
    """From the samples labelled seed A, seed A, seed B, no seed, no seed (in that order)."""
    failed = next((s for s in samples if s.error), None)
    if failed:
        return SeedFinding(UNKNOWN, f"{failed.label} failed: {failed.error}", tuple(samples))
    a1, a2, b, u1, u2 = (s.text for s in samples)
    unseeded = "no seed: the same answer twice" if u1 == u2 else "no seed: two different answers"
    if len({a1, a2, b, u1, u2}) == 1:
        verdict, evidence = DETERMINISTIC, "all five answers are identical, with or without a seed (greedy decoding?)"
    elif a1 != a2:
        verdict, evidence = SEED_IGNORED, f"seed A gave two different answers; {unseeded}"
    elif a1 == b:
        verdict = SEED_IGNORED
        evidence = f"seeds A and B gave the same answer: the seed's value changes nothing; {unseeded}"
    else:
        verdict, evidence = HONOURED, f"seed A gave the same answer twice, seed B another; {unseeded}"
    return SeedFinding(verdict, evidence, tuple(samples))


def cold_warm_finding(prompts: Sequence[Sequence[Sample]]) -> ColdWarmFinding:
    """From each fresh prompt's samples: the cold answer first, then the warm ones."""
    every = tuple(s for samples in prompts for s in samples)
    failed = next((s for s in every if s.error), None)
    if failed:
        return ColdWarmFinding(INCONCLUSIVE, f"{failed.label} failed: {failed.error}", every)
    settled = [samples for samples in prompts if len({s.text for s in samples[1:]}) == 1]
    differs = sum(samples[0].text != samples[1].text for samples in settled)
    if not settled:
        return ColdWarmFinding(INCONCLUSIVE, "the warm answers differ among themselves for every prompt", every)
    if differs:
        return ColdWarmFinding(FIRST_DIFFERS, f"for {differs} of {len(settled)} fresh prompts the first answer "
                                              "differs from the later ones, which agree", every)
    return ColdWarmFinding(NO_DIFFERENCE, f"for each of {len(settled)} fresh prompts the first answer matches "
                                          "the later ones", every)


def load_rung(background: int, results: Sequence[RunResult], reference: str | None) -> LoadRung:
    """One rung: `reference` is the answer R gave without load (None for the rung without load itself)."""
    texts = [r.text for r in results if r.ok]
    changed = reference is not None and any(text != reference for text in texts)
    first_error = next((failure(r) for r in results if not r.ok), None)
    return LoadRung(background, len(results), len(texts), len(set(texts)), changed, first_error)


def load_finding(rungs: Sequence[LoadRung], skipped: Sequence[SkippedRung] = (), variant: str = "",
                 against_alone: bool = False) -> LoadFinding:
    """The verdict over the rungs, the first one being the rung without background requests; `against_alone`: each
    rung was compared with R decoded alone, so that even the first one may show a change."""
    rungs, skipped = tuple(rungs), tuple(skipped)
    found = functools.partial(LoadFinding, rungs=rungs, skipped=skipped, variant=variant)
    if not rungs or not rungs[0].successful:
        return found(UNKNOWN, f"load unknown: {rungs[0].first_error if rungs else 'no rung was run'}")
    quiet = rungs[0]
    if quiet.unique > 1 and not against_alone:
        return found(UNSETTLED, f"not reproducible even without load (K=0: {quiet.unique} unique of "
                                f"{quiet.successful})")
    changed = next((r for r in rungs if r.changed or r.unique > 1), None)
    if changed:
        return found(CHANGES, f"answers change from K={changed.background}")
    measured = [r for r in rungs if r.successful]  # a rung whose every request failed shows nothing
    return found(INVARIANT, f"invariant up to K={measured[-1].background}")
