"""A Fanout's cap holds when batches are cancelled: a cancelled request keeps its slot until the server is done;
and the relay that carries a page's batches past the script runs Streamlit stops and starts.

Against the loopback server, which counts what it has in flight; its latency keeps requests open long enough for a
cancelled batch and a new one to overlap.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace

from core.backends import make_backend
from core.settings import load_settings
from core.models import BatchPlan, RunRequest
from core.runner import Fanout, Relay

DEMO = RunRequest(prompt="Create a story about red panda.", system="You always produce 3-sentence answers.", seed=42)


def cancel_after_first(fanout: Fanout, backend, plan: BatchPlan) -> None:
    """A visitor who leaves (or clicks again) once the first result is on the page."""
    results = fanout.runs(backend, DEMO, plan)
    assert next(results).ok
    results.close()


def test_a_new_batch_waits_for_the_slots_a_cancelled_batch_still_holds(fake_server, azure_settings):
    fake_server.latency_s = 0.4
    backend, fanout = make_backend(azure_settings), Fanout(3)
    cancel_after_first(fanout, backend, BatchPlan(6, 6))  # its second wave is at the server now
    results = list(fanout.runs(backend, DEMO, BatchPlan(3, 3)))
    fanout.close()
    assert [r.ok for r in results] == [True] * 3
    assert fake_server.peak_in_flight <= 3


def test_visitors_leaving_mid_run_never_push_the_server_over_the_cap(fake_server, azure_settings):
    fake_server.latency_s = 0.3
    backend, fanout = make_backend(azure_settings), Fanout(4)
    finished = []

    def stays() -> None:
        finished.append(sum(r.ok for r in fanout.runs(backend, DEMO, BatchPlan(8, 8))))

    visitors = [threading.Thread(target=cancel_after_first, args=(fanout, backend, BatchPlan(8, 8))) for _ in range(4)]
    visitors += [threading.Thread(target=stays) for _ in range(2)]
    for visitor in visitors:
        visitor.start()
    for visitor in visitors:
        visitor.join()
    fanout.close()
    assert finished == [8, 8]
    assert fake_server.peak_in_flight <= 4


def test_every_slot_comes_back_once_the_cancelled_requests_end(fake_server, azure_settings):
    fake_server.latency_s = 0.3
    backend, fanout = make_backend(azure_settings), Fanout(5)
    cancel_after_first(fanout, backend, BatchPlan(10, 10))
    time.sleep(0.8)  # the cancelled requests end at the server
    fake_server.peak_in_flight = 0
    results = list(fanout.runs(backend, DEMO, BatchPlan(10, 10)))
    fanout.close()
    assert sum(r.ok for r in results) == 10
    assert fake_server.peak_in_flight == 5  # not 4: no slot was kept by a request that had ended


def test_a_cancelled_request_that_fails_gives_its_slot_back_too(fake_server, azure_env):
    backend = make_backend(load_settings(environ={**azure_env, "REPRO_MAX_RETRIES": "0"}, dotenv_path=None))
    fake_server.latency_s = 0.3
    fake_server.faults.extend(["500"] * 12)  # every request of the cancelled batch fails, after the latency
    fanout = Fanout(6)
    results = fanout.runs(backend, DEMO, BatchPlan(12, 12))
    assert next(results).error.kind == "server"
    results.close()
    time.sleep(0.8)
    fake_server.faults.clear()
    fake_server.peak_in_flight = 0
    assert sum(r.ok for r in fanout.runs(backend, DEMO, BatchPlan(12, 12))) == 12
    fanout.close()
    assert fake_server.peak_in_flight == 6



def follow(relay: Relay, source: int, timeout: float = 10.0) -> list:
    """What a page does: wait for more until the source is done."""
    items, done = [], False
    while not done:
        items, done = relay.wait(source, len(items), timeout)
    return items


def test_a_relay_sends_its_batches_one_after_the_other_and_a_new_follower_sees_all(fake_server, azure_settings):
    fake_server.latency_s = 0.3
    backend = make_backend(azure_settings)
    fanout = Fanout(None)
    # One request at a time, so the rest of a batch is 0.3 s or more away when its first result arrives.
    batches = [lambda seed=seed: fanout.runs(backend, replace(DEMO, seed=seed), BatchPlan(3, 1)) for seed in (1, 2)]
    relay = Relay(batches)
    first, done = relay.wait(0, 0, 10.0)
    assert first and not done  # a follower sees the first result while the rest are on their way…
    assert [len(follow(relay, k)) for k in (0, 1)] == [3, 3]  # …and one that comes later sees them all
    first_batch = [r for r in fake_server.received if r.body["seed"] == 1]
    second_batch = [r for r in fake_server.received if r.body["seed"] == 2]
    assert min(r.started for r in second_batch) >= max(r.finished for r in first_batch)
    assert relay.error is None
    fanout.close()


def test_a_cancelled_relay_stops_its_batch_and_sends_no_more(fake_server, azure_settings):
    fake_server.latency_s = 0.3
    backend = make_backend(azure_settings)
    fanout = Fanout(None)
    relay = Relay([lambda: fanout.runs(backend, DEMO, BatchPlan(10, 2))] * 2)
    relay.wait(0, 0, 10.0)
    relay.cancel()
    assert len(follow(relay, 0)) < 10
    assert follow(relay, 1) == [] and relay.opened[1] is None
    time.sleep(0.7)  # two more waves' time, had the batch gone on
    assert len(fake_server.received) < 10  # the waves started before the cancel took; not one batch, nor twenty
    fanout.close()


def test_a_source_that_raises_ends_the_relay_and_the_error_is_kept():
    def broken():
        raise RuntimeError("the history is gone")

    relay = Relay([broken, lambda: iter([1, 2])])
    assert follow(relay, 0) == [] and follow(relay, 1) == []
    assert str(relay.error) == "the history is gone"
