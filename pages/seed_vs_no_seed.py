"""Seed vs no seed: the classic demo in one click, both scenarios with the same parameters, side by side."""

import functools
from dataclasses import replace

import streamlit as st

from core import InvalidRequest, RunRequest, RunResult, compare, diff
from ui.html import diff_columns, legend, md
from ui.live import LiveBatch, click_refused, follow_job, job_running, start_job
from ui.prompts import prompt_box
from ui.results import nothing_sent, run_cards, verdict
from ui.session import local_backend, session

DEFAULT_SEED = 42
MODES_WHY = ("In *reuse prompt cache* mode the engine keeps the evaluated prompt, as a busy server would. The first "
             "request evaluates the whole prompt in one batch; every later one finds it cached and re-evaluates only "
             "its last token, alone: a different batch shape, so logits that differ in the last bits, and where two "
             "tokens were nearly tied the choice flips. *Deterministic* mode resets the state before every request, "
             "so the same seed gives the same bytes every time.")
WHY = ("A fixed seed makes the sampling repeatable, yet only “almost always”: when the backend computes the same "
       "logits in a different batch shape (a reused prompt cache, another batch size on a busy server) the last "
       "bits differ and can flip a near-tie between two tokens. A changed system fingerprint says the backend "
       "configuration itself changed.")


def seeded(request: RunRequest) -> RunRequest:
    """The request with the seed these demos fix: the sidebar's, or 42 when it has none."""
    return request if request.seed is not None else replace(request, seed=DEFAULT_SEED)


def scenario(title: str, results: list[RunResult]) -> None:
    """One column: the verdict, the fingerprints, the diff of the modal run against its least similar, the cards."""
    comparison = compare(results)
    summary = comparison.summary
    st.subheader(title)
    (st.success if summary.all_identical else st.warning)(verdict(summary))
    counts = summary.fingerprints.counts
    st.caption("Fingerprints: " + (", ".join(f"{md(fp)} ×{n}" for fp, n in counts.items()) or "none reported")
               + (" — mixed!" if summary.fingerprints.mixed else ""))
    pair = comparison.default_pair()
    if pair:
        texts = {r.index: r.text for r in results if r.ok}
        st.html(diff_columns(diff(texts[pair[0]], texts[pair[1]]), f"Run {pair[0] + 1}", f"Run {pair[1] + 1}"))
    with st.expander(f"All {len(results)} runs"):
        run_cards(results, per_row=1)


def show_pair(state_key: str, slots, why: str) -> None:
    """The pair sent under `state_key`: live in its two columns while it runs, then both verdicts."""
    if job_running(state_key):
        st.session_state[state_key] = {batch.title: batch.results for batch in follow_job(state_key, slots, per_row=2)}
    if state_key in st.session_state:
        for slot, (title, results) in zip(slots, st.session_state[state_key].items()):
            with slot.container():
                scenario(title, results)
        st.html(legend())
        st.info(why)


visit = session()
busy = job_running()  # asked before this run shows the job to its end
st.title("Seed vs no seed")
st.caption("N requests without a seed and N with one, everything else equal.")
system, prompt = prompt_box("seed")
clicked = st.button("Run both", type="primary", key="run_both", icon=":material/play_arrow:",
                    disabled=visit.backend is None)
cost = st.empty()  # filled last, so the quota it shows counts this run too
seed_slots = [column.empty() for column in st.columns(2)]
if clicked and busy:
    click_refused()
elif clicked:
    try:
        request = visit.params.request(prompt, system)
        with_seed, without_seed = seeded(request), replace(request, seed=None)
        plan = visit.params.plan()
        visit.admit(with_seed, plan.runs, batches=2)
    except InvalidRequest as exc:
        nothing_sent(exc)
    else:
        start_job("seed_scenarios", [
            LiveBatch("Without a seed", plan.runs, functools.partial(visit.run, without_seed, plan)),
            LiveBatch(f"With seed {with_seed.seed}", plan.runs, functools.partial(visit.run, with_seed, plan))])
show_pair("seed_scenarios", seed_slots, WHY)

st.divider()
st.header("The embedded engine's two modes")
st.caption("The same seeded request to the embedded model, N times in each mode: a miniature of why a fixed seed is "
           "only “almost always” reproducible on a real server. Offline, always available.")
clicked_modes = st.button("Run both modes", key="run_modes", icon=":material/play_arrow:")
mode_slots = [column.empty() for column in st.columns(2)]
if clicked_modes and busy:
    click_refused()
elif clicked_modes:
    try:
        request = seeded(visit.params.request(prompt, system))
        plan = visit.params.plan()
        visit.admit(request, plan.runs, batches=2)
    except InvalidRequest as exc:
        nothing_sent(exc)
    else:
        deterministic, cache = local_backend("deterministic"), local_backend("cache")
        cache.forget()  # start cold, as the first request to a freshly started server
        start_job("engine_modes", [
            LiveBatch("Deterministic", plan.runs, functools.partial(visit.run, request, plan, deterministic)),
            LiveBatch("Reuse prompt cache", plan.runs, functools.partial(visit.run, request, plan, cache))])
show_pair("engine_modes", mode_slots, MODES_WHY)

cost.caption("Both scenarios: " + visit.cost_line(2 * visit.params.runs, visit.params.max_tokens))
