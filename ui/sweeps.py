"""A sweep's results: identical rate and unique outputs against temperature (a line with a seed, one without), a
table of cells, and the diff view of the cell the visitor picks."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from core import CellSummary, SweepResult
from core.sweep import chart_rows  # not in core's public API
from ui.results import run_cards, show_results


def _chart(rows: list[dict], field: str, title: str, scale: alt.Scale | None = None) -> alt.Chart:
    # Cells with fewer than two successful runs have no identical rate: Vega-Lite leaves the null point out.
    return alt.Chart(pd.DataFrame(rows)).mark_line(point=alt.OverlayMarkDef(size=90)).encode(
        x=alt.X("temperature:Q", title="temperature"),
        y=alt.Y(f"{field}:Q", title=title, scale=scale or alt.Undefined),
        color=alt.Color("series:N", title=None),
        tooltip=["label", "successful", alt.Tooltip("identical_rate:Q", format=".0%"), "unique_outputs"],
    ).properties(height=300)


def _table(summaries: list[CellSummary], key: str) -> int | None:
    frame = pd.DataFrame([{
        "Cell": s.label, "Runs": f"{s.successful}/{s.runs}", "Unique": s.unique_outputs,
        "Identical rate": None if s.identical_rate is None else round(s.identical_rate * 100),
        "First divergence": "–" if s.first_divergence_word is None else f"word {s.first_divergence_word + 1}",
        "Mean similarity": None if s.mean_similarity is None else round(s.mean_similarity, 3),
    } for s in summaries])
    picked = st.dataframe(frame, hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row",
                          key=key, column_config={"Identical rate": st.column_config.ProgressColumn(
                              "Identical rate", format="%d%%", min_value=0, max_value=100)})
    return picked.selection.rows[0] if picked.selection.rows else None


def show_sweep(result: SweepResult, key: str) -> None:
    summaries = result.summaries()
    rows = chart_rows(summaries)
    charts = st.columns(2)
    charts[0].altair_chart(_chart(rows, "identical_rate", "identical rate", alt.Scale(domain=[0, 1])),
                           width="stretch")
    charts[1].altair_chart(_chart(rows, "unique_outputs", "unique outputs"), width="stretch")
    st.caption("Pick a cell in the table to open its runs and diff.")
    chosen = _table(summaries, key=f"{key}_cells")
    if chosen is not None:
        cell, runs = result.cells[chosen]
        st.subheader(cell.label)
        run_cards(runs)
        if runs:
            show_results(runs, key=f"{key}_cell_{chosen}")
