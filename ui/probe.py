"""A probe's report card on a page: the one-line summary, large; the table of checks; the load chart (unique outputs
of the seeded request against the number of background requests in flight, one line per load variant); the card as
JSON and Markdown."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from core import ProbeReport, SkippedRung
from core.history import strict_json
from ui.html import PALETTE, md

ENDPOINT = "endpoint"  # the chart's name for the one load finding of a server, which has no variant
CHANGE_SHAPES = {"same": "circle", "changed": "triangle-up"}


def skipped_lines(skipped: tuple[SkippedRung, ...], variant: str = "") -> list[str]:
    lead = f"{variant}: " if variant else ""
    return [f"{lead}K={s.background} is left out: {s.reason}." for s in skipped]


def show_summary(report: ProbeReport) -> None:
    """The verdict in one line, large enough to read from across a room."""
    tone = st.error if report.problems() else st.success
    tone(f"### {md(report.summary())}")


def _card(report: ProbeReport, key: str) -> None:
    frame = pd.DataFrame(report.rows(), columns=["Check", "Verdict", "Evidence"])
    st.dataframe(frame, hide_index=True, width="stretch", key=key)


def load_chart_rows(report: ProbeReport) -> list[dict]:
    """One row per rung of each load finding; "vs reference" compares with K=0, or with R alone in a batch."""
    return [{"variant": load.variant or ENDPOINT, "K": rung.background, "unique outputs": rung.unique,
             "successful": rung.successful, "vs reference": "changed" if rung.changed else "same"}
            for load in report.loads for rung in load.rungs]


def _load_chart(report: ProbeReport) -> None:
    rows = load_chart_rows(report)
    if not rows:
        return
    # Colours by position in report.loads, which is fixed: isolated cells first, the shared-cells control second.
    variants = [load.variant or ENDPOINT for load in report.loads]
    colour = alt.Color("variant:N", title="variant", sort=variants,
                       scale=alt.Scale(domain=variants, range=[fill for fill, _ in PALETTE[:len(variants)]]))
    base = alt.Chart(pd.DataFrame(rows)).encode(
        x=alt.X("K:Q", title="background requests in flight (K)"),
        y=alt.Y("unique outputs:Q", title="unique outputs of the seeded request", scale=alt.Scale(domainMin=0),
                axis=alt.Axis(tickMinStep=1)),
        color=colour,
        tooltip=["variant", "K", "unique outputs", "successful", "vs reference"],
    )
    points = base.mark_point(size=120, filled=True).encode(
        shape=alt.Shape("vs reference:N", title="vs K=0 or R alone",
                        scale=alt.Scale(domain=list(CHANGE_SHAPES), range=list(CHANGE_SHAPES.values()))))
    st.altair_chart((base.mark_line() + points).properties(height=280), width="stretch")


def show_report(report: ProbeReport, probe_id: str | None, key: str) -> None:
    """The whole report card: summary, table, load chart, and the card to download."""
    show_summary(report)
    _card(report, key=f"{key}_card")
    st.subheader("Load sensitivity")
    for load in report.loads:
        st.markdown(f"**{md(load.verdict_line)}**")
    _load_chart(report)
    for load in report.loads:
        for line in skipped_lines(load.skipped, load.variant):
            st.caption(md(line))
    exports = st.columns(2)
    name = f"probe-{probe_id or 'unsaved'}"
    exports[0].download_button("Report card as JSON", strict_json(report.to_dict(), indent=2), f"{name}.json",
                               mime="application/json", key=f"{key}_json")
    exports[1].download_button("Report card as Markdown", report.markdown(), f"{name}.md", mime="text/markdown",
                               key=f"{key}_markdown")
