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

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.models import RunError


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
    def __init__(self, error: RunError):
        super().__init__(error.message)
        self.error = error


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """Replace every occurrence of each non-trivial secret in text."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text
