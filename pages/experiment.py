"""Experiment: N identical requests, live as they arrive, then the verdict first and where the answers diverge."""

import functools

import streamlit as st

from core import InvalidRequest
from ui.controls import all_parameters, inputs_key, logprobs_toggle, made_by
from ui.live import LiveBatch, Sent, click_refused, finished_job, send_job
from ui.prompts import fold_prompt, folding_prompt_box
from ui.results import nothing_sent, saved_caption, show_results
from ui.resume import show_interrupted
from ui.session import session

JOB = "experiment"

visit = session(controls=all_parameters)
st.title("Experiment")
st.caption("The same request, sent N times at once. Identical answers mean the backend reproduced itself; "
           "where they part is where reproducibility broke.")
show_interrupted(visit.store)
system, prompt = folding_prompt_box(JOB)
buttons = st.columns([1, 4])
clicked = buttons[0].button("Run", type="primary", key="run", icon=":material/play_arrow:",
                            disabled=visit.backend is None, on_click=fold_prompt, args=(JOB,))
with buttons[1]:
    logprobs = logprobs_toggle(visit.capabilities)
cost = st.empty()  # filled last, so the quota it shows counts this run too
backend_info = visit.backend.info if visit.backend else None
inputs = inputs_key(visit.params, backend_info, system, prompt, logprobs)

if clicked:
    try:
        request, plan = visit.params.request(prompt, system, logprobs=logprobs), visit.params.plan()
        started = send_job(JOB, [LiveBatch("", plan.runs, functools.partial(visit.run, request, plan))],
                           Sent(inputs, (made_by(visit.params, backend_info),), (request,)),
                           functools.partial(visit.admit, request, plan.runs))
    except InvalidRequest as exc:
        nothing_sent(exc)
    else:
        if not started:
            click_refused()

live = st.empty()
done = finished_job(JOB, [live])
live.empty()
if done:
    [batch] = done.batches
    show_results(batch.results, key=f"{JOB}_{done.number}", made_by=done.sent.made_by[0], stale=done.stale(inputs),
                 request=done.sent.requests[0])
    saved_caption(batch.recording.experiment_id, batch.recording.save_error)

try:
    estimate = visit.estimate(visit.params.request(prompt, system, logprobs=logprobs), visit.params.runs)
except InvalidRequest:  # nothing could be sent as the inputs stand, so there is nothing to time
    estimate = ""
cost.caption("This run: " + visit.cost_line(visit.params.runs, visit.params.max_tokens) + estimate)
