"""The passcode gate's rules: a constant-time comparison and a growing delay after repeated failures."""

from __future__ import annotations

import hmac
import threading

FREE_ATTEMPTS = 3
MAX_DELAY_S = 30.0


def passcode_matches(given: str, expected: str) -> bool:
    """Compare in constant time, so the time taken says nothing about how much of the passcode was right."""
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def failure_delay(failures: int) -> float:
    """Seconds to wait before checking the next attempt: none for the first few, then doubling up to a cap."""
    if failures < FREE_ATTEMPTS:
        return 0.0
    return min(2.0 ** (failures - FREE_ATTEMPTS), MAX_DELAY_S)


class FailureLog:
    """Failed passcode attempts per visitor for the whole process, so a new tab or session does not start afresh."""

    def __init__(self) -> None:
        self._failures: dict[str, int] = {}
        self._lock = threading.Lock()

    def delay(self, visitor: str) -> float:
        with self._lock:
            return failure_delay(self._failures.get(visitor, 0))

    def failed(self, visitor: str) -> None:
        with self._lock:
            self._failures[visitor] = self._failures.get(visitor, 0) + 1

    def passed(self, visitor: str) -> None:
        with self._lock:
            self._failures.pop(visitor, None)
