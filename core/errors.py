"""The few exceptions core raises, and how secrets are kept out of their words.

    ReproError                  base: every message is safe to show a user
    ├── InvalidRequest          a request or batch value is wrong; nothing was sent
    ├── ConfigurationError      a backend is missing a setting or has a wrong one
    ├── InvalidImport           a file that is not a valid experiment export; says what is wrong with it
    ├── UnknownExperiment       no experiment with that id in the history (never saved, or deleted)
    ├── StorageError            the history database failed (unreachable, locked, not a database)
    └── BackendError            one request failed; carries a RunError that the runner stores on the run
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable
from typing import Protocol


class Failure(Protocol):
    """What a BackendError carries: a core.models.RunError, or anything else with a message to show."""

    @property
    def message(self) -> str: ...


class ReproError(Exception):
    """Base class; the message names the value to fix and never a secret."""


class InvalidRequest(ReproError, ValueError):
    pass


class ConfigurationError(ReproError):
    pass


class InvalidImport(ReproError, ValueError):
    pass


class UnknownExperiment(ReproError, LookupError):
    pass


class StorageError(ReproError):
    pass


class BackendError(ReproError):
    def __init__(self, error: Failure):
        super().__init__(error.message)
        self.error = error


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """Replace every occurrence of each non-trivial secret in text, as written or as a server may echo it."""
    worth_hiding = {secret for secret in secrets if isinstance(secret, str) and len(secret) >= 4}
    pattern = _pattern(tuple(sorted(worth_hiding, key=lambda secret: (-len(secret), secret))))
    return pattern.sub("***", text) if pattern else text


@functools.lru_cache(maxsize=64)
def _pattern(secrets: tuple[str, ...]) -> re.Pattern[str] | None:
    """One compiled pattern per set of secrets: a run scrubs every token of its answer with it."""
    return re.compile("|".join(map(_echoed, secrets))) if secrets else None


def _echoed(secret: str) -> str:
    """A pattern for secret in which any character may also be URL-encoded or escaped as JSON writes it."""
    return "".join(_char_forms(char) for char in secret)


def _char_forms(char: str) -> str:
    exact = {char, json.dumps(char)[1:-1], *{"/": ("\\/",), " ": ("+",)}.get(char, ())}
    # Hex digits in any case: %2f and %2F, \u00e9 and \u00E9 are the same character.
    hexadecimal = {"".join(f"%{byte:02x}" for byte in char.encode("utf-8", "surrogatepass")), f"\\u{ord(char):04x}"}
    forms = [re.escape(form) for form in exact] + [f"(?i:{re.escape(form)})" for form in hexadecimal]
    return "(?:" + "|".join(sorted(forms, key=len, reverse=True)) + ")"
