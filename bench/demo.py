"""The offline demo's speed, measured in one run on the embedded model: the classic "seed vs no seed" demo (5 runs
without a seed and 5 with seed 42, temperature 0.1) and one experiment of N=50 runs, each timed end to end through
the runner as the app sends them, against the old way (every run decoded alone, the two scenarios one after the
other). Also checks that batching changed no text and that cache mode still shows its first-answer fork.

`python bench/demo.py [--max-tokens 65] [--skip-old]` (65: the app's default for the embedded model). Targets: classic demo ≤ 12 s, N=50 ≤ 40 s. Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.backends.local import DEMO_MAX_TOKENS, LocalBackend  # noqa: E402
from core.models import BatchPlan, RunRequest  # noqa: E402
from core.runner import Fanout  # noqa: E402

FANOUT = Fanout(None)  # one loop for every batch of the script, as a command has
CLASSIC = RunRequest(prompt="Create a story about red panda.", system="You always produce 3-sentence answers.",
                     temperature=0.1)


def timed(work) -> tuple[list, float]:
    started = time.perf_counter()
    out = work()
    return out, time.perf_counter() - started


def classic_new(backend: LocalBackend, request: RunRequest, runs: int) -> list:
    """Both scenarios at once, as the Seed vs no seed page sends them."""
    requests = [request] * runs + [replace(request, seed=42)] * runs
    return sorted(FANOUT.requests(backend, requests, len(requests)), key=lambda r: r.index)


def classic_old(backend: LocalBackend, request: RunRequest, runs: int) -> list:
    """The scenarios one after the other, each run decoded alone."""
    results = []
    for seed in (None, 42):
        results += sorted(FANOUT.runs(backend, replace(request, seed=seed), BatchPlan(runs, runs)),
                          key=lambda r: r.index)
    return results


def verdicts(results: list, runs: int) -> dict:
    unseeded, seeded = results[:runs], results[runs:]
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    return {"no_seed_unique": len({r.text for r in unseeded}), "seed_unique": len({r.text for r in seeded})}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-tokens", type=int, default=DEMO_MAX_TOKENS)
    parser.add_argument("--runs", type=int, default=5, help="runs per scenario of the classic demo")
    parser.add_argument("--n", type=int, default=50, help="runs of the large experiment")
    parser.add_argument("--skip-old", action="store_true", help="do not time the old one-run-at-a-time path")
    args = parser.parse_args()
    request = replace(CLASSIC, max_tokens=args.max_tokens)
    batched = LocalBackend(mode="deterministic")
    alone = LocalBackend(mode="deterministic", batching=False)
    batched.load(), alone.load()
    print(f"{batched.info.label} · {batched.n_threads} threads · {os.cpu_count()} CPUs · max_tokens "
          f"{args.max_tokens} · load average {os.getloadavg()[0]:.2f}")
    figures: dict = {"max_tokens": args.max_tokens, "threads": batched.n_threads}

    new, figures["classic_s"] = timed(lambda: classic_new(batched, request, args.runs))
    figures |= verdicts(new, args.runs)
    print(f"classic {args.runs} + {args.runs}, both at once, batched: {figures['classic_s']:.1f} s "
          f"(no seed: {figures['no_seed_unique']} distinct, seed 42: {figures['seed_unique']} distinct)")
    if not args.skip_old:
        old, figures["classic_old_s"] = timed(lambda: classic_old(alone, request, args.runs))
        same = [a.text for a in new[args.runs:]] == [b.text for b in old[args.runs:]]
        figures["classic_speedup"] = round(figures["classic_old_s"] / figures["classic_s"], 2)
        figures["seeded_texts_equal_old"] = same
        print(f"the old way (one scenario after the other, every run alone): {figures['classic_old_s']:.1f} s "
              f"= {figures['classic_speedup']}x slower; seeded texts byte-identical to the batched ones: {same}")

    large, figures["n50_s"] = timed(lambda: list(FANOUT.runs(batched, replace(request, seed=42),
                                                             BatchPlan(args.n, args.n))))
    figures["n50_unique"] = len({r.text for r in large if r.ok})
    print(f"N={args.n}, seed 42, batched: {figures['n50_s']:.1f} s, {figures['n50_unique']} distinct")

    cache = LocalBackend(mode="cache")
    cached = sorted(FANOUT.runs(cache, replace(request, seed=42), BatchPlan(4, 4)), key=lambda r: r.index)
    texts = [r.text for r in cached]
    figures["cache_mode_first_differs"] = texts[0] != texts[1] and len(set(texts[1:])) == 1
    print(f"cache mode, 4 runs: the first answer differs and the rest agree: {figures['cache_mode_first_differs']}")

    figures["target_classic_12s"] = figures["classic_s"] <= 12
    figures["target_n50_40s"] = figures["n50_s"] <= 40
    figures["load_average_1min"] = round(os.getloadavg()[0], 2)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
