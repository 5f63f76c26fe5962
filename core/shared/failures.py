"""Passcode failures in PostgreSQL: what core.policy.FailureLog does in one process, held by every replica, so
failures on one replica slow the next attempt on another and a restart forgives nothing.

No connection is held while an attempt waits: each attempt books its turn in the visitor's row (after the turn booked
before it, plus the delay its place in line earns) and sleeps outside any transaction. Rows expire like the
FailureLog's visitors: with no attempt for `forget_after_s` and none in line.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from core.policy import FORGET_AFTER_S, failure_delay, passcode_matches
from core.shared.pool import SharedDatabase, visitor_key

EXPIRED_PER_ATTEMPT = 500

_EXPIRE = """DELETE FROM repro_passcode_failures WHERE ctid IN (
    SELECT ctid FROM repro_passcode_failures
    WHERE last_attempt <= clock_timestamp() - make_interval(secs => %s) AND next_turn <= clock_timestamp()
    LIMIT %s FOR UPDATE SKIP LOCKED)"""
# The no-op update locks the visitor's row (new or not) until the turn is booked.
_LOCK_VISITOR = """INSERT INTO repro_passcode_failures AS f (visitor, failures, pending, last_attempt, next_turn)
    VALUES (%s, 0, 0, clock_timestamp(), clock_timestamp())
    ON CONFLICT (visitor) DO UPDATE SET visitor = f.visitor
    RETURNING failures, pending, extract(epoch FROM clock_timestamp() - last_attempt)::float8,
              extract(epoch FROM next_turn - clock_timestamp())::float8"""
_BOOK = """UPDATE repro_passcode_failures SET failures = %s, pending = %s, last_attempt = clock_timestamp(),
    next_turn = clock_timestamp() + make_interval(secs => %s) WHERE visitor = %s"""
_SETTLED = {True: "0", False: "failures + 1", None: "failures"}  # matched, failed, never compared


class SharedFailureLog:
    """core.policy.FailureLog kept in the database: `attempt` waits its turn, compares in constant time and counts
    the failure (or forgets the failures on a match). A database failure raises StorageError: no attempt is
    compared unless it has been counted."""

    def __init__(self, database: SharedDatabase, delay: Callable[[int], float] = failure_delay,
                 sleep: Callable[[float], None] = time.sleep, forget_after_s: float = FORGET_AFTER_S) -> None:
        self._database, self._delay, self._sleep, self._forget_after_s = database, delay, sleep, forget_after_s

    def __len__(self) -> int:
        """Visitors remembered: with failures or attempts in line, and not yet forgotten."""
        with self._database.transaction() as conn:
            [(count,)] = conn.execute(
                "SELECT count(*) FROM repro_passcode_failures WHERE (failures > 0 OR pending > 0) "
                "AND last_attempt > clock_timestamp() - make_interval(secs => %s)", (self._forget_after_s,)).fetchall()
        return count

    def attempt(self, visitor: str, given: str, expected: str) -> bool:
        """Wait out this visitor's turn, compare, and count the failure (or forget the failures on a match)."""
        key = visitor_key(visitor)
        wait, matches = self._book_turn(key), None
        try:
            self._sleep(wait)
            matches = passcode_matches(given, expected)
            return matches
        finally:
            self._settle(key, matches)

    def _book_turn(self, key: str) -> float:
        """Seconds until this attempt's turn: after every attempt booked before it, plus the delay that the
        visitor's failures and the attempts ahead of it in line earn."""
        with self._database.transaction() as conn:
            conn.execute(_EXPIRE, (self._forget_after_s, EXPIRED_PER_ATTEMPT))
            [(failures, pending, idle_s, turn_in_s)] = conn.execute(_LOCK_VISITOR, (key,)).fetchall()
            if idle_s >= self._forget_after_s:
                failures = pending = 0  # forgotten, and so is any attempt a killed replica left in line
            wait = max(0.0, turn_in_s) + self._delay(failures + pending)
            conn.execute(_BOOK, (failures, pending + 1, wait, key))
        return wait

    def _settle(self, key: str, matches: bool | None) -> None:
        with self._database.transaction() as conn:
            conn.execute(f"UPDATE repro_passcode_failures SET failures = {_SETTLED[matches]}, "
                         "pending = greatest(pending - 1, 0), last_attempt = clock_timestamp() WHERE visitor = %s",
                         (key,))
