"""A Fanout owns its event loop thread, its cap and its slot holders: two fan-outs never share a cap, closing one ends
its thread and what it still had in flight, and any coroutine can run on its loop.

Against the loopback server, whose record of each request (seed, start, end) shows which fan-out had what in flight.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from core.backends import make_backend
from core.models import BatchPlan, RunRequest
from core.runner import Fanout


def peak_overlap(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at one moment (an end before a start at the same instant)."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    peak = open_now = 0
    for _, change in events:
        open_now += change
        peak = max(peak, open_now)
    return peak


@pytest.mark.parametrize("limits", [(2, 4), (3, 3)])
def test_two_fanouts_do_not_share_a_cap(fake_server, azure_settings, limits):
    """Regression: the cap was a process-wide gate cached by its limit, so two runners with the same limit shared it."""
    fake_server.latency_s = 0.2
    backend = make_backend(azure_settings)
    fanouts = [Fanout(limit) for limit in limits]
    counts: dict[int, int] = {}

    def batch(seed: int, fanout: Fanout) -> None:
        counts[seed] = sum(r.ok for r in fanout.runs(backend, RunRequest(prompt="p", seed=seed), BatchPlan(8, 8)))

    threads = [threading.Thread(target=batch, args=(seed, fanout)) for seed, fanout in enumerate(fanouts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for fanout in fanouts:
        fanout.close()
    assert counts == {0: 8, 1: 8}
    by_seed = [[(r.started, r.finished) for r in fake_server.received if r.body["seed"] == seed] for seed in (0, 1)]
    assert [peak_overlap(intervals) for intervals in by_seed] == list(limits)  # each within its own cap, filling it
    assert fake_server.peak_in_flight == sum(limits)


def test_closing_a_fanout_stops_its_thread_and_cancels_what_it_still_holds(fake_server, azure_settings):
    fake_server.latency_s = 2.0
    fanout = Fanout(2)
    assert not fanout.running  # started on first use, not before
    results = fanout.runs(make_backend(azure_settings), RunRequest(prompt="p"), BatchPlan(6, 6))
    assert next(results).ok
    results.close()  # the second wave runs on, shielded, holding its slots
    thread = fanout._thread
    started = time.perf_counter()
    fanout.close()
    assert time.perf_counter() - started < 1.0  # the shielded requests (2 s) were cancelled, not waited for
    assert not thread.is_alive() and not fanout.running
    with pytest.raises(RuntimeError, match="closed"):
        list(fanout.runs(make_backend(azure_settings), RunRequest(prompt="p"), BatchPlan(1, 1)))
    fanout.close()  # a second close does nothing


def test_call_runs_a_coroutine_on_the_fanouts_own_loop_and_returns_its_result():
    async def where() -> tuple[str, asyncio.AbstractEventLoop]:
        return threading.current_thread().name, asyncio.get_running_loop()

    async def fails() -> None:
        raise ValueError("probe failed")

    with Fanout(None) as fanout:
        first, second = fanout.call(where()), fanout.call(where())
        with pytest.raises(ValueError, match="probe failed"):
            fanout.call(fails())
    assert first == second and first[0] == "repro-fanout" and first[0] != threading.current_thread().name
    assert first[1].is_closed()


def test_the_first_calls_from_many_threads_start_one_loop():
    fanout, barrier, loops = Fanout(None), threading.Barrier(8), []

    async def loop() -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    def first_call() -> None:
        barrier.wait()
        loops.append(fanout.call(loop()))

    threads = [threading.Thread(target=first_call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    fanout.close()
    assert len(loops) == 8 and len(set(map(id, loops))) == 1
