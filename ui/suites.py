"""The Suite page's pieces: the suite to run (shipped or uploaded), its admission, each prompt's progress while the
runs arrive, and the scores: the overall verdict in large type, a sortable row per prompt, and the runs of the row
the visitor opens."""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Sequence
from html import escape
from pathlib import Path

import pandas as pd
import streamlit as st

from core import Capabilities, InvalidRequest, Recording, RunResult, Suite, SuitePlan, SuiteRun, load_suite, parse_suite
from core.analysis.scores import AccuracySpread, PromptScore, SuiteSummary
from core.analysis.statistics import Proportion
from core.probe.capabilities import DEFAULTS
from ui.controls import Params, rejection, rejections, what_runs_prove
from ui.controls import made_by as parameters_line
from ui.html import md
from ui.live import LiveBatch, follow_pairs, start_job
from ui.results import show_results
from ui.session import Session
from ui.verdict import stale_container

MAX_RUNS_PER_PROMPT = 20
SHIPPED = Path(__file__).resolve().parent.parent / "suites"
SUITE_FORMATS = ("jsonl", "csv")
MAX_SUITE_MB = 2  # 1,000 prompts (the most the request cap allows, at 2 runs each) of 2,000 characters
JOB_KEY, SENT = "suite", "suite_sent"  # the suite's job, and the suite, plan and backend it sends
SOURCES = {"shipped": "A suite that ships with Repro Lab", "upload": "My own file"}
FORMAT_HELP = ("One prompt a line. JSONL: an object a line such as "
               '`{"prompt": "2+2?", "expected": "4", "extractor": "number"}`; CSV: a header row naming the columns. '
               "Fields: prompt, and optionally name, system, expected, extractor "
               "(`regex:…`, `json:path`, `last-line`, `number`, `choice:A-E`).")


def shipped_suites() -> dict[str, Path]:
    """The suite files in suites/, by file name."""
    return {path.name: path for path in sorted(SHIPPED.iterdir()) if path.suffix.lstrip(".") in SUITE_FORMATS}


def uploaded_suite(name: str, data: bytes) -> Suite:
    """The suite in an uploaded file; every error names the file, the line and the field."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidRequest(f"{name}: byte {exc.start + 1} is not UTF-8 text; save the file as UTF-8.") from None
    return parse_suite(text, name, csv_format=name.lower().endswith(".csv"))


def pick_suite() -> Suite | None:
    """The suite the visitor picks, previewed; None, with the reason shown, while there is none to run."""
    source = st.radio("Prompts", list(SOURCES), format_func=SOURCES.get, horizontal=True, key="suite_source")
    try:
        suite = _shipped() if source == "shipped" else _uploaded()
    except InvalidRequest as exc:
        st.error(f"Nothing can be sent: {md(exc)}")
        return None
    if suite:
        with st.expander(f"The {len(suite.prompts)} prompts of {md(suite.name)}"):
            st.dataframe(pd.DataFrame([{"#": k, "Prompt": p.label, "Expected": p.expected,
                                        "Extractor": p.extractor.spec if p.extractor else None}
                                       for k, p in enumerate(suite.prompts, start=1)]),
                         hide_index=True, width="stretch")
    return suite


def _shipped() -> Suite:
    suites = shipped_suites()
    return load_suite(suites[st.selectbox("Suite", list(suites), key="suite_shipped")])


def _uploaded() -> Suite | None:
    upload = st.file_uploader("Suite file", type=list(SUITE_FORMATS), key="suite_upload", help=FORMAT_HELP,
                              max_upload_size=MAX_SUITE_MB)
    if upload is None:
        st.caption(FORMAT_HELP)
        return None
    return uploaded_suite(upload.name, upload.getvalue())


def suite_settings(visit: Session) -> tuple[int, str, float]:
    """Runs per prompt (with what they would prove), the seed box's text and the temperature. A parameter the
    endpoint's latest probe found rejected is disabled with the reason and set as the endpoint accepts it."""
    columns = st.columns(3)
    most_runs = max(2, min(MAX_RUNS_PER_PROMPT, visit.limits.max_runs))  # at least 2: a prompt's runs are compared
    runs = columns[0].number_input("Runs per prompt", 2, most_runs, min(5, most_runs), key="suite_runs")
    with columns[1]:
        seed_text = _seed_text(visit.capabilities)
    with columns[2]:
        temperature = _temperature(visit.capabilities)
    st.caption(what_runs_prove(runs))  # the runs-needed planner, where N is picked
    return int(runs), seed_text, temperature


def _seed_text(capabilities: Capabilities | None) -> str:
    """The seed box; "none" (no seed is sent) when the endpoint rejects seeds."""
    rejected = rejection(capabilities, "seed")
    text = st.text_input("Seed", "42", key="suite_seed", disabled=bool(rejected),
                         help=rejected or "A whole number, or none to send no seed.")
    rejections(capabilities, "seed")
    return "none" if rejected else text


