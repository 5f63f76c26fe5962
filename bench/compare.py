"""Times the comparison of 50 forked answers of about 4,000 characters, and a difflib equivalent of it, in one run;
then compare() alone at scale: 1,000 runs with 80 distinct answers of ~650 characters, 1,000 all distinct, and 500
all distinct of ~4,000 characters.

`python bench/compare.py`; targets ≤ 100 ms per analysis and ≥ 20× faster than difflib; at scale ≤ 100 ms, ≤ 1.5 s
and ≤ 400 ms. The last line is JSON.
"""

from __future__ import annotations

import difflib
import itertools
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.analysis.compare import compare, count_fingerprints, group_outputs  # noqa: E402
from core.analysis.tree import divergence_tree  # noqa: E402
from core.analysis.diff import (  # noqa: E402
    REFINE_MAX_CHARS,
    REFINE_MIN_SIMILARITY,
    Segment,
    diff,
    first_divergence,
    tokenize,
)
from core.models import RunResult

RUNS = 50
CHARS = 4_000
MODAL_COPIES = 12
FORKS = 30
TARGET_MS = 100.0
TARGET_SPEEDUP = 20.0
COMMON = (
    "the model returns a different answer when sampling temperature is above zero because each token is drawn "
    "from a distribution over the vocabulary and small numerical differences in batched matrix multiplication on "
    "the server can change which token wins so two runs that share a long prefix may fork at any point and then "
    "continue with their own wording structure examples and conclusions for instance the first step checks input "
    "validates fields stores results retries requests caches responses measures latency compares outputs reports"
).split()
VOCABULARY = 1_000


def _vocabulary() -> list[str]:
    """The common words, then made-up words of one to four syllables, most frequent first."""
    rng = random.Random(0)
    words = dict.fromkeys(COMMON)
    syllables = [c + v for c in "bcdfghklmnprstvz" for v in "aeiou"]
    while len(words) < VOCABULARY:
        words["".join(rng.choices(syllables, k=rng.randint(1, 4)))] = None
    return list(words)


WORDS = _vocabulary()
# Word frequencies follow Zipf's law as in real prose: the k-th most common word appears about 1/k as often.
_CUMULATIVE = list(itertools.accumulate(1 / rank for rank in range(1, VOCABULARY + 1)))


def _prose(rng: random.Random, chars: int) -> str:
    """Sentences, commas, paragraphs and list items of Zipf-distributed words, about `chars` long."""
    parts: list[str] = []
    while sum(map(len, parts)) < chars:
        words = rng.choices(WORDS, cum_weights=_CUMULATIVE, k=rng.randint(6, 22))
        words[0] = words[0].capitalize()
        words = [w + "," if 1 < k < len(words) - 2 and rng.random() < 0.08 else w for k, w in enumerate(words)]
        parts.append(" ".join(words) + "." + rng.choice(("\n\n", " ", " ", " ", "\n- ")))
    return "".join(parts).rstrip()


