"""Chat completions through the official SDK's async client, for every provider of the OpenAI family (azure.py,
openai.py, compatible.py): the one place that calls the SDK, translates its errors and scrubs what the server sent
back (answers.py). Also what those providers' configs share: one API key, a base URL, the rows they show.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import re
import ssl
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import httpx2
import openai
from openai._constants import RAW_RESPONSE_HEADER
from openai.types.chat import ChatCompletion

from core.backends.answers import read_completion, scrubbed
from core.backends.registry import BackendSettings
from core.errors import BackendError, ConfigurationError
from core.models import BackendInfo, Completion, RunError, RunRequest

_attempts: contextvars.ContextVar[list[int]] = contextvars.ContextVar("attempts")
# The names the answer's token limit can go under: reasoning models refuse max_tokens and take only the second.
TOKEN_LIMITS = ("max_tokens", "max_completion_tokens")
_token_limit: contextvars.ContextVar[str] = contextvars.ContextVar("token_limit", default=TOKEN_LIMITS[0])
# Connections per SDK client (see _Lanes); 4 to 25 measured within 10 % of each other in CPU per request at N=1,000.
POOL_CONNECTIONS = 8
_NOT_HEADER_TEXT = re.compile(r"[^\x20-\x7e]")  # what an HTTP header value may not hold: controls and non-ASCII


class OpenAIChatBackend:
    """Chat completions through the official SDK's async client (Azure, OpenAI or compatible)."""

    max_concurrency = None

    def __init__(self, info: BackendInfo, make_client: Callable[..., openai.AsyncOpenAI], *,
                 model: str, settings: BackendSettings, hints: dict[str, str]):
        self.info = info
        self._make_client = make_client
        self._model = model
        self._settings = settings
        self._hints = hints
        self._lanes: dict[asyncio.AbstractEventLoop, _Lanes] = {}
        # N identical requests share one body: built once, not converted again by the SDK for each of them.
        self._body = functools.lru_cache(maxsize=64)(self._params)

    def _lanes_of_this_loop(self) -> _Lanes:
        """One set of clients per event loop: the SDK's async client must live in the loop that uses it."""
        loop = asyncio.get_running_loop()
        # A client holds its loop through its connections, so a weak mapping would never let go: drop closed ones.
        self._lanes = {known: lanes for known, lanes in self._lanes.items() if not known.is_closed()}
        lanes = self._lanes.get(loop)
        if lanes is None:
            lanes = self._lanes[loop] = _Lanes(self._new_client)
        return lanes

    def _new_client(self) -> openai.AsyncOpenAI:
        http_client = openai.DefaultAsyncHttpxClient(
            event_hooks={"request": [_count_attempt]}, verify=_tls_context(),
            limits=httpx2.Limits(max_connections=POOL_CONNECTIONS, max_keepalive_connections=POOL_CONNECTIONS))
        return self._make_client(
            timeout=self._settings.timeout_s, max_retries=self._settings.max_retries, http_client=http_client)

    def _params(self, request: RunRequest, token_limit: str) -> dict[str, Any]:
        """The request body, its keys in the order chat.completions.create writes them, so the bytes match too;
        `token_limit` names the key max_tokens goes under (both sort to the same place)."""
        logprobs = {"logprobs": True} if request.logprobs else {}
        seed = {"seed": request.seed} if request.seed is not None else {}
        top_logprobs = {"top_logprobs": request.top_logprobs} if request.logprobs else {}
        return {"model": self._model, "messages": request.messages(), **logprobs, token_limit: request.max_tokens,
                **seed, "temperature": request.temperature, **top_logprobs, "top_p": request.top_p}

    async def complete(self, request: RunRequest) -> Completion:
        """Send one request; what the server sent back is scrubbed here, in an answer and in an error alike."""
        secrets = self._settings.secrets
        try:
            completion = await self._complete_or_resend(request)
        except BackendError as exc:
            raise BackendError(scrubbed(exc.error, secrets)) from None
        return scrubbed(completion, secrets)

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
            raw = await self._post(request)
            body = raw.text
            parsed = raw.parse()
        except openai.OpenAIError as exc:
            raise BackendError(self._translate(exc, retries=max(attempts[0] - 1, 0))) from None
        except ValueError as exc:  # a body that is not JSON
            raise BackendError(RunError("malformed", f"The server's answer was not valid JSON: {exc}.")) from None
        except Exception as exc:  # noqa: BLE001 - whatever the SDK raised becomes this run's error
            raise BackendError(RunError("unexpected", f"{type(exc).__name__}: {exc}")) from None
        try:
            return read_completion(parsed, body, retries=max(attempts[0] - 1, 0), secrets=self._settings.secrets)
        except (AttributeError, LookupError, TypeError) as exc:  # JSON, but not shaped like a chat completion
            raise BackendError(RunError("malformed", "The server's answer did not match the chat-completions "
                                                     f"format ({type(exc).__name__}: {exc}).")) from None

    async def _post(self, request: RunRequest) -> Any:
        """The SDK's own post, as chat.completions.with_raw_response.create makes it, minus converting the same
        parameters again for each identical request; on a client with a free connection."""
        lanes = self._lanes_of_this_loop()
        lane = lanes.take()
        try:
            return await lanes.clients[lane].post("/chat/completions", cast_to=ChatCompletion,
                                                  body=self._body(request, _token_limit.get()),
                                                  options=_raw_chat_options())
        finally:
            lanes.give_back(lane)

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


