"""Runs shown while they arrive: a job of batches sent in the background and followed by the page's script runs, its
live run cards, and the live table of a sweep's cells."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import pandas as pd
import streamlit as st
from streamlit import runtime
from streamlit.runtime.scriptrunner import get_script_run_ctx
from streamlit.runtime.scriptrunner_utils.exceptions import RerunException, StopException

from core import Cell, Recording, Relay, RunRequest, RunResult, SweepPlan
from ui.html import run_card
from ui.results import CARDS_PER_ROW, card_slots

_WAITING = '<div class="rl-card" style="opacity:.45"><div class="rl-meta"><b>Run {n}</b> waiting…</div></div>'


def _waiting_cards(total: int, per_row: int) -> tuple:
    """A progress bar and a waiting card per run, each card's slot to be filled when its run arrives."""
    progress = st.progress(0.0, text=_progress_text(0, total))
    slots = card_slots(total, per_row)
    for k, slot in enumerate(slots):
        slot.html(_WAITING.format(n=k + 1))
    return progress, slots


def _progress_text(done: int, total: int) -> str:
    return f"{done} of {total} runs done" if done else f"Sending {total} identical requests…"


def live_runs(arriving: Iterator[RunResult], total: int, per_row: int = CARDS_PER_ROW) -> list[RunResult]:
    """Fill a card per run the moment it arrives; returns the results by index. If the script run is interrupted
    (the visitor clicks again or leaves), closing `arriving` cancels the requests still in flight."""
    progress, slots = _waiting_cards(total, per_row)
    results = []
    with contextlib.closing(arriving):
        for result in arriving:
            results.append(result)
            slots[result.index].html(run_card(result))
            progress.progress(len(results) / total, text=_progress_text(len(results), total))
    progress.empty()
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


def start_job(key: str, batches: Sequence[LiveBatch]) -> None:
    """Send the batches one after the other, in the background; follow_job(key) shows them."""
    st.session_state[JOB] = _Job(key, st.session_state.get(PAGE), tuple(batches), Relay([b.send for b in batches]))


def job_running(key: str | None = None) -> bool:
    """Whether this session has a job on its way (the one started under `key`, when given)."""
    job = st.session_state.get(JOB)
    return job is not None and key in (None, job.key)


def follow_job(key: str, places: Sequence | None = None, per_row: int = CARDS_PER_ROW) -> list[ShownBatch]:
    """Show the job started under `key` live, batch after batch (each in its place, under its title, when places are
    given), until every run is in; then forget the job and return its batches.

    The job runs in the background, not in this script run: at the visitor's next click Streamlit stops this run
    and starts another, which finds the job and goes on showing it, so a second click sends nothing. A run stopped
    because the visitor left cancels the job."""
    job = st.session_state[JOB]
    try:
        shown = [_show_batch(job, k, place, per_row)
                 for k, place in enumerate(places or [None] * len(job.batches))]
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
    return shown


def _show_batch(job: _Job, k: int, place, per_row: int) -> ShownBatch:
    batch = job.batches[k]
    with place.container() if place else contextlib.nullcontext():
        if place:
            st.subheader(batch.title)
        progress, slots = _waiting_cards(batch.total, per_row)
        arrived, done, drawn = [], False, 0
        while not done:
            arrived, done = job.relay.wait(k, drawn, TICK_S)
            for result in arrived[drawn:]:
                slots[result.index].html(run_card(result))
            drawn = len(arrived)
            progress.progress(drawn / batch.total, text=_progress_text(drawn, batch.total))  # also the tick
        progress.empty()
    if job.relay.error:
        raise job.relay.error
    return ShownBatch(batch.title, sorted(arrived, key=lambda r: r.index), job.relay.opened[k])


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


def live_cells(recording: Recording[tuple[Cell, RunResult]], plan: SweepPlan, base: RunRequest, progress,
               table) -> Iterator[tuple[Cell, RunResult]]:
    """Yield each (cell, result) as it arrives while the progress bar and the table of cells follow."""
    done = {cell.label: 0 for cell in plan.cells(base)}
    for count, (cell, result) in enumerate(recording, start=1):
        done[cell.label] += 1
        progress.progress(count / plan.total_requests, text=f"{count} of {plan.total_requests} requests done")
        table.dataframe(pd.DataFrame({"Cell": list(done), "Runs done": list(done.values())}), hide_index=True)
        yield cell, result
