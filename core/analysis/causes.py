"""Why a batch forked: each group of runs that parts from the modal answer gets its likely cause and one line of
evidence. The first that fits wins, most specific first:

    fingerprint   the runs that differ report a system_fingerprint the agreeing runs never do
    cache         only the batch's first run differs and the rest agree (a cold prompt cache, then a warm one)
    sampling      no seed at a temperature above 0: every run draws its own tokens
    near-tie      the logprobs at the fork show two candidates closer than core.analysis.forks.NEAR_TIE
    unknown       none of these
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from core.analysis.compare import Group, group_outputs
from core.analysis.forks import NEAR_TIE, ForkSide, fork_between
from core.models import RunRequest, RunResult

Cause = Literal["fingerprint", "cache", "sampling", "near-tie", "unknown"]
RUNS_NAMED = 6


@dataclass(frozen=True)
class ForkCause:
    """The likely cause of one divergence: which runs part from the modal answer, and what points to the cause."""

    cause: Cause
    runs: tuple[int, ...]
    """The runs (0-based indices) whose output differs from the modal one in the same way."""
    reference: int
    """The modal run they were compared with."""
    evidence: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _named(indices: Iterable[int]) -> str:
    """"run 3" or "runs 2, 4 and 5", numbered from 1 as the pages number them."""
    numbers = [str(index + 1) for index in indices]
    if len(numbers) > RUNS_NAMED:
        numbers = [*numbers[: RUNS_NAMED - 1], f"{len(numbers) - RUNS_NAMED + 1} more"]
    if len(numbers) == 1:
        return f"run {numbers[0]}"
    return f"runs {', '.join(numbers[:-1])} and {numbers[-1]}"


def _fingerprints(runs: Sequence[RunResult]) -> set[str]:
    return {run.system_fingerprint for run in runs if run.system_fingerprint is not None}


def _fingerprint(parted: Sequence[RunResult], modal: Sequence[RunResult]) -> str | None:
    theirs, ours = _fingerprints(parted), _fingerprints(modal)
    if not theirs or not ours or theirs & ours:
        return None
    return (f"{_named(run.index for run in parted)} report {', '.join(sorted(theirs))}; the {len(modal)} runs "
            f"with the modal answer report {', '.join(sorted(ours))}")


def _cache(group: Group, groups: Sequence[Group], first: int) -> str | None:
    if len(groups) != 2 or group.run_indices != (first,) or groups[0].count < 2:
        return None
    return (f"only {_named([first])}, the first of the batch, differs and the other {groups[0].count} agree: the "
            "first request met a cold prompt cache that the later ones reused")


def _sampling(request: RunRequest) -> str | None:
    if request.seed is not None or request.temperature == 0:
        return None
    return f"no seed at temperature {request.temperature:g}: every run draws its own tokens"


def _near_tie(parted: RunResult, modal: RunResult) -> str | None:
    sides = fork_between(modal, parted)
    tied: ForkSide | None = next((side for side in sides or () if side.near_tie), None)
    if tied is None:
        return None
    ours, theirs = sides
    return (f"at token {ours.position + 1} {_named([ours.run])} chose {ours.chosen!r} and {_named([theirs.run])} "
            f"chose {theirs.chosen!r}; the top two candidates were {tied.margin * 100:.1f} points apart "
            f"(a near tie is under {NEAR_TIE * 100:g})")


def _unknown(request: RunRequest, parted: Sequence[RunResult], modal: Sequence[RunResult]) -> str:
    seed = "no seed at temperature 0" if request.seed is None else f"seed {request.seed}"
    shared = sorted(_fingerprints([*parted, *modal]))
    fingerprint = f"fingerprint {', '.join(shared)}" if shared else "no fingerprint reported"
    logprobs = "no near tie in the logprobs" if parted[0].logprobs and modal[0].logprobs else "no logprobs"
    return f"{seed}, {fingerprint}, {logprobs} at the fork: nothing here explains it"


def fork_causes(results: Sequence[RunResult], request: RunRequest) -> list[ForkCause]:
    """One ForkCause per group of successful runs that differs from the modal group; empty when all agree."""
    groups = group_outputs(results)
    if len(groups) < 2:
        return []
    by_index = {result.index: result for result in results}
    modal = [by_index[index] for index in groups[0].run_indices]
    first = min(by_index)
    causes = []
    for group in groups[1:]:
        parted = [by_index[index] for index in group.run_indices]
        found: list[tuple[Cause, str | None]] = [
            ("fingerprint", _fingerprint(parted, modal)),
            ("cache", _cache(group, groups, first)),
            ("sampling", _sampling(request)),
            ("near-tie", _near_tie(parted[0], modal[0])),
        ]
        cause, evidence = next(((c, e) for c, e in found if e), ("unknown", _unknown(request, parted, modal)))
        causes.append(ForkCause(cause, group.run_indices, modal[0].index, evidence))
    return causes
