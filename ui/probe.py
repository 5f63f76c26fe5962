"""A probe's report card on a page: the one-line summary, large; the table of checks; the load chart (unique outputs
of the seeded request against the number of background requests in flight); the card as JSON and Markdown."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from core import ProbeReport, SkippedRung
from core.history import strict_json
from ui.html import md


def skipped_lines(skipped: tuple[SkippedRung, ...]) -> list[str]:
    return [f"K={s.background} is left out: {s.reason}." for s in skipped]


def show_summary(report: ProbeReport) -> None:
    """The verdict in one line, large enough to read from across a room."""
    tone = st.error if report.problems() else st.success
    tone(f"### {md(report.summary())}")


def _card(report: ProbeReport, key: str) -> None:
    frame = pd.DataFrame(report.rows(), columns=["Check", "Verdict", "Evidence"])
    st.dataframe(frame, hide_index=True, width="stretch", key=key)


def load_chart_rows(report: ProbeReport) -> list[dict]:
    return [{"K": rung.background, "unique outputs": rung.unique, "successful": rung.successful,
             "vs K=0": "changed" if rung.changed else "same"} for rung in report.load.rungs]


def _load_chart(report: ProbeReport) -> None:
    rows = load_chart_rows(report)
    if not rows:
        return
    chart = alt.Chart(pd.DataFrame(rows)).mark_line(point=alt.OverlayMarkDef(size=120)).encode(
        x=alt.X("K:Q", title="background requests in flight (K)"),
        y=alt.Y("unique outputs:Q", title="unique outputs of the seeded request", scale=alt.Scale(domainMin=0),
                axis=alt.Axis(tickMinStep=1)),
        color=alt.Color("vs K=0:N", title="vs K=0", scale=alt.Scale(domain=["same", "changed"],
                                                                    range=["#2e7d32", "#c62828"])),
        tooltip=["K", "unique outputs", "successful", "vs K=0"],
    ).properties(height=280)
    st.altair_chart(chart, width="stretch")


def show_report(report: ProbeReport, probe_id: str | None, key: str) -> None:
    """The whole report card: summary, table, load chart, and the card to download."""
    show_summary(report)
    _card(report, key=f"{key}_card")
    st.subheader("Load sensitivity")
    _load_chart(report)
    for line in skipped_lines(report.load.skipped):
        st.caption(md(line))
    exports = st.columns(2)
    name = f"probe-{probe_id or 'unsaved'}"
    exports[0].download_button("Report card as JSON", strict_json(report.to_dict(), indent=2), f"{name}.json",
                               mime="application/json", key=f"{key}_json")
    exports[1].download_button("Report card as Markdown", report.markdown(), f"{name}.md", mime="text/markdown",
                               key=f"{key}_markdown")
