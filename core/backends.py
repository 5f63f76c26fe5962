"""One seam for every provider: a Backend turns a RunRequest into a Completion.

Azure, OpenAI and any OpenAI-compatible server share the official SDK's async client; the embedded
model lives in core/local.py. The runner never knows which one it holds.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

import openai

from core.config import Settings, check_url, is_azure_v1
from core.errors import BackendError, ConfigurationError, redact
from core.models import BackendInfo, Completion, RunError, RunRequest, Usage, parse_logprobs

PLACEHOLDER_KEY = "EMPTY"  # what vLLM's docs send when a server wants no key; never a real key from elsewhere
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
        try:
            return await self._complete(request)
        except BackendError as exc:
            if not (request.logprobs and exc.error.kind == "bad_request" and "logprob" in exc.error.message.lower()):
                raise
        completion = await self._complete(replace(request, logprobs=False))
        return replace(completion, notice="This deployment does not return logprobs; the run was sent again "
                                          "without them.")

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
        except Exception as exc:  # noqa: BLE001 - whatever the SDK raised, its text may hold a secret
            message = redact(f"{type(exc).__name__}: {exc}", self._settings.secrets)
            raise BackendError(RunError("unexpected", message)) from None
        return _completion(parsed, body, retries=max(attempts[0] - 1, 0), secrets=self._settings.secrets)

    def _translate(self, exc: openai.OpenAIError, retries: int) -> RunError:
        """SDK errors become RunErrors once, here: a kind, the fix, and never a secret."""
        secrets = self._settings.secrets
        detail = redact(_server_message(exc), secrets)
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
            kind, message = "unexpected", redact(f"{type(exc).__name__}: {exc}", secrets)
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
    usage = parsed.usage
    return Completion(
        text=redact(choice.message.content or "", secrets),
        finish_reason=choice.finish_reason,
        system_fingerprint=parsed.system_fingerprint,
        model=redact(parsed.model or "", secrets) or None,
        request_id=parsed.id,
        usage=Usage(usage.prompt_tokens or 0, usage.completion_tokens or 0, usage.total_tokens or 0) if usage else None,
        logprobs=parse_logprobs(choice.logprobs.model_dump() if choice.logprobs else None),
        retries=retries,
        raw=redact(body, secrets),
    )


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
