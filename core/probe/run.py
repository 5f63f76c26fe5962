"""The probe's coroutine: parameters, seed, cold vs warm, then the load ladder, each part sent through the backend
with `core.runner.iter_requests`. Every part after the first leaves out what the endpoint rejected."""

from __future__ import annotations

import functools
import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol, runtime_checkable

from core.backends import Backend
from core.backends.openai_chat import TOKEN_LIMITS, sending_token_limit_as
from core.models import RunRequest, RunResult
from core.probe.capabilities import AdaptedBackend, Capabilities, strip_rejected, token_limit
from core.probe.findings import (ACCEPTED, IGNORED, SEED_IGNORED, ColdWarmFinding, LoadFinding, ParameterFinding,
                                 ProbeReport, SeedFinding, SkippedRung, cold_warm_finding, failure, load_finding,
                                 load_rung, parameter_finding, sample, seed_finding, text_of)
from core.probe.plan import BATCH_VARIANTS, ProbePlan
from core.runner import Holder, iter_requests

@runtime_checkable
class DecodesTogether(Protocol):
    """An engine that can put mixed requests in one batch (the embedded one): the load test then runs R inside the
    batch, with each sequence in its own cells (isolated) and with prompt cells shared in one unified cache."""

    batch_limit: int

    def decode_together(self, requests: list[RunRequest], shared_cells: bool) -> list[RunResult]: ...


VARIANTS = tuple(zip(BATCH_VARIANTS, (False, True)))  # (name, shared prompt cells)

Send = Callable[[Backend, Sequence[RunRequest], int], Awaitable[list[RunResult]]]


@dataclass(frozen=True)
class Step:
    """Runs of one request the probe made, kept in the history (the load's background requests are not)."""

    label: str
    request: RunRequest
    runs: tuple[RunResult, ...]


@dataclass(frozen=True)
class Probe:
    """A finished probe: the report card and the steps whose runs are kept."""

    report: ProbeReport
    steps: tuple[Step, ...]


async def _send(backend: Backend, requests: Sequence[RunRequest], concurrency: int,
                hold: Holder | None) -> list[RunResult]:
    """Every request, at most `concurrency` in flight; the results in the requests' order."""
    results = [result async for result in iter_requests(backend, requests, concurrency, hold)]
    return sorted(results, key=lambda result: result.index)


async def run_probe(backend: Backend, plan: ProbePlan, skipped: Sequence[SkippedRung] = (),
                    hold: Holder | None = None) -> Probe:
    """Probe `backend` as `plan` says (`skipped`: rungs the plan's bounds left out, reported as such); `hold` shares a
    Fanout's cap, as in iter_requests. Failed requests are findings, never exceptions."""
    send = functools.partial(_send, hold=hold)
    parameters, baseline, parameter_steps = await _parameters(backend, plan, send)
    adapted = AdaptedBackend(backend, Capabilities.from_findings(backend.info, parameters, baseline.ok))
    seed, seed_steps = await _seed(adapted, plan, send)
    cold_warm, fresh_steps = await _cold_warm(adapted, plan, send)
    capabilities = adapted.capabilities
    if isinstance(backend, DecodesTogether):
        (load, control), load_steps = await _load_in_batch(backend, plan, capabilities, skipped)
    else:
        (load, control), load_steps = await _load(adapted, plan, send, skipped)
    report = ProbeReport(backend.info, _with_seed_verdict(parameters, seed), seed, cold_warm, load, failure(baseline),
                         control)
    return Probe(report, (*parameter_steps, *seed_steps, *fresh_steps, *load_steps))


async def _parameters(backend: Backend, plan: ProbePlan,
                      send: Send) -> tuple[tuple[ParameterFinding, ...], RunResult, list[Step]]:
    """The token limit's names first: the baseline and the other parameters then go under the one the endpoint
    takes, so that a model refusing max_tokens still shows what else it refuses."""
    limits, limit_steps = await _token_limits(backend, plan, send)
    labelled = plan.parameter_requests()
    with sending_token_limit_as(token_limit(limits)):
        results = await send(backend, [request for _, request in labelled], len(labelled))
    baseline = results[0]
    findings = (*(parameter_finding(name, result, baseline) for (name, _), result in zip(labelled[1:], results[1:])),
                *limits)
    steps = [Step(f"parameter {name}", request, (_indexed(result, 0),))  # one run each, as its step planned
             for (name, request), result in zip(labelled, results)]
    return findings, baseline, [*steps, *limit_steps]


