"""History: every experiment kept; open one (or ?experiment=<id>), re-run it and see the drift, compare it with
another, export, import.
A sweep, a suite run or a probe opens with its own page's results view; a cell, a prompt or a step opens as a batch."""

import dataclasses
import functools

import streamlit as st

from core import (MAX_IMPORT_BYTES, Experiment, InvalidImport, StorageError, SuiteRun, import_item, provider,
                  providers, read_item, rerun)
from ui.history import RERUN, Opened, history_list, open_experiment, show
from ui.html import md
from ui.live import LiveBatch, start_job
from ui.session import session
from ui.suites import start_suite

visit = session()
st.title("History")
store = visit.store
if store is None:
    st.error(md(visit.store_error))
    st.stop()


def import_box() -> None:
    upload = st.file_uploader("Import a JSON export", type=["json"], key="history_import",
                              max_upload_size=MAX_IMPORT_BYTES // 2**20)
    if upload is None or st.session_state.get("history_imported") == upload.file_id:
        return
    try:
        new_id = import_item(store, read_item(upload.getvalue()))
    except InvalidImport as exc:
        st.error(f"Not imported: {md(exc)}")
        return
    st.session_state["history_imported"] = upload.file_id
    open_experiment(new_id)


def table() -> None:
    filters = st.columns([3, 1])
    search = filters[0].text_input("Search prompts and models", key="history_search")
    names = ["all", *(p.name for p in providers())]
    chosen = filters[1].selectbox("Backend", names, key="history_provider",
                                  format_func=lambda p: "All backends" if p == "all" else provider(p).title)
    history_list(store.list(search=search or None, provider=None if chosen == "all" else chosen), bool(search))


def rerun_batch(experiment: Experiment) -> bool:
    """The same request again on the backend chosen now, as a new item of the history."""
    again = functools.partial(rerun, store, visit.fanout, visit.backend, experiment.id,
                              concurrency=visit.params.concurrency)
    return start_job(RERUN, [LiveBatch("", experiment.runs_planned, again)],
                     admit=functools.partial(visit.admit, experiment.request, experiment.runs_planned))


def rerun_suite(run: SuiteRun) -> bool:
    """Every prompt of the suite again, as the Suite page sends it, with this visit's concurrency."""
    return start_suite(visit, run.suite, dataclasses.replace(run.plan, concurrency=visit.params.concurrency))


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
        now = visit.backend.info if visit.backend else None
        show(Opened(store, now, rerun_batch, rerun_suite), experiment)


try:
    page()
except StorageError as exc:
    st.error(md(exc))
