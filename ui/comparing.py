"""Two kept batches side by side: the layout the re-run's drift view and "Compare with…" share, and the comparison of
an opened batch with any other batch of the history (both verdicts, Fisher's exact test on their identical counts)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import fields

import streamlit as st

from core import Comparison, Experiment, ExperimentRow, RunRequest, Store
from ui.html import md
from ui.results import compared
from ui.sweeps import saved_made_by
from ui.verdict import contrast_line, verdict_block

FIELD_NAMES = {"system": "system prompt"}  # the request's field names, as the visitor reads them


def saved_at(item: Experiment | ExperimentRow) -> str:
    """The item's time as saved, to the second (UTC for runs made here; an import keeps its own offset)."""
    return item.created_at[:19].replace("T", " ")


def side_by_side(sides: Sequence[tuple[str, Experiment]],
                 show: Callable[[str, Experiment, Comparison], None]) -> list[tuple[str, Comparison]]:
    """A column per titled experiment, drawn by `show`; the titled comparisons, for contrast_line."""
    titled = [(title, compared(experiment.runs, f"side_{experiment.id}")) for title, experiment in sides]
    for column, (title, experiment), (_, comparison) in zip(st.columns(len(sides)), sides, titled):
        with column:
            show(title, experiment, comparison)
    return titled


def _listed(names: Sequence[str]) -> str:
    """"seed", "seed and backend", "prompt, seed and backend"."""
    return " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)


def differing_fields(a: Experiment, b: Experiment) -> list[str]:
    """What makes the two requests not the same one: the request's fields that differ, and the backend."""
    names = [FIELD_NAMES.get(f.name, f.name) for f in fields(RunRequest)
             if getattr(a.request, f.name) != getattr(b.request, f.name)]
    return names + ["backend"] * (a.backend != b.backend)


def choice_label(row: ExperimentRow) -> str:
    """How a batch is told apart in the list: when, its prompt, N, seed and temperature."""
    seed = "none" if row.seed is None else row.seed
    return (f"{saved_at(row)} · {row.prompt_preview} · N {row.runs_done} · seed {seed} · "
            f"T {row.temperature:g}")


def _verdict_side(title: str, experiment: Experiment, comparison: Comparison) -> None:
    made_by = saved_made_by(experiment.request, experiment.backend, len(experiment.runs))
    verdict_block(comparison, made_by, title=f"{title} · {saved_at(experiment)}")


def compare_with(store: Store, experiment: Experiment) -> None:
    """Pick any other batch of the history (B) to set beside this one (A): both verdicts and, two-sided, whether
    one is identical more often than the other beyond chance; a note when they are not the same request."""
    rows = {row.id: row for row in store.list(kind="experiment") if row.id != experiment.id}
    if not rows:
        return
    chosen = st.selectbox("Compare this experiment (A) with another (B)", list(rows), index=None,
                          format_func=lambda experiment_id: choice_label(rows[experiment_id]),
                          placeholder="Compare with…", key=f"history_compare_{experiment.id}")
    if chosen is None:
        return
    other = store.get(chosen)
    if other is None:
        st.info(f"The experiment {md(chosen)} is no longer in the history.")
        return
    differing = differing_fields(experiment, other)
    if differing:
        st.info(f"A and B are not the same request: they differ in {_listed(differing)}, and that alone can "
                "explain different outputs.")
    verdicts = side_by_side((("A", experiment), ("B", other)), _verdict_side)
    line = contrast_line(*verdicts, two_sided=True)
    if line:
        st.caption(md(line))