async def _token_limits(backend: Backend, plan: ProbePlan,
                        send: Send) -> tuple[tuple[ParameterFinding, ...], list[Step]]:
    """One short request per name of TOKEN_LIMITS, side by side; each is the other's baseline, as the usual
    baseline carries one of them."""
    request = plan.token_limit_request()

    async def sent_as(name: str) -> RunResult:
        with sending_token_limit_as(name):
            [result] = await send(backend, [request], 1)
        return result

    results = await asyncio.gather(*map(sent_as, TOKEN_LIMITS))
    findings = tuple(parameter_finding(name, result, other)
                     for name, result, other in zip(TOKEN_LIMITS, results, reversed(results)))
    return findings, [Step(f"parameter {name}", request, (_indexed(result, 0),))
                      for name, result in zip(TOKEN_LIMITS, results)]


def _with_seed_verdict(parameters: tuple[ParameterFinding, ...], seed: SeedFinding) -> tuple[ParameterFinding, ...]:
    """The seed parameter is ignored, not merely accepted, when the seed test says so."""
    return tuple(ParameterFinding(p.parameter, IGNORED, seed.evidence)
                 if p.parameter == "seed" and p.status == ACCEPTED and seed.verdict == SEED_IGNORED else p
                 for p in parameters)


async def _seed(backend: Backend, plan: ProbePlan, send: Send) -> tuple[SeedFinding, list[Step]]:
    labelled = plan.seed_requests()
    # One at a time: the seed, not the load, should be all that differs between them.
    results = await send(backend, [request for _, request in labelled], 1)
    finding = seed_finding([sample(label, result) for (label, _), result in zip(labelled, results)])
    steps: dict[str, Step] = {}
    for (label, request), result in zip(labelled, results):
        before = steps[label].runs if label in steps else ()
        steps[label] = Step(f"seed test, {label}", request, (*before, _indexed(result, len(before))))
    return finding, list(steps.values())


def _indexed(result: RunResult, index: int) -> RunResult:
    return replace(result, index=index)


async def _cold_warm(backend: Backend, plan: ProbePlan, send: Send) -> tuple[ColdWarmFinding, list[Step]]:
    steps, samples = [], []
    for k, request in enumerate(plan.fresh_requests(), start=1):
        results = await send(backend, [request] * (1 + plan.warm_repeats), 1)  # strictly in turn: cold, then warm
        samples.append([sample(f"prompt {k} {'cold' if i == 0 else 'warm'}", r) for i, r in enumerate(results)])
        steps.append(Step(f"cold vs warm, fresh prompt {k}", request, tuple(results)))
    return cold_warm_finding(samples), steps


async def _load(backend: Backend, plan: ProbePlan, send: Send,
                skipped: Sequence[SkippedRung]) -> tuple[tuple[LoadFinding, None], list[Step]]:
    request, rungs, steps, reference = plan.load_request(), [], [], None
    for background in plan.ladder:
        # The background requests go first, so they are in flight when the copies of R arrive.
        results = await send(backend, [*plan.background(background), *[request] * plan.runs],
                             plan.rung_requests(background))
        mine = [_indexed(result, i) for i, result in enumerate(results[background:])]
        rung = load_rung(background, mine, reference)
        if background == 0:
            reference = next((text_of(r) for r in mine if r.ok), None)
        rungs.append(rung)
        steps.append(Step(f"load, K={background}", request, tuple(mine)))
    return (load_finding(rungs, skipped), None), steps


async def _load_in_batch(engine: DecodesTogether, plan: ProbePlan, capabilities: Capabilities,
                         skipped: Sequence[SkippedRung]) -> tuple[tuple[LoadFinding, LoadFinding], list[Step]]:
    """The ladder inside one llama.cpp batch, once per variant, every rung compared with R decoded alone. R is
    sampled at temperature 1 with its seed, which this engine honours exactly: greedy decoding hides logit changes
    this small (measured: 16 greedy tokens stay the same in both variants)."""
    request, _ = strip_rejected(replace(plan.load_request(), temperature=1.0), capabilities)
    [alone] = await asyncio.to_thread(engine.decode_together, [request], False)
    too_big = [SkippedRung(k, f"{plan.rung_requests(k)} sequences is over the engine's batch of {engine.batch_limit}")
               for k in plan.ladder if plan.rung_requests(k) > engine.batch_limit]
    ladder = [k for k in plan.ladder if plan.rung_requests(k) <= engine.batch_limit]
    steps, findings = [Step("load, R alone", request, (alone,))], []
    for variant, shared_cells in VARIANTS:
        rungs = []
        for background in ladder:
            together = [*plan.background(background), *[request] * plan.runs]
            results = await asyncio.to_thread(engine.decode_together, together, shared_cells)
            mine = [_indexed(result, i) for i, result in enumerate(results[background:])]
            rungs.append(load_rung(background, mine, text_of(alone)))
            steps.append(Step(f"load, K={background}, {variant}", request, tuple(mine)))
        findings.append(load_finding(rungs, (*skipped, *too_big), variant, against_alone=True))
    return (findings[0], findings[1]), steps
