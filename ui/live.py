"""Runs shown while they arrive: a job of batches sent in the background and followed by the page's script runs, its
live run cards, and a sweep's charts drawn as its cells fill."""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from dataclasses import dataclass
from html import escape

import streamlit as st
from streamlit import runtime
from streamlit.runtime.scriptrunner import get_script_run_ctx
from streamlit.runtime.scriptrunner_utils.exceptions import RerunException, StopException

from core import Recording, Relay, RunRequest, RunResult, SweepPlan, SweepResult, group_letter
from ui import resume
from ui.html import badge, run_card
from ui.results import CARDS_PER_ROW, card_slots
from ui.sweeps import sweep_charts

_WAITING = '<div class="rl-card" style="opacity:.45"><div class="rl-meta"><b>Run {n}</b> waiting…</div></div>'
LIVE_GRID_ABOVE = 12  # more runs than this arrive as tiles of one compact grid, not as N waiting cards
# Above this many runs the grid tallies the groups instead: redrawn each tick, 1,000 tiles (150 kB) cost the browser
# as much CPU as the batch's requests did (measured with bench/app_scale.py).
LIVE_TILES_MAX = 100
TALLY_GROUPS = 12  # groups named in the tally; the others are counted in one tile
_GRID_STYLE = ("<style>.rl-live{display:flex;flex-wrap:wrap;gap:.35rem}.rl-tile{display:inline-flex;gap:.3rem;"
               "align-items:center;min-width:5.6rem;padding:.2rem .45rem;border:1px solid rgba(128,128,128,.4);"
               "border-radius:.4rem;font-size:.85rem}.rl-tile.rl-wait{opacity:.4}.rl-tile.rl-bad{"
               "border-color:rgb(229,72,77);color:rgb(229,72,77);font-weight:700}</style>")


def _progress_text(done: int, total: int) -> str:
    return f"{done} of {total} runs done" if done else f"Sending {total} identical requests…"


def _groups_so_far(arrived: Sequence[RunResult]) -> list[list[int]]:
    """The successful runs in so far, grouped by identical text: the most common answer yet first (A)."""
    runs_by_text: dict[str, list[int]] = {}
    for result in sorted(arrived, key=lambda r: r.index):
        if result.ok:
            runs_by_text.setdefault(result.text or "", []).append(result.index)
    return sorted(runs_by_text.values(), key=lambda runs: (-len(runs), runs[0]))


def _letters_so_far(arrived: Sequence[RunResult]) -> dict[int, str]:
    """Each successful run's group letter among the runs in so far: A is the most common answer yet."""
    return {index: group_letter(position) for position, runs in enumerate(_groups_so_far(arrived)) for index in runs}


def live_tally(arrived: Sequence[RunResult], total: int) -> str:
    """A tile per group so far ("A ×812", the TALLY_GROUPS largest), one for the other groups, one per kind of
    failure and one for the runs still waiting: the same few tiles at 1,000 runs as at 101."""
    groups = _groups_so_far(arrived)
    tiles = [f'<span class="rl-tile">{badge(group_letter(k), f"{group_letter(k)} ×{len(runs)}")}</span>'
             for k, runs in enumerate(groups[:TALLY_GROUPS])]
    if len(groups) > TALLY_GROUPS:
        others = groups[TALLY_GROUPS:]
        tiles.append(f'<span class="rl-tile">{len(others)} more groups · {sum(map(len, others))} runs</span>')
    failures = Counter(result.error.kind for result in arrived if not result.ok)
    tiles += [f'<span class="rl-tile rl-bad">{count} ✕ {escape(kind)}</span>' for kind, count in failures.items()]
    if total > len(arrived):
        tiles.append(f'<span class="rl-tile rl-wait">{total - len(arrived)} waiting …</span>')
    return f'{_GRID_STYLE}<div class="rl-live">{"".join(tiles)}</div>'


