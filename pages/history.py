"""History: every experiment kept; open one (or ?experiment=<id>), re-run it and see the drift, export, import."""

import pandas as pd
import streamlit as st

from core import (MAX_IMPORT_BYTES, Experiment, InvalidImport, InvalidRequest, StorageError, UnknownExperiment, compare,
                  drift, from_json, import_experiment, load_sweep, provider, providers, rerun, to_csv, to_json)
from ui.html import md
from ui.live import live_runs
from ui.results import nothing_sent, run_cards, show_results, verdict
from ui.session import session
from ui.sweeps import show_sweep

visit = session()
st.title("History")
store = visit.store
if store is None:
    st.error(md(visit.store_error))
    st.stop()


def when(experiment: Experiment) -> str:
    """The experiment's time as saved (UTC for runs made here; an import keeps its own offset)."""
    return md(experiment.created_at[:19].replace("T", " "))


def open_experiment(experiment_id: str | None) -> None:
    if experiment_id:
        st.query_params["experiment"] = experiment_id
    else:
        st.query_params.pop("experiment", None)


def import_box() -> None:
    upload = st.file_uploader("Import a JSON export", type=["json"], key="history_import",
                              max_upload_size=MAX_IMPORT_BYTES // 2**20)
    if upload is None or st.session_state.get("history_imported") == upload.file_id:
        return
    try:
        new_id = import_experiment(store, from_json(upload.getvalue()))
    except InvalidImport as exc:
        st.error(f"Not imported: {md(exc)}")
        return
    st.session_state["history_imported"] = upload.file_id
    open_experiment(new_id)


def _batch_cells(row) -> dict:
    return {"Runs": f"{row.runs_done}/{row.runs_planned}", "Seed": "none" if row.seed is None else str(row.seed),
            "T": f"{row.temperature:g}", "Unique": f"{row.unique_outputs}/{row.runs_done}" if row.runs_done else "–"}


def _sweep_cells(row) -> dict:
    """A sweep's runs live in its cells: the row says how many were planned, and the cells tell the rest."""
    return {"Runs": f"{row.runs_planned} in cells", "Seed": "swept", "T": "swept", "Unique": "–"}


def table() -> None:
    filters = st.columns([3, 1])
    search = filters[0].text_input("Search prompts and models", key="history_search")
    names = ["all", *(p.name for p in providers())]
    chosen = filters[1].selectbox("Backend", names, key="history_provider",
                                    format_func=lambda p: "All backends" if p == "all" else provider(p).title)
    rows = store.list(search=search or None, provider=None if chosen == "all" else chosen)
    if not rows:
        st.info("Nothing here yet: run an experiment and it is kept here." if not search else "No match.")
        return
    frame = pd.DataFrame([{
        "When": row.created_at[:19].replace("T", " "), "Backend": f"{row.provider} · {row.model}",
        "Prompt": row.prompt_preview, **(_sweep_cells(row) if row.kind == "sweep" else _batch_cells(row)),
        "Fingerprints": ", ".join(row.fingerprints) or "–",
        "Status": ("sweep · " if row.kind == "sweep" else "re-run · " if row.rerun_of else "")
                  + ("complete" if row.complete else "incomplete"),
    } for row in rows])
    picked = st.dataframe(frame, hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row",
                          key="history_table")
    if picked.selection.rows:
        open_experiment(rows[picked.selection.rows[0]].id)
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


def actions(experiment: Experiment) -> bool:
    """The buttons for one experiment; True when the visitor asked to re-run it."""
    columns = st.columns([1.2, 1, 1, 1, 3])
    again = columns[0].button("Re-run now", type="primary", key="history_rerun", icon=":material/replay:",
                              disabled=visit.backend is None)
    columns[1].download_button("JSON", to_json(experiment), f"repro-lab-{experiment.id}.json", "application/json",
                               key="history_json", icon=":material/download:")
    columns[2].download_button("CSV", to_csv(experiment), f"repro-lab-{experiment.id}.csv", "text/csv",
                               key="history_csv", icon=":material/download:")
    with columns[3].popover("Delete", icon=":material/delete:"):
        st.write("Delete this experiment for everyone?")
        if st.button("Delete it", key="history_delete", type="primary"):
            store.delete(experiment.id)
            open_experiment(None)
            st.rerun()
    columns[4].caption(f"Share: `?experiment={experiment.id}`")
    return again


def drift_view(original: Experiment, again: Experiment) -> None:
    """The re-run beside its original: did the outputs, the modal answer, the fingerprint change?"""
    found = drift(original.runs, again.runs)
    changed = found.outputs_changed or found.fingerprint_changed or found.modal_changed
    (st.warning if changed else st.success)(found.summary_line())
    if original.backend != again.backend:
        st.info(f"The re-run went to {md(again.backend.label)}, the original to {md(original.backend.label)}: "
                "another backend alone can explain different outputs.")
    sides = st.columns(2)
    for column, (title, experiment) in zip(sides, (("Original", original), ("Re-run", again))):
        summary = compare(experiment.runs).summary
        column.markdown(f"**{title}** · {when(experiment)} · {md(experiment.backend.label)} · "
                        f"fingerprints {md(', '.join(summary.fingerprints.counts) or 'none')}")
        column.caption(verdict(summary))
    if found.moved_runs:
        st.caption("Runs whose text the original never produced: "
                   + ", ".join(f"run {i + 1}" for i in found.moved_runs))


def show_saved_sweep(experiment: Experiment) -> None:
    plan = experiment.meta["plan"]
    st.markdown(f"**{when(experiment)}** · sweep · {md(experiment.backend.label)} · "
                f"temperatures {', '.join(f'{t:g}' for t in plan['temperatures'])} · seeds "
                f"{', '.join('none' if s is None else str(s) for s in plan['seeds'])} · {plan['runs']} runs per cell"
                + ("" if experiment.complete else " · **incomplete**"))
    with st.popover("Delete", icon=":material/delete:"):
        if st.button("Delete the sweep and its cells", key="history_delete", type="primary"):
            store.delete(experiment.id)
            open_experiment(None)
            st.rerun()
    show_sweep(load_sweep(store, experiment.id), key=f"history_{experiment.id}")


def show(experiment: Experiment) -> None:
    if experiment.kind == "sweep":
        return show_saved_sweep(experiment)
    describe(experiment)
    if actions(experiment):
        try:
            visit.admit(experiment.request, experiment.runs_planned)
            recording = rerun(store, visit.backend, experiment.id, concurrency=visit.params.concurrency,
                              process_limit=visit.limits.global_concurrency)
        except (InvalidRequest, UnknownExperiment, StorageError) as exc:
            nothing_sent(exc)
        else:
            live_runs(recording, experiment.runs_planned)
            open_experiment(recording.experiment_id)
            st.rerun()
    if experiment.rerun_of:
        original = store.get(experiment.rerun_of)
        st.subheader("Drift since the original")
        if original is None:
            st.info(f"This is a re-run of {md(experiment.rerun_of)}, which is no longer in the history.")
        else:
            drift_view(original, experiment)
    st.subheader("Runs")
    run_cards(experiment.runs)
    if experiment.runs:
        show_results(experiment.runs, key=f"history_{experiment.id}")


def page() -> None:
    import_box()
    opened = st.query_params.get("experiment")
    if not opened:
        return table()
    experiment = store.get(opened)
    if st.button("← All experiments", key="history_back"):
        open_experiment(None)
        st.rerun()
    if experiment is None:
        st.error(f"There is no experiment {md(opened)} in the history; it may have been deleted.")
    else:
        show(experiment)


try:
    page()
except StorageError as exc:
    st.error(md(exc))
