"""Embedded engine benchmark, measured in one run: tokens per second through LocalBackend and the runner versus raw
llama-cpp-python (same model file, parameters, prompt and threads; rounds interleaved; target ≥ 90 %), then N runs
decoded as one batch (core/backends/batched.py) versus N single runs, and whether batching changed the text.

`python bench/local.py [--rounds 10] [--runs 8] [--max-tokens 128]`. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.backends.batched import llama_seed  # noqa: E402
from core.backends.local import LocalBackend  # noqa: E402
from core.models import BatchPlan, RunRequest  # noqa: E402
from core.runner import Fanout  # noqa: E402

FANOUT = Fanout(None)  # one loop for every batch of the script, as a command has
PROMPT = RunRequest(prompt="Create a story about red panda.", system="You always produce 3-sentence answers.",
                    temperature=0.1, seed=42)


def timed(work):
    """(what work returned, wall seconds, CPU seconds of this whole process: every llama.cpp thread included)."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = work()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def through_backend(backend: LocalBackend, request: RunRequest) -> tuple[int, str]:
    """One request through the runner, as the app sends it: (completion tokens, text)."""
    [result] = list(FANOUT.runs(backend, request, BatchPlan(1, 1)))
    assert result.ok, result.error
    return result.usage.completion_tokens, result.text


def raw(llm, request: RunRequest) -> tuple[int, str]:
    """The same request straight into llama-cpp-python, reset first as the backend's deterministic mode does."""
    messages = [{"role": "system", "content": request.system}, {"role": "user", "content": request.prompt}]
    llm.reset()
    response = llm.create_chat_completion(messages=messages, temperature=request.temperature, top_p=request.top_p,
                                          top_k=0, min_p=0.0, max_tokens=request.max_tokens,
                                          seed=llama_seed(request.seed))
    return response["usage"]["completion_tokens"], response["choices"][0]["message"]["content"]


def backend_versus_raw(backend: LocalBackend, request: RunRequest, rounds: int) -> dict:
    from llama_cpp import Llama

    llm = Llama(model_path=str(backend.model_path), n_ctx=backend.n_ctx, n_threads=backend.n_threads, verbose=False)
    through_backend(backend, request)  # warm-up: model load, first allocations
    raw(llm, request)
    sides: dict[str, list] = {"backend": [], "raw": []}
    for k in range(rounds):
        # Alternate which goes first, so a drift in machine load falls on both sides alike.
        order = ("backend", "raw") if k % 2 == 0 else ("raw", "backend")
        for side in order:
            work = (lambda: through_backend(backend, request)) if side == "backend" else (lambda: raw(llm, request))
            sides[side].append(timed(work))
    tokens = {side: sum(out[0] for out, _, _ in runs) for side, runs in sides.items()}
    rate = {side: tokens[side] / sum(wall for _, wall, _ in runs) for side, runs in sides.items()}
    cpu_rate = {side: tokens[side] / sum(cpu for _, _, cpu in runs) for side, runs in sides.items()}
    # Each round's two sides ran back to back, so their ratio cancels most of the load other processes put on the
    # machine; the median of those ratios is the headline, the pooled ratio and CPU-time ratio corroborate it.
    paired = statistics.median((b[0][0] / b[1]) / (r[0][0] / r[1]) for b, r in zip(sides["backend"], sides["raw"]))
    pooled = rate["backend"] / rate["raw"]
    cpu = cpu_rate["backend"] / cpu_rate["raw"]
    same_text = len({out[1] for runs in sides.values() for out, _, _ in runs}) == 1
    print(f"backend + runner: {rate['backend']:6.1f} tokens/s; raw llama-cpp-python: {rate['raw']:6.1f} tokens/s "
          f"({rounds} interleaved rounds of {request.max_tokens} tokens)")
    print(f"backend / raw: {paired:.1%} median of paired rounds, {pooled:.1%} pooled, {cpu:.1%} per CPU-second; "
          f"same text on both sides: {same_text}")
    return {"backend_tokens_per_s": round(rate["backend"], 1), "raw_tokens_per_s": round(rate["raw"], 1),
            "backend_over_raw": round(paired, 3), "backend_over_raw_pooled": round(pooled, 3),
            "backend_over_raw_cpu": round(cpu, 3), "backend_same_text_as_raw": same_text,
            "target_backend_at_least_90pct": paired >= 0.90}