def batch(seed: int = 7) -> list[str]:
    """A modal answer 12 times, 30 forks that keep 10–95 % of it and then write their own, 8 of them repeated."""
    rng = random.Random(seed)
    base = _prose(rng, CHARS)
    forks = []
    for _ in range(FORKS):
        cut = base.rfind(" ", 0, rng.randint(len(base) // 10, len(base) * 19 // 20)) + 1
        forks.append(base[:cut] + _prose(rng, CHARS - cut))
    texts = [base] * MODAL_COPIES + forks + [rng.choice(forks) for _ in range(RUNS - MODAL_COPIES - FORKS)]
    rng.shuffle(texts)
    return texts


def forks_of(seed: int, chars: int, distinct: int) -> list[str]:
    """`distinct` answers of about `chars` characters: one, then forks that keep 10–95 % of it and write their own."""
    rng = random.Random(seed)
    base = _prose(rng, chars)
    texts = dict.fromkeys([base])
    while len(texts) < distinct:
        cut = base.rfind(" ", 0, rng.randint(len(base) // 10, len(base) * 19 // 20)) + 1
        texts[base[:cut] + _prose(rng, chars - cut)] = None
    return list(texts)


def published_batch(runs: int = 1_000, distinct: int = 80, chars: int = 600) -> list[str]:
    """1,000 runs with 80 distinct answers, as in the study users cite: counts fall off as rank^-0.6 (the most common
    answer about 78 times), every answer a fork of one shared start."""
    weights = [rank ** -0.6 for rank in range(1, distinct + 1)]
    counts = [max(1, round(runs * w / sum(weights))) for w in weights]
    counts[-1] += runs - sum(counts)
    texts = [text for text, count in zip(forks_of(11, chars, distinct), counts) for _ in range(count)]
    random.Random(12).shuffle(texts)
    return texts


SCALES = {  # name: (texts, target ms for compare()); _prose overshoots a target length by ~50 characters
    "n1000_80_distinct_650_chars": (published_batch, 100.0),
    "n1000_all_distinct_650_chars": (lambda: forks_of(13, 600, 1_000), 1_500.0),
    "n500_all_distinct_4000_chars": (lambda: forks_of(14, 4_000, 500), 400.0),
}


def scale_figures(rounds: int = 3) -> dict[str, Any]:
    """compare() on each SCALES batch: the median of `rounds` timed calls after one warm-up, against its target."""
    figures: dict[str, Any] = {}
    for name, (make, target_ms) in SCALES.items():
        texts = make()
        results = [RunResult(index=k, latency_ms=0.0, text=text, system_fingerprint="fp")
                   for k, text in enumerate(texts)]
        compare(results)
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            compare(results)
            times.append((time.perf_counter() - start) * 1000)
        median = statistics.median(times)
        print(f"{name}: {len(texts)} runs, {len(set(texts))} distinct, mean {statistics.fmean(map(len, texts)):.0f} "
              f"chars: compare() median {median:.1f} ms (target {target_ms:g} ms)", flush=True)
        figures[f"{name}_ms"] = round(median, 1)
        figures[f"{name}_meets_target"] = median <= target_ms
    return figures


def rapidfuzz_analysis(results: Sequence[RunResult]) -> dict[str, Any]:
    """`compare` and every run's diff against the modal output."""
    comparison = compare(results)
    summary = comparison.summary
    return {
        "groups": comparison.groups,
        "loose_groups": comparison.loose_groups,
        "fingerprints": summary.fingerprints,
        "matrix": comparison.matrix,
        "similarity": (summary.mean_similarity, summary.min_similarity),
        "divergences": comparison.divergences,
        "diffs": [diff(result.text or "", comparison.modal or "") for result in results],
    }


def _difflib_segments(a: Sequence[str], b: Sequence[str], *, refine: bool) -> list[Segment]:
    out = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        left, right = "".join(a[i1:i2]), "".join(b[j1:j2])
        short = refine and tag == "replace" and max(len(left), len(right)) <= REFINE_MAX_CHARS
        alike = short and difflib.SequenceMatcher(None, left, right, autojunk=False).ratio() >= REFINE_MIN_SIMILARITY
        out.append(Segment(tag, left, right, tuple(_difflib_segments(left, right, refine=False)) if alike else ()))
    return out


def difflib_analysis(results: Sequence[RunResult]) -> dict[str, Any]:
    """The same work with difflib's SequenceMatcher for every ratio and alignment; the rest is shared code."""
    ok = [result for result in results if result.ok]
    texts = [result.text or "" for result in ok]
    groups = tuple(group_outputs(ok))
    modal = groups[0].text
    tokens = {text: tokenize(text) for text in dict.fromkeys(texts)}
    distinct = list(tokens)
    ratios = {(a, a): 1.0 for a in distinct}
    for k, a in enumerate(distinct):
        for b in distinct[k + 1 :]:
            ratios[a, b] = ratios[b, a] = difflib.SequenceMatcher(None, tokens[a], tokens[b], autojunk=False).ratio()
    matrix = tuple(tuple(ratios[a, b] for b in texts) for a in texts)
    off_diagonal = [value for i, row in enumerate(matrix) for j, value in enumerate(row) if i != j]
    by_text = {text: first_divergence(text, modal) for text in distinct}
    return {
        "groups": groups,
        "loose_groups": tuple(group_outputs(ok, loose=True)),
        "fingerprints": count_fingerprints(ok),
        "matrix": matrix,
        "similarity": (statistics.fmean(off_diagonal), min(off_diagonal)),
        "divergences": {result.index: by_text[text] for result, text in zip(ok, texts)},
        "diffs": [_difflib_segments(tokenize(text), tokenize(modal), refine=True) for text in texts],
    }


def _timed(fast: Callable[[], object], slow: Callable[[], object], rounds: int = 3) -> tuple[list[float], list[float]]:
    """Milliseconds per call, the two interleaved so that both see the same machine; one warm-up call each."""
    fast(), slow()
    fast_ms: list[float] = []
    slow_ms: list[float] = []
    for _ in range(rounds):
        for analysis, times in [(slow, slow_ms)] + [(fast, fast_ms)] * 10:
            start = time.perf_counter()
            analysis()
            times.append((time.perf_counter() - start) * 1000)
    return fast_ms, slow_ms


def _ms(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return (time.perf_counter() - start) * 1000


def main() -> None:
    texts = batch()
    results = [RunResult(index=k, latency_ms=0.0, text=text, system_fingerprint="fp") for k, text in enumerate(texts)]
    ours, baseline = rapidfuzz_analysis(results), difflib_analysis(results)
    for key in ("groups", "loose_groups", "fingerprints", "divergences"):
        assert ours[key] == baseline[key], f"the two analyses disagree on {key}"
    for segments, text in zip(ours["diffs"] + baseline["diffs"], texts + texts):
        assert "".join(s.a for s in segments) == text, "a diff does not rebuild its text"
    # SequenceMatcher's ratio is greedy, not a longest common subsequence, so it can only come out lower.
    gap = max(x - y for row_x, row_y in zip(ours["matrix"], baseline["matrix"]) for x, y in zip(row_x, row_y))

    tree_ms = [_ms(lambda: divergence_tree(results)) for _ in range(3)]
    print(f"divergence tree of the same {len(results)} runs: median {statistics.median(tree_ms):.1f} ms")
    fast, slow = _timed(lambda: rapidfuzz_analysis(results), lambda: difflib_analysis(results))
    fast_ms, slow_ms = statistics.median(fast), statistics.median(slow)
    print(f"rapidfuzz: median {fast_ms:.1f} ms, best {min(fast):.1f} ms over {len(fast)} analyses")
    print(f"difflib:   median {slow_ms:.1f} ms, best {min(slow):.1f} ms over {len(slow)} analyses")
    figures = {
        "runs": len(texts),
        "distinct_outputs": len(set(texts)),
        "mean_chars": round(statistics.fmean(map(len, texts))),
        "cpus": os.cpu_count(),
        "load_average": round(os.getloadavg()[0], 2),
        "rapidfuzz_ms": round(fast_ms, 1),
        "rapidfuzz_best_ms": round(min(fast), 1),
        "difflib_ms": round(slow_ms, 1),
        "speedup": round(slow_ms / fast_ms, 1),
        "max_similarity_gap": round(gap, 4),
        "divergence_tree_ms": round(statistics.median(tree_ms), 1),
        "meets_time_target": fast_ms <= TARGET_MS,
        "meets_speedup_target": slow_ms / fast_ms >= TARGET_SPEEDUP,
    }
    figures |= scale_figures()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
