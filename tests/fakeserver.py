"""A small OpenAI/Azure-compatible chat-completions server on 127.0.0.1 for tests and benchmarks.

It speaks the Azure deployment route (api-key header, api-version query), the Azure v1 route and the
OpenAI /v1 route (bearer token), records what arrives, counts requests in flight, plays a fault plan, and turns
hostile on request (HOSTILE_MODES; `usage` replaces the token counts, e.g. with one of ABSURD_USAGE).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import random
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

WORDS = ("red panda bamboo forest quietly climbed the tall tree and watched snow fall over mountains "
         "while friends slept under stars dreaming of warm tea").split()

FAULTS = ("429", "500", "503", "timeout", "reset", "malformed", "content_filter", "401", "404", "no_logprobs")

# echo_key: the key the request carried in id, fingerprint, model, finish reason and text (plain and URL-encoded),
# cut into pieces across logprob tokens; escaped_key: the key in an extra field, every character \u-escaped;
# formulas: a spreadsheet formula in every string field; bad_text: NUL and unpaired surrogates in the text;
# invalid_utf8: bytes that are not UTF-8 inside the text; absurd_logprobs: log-probabilities above 0.
HOSTILE_MODES = ("echo_key", "escaped_key", "formulas", "bad_text", "invalid_utf8", "absurd_logprobs")
FORMULA_TEXTS = ("=1+1", "+1+1", "-1+1", "@SUM(A1:A2)", "\t=1+1", "\r=1+1")  # one per run, in turn
FORMULA_FIELDS = {"id": "=cmd|' /C calc'!A0", "model": "+SUM(1,2)", "system_fingerprint": "-2+3",
                  "finish_reason": "@SUM(A1:A2)"}
BAD_TEXT = "nul \x00 here, a lone \ud800 there, and \udcff."
ABSURD_USAGE = (
    {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 10**20},
    {"prompt_tokens": -3, "completion_tokens": 5, "total_tokens": 2},
    {"prompt_tokens": 10.5, "completion_tokens": 5, "total_tokens": 15.5},
    {"prompt_tokens": 10, "completion_tokens": "NaN", "total_tokens": "lots"},
    {"prompt_tokens": float("nan"), "completion_tokens": float("inf"), "total_tokens": float("-inf")},
    {"prompt_tokens": 10**400, "completion_tokens": True, "total_tokens": None},
    "lots",
)
_INVALID_UTF8 = b"\xff\xfe\xc3("  # a stray byte, another, and a lead byte with no continuation


@dataclass
class Received:
    """One request as it arrived."""

    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: dict
    started: float
    finished: float = 0.0
    raw: bytes = b""  # the body's bytes as they arrived


@dataclass
class FakeChatServer:
    """Configure these fields between tests; `reset()` puts them back."""

    api_key: str = "test-key-0123456789abcdef"
    deployment: str = "gpt-test"
    latency_s: float = 0.0
    hang_s: float = 3.0
    fingerprint: str | None = "fp_fake_1"
    faults: deque = field(default_factory=deque)
    answers: deque = field(default_factory=deque)
    bodies: deque = field(default_factory=deque)  # whole 200 answers, sent byte for byte instead of a completion
    received: list[Received] = field(default_factory=list)
    peak_in_flight: int = 0
    logprobs_supported: bool = True
    hostile: set[str] = field(default_factory=set)
    usage: Any = None
    # The probe's positive controls: a server that ignores the seed, one that rejects sampling parameters and logprobs
    # as reasoning models do (and, with `rejects_max_tokens`, max_tokens, taking max_completion_tokens instead), and
    # one whose answer changes once more than `load_sensitive_above` requests are in flight during it.
    ignores_seed: bool = False
    reasoning: bool = False
    rejects_max_tokens: bool = False
    load_sensitive_above: int | None = None
    _in_flight: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _httpd: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeChatServer:
        server = self

        class Handler(_Handler):
            fake = server

        self._httpd = _Server(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def reset(self) -> None:
        """Back to defaults, once the requests a previous test abandoned have finished (they would count as in flight)."""
        deadline = time.monotonic() + 10
        while self._in_flight and time.monotonic() < deadline:
            time.sleep(0.01)
        defaults = FakeChatServer()
        for name in ("api_key", "deployment", "latency_s", "hang_s", "fingerprint", "logprobs_supported", "hostile",
                     "usage", "ignores_seed", "reasoning", "rejects_max_tokens", "load_sensitive_above"):
            setattr(self, name, getattr(defaults, name))
        self.faults.clear()
        self.answers.clear()
        self.bodies.clear()
        self.received.clear()
        self.peak_in_flight = 0

    def _enter(self) -> None:
        with self._lock:
            self._in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self._in_flight)

    def _leave(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def _next(self, queue: deque):
        with self._lock:
            return queue.popleft() if queue else None


def answer_text(body: dict) -> str:
    """Same seed and messages give the same words; no seed gives fresh ones; a word a token, at most the limit."""
    seed = body.get("seed")
    if seed is None:
        rng = random.Random()
    else:
        digest = hashlib.sha256(json.dumps([seed, body.get("messages")], sort_keys=True).encode()).digest()
        rng = random.Random(digest)
    limit = body.get("max_completion_tokens") or body.get("max_tokens") or 12
    return " ".join(rng.choice(WORDS) for _ in range(min(int(limit), 12))) + "."


def _logprobs(text: str, top: int, *, piece: int | None = None, logprob: float = -0.1) -> dict:
    """A token per word (or per `piece` characters of it), each with `top` alternatives."""
    words = text.split(" ")
    tokens = [word if i == 0 else " " + word for i, word in enumerate(words)]
    if piece:
        tokens = [token[start:start + piece] for token in tokens for start in range(0, len(token), piece)]
    content = []
    for tok in tokens:
        alternatives = [{"token": tok, "logprob": logprob, "bytes": None}]
        alternatives += [{"token": f" alt{k}", "logprob": -2.0 - k, "bytes": None} for k in range(max(top - 1, 0))]
        content.append({"token": tok, "logprob": logprob, "bytes": None, "top_logprobs": alternatives})
    return {"content": content}


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # the default backlog of 5 drops a burst of 50 connects into 1 s SYN retries


class _Handler(BaseHTTPRequestHandler):
    fake: FakeChatServer
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # Headers and body leave in two writes; without this, Nagle's algorithm can hold the body back ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        """/stats: what arrived so far, for a benchmark that runs this server in a process of its own."""
        if self.path != "/stats":
            return self._error(404, f"no route {self.path}", "NotFound")
        stats = {"received": len(self.fake.received), "peak_in_flight": self.fake.peak_in_flight,
                 "seeds": [r.body.get("seed") for r in self.fake.received]}
        return self._send(200, json.dumps(stats).encode(), {})

    def do_POST(self) -> None:
        fake = self.fake
        split = urlsplit(self.path)
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        record = Received(
            path=split.path,
            query={k: v[0] for k, v in parse_qs(split.query).items()},
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            started=time.monotonic(),
            raw=raw,
        )
        with fake._lock:
            fake.received.append(record)
        fake._enter()
        try:
            self._respond(fake, record)
        finally:
            record.finished = time.monotonic()
            fake._leave()

    def _respond(self, fake: FakeChatServer, record: Received) -> None:
        path = record.path
        if path == f"/openai/deployments/{fake.deployment}/chat/completions":
            if "api-version" not in record.query:
                return self._error(400, "missing api-version query parameter", "BadRequest")
            given_key = record.headers.get("api-key")
        elif path in ("/v1/chat/completions", "/openai/v1/chat/completions"):
            given_key = record.headers.get("authorization", "").removeprefix("Bearer ") or record.headers.get("api-key")
        elif path.endswith("/chat/completions"):
            return self._error(404, "The API deployment for this resource does not exist.", "DeploymentNotFound")
        else:
            return self._error(404, f"no route {path}", "NotFound")

        if fake.latency_s:
            time.sleep(fake.latency_s)
        fault = fake._next(fake.faults)
        if fault == "401" or given_key != fake.api_key:
            # Real servers sometimes echo the key they were given; the client must never show it.
            return self._error(401, f"Incorrect API key provided: {given_key}.", "invalid_api_key")
        if fault == "429":
            return self._error(429, "Rate limit reached.", "rate_limit",
                               {"retry-after": "1", "retry-after-ms": "50"})
        if fault in ("500", "503"):
            return self._error(int(fault), "The server had an error.", "server_error")
        if fault == "404":
            return self._error(404, "The API deployment for this resource does not exist.", "DeploymentNotFound")
        if fault == "timeout":
            time.sleep(fake.hang_s)
            return self._error(504, "too late", "timeout")
        if fault == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            return None
        if fault == "malformed":
            return self._send(200, b'{"id": "chatcmpl-broken", "choices": [', {})
        body = fake._next(fake.bodies)
        if body is not None:
            return self._send(200, body, {})
        if fake.rejects_max_tokens and "max_tokens" in record.body:
            return self._send(400, json.dumps(MAX_TOKENS_REFUSAL).encode(), {})
        if fake.reasoning and (refused := _reasoning_refusal(record.body)):
            return self._send(400, json.dumps(refused).encode(), {})
        if record.body.get("logprobs") and not fake.logprobs_supported:
            return self._error(400, "logprobs is not supported for this model.", "invalid_request_error")

        text = fake._next(fake.answers) or answer_text(_as_heard(fake, record))
        finish = "stop"
        if fault == "content_filter":
            text, finish = None, "content_filter"
        else:
            text = _hostile_text(fake.hostile, text, given_key, turn=len(fake.received) - 1)
        choice = {"index": 0, "finish_reason": finish, "message": {"role": "assistant", "content": text},
                  "logprobs": None}
        if record.body.get("logprobs") and text:
            # A real tokenizer cuts an echoed key into pieces; impossible values come from a broken server.
            choice["logprobs"] = _logprobs(text, int(record.body.get("top_logprobs") or 0),
                                           piece=4 if "echo_key" in fake.hostile else None,
                                           logprob=2.5 if "absurd_logprobs" in fake.hostile else -0.1)
        words = len((text or "").split())
        payload = {
            "id": f"chatcmpl-{len(fake.received)}-{random.randrange(1 << 30)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": record.body.get("model") or fake.deployment,
            "system_fingerprint": fake.fingerprint,
            "choices": [choice],
            "usage": {"prompt_tokens": 10, "completion_tokens": words, "total_tokens": 10 + words},
        }
        if fake.usage is not None:
            payload["usage"] = fake.usage
        _hostile_fields(fake.hostile, payload, given_key)
        # A tab or CR would break the header: the formulas stay in the body.
        headers = {} if "formulas" in fake.hostile else {"x-request-id": payload["id"]}
        return self._send(200, _hostile_bytes(fake.hostile, json.dumps(payload).encode(), given_key), headers)

    def _error(self, status: int, message: str, code: str, headers: dict | None = None) -> None:
        body = {"error": {"message": message, "type": code, "code": code, "param": None}}
        self._send(status, json.dumps(body).encode(), headers or {})

    def _send(self, status: int, data: bytes, headers: dict) -> None:
        try:
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass


# Azure's and OpenAI's 400 body for max_tokens sent to a reasoning model (o1, o3, gpt-5 …).
MAX_TOKENS_REFUSAL = {"error": {
    "message": "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' "
               "instead.", "type": "invalid_request_error", "param": "max_tokens", "code": "unsupported_parameter"}}


def _reasoning_refusal(body: dict) -> dict | None:
    """OpenAI's 400 body for what a reasoning model refuses: a temperature or top_p other than 1, and logprobs."""
    for name in ("temperature", "top_p"):
        if body.get(name, 1) != 1:
            return {"error": {"message": f"Unsupported value: '{name}' does not support {body[name]} with this model. "
                                         "Only the default (1) value is supported.",
                              "type": "invalid_request_error", "param": name, "code": "unsupported_value"}}
    if body.get("logprobs"):
        return {"error": {"message": "Unsupported parameter: 'logprobs' is not supported with this model.",
                          "type": "invalid_request_error", "param": "logprobs", "code": "unsupported_parameter"}}
    return None


