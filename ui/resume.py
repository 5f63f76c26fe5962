"""A batch that outlives its tab: while it runs, its experiment ids ride in the page's URL (?batch=), so the new
session a reload starts (the old one's job cancelled with it) finds them and points to the incomplete experiment in
History, where every run that arrived was saved."""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

from core import Experiment, ReproError, Store

PARAM = "batch"
_OWN = "resume_own_ids"  # the ids this session put in the URL: its own batch, never "interrupted"
_CHECKED = "resume_checked"  # (ids, notice or None): the history is asked once per session and set of ids
_DRAWN = "resume_drawn"  # where this script run drew the notice: a click further down the page takes it away


def keep_in_url(experiment_ids: Sequence[str]) -> None:
    """Name the running batch's experiments in the URL, where a reload of the tab finds them."""
    st.session_state[_OWN] = set(experiment_ids)
    st.query_params[PARAM] = list(experiment_ids)


def forget() -> None:
    """The visitor starts another batch: the last one is no longer theirs to resume."""
    st.query_params.pop(PARAM, None)
    if drawn := st.session_state.pop(_DRAWN, None):
        drawn.empty()


def interrupted_notice(experiments: Sequence[Experiment]) -> str | None:
    """“Your last batch was interrupted after k of N runs …” with a link per experiment; None when all completed."""
    if not experiments or all(experiment.complete for experiment in experiments):
        return None
    done, planned = sum(len(e.runs) for e in experiments), sum(e.runs_planned for e in experiments)
    links = [f"history?experiment={experiment.id}" for experiment in experiments]
    where = (f"[open it in History]({links[0]})" if len(links) == 1 else
             "open them in History: " + " · ".join(f"[part {k}]({link})" for k, link in enumerate(links, 1)))
    return f"Your last batch was interrupted after {done} of {planned} runs — {where}."


def show_interrupted(store: Store | None) -> None:
    """The notice for a batch this tab lost to a reload, named by the URL; nothing for the session's own batch."""
    st.session_state.pop(_DRAWN, None)
    ids = tuple(st.query_params.get_all(PARAM))
    if not ids or store is None or set(ids) <= st.session_state.get(_OWN, set()):
        return
    checked = st.session_state.get(_CHECKED)
    if checked is None or checked[0] != ids:
        checked = st.session_state[_CHECKED] = (ids, _notice(store, ids))
    if checked[1]:
        st.session_state[_DRAWN] = st.empty()
        st.session_state[_DRAWN].warning(checked[1], icon=":material/history:")


def _notice(store: Store, ids: Sequence[str]) -> str | None:
    try:
        return interrupted_notice([experiment for experiment in map(store.get, ids) if experiment is not None])
    except ReproError:  # the history cannot be read now: the page says so elsewhere, and nothing can be reopened
        return None
