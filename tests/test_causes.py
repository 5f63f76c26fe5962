"""Why a batch forked, on the loopback server (chosen answers, fingerprints and logprobs) and on the embedded
engine's cache mode for real."""

from __future__ import annotations

import asyncio
import json
import math

import pytest

from core.analysis.causes import ForkCause, fork_causes
from core.backends import make_backend
from core.models import BatchPlan, RunRequest
from core.runner import run_batch
from tests.environment import local_engine

SEEDED = RunRequest(prompt="Name a capital.", temperature=0.0, seed=7, max_tokens=12)


def run(settings, request=SEEDED, runs=5, concurrency=10):
    results = asyncio.run(run_batch(make_backend(settings), request, BatchPlan(runs, concurrency)))
    assert all(result.ok for result in results)
    return results


def runs_with(results, text: str) -> tuple[int, ...]:
    return tuple(result.index for result in results if result.text == text)


def body(text: str, fingerprint: str = "fp_a", fork: dict[str, float] | None = None) -> bytes:
    """A whole chat completion; with `fork`, logprobs whose second token is chosen among fork's probabilities."""
    words = text.split(" ")
    tokens = [words[0], *(" " + word for word in words[1:])]
    content = []
    for position, token in enumerate(tokens):
        candidates = fork if position == 1 and fork else {token: 0.99}
        content.append({"token": token, "logprob": math.log(candidates[token]), "bytes": None,
                        "top_logprobs": [{"token": t, "logprob": math.log(p), "bytes": None}
                                         for t, p in candidates.items()]})
    choice = {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text},
              "logprobs": {"content": content} if fork else None}
    return json.dumps({"id": "chatcmpl-x", "object": "chat.completion", "created": 0, "model": "gpt-test",
                       "system_fingerprint": fingerprint, "choices": [choice],
                       "usage": {"prompt_tokens": 5, "completion_tokens": len(tokens), "total_tokens": 5 + len(tokens)}
                       }).encode()


def test_a_batch_that_agrees_has_no_causes(fake_server, azure_settings):
    assert fork_causes(run(azure_settings), SEEDED) == []


def test_no_seed_above_temperature_zero_is_sampling(fake_server, azure_settings):
    request = RunRequest(prompt="Tell a story.", temperature=0.7, max_tokens=12)
    results = run(azure_settings, request, runs=4)
    causes = fork_causes(results, request)
    assert [cause.cause for cause in causes] == ["sampling"] * 3
    assert sorted(run for cause in causes for run in cause.runs) == [1, 2, 3]
    assert {cause.reference for cause in causes} == {0}
    assert causes[0].evidence == "no seed at temperature 0.7: every run draws its own tokens"


def test_runs_with_another_fingerprint_are_a_fingerprint_fork(fake_server, azure_settings):
    fake_server.bodies.extend([body("Paris.", "fp_a")] * 3 + [body("Lyon.", "fp_b")] * 2)
    results = run(azure_settings)
    [cause] = fork_causes(results, SEEDED)
    lyon = runs_with(results, "Lyon.")
    assert (cause.cause, cause.runs, cause.reference) == ("fingerprint", lyon, runs_with(results, "Paris.")[0])
    assert cause.evidence == (f"runs {lyon[0] + 1} and {lyon[1] + 1} report fp_b; the 3 runs with the modal answer "
                              "report fp_a")


def test_a_close_call_in_the_logprobs_is_a_near_tie(fake_server, azure_settings):
    fork = {" cat": 0.48, " dog": 0.46}
    fake_server.bodies.extend([body("The cat sat.", fork=fork)] * 3 + [body("The dog sat.", fork=fork)] * 2)
    results = run(azure_settings, SEEDED)
    [cause] = fork_causes(results, SEEDED)
    cat, dog = runs_with(results, "The cat sat."), runs_with(results, "The dog sat.")
    assert (cause.cause, cause.runs, cause.reference) == ("near-tie", dog, cat[0])
    assert cause.evidence == (f"at token 2 run {cat[0] + 1} chose ' cat' and run {dog[0] + 1} chose ' dog'; the top "
                              "two candidates were 2.0 points apart (a near tie is under 10)")


def test_only_the_first_run_differing_is_the_cache(fake_server, azure_settings):
    fake_server.answers.extend(["Cold answer.", "Warm answer.", "Warm answer.", "Warm answer."])
    results = run(azure_settings, runs=4, concurrency=1)  # one at a time: run 1 is the first to arrive
    assert [result.text for result in results] == ["Cold answer.", "Warm answer.", "Warm answer.", "Warm answer."]
    assert fork_causes(results, SEEDED) == [ForkCause(
        "cache", (0,), 1, "only run 1, the first of the batch, differs and the other 3 agree: the first request met "
                          "a cold prompt cache that the later ones reused")]


def test_a_fork_nothing_explains_is_unknown_and_says_what_was_ruled_out(fake_server, azure_settings):
    fake_server.answers.extend(["A.", "A.", "A.", "B.", "B."])
    request = RunRequest(prompt="Name a capital.", temperature=0.0, seed=7, max_tokens=12, logprobs=True)
    results = run(azure_settings, request)
    [cause] = fork_causes(results, request)
    assert (cause.cause, cause.runs) == ("unknown", runs_with(results, "B."))
    # The loopback server's logprobs put every chosen token far ahead of its alternatives: no near tie.
    assert cause.evidence == ("seed 7, fingerprint fp_fake_1, no near tie in the logprobs at the fork: "
                              "nothing here explains it")
    assert json.loads(json.dumps(cause.to_dict())) == {
        "cause": "unknown", "runs": list(cause.runs), "reference": cause.reference, "evidence": cause.evidence}


@pytest.mark.model
def test_the_embedded_engine_in_cache_mode_forks_at_the_first_run():
    
    request = RunRequest(prompt="Create a story about red panda.", system="You always produce 3-sentence answers.",
                         temperature=0.1, seed=42, max_tokens=60)
    results = asyncio.run(run_batch(local_engine(mode="cache"), request, BatchPlan(3, 3)))
    [cause] = fork_causes(results, request)
    assert (cause.cause, cause.runs, cause.reference) == ("cache", (0,), 1)
