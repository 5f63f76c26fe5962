"""One seam for every provider: a Backend turns a RunRequest into a Completion.

Azure, OpenAI and any OpenAI-compatible server share the official SDK's async client; the embedded
model lives in core/local.py. The runner never knows which one it holds.
"""

from __future__ import annotations

import asyncio
import contextvars
import math
from collections.abc import Callable
from dataclasses import fields, is_dataclass, replace
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

import openai
from pydantic import BaseModel

from core.config import Settings, check_url, is_azure_v1
from core.errors import BackendError, ConfigurationError, redact
from core.models import (BackendInfo, Completion, RunError, RunRequest, TokenLogprob, Usage, is_number, parse_logprobs,
                         valid_text)

PLACEHOLDER_KEY = "EMPTY"  # what vLLM's docs send when a server wants no key; never a real key from elsewhere
MAX_TOKEN_COUNT = 2**31 - 1  # far above any context window, and what a 32-bit counter holds
_attempts: contextvars.ContextVar[list[int]] = contextvars.ContextVar("attempts")


@runtime_checkable
class Backend(Protocol):
    info: BackendInfo
    max_concurrency: int | None  # None: the runner's cap alone decides

    async def complete(self, request: RunRequest) -> Completion:
        """Send one request; raise BackendError (with a RunError) when it fails."""


class OpenAIChatBackend:
    """Chat completions through the official SDK's async client (Azure, OpenAI or compatible)."""

    max_concurrency = None

    def __init__(self, info: BackendInfo, make_client: Callable[..., openai.AsyncOpenAI], *,
                 model: str, settings: Settings, hints: dict[str, str]):
        self.info = info
        self._make_client = make_client
        self._model = model
        self._settings = settings
        self._hints = hints
        self._clients: dict[asyncio.AbstractEventLoop, openai.AsyncOpenAI] = {}

    def _client(self) -> openai.AsyncOpenAI:
        """One client per event loop: the SDK's async client must live in the loop that uses it."""
        loop = asyncio.get_running_loop()
        # A client holds its loop through its connections, so a weak mapping would never let go: drop closed ones.
        self._clients = {known: client for known, client in self._clients.items() if not known.is_closed()}
        client = self._clients.get(loop)
        if client is None:
            http_client = openai.DefaultAsyncHttpxClient(event_hooks={"request": [_count_attempt]})
            client = self._make_client(
                timeout=self._settings.timeout_s, max_retries=self._settings.max_retries, http_client=http_client
            )
            self._clients[loop] = client
        return client

    def _params(self, request: RunRequest) -> dict[str, Any]:
        messages = [{"role": "system", "content": request.system}] if request.system else []
        messages.append({"role": "user", "content": request.prompt})
        params: dict[str, Any] = {
            "model": self._model,
            "messages": messages,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "max_tokens": request.max_tokens,
        }
        if request.seed is not None:
            params["seed"] = request.seed
        if request.logprobs:
            params["logprobs"] = True
            params["top_logprobs"] = request.top_logprobs
        return params

    async def complete(self, request: RunRequest) -> Completion:
        """Send one request; what the server sent back is scrubbed here, in an answer and in an error alike."""
        secrets = self._settings.secrets
        try:
            completion = await self._complete_or_resend(request)
        except BackendError as exc:
            raise BackendError(_scrubbed(exc.error, secrets)) from None
        return _scrubbed(completion, secrets)

    async def _complete_or_resend(self, request: RunRequest) -> Completion:
        try:
            return await self._complete(request)
        except BackendError as exc:
            if not (request.logprobs and exc.error.kind == "bad_request" and "logprob" in exc.error.message.lower()):
                raise
        completion = await self._complete(replace(request, logprobs=False))
        return completion.noted("This deployment does not return logprobs; the run was sent again without them.")

    async def _complete(self, request: RunRequest) -> Completion:
        attempts = [0]
        _attempts.set(attempts)
        try:
            raw = await self._client().chat.completions.with_raw_response.create(**self._params(request))
            body = raw.text
            parsed = raw.parse()
        except openai.OpenAIError as exc:
            raise BackendError(self._translate(exc, retries=max(attempts[0] - 1, 0))) from None
        except ValueError as exc:  # a body that is not JSON
            raise BackendError(RunError("malformed", f"The server's answer was not valid JSON: {exc}.")) from None
        except Exception as exc:  # noqa: BLE001 - whatever the SDK raised becomes this run's error
            raise BackendError(RunError("unexpected", f"{type(exc).__name__}: {exc}")) from None
        try:
            return _completion(parsed, body, retries=max(attempts[0] - 1, 0), secrets=self._settings.secrets)
        except (AttributeError, LookupError, TypeError) as exc:  # JSON, but not shaped like a chat completion
            raise BackendError(RunError("malformed", "The server's answer did not match the chat-completions "
                                                     f"format ({type(exc).__name__}: {exc}).")) from None

    def _translate(self, exc: openai.OpenAIError, retries: int) -> RunError:
        """SDK errors become RunErrors once, here: a kind and the fix (complete() scrubs what the server said)."""
        detail = _server_message(exc)
        after = f" (after {retries} retries)" if retries else ""
        status = getattr(exc, "status_code", None)
        if isinstance(exc, openai.APITimeoutError):
            kind, message = "timeout", f"No answer within {self._settings.timeout_s:g} s{after}; raise REPRO_TIMEOUT or retry later."
        elif isinstance(exc, openai.APIConnectionError):
            kind, message = "connection", f"Could not reach {self.info.endpoint_host}{after}: check {self._hints['endpoint']} and the network."
        elif isinstance(exc, (openai.AuthenticationError, openai.PermissionDeniedError)):
            kind, message = "auth", f"The endpoint refused the credentials ({status}): check {self._hints['key']}. {detail}"
        elif isinstance(exc, openai.NotFoundError):
            kind, message = "not_found", f"Not found (404): check {self._hints['model']} and {self._hints['endpoint']}. {detail}"
        elif isinstance(exc, openai.RateLimitError):
            kind, message = "rate_limit", f"Rate limited (429){after}: lower the runs or concurrency, or wait. {detail}"
        elif isinstance(exc, openai.InternalServerError):
            kind, message = "server", f"The server failed ({status}){after}. {detail}"
        elif isinstance(exc, openai.BadRequestError):
            kind, message = "bad_request", f"The server rejected the request (400): {detail}"
        elif isinstance(exc, openai.APIStatusError):
            kind, message = "http", f"HTTP {status}: {detail}"
        elif isinstance(exc, openai.APIResponseValidationError):
            kind, message = "malformed", f"The server's answer did not match the chat-completions format. {detail}"
        else:
            kind, message = "unexpected", f"{type(exc).__name__}: {exc}"
        return RunError(kind, message.strip(), status)


