"""N runs decoded as one batch by the embedded model, checked run by run against single runs of the backend."""

from __future__ import annotations

import asyncio
import json

import pytest

from core.backends.batched import BatchedDecoder
from core.backends.local import LocalBackend
from core.errors import InvalidRequest
from core.models import MAX_RUNS, BatchPlan, RunRequest
from core.probe.plan import ProbePlan
from core.runner import iter_requests, run_batch
from tests.environment import local_engine

pytestmark = pytest.mark.model

STORY = RunRequest(prompt="Create a story about red panda.", system="You always produce 3-sentence answers.",
                   temperature=1.0, max_tokens=24)
HELLO = RunRequest(prompt="Say hello.", system="Answer in two words.", temperature=0.0, max_tokens=40)


@pytest.fixture(scope="module")
def backend() -> LocalBackend:
    """Single decoding: each run alone through llama-cpp-python's create_chat_completion."""
    return local_engine(mode="deterministic", batching=False)


@pytest.fixture(scope="module")
def decoder(backend) -> BatchedDecoder:
    return backend.decoder()


def single(backend: LocalBackend, request: RunRequest, seed: int | None):
    [result] = asyncio.run(run_batch(backend, RunRequest(**{**request.to_dict(), "seed": seed}), BatchPlan(1, 1)))
    return result


def test_the_prompt_is_tokenized_as_a_single_run_tokenizes_it(backend, decoder):
    assert len(decoder.prompt_tokens(STORY)) == single(backend, STORY, 1).usage.prompt_tokens


def test_each_sequence_equals_a_single_run_with_its_seed(backend, decoder):
    seeds = [42, 7, 42, 1234]
    batched = decoder.generate(STORY, seeds)
    assert [r.index for r in batched] == [0, 1, 2, 3]
    for result, seed in zip(batched, seeds):
        alone = single(backend, STORY, seed)
        assert (result.text, result.finish_reason, result.usage) == (alone.text, alone.finish_reason, alone.usage)
    assert batched[0].text == batched[2].text != batched[1].text
    assert all(0 < r.latency_ms for r in batched)


def test_identical_requests_in_one_batch_stay_identical(backend, decoder):
    batched = decoder.generate(STORY, [5] * 6)
    assert {r.text for r in batched} == {single(backend, STORY, 5).text}


def test_a_run_that_stops_early_stops_in_the_batch_too(backend, decoder):
    alone = single(backend, HELLO, None)
    assert alone.finish_reason == "stop"
    batched = decoder.generate(HELLO, [None, None, None])
    assert [(r.text, r.finish_reason, r.usage) for r in batched] == [(alone.text, "stop", alone.usage)] * 3


def test_one_sequence_with_shared_cells_is_a_single_run(backend, decoder):
    [result] = decoder.generate(STORY, [9], shared_cells=True)
    assert result.text == single(backend, STORY, 9).text


def test_seed_count_is_checked(decoder):
    with pytest.raises(InvalidRequest, match=f"^seeds: give 1 to {MAX_RUNS}"):
        decoder.generate(STORY, [])
    with pytest.raises(InvalidRequest, match=f"^seeds: give 1 to {MAX_RUNS}"):
        decoder.generate(STORY, [1] * (MAX_RUNS + 1))
    with pytest.raises(InvalidRequest, match=f"^requests: give 1 to {MAX_RUNS}"):
        decoder.generate_together([])


def test_the_backend_decodes_runs_that_arrive_together_as_one_batch_with_the_same_bytes(backend):
    seeds = [42, 7, 42, 1234, 9]
    requests = [RunRequest(**{**STORY.to_dict(), "seed": seed}) for seed in seeds]

    async def together():
        return [r async for r in iter_requests(local_engine(mode="deterministic"), requests, len(requests))]

    batched = sorted(asyncio.run(together()), key=lambda r: r.index)
    assert [json.loads(r.raw)["batch"]["size"] for r in batched] == [5] * 5
    for result, seed in zip(batched, seeds):
        alone = single(backend, STORY, seed)
        assert (result.text, result.finish_reason, result.usage, result.system_fingerprint) == \
               (alone.text, alone.finish_reason, alone.usage, alone.system_fingerprint)


def test_runs_with_other_parameters_go_in_their_own_batch():
    hello = RunRequest(**{**HELLO.to_dict(), "seed": 3})
    story = RunRequest(**{**STORY.to_dict(), "seed": 3})

    async def together():
        return [r async for r in iter_requests(local_engine(mode="deterministic"), [hello, story, hello], 3)]

    results = sorted(asyncio.run(together()), key=lambda r: r.index)
    assert [json.loads(r.raw)["batch"]["size"] for r in results] == [2, 1, 2]
    assert results[0].text == results[2].text != results[1].text


def test_cache_mode_and_logprobs_are_never_batched():
    assert local_engine(mode="cache").max_concurrency == 1
    [result] = asyncio.run(run_batch(local_engine(mode="deterministic"),
                                     RunRequest(prompt="Say hello.", seed=7, max_tokens=4, logprobs=True),
                                     BatchPlan(1, 1)))
    assert "batch" not in json.loads(result.raw) and result.logprobs


# The probe's load test: R (seeded, temperature 1, 16 tokens) in one batch with 8 copies of itself and 4 other prompts.
PLAN = ProbePlan(runs=8, max_tokens=16, nonce=1)
R = RunRequest(**{**PLAN.load_request().to_dict(), "temperature": 1.0})


def test_in_a_mixed_batch_with_isolated_cells_every_run_is_its_single_run(backend, decoder):
    background = PLAN.background(4)
    together = decoder.generate_together([*background, R, R])
    assert [r.text for r in together[4:]] == [single(backend, R, R.seed).text] * 2
    # The other prompts, of other lengths, are exactly their single runs too.
    for result, request in list(zip(together, background))[:2]:
        assert (result.text, result.usage) == (single(backend, request, request.seed).text,
                                               single(backend, request, request.seed).usage)


def test_with_shared_prompt_cells_the_batch_changes_a_copy_of_r(backend, decoder):
    alone = single(backend, R, R.seed).text
    quiet = decoder.generate_together([R] * 8, shared_cells=True)
    loaded = decoder.generate_together([*PLAN.background(4), *[R] * 8], shared_cells=True)
    # Measured on this build, the same every time: one copy of eight differs, which one depends on the batch.
    assert [k for k, r in enumerate(quiet) if r.text != alone] == [6]
    assert [k for k, r in enumerate(loaded[4:]) if r.text != alone] == [2]
    assert quiet[6].text == loaded[6].text != alone


def test_the_backend_decodes_mixed_requests_together_as_its_own_runs():
    engine = local_engine(mode="deterministic")
    runs = engine.decode_together([*PLAN.background(1), R], shared_cells=False)
    assert [json.loads(r.raw)["batch"] for r in runs] == [{"size": 2, "sequence": 0, "shared_cells": False},
                                                          {"size": 2, "sequence": 1, "shared_cells": False}]
    assert all(r.ok and r.system_fingerprint == engine.fingerprint for r in runs)
    failed = engine.decode_together([RunRequest(prompt="p", max_tokens=4)] * (MAX_RUNS + 1), shared_cells=False)
    assert len(failed) == MAX_RUNS + 1 and "requests: give 1 to" in failed[0].error.message
