"""Fan-out of N identical requests: all at once up to a concurrency cap, results delivered as they complete.

A failed run becomes a RunResult with an error; it never cancels or loses the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import queue
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from core.backends import Backend
from core.errors import BackendError
from core.models import BatchPlan, RunError, RunRequest, RunResult

if TYPE_CHECKING:
    from core.shared.slots import SharedSlots

T = TypeVar("T")
U = TypeVar("U")
# Runs one attempt while holding a slot of a cap that several batches share.
Holder = Callable[[Callable[[], Awaitable[RunResult]]], Awaitable[RunResult]]


async def _one(backend: Backend, request: RunRequest, index: int, gate: asyncio.Semaphore,
               hold: Holder | None) -> RunResult:
    attempt = functools.partial(_attempt, backend, request, index)
    async with gate:
        return await (hold(attempt) if hold else attempt())


async def _attempt(backend: Backend, request: RunRequest, index: int) -> RunResult:
    started = time.perf_counter()
    try:
        completion = await backend.complete(request)
    except BackendError as exc:
        return RunResult.failed(index, _elapsed_ms(started), exc.error)
    except Exception as exc:  # noqa: BLE001 - one broken run must not take the batch down
        error = RunError("unexpected", f"{type(exc).__name__}: {exc}")
        return RunResult.failed(index, _elapsed_ms(started), error)
    return RunResult.succeeded(index, _elapsed_ms(started), completion)


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


async def iter_requests(backend: Backend, requests: Sequence[RunRequest], concurrency: int,
                        hold: Holder | None = None) -> AsyncIterator[RunResult]:
    """Start every request at once (at most `concurrency` in flight, fewer if the backend says so, and each attempt
    run through `hold` when several batches share one cap, as a Fanout's do) and yield each result as it completes;
    a result's index is its request's position, its latency counts from the moment it may start."""
    gate = asyncio.Semaphore(min(concurrency, backend.max_concurrency or concurrency))
    tasks = [asyncio.ensure_future(_one(backend, request, i, gate, hold)) for i, request in enumerate(requests)]
    try:
        for next_done in asyncio.as_completed(tasks):
            yield await next_done
    finally:
        for task in tasks:
            task.cancel()


def iter_runs(backend: Backend, request: RunRequest, plan: BatchPlan) -> AsyncIterator[RunResult]:
    """N identical requests: iter_requests with the request repeated plan.runs times."""
    return iter_requests(backend, [request] * plan.runs, plan.concurrency)


async def run_batch(
    backend: Backend,
    request: RunRequest,
    plan: BatchPlan,
    on_result: Callable[[RunResult], None] | None = None,
) -> list[RunResult]:
    """All N results ordered by index; `on_result` sees each one the moment it arrives."""
    results = []
    async for result in iter_runs(backend, request, plan):
        results.append(result)
        if on_result:
            on_result(result)
    return sorted(results, key=lambda r: r.index)


class Arrivals(Generic[T]):
    """Results as a fan-out delivers them: iterating waits for the next one, `ready` takes those that have already
    arrived without waiting (so a caller can handle them together). Closing cancels the runs still in flight, as
    does dropping it, like a generator."""

    def __init__(self, take: Callable[[bool], T | None], cancel: Callable[[], object]):
        self._take = take  # take(block): the next result; None once they have all come, or (not blocking) none is there
        self._cancel = cancel

    def __iter__(self) -> Arrivals[T]:
        return self

    def __next__(self) -> T:
        item = self._take(True)
        if item is None:
            raise StopIteration
        return item

    def ready(self, most: int) -> list[T]:
        """Up to `most` results that have already arrived; none when the next one is still on its way."""
        taken: list[T] = []
        while len(taken) < most and (item := self._take(False)) is not None:
            taken.append(item)
        return taken

    def map(self, transform: Callable[[T], U]) -> Arrivals[U]:
        """The same arrivals, each passed through `transform`; closing either closes both."""
        def take(block: bool) -> U | None:
            item = self._take(block)
            return None if item is None else transform(item)

        return Arrivals(take, self._cancel)

    def close(self) -> None:
        self._cancel()

    def __del__(self) -> None:
        self.close()


class Fanout:
    """Fan-out for synchronous callers (Streamlit, the command line): an event loop of its own in a thread, started
    on first use, so SDK clients and their connections live across batches; and `process_limit`, the cap on requests
    in flight across every batch it runs (all app sessions at once), None for no cap beyond each batch's own; with
    `slots` (DATABASE_URL), also a slot of the cap that every replica shares, for as long as it holds its own.

    Closing an iterator it returns early cancels the runs still in flight; `close` stops the loop and its thread.
    """

    def __init__(self, process_limit: int | None = None, slots: SharedSlots | None = None):
        self.process_limit = process_limit
        self.slots = slots  # held only with a process_limit: the hook runs only when this process has a cap
        self._gate = asyncio.Semaphore(process_limit) if process_limit else None  # used only on this fanout's loop
        self._slot_holders: set[asyncio.Task] = set()  # the loop keeps only weak references to running tasks
        self._started = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"Fanout(process_limit={self.process_limit!r}, slots={self.slots!r})"

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        """The loop, started in its thread on first use (once, even when several threads ask at the same moment)."""
        with self._started:
            if self._closed:
                raise RuntimeError("This Fanout is closed; make a new one.")
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=self._loop.run_forever, name="repro-fanout", daemon=True)
                self._thread.start()
            return self._loop

    @property
    def running(self) -> bool:
        """Whether its loop thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run `coroutine` on this fanout's loop and wait for its result (or its exception)."""
        try:
            loop = self._running_loop()
        except RuntimeError:
            coroutine.close()  # closed fanout: the coroutine will never run, so say so without a warning
            raise
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result()

    def requests(self, backend: Backend, requests: Sequence[RunRequest], concurrency: int) -> Arrivals[RunResult]:
        """iter_requests within this fanout's cap, started now: each result as it completes."""
        arrived: queue.Queue = queue.Queue()
        hold = self.hold

        async def feed() -> None:
            try:
                async for result in iter_requests(backend, requests, concurrency, hold):
                    arrived.put(result)
            finally:
                arrived.put(None)

        loop = self._running_loop()  # first, so that a closed fanout refuses before anything is made
        future = asyncio.run_coroutine_threadsafe(feed(), loop)
        ended = False

        def take(block: bool) -> RunResult | None:
            nonlocal ended
            try:
                item = None if ended else arrived.get(block)
            except queue.Empty:
                return None
            if item is None and not ended:
                ended = True
                future.result()  # what the feed raised, if anything
            return item

        return Arrivals(take, future.cancel)

    def runs(self, backend: Backend, request: RunRequest, plan: BatchPlan) -> Arrivals[RunResult]:
        """N identical requests."""
        return self.requests(backend, [request] * plan.runs, plan.concurrency)

    def groups(self, backend: Backend, firsts: Sequence[RunRequest], runs: int,
               concurrency: int) -> Arrivals[tuple[int, RunResult]]:
        """`runs` identical requests for each request in `firsts` (a sweep's cells, a suite's prompts), all under one
        cap, queued group by group; each result with its group's position, indexed within the group."""
        def regroup(result: RunResult) -> tuple[int, RunResult]:
            position, k = divmod(result.index, runs)
            return position, replace(result, index=k)

        return self.requests(backend, [request for request in firsts for _ in range(runs)], concurrency).map(regroup)

    @property
    def hold(self) -> Callable[[Callable[[], Awaitable[RunResult]]], Awaitable[RunResult]] | None:
        """What holds a slot of this fanout's cap around one attempt (for `iter_requests` run through `call`); None
        without a cap."""
        return self._hold_a_slot if self._gate else None

    async def _hold_a_slot(self, attempt: Callable[[], Awaitable[RunResult]]) -> RunResult:
        """The attempt, holding one slot of this fanout's cap until its request has really ended.

        If the batch is cancelled, the request is not: cutting the connection would free the slot while the server
        still works on the request, so a new batch could push the server over the cap. It runs on, shielded, its
        result discarded, and gives the slot back when it ends (bounded by the backend's timeout and retries).
        With shared `slots`, it also waits for one of those, and holds it (its lease renewed) as long as its own."""
        await self._gate.acquire()
        try:
            lease = await self.slots.acquire() if self.slots else None
        except BaseException:  # cancelled while waiting for a shared slot: this process's slot goes back at once
            self._gate.release()
            raise
        task = asyncio.ensure_future(self.slots.holding(lease, attempt) if self.slots else attempt())
        self._slot_holders.add(task)
        task.add_done_callback(self._give_back)
        return await asyncio.shield(task)

    def _give_back(self, task: asyncio.Task) -> None:
        self._slot_holders.discard(task)
        self._gate.release()

    def close(self) -> None:
        """Cancel every run still on its loop (shielded ones too), then stop the loop and end its thread."""
        with self._started:
            loop, thread, self._closed = self._loop, self._thread, True
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(_cancel_the_others(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()

    def __enter__(self) -> Fanout:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


async def _cancel_the_others() -> None:
    """Cancel every task on the running loop but this one, and wait until they have ended."""
    others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in others:
        task.cancel()
    await asyncio.gather(*others, return_exceptions=True)


class Relay(Generic[T]):
    """Sources of results, drained in threads of their own, every item kept: one after the other, or `together`
    (a thread per source, so two scenarios compared side by side are sent at the same moment).

    A caller that may be stopped and replaced half-way (a Streamlit script run, at the visitor's next click) follows
    what has arrived with `wait` without owning the iterators, so nothing is sent twice. `cancel` closes each source
    being drained once its next item arrives (closing cancels its requests) and opens no more. A source that raises
    stops the relay the same way, its error kept.
    """

    def __init__(self, sources: Sequence[Callable[[], Iterator[T]]], *, together: bool = False):
        self.arrived: list[list[T]] = [[] for _ in sources]
        self.opened: list[Iterator[T] | None] = [None] * len(sources)
        self.error: BaseException | None = None  # raised by a source: the relay stopped there
        self._done = [False] * len(sources)
        self._cancelled = threading.Event()
        self._changed = threading.Condition()
        positions = list(range(len(sources)))
        for lane in ([[k] for k in positions] if together else [positions]):
            threading.Thread(target=self._drain, args=(sources, lane), name="repro-relay", daemon=True).start()

    def _drain(self, sources: Sequence[Callable[[], Iterator[T]]], lane: Sequence[int]) -> None:
        """Open and drain the sources at the positions of `lane`, one after the other."""
        try:
            for k in lane:
                if self._cancelled.is_set():
                    break
                self.opened[k] = sources[k]()
                with contextlib.closing(self.opened[k]):
                    for item in self.opened[k]:
                        self._update(functools.partial(self.arrived[k].append, item))
                        if self._cancelled.is_set():
                            break
                self._update(functools.partial(self._done.__setitem__, k, True))
        except BaseException as exc:  # noqa: BLE001 - kept for the follower, who raises it where it can be seen
            self.error = exc
            self._cancelled.set()
        finally:
            for k in lane:
                self._update(functools.partial(self._done.__setitem__, k, True))

    def _update(self, change: Callable[[], None]) -> None:
        with self._changed:
            change()
            self._changed.notify_all()

    def wait(self, source: int, seen: int, timeout: float) -> tuple[list[T], bool]:
        """The items of source `source` so far and whether it is done, once it has more than `seen`, is done, or
        `timeout` seconds have passed."""
        with self._changed:
            self._changed.wait_for(lambda: len(self.arrived[source]) > seen or self._done[source], timeout)
            return list(self.arrived[source]), self._done[source]

    def cancel(self) -> None:
        self._cancelled.set()
