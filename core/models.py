"""The values that flow through the engine: a request, a batch plan, what a backend returns, and a run's result.

Every value validates itself at construction and says which field was wrong and how to fix it.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from core.errors import InvalidRequest

SEED_MIN, SEED_MAX = -(2**63), 2**63 - 1
MAX_RUNS = 1000
MAX_SWEEP_REQUESTS = 2000
MAX_PROMPT_CHARS = 32_000
MAX_TOKENS_LIMIT = 16_384
MAX_TOP_LOGPROBS = 20
_NO_SEED_WORDS = ("none", "off", "-", "")
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# A str holds a surrogate only unpaired: Python's stand-in for bytes that were not valid UTF-8 (argv, JSON escapes).
_LONE_SURROGATES = re.compile("[\ud800-\udfff]")


def is_number(value: Any) -> bool:
    """A real int or float; True and False are not numbers here."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_integer(value: Any) -> bool:
    """A real int; True and False are not."""
    return isinstance(value, int) and not isinstance(value, bool)


def valid_text(text: str) -> str:
    """text with each unpaired surrogate replaced by U+FFFD, so it can be encoded, stored and printed."""
    return _LONE_SURROGATES.sub("\ufffd", text)


def parse_seed(text: str) -> int | None:
    """A seed as people write it: a whole number, or none ("none", "off", "-" or nothing at all)."""
    if text.strip().lower() in _NO_SEED_WORDS:
        return None
    try:
        return int(text)
    except ValueError:
        raise InvalidRequest(f"seed must be a whole number or 'none', got {text!r}.") from None


def _without_negative_zero(value: Any) -> Any:
    """-0.0 as 0.0, so no message or table ever shows "-0"."""
    return 0.0 if is_number(value) and value == 0 and math.copysign(1, value) < 0 else value


def _check_text(name: str, value: Any, *, required: bool) -> None:
    if not isinstance(value, str):
        raise InvalidRequest(f"{name} must be text, got {type(value).__name__}.")
    if required and not value.strip():
        raise InvalidRequest(f"{name} is empty: type the text the model should answer.")
    if len(value) > MAX_PROMPT_CHARS:
        raise InvalidRequest(
            f"{name} has {len(value):,} characters; the limit is {MAX_PROMPT_CHARS:,}. Shorten it."
        )
    bad = _CONTROL_CHARS.search(value)
    if bad:
        raise InvalidRequest(
            f"{name} contains the control character U+{ord(bad.group()):04X} at position {bad.start()}; "
            "remove it (tabs and line breaks are fine)."
        )
    invalid = _LONE_SURROGATES.search(value)
    if invalid:
        raise InvalidRequest(
            f"{name} contains bytes that are not valid UTF-8 at position {invalid.start()}; "
            "retype that part or save the text as UTF-8."
        )


@dataclass(frozen=True)
class RunRequest:
    """One chat completion, sent N times identically."""

    prompt: str
    system: str = ""
    temperature: float = 0.1
    top_p: float = 1.0
    max_tokens: int = 256
    seed: int | None = None
    logprobs: bool = False
    top_logprobs: int = 5

    def __post_init__(self) -> None:
        object.__setattr__(self, "temperature", _without_negative_zero(self.temperature))
        object.__setattr__(self, "top_p", _without_negative_zero(self.top_p))
        _check_text("prompt", self.prompt, required=True)
        _check_text("system prompt", self.system, required=False)
        if not is_number(self.temperature) or not math.isfinite(self.temperature):
            raise InvalidRequest(f"temperature must be a number from 0 to 2, got {self.temperature!r}.")
        if not 0 <= self.temperature <= 2:
            raise InvalidRequest(f"temperature {self.temperature} is outside 0–2; pick a value from 0 to 2.")
        if not is_number(self.top_p) or not math.isfinite(self.top_p) or not 0 < self.top_p <= 1:
            raise InvalidRequest(f"top_p must be above 0 and at most 1, got {self.top_p!r}.")
        if not is_integer(self.max_tokens) or not 1 <= self.max_tokens <= MAX_TOKENS_LIMIT:
            raise InvalidRequest(
                f"max_tokens must be a whole number from 1 to {MAX_TOKENS_LIMIT:,}, got {self.max_tokens!r}."
            )
        if self.seed is not None:
            if not is_integer(self.seed):
                raise InvalidRequest(f"seed must be a whole number (or none), got {self.seed!r}.")
            if not SEED_MIN <= self.seed <= SEED_MAX:
                raise InvalidRequest(
                    f"seed {self.seed} is outside the signed 64-bit range ({SEED_MIN} to {SEED_MAX})."
                )
        if not isinstance(self.logprobs, bool):
            raise InvalidRequest(f"logprobs must be true or false, got {self.logprobs!r}.")
        if not is_integer(self.top_logprobs) or not 0 <= self.top_logprobs <= MAX_TOP_LOGPROBS:
            raise InvalidRequest(f"top_logprobs must be from 0 to {MAX_TOP_LOGPROBS}, got {self.top_logprobs!r}.")

    def messages(self) -> list[dict[str, str]]:
        """The chat messages every backend sends: the system prompt (when there is one), then the prompt."""
        system = [{"role": "system", "content": self.system}] if self.system else []
        return [*system, {"role": "user", "content": self.prompt}]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class BatchPlan:
    """How many identical runs, and how many may be in flight at once."""

    runs: int = 5
    concurrency: int = 10

    def __post_init__(self) -> None:
        if not is_integer(self.runs) or not 1 <= self.runs <= MAX_RUNS:
            raise InvalidRequest(f"runs must be a whole number from 1 to {MAX_RUNS}, got {self.runs!r}.")
        if not is_integer(self.concurrency) or not 1 <= self.concurrency <= MAX_RUNS:
            raise InvalidRequest(
                f"concurrency must be a whole number from 1 to {MAX_RUNS}, got {self.concurrency!r}."
            )


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


