"""Where N answers to the same request agree and where they part: groups, similarity, fingerprints, the summary and
the verdict. Pure functions over `RunResult`s; rapidfuzz scores every pair (tokens and diffs: core/analysis/diff.py).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from rapidfuzz.distance import Indel
from rapidfuzz.process import cdist

from core.analysis.diff import Divergence, divergence, tokenize, word_count
from core.models import RunResult

MATRIX_MAX_RUNS = 50  # above this many runs, no run-by-run matrix: N² cells that group_matrix holds once per group
_TOO_FEW = ("no successful runs: nothing to compare", "one successful run: nothing to compare it with")


@dataclass(frozen=True)
class Group:
    """Runs with the same output: the text (the first run's, for loose groups), how many, and which runs."""

    text: str
    count: int
    run_indices: tuple[int, ...]


def group_letter(position: int) -> str:
    """A, B, … Z, AA, AB, …: the name of the group at `position` (0 is the modal group)."""
    letters = ""
    position += 1
    while position:
        position, rest = divmod(position - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


def normalised(text: str) -> str:
    """The text without any whitespace and case-folded, like `diff -w -i`."""
    return "".join(text.split()).casefold()


def group_outputs(results: Iterable[RunResult], *, loose: bool = False) -> list[Group]:
    """Successful runs grouped by identical (or `normalised`) text, most frequent first, ties by lowest run index."""
    texts: dict[str, str] = {}
    runs: dict[str, list[int]] = {}
    keys: dict[str, str] = {}  # each distinct text normalised once, however many runs share it
    for result in sorted(results, key=lambda result: result.index):
        if result.ok:
            text = result.text or ""
            if loose and text not in keys:
                keys[text] = normalised(text)
            key = keys[text] if loose else text
            texts.setdefault(key, text)
            runs.setdefault(key, []).append(result.index)
    groups = [Group(texts[key], len(indices), tuple(indices)) for key, indices in runs.items()]
    return sorted(groups, key=lambda group: -group.count)


def _pair_scores(token_lists: Sequence[Sequence[str]]) -> np.ndarray:
    """The similarity of every pair of token lists (each distinct text once: the caller expands to runs)."""
    # Tokens become integer ids first: rapidfuzz compares integers without hashing each string again (~2-3x);
    # `queries is choices` lets cdist score each pair once.
    ids = {token: k for k, token in enumerate(dict.fromkeys(itertools.chain.from_iterable(token_lists)))}
    as_ids = [list(map(ids.__getitem__, tokens)) for tokens in token_lists]
    return cdist(as_ids, as_ids, scorer=Indel.normalized_similarity, dtype=np.float64, workers=-1)


def similarity_matrix(texts: Sequence[str]) -> list[list[float]]:
    """Normalised Indel similarity of every pair of token lists: 2 × longest common subsequence / total tokens."""
    distinct = list(dict.fromkeys(texts))
    position = {text: k for k, text in enumerate(distinct)}
    order = [position[text] for text in texts]
    return _pair_scores([tokenize(text) for text in distinct])[np.ix_(order, order)].tolist()


@dataclass(frozen=True)
class Fingerprints:
    """Successful runs per `system_fingerprint`, most frequent first; runs that reported none; several in one batch."""

    counts: dict[str, int]
    missing: int
    mixed: bool


def count_fingerprints(results: Iterable[RunResult]) -> Fingerprints:
    counts: dict[str, int] = {}
    missing = 0
    for result in results:
        if not result.ok:
            continue
        if result.system_fingerprint is None:
            missing += 1
        else:
            counts[result.system_fingerprint] = counts.get(result.system_fingerprint, 0) + 1
    ordered = dict(sorted(counts.items(), key=lambda item: -item[1]))
    return Fingerprints(ordered, missing, len(ordered) > 1)


@dataclass(frozen=True)
class Summary:
    """The batch in numbers; what compares runs is None below two successful runs, and `note` says why."""

    runs: int
    successful: int
    errors: int
    """Failed runs, left out of everything else."""
    unique_outputs: int
    modal_count: int
    """Runs in the largest group of byte-identical outputs."""
    identical_rate: float | None
    """modal_count / successful."""
    all_identical: bool
    """Every successful run byte-identical, and at least two of them."""
    first_divergence_word: int | None
    """The smallest `Divergence.word_index` of a run against the modal output; None when all are identical."""
    shared_prefix_words: int | None
    """Word tokens in the token prefix that every successful run shares."""
    mean_similarity: float | None
    """Mean of the similarity matrix off its diagonal, 0–1."""
    min_similarity: float | None
    fingerprints: Fingerprints
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Comparison:
    """Everything `compare` found about the successful runs of a batch."""

    summary: Summary
    groups: tuple[Group, ...]
    loose_groups: tuple[Group, ...]
    modal: str | None
    matrix: tuple[tuple[float, ...], ...]
    """`matrix[i][j]` is the similarity of runs `matrix_runs[i]` and `matrix_runs[j]`; empty above MATRIX_MAX_RUNS
    successful runs, where `group_matrix` holds the same scores once per group."""
    matrix_runs: tuple[int, ...]
    """The successful runs, by index."""
    most_dissimilar: tuple[int, int] | None
    """The two runs with the lowest similarity (the earliest such pair); None below two runs."""
    shared_prefix: str
    """The tokens every successful run starts with; empty below two runs."""
    divergences: dict[int, Divergence | None]
    """Each successful run against the modal output."""
    group_matrix: tuple[tuple[float, ...], ...] = ()
    """`group_matrix[i][j]` is the similarity of `groups[i]` and `groups[j]`: the heatmap of a large batch."""

    def letter(self, run: int) -> str | None:
        """The run's group letter (A = the modal answer), or None for a failed run."""
        return self._letters.get(run)

    @functools.cached_property
    def _letters(self) -> dict[int, str]:
        return {run: group_letter(position) for position, group in enumerate(self.groups) for run in group.run_indices}

    def fork(self, group: Group) -> Divergence | None:
        """Where the group's text leaves the shared path: another group's fork from the modal answer; the modal
        group's, the batch's first fork (None when all runs agree)."""
        if group is not self.groups[0]:
            return self.divergences[group.run_indices[0]]
        if self.summary.all_identical or self.summary.shared_prefix_words is None:
            return None
        shared = tokenize(self.shared_prefix)
        return Divergence(len(shared), self.summary.shared_prefix_words, len(self.shared_prefix))

    def default_pair(self) -> tuple[int, int] | None:
        """The modal group's first run and the run least similar to it (earliest on ties); None below two runs."""
        if len(self.matrix_runs) < 2:
            return None
        modal_runs = self.groups[0].run_indices
        # The earliest run of each group stands for it; the modal group's own second run scores 1.
        candidates = [(score, group.run_indices[0]) for score, group in zip(self.group_matrix[0][1:], self.groups[1:])]
        return modal_runs[0], min(candidates + [(1.0, run) for run in modal_runs[1:2]])[1]


def compare(results: Sequence[RunResult]) -> Comparison:
    """Group, score and align the successful runs against the modal output; failed runs only count as errors.

    Runs are grouped by their text first, and each distinct text is tokenised, scored and aligned once: the cost
    follows the number of distinct answers, not of runs."""
    ok = sorted((result for result in results if result.ok), key=lambda result: result.index)
    n = len(ok)
    compared = n >= 2
    runs = tuple(result.index for result in ok)
    groups = tuple(group_outputs(ok))
    modal = groups[0].text if groups else None
    tokens = {group.text: tokenize(group.text) for group in groups}  # distinct texts, in group order
    modal_tokens = tokens[modal] if modal is not None else []
    by_text = {text: divergence(text_tokens, modal_tokens) for text, text_tokens in tokens.items()}
    parted = [divergence for divergence in by_text.values() if divergence is not None]
    shared = modal_tokens[: min((d.token_index for d in parted), default=len(modal_tokens))] if compared else []
    scores = _pair_scores(list(tokens.values()))  # scores[a][b]: groups a and b
    between = _between_groups(scores)
    lowest = between.min(initial=1.0)  # two runs of one group score 1
    summary = Summary(
        runs=len(results),
        successful=n,
        errors=len(results) - n,
        unique_outputs=len(groups),
        modal_count=groups[0].count if groups else 0,
        identical_rate=groups[0].count / n if compared else None,
        all_identical=compared and len(groups) == 1,
        first_divergence_word=min((d.word_index for d in parted), default=None),
        shared_prefix_words=word_count(shared) if compared else None,
        mean_similarity=_mean_between_runs(scores, groups) if compared else None,
        min_similarity=float(lowest) if compared else None,
        fingerprints=count_fingerprints(ok),
        note=None if compared else _TOO_FEW[n],
    )
    group_of = {run: k for k, group in enumerate(groups) for run in group.run_indices}
    order = [group_of[run] for run in runs]
    return Comparison(
        summary=summary,
        groups=groups,
        loose_groups=tuple(group_outputs(ok, loose=True)),
        modal=modal,
        matrix=tuple(map(tuple, scores[np.ix_(order, order)].tolist())) if n <= MATRIX_MAX_RUNS else (),
        matrix_runs=runs,
        most_dissimilar=_most_dissimilar(between, lowest, groups) if compared else None,
        shared_prefix="".join(shared),
        divergences={run: by_text[groups[k].text] for run, k in zip(runs, order)},
        group_matrix=tuple(map(tuple, scores.tolist())),
    )


def _between_groups(scores: np.ndarray) -> np.ndarray:
    """The scores with the diagonal (each group with itself) raised out of reach of any minimum."""
    between = scores.copy()
    np.fill_diagonal(between, np.inf)
    return between


def _mean_between_runs(scores: np.ndarray, groups: Sequence[Group]) -> float:
    """The mean similarity over every pair of two different runs, from the scores of their groups."""
    counts = np.array([group.count for group in groups], dtype=np.float64)
    n = counts.sum()
    # Σ over run pairs i ≠ j = Σ over group pairs of count_a × count_b × score, less each run with itself.
    return float((counts @ scores @ counts - counts @ np.diag(scores)) / (n * (n - 1)))


def _most_dissimilar(between: np.ndarray, lowest: float, groups: Sequence[Group]) -> tuple[int, int]:
    """The two runs with the `lowest` similarity, the earliest pair (by first run, then second) among equals."""
    if len(groups) == 1:
        return groups[0].run_indices[0], groups[0].run_indices[1]
    # Of two groups, the earliest pair of runs is their two first runs.
    firsts = [group.run_indices[0] for group in groups]
    return min(tuple(sorted((firsts[a], firsts[b]))) for a, b in zip(*np.nonzero(between == lowest)))


def verdict(comparison: Comparison) -> str:
    """The batch in one sentence a room reads from the back: how many agree, and where the others part."""
    summary = comparison.summary
    failed = f" ({summary.errors:,} failed)" if summary.errors else ""
    if summary.note:
        return summary.note[0].upper() + summary.note[1:] + failed
    n = summary.successful
    if summary.all_identical:
        return f"{n:,} of {n:,} identical — reproducible{failed}"
    word = f"word {summary.first_divergence_word + 1}"
    if summary.unique_outputs == n:
        return f"{n:,} different answers, they part at {word}{failed}"
    parting = [run for group in comparison.groups[1:] for run in group.run_indices]
    who = f"run {parting[0] + 1} parts" if len(parting) == 1 else f"{len(parting):,} runs part, the first"
    return f"{summary.modal_count:,} of {n:,} agree; {who} at {word}{failed}"

