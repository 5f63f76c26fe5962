"""Sweep: the same prompt over temperatures × seeds, N runs per cell, to see how reproducibility depends on them."""

import functools

import streamlit as st

from core import InvalidRequest, SweepPlan, parse_seeds
from ui.html import md
from ui.live import LiveBatch, click_refused, job_running, live_cells, start_job
from ui.controls import rejections, what_runs_prove
from ui.prompts import prompt_box
from ui.results import nothing_sent, saved_caption
from ui.session import session
from ui.sweeps import show_sweep

TEMPERATURES = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.2, 1.5, 2.0)
MAX_RUNS_PER_CELL = 20
JOB_KEY, RUNNING = "sweep", "sweep_running"  # the job's key, and the request, plan and backend it sends to


visit = session()
st.title("Sweep")
st.caption("How often runs agree as the temperature rises, with a fixed seed and without.")
system, prompt = prompt_box("sweep")
settings = st.columns([3, 2, 1])
temperatures = settings[0].multiselect("Temperatures", TEMPERATURES, default=[0.0, 0.1, 0.3, 0.7, 1.0, 1.5],
                                       key="sweep_temperatures")
seeds_text = settings[1].text_input("Seeds", "42, none", key="sweep_seeds",
                                    help="Comma-separated whole numbers; 'none' is a series without a seed.")
most_runs = max(2, min(MAX_RUNS_PER_CELL, visit.limits.max_runs))  # at least 2, so a cell can be compared
runs = settings[2].number_input("Runs per cell", 2, most_runs, min(5, most_runs), key="sweep_runs")
st.caption(what_runs_prove(runs))  # the runs-needed planner, where N is picked
rejections(visit.capabilities, "temperature", "seed")  # such cells are sent as the endpoint accepts, with a note

plan = base = None
try:
    plan = SweepPlan(tuple(sorted(temperatures)), parse_seeds(seeds_text), int(runs), visit.params.concurrency)
    base = visit.params.unseeded(prompt, system)  # the cells set temperature and seed
except InvalidRequest as exc:
    st.error(f"Nothing can be sent yet: {md(exc)}")
if plan and base:
    tokens = "" if visit.backend and visit.backend.info.provider == "local" else (
        f" · about {plan.estimate_tokens(base):,} tokens at most")
    cost = st.empty()  # filled last, so the quota it shows counts this sweep too
    confirmed = plan.total_requests <= visit.limits.confirm_above or st.checkbox(
        f"Yes, send {plan.total_requests} requests", key="sweep_confirm")
    clicked = st.button("Run sweep", type="primary", key="run_sweep", icon=":material/play_arrow:",
                        disabled=visit.backend is None or not confirmed)
    if clicked:
        try:
            send = functools.partial(visit.sweep, base, plan)
            started = start_job(JOB_KEY, [LiveBatch("", plan.total_requests, send)],
                                admit=functools.partial(visit.admit, base, plan.total_requests, sweep=plan))
        except InvalidRequest as exc:
            nothing_sent(exc)
        else:
            if started:  # the job's own plan, so that widgets changed while it runs do not reshape what is drawn
                st.session_state[RUNNING] = (base, plan, visit.backend.info)
            else:
                click_refused()

if job_running(JOB_KEY):
    running_base, running_plan, answering = st.session_state[RUNNING]
    result, recording = live_cells(JOB_KEY, running_base, running_plan)
    st.session_state["sweep_result"] = (result, answering)
    st.session_state["sweep_saved"] = (recording.experiment_id, recording.save_error)
    st.session_state["sweep_count"] = st.session_state.get("sweep_count", 0) + 1

if "sweep_result" in st.session_state:
    saved_caption(*st.session_state["sweep_saved"])
    show_sweep(*st.session_state["sweep_result"], key=f"sweep_{st.session_state['sweep_count']}")

if plan and base:
    cost.caption(f"This sweep: {len(plan.temperatures)} temperatures × {len(plan.seeds)} seed settings × {plan.runs} "
                 f"runs = **{plan.total_requests} requests**{tokens} · {visit.quota_line()}")
