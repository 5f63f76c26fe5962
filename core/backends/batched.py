"""Runs decoded together by the embedded model: one llama.cpp context, one batch per step.

Each distinct prompt is evaluated once; then each step decodes one token of every unfinished sequence in a single
batch, and each sequence samples with its own seeded sampler, the chain llama-cpp-python builds for a single run.
`generate` decodes N runs of one request; `generate_together` mixes requests (the probe puts a seeded request next
to other prompts, as a busy server would). bench/local.py measures the speed-up and whether batching changes text.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
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
    """Decodes several runs at once with the weights of a loaded `llama_cpp.Llama`."""

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
        """One run of `request` per seed (None: fresh randomness), as `generate_together` decodes them."""
        if not 1 <= len(seeds) <= MAX_RUNS:
            raise InvalidRequest(f"seeds: give 1 to {MAX_RUNS} (one per run), got {len(seeds)}.")
        return self.generate_together([replace(request, seed=seed) for seed in seeds], shared_cells=shared_cells,
                                      on_result=on_result)

    def generate_together(self, requests: Sequence[RunRequest], *, shared_cells: bool = False,
                          on_result: Callable[[RunResult], None] | None = None) -> list[RunResult]:
        """One run per request (its seed, or fresh randomness), all in one batch; latency from the batch's start; no
        logprobs. `on_result` sees each run the moment its sequence finishes (from this thread)."""
        # By default every sequence gets its own KV stream; each distinct prompt is evaluated on its own, once, and
        # copied into the streams that share it: the result is bit-identical to single runs. `shared_cells` puts all
        # sequences in one unified cache (kv_unified), the cells of a prompt shared by the sequences that have it, and
        # evaluates every prompt in one batch: measured here, that changes the logits by up to about 1, and the text.
        import llama_cpp

        if not 1 <= len(requests) <= MAX_RUNS:
            raise InvalidRequest(f"requests: give 1 to {MAX_RUNS} (one per run), got {len(requests)}.")
        prompts = self._prompts(requests)
        ceiling = self.llm.n_ctx()  # like a single run, a sequence stops at the model's n_ctx
        limits = [min(r.max_tokens, ceiling - len(p)) for r, p in zip(requests, prompts)]
        groups = _groups(prompts)
        params = type(self.llm.context_params).from_buffer_copy(self.llm.context_params)
        # KV memory grows with the cells the sequences hold: their prompts (once each when shared) and answers.
        if shared_cells:
            params.n_ctx = _round_up(sum(len(prompts[g[0]]) for g in groups) + sum(limits), 256)
        else:
            params.n_ctx = len(requests) * max(_round_up(len(p) + m, 256) for p, m in zip(prompts, limits))
        width = max(sum(len(prompts[g[0]]) for g in groups) if shared_cells else max(map(len, prompts)),
                    len(requests))
        params.n_batch = params.n_ubatch = width
        params.n_seq_max = len(requests)
        params.kv_unified = shared_cells
        vocab = llama_cpp.llama_model_get_vocab(self.llm.model)
        with self._lock:
            started = time.perf_counter()
            ctx = llama_cpp.llama_init_from_model(self.llm.model, params)
            if ctx is None:
                raise BackendError(RunError("local", "The embedded model could not open a batch context."))
            batch = llama_cpp.llama_batch_init(width, 0, len(requests))
            samplers = [self._sampler(request, llama_seed(request.seed)) for request in requests]
            results: list[RunResult] = []

            def finished(index: int, tokens: list[int], reason: str) -> None:
                prompt = prompts[index]
                text = self.llm.detokenize(tokens, prev_tokens=prompt).decode("utf-8", errors="ignore")
                result = RunResult(index=index, latency_ms=round((time.perf_counter() - started) * 1000, 1),
                                   text=text, finish_reason=reason,
                                   usage=Usage(len(prompt), len(tokens), len(prompt) + len(tokens)))
                results.append(result)
                if on_result:
                    on_result(result)

            try:
                runs = _Runs(llama_cpp, ctx, samplers, vocab, limits, finished)
                chosen = _prompt(llama_cpp, ctx, batch, prompts, groups, shared_cells, runs)
                _decode(llama_cpp, ctx, batch, prompts, runs, chosen)
            finally:
                for sampler in samplers:
                    llama_cpp.llama_sampler_free(sampler)
                llama_cpp.llama_batch_free(batch)
                llama_cpp.llama_free(ctx)
        return sorted(results, key=lambda r: r.index)

    def _prompts(self, requests: Sequence[RunRequest]) -> list[list[int]]:
        """Each request's prompt tokens, each distinct request tokenized once."""
        tokenized: dict[RunRequest, list[int]] = {}
        for request in requests:
            key = replace(request, seed=None)
            if key not in tokenized:
                tokenized[key] = self.prompt_tokens(request)
        return [tokenized[replace(request, seed=None)] for request in requests]

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


