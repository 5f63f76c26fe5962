"""The answer inside a model's text: extractors (`regex:…`, `json:path`, `last-line`, `number`, `choice:A-E`) that
pull it out, and the rule that says whether it is the expected one.

An extractor that finds nothing returns None; None is never a correct answer and never agrees with another.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from core.analysis.compare import normalised
from core.errors import InvalidRequest

EXTRACTORS = ("regex:PATTERN", "json:PATH", "last-line", "number", "choice:A-E")
_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?")
_CHOICE_RANGE = re.compile(r"([A-Z])-([A-Z])")
# Most explicit first: "answer is (B)", a text that starts with the letter, a letter in brackets, a letter alone.
_CHOICE_FORMS = (r"(?i:answer)(?:\s+(?i:is))?\s*:?\s*[(\[]?([{0}])\b", r"^\W*[(\[]?([{0}])(?![\w'])",
                 r"[(\[]([{0}])[)\]]", r"\b([{0}])\b")
JSON_STARTS_TRIED = 32  # each failed parse stops at its first error, so this bounds the work on hostile text


@dataclass(frozen=True)
class Extractor:
    """One of EXTRACTORS, checked when made; call it on a text for the answer, or None when there is none."""

    spec: str
    _patterns: tuple[re.Pattern[str], ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.spec, str):
            raise InvalidRequest(f"extractor must be text such as number or choice:A-E, got {self.spec!r:.40}.")
        kind, _, argument = self.spec.partition(":")
        if kind == "regex":
            object.__setattr__(self, "_patterns", (_compiled(argument),))
        elif kind == "json":
            if not argument or "" in argument.split("."):
                raise InvalidRequest(f"extractor {self.spec!r:.60}: give a path of keys and list positions after "
                                     "json:, such as json:answer or json:choices.0.text.")
        elif kind == "choice":
            found = _CHOICE_RANGE.fullmatch(argument)
            if not found or found[1] > found[2]:
                raise InvalidRequest(f"extractor {self.spec!r:.60}: write the letters as a range of capitals, "
                                     "such as choice:A-E.")
            letters = "".join(map(chr, range(ord(found[1]), ord(found[2]) + 1)))
            object.__setattr__(self, "_patterns", tuple(re.compile(form.format(letters)) for form in _CHOICE_FORMS))
        elif self.spec not in ("last-line", "number"):
            raise InvalidRequest(f"extractor {self.spec!r:.60} is not one of {', '.join(EXTRACTORS)}.")

    @property
    def kind(self) -> str:
        return self.spec.partition(":")[0]

    def __call__(self, text: str) -> str | None:
        return _EXTRACT[self.kind](self, text)

    def canonical(self, expected: str) -> str:
        """The expected answer in the form this extractor returns (numbers and letters); other answers as written."""
        return (self(expected) if self.kind in ("number", "choice") else None) or expected.strip()


def _compiled(pattern: str) -> re.Pattern[str]:
    if not pattern:
        raise InvalidRequest("extractor regex: give a pattern after regex:, such as regex:Answer: (\\w+).")
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise InvalidRequest(f"extractor regex:{pattern:.60} is not a valid regular expression: {exc}.") from None


def _regex(extractor: Extractor, text: str) -> str | None:
    """The first match: its first group when the pattern has one, else the whole match."""
    [pattern] = extractor._patterns
    found = pattern.search(text)
    if not found:
        return None
    return (found[1] if pattern.groups else found[0]).strip()


def _choice(extractor: Extractor, text: str) -> str | None:
    """The letter of the most explicit form found (see _CHOICE_FORMS), not merely the first letter in the text."""
    stripped = text.strip()
    return next((found[1] for pattern in extractor._patterns if (found := pattern.search(stripped))), None)


def _number(extractor: Extractor, text: str) -> str | None:
    """The last number in the text (where worked answers put the result), written without separators or zeros."""
    found = _NUMBER.findall(text)
    if not found:
        return None
    value = Decimal(found[-1].replace(",", "")).normalize()
    return format(value if value else Decimal(0), "f")


def _last_line(extractor: Extractor, text: str) -> str | None:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else None


def _json(extractor: Extractor, text: str) -> str | None:
    value = _first_json(text)
    for step in extractor.spec.partition(":")[2].split("."):
        if isinstance(value, dict) and step in value:
            value = value[step]
        elif isinstance(value, list) and step.isdigit() and int(step) < len(value):
            value = value[int(step)]
        else:
            return None
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _first_json(text: str) -> Any:
    """The text as JSON, or the first object or list inside it (answers often wrap JSON in prose or fences)."""
    decoder = json.JSONDecoder()
    starts = (k for k, char in enumerate(text) if char in "{[")
    for start in itertools.islice(starts, JSON_STARTS_TRIED):
        try:
            return decoder.raw_decode(text, start)[0]
        except (ValueError, RecursionError):
            continue
    return None


_EXTRACT = {"regex": _regex, "json": _json, "last-line": _last_line, "number": _number, "choice": _choice}


def answer_of(text: str | None, extractor: Extractor | None) -> str | None:
    """The extracted answer; without an extractor, the whole text without surrounding whitespace."""
    if text is None:
        return None
    return extractor(text) if extractor else text.strip()


def is_correct(answer: str | None, expected: str, extractor: Extractor | None) -> bool:
    """The answer equals the expected one, ignoring case and whitespace (numbers and letters in canonical form)."""
    if answer is None:
        return False
    reference = extractor.canonical(expected) if extractor else expected
    return normalised(answer) == normalised(reference)
