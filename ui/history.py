"""The History page's pieces: the list of kept items, an opened item by kind (a batch with its re-run confirmation,
drift and comparison with any other batch, a sweep, a suite, a probe's report card), and the way from a sweep's cell,
a suite's prompt or a probe's step back to the whole."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd
import streamlit as st

from core import (PARTS, BackendInfo, Comparison, Experiment, ExperimentRow, InvalidRequest, StorageError, Store,
                  SuiteRun, UnknownExperiment, diff, drift, export_item, load_report, load_suite_run, load_sweep,
                  to_csv, verdict)
from ui.comparing import compare_with, saved_at, side_by_side
from ui.controls import backend_title, registered
from ui.html import diff_columns, legend, md
from ui.live import click_refused, follow_job, job_running
from ui.probe import show_report
from ui.results import nothing_sent, saved_caption, show_results
from ui.suites import JOB_KEY as SUITE_JOB  # the Suite page's job key: moving to another page cancels a job
from ui.suites import follow_suite, show_suite
from ui.sweeps import saved_made_by, show_sweep
from ui.verdict import contrast_line

RERUN = "history_rerun"  # the batch re-run's job
PROBE_PAGE = "pages/probe.py"


@dataclass(frozen=True)
class Opened:
    """What an opened item needs from the page: the history, the backend chosen now, and how to start a re-run (each
    returns False when a job is still on its way, and raises InvalidRequest when the limits refuse it)."""

    store: Store
    backend: BackendInfo | None
    rerun_batch: Callable[[Experiment], bool]
    rerun_suite: Callable[[SuiteRun], bool]


def when(experiment: Experiment) -> str:
    return md(saved_at(experiment))


def open_experiment(experiment_id: str | None) -> None:
    if experiment_id:
        st.query_params["experiment"] = experiment_id
    else:
        st.query_params.pop("experiment", None)


def _batch_cells(row: ExperimentRow) -> dict:
    return {"Runs": f"{row.runs_done}/{row.runs_planned}", "Seed": "none" if row.seed is None else str(row.seed),
            "T": f"{row.temperature:g}", "Unique": f"{row.unique_outputs}/{row.runs_done}" if row.runs_done else "–"}


def _sweep_cells(row: ExperimentRow) -> dict:
    """A sweep's runs live in its cells: the row says how many were planned, and the cells tell the rest."""
    return {"Runs": f"{row.runs_planned} in cells", "Seed": "swept", "T": "swept", "Unique": "–"}


def _suite_cells(row: ExperimentRow) -> dict:
    """A suite's prompts share its seed and temperature; its runs live in the prompts."""
    return {**_batch_cells(row), "Runs": f"{row.runs_planned} in prompts", "Unique": "–"}


def _probe_cells(row: ExperimentRow) -> dict:
    """A probe's steps each send their own request; its saved prompt is only the last step's."""
    return {"Prompt": "Probe: parameters, seed, cold vs warm, load", "Runs": f"{row.runs_planned} in steps",
            "Seed": "–", "T": "–", "Unique": "–"}


ROW_CELLS = {"sweep": _sweep_cells, "suite": _suite_cells, "probe": _probe_cells}


def _status(row: ExperimentRow) -> str:
    prefix = f"{row.kind} · " if row.kind in ROW_CELLS else "re-run · " if row.rerun_of else ""
    return prefix + ("complete" if row.complete else "incomplete")


def history_list(rows: Sequence[ExperimentRow], searching: bool) -> None:
    """A row per kept item; picking one opens it."""
    if not rows:
        st.info("No match." if searching else "Nothing here yet: run an experiment and it is kept here.")
        return
    frame = pd.DataFrame([{
        "When": saved_at(row), "Backend": f"{row.provider} · {row.model}",
        "Prompt": row.prompt_preview, **ROW_CELLS.get(row.kind, _batch_cells)(row),
        "Fingerprints": ", ".join(row.fingerprints) or "–", "Status": _status(row),
    } for row in rows])
    _table_that_opens(frame, [row.id for row in rows], key="history_table")


def _table_that_opens(frame: pd.DataFrame, ids: Sequence[str], key: str) -> None:
    """A row per item; picking a row opens the item whose id is at the same position."""
    picked = st.dataframe(frame, hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row",
                          key=key)
    if picked.selection.rows:
        open_experiment(ids[picked.selection.rows[0]])
        st.rerun()


def describe(experiment: Experiment) -> None:
    request = experiment.request
    status = "" if experiment.complete else " · **incomplete**: the batch was cut off; the runs that arrived are kept"
    st.markdown(f"**{when(experiment)}** · {md(experiment.backend.label)} · "
                f"temperature {request.temperature:g} · seed {request.seed} · top_p {request.top_p:g} · "
                f"max_tokens {request.max_tokens} · {len(experiment.runs)}/{experiment.runs_planned} runs{status}")
    with st.expander("Prompts"):
        st.text(f"System: {request.system}")
        st.text(f"User: {request.prompt}")


