"""ui.live's pieces on their own: one job per session under a lock, the compact live grid, and a relay that drains
its sources together."""

from __future__ import annotations

import threading
import time

from core.models import RunError, RunResult
from core.runner import Relay
from ui.live import JOB, LIVE_GRID_ABOVE, LIVE_TILES_MAX, TALLY_GROUPS, JobSlot, live_grid


def test_of_two_clicks_at_once_only_one_admits_and_starts_a_job():
    """Regression: the job was checked and stored without a lock, so two fast clicks could both pass the check and
    both take quota."""
    slot, state, admitted, outcomes = JobSlot(), {}, [], []

    def slow_admit():
        admitted.append(threading.current_thread().name)
        time.sleep(0.2)  # the quota check and count, slow enough for the other click to arrive meanwhile

    def click():
        outcomes.append(slot.start(state, lambda: object(), slow_admit))

    clicks = [threading.Thread(target=click, name=f"click-{k}") for k in range(2)]
    for thread in clicks:
        thread.start()
    for thread in clicks:
        thread.join()
    assert sorted(outcomes) == [False, True]
    assert len(admitted) == 1 and state[JOB] is not None


def test_a_refused_admission_starts_nothing_and_the_next_click_may_start():
    slot, state = JobSlot(), {}

    def refuse():
        raise ValueError("over the quota")

    try:
        slot.start(state, lambda: "job", refuse)
    except ValueError:
        pass
    assert JOB not in state
    assert slot.start(state, lambda: "job", None) and state[JOB] == "job"


def ok(index: int, text: str, latency_ms: float = 1500.0) -> RunResult:
    return RunResult(index=index, latency_ms=latency_ms, text=text)


def test_the_live_grid_shows_each_run_as_a_tile_with_its_group_so_far():
    arrived = [ok(3, "B text"), ok(0, "A text"), ok(5, "A text", 2300.0),
               RunResult.failed(1, 10.0, RunError("server", "<b>down</b>", 500))]
    grid = live_grid(arrived, 20)
    assert grid.count('class="rl-tile') == 20
    assert grid.count("rl-tile rl-wait") == 16
    assert '<span class="rl-tile" data-tile="5"><span class="rl-badge" data-group="A"' in grid
    assert "6 · 2.3 s" in grid
    assert 'data-tile="3"><span class="rl-badge" data-group="B"' in grid  # fewer runs so far: the second group
    assert 'data-tile="1">2 ✕ server</span>' in grid and "<b>down" not in grid
    assert 'class="rl-card' not in grid  # tiles, not N waiting cards
    assert LIVE_GRID_ABOVE == 12


def test_above_a_hundred_runs_the_live_grid_tallies_the_groups_in_a_few_tiles():
    """Regression: 1,000 runs drew 1,000 tiles (150 kB) at every tick, and the browser spent as much CPU redrawing
    them as the requests took."""
    arrived = [ok(k, "A text" if k % 10 else f"text {k}") for k in range(900)]
    arrived += [RunResult.failed(900 + k, 10.0, RunError("timeout", "<b>slow</b>", None)) for k in range(5)]
    grid = live_grid(arrived, 1000)
    tiles = [tile.split(">", 1)[1] for tile in grid.split('<span class="rl-tile')[1:]]
    assert len(tiles) == TALLY_GROUPS + 3 and len(grid) < 3000
    assert 'data-group="A"' in tiles[0] and "A ×810" in tiles[0]
    assert "B ×1" in tiles[1]  # one run each: the first to arrive comes first
    assert tiles[-3:] == ["79 more groups · 79 runs</span>", "5 ✕ timeout</span>", "95 waiting …</span></div>"]
    assert "<b>slow" not in grid
    assert live_grid(arrived[:50], LIVE_TILES_MAX).count('class="rl-tile') == LIVE_TILES_MAX


def test_a_relay_together_drains_its_sources_at_the_same_time():
    gate = threading.Barrier(2, timeout=5)  # each source waits for the other to have started

    def source(name):
        def items():
            gate.wait()
            yield name

        return items

    relay = Relay([source("without"), source("with")], together=True)
    assert [relay.wait(k, 0, 10)[0] for k in (0, 1)] == [["without"], ["with"]]
    assert relay.error is None  # one after the other, the first source would have waited in vain: BrokenBarrier


def test_a_source_that_raises_stops_the_sources_drained_beside_it():
    release = threading.Event()

    def broken():
        raise RuntimeError("the history is gone")

    def endless():
        for k in range(1000):
            release.wait(0.01)
            yield k

    relay = Relay([broken, endless], together=True)
    items, done = [], False
    while not done:
        items, done = relay.wait(1, len(items), 10)
    assert str(relay.error) == "the history is gone"
    assert len(items) < 1000
