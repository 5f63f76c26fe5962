"""N runs of one request decoded together by the embedded model: one llama.cpp context, one batch per step.

The prompt is evaluated once; then each step decodes one token of every unfinished sequence in a single batch, and
each sequence samples with its own seeded sampler, the chain llama-cpp-python builds for a single run.
bench/local.py measures the speed-up and whether batching changes the text.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from core.errors import BackendError, InvalidRequest
from core.models import MAX_RUNS, RunError, RunRequest, RunResult, Usage

_LAST_N_TOKENS = 64  # llama-cpp-python's default penalty window, for a sampler chain identical to a single run's
_LLAMA_DEFAULT_SEED = 0xFFFFFFFF  # llama.cpp reads this value as "pick a random seed"


def llama_seed(seed: int | None) -> int:
    """A 32-bit seed for llama.cpp: the request's seed folded into range, or fresh randomness when there is none."""
    if seed is None:
        return secrets.randbelow(_LLAMA_DEFAULT_SEED)
    return seed % _LLAMA_DEFAULT_SEED


class BatchedDecoder:
    """Decodes several runs of a request at once with the weights of a loaded `llama_cpp.Llama`."""

    def __init__(self, llm: Any):
        from llama_cpp import llama_chat_format

        self.llm = llm
        self._lock = threading.Lock()
        eos = llm.detokenize([llm.token_eos()], special=True).decode("utf-8", errors="ignore")
        bos = llm.detokenize([llm.token_bos()], special=True).decode("utf-8", errors="ignore")
        # The GGUF's own chat template, as llama-cpp-python applies it in create_chat_completion.
        self._format = llama_chat_format.Jinja2ChatFormatter(
            template=llm.metadata["tokenizer.chat_template"], eos_token=eos, bos_token=bos,
            stop_token_ids=[llm.token_eos()])

    def prompt_tokens(self, request: RunRequest) -> list[int]:
        formatted = self._format(messages=request.messages())
        return self.llm.tokenize(formatted.prompt.encode("utf-8"), add_bos=not formatted.added_special, special=True)

    def generate(self, request: RunRequest, seeds: Sequence[int | None], *, shared_cells: bool = False,
                 on_result: Callable[[RunResult], None] | None = None) -> list[RunResult]:
        """One run per seed (None: fresh randomness), latency from the batch's start; no logprobs. `on_result` sees
        each run the moment its sequence finishes (from this thread)."""
        # By default every sequence gets its own KV stream and the prompt, evaluated once, is copied into each; the
        # result is bit-identical to single runs. `shared_cells` puts the prompt's cells in every sequence of one
        # unified cache instead (kv_unified): measured here, it changes the logits by up to about 1, and the text.
        import llama_cpp

        if not 1 <= len(seeds) <= MAX_RUNS:
            raise InvalidRequest(f"seeds: give 1 to {MAX_RUNS} (one per run), got {len(seeds)}.")
        prompt = self.prompt_tokens(request)
        n = len(seeds)
        # KV memory grows with runs × (prompt + max_tokens); like a single run, a sequence stops at the model's n_ctx.
        per_sequence = min(_round_up(len(prompt) + request.max_tokens, 256), self.llm.n_ctx())
        max_tokens = min(request.max_tokens, per_sequence - len(prompt))
        params = type(self.llm.context_params).from_buffer_copy(self.llm.context_params)
        params.n_ctx = _round_up(len(prompt) + n * max_tokens, 256) if shared_cells else n * per_sequence
        params.n_batch = params.n_ubatch = max(len(prompt), n)
        params.n_seq_max = n
        params.kv_unified = shared_cells
        vocab = llama_cpp.llama_model_get_vocab(self.llm.model)
        with self._lock:
            started = time.perf_counter()
            ctx = llama_cpp.llama_init_from_model(self.llm.model, params)
            if ctx is None:
                raise BackendError(RunError("local", "The embedded model could not open a batch context."))
            batch = llama_cpp.llama_batch_init(max(len(prompt), n), 0, n)
            samplers = [self._sampler(request, llama_seed(seed)) for seed in seeds]
            results: list[RunResult] = []

            def finished(index: int, tokens: list[int], reason: str) -> None:
                text = self.llm.detokenize(tokens, prev_tokens=prompt).decode("utf-8", errors="ignore")
                result = RunResult(index=index, latency_ms=round((time.perf_counter() - started) * 1000, 1),
                                   text=text, finish_reason=reason,
                                   usage=Usage(len(prompt), len(tokens), len(prompt) + len(tokens)))
                results.append(result)
                if on_result:
                    on_result(result)

            try:
                _prompt(llama_cpp, ctx, batch, prompt, n, shared_cells)
                _decode(llama_cpp, ctx, batch, samplers, vocab, len(prompt), max_tokens, finished)
            finally:
                for sampler in samplers:
                    llama_cpp.llama_sampler_free(sampler)
                llama_cpp.llama_batch_free(batch)
                llama_cpp.llama_free(ctx)
        return sorted(results, key=lambda r: r.index)

    def _sampler(self, request: RunRequest, seed: int) -> Any:
        """The chain llama-cpp-python's Llama._init_sampler builds for these parameters (top_k 0, min_p 0)."""
        import llama_cpp

        chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        steps = [llama_cpp.llama_sampler_init_penalties(self.llm.n_vocab(), _LAST_N_TOKENS, 1.0, 0.0, 0.0)]
        if request.temperature == 0:
            steps.append(llama_cpp.llama_sampler_init_greedy())
        else:
            steps += [llama_cpp.llama_sampler_init_top_k(0), llama_cpp.llama_sampler_init_typical(1.0, 1),
                      llama_cpp.llama_sampler_init_top_p(request.top_p, 1), llama_cpp.llama_sampler_init_min_p(0.0, 1),
                      llama_cpp.llama_sampler_init_temp(request.temperature), llama_cpp.llama_sampler_init_dist(seed)]
        for step in steps:
            llama_cpp.llama_sampler_chain_add(chain, step)
        return chain


