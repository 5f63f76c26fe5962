"""The visitor's session: the gate, the backend (cached per configuration), the history, the quota and the sidebar
that chooses them; a Session admits, runs and sweeps, never sending what the endpoint's latest probe found rejected."""

from __future__ import annotations

import operator
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, replace

import streamlit as st
from streamlit.delta_generator import DeltaGenerator
from streamlit.runtime.pages_manager import PagesManager

from core import (LOCAL_MODES, AdaptedBackend, Backend, BatchPlan, Capabilities, Cell, Fanout, InvalidRequest, Limits,
                  Probe, ProbePlan, Recorder, Recording, ReproError, RunRequest, RunResult, Settings, SkippedRung,
                  Store, Suite, SuitePlan, SweepPlan, latest_report, load_settings, provider, read_access,
                  read_history, read_limits, read_sources, record_suite, run_probe, stream_suite)
from core.policy import QuotaLedger
from core.shared import Experiment, logged, prompts_opted_in
from ui.controls import Controls, Params, no_parameters, requests_in_flight
from ui.gate import require_access
from ui.html import STYLE, md
from ui.present import presentation_toggle
from ui.resources import app_secrets, backend_for, fanout_for, local_estimate, quota_for, store_for

NAVIGATED = "navigated"  # set by app.py once its st.navigation has run in this session
_RESULT = operator.itemgetter(1)  # a sweep's and a suite's items are (cell or prompt, result) pairs


@dataclass(frozen=True)
class Session:
    """The visitor's session as the sidebar set it up: the backend (None when it is misconfigured), the run
    parameters, limits, quota and the history; it admits, and runs batches, sweeps, suites and probes, each logged as
    one JSON line for `who`."""

    backend: Backend | None
    params: Params
    limits: Limits
    quota: QuotaLedger
    store: Store | None
    store_error: str | None
    fanout: Fanout
    who: str = ""
    log_prompts: bool = False  # REPRO_LOG_PROMPTS
    capabilities: Capabilities | None = None  # what the latest saved probe of the backend's endpoint says it rejects

    def admit(self, request: RunRequest, requests: int, *, batches: int = 1, sweep: bool = False) -> None:
        """Refuse what is over the limits or the visitor's hourly quota (InvalidRequest), else count it;
        `batches` of `requests` each are checked one batch at a time and counted together."""
        self.limits.check(request, requests, sweep=sweep)
        self.quota.take(requests * batches)

    def run(self, request: RunRequest, plan: BatchPlan, backend: Backend | None = None) -> Recording[RunResult]:
        """Send the batch (to the chosen backend, unless another is given) under the cap all sessions of this process
        share, saving each run to the history as it arrives; unsaved, with no experiment id, without a store."""
        backend = backend or self.backend
        recording = Recorder(self.fanout, self.store, self.store_error).batch(self._adapted(backend), request, plan)
        return recording.logged(self._event(recording, backend, request, plan.runs))

    def sweep(self, base: RunRequest, plan: SweepPlan) -> Recording[tuple[Cell, RunResult]]:
        """Run a sweep like `run` runs a batch: under the shared cap, saved as one history item when there is a store."""
        recorder = Recorder(self.fanout, self.store, self.store_error)
        recording = recorder.sweep(self._adapted(self.backend), base, plan)
        return recording.logged(self._event(recording, self.backend, base, plan.total_requests, "sweep"), _RESULT)

    def suite(self, suite: Suite, plan: SuitePlan) -> Recording[tuple[int, RunResult]]:
        """Run every prompt of `suite` plan.runs times like `run` runs a batch: under the shared cap, saved as one
        history item (kind "suite", a child experiment per prompt) when there is a store; each pair is the prompt's
        position and a result indexed within that prompt. Refused (InvalidRequest) when over the request cap."""
        plan.requests(suite)  # over the request cap: refused before the history keeps an empty item
        recording = Recorder(self.fanout, self.store, self.store_error).start(record_suite, stream_suite,
                                                                              self._adapted(self.backend), suite, plan)
        requests = len(suite.prompts) * plan.runs
        return recording.logged(self._event(recording, self.backend, None, requests, "suite"), _RESULT)

    def probe(self, plan: ProbePlan, skipped: tuple[SkippedRung, ...] = ()) -> Probe:
        """Probe the backend's own endpoint (nothing adapted) under the shared cap, logged as one JSON line (kind
        "probe") that counts every request the probe sent. The embedded engine decodes its load ladder in one batch,
        not as requests, so its line counts the requests before the ladder."""
        sent: list[RunResult] = []
        probes: list[Probe] = []
        hold = self.fanout.hold

        # Every attempt of the probe's runner passes here, the load's background requests too (the Probe keeps none).
        async def counted(attempt: Callable[[], Awaitable[RunResult]]) -> RunResult:
            result = await (hold(attempt) if hold else attempt())
            sent.append(result)
            return result

        def results() -> Iterator[RunResult]:
            probes.append(self.fanout.call(run_probe(self.backend, plan, skipped, hold=counted)))
            yield from sent

        planned = plan.fixed_requests if plan.in_batch else plan.total_requests
        list(logged(Experiment(self.who, self.backend.info, None, planned, kind="probe",
                               log_prompt=self.log_prompts), results()))
        return probes[0]

    def _adapted(self, backend: Backend) -> Backend:
        """`backend`, sending nothing its endpoint rejects when a probe of that very endpoint found something."""
        caps = self.capabilities
        if caps and caps.rejected and backend.info == caps.endpoint:
            return AdaptedBackend(backend, caps)
        return backend

    def _event(self, recording: Recording, backend: Backend, request: RunRequest | None, requests: int,
               kind: str = "experiment") -> Experiment:
        """What the events log says about `recording` once its results stop (core.shared.events)."""
        return Experiment(self.who, backend.info, request, requests, kind=kind, experiment_id=recording.experiment_id,
                          log_prompt=self.log_prompts)

    def estimate(self, request: RunRequest, runs: int) -> str:
        """“ · about 9 s on the embedded model”, to append to a cost line before a run, when the embedded model
        answers; else nothing."""
        seconds = local_estimate(self.backend, request, runs)
        return "" if seconds is None else f" · about {seconds:,.0f} s on the embedded model"

    def cost_line(self, requests: int, max_tokens: int) -> str:
        return f"{requests:,} requests, at most {requests * max_tokens:,} completion tokens · {self.quota_line()}"

    def quota_line(self) -> str:
        """“k of N requests left this hour”, for every page that shows the quota."""
        try:
            return f"{self.quota.remaining():,} of {self.quota.per_hour:,} requests left this hour"
        except InvalidRequest:  # the shared quota's database failed: a run now would be refused, and say why
            return "the requests left this hour cannot be counted right now"


