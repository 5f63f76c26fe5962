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
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import replace
from typing import Generic, TypeVar

from core.backends import Backend
from core.errors import BackendError
from core.models import BatchPlan, RunError, RunRequest, RunResult

T = TypeVar("T")


async def _one(backend: Backend, request: RunRequest, index: int, gate: asyncio.Semaphore,
               shared_gate: asyncio.Semaphore | None) -> RunResult:
    attempt = functools.partial(_attempt, backend, request, index)
    async with gate:
        return await (_holding_a_slot(shared_gate, attempt) if shared_gate else attempt())


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


_slot_holders: set[asyncio.Task] = set()  # held here, as the loop keeps only weak references to running tasks


async def _holding_a_slot(shared_gate: asyncio.Semaphore, attempt: Callable[[], Awaitable[RunResult]]) -> RunResult:
    """The attempt, holding one slot of the cap all batches share until its request has really ended.

    If the batch is cancelled, the request is not: cutting the connection would free the slot while the server
    still works on the request, so a new batch could push the server over the cap. It runs on, shielded, its
    result discarded, and gives the slot back when it ends (bounded by the backend's timeout and retries)."""
    await shared_gate.acquire()
    task = asyncio.ensure_future(attempt())
    _slot_holders.add(task)
    task.add_done_callback(functools.partial(_give_back, shared_gate))
    return await asyncio.shield(task)


def _give_back(shared_gate: asyncio.Semaphore, task: asyncio.Task) -> None:
    _slot_holders.discard(task)
    shared_gate.release()


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


async def iter_requests(backend: Backend, requests: Sequence[RunRequest], concurrency: int,
                        shared_gate: asyncio.Semaphore | None = None) -> AsyncIterator[RunResult]:
    """Start every request at once (at most `concurrency` in flight, fewer if the backend says so, and within
    `shared_gate` when several batches share one cap) and yield each result as it completes; a result's index is
    its request's position, its latency counts from the moment it may start."""
    gate = asyncio.Semaphore(min(concurrency, backend.max_concurrency or concurrency))
    tasks = [asyncio.ensure_future(_one(backend, request, i, gate, shared_gate)) for i, request in enumerate(requests)]
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


def _once(func):
    """functools.cache, safe when several threads (app sessions) make the first call at the same moment."""
    cached, lock = functools.cache(func), threading.Lock()

    @functools.wraps(func)
    def wrapper(*args):
        with lock:
            return cached(*args)

    return wrapper


@_once
def _background_loop() -> asyncio.AbstractEventLoop:
    """One event loop for the process, so SDK clients and their open connections live across batches."""
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, name="repro-runner", daemon=True).start()
    return loop


@_once
def _process_gate(limit: int) -> asyncio.Semaphore:
    """The cap every batch of this process shares (used only on the background loop)."""
    return asyncio.Semaphore(limit)


def stream_requests(backend: Backend, requests: Sequence[RunRequest], concurrency: int,
                    process_limit: int | None = None) -> Iterator[RunResult]:
    """iter_requests for synchronous callers (Streamlit, the command line): each result as it completes.

    `process_limit` caps the requests in flight across every batch of the process (all app sessions at once).
    Closing the iterator early cancels the runs still in flight.
    """
    shared_gate = _process_gate(process_limit) if process_limit else None
    arrived: queue.Queue = queue.Queue()
    done = object()

    async def feed() -> None:
        try:
            async for result in iter_requests(backend, requests, concurrency, shared_gate):
                arrived.put(result)
        finally:
            arrived.put(done)

    future = asyncio.run_coroutine_threadsafe(feed(), _background_loop())
    try:
        while (item := arrived.get()) is not done:
            yield item
        future.result()
    finally:
        future.cancel()


def stream_groups(backend: Backend, firsts: Sequence[RunRequest], runs: int, concurrency: int,
                  process_limit: int | None = None) -> Iterator[tuple[int, RunResult]]:
    """`runs` identical requests for each request in `firsts` (a sweep's cells, a suite's prompts), all under one cap,
    queued group by group; each result with its group's position, indexed within the group. Closing early cancels."""
    requests = [request for request in firsts for _ in range(runs)]
    with contextlib.closing(stream_requests(backend, requests, concurrency, process_limit)) as results:
        for result in results:
            position, k = divmod(result.index, runs)
            yield position, replace(result, index=k)


def stream_runs(backend: Backend, request: RunRequest, plan: BatchPlan,
                process_limit: int | None = None) -> Iterator[RunResult]:
    """N identical requests, for synchronous callers."""
    return stream_requests(backend, [request] * plan.runs, plan.concurrency, process_limit)


class Relay(Generic[T]):
    """Sources of results, opened and drained one after the other in a thread of their own, every item kept.

    A caller that may be stopped and replaced half-way (a Streamlit script run, at the visitor's next click) follows
    what has arrived with `wait` without owning the iterators, so nothing is sent twice. `cancel` closes the
    source being drained once its next item arrives (closing cancels its requests) and opens no more.
    """

    def __init__(self, sources: Sequence[Callable[[], Iterator[T]]]):
        self.arrived: list[list[T]] = [[] for _ in sources]
        self.opened: list[Iterator[T] | None] = [None] * len(sources)
        self.error: BaseException | None = None  # raised by a source: the relay stopped there
        self._finished_sources = 0
        self._cancelled = threading.Event()
        self._changed = threading.Condition()
        threading.Thread(target=self._drain, args=(sources,), name="repro-relay", daemon=True).start()

    def _drain(self, sources: Sequence[Callable[[], Iterator[T]]]) -> None:
        try:
            for k, source in enumerate(sources):
                if self._cancelled.is_set():
                    break
                self.opened[k] = source()
                with contextlib.closing(self.opened[k]):
                    for item in self.opened[k]:
                        self._update(lambda: self.arrived[k].append(item))
                        if self._cancelled.is_set():
                            break
                self._update(lambda: None, finished_sources=k + 1)
        except BaseException as exc:  # noqa: BLE001 - kept for the follower, who raises it where it can be seen
            self.error = exc
        finally:
            self._update(lambda: None, finished_sources=len(sources))

    def _update(self, change: Callable[[], None], finished_sources: int | None = None) -> None:
        with self._changed:
            change()
            if finished_sources is not None:
                self._finished_sources = finished_sources
            self._changed.notify_all()

    def wait(self, source: int, seen: int, timeout: float) -> tuple[list[T], bool]:
        """The items of source `source` so far and whether it is done, once it has more than `seen`, is done, or
        `timeout` seconds have passed."""
        with self._changed:
            self._changed.wait_for(lambda: len(self.arrived[source]) > seen or self._finished_sources > source, timeout)
            return list(self.arrived[source]), self._finished_sources > source

    def cancel(self) -> None:
        self._cancelled.set()