def _as_heard(fake: FakeChatServer, record: Received) -> dict:
    """The body as the server's sampler sees it: without the seed when it ignores seeds, and with the crowd it was
    answered in (the requests in flight at some moment of its life) when that is over `load_sensitive_above`."""
    body = dict(record.body)
    if fake.ignores_seed:
        body.pop("seed", None)
    if fake.load_sensitive_above is not None:
        with fake._lock:
            crowd = sum(1 for other in fake.received if not other.finished or other.finished >= record.started)
        if crowd > fake.load_sensitive_above:
            body["messages"] = [*body.get("messages", []), {"role": "load", "content": str(crowd)}]
    return body


def _hostile_text(modes: set[str], text: str, key: str, turn: int) -> str:
    if "echo_key" in modes:
        text = f"Your key is {key}; as a link: https://example.com/?key={quote(key, safe='')}."
    if "formulas" in modes:
        text = FORMULA_TEXTS[turn % len(FORMULA_TEXTS)]
    if "bad_text" in modes:
        text = BAD_TEXT
    return text


def _hostile_fields(modes: set[str], payload: dict, key: str) -> None:
    choice = payload["choices"][0]
    if "echo_key" in modes:
        payload.update(id=key, system_fingerprint=f"fp-{key}", model=f"{payload['model']}-{key}")
        choice["finish_reason"] = f"stop:{key}"
    if "formulas" in modes:
        payload.update({name: value for name, value in FORMULA_FIELDS.items() if name != "finish_reason"})
        choice["finish_reason"] = FORMULA_FIELDS["finish_reason"]


