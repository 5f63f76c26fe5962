"""What the process keeps across every visitor's session (st.cache_resource): backends per configuration, stores per
history location, fan-outs per cap, and the quotas — shared through PostgreSQL when DATABASE_URL is set."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict

import streamlit as st

from core import (Backend, Fanout, HistoryLocation, LocalBackend, ReproError, RunRequest, Settings, Store,
                  estimate_seconds, load_settings, make_backend, open_store, read_history)
from core.policy import QuotaLedger, Quotas
from core.shared import SharedQuota, SharedSlots, shared_database


def app_secrets() -> dict:
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
    return backend_for(load_settings(secrets=app_secrets()).with_overrides(backend="local", local_mode=mode))


def local_estimate(backend: Backend | None, request: RunRequest, runs: int) -> float | None:
    """Seconds the embedded model needs for `runs` runs of `request` (timed once per batch size, with a spinner);
    None for any other backend."""
    if not isinstance(backend, LocalBackend):
        return None
    with st.spinner("Timing the embedded model…", show_time=True):
        return estimate_seconds(backend, request, runs)


def backend_for(settings: Settings) -> Backend:
    key = hashlib.sha256(json.dumps(asdict(settings), sort_keys=True, default=str).encode()).hexdigest()
    return _cached_backend(key, settings)


@st.cache_resource(show_spinner=False)
def _cached_store(_location: HistoryLocation, masked: str) -> Store:
    """One store per location per process (each call borrows a connection of the process's pool, so sessions may
    share it); keyed by the masked location, so no password is kept as a cache key."""
    return open_store(_location)


def store_for(source: dict) -> tuple[Store | None, str | None]:
    location = read_history(source)
    try:
        return _cached_store(location, repr((location.masked_url, location.sqlite_path))), None
    except (ReproError, OSError) as exc:
        return None, f"The history is unavailable, so runs are not saved: {exc}"


@st.cache_resource(show_spinner=False)
def _fanout(process_limit: int) -> Fanout:
    """One fan-out per process and limit: every session's batches share its event loop and its cap on requests in
    flight (REPRO_GLOBAL_CONCURRENCY)."""
    return Fanout(process_limit)


@st.cache_resource(show_spinner=False)
def _shared_fanout(process_limit: int, _location: HistoryLocation, masked: str) -> Fanout:
    """One fan-out per process, limit and database: its cap is also the slots every replica shares; keyed by the
    masked URL, so no password is kept as a cache key."""
    return Fanout(process_limit, slots=SharedSlots(shared_database(_location.database_url), process_limit))


def fanout_for(limit: int, location: HistoryLocation) -> Fanout:
    """With DATABASE_URL, the fan-out whose cap holds across replicas; this process's own cap while the database
    cannot be reached (the history's note says why; the next script run tries again)."""
    if location.database_url:
        try:
            return _shared_fanout(limit, location, location.masked_url)
        except ReproError:
            pass
    return _fanout(limit)


@st.cache_resource
def _quotas() -> Quotas:
    """Every visitor's quota in this process (without DATABASE_URL, or while its database cannot be reached)."""
    return Quotas()


def quota_for(identity: str, per_hour: int, location: HistoryLocation) -> QuotaLedger:
    """With DATABASE_URL, the visitor's quota that every replica counts; this process's own while it is down."""
    if location.database_url:
        try:
            return SharedQuota(shared_database(location.database_url), identity, per_hour)
        except ReproError:
            pass
    return _quotas().for_visitor(identity, per_hour)
