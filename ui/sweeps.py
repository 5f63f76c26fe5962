"""A sweep's results: identical pairs and unique outputs against temperature (a line per seed setting, in colours
that stay put), a table of cells, and the diff view of the cell the visitor picks."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import altair as alt
import pandas as pd
import streamlit as st

from core import BackendInfo, CellSummary, RunRequest, SweepResult
from core.sweep import chart_rows
from ui.controls import Params, made_by
from ui.html import PALETTE
from ui.results import show_results

# The group badges' Okabe–Ito fills, told apart with every common colour-vision deficiency; these five are at least
# 3:1 against both themes' backgrounds (sky and yellow are not on white), and a series keeps its colour in either.
BLUE, ORANGE, GREEN, PURPLE, _SKY, VERMILLION, _YELLOW = (fill for fill, _ in PALETTE)
SEEDED_COLOURS = (BLUE, GREEN, PURPLE, ORANGE)
UNSEEDED_COLOUR = VERMILLION
UNSEEDED_DASH = (6, 4)  # and a dashed line, so the two series differ without colour too
SOLID = (1, 0)
LEGEND = alt.Legend(symbolType="stroke", symbolStrokeWidth=3, symbolSize=400)


def series_colours(summaries: Sequence[CellSummary]) -> dict[str, str]:
    """Each series' colour: no seed always vermillion, the seeds blue, green, purple, orange in the order given."""
    seeded = itertools.cycle(SEEDED_COLOURS)
    series = {s.series: s.seed is None for s in summaries}
    return {name: UNSEEDED_COLOUR if unseeded else next(seeded) for name, unseeded in series.items()}


def _chart(rows: list[dict], field: str, title: str, summaries: Sequence[CellSummary], *,
           share: bool = False) -> alt.Chart:
    # Cells with fewer than two successful runs have no share of identical pairs: Vega-Lite leaves the null point out.
    colours = series_colours(summaries)
    unseeded = {s.series for s in summaries if s.seed is None}
    dashes = [list(UNSEEDED_DASH if name in unseeded else SOLID) for name in colours]
    y_scale = alt.Scale(domain=[0, 1]) if share else alt.Undefined
    return alt.Chart(pd.DataFrame(rows)).mark_line(point=alt.OverlayMarkDef(size=90), strokeWidth=3).encode(
        x=alt.X("temperature:Q", title="temperature"),
        y=alt.Y(f"{field}:Q", title=title, scale=y_scale, axis=alt.Axis(format=".0%") if share else alt.Undefined),
        # One title and legend for both channels, so Vega-Lite draws one legend of coloured, dashed or solid lines.
        color=alt.Color("series:N", title="Seed", legend=LEGEND,
                        scale=alt.Scale(domain=list(colours), range=list(colours.values()))),
        strokeDash=alt.StrokeDash("series:N", title="Seed", legend=LEGEND,
                                  scale=alt.Scale(domain=list(colours), range=dashes)),
        tooltip=["label", "successful", alt.Tooltip("pairwise_agreement:Q", title="identical pairs", format=".0%"),
                 "unique_outputs"],
    ).properties(height=300)


def sweep_charts(summaries: Sequence[CellSummary]) -> None:
    """The two charts side by side; a cell with no runs yet is a gap that fills in when they arrive."""
    rows = chart_rows(summaries)
    charts = st.columns(2)
    charts[0].altair_chart(_chart(rows, "pairwise_agreement", "identical pairs", summaries, share=True),
                           width="stretch")
    charts[1].altair_chart(_chart(rows, "unique_outputs", "unique outputs", summaries), width="stretch")
    st.caption("Identical pairs: the share of pairs of runs in a cell whose answers are byte-identical; "
               "0 % when every run differs, 100 % when all agree.")


def _table(summaries: list[CellSummary], key: str) -> int | None:
    frame = pd.DataFrame([{
        "Cell": s.label, "Runs": f"{s.successful}/{s.runs}", "Unique": s.unique_outputs,
        "Identical pairs": None if s.pairwise_agreement is None else round(s.pairwise_agreement * 100),
        "First divergence": "–" if s.first_divergence_word is None else f"word {s.first_divergence_word + 1}",
        "Mean similarity": None if s.mean_similarity is None else round(s.mean_similarity, 3),
    } for s in summaries])
    picked = st.dataframe(frame, hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row",
                          key=key, column_config={"Identical pairs": st.column_config.ProgressColumn(
                              "Identical pairs", format="%d%%", min_value=0, max_value=100)})
    return picked.selection.rows[0] if picked.selection.rows else None


def saved_made_by(request: RunRequest, backend: BackendInfo, runs: int) -> str:
    """The parameters line of runs already made (a sweep's cell, a kept experiment), read from their request."""
    return made_by(Params(request.temperature, request.top_p, request.max_tokens, request.seed, runs, 1), backend)


def show_sweep(result: SweepResult, backend: BackendInfo, key: str) -> None:
    """The charts, the table of cells and the picked cell's results; `backend` is the one that answered."""
    summaries = result.summaries()
    sweep_charts(summaries)
    st.caption("Pick a cell in the table to open its runs and diff.")
    chosen = _table(summaries, key=f"{key}_cells")
    if chosen is not None:
        cell, runs = result.cells[chosen]
        st.subheader(cell.label)
        if runs:
            show_results(runs, key=f"{key}_cell_{chosen}", made_by=saved_made_by(cell.request, backend, len(runs)),
                         request=cell.request)