def _temperature(capabilities: Capabilities | None) -> float:
    """The temperature box; the one the endpoint accepts when it rejects others."""
    rejected = rejection(capabilities, "temperature")
    chosen = st.number_input("Temperature", 0.0, 2.0, DEFAULTS["temperature"] if rejected else 0.0, step=0.1,
                             key="suite_temperature", disabled=bool(rejected), help=rejected)
    rejections(capabilities, "temperature")
    return DEFAULTS["temperature"] if rejected else chosen


def admit_suite(visit: Session, suite: Suite, plan: SuitePlan) -> None:
    """Refuse a suite over the limits (naming the prompt) or the visitor's quota, else count all its requests."""
    requests = plan.requests(suite)
    total = len(requests) * plan.runs
    if total > visit.limits.max_sweep_requests:
        raise InvalidRequest(f"{len(requests)} prompts × {plan.runs} runs is {total} requests, over this instance's "
                             f"limit of {visit.limits.max_sweep_requests} (REPRO_MAX_SWEEP_REQUESTS). Lower the runs "
                             "per prompt or split the suite.")
    for prompt, request in zip(suite.prompts, requests, strict=True):
        try:
            visit.limits.check(request, plan.runs)
        except InvalidRequest as exc:
            raise InvalidRequest(f"prompt {prompt.label!r}: {exc}") from None
    visit.quota.take(total)


def start_suite(visit: Session, suite: Suite, plan: SuitePlan) -> bool:
    """Admit the suite and send it in the background (ui.live's job), noting what was sent; False, with nothing
    admitted or sent, while another job is on its way. A refusal (InvalidRequest) sends nothing."""
    def admit() -> None:
        admit_suite(visit, suite, plan)
        st.session_state[SENT] = (suite, plan, visit.backend.info)  # under the job's lock: always the job's own

    batch = LiveBatch(suite.name, len(suite.prompts) * plan.runs, functools.partial(visit.suite, suite, plan))
    return start_job(JOB_KEY, [batch], admit)


def follow_suite() -> tuple[SuiteRun, Recording]:
    """Show the running suite's progress per prompt until every run is in; then the suite run and its recording."""
    suite, plan, backend = st.session_state[SENT]
    bar, table = st.progress(0.0), st.empty()
    pairs, recording = follow_pairs(functools.partial(show_progress, suite, plan, bar=bar, table=table))
    bar.empty()
    table.empty()
    return SuiteRun.collect(suite, plan, backend, pairs), recording


def show_progress(suite: Suite, plan: SuitePlan, pairs: Sequence[tuple[int, RunResult]], bar, table) -> None:
    """The share of all runs done, and a row per prompt with its runs done so far."""
    total = len(suite.prompts) * plan.runs
    done = Counter(position for position, _ in pairs)
    bar.progress(len(pairs) / total, text=f"{len(pairs)} of {total} runs done" if pairs else
                 f"Sending {total} requests: {len(suite.prompts)} prompts × {plan.runs} runs…")
    table.dataframe(pd.DataFrame({"Prompt": [p.label for p in suite.prompts],
                                  "Runs done": [done[k] for k in range(len(suite.prompts))]}),
                    hide_index=True, width="stretch", column_config={"Runs done": st.column_config.ProgressColumn(
                        "Runs done", format=f"%d of {plan.runs}", min_value=0, max_value=plan.runs)})


def _number(name: str, label: str, value: str) -> str:
    return f'<span data-number="{name}"><small>{escape(label)}</small><b>{escape(value)}</b></span>'


def _share(name: str, label: str, share: Proportion, count: str) -> str:
    """A share as a number: its count, and its interval named by its confidence."""
    return _number(name, f"{label} ({share.confidence:.0%} interval)",
                   f"{count} · {share.low * 100:.1f}–{share.high * 100:.1f}%")


def _agreement(kind: str, meaning: str, share: Proportion | None, runs: int) -> tuple[str, str]:
    """The headline's part ("TARr@5 90%") and the number with its count and interval."""
    name = f"TAR{kind}@{runs}"
    if share is None:
        return f"{name} n/a", _number(f"tar{kind}", f"{name}: {meaning}", "n/a: no prompt had all its runs succeed")
    return f"{name} {share.value:.0%}", _share(f"tar{kind}", f"{name}: {meaning}", share,
                                               f"{share.count} of {share.total}")


def _accuracy(spread: AccuracySpread | None, runs: int) -> tuple[list[str], list[str]]:
    """The headline's part ("accuracy 78%") and the worst, pooled and best run's accuracy with their intervals."""
    if spread is None:
        return [], [_number("accuracy", "accuracy", "n/a: no prompt has an expected answer")]
    return [f"accuracy {spread.mean.value:.0%}"], [
        _share(f"accuracy-{name}", f"accuracy, {label}", share, f"{share.count}/{share.total} = {share.value:.0%}")
        for name, label, share in (("min", "worst run", spread.min), ("mean", f"all {runs} runs", spread.mean),
                                   ("max", "best run", spread.max))]


