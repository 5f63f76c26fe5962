"""The first fork between two runs, from hand-made logprobs, the embedded model and the loopback server."""

from __future__ import annotations

import asyncio
import math
from dataclasses import replace

import pytest

from core.backends import make_backend
from core.analysis.forks import NEAR_TIE, ForkSide, fork_between, fork_side, token_strip
from core.models import Alternative, BatchPlan, RunRequest, RunResult, TokenLogprob
from core.runner import run_batch
from tests.environment import local_engine

DEMO = RunRequest(prompt="Create a story about red panda.", system="You always produce 3-sentence answers.",
                  temperature=0.1, seed=42, max_tokens=80, logprobs=True, top_logprobs=5)


def tok(token: str, p: float, *alternatives: tuple[str, float]) -> TokenLogprob:
    return TokenLogprob(token, math.log(p), tuple(Alternative(t, math.log(q)) for t, q in alternatives))


def rounded(side: ForkSide) -> ForkSide:
    """Probabilities to 6 places, so a whole side compares exactly."""
    return replace(side, chosen_prob=round(side.chosen_prob, 6), margin=round(side.margin, 6),
                   alternatives=pairs(side.alternatives))


def pairs(items) -> tuple[tuple[str, float], ...]:
    return tuple((token, round(p, 6)) for token, p in items)


def run(index: int, *tokens: TokenLogprob) -> RunResult:
    return RunResult(index=index, latency_ms=1.0, text="".join(t.token for t in tokens), logprobs=tokens or None)


THE = tok("The", 0.9, ("The", 0.9), ("A", 0.05))
RED = tok(" red", 0.8, (" red", 0.8), (" small", 0.1))


def test_fork_at_the_first_differing_token_with_alternatives_and_margin():
    a = run(0, THE, RED, tok(" panda", 0.48, (" panda", 0.48), (" fox", 0.42), (" cat", 0.05)), tok(" slept", 0.5))
    b = run(3, THE, RED, tok(" fox", 0.42, (" panda", 0.48), (" fox", 0.42), (" cat", 0.05)))
    left, right = fork_between(a, b)
    alternatives = ((" panda", 0.48), (" fox", 0.42), (" cat", 0.05))
    assert rounded(left) == ForkSide(run=0, position=2, chosen=" panda", chosen_prob=0.48, alternatives=alternatives,
                                     margin=0.06, near_tie=True)
    assert rounded(right) == ForkSide(run=3, position=2, chosen=" fox", chosen_prob=0.42, alternatives=alternatives,
                                      margin=0.06, near_tie=True)


def test_a_clear_winner_is_not_a_near_tie():
    a = run(0, tok("Yes", 0.7, ("Yes", 0.7), ("No", 0.2)))
    b = run(1, tok("No", 0.2, ("Yes", 0.7), ("No", 0.2)))
    left, right = fork_between(a, b)
    assert left.margin == right.margin == pytest.approx(0.5)
    assert not left.near_tie and not right.near_tie


def test_the_threshold_is_strict():
    just_under = tok("x", 0.5, ("x", 0.5), ("y", 0.5 - NEAR_TIE + 1e-9))
    at = tok("x", 0.5, ("x", 0.5), ("y", 0.375))  # margin 0.125
    assert fork_side(run(0, just_under), 0).near_tie
    assert not fork_side(run(0, at), 0).near_tie


def test_alternatives_are_sorted_and_cut_to_five():
    shuffled = tok("c", 0.2, ("e", 0.04), ("c", 0.2), ("a", 0.3), ("f", 0.01), ("b", 0.25), ("d", 0.1))
    side = fork_side(run(0, shuffled), 0)
    assert [t for t, _ in side.alternatives] == ["a", "b", "c", "d", "e"]
    assert side.margin == pytest.approx(0.05)


def test_without_alternatives_the_chosen_token_stands_alone():
    side = fork_side(run(0, tok("Hi", 0.6)), 0)
    assert pairs(side.alternatives) == (("Hi", 0.6),)
    assert (side.margin, side.near_tie) == (0.0, False)


