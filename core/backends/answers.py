"""What a chat-completions server sent back, checked before anyone sees it: every string scrubbed of secrets and of
text that cannot be encoded, token counts and log-probabilities range-checked (impossible ones dropped, with a
notice), and a secret spelled out across tokens caught."""

from __future__ import annotations

import math
from dataclasses import fields, is_dataclass, replace
from typing import Any

from pydantic import BaseModel

from core.errors import BackendError, redact
from core.models import Completion, RunError, TokenLogprob, Usage, is_number, parse_logprobs, valid_text

MAX_TOKEN_COUNT = 2**31 - 1  # far above any context window, and what a 32-bit counter holds


def read_completion(parsed: Any, body: str, *, retries: int, secrets: tuple[str, ...]) -> Completion:
    """The Completion in the SDK's parsed answer (`body` is the raw text); BackendError when it holds no answer."""
    if not parsed.choices:
        raise BackendError(RunError("malformed", "The server answered with no choices."))
    choice = parsed.choices[0]
    if choice.finish_reason == "content_filter" and not choice.message.content:
        raise BackendError(RunError("content_filter", "The provider's content filter withheld this answer; "
                                    "rephrase the prompt."))
    usage, usage_notice = _usage(parsed.usage)
    logprobs, logprobs_notice = _logprobs(choice.logprobs)
    raw, spelled_notice = body, None
    if _spells_secret(logprobs, secrets):  # each piece passes a scrub, so the raw body's copies of them go too
        raw, logprobs, spelled_notice = None, None, ("The log-probabilities spelled out a secret across tokens; "
                                                     "they and the raw body were dropped.")
    return Completion(
        text=_text(choice.message.content) or "",
        finish_reason=_text(choice.finish_reason),
        system_fingerprint=_text(parsed.system_fingerprint),
        model=_text(parsed.model) or None,
        request_id=_text(parsed.id),
        usage=usage,
        logprobs=logprobs,
        retries=retries,
        raw=raw,
        notice=" ".join(notice for notice in (usage_notice, logprobs_notice, spelled_notice) if notice) or None,
    )


def scrubbed(value: Any, secrets: tuple[str, ...]) -> Any:
    """value with every string in it, nested ones too, freed of secrets and of text that cannot be encoded."""
    if isinstance(value, str):
        return valid_text(redact(value, secrets))
    if isinstance(value, tuple):
        return tuple(scrubbed(item, secrets) for item in value)
    if is_dataclass(value):
        return replace(value, **{f.name: scrubbed(getattr(value, f.name), secrets) for f in fields(value)})
    return value


def _text(value: Any) -> str | None:
    """A field the format says is a string; servers have sent numbers and objects there."""
    return value if value is None or isinstance(value, str) else str(value)


def _spells_secret(logprobs: tuple[TokenLogprob, ...] | None, secrets: tuple[str, ...]) -> bool:
    spelled = "".join(token.token for token in logprobs or ())
    return redact(spelled, secrets) != spelled


def _usage(usage: Any) -> tuple[Usage | None, str | None]:
    """The token counts, or None and a notice when the server reported counts no model can produce."""
    if usage is None:
        return None, None
    counts = {name: getattr(usage, name, None) for name in ("prompt_tokens", "completion_tokens", "total_tokens")}
    if isinstance(usage, BaseModel) and all(map(_is_token_count, counts.values())):
        return Usage(*(int(count or 0) for count in counts.values())), None
    shown = (", ".join(f"{name.removesuffix('_tokens')} {_shown_count(count)}" for name, count in counts.items())
             if isinstance(usage, BaseModel) else "not an object")
    return None, f"The server reported impossible token counts ({shown}); they were dropped."


def _is_token_count(value: Any) -> bool:
    """A whole number from 0 to MAX_TOKEN_COUNT (12.0 too); None is an absent count, taken as 0."""
    if value is None:
        return True
    return is_number(value) and 0 <= value <= MAX_TOKEN_COUNT and float(value).is_integer()


def _shown_count(value: Any) -> str:
    """A count as the server sent it, but only if it is a number: text there could be anything, a secret too."""
    if value is None:
        return "missing"
    if not is_number(value):
        return "not a number"
    shown = repr(value)
    return shown if len(shown) <= 24 else f"{shown[:12]}… ({len(shown)} digits)"


def _logprobs(logprobs: Any) -> tuple[tuple[TokenLogprob, ...] | None, str | None]:
    """The log-probabilities, or None and a notice when they are malformed or impossible (not finite, above 0)."""
    if not logprobs:
        return None, None
    try:
        parsed = parse_logprobs(logprobs.model_dump()) or ()
    except (ArithmeticError, AttributeError, LookupError, TypeError, ValueError):
        return None, "The server's log-probabilities were malformed; they were dropped."
    every = [*parsed, *(alternative for token in parsed for alternative in token.top)]
    if not all(isinstance(t.token, str) and math.isfinite(t.logprob) and t.logprob <= 0 for t in every):
        return None, "The server reported impossible log-probabilities (above 0 or not finite); they were dropped."
    return parsed or None, None
