"""Two texts token by token: the tokens (words with their whitespace; characters in scripts written without spaces),
the diff between them, and where they first part. rapidfuzz does every alignment; no Streamlit here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from rapidfuzz.distance import Indel

Op = Literal["equal", "insert", "delete", "replace"]
REFINE_MAX_CHARS = 80
REFINE_MIN_SIMILARITY = 0.5

# Scripts written without spaces between words (Han, kana, Thai, Lao, Khmer, Myanmar) and CJK punctuation;
# U+3000, the ideographic space, stays whitespace.
_NO_SPACE = (
    "\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u2e80-\u2fdf\u3001-\u303f\u3040-\u30ff\u3100-\u312f\u3190-\u31ff"
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff01-\uff9f\U00020000-\U000323af"
)
# Combining marks (Unicode category M) that belong to the character before them, so a character token keeps them.
_MARKS = (
    "\u0300-\u036f\u0e31\u0e34-\u0e3a\u0e47-\u0e4e\u0eb1\u0eb4-\u0ebc\u0ec8-\u0ecd\u102b-\u103e\u1056-\u1059"
    "\u105e-\u1060\u1062-\u1064\u1067-\u106d\u1071-\u1074\u1082-\u108d\u108f\u109a-\u109d\u17b4-\u17d3\u17dd"
    "\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\u302a-\u302f\u3099\u309a\ufe00-\ufe0f\ufe20-\ufe2f\U000e0100-\U000e01ef"
)
_TOKEN = re.compile(rf"[^\s{_NO_SPACE}]+\s*|[{_NO_SPACE}][{_MARKS}]*\s*|\s+")
# What a reader sees as one character: a flag, or a character with its marks, skin tone, tags and ZWJ-joined parts.
_CHARACTER = re.compile(
    rf"\r\n|[\U0001f1e6-\U0001f1ff]{{2}}|.(?:[{_MARKS}\U0001f3fb-\U0001f3ff\U000e0020-\U000e007f]|\u200d.)*", re.DOTALL
)


def tokenize(text: str) -> list[str]:
    """Words with the whitespace after them (one character each in scripts without spaces); they join back to text."""
    return _TOKEN.findall(text)


def word_count(tokens: Sequence[str]) -> int:
    """Tokens that are not whitespace; only a leading token can be whitespace alone."""
    return len(tokens) - (1 if tokens and tokens[0].isspace() else 0)


@dataclass(frozen=True)
class Segment:
    """A stretch of the diff: `a` is its text on the left, `b` on the right; `chars` refines a short replace."""

    op: Op
    a: str
    b: str
    chars: tuple[Segment, ...] = ()


def _segments(a: Sequence[str], b: Sequence[str], *, refine: bool) -> list[Segment]:
    """Indel opcodes over two token lists; the inserts and deletes between two equal spans become one segment."""
    # Indel, not Levenshtein: it keeps a longest common subsequence equal where Levenshtein trades matches for
    # substitutions, and it measured faster on the benchmark batch.
    out: list[Segment] = []
    i = j = 0
    for op in Indel.opcodes(a, b):
        if op.tag != "equal":
            continue
        if i < op.src_start or j < op.dest_start:
            out.append(_change("".join(a[i : op.src_start]), "".join(b[j : op.dest_start]), refine=refine))
        text = "".join(a[op.src_start : op.src_end])
        out.append(Segment("equal", text, text))
        i, j = op.src_end, op.dest_end
    if i < len(a) or j < len(b):
        out.append(_change("".join(a[i:]), "".join(b[j:]), refine=refine))
    return out


def _change(a: str, b: str, *, refine: bool) -> Segment:
    if not b:
        return Segment("delete", a, "")
    if not a:
        return Segment("insert", "", b)
    # Characters marked inside two unrelated words are noise, so only spans at least half alike are refined.
    short = refine and max(len(a), len(b)) <= REFINE_MAX_CHARS
    alike = short and Indel.normalized_similarity(a, b) >= REFINE_MIN_SIMILARITY
    chars = _segments(_CHARACTER.findall(a), _CHARACTER.findall(b), refine=False) if alike else ()
    return Segment("replace", a, b, tuple(chars))


def diff(a: str, b: str) -> list[Segment]:
    """Token diff; a replace of at most REFINE_MAX_CHARS a side and REFINE_MIN_SIMILARITY alike gets `chars` too."""
    if a == b:
        return [Segment("equal", a, b)] if a else []
    return _segments(tokenize(a), tokenize(b), refine=True)


@dataclass(frozen=True)
class Divergence:
    """Where two texts part: at the start of the first token that differs."""

    token_index: int
    """Tokens the two texts share before it."""
    word_index: int
    """Word tokens (not whitespace alone; characters, in scripts without spaces) they share before it."""
    char_offset: int
    """Code points they share before it: where it starts in either text."""


def divergence(a: Sequence[str], b: Sequence[str]) -> Divergence | None:
    if a == b:
        return None
    shared = next((k for k, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    prefix = a[:shared]
    return Divergence(shared, word_count(prefix), sum(map(len, prefix)))


def first_divergence(a: str, b: str) -> Divergence | None:
    """Where a and b first differ, token by token; None when they are equal."""
    return divergence(tokenize(a), tokenize(b))