@contextlib.contextmanager
def sending_token_limit_as(name: str) -> Iterator[None]:
    """Requests started inside this block (and the tasks they start) send max_tokens under `name`, one of
    TOKEN_LIMITS; a backend that is not an HTTP endpoint has no such name and ignores it."""
    token = _token_limit.set(name)
    try:
        yield
    finally:
        _token_limit.reset(token)


class _Lanes:
    """SDK clients of POOL_CONNECTIONS connections each, one more whenever every pool is full.

    httpcore looks at every connection of its pool on each request and on each response's close, so one pool of N
    connections costs N² checks in a batch of N; small pools keep that constant per request."""

    def __init__(self, new_client: Callable[[], openai.AsyncOpenAI]):
        self._new_client = new_client
        self.clients: list[openai.AsyncOpenAI] = []
        self._free: list[int] = []  # a client's position once for each of its free connections

    def take(self) -> int:
        """The position of a client with a free connection, held until `give_back`."""
        if not self._free:
            self.clients.append(self._new_client())
            self._free.extend([len(self.clients) - 1] * POOL_CONNECTIONS)
        return self._free.pop()

    def give_back(self, lane: int) -> None:
        self._free.append(lane)


def _raw_chat_options() -> openai.RequestOptions:
    """What chat.completions.with_raw_response.create passes to post: the key's header, the raw answer kept."""
    return {"headers": {RAW_RESPONSE_HEADER: "true"}, "security": {"bearer_auth": True}}


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """httpx's default TLS context, made once: loading the CA bundle for each client costs ~40 ms."""
    return httpx2.create_ssl_context()


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


class ChatConfig:
    """What the configs of the OpenAI family share: one API key, in `api_key` and named by `key_variable`, refused
    when it cannot go into an HTTP header and shown only as set or not; `info` says who answers."""

    api_key: Any
    key_variable: str
    info: BackendInfo

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.api_key,) if self.api_key else ()

    def check(self) -> None:
        """Refuse a key that cannot go into an HTTP header, naming its variable and never the key."""
        problem = self.api_key and key_problem(self.api_key)
        if problem:
            raise ConfigurationError(f"{self.key_variable} {problem}")

    def describe(self) -> list[tuple[str, str]]:
        rows = [("Model", self.info.model)]
        if self.info.endpoint_host:
            rows.append(("Endpoint", self.info.endpoint_host))
        if self.info.api_version:
            rows.append(("API version", self.info.api_version))
        return [*rows, ("Key", "set" if self.api_key else "not set")]


def check_url(name: str, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        shown = value if "@" not in value else "a value with user:password@ in it"
        raise ConfigurationError(f"{name} must be an http(s) URL such as https://example.com/, got {shown!r}.")
    return value


def host(url: str | None) -> str | None:
    """host[:port] of a URL, without any user:password@ it may carry."""
    if not url:
        return None
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}" if parts.port else parts.hostname


def key_problem(key: Any) -> str | None:
    """Why key cannot go into an HTTP header as it is, in words that never repeat it (None when it can)."""
    if not isinstance(key, str):
        return f"must be text, got {type(key).__name__}."
    if key != key.strip():
        end, blank = ("starts", key[0]) if key[0].isspace() else ("ends", key[-1])
        return f"{end} with {_blank_name(blank)}; remove it (a key has none at either end)."
    odd = _NOT_HEADER_TEXT.search(key)
    if odd is None:
        return None
    if odd.group() in "\r\n":
        return f"contains a line break at position {odd.start()}; a key is a single line."
    if odd.group().isascii():
        return f"contains a control character at position {odd.start()}; copy the key again."
    return (f"contains a character that is not ASCII at position {odd.start()}; API keys are plain ASCII, "
            "so copy the key again (a curly quote or a non-breaking space slips in easily).")


def _blank_name(char: str) -> str:
    return {"\n": "a line break", "\r": "a line break", " ": "a space", "\t": "a tab"}.get(char, "a blank character")