def _backend_box(settings: Settings, backend: Backend) -> None:
    info = backend.info
    rows = [f"**{provider(info.provider).title}**",
            *(f"{label}: {md(value)}" for label, value in settings.providers[info.provider].describe())]
    st.markdown("  \n".join(rows))


def _test_connection(backend: Backend, quota: QuotaLedger, fanout: Fanout) -> None:
    probe = RunRequest(prompt="Reply with the single word OK.", temperature=0.0, max_tokens=3, seed=1)
    try:
        quota.take(1)
    except InvalidRequest as exc:
        st.error(md(exc))
        return
    [result] = fanout.runs(backend, probe, BatchPlan(1, 1))
    if result.ok:
        st.success(f"Connected: {md(result.model)} answered in {result.latency_ms:,.0f} ms "
                   f"(fingerprint {md(result.system_fingerprint or 'none')}).")
    else:
        st.error(f"{result.error.kind}: {md(result.error.message)}")


def _choose_backend(base: Settings, default: str) -> tuple[Settings, DeltaGenerator]:
    """The backend widgets; returns the chosen settings and the place, in Advanced, of the in-flight slider (drawn
    after the Parameters, whose runs its label counts)."""
    choices = _choices(base)
    chosen = st.selectbox("Answers come from", choices, index=choices.index(default), key="backend",
                          format_func=lambda name: provider(name).title)
    local_mode = base.providers["local"].mode
    if chosen == "local":
        local_mode = st.radio("Engine mode", list(LOCAL_MODES), key="local_mode", horizontal=True,
                              index=list(LOCAL_MODES).index(local_mode),
                              format_func={"deterministic": "Deterministic", "cache": "Reuse prompt cache"}.get)
        st.caption(LOCAL_MODES[local_mode])
    with st.expander("Advanced"):
        in_flight = st.container()
        timeout = st.number_input("Timeout per request (s)", 0.1, 600.0, float(base.timeout_s), step=5.0,
                                  key="timeout")
    return base.with_overrides(backend=chosen, local_mode=local_mode, timeout_s=timeout), in_flight


def _choices(base: Settings) -> list[str]:
    # An operator who names a backend (REPRO_BACKEND) chooses for the visitors too.
    return base.available() if base.backend == "auto" else [base.resolve()]