def _groups(prompts: list[list[int]]) -> list[list[int]]:
    """The sequences that share each distinct prompt, in order of first appearance."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for s, prompt in enumerate(prompts):
        groups.setdefault(tuple(prompt), []).append(s)
    return list(groups.values())


class _Runs:
    """Every sequence's sampler, tokens so far and limit; a sequence ends at an end-of-generation token or its limit,
    and `finished(sequence, tokens, reason)` is called as it does."""

    def __init__(self, llama_cpp: Any, ctx: Any, samplers: list, vocab: Any, limits: list[int],
                 finished: Callable[[int, list[int], str], None]):
        self.llama_cpp, self.ctx, self.samplers, self.vocab, self.limits = llama_cpp, ctx, samplers, vocab, limits
        self.finished = finished
        self.outputs: list[list[int]] = [[] for _ in samplers]

    def sample(self, rows: dict[int, int]) -> dict[int, int]:
        """Each sequence's next token from its row of logits in the last batch; the tokens of those that go on."""
        chosen = {}
        for s, row in rows.items():
            token = self.llama_cpp.llama_sampler_sample(self.samplers[s], self.ctx, row)
            if self.llama_cpp.llama_vocab_is_eog(self.vocab, token):
                self.finished(s, self.outputs[s], "stop")
                continue
            self.outputs[s].append(token)
            if len(self.outputs[s]) >= self.limits[s]:
                self.finished(s, self.outputs[s], "length")
            else:
                chosen[s] = token
        return chosen


def _prompt(llama_cpp: Any, ctx: Any, batch: Any, prompts: list[list[int]], groups: list[list[int]],
            shared_cells: bool, runs: _Runs) -> dict[int, int]:
    """Evaluate each distinct prompt once and sample every sequence's first token: shared, all prompts in one batch as
    cells of every sequence that has them; isolated, each prompt alone in its first sequence's stream, then copied."""
    if shared_cells:
        rows, j = {}, 0
        for group in groups:
            j = _fill(batch, prompts[group[0]], group, j)
            rows.update(dict.fromkeys(group, j - 1))
        batch.n_tokens = j
        _check(llama_cpp.llama_decode(ctx, batch))
        return runs.sample(rows)
    memory, chosen = llama_cpp.llama_get_memory(ctx), {}
    for group in groups:
        batch.n_tokens = _fill(batch, prompts[group[0]], group[:1], 0)
        _check(llama_cpp.llama_decode(ctx, batch))
        for s in group[1:]:
            llama_cpp.llama_memory_seq_cp(memory, group[0], s, -1, -1)
        chosen |= runs.sample(dict.fromkeys(group, len(prompts[group[0]]) - 1))  # before the next prompt's logits
    return chosen


def _fill(batch: Any, prompt: list[int], sequences: list[int], start: int) -> int:
    """Put `prompt` in the batch from row `start`, as cells of `sequences`, logits for its last token; the next row."""
    for i, token in enumerate(prompt):
        j = start + i
        batch.token[j], batch.pos[j], batch.logits[j] = token, i, i == len(prompt) - 1
        batch.n_seq_id[j] = len(sequences)
        for k, s in enumerate(sequences):
            batch.seq_id[j][k] = s
    return start + len(prompt)


def _decode(llama_cpp: Any, ctx: Any, batch: Any, prompts: list[list[int]], runs: _Runs,
            chosen: dict[int, int]) -> None:
    """Decode the chosen token of every live sequence as one batch, then sample again, until every sequence ends."""
    while chosen:
        for j, (s, token) in enumerate(chosen.items()):
            position = len(prompts[s]) + len(runs.outputs[s]) - 1
            batch.token[j], batch.pos[j], batch.n_seq_id[j], batch.logits[j] = token, position, 1, True
            batch.seq_id[j][0] = s
        batch.n_tokens = len(chosen)
        _check(llama_cpp.llama_decode(ctx, batch))
        chosen = runs.sample({s: j for j, s in enumerate(chosen)})


def _check(status: int) -> None:
    if status != 0:
        raise BackendError(RunError("local", f"llama_decode returned {status}: the batch context has no room for "
                                             "runs × (prompt + max_tokens); lower the runs or max_tokens."))