def batched_versus_single(backend: LocalBackend, request: RunRequest, runs: int, rounds: int) -> dict:
    decoder = backend.decoder()
    seeds = [request.seed] * runs
    decoder.generate(request, seeds[:1])  # warm-up
    times: dict[str, list[tuple[float, float]]] = {"single": [], "batched": [], "one": [], "shared": []}
    texts: dict[str, list[str]] = {}
    work = {
        "single": lambda: [r.text for r in FANOUT.runs(backend, request, BatchPlan(runs, 1))],
        "batched": lambda: [r.text for r in decoder.generate(request, seeds)],
        "one": lambda: [r.text for r in decoder.generate(request, seeds[:1])],
        "shared": lambda: [r.text for r in decoder.generate(request, seeds, shared_cells=True)],
    }
    for _ in range(rounds):
        for name, job in work.items():
            texts[name], wall, cpu = timed(job)
            times[name].append((wall, cpu))
    wall = {name: statistics.median(w for w, _ in pairs) for name, pairs in times.items()}
    cpu = {name: statistics.median(c for _, c in pairs) for name, pairs in times.items()}
    reference = texts["single"][0]
    equal = sum(text == reference for text in texts["batched"])
    shared_equal = sum(text == reference for text in texts["shared"])
    speedup = wall["single"] / wall["batched"]
    print(f"{runs} runs one after another through the backend: {wall['single']:6.2f} s; as one batch: "
          f"{wall['batched']:6.2f} s = {speedup:4.2f}x faster ({cpu['single'] / cpu['batched']:4.2f}x in CPU time, "
          f"{wall['one'] * runs / wall['batched']:4.2f}x against {runs} batches of one); "
          f"batched texts equal to the single runs': {equal}/{runs}")
    print(f"prompt cells shared by every sequence (kv_unified): {wall['shared']:6.2f} s; texts equal to the single "
          f"runs': {shared_equal}/{runs}, {len(set(texts['shared']))} distinct")
    return {"batched_runs": runs, "single_runs_s": round(wall["single"], 3), "batched_s": round(wall["batched"], 3),
            "batched_speedup": round(speedup, 2), "batched_speedup_cpu": round(cpu["single"] / cpu["batched"], 2),
            "batched_speedup_vs_batches_of_one": round(wall["one"] * runs / wall["batched"], 2),
            "batched_equal_single": equal, "single_runs_distinct": len(set(texts["single"])),
            "shared_cells_s": round(wall["shared"], 3), "shared_cells_equal_single": shared_equal,
            "shared_cells_distinct": len(set(texts["shared"]))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=128)
    args = parser.parse_args()
    request = RunRequest(prompt=PROMPT.prompt, system=PROMPT.system, temperature=PROMPT.temperature, seed=PROMPT.seed,
                         max_tokens=args.max_tokens)
    backend = LocalBackend(mode="deterministic", batching=False)  # one run at a time, as llama-cpp-python runs it
    print(f"{backend.info.label} · {backend.n_threads} threads · {os.cpu_count()} CPUs · load average "
          f"{os.getloadavg()[0]:.2f}")
    figures = {"threads": backend.n_threads, "max_tokens": args.max_tokens}
    figures |= backend_versus_raw(backend, request, args.rounds)
    figures |= batched_versus_single(backend, request, args.runs, 3)
    figures["load_average_1min"] = round(os.getloadavg()[0], 2)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