def _hostile_bytes(modes: set[str], data: bytes, key: str) -> bytes:
    """What json.dumps cannot write: bytes that are not UTF-8, and the key with every character \\u-escaped."""
    if "invalid_utf8" in modes:
        data = data.replace(b'"content": "', b'"content": "' + _INVALID_UTF8, 1)
    if "escaped_key" in modes:
        escaped = "".join(f"\\u{ord(char):04x}" for char in key).encode()
        data = data.replace(b'"object":', b'"x_escaped": "' + escaped + b'", "object":', 1)
    return data


async def _serve_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, latency_s: float,
                            api_key: str) -> None:
    """One keep-alive HTTP/1.1 connection of the asyncio server: every request answered after `latency_s`."""
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        while head := await reader.readuntil(b"\r\n\r\n"):
            lines = head.decode("latin-1").split("\r\n")
            headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
            body = json.loads(await reader.readexactly(int(headers.get("content-length", "0"))) or b"{}")
            await asyncio.sleep(latency_s)
            writer.write(_async_answer(lines[0].split(" ")[1], headers, body, api_key))
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


def _async_answer(target: str, headers: dict[str, str], body: dict, api_key: str) -> bytes:
    """The asyncio server's answer: a completion (answer_text) on any chat-completions route with the right key."""
    given = headers.get("api-key") or headers.get("authorization", "").removeprefix("bearer ").removeprefix("Bearer ")
    status, payload = 200, {
        "id": f"chatcmpl-{random.randrange(1 << 30)}", "object": "chat.completion", "created": int(time.time()),
        "model": body.get("model") or FakeChatServer.deployment, "system_fingerprint": "fp_fake_1",
        "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                     "message": {"role": "assistant", "content": answer_text(body)}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 12, "total_tokens": 22},
    }
    if not urlsplit(target).path.endswith("/chat/completions"):
        status, payload = 404, {"error": {"message": f"no route {target}", "type": "NotFound", "code": "NotFound"}}
    elif given != api_key:
        status, payload = 401, {"error": {"message": "Incorrect API key.", "type": "invalid_api_key", "code": "401"}}
    data = json.dumps(payload).encode()
    return (f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {len(data)}\r\n\r\n"
            .encode() + data)


async def serve_asyncio(latency_s: float, api_key: str, announce: Any = print) -> None:
    """A lean asyncio chat-completions server on 127.0.0.1 for fan-out benchmarks: no thread per connection, so
    1,000 requests in flight cost the server next to nothing. It answers every chat-completions route (no faults)."""
    server = await asyncio.start_server(
        lambda reader, writer: _serve_connection(reader, writer, latency_s, api_key), "127.0.0.1", 0, backlog=2048)
    host, port = server.sockets[0].getsockname()[:2]
    announce(f"http://{host}:{port}")
    async with server:
        await server.serve_forever()


def main() -> None:
    """Serve in a process of its own (benchmarks, the browser tests): prints the URL, then serves until killed.

    `--asyncio` serves the lean asyncio server (serve_asyncio) instead of the threaded one."""
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--api-key", default=FakeChatServer.api_key)
    parser.add_argument("--asyncio", action="store_true")
    args = parser.parse_args()
    if args.asyncio:
        asyncio.run(serve_asyncio(args.latency, args.api_key, functools.partial(print, flush=True)))
        return
    server = FakeChatServer(latency_s=args.latency, api_key=args.api_key).start()
    print(server.url, flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
