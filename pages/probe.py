"""Probe: can this endpoint be trusted? Which parameters it rejects, whether it honours the seed, whether a warm
cache or the load on the server changes a seeded answer; the report card is kept in the history."""

import streamlit as st

from core import LADDER, LOCAL_LADDER, InvalidRequest, ProbePlan, StorageError, latest_report, save_probe
from ui.html import md
from ui.probe import show_report, skipped_lines
from ui.results import nothing_sent, saved_caption
from ui.session import session

LOADS = (0, 2, 4, 8, 16, 32, 64)

visit = session()
st.title("Probe")
st.caption("One click to test a black-box endpoint: the parameters it rejects, whether the seed is honoured, whether "
           "a warm prompt cache changes the first answer, and whether the load on the server changes a seeded answer.")
# The embedded engine runs each rung in one batch on this machine, twice: a shorter ladder by default.
embedded = visit.backend is not None and visit.backend.info.provider == "local"
settings = st.columns(3)
most_runs = max(2, min(20, visit.limits.max_runs))
runs = settings[0].number_input("Copies of the seeded request per load", 2, most_runs, min(8, most_runs),
                                key="probe_runs")
ladder = settings[1].multiselect("Background requests in flight (K)", LOADS,
                                default=list(LOCAL_LADDER if embedded else LADDER), key="probe_ladder")
max_tokens = settings[2].number_input("Longest answer (tokens)", 1, visit.limits.max_tokens,
                                      min(16, visit.limits.max_tokens), key="probe_max_tokens")

plan = skipped = None
try:
    wanted = ProbePlan(int(runs), tuple(ladder), int(max_tokens), in_batch=embedded)
    plan, skipped = wanted.bounded(visit.limits.global_concurrency, visit.quota.remaining())
except InvalidRequest as exc:
    st.error(f"Nothing can be sent yet: {md(exc)}")
if plan:
    st.caption(f"This probe: {md(plan.describe())} · {visit.quota_line()}")
    for line in skipped_lines(skipped):
        st.caption(md(line))
    if visit.store and visit.backend and (previous := latest_report(visit.store, visit.backend.info)):
        st.caption(f"Last probe of this endpoint: {md(previous[1].summary())}")
    confirmed = st.checkbox(f"Yes, send {plan.total_requests} requests", key="probe_confirm")
    if st.button("Probe the endpoint", type="primary", key="run_probe", icon=":material/troubleshoot:",
                 disabled=visit.backend is None or not confirmed):
        try:
            visit.limits.check(plan.load_request(), plan.runs)
            visit.quota.take(plan.total_requests)
        except InvalidRequest as exc:
            nothing_sent(exc)
        else:
            with st.spinner(f"Probing: {plan.total_requests} requests…"):
                probe = visit.probe(plan, skipped)
            probe_id, save_error = None, visit.store_error
            if visit.store:
                try:
                    probe_id = save_probe(visit.store, probe)
                except StorageError as exc:
                    save_error = str(exc)
            st.session_state["probe_result"] = (probe.report, probe_id, save_error)
            st.session_state["probe_count"] = st.session_state.get("probe_count", 0) + 1

if "probe_result" in st.session_state:
    report, probe_id, save_error = st.session_state["probe_result"]
    saved_caption(probe_id, save_error)
    show_report(report, probe_id, key=f"probe_{st.session_state['probe_count']}")
