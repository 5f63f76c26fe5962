"""The visitor's session: the gate, the backend (cached per configuration), the history, the quota and the sidebar
that chooses them; a Session admits, runs and sweeps."""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import asdict, dataclass

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

from core import (LOCAL_MODES, Backend, BatchPlan, Cell, HistoryLocation, InvalidRequest, Limits, LocalBackend, Quota,
                  Recorder, Recording, ReproError, RunRequest, RunResult, Settings, Store, SweepPlan, load_settings,
                  make_backend, open_store, provider, read_access, read_history, read_limits, read_sources,
                  stream_runs)
from ui.controls import Params, parameters
from ui.gate import require_access
from ui.html import STYLE, md

NAVIGATED = "navigated"  # set by app.py once its st.navigation has run in this session


@dataclass(frozen=True)
class Session:
    """The visitor's session as the sidebar set it up: the backend (None when it is misconfigured), the run
    parameters, limits, quota and the history; it admits, runs and sweeps."""

    backend: Backend | None
    params: Params
    limits: Limits
    quota: Quota
    store: Store | None
    store_error: str | None

    def admit(self, request: RunRequest, requests: int, *, batches: int = 1, sweep: bool = False) -> None:
        """Refuse what is over the limits or the visitor's hourly quota (InvalidRequest), else count it;
        `batches` of `requests` each are checked one batch at a time and counted together."""
        self.limits.check(request, requests, sweep=sweep)
        self.quota.take(requests * batches)

    def run(self, request: RunRequest, plan: BatchPlan, backend: Backend | None = None) -> Recording[RunResult]:
        """Send the batch (to the chosen backend, unless another is given) under the cap all sessions of this process
        share, saving each run to the history as it arrives; unsaved, with no experiment id, without a store."""
        backend, limit = backend or self.backend, self.limits.global_concurrency
        return Recorder(self.store, self.store_error).batch(backend, request, plan, process_limit=limit)

    def sweep(self, base: RunRequest, plan: SweepPlan) -> Recording[tuple[Cell, RunResult]]:
        """Run a sweep like `run` runs a batch: under the shared cap, saved as one history item when there is a store."""
        return Recorder(self.store, self.store_error).sweep(self.backend, base, plan,
                                                            process_limit=self.limits.global_concurrency)

    def cost_line(self, requests: int, max_tokens: int) -> str:
        return (f"{requests} requests, at most {requests * max_tokens:,} completion tokens · "
                f"{self.quota.remaining()} of {self.quota.per_hour} requests left this hour")


def _secrets() -> dict:
    try:
        return st.secrets.to_dict()
    except (FileNotFoundError, st.errors.StreamlitSecretNotFoundError):
        return {}


@st.cache_resource(show_spinner="Preparing the backend (the embedded model loads once)…")
def _cached_backend(key: str, _settings: Settings) -> Backend:
    """One backend per distinct configuration per process: the local model loads once, SDK clients keep
    their connections. `key` is a hash of the settings, so no secret is kept as a cache key."""
    backend = make_backend(_settings)
    if isinstance(backend, LocalBackend):
        backend.load()  # now, so that the first run's latency is the model's, not the loading's
    return backend


def local_backend(mode: str) -> LocalBackend:
    """The embedded model in `mode`, loaded once per process like every other backend."""
    return _backend_for(load_settings(secrets=_secrets()).with_overrides(backend="local", local_mode=mode))


def _backend_for(settings: Settings) -> Backend:
    key = hashlib.sha256(json.dumps(asdict(settings), sort_keys=True, default=str).encode()).hexdigest()
    return _cached_backend(key, settings)


@st.cache_resource(show_spinner=False)
def _cached_store(_location: HistoryLocation, masked: str) -> Store:
    """One store per location per process (it opens a connection per call, so sessions may share it); keyed by
    the masked location, so no password is kept as a cache key."""
    return open_store(_location)


def _store(source: dict) -> tuple[Store | None, str | None]:
    location = read_history(source)
    try:
        return _cached_store(location, repr((location.masked_url, location.sqlite_path))), None
    except (ReproError, OSError) as exc:
        return None, f"The history is unavailable, so runs are not saved: {exc}"


@st.cache_resource
def _quotas() -> tuple[dict[str, Quota], threading.Lock]:
    """Every visitor's quota in this process, by identity (a signed-in user keeps theirs across sessions)."""
    return {}, threading.Lock()


