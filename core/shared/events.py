"""Structured logs for hosting: one JSON line per experiment (who, backend, N, outcome, cost), written to stderr
through the "repro.events" logger once the experiment's results have stopped arriving.

The line carries counts, error kinds and token totals only: never an error message (a server may echo a key in it),
never a key, and the prompt only when the operator opts in with REPRO_LOG_PROMPTS=1.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from core.models import BackendInfo, RunRequest, RunResult

T = TypeVar("T")
LOG_PROMPTS = "REPRO_LOG_PROMPTS"


def prompts_opted_in(source: Mapping[str, Any]) -> bool:
    """Whether REPRO_LOG_PROMPTS asks for the prompt and system prompt in each line."""
    return str(source.get(LOG_PROMPTS) or "").strip().lower() in ("1", "true", "yes", "on")


@functools.cache
def _event_log() -> logging.Logger:
    """The "repro.events" logger: bare JSON lines on stderr, kept apart from Streamlit's own log format."""
    logger = logging.getLogger("repro.events")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


@dataclass(frozen=True)
class Experiment:
    """What the line says about an experiment before its results arrive; `request` is None for a suite, whose
    prompts differ."""

    who: str
    backend: BackendInfo
    request: RunRequest | None
    runs_planned: int
    kind: str = "experiment"
    experiment_id: str | None = None
    log_prompt: bool = field(default=False, repr=False)


def experiment_line(experiment: Experiment, results: list[RunResult], outcome: str, duration_s: float) -> str:
    """The JSON line for `experiment` once `results` have arrived and it ended with `outcome`."""
    ok = [result for result in results if result.ok]
    usages = [result.usage for result in results if result.usage]
    event: dict[str, Any] = {
        "event": "experiment", "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "who": experiment.who, "kind": experiment.kind, "experiment_id": experiment.experiment_id,
        "backend": {"provider": experiment.backend.provider, "model": experiment.backend.model,
                    "endpoint_host": experiment.backend.endpoint_host},
        "runs_planned": experiment.runs_planned, "runs_received": len(results), "outcome": outcome,
        "ok": len(ok), "failed": len(results) - len(ok),
        "errors": dict(Counter(result.error.kind for result in results if result.error)),
        "distinct_answers": len({result.text for result in ok}),
        "cost": {"requests": len(results), "prompt_tokens": sum(usage.prompt_tokens for usage in usages),
                 "completion_tokens": sum(usage.completion_tokens for usage in usages),
                 "total_tokens": sum(usage.total_tokens for usage in usages)},
        "duration_s": round(duration_s, 3),
    }
    if experiment.request:
        event["request"] = _request_fields(experiment.request, experiment.log_prompt)
    return json.dumps(event, ensure_ascii=False, sort_keys=True)


def _request_fields(request: RunRequest, log_prompt: bool) -> dict[str, Any]:
    fields = {"temperature": request.temperature, "top_p": request.top_p, "max_tokens": request.max_tokens,
              "seed": request.seed, "prompt_chars": len(request.prompt)}
    return (fields | {"prompt": request.prompt, "system": request.system}) if log_prompt else fields


def logged(experiment: Experiment, results: Iterator[T], run_of: Callable[[T], RunResult] = lambda item: item,
           write: Callable[[str], None] | None = None) -> Iterator[T]:
    """`results`, passed through unchanged; once they stop (all arrived, closed early, or failed) the experiment's
    line is written (by default to the "repro.events" logger). `run_of` finds the RunResult in an item (a sweep's
    items are (cell, result) pairs)."""
    arrived: list[RunResult] = []
    started, outcome = time.monotonic(), "failed"
    try:
        for item in results:
            arrived.append(run_of(item))
            yield item
        outcome = "complete" if len(arrived) == experiment.runs_planned else "incomplete"
    except GeneratorExit:
        outcome = "cancelled"
        raise
    finally:
        close = getattr(results, "close", None)
        if close:
            close()  # closing this generator must cancel the runs still in flight, as closing `results` does
        (write or _event_log().info)(experiment_line(experiment, arrived, outcome, time.monotonic() - started))
