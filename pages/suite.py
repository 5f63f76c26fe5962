"""Suite: every prompt of a file N times, all at once: how many prompts reproduce (TARr@N, TARa@N) and how far
accuracy moves from one run to the next."""

import streamlit as st

from core import InvalidRequest, SuitePlan, parse_seed
from ui.html import md
from ui.live import click_refused, job_running
from ui.results import nothing_sent, saved_caption
from ui.session import session
from ui.suites import JOB_KEY, follow_suite, pick_suite, show_suite, start_suite, suite_settings

visit = session()
st.title("Suite")
st.caption("Many prompts, each sent N times at once: the share of prompts whose N outputs are byte-identical "
           "(TARr@N), whose N extracted answers agree (TARa@N), and how much accuracy moves between runs.")
suite = pick_suite()
runs, seed_text, temperature = suite_settings(visit)

plan = None
try:
    plan = SuitePlan(runs=runs, concurrency=visit.params.concurrency, temperature=temperature,
                     top_p=visit.params.top_p, max_tokens=visit.params.max_tokens, seed=parse_seed(seed_text))
except InvalidRequest as exc:
    st.error(f"Nothing can be sent yet: {md(exc)}")

if suite and plan:
    total = len(suite.prompts) * plan.runs
    cost = st.empty()  # filled last, so the quota it shows counts this suite too
    confirmed = total <= visit.limits.confirm_above or st.checkbox(f"Yes, send {total} requests", key="suite_confirm")
    if st.button("Run suite", type="primary", key="run_suite", icon=":material/play_arrow:",
                 disabled=visit.backend is None or not confirmed):
        try:
            if not start_suite(visit, suite, plan):
                click_refused()
        except InvalidRequest as exc:
            nothing_sent(exc)

if job_running(JOB_KEY):
    run, recording = follow_suite()
    st.session_state["suite_run"] = run
    st.session_state["suite_saved"] = (recording.experiment_id, recording.save_error)
    st.session_state["suite_count"] = st.session_state.get("suite_count", 0) + 1

if "suite_run" in st.session_state:
    shown = st.session_state["suite_run"]
    saved_caption(*st.session_state["suite_saved"])
    now = (suite, plan, visit.backend.info if visit.backend else None)  # what a click on Run would send now
    show_suite(shown, key=f"suite_{st.session_state['suite_count']}",
               stale=now != (shown.suite, shown.plan, shown.backend))

if suite and plan:
    cost.caption(f"This suite: {len(suite.prompts)} prompts × {plan.runs} runs = "
                 + visit.cost_line(total, plan.max_tokens))