def _chosen(base: Settings) -> str:
    """The backend the visitor picked (its widget's state, kept from the last script run), else the configured one:
    known before the Parameters, drawn first, choose their defaults."""
    picked = st.session_state.get("backend")
    return picked if picked in _choices(base) else base.resolve()


def _capabilities(store: Store | None, backend: Backend | None) -> Capabilities | None:
    """What the newest saved probe of the backend's endpoint says it rejects; None without a store or such a probe."""
    if store is None or backend is None:
        return None
    try:
        found = latest_report(store, backend.info)
    except ReproError:  # a history that cannot be read now leaves the widgets as they are; the runs say what failed
        return None
    return Capabilities.of(found[1]) if found else None


def _operator_notes(base: Settings, chosen: str, gated: bool, store_error: str | None) -> None:
    """What the operator must know, folded away from the audience's first look, in one expander."""
    notes = [("info", "No remote backend is configured, so the embedded model answers, offline. "
                      "Set OPENAI_API_BASE, OPENAI_API_KEY, OPENAI_API_VERSION and OPENAI_API_DEPLOY "
                      "(in .env or Streamlit secrets) to use Azure OpenAI.")
             ] if chosen == "local" and base.backend == "auto" and len(base.available()) == 1 else []
    if provider(chosen).paid and not gated:
        notes.append(("warning", "This instance is open to anyone who can reach it, and it spends a paid backend. "
                                 "Set APP_PASSCODE or an [auth] section in the secrets to close it."))
    notes += [("warning", note) for note in base.notes()]
    if store_error:
        notes.append(("warning", md(store_error)))
    if notes:
        with st.expander(f"Operator notes ({len(notes)})"):
            for kind, text in notes:
                getattr(st, kind)(text)


def _leave_legacy_pages_mode() -> None:
    """Streamlit starts a process in its legacy pages/ mode and leaves it only once app.py calls st.navigation;
    so the first visitors after a restart who land on a page URL (a shared ?experiment= link) would get that
    page without app.py: no layout, no page titles. Leave the mode and run again, through app.py, once per session.

    The test is this session's own mark, not the process-wide mode: with visitors arriving at once, another
    session's app.py may leave the mode between the start of this run and this check. (AppTest re-enters the mode
    on every rerun of a session that did run app.py: its mark is set, so that needs nothing.)"""
    if NAVIGATED not in st.session_state:
        st.session_state[NAVIGATED] = False  # tried once: a page run without app.py is never sent round again
        PagesManager.uses_pages_directory = False
        st.rerun()


def session(controls: Controls = no_parameters) -> Session:
    """Render the access gate and the sidebar (the page's `controls`, then the backend, then the operator's notes);
    return the visitor's session. A page that sets its own parameters keeps the default: no parameter widgets."""
    _leave_legacy_pages_mode()
    secrets = app_secrets()
    source = read_sources(secrets)
    identity = require_access(secrets, source)
    gated = read_access(source, secrets).gated
    st.html(STYLE)  # once per script run, for every card and diff the page draws (the fragments carry none)
    presentation_toggle()
    store, store_error = store_for(source)
    with st.sidebar:
        backend, limits, base, chosen = None, Limits(), None, "local"
        try:
            limits = read_limits(source)
            base = load_settings(secrets=secrets)
            chosen = _chosen(base)
        except ReproError as exc:
            base = None
            st.error(md(exc))
        location = read_history(source)
        quota = quota_for(identity, limits.requests_per_hour, location)
        fanout = fanout_for(limits.global_concurrency, location)
        parameters = st.container()  # above the backend, drawn once its probe says what the endpoint rejects
        st.header("Backend")
        in_flight = None
        if base is not None:
            try:
                settings, in_flight = _choose_backend(base, chosen)
                backend = backend_for(settings)
                _backend_box(settings, backend)
                if st.button("Test connection", key="test_connection"):
                    with st.spinner("Sending one tiny request…"):
                        _test_connection(backend, quota, fanout)
            except ReproError as exc:
                st.error(md(exc))
            _operator_notes(base, chosen, gated, store_error)
        capabilities = _capabilities(store, backend)
        with parameters:
            params = controls(limits, chosen, capabilities)
        if in_flight is not None:
            with in_flight:
                runs = None if controls is no_parameters else params.runs
                params = replace(params, concurrency=requests_in_flight(limits, runs))
    return Session(backend, params, limits, quota, store, store_error, fanout, identity, prompts_opted_in(source),
                   capabilities)