def backend_name(info: BackendInfo) -> str:
    """"Azure OpenAI (gpt-4o)": the provider's title and the model."""
    return f"{backend_title(info)} ({info.model})"


def confirmed_backend(experiment: Experiment, now: BackendInfo) -> bool:
    """Whether the re-run may go to the backend chosen now: at once when it is the original's, else once the visitor
    says so (another backend alone changes the answers, and it may be a paid one)."""
    if now == experiment.backend:
        return True
    family = registered(now)
    paid = " It is a paid backend: these requests cost money." if family is None or family.paid else ""
    st.warning(f"The original ran on {md(experiment.backend.label)}; the backend chosen now is {md(now.label)}. "
               f"Another backend alone can change the answers.{paid} Choose the original's backend in the sidebar "
               "to repeat it as it was.")
    return st.checkbox(f"Yes, re-run it on {md(backend_name(now))}", key="history_rerun_confirm")


def delete_button(store: Store, experiment: Experiment, place, what: str) -> None:
    with place.popover("Delete", icon=":material/delete:"):
        st.write(f"Delete {what} for everyone?")
        if st.button("Delete it", key="history_delete", type="primary"):
            store.delete(experiment.id)
            open_experiment(None)
            st.rerun()


def share_link(experiment: Experiment) -> None:
    st.caption("Share link (the button at its right copies it):")
    st.code(f"{st.context.url or 'history'}?experiment={experiment.id}", language=None)


def json_button(store: Store, experiment: Experiment, place) -> None:
    """The item as one JSON document, its cells, prompts or steps included, built when it is clicked."""
    place.download_button("JSON", lambda: export_item(store, experiment.id), f"repro-lab-{experiment.id}.json",
                          "application/json", key="history_json", icon=":material/download:")


def actions(opened: Opened, experiment: Experiment, what: str = "this experiment", *, csv: bool = True) -> bool:
    """The buttons for one item (a CSV too when `csv`: a row per run of one batch); True when the visitor asked to
    re-run it."""
    now = opened.backend
    confirmed = now is not None and confirmed_backend(experiment, now)
    label = "Re-run" if now is None else f"Re-run on {md(backend_name(now))}"
    columns = st.columns([3, 1, 1, 1.2] if csv else [3, 1, 2.2], vertical_alignment="center")
    again = columns[0].button(label, type="primary", key="history_rerun", icon=":material/replay:",
                              disabled=not confirmed, width="stretch")
    json_button(opened.store, experiment, columns[1])
    if csv:
        columns[2].download_button("CSV", to_csv(experiment), f"repro-lab-{experiment.id}.csv", "text/csv",
                                   key="history_csv", icon=":material/download:")
    delete_button(opened.store, experiment, columns[-1], what)
    share_link(experiment)
    return again


def send(start: Callable[[], bool]) -> None:
    """Start a re-run in the background; a refusal, or a job still on its way, sends nothing and says so."""
    try:
        started = start()
    except InvalidRequest as exc:
        nothing_sent(exc)
    else:
        if not started:
            click_refused()


def drift_view(original: Experiment, again: Experiment) -> None:
    """The re-run beside its original: did the outputs, the modal answer, the fingerprint change?"""
    found = drift(original.runs, again.runs)
    changed = found.outputs_changed or found.fingerprint_changed or found.modal_changed
    (st.warning if changed else st.success)(found.summary_line())
    if original.backend != again.backend:
        st.info(f"The re-run went to {md(again.backend.label)}, the original to {md(original.backend.label)}: "
                "another backend alone can explain different outputs.")
    if found.modal_changed and found.modal_before is not None and found.modal_after is not None:
        st.html(diff_columns(diff(found.modal_before, found.modal_after), "The original's most common answer",
                             "The re-run's most common answer") + legend())
    compared = side_by_side((("Original", original), ("Re-run", again)), _drift_side)
    st.caption(md(contrast_line(compared[1], compared[0], two_sided=True)))
    if found.moved_runs:
        st.caption("Runs whose text the original never produced: "
                   + ", ".join(f"run {i + 1}" for i in found.moved_runs))


def _drift_side(title: str, experiment: Experiment, comparison: Comparison) -> None:
    """One side of the drift view: when, where and with which fingerprints it ran; its verdict in a line."""
    fingerprints = ", ".join(comparison.summary.fingerprints.counts) or "none"
    st.markdown(f"**{title}** · {when(experiment)} · {md(experiment.backend.label)} · "
                f"fingerprints {md(fingerprints)}")
    st.caption(verdict(comparison))


def _follow_rerun() -> None:
    """The re-run's cards as they arrive; then open it, to show its drift from the original."""
    try:
        [batch] = follow_job(RERUN)
    except (UnknownExperiment, StorageError) as exc:
        nothing_sent(exc)  # the original was deleted, or the history refused the new item, before a request left
        return
    open_experiment(batch.recording.experiment_id)
    st.rerun()