def live_grid(arrived: Sequence[RunResult], total: int) -> str:
    """A tile per run: waiting, failed, or its group's badge and latency once it is in; above LIVE_TILES_MAX runs,
    the live_tally of the groups."""
    if total > LIVE_TILES_MAX:
        return live_tally(arrived, total)
    letters, by_index = _letters_so_far(arrived), {result.index: result for result in arrived}
    tiles = []
    for index in range(total):
        result = by_index.get(index)
        if result is None:
            tiles.append(f'<span class="rl-tile rl-wait" data-tile="{index}">{index + 1} …</span>')
        elif not result.ok:
            tiles.append(f'<span class="rl-tile rl-bad" data-tile="{index}">{index + 1} ✕ '
                         f'{escape(result.error.kind)}</span>')
        else:
            tiles.append(f'<span class="rl-tile" data-tile="{index}">{badge(letters[index])} {index + 1} · '
                         f'{result.latency_ms / 1000:.1f} s</span>')
    return f'{_GRID_STYLE}<div class="rl-live">{"".join(tiles)}</div>'


class _LiveView:
    """Where one batch's runs appear as they arrive: a progress bar, then a card per run, or one compact grid above
    LIVE_GRID_ABOVE runs."""

    def __init__(self, total: int, per_row: int):
        self.total, self.drawn = total, 0
        self.progress = st.progress(0.0, text=_progress_text(0, total))
        self.grid = st.empty() if total > LIVE_GRID_ABOVE else None
        self.slots = [] if self.grid else card_slots(total, per_row)
        if self.grid:
            self.grid.html(live_grid([], total))
        for k, slot in enumerate(self.slots):
            slot.html(_WAITING.format(n=k + 1))

    def show(self, arrived: Sequence[RunResult]) -> None:
        """Draw the runs that arrived since the last call (every call also ticks the progress bar)."""
        if self.grid and len(arrived) > self.drawn:
            self.grid.html(live_grid(arrived, self.total))
        elif not self.grid:
            for result in arrived[self.drawn:]:
                self.slots[result.index].html(run_card(result))
        self.drawn = len(arrived)
        self.progress.progress(self.drawn / self.total, text=_progress_text(self.drawn, self.total))

    def done(self) -> None:
        self.progress.empty()


def live_runs(arriving: Iterator[RunResult], total: int, per_row: int = CARDS_PER_ROW) -> list[RunResult]:
    """Show each run the moment it arrives; returns the results by index. If the script run is interrupted
    (the visitor clicks again or leaves), closing `arriving` cancels the requests still in flight."""
    view, results = _LiveView(total, per_row), []
    with contextlib.closing(arriving):
        for result in arriving:
            results.append(result)
            view.show(results)
    view.done()
    return sorted(results, key=lambda r: r.index)


JOB = "running_job"  # the session's batches on their way; one job at a time
PAGE = "page"  # the page this script run draws (app.py says which)
TICK_S = 0.5  # a page waiting for results checks in this often, so a run Streamlit has stopped ends promptly


@dataclass(frozen=True)
class LiveBatch:
    """One batch of a job: the title over its column, its number of runs, and how to send it."""

    title: str
    total: int
    send: Callable[[], Recording[RunResult]]


@dataclass(frozen=True)
class ShownBatch:
    """A batch of a job once all its runs are in: its results by index and its recording (history id, save error)."""

    title: str
    results: list[RunResult]
    recording: Recording[RunResult]


@dataclass(frozen=True)
class _Job:
    key: str
    page: str | None
    batches: tuple[LiveBatch, ...]
    relay: Relay[RunResult]