def test_no_fork_without_logprobs_or_a_difference():
    a = run(0, THE, RED)
    assert fork_between(a, run(1, THE, RED)) is None
    assert fork_between(a, RunResult(index=1, latency_ms=1.0, text="The red")) is None
    plain = RunResult(index=0, latency_ms=1.0, text="x")
    assert fork_between(plain, RunResult(index=1, latency_ms=1.0, text="y")) is None
    # One run stops where the other goes on: the token it ended with is never reported.
    assert fork_between(a, run(1, THE)) is None


def test_token_strip_is_each_token_with_its_probability():
    assert pairs(token_strip(run(0, THE, RED))) == (("The", 0.9), (" red", 0.8))
    assert token_strip(RunResult(index=0, latency_ms=1.0, text="x")) == []


@pytest.mark.model
def test_the_embedded_model_forks_on_a_near_tie_in_cache_mode():
    """Cache mode's second answer parts from the first (tests/test_local.py); the fork is where they part."""
    first, second = asyncio.run(run_batch(local_engine(mode="cache"), DEMO, BatchPlan(2, 1)))
    assert first.text != second.text
    left, right = fork_between(first, second)
    position = left.position
    assert right.position == position
    assert [t.token for t in first.logprobs[:position]] == [t.token for t in second.logprobs[:position]]
    assert left.chosen == first.logprobs[position].token != right.chosen == second.logprobs[position].token
    for side, result in ((left, first), (right, second)):
        assert side.chosen_prob == pytest.approx(math.exp(result.logprobs[position].logprob))
        assert len(side.alternatives) == 5
        probs = [p for _, p in side.alternatives]
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
        assert side.margin == pytest.approx(probs[0] - probs[1])
    # Both candidates sit among each other's top five: the runs chose between the same few tokens.
    assert {left.chosen, right.chosen} <= {t for t, _ in left.alternatives} & {t for t, _ in right.alternatives}
    assert left.near_tie or right.near_tie
    assert len(token_strip(first)) == first.usage.completion_tokens


def test_the_loopback_server_fork(fake_server, azure_settings):
    fake_server.answers.extend(["The red panda slept.", "The red fox slept."])
    backend = make_backend(azure_settings)
    request = RunRequest(prompt="p", seed=1, logprobs=True, top_logprobs=5)
    a, b = asyncio.run(run_batch(backend, request, BatchPlan(2, 1)))
    assert [r.text for r in (a, b)] == ["The red panda slept.", "The red fox slept."]
    left, right = fork_between(a, b)
    # The server gives every chosen token logprob -0.1 and alternatives alt0, alt1, … at -2, -3, …
    chosen = round(math.exp(-0.1), 6)
    alternatives = pairs([(" alt0", math.exp(-2)), (" alt1", math.exp(-3)), (" alt2", math.exp(-4)),
                          (" alt3", math.exp(-5))])
    assert rounded(left) == ForkSide(0, 2, " panda", chosen, ((" panda", chosen), *alternatives),
                                     round(math.exp(-0.1) - math.exp(-2), 6), False)
    assert rounded(right) == ForkSide(1, 2, " fox", chosen, ((" fox", chosen), *alternatives),
                                      round(math.exp(-0.1) - math.exp(-2), 6), False)
    assert pairs(token_strip(a)) == (("The", chosen), (" red", chosen), (" panda", chosen), (" slept.", chosen))


def test_no_fork_from_a_server_without_logprobs(fake_server, azure_settings):
    """The server refuses logprobs; whether the backend fails the runs or retries without them, there is no fork."""
    fake_server.logprobs_supported = False
    fake_server.answers.extend(["The red panda slept.", "The red fox slept."] * 2)
    backend = make_backend(azure_settings)
    a, b = asyncio.run(run_batch(backend, RunRequest(prompt="p", logprobs=True), BatchPlan(2, 1)))
    assert a.logprobs is None and b.logprobs is None
    assert fork_between(a, b) is None
    assert token_strip(a) == []
    plain = asyncio.run(run_batch(backend, RunRequest(prompt="p"), BatchPlan(2, 1)))
    assert fork_between(*plain) is None