@dataclass(frozen=True)
class Alternative:
    token: str
    logprob: float


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token, its log-probability and the top alternatives the backend considered."""

    token: str
    logprob: float
    top: tuple[Alternative, ...] = ()


def parse_logprobs(logprobs: dict[str, Any] | None) -> tuple[TokenLogprob, ...] | None:
    """Read the chat-completions `logprobs` object ({"content": [{token, logprob, top_logprobs}, …]})."""
    if not logprobs or not logprobs.get("content"):
        return None
    return tuple(
        TokenLogprob(item["token"], float(item["logprob"]),
                     tuple(Alternative(a["token"], float(a["logprob"])) for a in item.get("top_logprobs") or ()))
        for item in logprobs["content"]
    )


@dataclass(frozen=True)
class RunError:
    """Why a run failed: a short kind for code (auth, rate_limit, timeout, …) and a message for people."""

    kind: str
    message: str
    status: int | None = None


@dataclass(frozen=True, kw_only=True)
class _Answered:
    """What a backend reports beside the text; shared by a Completion and the RunResult made from it."""

    finish_reason: str | None = None
    system_fingerprint: str | None = None
    model: str | None = None
    request_id: str | None = None
    usage: Usage | None = None
    logprobs: tuple[TokenLogprob, ...] | None = None
    retries: int = 0
    raw: str | None = field(default=None, repr=False)
    notice: str | None = None


@dataclass(frozen=True, kw_only=True)
class Completion(_Answered):
    """What a backend returns for one request; `notice` says what the backend had to change to get it."""

    text: str

    def noted(self, notice: str) -> Completion:
        """This completion with one more notice after any it already carries."""
        return replace(self, notice=f"{self.notice} {notice}" if self.notice else notice)


@dataclass(frozen=True, kw_only=True)
class RunResult(_Answered):
    """One of the N runs: the completion's fields, or an error, plus the index and latency."""

    index: int
    latency_ms: float
    text: str | None = None
    error: RunError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @classmethod
    def succeeded(cls, index: int, latency_ms: float, completion: Completion) -> RunResult:
        return cls(index=index, latency_ms=latency_ms, **{f: getattr(completion, f) for f in _COMPLETION_FIELDS})

    @classmethod
    def failed(cls, index: int, latency_ms: float, error: RunError, retries: int = 0) -> RunResult:
        return cls(index=index, latency_ms=latency_ms, error=error, retries=retries)

    def to_dict(self, *, raw: bool = False) -> dict[str, Any]:
        data = asdict(self)
        if not raw:
            data.pop("raw")
        return data


_COMPLETION_FIELDS = tuple(Completion.__dataclass_fields__)


@dataclass(frozen=True)
class BackendInfo:
    """Who answers: safe to show and to store, never holds a secret."""

    provider: str
    model: str
    endpoint_host: str | None = None
    api_version: str | None = None
    mode: str | None = None

    @property
    def label(self) -> str:
        parts = [self.provider, self.model]
        if self.endpoint_host:
            parts.append(f"@ {self.endpoint_host}")
        if self.api_version:
            parts.append(f"({self.api_version})")
        if self.mode:
            parts.append(f"[{self.mode}]")
        return " ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