class JobSlot:
    """The session's one job, started under a lock: of two clicks at once, only the first admits (takes quota) and
    starts its job; the other finds it running and sends nothing."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def start(self, state: MutableMapping, make: Callable[[], object], admit: Callable[[], None] | None) -> bool:
        """Admit and store `make()` under JOB unless a job is there; False when one is. A refusal by `admit`
        (InvalidRequest) propagates, with nothing started."""
        with self._lock:
            if state.get(JOB) is not None:
                return False
            if admit is not None:
                admit()
            state[JOB] = make()
            return True


SLOT = "job_slot"
_SLOT_MADE = threading.Lock()  # one JobSlot per session, even when two runs of it ask at the same moment


def _slot() -> JobSlot:
    with _SLOT_MADE:
        if SLOT not in st.session_state:
            st.session_state[SLOT] = JobSlot()
        return st.session_state[SLOT]


def start_job(key: str, batches: Sequence[LiveBatch], admit: Callable[[], None] | None = None, *,
              together: bool = False) -> bool:
    """Unless a job is on its way: admit (take the quota; InvalidRequest refuses), send the batches in the
    background, one after the other or `together`, and return True; follow_job(key) shows them. While a job runs:
    False, nothing admitted or sent."""
    page = st.session_state.get(PAGE)

    def job() -> _Job:
        return _Job(key, page, tuple(batches), Relay([batch.send for batch in batches], together=together))

    return _slot().start(st.session_state, job, admit)


def job_running(key: str | None = None) -> bool:
    """Whether this session has a job on its way (the one started under `key`, when given)."""
    job = st.session_state.get(JOB)
    return job is not None and key in (None, job.key)


def follow_job(key: str, places: Sequence | None = None, per_row: int = CARDS_PER_ROW, *,
               saving: Callable[[list[str]], None] | None = None) -> list[ShownBatch]:
    """Show the job started under `key` live, its batches side by side as they arrive (each in its place, under its
    title, when places are given), until every run is in; then forget the job and return its batches. `saving` is
    told the ids of the job's experiments in the history each time another one starts.

    The job runs in the background, not in this script run: at the visitor's next click Streamlit stops this run
    and starts another, which finds the job and goes on showing it, so a second click sends nothing. A run stopped
    because the visitor left cancels the job."""
    job = st.session_state[JOB]
    with _following(job):
        return _show_batches(job, places or [None] * len(job.batches), per_row, saving)


@contextlib.contextmanager
def _following(job: _Job) -> Iterator[None]:
    """Forget the job once this script run has followed it to its end or failed; a run Streamlit stopped forgets
    (cancels) it only if the visitor left — after a click, the next run goes on following it."""
    try:
        yield
    except StopException:
        if not _visitor_still_here():
            _forget(job)
        raise
    except RerunException:
        raise
    except BaseException:
        _forget(job)
        raise
    _forget(job)


def follow_pairs(draw: Callable[[list], None]) -> tuple[list, Recording]:
    """Follow the running one-batch job (a sweep's or a suite's pairs) like follow_job, calling `draw(arrived)` at
    every tick; then forget the job and return all that arrived and its recording (history id, save error)."""
    job = st.session_state[JOB]
    arrived, done = [], False
    with _following(job):
        while not done:
            draw(arrived)
            arrived, done = job.relay.wait(0, len(arrived), TICK_S)
    if job.relay.error:
        raise job.relay.error
    return arrived, job.relay.opened[0]


def _show_batches(job: _Job, places: Sequence, per_row: int,
                  saving: Callable[[list[str]], None] | None) -> list[ShownBatch]:
    views = []
    for batch, place in zip(job.batches, places):
        with place.container() if place else contextlib.nullcontext():
            if place and batch.title:
                st.subheader(batch.title)
            views.append(_LiveView(batch.total, per_row))
    arrived: list[list[RunResult]] = [[] for _ in job.batches]
    waiting, told = set(range(len(job.batches))), []
    while waiting:
        if saving and (saved := _saved_ids(job)) != told:
            told = saved
            saving(saved)
        for k in sorted(waiting):
            arrived[k], done = job.relay.wait(k, views[k].drawn, TICK_S / len(waiting))
            views[k].show(arrived[k])  # also the tick
            if done:
                waiting.discard(k)
                views[k].done()
    if job.relay.error:
        raise job.relay.error
    return [ShownBatch(batch.title, sorted(results, key=lambda r: r.index), job.relay.opened[k])
            for k, (batch, results) in enumerate(zip(job.batches, arrived))]


def _saved_ids(job: _Job) -> list[str]:
    """The history ids of the job's batches started so far (a batch saved nowhere has none)."""
    return [recording.experiment_id for recording in job.relay.opened
            if recording is not None and recording.experiment_id]


