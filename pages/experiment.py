"""Experiment: N identical requests, live run cards, then where and how much the answers diverge."""

import functools

import streamlit as st

from core import InvalidRequest
from ui.live import LiveBatch, click_refused, follow_job, job_running, start_job
from ui.prompts import prompt_box
from ui.results import nothing_sent, run_cards, saved_caption, show_results
from ui.session import session

visit = session()
st.title("Experiment")
st.caption("The same request, sent N times at once. Identical answers mean the backend reproduced itself; "
           "where they part is where reproducibility broke.")
system, prompt = prompt_box("experiment")
buttons = st.columns([1, 4])
clicked = buttons[0].button("Run", type="primary", key="run", icon=":material/play_arrow:",
                            disabled=visit.backend is None)
logprobs = buttons[1].toggle("Log-probabilities (top 5)", key="logprobs",
                             help="Shows what each run could have chosen where two runs part. The embedded model "
                                  "is much slower with them.")
cost = st.empty()  # filled last, so the quota it shows counts this run too

if clicked and job_running():
    click_refused()
elif clicked:
    try:
        request, plan = visit.params.request(prompt, system, logprobs=logprobs), visit.params.plan()
        visit.admit(request, plan.runs)
    except InvalidRequest as exc:
        nothing_sent(exc)
    else:
        start_job("experiment", [LiveBatch("", plan.runs, functools.partial(visit.run, request, plan))])
if job_running("experiment"):
    [batch] = follow_job("experiment")
    st.session_state["experiment_results"] = batch.results
    st.session_state["experiment_saved"] = (batch.recording.experiment_id, batch.recording.save_error)
    st.session_state["experiment_count"] = st.session_state.get("experiment_count", 0) + 1
elif "experiment_results" in st.session_state:
    run_cards(st.session_state["experiment_results"])

if "experiment_results" in st.session_state:
    saved_caption(*st.session_state["experiment_saved"])
    show_results(st.session_state["experiment_results"], key=f"experiment_{st.session_state['experiment_count']}")

cost.caption("This run: " + visit.cost_line(visit.params.runs, visit.params.max_tokens))
