"""The first token where two runs part, seen through their log-probabilities: what each run chose, what it could
have chosen, and how close the call was.

Works on `RunResult.logprobs` from any backend; without logprobs there is nothing to say and the answer is None.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from core.models import RunResult, TokenLogprob

TOP_ALTERNATIVES = 5
NEAR_TIE = 0.1
"""A fork whose top two candidates are less than 10 probability points apart is marked a near tie: at that margin
sampling picks either often, and a greedy choice can flip on a change in the last bits of the logits (batch shape,
kernel order). A threshold for the eye, not a statistical test."""


@dataclass(frozen=True)
class ForkSide:
    """One run at a fork: the token it chose, the top alternatives (probability = exp(logprob)) and their margin."""

    run: int
    position: int
    """The token's position in the run's logprobs (0 is the first generated token)."""
    chosen: str
    chosen_prob: float
    alternatives: tuple[tuple[str, float], ...]
    """Up to TOP_ALTERNATIVES (token, probability), most probable first; the chosen token alone if none were sent."""
    margin: float
    """Probability of the first alternative minus the second's (0 when only one is known)."""
    near_tie: bool
    """margin < NEAR_TIE, and at least two alternatives known."""


def _probability(logprob: float) -> float:
    return math.exp(logprob)


def fork_side(result: RunResult, position: int) -> ForkSide:
    """The run's token at `position` (an index into `result.logprobs`) as a ForkSide."""
    item: TokenLogprob = result.logprobs[position]
    ranked = sorted(item.top, key=lambda a: -a.logprob)[:TOP_ALTERNATIVES]
    chosen = (item.token, _probability(item.logprob))
    alternatives = tuple((a.token, _probability(a.logprob)) for a in ranked) or (chosen,)
    known = len(alternatives) >= 2
    margin = alternatives[0][1] - alternatives[1][1] if known else 0.0
    return ForkSide(result.index, position, chosen[0], chosen[1], alternatives, margin, known and margin < NEAR_TIE)


def first_fork_position(token_lists: Sequence[Sequence[str]]) -> int | None:
    """The first position where the token lists are not all equal; None if equal, or if one merely stops early."""
    if len(token_lists) < 2:
        return None
    for position, column in enumerate(zip(*token_lists)):
        if any(token != column[0] for token in column):
            return position
    return None


def fork_between(a: RunResult, b: RunResult) -> tuple[ForkSide, ForkSide] | None:
    """Both runs at the first token where their logprob tokens differ; None without logprobs or a differing token."""
    # A run that stops where the other goes on has no fork token: the end-of-text token is never reported.
    if not a.logprobs or not b.logprobs:
        return None
    position = first_fork_position([[t.token for t in a.logprobs], [t.token for t in b.logprobs]])
    if position is None:
        return None
    return fork_side(a, position), fork_side(b, position)


def token_strip(result: RunResult) -> list[tuple[str, float]]:
    """Each generated token with the probability of having been chosen, for colouring; empty without logprobs."""
    return [(item.token, _probability(item.logprob)) for item in result.logprobs or ()]