def _round_up(value: int, step: int) -> int:
    return -(-value // step) * step


def _prompt(llama_cpp: Any, ctx: Any, batch: Any, prompt: list[int], n: int, shared_cells: bool) -> None:
    """Evaluate the prompt once: as cells of every sequence, or in sequence 0's stream and then copied to the rest."""
    for i, token in enumerate(prompt):
        batch.token[i], batch.pos[i], batch.logits[i] = token, i, i == len(prompt) - 1
        batch.n_seq_id[i] = n if shared_cells else 1
        for s in range(n if shared_cells else 1):
            batch.seq_id[i][s] = s
    batch.n_tokens = len(prompt)
    _check(llama_cpp.llama_decode(ctx, batch))
    if not shared_cells:
        memory = llama_cpp.llama_get_memory(ctx)
        for s in range(1, n):
            llama_cpp.llama_memory_seq_cp(memory, 0, s, -1, -1)


def _decode(llama_cpp: Any, ctx: Any, batch: Any, samplers: list, vocab: Any, prompt_length: int,
            max_tokens: int, finished: Callable[[int, list[int], str], None]) -> None:
    """Sample every live sequence, then decode their new tokens as one batch, until each stops or hits max_tokens;
    `finished(sequence, tokens, reason)` is called as each one ends."""
    n = len(samplers)
    outputs: list[list[int]] = [[] for _ in range(n)]
    rows = dict.fromkeys(range(n), prompt_length - 1)  # where each live sequence's logits are in the last batch
    position = prompt_length
    while True:
        chosen = {}
        for s, row in rows.items():
            token = llama_cpp.llama_sampler_sample(samplers[s], ctx, row)
            if llama_cpp.llama_vocab_is_eog(vocab, token):
                finished(s, outputs[s], "stop")
                continue
            outputs[s].append(token)
            if len(outputs[s]) >= max_tokens:
                finished(s, outputs[s], "length")
            else:
                chosen[s] = token
        if not chosen:
            break
        for j, (s, token) in enumerate(chosen.items()):
            batch.token[j], batch.pos[j], batch.n_seq_id[j], batch.logits[j] = token, position, 1, True
            batch.seq_id[j][0] = s
        batch.n_tokens = len(chosen)
        _check(llama_cpp.llama_decode(ctx, batch))
        rows = {s: j for j, s in enumerate(chosen)}
        position += 1


def _check(status: int) -> None:
    if status != 0:
        raise BackendError(RunError("local", f"llama_decode returned {status}: the batch context has no room for "
                                             "runs × (prompt + max_tokens); lower the runs or max_tokens."))

