"""The N runs as a tree of shared prefixes: what all runs say, where they split, and how many follow each branch.

Built from `core.analysis.compare.tokenize` tokens of the successful runs; near ties at the forks come from their logprobs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from core.analysis.diff import tokenize
from core.analysis.forks import fork_side
from core.models import RunResult

_END = object()  # the "next token" of a run that has ended
MAX_WORD_CHARS = 24
_ESCAPES = str.maketrans({"\n": "\\n", "\r": "\\r", "\t": "\\t"})


@dataclass(frozen=True)
class Branch:
    """A stretch of text that `runs` share, and the branches they split into after it (none: they end together)."""

    shared_words: int
    """Word tokens in `text` (characters, in scripts without spaces)."""
    text: str
    """The shared stretch; for a child, it starts with the token that set it apart. Empty for runs that ended."""
    runs: tuple[int, ...]
    children: tuple[Branch, ...]
    """Most runs first, then lowest run index; a run that ends where others go on is a child with empty text."""
    near_tie: bool | None
    """Whether the first differing model token after the stretch was a near tie in any run (None: leaf, no logprobs)."""

    @property
    def word(self) -> str:
        """The first word of the stretch, the one that set this branch apart; empty for runs that ended."""
        if not self.text:
            return ""
        first = tokenize(self.text[:200])[0]
        return first.strip() or _escape(first)  # a text can start with whitespace alone


def _escape(text: str) -> str:
    return text.translate(_ESCAPES)


def _words(tokens: Sequence[str]) -> int:
    return sum(1 for token in tokens if not token.isspace())


def _shared_until(sequences: Sequence[Sequence[object]], start: int) -> int:
    """The first position from `start` where the sequences are not all equal, or the end of the shortest."""
    width = len(sequences)
    for position, column in enumerate(zip(*(sequence[start:] for sequence in sequences)), start):
        if column.count(column[0]) != width:
            return position
    return min(map(len, sequences))


def _model_fork(token_lists: Sequence[tuple[str, ...]], start: int) -> int | None:
    """The first logprob position from `start` where the runs part (differ, or one goes on); None if they never do."""
    position = _shared_until(token_lists, start)
    return position if any(len(tokens) > position for tokens in token_lists) else None


class _Builder:
    def __init__(self, results: Sequence[RunResult]):
        by_text: dict[str, tuple[str, ...]] = {}
        self.tokens = {r.index: by_text.setdefault(r.text or "", tuple(tokenize(r.text or ""))) for r in results}
        self.results = {r.index: r for r in results}
        self.model_tokens = {r.index: tuple(t.token for t in r.logprobs) for r in results if r.logprobs}

    def node(self, runs: list[int], start: int, model_start: int) -> Branch:
        distinct = list({id(self.tokens[run]): self.tokens[run] for run in runs}.values())
        end = _shared_until(distinct, start)
        stretch = distinct[0][start:end]
        if len(distinct) == 1:
            return Branch(_words(stretch), "".join(stretch), tuple(runs), (), None)

        groups: dict[object, list[int]] = {}
        for run in runs:
            tokens = self.tokens[run]
            groups.setdefault(tokens[end] if end < len(tokens) else _END, []).append(run)
        near_tie, model_next = self.near_tie(runs, model_start)
        children = [
            Branch(0, "", tuple(members), (), None) if key is _END else self.node(members, end, model_next)
            for key, members in groups.items()
        ]
        children.sort(key=lambda child: (-len(child.runs), child.runs[0]))
        return Branch(_words(stretch), "".join(stretch), tuple(runs), tuple(children), near_tie)

    def near_tie(self, runs: list[int], start: int) -> tuple[bool | None, int]:
        if not all(run in self.model_tokens for run in runs):
            return None, start
        position = _model_fork([self.model_tokens[run] for run in runs], start)
        if position is None:
            return None, start
        results = [self.results[run] for run in runs]
        sides = (fork_side(result, position) for result in results if position < len(result.logprobs))
        return any(side.near_tie for side in sides), position


def divergence_tree(results: Iterable[RunResult]) -> Branch | None:
    """The successful runs as a tree: the root holds the prefix all share; None without a successful run."""
    ok = sorted((result for result in results if result.ok), key=lambda result: result.index)
    if not ok:
        return None
    return _Builder(ok).node([result.index for result in ok], 0, 0)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _runs(indices: Sequence[int]) -> str:
    """1-based, as the pages number runs, with consecutive runs as ranges: "runs 1–3, 7"."""
    spans: list[list[int]] = []
    for index in sorted(indices):
        if spans and index == spans[-1][1] + 1:
            spans[-1][1] = index
        else:
            spans.append([index, index])
    text = ", ".join(f"{a + 1}" if a == b else f"{a + 1}–{b + 1}" for a, b in spans)
    return ("run " if len(indices) == 1 else "runs ") + text


def _quote(text: str) -> str:
    return "'" + (text if len(text) <= MAX_WORD_CHARS else text[: MAX_WORD_CHARS - 1] + "…") + "'"


def _heads(branches: Sequence[Branch]) -> list[str]:
    """Each branch's first word quoted, or "(end)"; siblings whose words match show their whitespace, escaped."""
    words = [branch.word for branch in branches]
    heads = []
    for branch, word in zip(branches, words):
        if not branch.text:
            heads.append("(end)")
        elif words.count(word) > 1:
            heads.append(_quote(_escape(tokenize(branch.text[:200])[0])))
        else:
            heads.append(_quote(word))
    return heads


def render_lines(tree: Branch | None) -> list[str]:
    """One line per branch, two spaces deeper per level: "37 words shared → 'bamboo' ×4 / 'forest' ×1"."""
    lines: list[str] = []

    def walk(branch: Branch, depth: int, head: str) -> None:
        parts = [] if depth == 0 else [f"{head} ×{len(branch.runs)}"]
        heads = _heads(branch.children)
        if branch.children:
            forks = " / ".join(f"{h} ×{len(child.runs)}" for h, child in zip(heads, branch.children))
            tie = " · near tie" if branch.near_tie else ""
            parts.append(f"{_count(branch.shared_words, 'word')} shared → {forks}{tie}")
        else:
            if branch.text or depth == 0:
                parts.append(_count(branch.shared_words, "word"))
            parts.append(_runs(branch.runs))
        lines.append("  " * depth + " · ".join(parts))
        for h, child in zip(heads, branch.children):
            walk(child, depth + 1, h)

    if tree is not None:
        walk(tree, 0, "")
    return lines
