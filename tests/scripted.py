"""A backend that answers from a script, for tests of the runner's callers and the pages (no network, no model)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from core.errors import BackendError
from core.models import BackendInfo, Completion, RunError, RunRequest, Usage

Answer = Callable[[RunRequest, int], "str | RunError"]


class ScriptedBackend:
    """`answer(request, call_number)` gives the text, or a RunError to fail that call; the fingerprints are
    handed out in turn; with `stagger_s`, call k answers after (k + 1) × stagger_s, without blocking the others."""

    max_concurrency = None

    def __init__(self, answer: Answer, fingerprints: Sequence[str | None] = ("fp_scripted",), stagger_s: float = 0.0):
        self.info = BackendInfo("compatible", "scripted-model", "scripted.invalid")
        self.answer = answer
        self.fingerprints = fingerprints
        self.stagger_s = stagger_s
        self.calls: list[RunRequest] = []

    async def complete(self, request: RunRequest) -> Completion:
        number = len(self.calls)
        self.calls.append(request)
        await asyncio.sleep((number + 1) * self.stagger_s)
        out = self.answer(request, number)
        if isinstance(out, RunError):
            raise BackendError(out)
        words = len(out.split())
        return Completion(text=out, finish_reason="stop", system_fingerprint=self.fingerprints[number % len(self.fingerprints)], model="scripted-model",
                          request_id=f"scripted-{number}", usage=Usage(5, words, 5 + words))


def texts(*answers: str) -> Answer:
    """Answer the calls with these texts in turn, then repeat the last."""
    return lambda request, number: answers[min(number, len(answers) - 1)]


def by_seed(request: RunRequest, number: int) -> str:
    """The same words for a seed; different words for every unseeded call."""
    return f"The red panda climbed tree {request.seed}." if request.seed is not None else f"Story number {number}."
