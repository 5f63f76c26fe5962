"""The cap on requests in flight, shared by every replica: `cap` slots in PostgreSQL, each held by a lease that its
holder renews while its request runs. A replica killed mid-batch stops renewing, so its slots come free when their
leases run out (`lease_s`), never later.

For core.runner.Fanout: `lease = await slots.acquire()` before the request may start (cancellable, leaking nothing),
then `await slots.holding(lease, attempt)` runs it, renewing the lease, and gives the slot back when it ends.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import random
import socket
import threading
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from core.errors import StorageError
from core.shared.pool import POOL_SIZE, SharedDatabase

T = TypeVar("T")
LEASE_S = 30.0
FIRST_POLL_S, LAST_POLL_S = 0.025, 0.25  # waiting for a slot: ask again soon, then less and less often

log = logging.getLogger(__name__)

_CLAIM = """UPDATE repro_slot_leases SET holder = %s, expires_at = clock_timestamp() + make_interval(secs => %s)
    WHERE slot = (SELECT slot FROM repro_slot_leases
                  WHERE slot < %s AND (holder IS NULL OR expires_at <= clock_timestamp())
                  ORDER BY slot LIMIT 1 FOR UPDATE SKIP LOCKED)
    RETURNING slot"""
_RENEW = ("UPDATE repro_slot_leases SET expires_at = clock_timestamp() + make_interval(secs => %s) "
          "WHERE holder = %s")
_RELEASE = "UPDATE repro_slot_leases SET holder = NULL, expires_at = NULL WHERE holder = %s"


@dataclass(frozen=True)
class Lease:
    """Slot `slot`, held under `holder` (host, process and a token of its own, so a release frees only it)."""

    slot: int
    holder: str


class SharedSlots:
    """`cap` slots shared by every process using this database. When the database fails, a request goes ahead under
    its process's own cap only, and the failure is logged: a cap that stops every request would be worse."""

    def __init__(self, database: SharedDatabase, cap: int, *, lease_s: float = LEASE_S):
        self.cap, self.lease_s = cap, lease_s
        self._database = database
        self._threads = concurrent.futures.ThreadPoolExecutor(POOL_SIZE, thread_name_prefix="repro-slots")
        self._slots_made = threading.Event()

    def __repr__(self) -> str:
        return f"SharedSlots(cap={self.cap}, lease_s={self.lease_s}, database={self._database.database.masked!r})"

    async def acquire(self) -> Lease | None:
        """A lease on a free slot, once one is free; None when the database fails (logged)."""
        holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        poll_s = FIRST_POLL_S
        while True:
            claim = asyncio.ensure_future(self._in_thread(self.claim, holder))
            try:
                slot = await asyncio.shield(claim)
            except asyncio.CancelledError:
                # The claim may still succeed in its thread: give back whatever it gets.
                claim.add_done_callback(lambda _: self._threads.submit(self._release, holder))
                raise
            except StorageError as exc:
                log.warning("The shared cap on requests in flight is not enforced for this request: %s", exc)
                return None
            if slot is not None:
                return Lease(slot, holder)
            await asyncio.sleep(poll_s * random.uniform(0.5, 1.5))  # jitter, so waiting replicas do not ask in step
            poll_s = min(poll_s * 2, LAST_POLL_S)

    async def holding(self, lease: Lease | None, attempt: Callable[[], Awaitable[T]]) -> T:
        """`attempt()`, its lease renewed while it runs and given back once it has ended (however it ends)."""
        if lease is None:
            return await attempt()
        renewing = asyncio.ensure_future(self._keep_renewing(lease))
        try:
            return await attempt()
        finally:
            renewing.cancel()
            await self._in_thread(self._release, lease.holder)

    def in_flight(self) -> int:
        """Slots held under a live lease, by every process."""
        with self._database.transaction() as conn:
            [(count,)] = conn.execute("SELECT count(*) FROM repro_slot_leases WHERE slot < %s AND holder IS NOT NULL "
                                      "AND expires_at > clock_timestamp()", (self.cap,)).fetchall()
        return count

    def claim(self, holder: str) -> int | None:
        """The slot now leased to `holder`, or None when all `cap` are held (one transaction, never waiting)."""
        self._make_slots()
        with self._database.transaction() as conn:
            row = conn.execute(_CLAIM, (holder, self.lease_s, self.cap)).fetchone()
        return row[0] if row else None

    async def _keep_renewing(self, lease: Lease) -> None:
        while True:
            await asyncio.sleep(self.lease_s / 3)
            await self._in_thread(self._renew, lease.holder)

    def _renew(self, holder: str) -> None:
        try:
            with self._database.transaction() as conn:
                conn.execute(_RENEW, (self.lease_s, holder))
        except StorageError as exc:
            log.warning("A lease on the shared cap could not be renewed: %s", exc)

    def _release(self, holder: str) -> None:
        try:
            with self._database.transaction() as conn:
                conn.execute(_RELEASE, (holder,))
        except StorageError as exc:
            log.warning("A slot of the shared cap is given back when its lease runs out: %s", exc)

    def _make_slots(self) -> None:
        """The rows for slots 0 … cap-1, once per object (a replica with a larger cap adds its own)."""
        if not self._slots_made.is_set():
            with self._database.transaction() as conn:
                conn.execute("INSERT INTO repro_slot_leases (slot) SELECT generate_series(0, %s - 1) "
                             "ON CONFLICT (slot) DO NOTHING", (self.cap,))
            self._slots_made.set()

    def _in_thread(self, func: Callable[..., T], *args: object) -> Awaitable[T]:
        """`func(*args)` in this object's threads, not the loop's default executor (which resolves host names)."""
        return asyncio.get_running_loop().run_in_executor(self._threads, func, *args)

    def close(self) -> None:
        self._threads.shutdown(wait=True)
