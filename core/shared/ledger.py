"""The hourly quota in PostgreSQL: what core.policy.Quota does in one process, held by every replica and across
restarts. A row per admitted batch (visitor digest, time, requests); a visitor's takes are serialised by an advisory
lock, times come from the database's clock (so replicas' clocks need not agree), and every take deletes expired rows.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import psycopg

from core.errors import InvalidRequest, StorageError
from core.policy import HOUR_S, quota_refusal
from core.shared.pool import SharedDatabase, visitor_key

_QUOTA_LOCKS = 0x5251  # first key of the two-key advisory locks that line up one visitor's takes
EXPIRED_PER_TAKE = 500  # expired rows (anyone's) each take deletes, so the table does not grow

_EXPIRE = """DELETE FROM repro_quota_requests WHERE ctid IN (
    SELECT ctid FROM repro_quota_requests WHERE sent_at <= clock_timestamp() - make_interval(secs => %s)
    LIMIT %s FOR UPDATE SKIP LOCKED)"""
_IN_WINDOW = """SELECT requests, extract(epoch FROM clock_timestamp() - sent_at)::float8 FROM repro_quota_requests
    WHERE visitor = %s AND sent_at > clock_timestamp() - make_interval(secs => %s) ORDER BY sent_at"""


def _frees_in(sent: list[tuple[int, float]], needed: int, window_s: float) -> float:
    """Seconds until `needed` requests of `sent` (requests, age in seconds; oldest first) have left the window."""
    freed = 0
    for requests, age in sent:
        freed += requests
        if freed >= needed:
            return window_s - age
    return window_s


class SharedQuota:
    """core.policy.Quota for `visitor`, kept in the database: take(n) refuses with the same words, remaining()
    counts what is left. A database failure refuses the take (nothing is sent) and says why."""

    def __init__(self, database: SharedDatabase, visitor: str, per_hour: int, *, window_s: float = HOUR_S):
        self.per_hour = per_hour
        self._database, self._key, self._window_s = database, visitor_key(visitor), window_s

    def remaining(self) -> int:
        with _counting(self._database) as conn:
            return self.per_hour - sum(requests for requests, _ in self._sent(conn))

    def take(self, requests: int) -> None:
        """Count `requests` now, or refuse them all (nothing sent) with when enough frees up."""
        with _counting(self._database) as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_QUOTA_LOCKS, self._key))
            conn.execute(_EXPIRE, (self._window_s, EXPIRED_PER_TAKE))
            sent = self._sent(conn)
            left = self.per_hour - sum(count for count, _ in sent)
            refused = requests > left
            if not refused:
                conn.execute("INSERT INTO repro_quota_requests (visitor, sent_at, requests) "
                             "VALUES (%s, clock_timestamp(), %s)", (self._key, requests))
        if refused:  # raised after the block, so the expired rows' deletion is committed
            frees_in = _frees_in(sent, requests - left, self._window_s) if requests <= self.per_hour and sent else None
            raise InvalidRequest(quota_refusal(requests, left, self.per_hour, frees_in))

    def _sent(self, conn: psycopg.Connection) -> list[tuple[int, float]]:
        return conn.execute(_IN_WINDOW, (self._key, self._window_s)).fetchall()


@contextlib.contextmanager
def _counting(database: SharedDatabase) -> Iterator[psycopg.Connection]:
    """A transaction whose database failure is an InvalidRequest: the pages show it where they show a refusal."""
    try:
        with database.transaction() as conn:
            yield conn
    except StorageError as exc:
        raise InvalidRequest(f"Requests cannot be counted against the hourly quota right now, so nothing was sent; "
                             f"try again shortly. {exc}") from None