def _part_of(store: Store, experiment: Experiment) -> None:
    """A sweep's cell, a suite's prompt or a probe's step: which it belongs to, and the way back to the whole."""
    parent = store.get(experiment.parent_id)
    if parent is None:
        return
    part = PARTS.get(parent.kind, "part")
    st.caption(f"{md(experiment.meta.get('label', ''))}: one {part} of the {parent.kind} `{parent.id}`.")
    if st.button(f"Open the whole {parent.kind}", key="history_parent", icon=":material/arrow_upward:"):
        open_experiment(parent.id)
        st.rerun()


def show_batch(opened: Opened, experiment: Experiment) -> None:
    """A batch (alone, or a part of a sweep, suite or probe): its re-run, its drift from its original, a
    comparison with any other batch, its runs."""
    if experiment.parent_id:
        _part_of(opened.store, experiment)
    describe(experiment)
    if actions(opened, experiment):
        send(lambda: opened.rerun_batch(experiment))
    if job_running(RERUN):
        _follow_rerun()
    if experiment.rerun_of:
        original = opened.store.get(experiment.rerun_of)
        st.subheader("Drift since the original")
        if original is None:
            st.info(f"This is a re-run of {md(experiment.rerun_of)}, which is no longer in the history.")
        else:
            drift_view(original, experiment)
    compare_with(opened.store, experiment)
    st.subheader("Runs")
    if experiment.runs:
        show_results(experiment.runs, key=f"history_{experiment.id}", request=experiment.request,
                     made_by=saved_made_by(experiment.request, experiment.backend, len(experiment.runs)))


def show_saved_sweep(opened: Opened, experiment: Experiment) -> None:
    plan = experiment.meta["plan"]
    st.markdown(f"**{when(experiment)}** · sweep · {md(experiment.backend.label)} · "
                f"temperatures {', '.join(f'{t:g}' for t in plan['temperatures'])} · seeds "
                f"{', '.join('none' if s is None else str(s) for s in plan['seeds'])} · {plan['runs']} runs per cell"
                + ("" if experiment.complete else " · **incomplete**"))
    columns = st.columns([1, 5.2], vertical_alignment="center")
    json_button(opened.store, experiment, columns[0])
    delete_button(opened.store, experiment, columns[1], "this sweep and its cells")
    show_sweep(load_sweep(opened.store, experiment.id), experiment.backend, key=f"history_{experiment.id}")


def show_saved_suite(opened: Opened, experiment: Experiment) -> None:
    """The Suite page's results view of a saved suite run; its re-run sends the whole suite again, as one new item."""
    run = load_suite_run(opened.store, experiment.id)
    count = len(run.suite.prompts)
    st.markdown(f"**{when(experiment)}** · suite {md(run.suite.name)} · {count} prompt{'s' * (count != 1)} × "
                f"{run.plan.runs} runs" + ("" if experiment.complete else " · **incomplete**"))
    if actions(opened, experiment, "this suite run and its prompts", csv=False):
        send(lambda: opened.rerun_suite(run))
    if job_running(SUITE_JOB):
        _follow_suite_rerun()
    show_suite(run, key=f"history_{experiment.id}")


def _follow_suite_rerun() -> None:
    """The re-run's progress per prompt; then open it (shown here instead when the history could not keep it)."""
    again, recording = follow_suite()
    if recording.experiment_id:
        open_experiment(recording.experiment_id)
        st.rerun()
    st.subheader("The re-run")
    saved_caption(None, recording.save_error)
    show_suite(again, key="history_suite_rerun")
    st.subheader("The original")


def show_saved_probe(opened: Opened, experiment: Experiment) -> None:
    """The Probe page's report card, sending nothing; probing again is the Probe page's job, with its cost shown."""
    steps = opened.store.children(experiment.id)
    st.markdown(f"**{when(experiment)}** · probe · {md(experiment.backend.label)} · {len(steps)} steps")
    columns = st.columns([3, 1, 2.2], vertical_alignment="center")
    columns[0].page_link(PROBE_PAGE, label="Probe again", icon=":material/troubleshoot:")
    json_button(opened.store, experiment, columns[1])
    delete_button(opened.store, experiment, columns[-1], "this probe and its steps")
    share_link(experiment)
    try:
        show_report(load_report(opened.store, experiment.id), experiment.id, key=f"history_{experiment.id}")
    except UnknownExperiment as exc:
        st.error(md(exc))
    _step_table(steps)


def _step_table(steps: Sequence[Experiment]) -> None:
    """The runs each step kept; picking one opens it as a batch."""
    if not steps:
        return
    st.subheader("Steps")
    st.caption("Pick a step to open its runs.")
    frame = pd.DataFrame([{"Step": step.meta.get("label", ""), "Runs": len(step.runs),
                           "Seed": "none" if step.request.seed is None else str(step.request.seed),
                           "T": f"{step.request.temperature:g}"} for step in steps])
    _table_that_opens(frame, [step.id for step in steps], key="history_steps")


SHOW_PARENT = {"sweep": show_saved_sweep, "suite": show_saved_suite, "probe": show_saved_probe}


def show(opened: Opened, experiment: Experiment) -> None:
    """An opened item, shown as its kind is."""
    SHOW_PARENT.get(experiment.kind, show_batch)(opened, experiment)