def made_by(run: SuiteRun) -> str:
    """The settings line under a suite's verdict: the backend, what every prompt was sent with, and the suite."""
    plan = run.plan
    sent = Params(plan.temperature, plan.top_p, plan.max_tokens, plan.seed, plan.runs, plan.concurrency)
    count = len(run.suite.prompts)
    return f"{parameters_line(sent, run.backend)} per prompt · {run.suite.name}: {count} prompt{'s' * (count != 1)}"


def verdict_html(run: SuiteRun, summary: SuiteSummary) -> str:
    """The overall line in large type (TARr@N, TARa@N, mean accuracy), then each with its interval, the accuracy of
    the worst and the best run, and the settings line; green only when every prompt reproduced byte for byte."""
    tarr_head, tarr = _agreement("r", "prompts whose outputs are all identical", summary.tarr, summary.runs)
    tara_head, tara = _agreement("a", "prompts whose answers are all identical", summary.tara, summary.runs)
    accuracy_head, accuracy = _accuracy(summary.accuracy, summary.runs)
    heads, numbers = [tarr_head, tara_head, *accuracy_head], [tarr, tara, *accuracy]
    tone = "rl-v-none" if summary.tarr is None else "rl-v-same" if summary.tarr.value == 1 else "rl-v-split"
    return (f'<div class="rl-verdict {tone}" data-suite-verdict><p class="rl-v-sentence">{escape(" · ".join(heads))}'
            f'</p><div class="rl-v-numbers">{"".join(numbers)}</div>'
            f'<p class="rl-v-made">{escape(made_by(run))}</p></div>')


def _agreed(flag: bool | None) -> str:
    """A prompt's TARr or TARa: unknown ("–") when some of its runs failed."""
    return "–" if flag is None else "yes" if flag else "no"


def _row(score: PromptScore) -> dict:
    fork = score.first_divergence_word
    return {"#": score.position + 1, "Prompt": score.label, "Runs ok": score.successful,
            "Outputs": score.unique_outputs, "Answers": score.unique_answers,
            "TARr": _agreed(score.tarr), "TARa": _agreed(score.tara),
            "Modal answer": score.modal_answer, "Expected": score.expected,
            "Accuracy": None if score.accuracy is None else round(score.accuracy * 100),
            "First divergence": None if fork is None else fork + 1}


def _prompt_table(summary: SuiteSummary, key: str) -> int | None:
    """The row per prompt (click a header to sort); returns the position of the prompt picked, if any."""
    column = st.column_config
    columns = {
        "#": column.NumberColumn("#", width=40),
        "Runs ok": column.NumberColumn("Runs ok", format=f"%d of {summary.runs}", width="small"),
        "Outputs": column.NumberColumn("Outputs", help="Distinct raw outputs.", width="small"),
        "Answers": column.NumberColumn("Answers", help="Distinct extracted answers.", width="small"),
        "TARr": column.TextColumn("TARr", help="All runs' raw outputs byte-identical (– when a run failed).",
                                  width=55),
        "TARa": column.TextColumn("TARa", help="All runs' extracted answers identical (– when a run failed).",
                                  width=55),
        "Accuracy": column.NumberColumn("Accuracy", format="%d%%", help="Runs whose answer is the expected one.",
                                        width="small"),
        "First divergence": column.NumberColumn("First divergence", format="word %d",
                                                help="None when every run is identical."),
    }
    picked = st.dataframe(pd.DataFrame([_row(score) for score in summary.prompts]), hide_index=True,
                          width="stretch", on_select="rerun", selection_mode="single-row", key=key,
                          column_config=columns)
    return picked.selection.rows[0] if picked.selection.rows else None


def _open_prompt(run: SuiteRun, position: int, key: str, stale: bool) -> None:
    prompt, results = run.suite.prompts[position], run.results[position]
    st.subheader(f"Prompt {position + 1}: {md(prompt.label)}")
    st.text(prompt.prompt)
    if results:
        show_results(results, key=f"{key}_prompt_{position}", made_by=f"{made_by(run)}, prompt {position + 1}",
                     stale=stale, request=run.plan.request(prompt))


def show_suite(run: SuiteRun, key: str, *, stale: bool = False) -> None:
    """The verdict, the table of prompts, and the runs of the prompt the visitor opens; dimmed when `stale`."""
    summary = run.summary()
    with stale_container(f"{key}_suite", stale):
        st.html(verdict_html(run, summary))
        st.caption("Pick a prompt in the table to open its runs and diff; click a column's header to sort by it.")
        chosen = _prompt_table(summary, key=f"{key}_prompts")
    if chosen is not None:
        _open_prompt(run, chosen, key, stale)