def _visitor_still_here() -> bool:
    """Whether this session is still connected: Streamlit stops a run for the visitor's next click (a new run
    follows) and for a visitor who left (none does)."""
    ctx = get_script_run_ctx()
    return ctx is not None and runtime.get_instance().is_active_session(ctx.session_id)


def _forget(job: _Job) -> None:
    """Cancel the job (nothing left to cancel when it is done) and let it go, unless a newer one took its place."""
    job.relay.cancel()
    if st.session_state.get(JOB) is job:
        del st.session_state[JOB]


def arrive_on(page: str) -> None:
    """Note the page this run draws; a job still running on another page is cancelled (the visitor moved on)."""
    job = st.session_state.get(JOB)
    if job is not None and job.page != page:
        _forget(job)
    st.session_state[PAGE] = page


def click_refused() -> None:
    st.warning("Your last batch is still running, so this click sent nothing and took nothing from your quota; "
               "its results keep arriving on this page.")


def live_cells(key: str, base: RunRequest, plan: SweepPlan) -> tuple[SweepResult, Recording]:
    """Follow the sweep started under `key` (one batch of (cell, result) pairs) like follow_job follows a batch:
    a progress bar, and the charts drawn again in place as runs arrive; then forget the job and return the sweep and
    its recording (history id, save error)."""
    total = plan.total_requests
    progress, charts = st.progress(0.0), st.empty()
    charted = [-1]  # runs in the charts drawn last; -1: the empty charts are drawn at once, before any run is in

    def draw(arrived: list) -> None:
        if len(arrived) > charted[0]:
            charted[0] = len(arrived)
            with charts.container():
                sweep_charts(SweepResult.collect(base, plan, arrived).summaries())
        text = f"{len(arrived)} of {total} requests done" if arrived else f"Sending {total} requests…"
        progress.progress(len(arrived) / total, text=text)  # also the tick

    arrived, recording = follow_pairs(draw)
    progress.empty()
    charts.empty()
    return SweepResult.collect(base, plan, arrived), recording


@dataclass(frozen=True)
class Sent:
    """What a click sent, kept with its results: the inputs it was sent with (to tell when they go stale), and per
    batch the line naming its settings and its request."""

    inputs: str
    made_by: tuple[str, ...]
    requests: tuple[RunRequest, ...]


@dataclass(frozen=True)
class Finished:
    """A page's last finished job: what was sent, the batches as they came back, and its number (fresh widget keys)."""

    sent: Sent
    batches: tuple[ShownBatch, ...]
    number: int

    def stale(self, inputs: str) -> bool:
        return self.sent.inputs != inputs


def send_job(key: str, batches: Sequence[LiveBatch], sent: Sent, admit: Callable[[], None], *,
             together: bool = False) -> bool:
    """start_job, remembering what was sent for the results to carry; False (nothing sent) while a job runs. The
    URL stops naming the last batch (ui.resume) and names this one once it is saved (finished_job)."""
    started = start_job(key, batches, admit, together=together)
    if started:
        st.session_state[f"{key}_sent"] = sent
        resume.forget()
    return started


def finished_job(key: str, places: Sequence | None = None, per_row: int = CARDS_PER_ROW) -> Finished | None:
    """Follow the job sent under `key` to its end if it is on its way, its experiments named in the URL so that a
    reload can point to them (ui.resume); the last finished job under `key`, if any."""
    if job_running(key):
        shown = follow_job(key, places, per_row, saving=resume.keep_in_url)
        previous = st.session_state.get(f"{key}_finished")
        st.session_state[f"{key}_finished"] = Finished(st.session_state[f"{key}_sent"], tuple(shown),
                                                       previous.number + 1 if previous else 1)
    return st.session_state.get(f"{key}_finished")
