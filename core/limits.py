"""What one visitor may spend: limits per experiment, requests per hour, and one cap on requests in flight for
the whole process, so ten visitors at once cannot set off a storm of 429s."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from core.errors import ConfigurationError, InvalidRequest
from core.models import MAX_PROMPT_CHARS, MAX_RUNS, MAX_TOKENS_LIMIT, RunRequest
from core.sweep import MAX_SWEEP_REQUESTS

if TYPE_CHECKING:
    from core.sweep import SweepPlan

HOUR_S = 3600.0


@dataclass(frozen=True)
class Limits:
    """Safe defaults for a shared showcase; each one is a REPRO_* variable (see VARIABLES)."""

    max_runs: int = 50
    max_tokens: int = 1024
    max_prompt_chars: int = 8000
    max_sweep_requests: int = 300
    confirm_above: int = 100
    requests_per_hour: int = 600
    global_concurrency: int = 16

    def __post_init__(self) -> None:
        bounds = {"max_runs": MAX_RUNS, "max_tokens": MAX_TOKENS_LIMIT, "max_prompt_chars": MAX_PROMPT_CHARS,
                  "max_sweep_requests": MAX_SWEEP_REQUESTS,
                  "confirm_above": 100_000, "requests_per_hour": 10_000_000, "global_concurrency": 1_000}
        for name, top in bounds.items():
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= top:
                raise ConfigurationError(f"{VARIABLES[name]} must be a whole number from 1 to {top:,}, got {value!r}.")

    def check(self, request: RunRequest, requests: int, *, sweep: SweepPlan | None = None) -> None:
        """Refuse an experiment (or a sweep, whose cells are experiments too) over the limits, naming the limit and
        its variable."""
        if sweep:
            self._within("max_sweep_requests", requests, "requests in one sweep")
            self._within("max_runs", sweep.runs, "runs per cell")
        else:
            self._within("max_runs", requests, "runs")
        if request.max_tokens > self.max_tokens:
            raise InvalidRequest(f"max_tokens {request.max_tokens} is over this instance's limit of {self.max_tokens} "
                                 f"({VARIABLES['max_tokens']}).")
        for label, text in (("prompt", request.prompt), ("system prompt", request.system)):
            if len(text) > self.max_prompt_chars:
                raise InvalidRequest(f"The {label} has {len(text):,} characters; this instance allows "
                                     f"{self.max_prompt_chars:,} ({VARIABLES['max_prompt_chars']}). Shorten it.")

    def _within(self, name: str, count: int, what: str) -> None:
        if count > getattr(self, name):
            raise InvalidRequest(f"{count} {what} is over this instance's limit of {getattr(self, name)} "
                                 f"({VARIABLES[name]}).")


VARIABLES = {
    "max_runs": "REPRO_MAX_RUNS",
    "max_tokens": "REPRO_MAX_TOKENS",
    "max_prompt_chars": "REPRO_MAX_PROMPT_CHARS",
    "max_sweep_requests": "REPRO_MAX_SWEEP_REQUESTS",
    "confirm_above": "REPRO_CONFIRM_ABOVE",
    "requests_per_hour": "REPRO_REQUESTS_PER_HOUR",
    "global_concurrency": "REPRO_GLOBAL_CONCURRENCY",
}


def load_limits(source: Mapping[str, Any]) -> Limits:
    """Limits from merged settings (core.config.read_sources); absent variables keep their defaults."""
    values = {}
    for f in fields(Limits):
        raw = source.get(VARIABLES[f.name])
        if raw in (None, ""):
            continue
        try:
            values[f.name] = int(raw)
        except (TypeError, ValueError):
            raise ConfigurationError(f"{VARIABLES[f.name]} must be a whole number, got {raw!r}.") from None
    return Limits(**values)


class Quota:
    """A sliding hour of requests for one visitor; thread-safe, since a visitor's reruns may overlap."""

    def __init__(self, per_hour: int, clock=time.monotonic):
        self.per_hour = per_hour
        self._clock = clock
        self._sent: deque[float] = deque()
        self._lock = threading.Lock()

    def _expire(self, now: float) -> None:
        while self._sent and self._sent[0] <= now - HOUR_S:
            self._sent.popleft()

    def remaining(self) -> int:
        with self._lock:
            self._expire(self._clock())
            return self.per_hour - len(self._sent)

    def take(self, requests: int) -> None:
        """Count `requests` now, or refuse them all (nothing sent) with when enough frees up."""
        with self._lock:
            now = self._clock()
            self._expire(now)
            left = self.per_hour - len(self._sent)
            if requests > left:
                wait = ""
                if requests <= self.per_hour and self._sent:
                    frees_at = self._sent[requests - left - 1] + HOUR_S
                    wait = f" Enough frees up in {max(1, round((frees_at - now) / 60))} min."
                raise InvalidRequest(f"This needs {requests} requests but {left} of your {self.per_hour} per hour "
                                     f"are left (REPRO_REQUESTS_PER_HOUR).{wait}")
            self._sent.extend([now] * requests)
