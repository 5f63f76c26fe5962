"""Seed vs no seed: the classic demo in one click, both scenarios sent at the same time with the same parameters,
their verdicts side by side (stacked, each diff full width, in presentation mode)."""

import functools
from dataclasses import replace

import streamlit as st

from core import Comparison, InvalidRequest, RunResult, diff
from ui.controls import DEMO_SEED, inputs_key, made_by, seed_demo_parameters
from ui.html import diff_columns, legend, md
from ui.live import LiveBatch, Sent, click_refused, finished_job, job_running, send_job
from ui.present import presenting
from ui.prompts import fold_prompt, folding_prompt_box
from ui.results import compared, nothing_sent, run_cards, stale_container, verdict_block
from ui.resume import show_interrupted
from ui.resources import local_backend
from ui.session import session
from ui.verdict import contrast_line

PAGE = "seed"
MODES_WHY = ("In *reuse prompt cache* mode the engine keeps the evaluated prompt, as a busy server would. The first "
             "request evaluates the whole prompt in one batch; every later one finds it cached and re-evaluates only "
             "its last token, alone: a different batch shape, so logits that differ in the last bits, and where two "
             "tokens were nearly tied the choice flips. *Deterministic* mode resets the state before every request, "
             "so the same seed gives the same bytes every time.")
WHY = ("A fixed seed makes the sampling repeatable, yet only “almost always”: when the backend computes the same "
       "logits in a different batch shape (a reused prompt cache, another batch size on a busy server) the last "
       "bits differ and can flip a near-tie between two tokens. A changed system fingerprint says the backend "
       "configuration itself changed.")


def scenario(title: str, results: list[RunResult], line: str, key: str) -> Comparison:
    """One scenario: its verdict, the diff of the modal run against its least similar, the runs folded away."""
    comparison = compared(results, key)
    verdict_block(comparison, line, title=title)
    pair = comparison.default_pair()
    if pair:
        texts = {r.index: r.text for r in results if r.ok}
        st.html(diff_columns(diff(texts[pair[0]], texts[pair[1]]), f"Run {pair[0] + 1}", f"Run {pair[1] + 1}"))
    with st.expander(f"All {len(results)} runs"):
        run_cards(results, comparison, per_row=3 if presenting() else 1, key=key)
    return comparison


def show_pair(job: str, inputs: str, why: str) -> None:
    """The pair sent under `job`: live in its two places while it runs, then both verdicts; dimmed once the
    visitor changes a setting."""
    previous = st.session_state.get(f"{job}_finished")
    stale = not job_running(job) and previous is not None and previous.stale(inputs)
    with stale_container(f"{job}_view", stale):
        live = _places() if job_running(job) else None
        done = finished_job(job, live, per_row=3 if presenting() else 2)
        for place in live or []:
            place.empty()
        if done:
            scenarios = []
            for place, batch, line in zip(_places(), done.batches, done.sent.made_by):
                with place.container():
                    key = f"{job}_{done.number}_{batch.title}"
                    scenarios.append((batch.title, scenario(batch.title, batch.results, line, key)))
            st.markdown(md(contrast_line(scenarios[1], scenarios[0])))  # the seeded (deterministic) one second
            st.html(legend())
            st.info(why)


def _places() -> list:
    """Two places, side by side (one above the other when presenting). The live view and the results each get
    their own: a container drawn over the live view would keep the rows of cards it has no use for."""
    return [st.empty(), st.empty()] if presenting() else [column.empty() for column in st.columns(2)]


def send_pair(job: str, batches: list[LiveBatch], sent: Sent, admit, *, together: bool) -> None:
    try:
        if not send_job(job, batches, sent, admit, together=together):
            click_refused()
    except InvalidRequest as exc:
        nothing_sent(exc)


visit = session(controls=seed_demo_parameters)
params, info = visit.params, visit.backend.info if visit.backend else None
st.title("Seed vs no seed")
st.caption(f"**seed {DEMO_SEED} vs none** · A seed fixes the model's random choices, so the same request should "
           "give the same answer: watch the seeded runs agree word for word while the unseeded ones part, and "
           "whether the seed holds on this backend.")
show_interrupted(visit.store)
system, prompt = folding_prompt_box(PAGE)
row = st.columns([1, 3], vertical_alignment="center")
clicked = row[0].button("Run both", type="primary", key="run_both", icon=":material/play_arrow:",
                        disabled=visit.backend is None, on_click=fold_prompt, args=(PAGE,))
cost = row[1].empty()  # filled last, so the quota it shows counts this run too
inputs = inputs_key(params, info, system, prompt)
if clicked:
    try:
        with_seed = params.request(prompt, system)
        without_seed, plan = replace(with_seed, seed=None), params.plan()
    except InvalidRequest as exc:
        nothing_sent(exc)
    else:
        send_pair("seed_scenarios", [
            LiveBatch("Without a seed", plan.runs, functools.partial(visit.run, without_seed, plan)),
            LiveBatch(f"With seed {with_seed.seed}", plan.runs, functools.partial(visit.run, with_seed, plan))],
            Sent(inputs, (made_by(replace(params, seed=None), info), made_by(params, info)),
                 (without_seed, with_seed)),
            functools.partial(visit.admit, with_seed, plan.runs, batches=2), together=True)
show_pair("seed_scenarios", inputs, WHY)
request_now = None
try:
    request_now = params.request(prompt, system)
    cost.caption("Both scenarios: " + visit.cost_line(2 * params.runs, params.max_tokens)
                 + visit.estimate(request_now, 2 * params.runs))
except InvalidRequest as exc:
    cost.caption(f"Nothing can be sent yet: {md(exc)}")

st.divider()
st.header("The embedded engine's two modes")
st.caption("The same seeded request to the embedded model, N times in each mode: a miniature of why a fixed seed is "
           "only “almost always” reproducible on a real server. Offline, always available.")
clicked_modes = st.button("Run both modes", key="run_modes", icon=":material/play_arrow:")
mode_inputs = inputs_key(params, None, system, prompt, "modes")
if clicked_modes and request_now is not None:
    deterministic, cache = local_backend("deterministic"), local_backend("cache")
    cache.forget()  # start cold, as the first request to a freshly started server
    plan = params.plan()
    send_pair("engine_modes", [
        LiveBatch("Deterministic", plan.runs, functools.partial(visit.run, request_now, plan, deterministic)),
        LiveBatch("Reuse prompt cache", plan.runs, functools.partial(visit.run, request_now, plan, cache))],
        Sent(mode_inputs, (made_by(params, deterministic.info), made_by(params, cache.info)),
             (request_now, request_now)),
        functools.partial(visit.admit, request_now, plan.runs, batches=2), together=False)
elif clicked_modes:
    nothing_sent(InvalidRequest("fix the prompt or the parameters above first."))
show_pair("engine_modes", mode_inputs, MODES_WHY)