async def _count_attempt(request: Any) -> None:
    attempts = _attempts.get(None)
    if attempts is not None:
        attempts[0] += 1


def _server_message(exc: openai.OpenAIError) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
    return getattr(exc, "message", None) or str(exc)


def _completion(parsed: Any, body: str, *, retries: int, secrets: tuple[str, ...]) -> Completion:
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


def _scrubbed(value: Any, secrets: tuple[str, ...]) -> Any:
    """value with every string in it, nested ones too, freed of secrets and of text that cannot be encoded."""
    if isinstance(value, str):
        return valid_text(redact(value, secrets))
    if isinstance(value, tuple):
        return tuple(_scrubbed(item, secrets) for item in value)
    if is_dataclass(value):
        return replace(value, **{f.name: _scrubbed(getattr(value, f.name), secrets) for f in fields(value)})
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


def _host(url: str | None) -> str | None:
    """host[:port] of a URL, without any user:password@ it may carry."""
    if not url:
        return None
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}" if parts.port else parts.hostname


def azure_backend(settings: Settings) -> OpenAIChatBackend:
    endpoint = check_url("OPENAI_API_BASE / AZURE_OPENAI_ENDPOINT", settings.azure_endpoint)
    v1 = is_azure_v1(endpoint)
    credentials: dict[str, Any] = {"api_key": settings.azure_api_key}
    if not settings.azure_api_key:
        # The async client awaits its token provider: the aio flavour gives one it can await.
        from azure.identity.aio import DefaultAzureCredential, get_bearer_token_provider

        credentials = {"azure_ad_token_provider": get_bearer_token_provider(
            DefaultAzureCredential(), "https://cognitiveservices.azure.com/.default")}
    if v1:
        def make_client(**kw: Any) -> openai.AsyncOpenAI:
            key = credentials.get("api_key") or credentials["azure_ad_token_provider"]
            return openai.AsyncOpenAI(base_url=endpoint, api_key=key, **kw)
    else:
        def make_client(**kw: Any) -> openai.AsyncOpenAI:
            return openai.AsyncAzureOpenAI(azure_endpoint=endpoint, azure_deployment=settings.azure_deployment,
                                           api_version=settings.azure_api_version, **credentials, **kw)

    info = BackendInfo("azure", settings.azure_deployment, _host(endpoint), None if v1 else settings.azure_api_version)
    hints = {"endpoint": "OPENAI_API_BASE", "key": settings.azure_key_variable, "model": "OPENAI_API_DEPLOY"}
    return OpenAIChatBackend(info, make_client, model=settings.azure_deployment, settings=settings, hints=hints)


def openai_backend(settings: Settings) -> OpenAIChatBackend:
    base_url = check_url("OPENAI_BASE_URL", settings.openai_base_url) if settings.openai_base_url else None

    def make_client(**kw: Any) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(api_key=settings.openai_api_key, base_url=base_url, **kw)

    info = BackendInfo("openai", settings.openai_model, _host(base_url) or "api.openai.com")
    hints = {"endpoint": "OPENAI_BASE_URL", "key": "OPENAI_API_KEY", "model": "OPENAI_MODEL"}
    return OpenAIChatBackend(info, make_client, model=settings.openai_model, settings=settings, hints=hints)


def compatible_backend(settings: Settings) -> OpenAIChatBackend:
    base_url = check_url("COMPATIBLE_BASE_URL", settings.compatible_base_url)

    def make_client(**kw: Any) -> openai.AsyncOpenAI:
        # An explicit key always: the SDK would otherwise read OPENAI_API_KEY and send it to this server.
        return openai.AsyncOpenAI(api_key=settings.compatible_api_key or PLACEHOLDER_KEY, base_url=base_url, **kw)

    info = BackendInfo("compatible", settings.compatible_model, _host(base_url))
    hints = {"endpoint": "COMPATIBLE_BASE_URL", "key": "COMPATIBLE_API_KEY", "model": "COMPATIBLE_MODEL"}
    return OpenAIChatBackend(info, make_client, model=settings.compatible_model, settings=settings, hints=hints)


def make_backend(settings: Settings) -> Backend:
    """The backend `settings.backend` names (auto: the first configured), validated before anything is sent."""
    provider = settings.resolve()
    if provider == "local":
        from core.local import LocalBackend

        return LocalBackend(model_path=settings.local_model_path, mode=settings.local_mode)
    factories = {"azure": azure_backend, "openai": openai_backend, "compatible": compatible_backend}
    try:
        return factories[provider](settings)
    except openai.OpenAIError as exc:
        raise ConfigurationError(redact(str(exc), settings.secrets)) from None