def _quota_for(identity: str, per_hour: int) -> Quota:
    quotas, lock = _quotas()
    with lock:
        quota = quotas.get(identity)
        if quota is None or quota.per_hour != per_hour:
            quota = quotas[identity] = Quota(per_hour)
        return quota


def _backend_box(settings: Settings, backend: Backend) -> None:
    info = backend.info
    rows = [f"**{provider(info.provider).title}**",
            *(f"{label}: {md(value)}" for label, value in settings.providers[info.provider].describe())]
    st.markdown("  \n".join(rows))


def _test_connection(backend: Backend, limits: Limits, quota: Quota) -> None:
    probe = RunRequest(prompt="Reply with the single word OK.", temperature=0.0, max_tokens=3, seed=1)
    try:
        quota.take(1)
    except InvalidRequest as exc:
        st.error(md(exc))
        return
    [result] = stream_runs(backend, probe, BatchPlan(1, 1), process_limit=limits.global_concurrency)
    if result.ok:
        st.success(f"Connected: {md(result.model)} answered in {result.latency_ms:,.0f} ms "
                   f"(fingerprint {md(result.system_fingerprint or 'none')}).")
    else:
        st.error(f"{result.error.kind}: {md(result.error.message)}")


def _choose_backend(base: Settings, gated: bool) -> tuple[Settings, int]:
    """The backend widgets; returns the chosen settings and the per-batch concurrency."""
    # An operator who names a backend (REPRO_BACKEND) chooses for the visitors too.
    choices = base.available() if base.backend == "auto" else [base.resolve()]
    default = choices.index(base.resolve())
    chosen = st.selectbox("Answers come from", choices, index=default, key="backend",
                          format_func=lambda name: provider(name).title)
    local_mode = base.providers["local"].mode
    if chosen == "local":
        local_mode = st.radio("Engine mode", list(LOCAL_MODES), key="local_mode", horizontal=True,
                              index=list(LOCAL_MODES).index(local_mode),
                              format_func={"deterministic": "Deterministic", "cache": "Reuse prompt cache"}.get)
        st.caption(LOCAL_MODES[local_mode])
    with st.expander("Advanced"):
        concurrency = st.slider("Requests in flight at once", 1, 50, 10, key="concurrency")
        timeout = st.number_input("Timeout per request (s)", 0.1, 600.0, float(base.timeout_s), step=5.0,
                                  key="timeout")
    if chosen == "local" and base.backend == "auto" and len(choices) == 1:
        st.info("No remote backend is configured, so the embedded model answers, offline. "
                "Set OPENAI_API_BASE, OPENAI_API_KEY, OPENAI_API_VERSION and OPENAI_API_DEPLOY "
                "(in .env or Streamlit secrets) to use Azure OpenAI.")
    if provider(chosen).paid and not gated:
        st.warning("This instance is open to anyone who can reach it, and it spends a paid backend. "
                   "Set APP_PASSCODE or an [auth] section in the secrets to close it.")
    for note in base.notes():
        st.warning(note)
    return base.with_overrides(backend=chosen, local_mode=local_mode, timeout_s=timeout), concurrency


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


def session() -> Session:
    """Render the access gate and the sidebar; return the visitor's session."""
    _leave_legacy_pages_mode()
    secrets = _secrets()
    source = read_sources(secrets)
    identity = require_access(secrets, source)
    gated = read_access(source, secrets).gated
    st.html(STYLE)  # once per script run, for every card and diff the page draws (the fragments carry none)
    with st.sidebar:
        st.header("Backend")
        backend, concurrency, limits = None, 10, Limits()
        try:
            limits = read_limits(source)
            quota = _quota_for(identity, limits.requests_per_hour)
            settings, concurrency = _choose_backend(load_settings(secrets=secrets), gated)
            backend = _backend_for(settings)
            _backend_box(settings, backend)
            if st.button("Test connection", key="test_connection"):
                with st.spinner("Sending one tiny request…"):
                    _test_connection(backend, limits, quota)
        except ReproError as exc:
            st.error(md(exc))

        params = parameters(limits, concurrency)
    store, store_error = _store(source)
    if store_error:
        st.sidebar.warning(md(store_error))
    return Session(backend, params, limits, _quota_for(identity, limits.requests_per_hour), store, store_error)
