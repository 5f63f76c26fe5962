"""The results view every page shares, once the runs are in: run cards, the headline, groups, the side-by-side diff,
the heatmap. (ui.live shows them while they arrive.)"""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import pandas as pd
import streamlit as st

from core import Comparison, RunResult, Summary, compare, diff, divergence_tree, fork_between, render_lines, token_strip
from ui.html import diff_columns, fork_table, legend, md, run_card, strip_html

CARDS_PER_ROW = 3


def card_slots(count: int, per_row: int) -> list:
    """An empty slot per card, `per_row` to a row."""
    slots = []
    for start in range(0, count, per_row):
        columns = st.columns(per_row)
        slots += [columns[k].empty() for k in range(min(per_row, count - start))]
    return slots


def run_cards(results: Sequence[RunResult], per_row: int = CARDS_PER_ROW) -> None:
    for slot, result in zip(card_slots(len(results), per_row), results):
        slot.html(run_card(result))


def nothing_sent(exc: Exception) -> None:
    """A refused request: the reason, which may quote what the visitor typed or imported, shown as plain text."""
    st.error(f"Nothing was sent: {md(exc)}")


def saved_caption(experiment_id: str | None, save_error: str | None) -> None:
    """Where the batch was saved, or why it was not (all of it, or from some run on)."""
    if save_error:
        st.warning(f"Not (all) saved to the history: {md(save_error)}")
    if experiment_id:
        st.caption(f"Saved to the history as `{experiment_id}` · [open it in History](history?experiment={experiment_id})")


def verdict(summary: Summary) -> str:
    """One sentence a projector audience reads at a glance."""
    if summary.note:
        return summary.note.capitalize() + "."
    if summary.all_identical:
        return f"All {summary.successful} runs are byte-identical."
    return f"{summary.unique_outputs} distinct outputs of {summary.successful}; {_where(summary)}."


def _where(summary: Summary) -> str:
    shared = summary.first_divergence_word
    if shared == 0:
        return "they differ from the first word"
    return f"they share the first {shared} word{'s' if shared != 1 else ''}, then part"


def divergence_label(summary: Summary) -> str:
    """The headline's value: the first word (counted from 1) at which some run leaves the modal output."""
    if summary.all_identical:
        return "all identical"
    if summary.first_divergence_word is None:
        return "–"
    return f"word {summary.first_divergence_word + 1}"


def headline(summary: Summary) -> None:
    columns = st.columns(5)
    columns[0].metric("Unique outputs", f"{summary.unique_outputs} / {summary.successful}")
    rate = "–" if summary.identical_rate is None else f"{summary.identical_rate:.0%}"
    columns[1].metric("Identical rate", rate, help="Runs that match the most common output.")
    columns[2].metric("First divergence", divergence_label(summary),
                      help="The first word at which some run leaves the most common output.")
    similarity = "–" if summary.mean_similarity is None else f"{summary.mean_similarity:.3f}"
    columns[3].metric("Mean similarity", similarity, help="Token-level Indel similarity, 1 = identical.")
    fingerprints = summary.fingerprints
    columns[4].metric("Fingerprints", str(len(fingerprints.counts)) + (" (mixed)" if fingerprints.mixed else ""),
                      help=f"Distinct system_fingerprint values; {fingerprints.missing} successful runs reported none.")
    if fingerprints.mixed:
        st.warning("This batch was served by several backend configurations: "
                   + ", ".join(f"{md(fp)} ×{n}" for fp, n in fingerprints.counts.items())
                   + ". Different fingerprints alone can explain different outputs.")
    if summary.errors:
        st.error(f"{summary.errors} of {summary.runs} runs failed; their cards say why. "
                 "They are left out of the statistics.")


def _groups(comparison: Comparison) -> None:
    rows = [{"Runs": ", ".join(str(i + 1) for i in g.run_indices), "Count": g.count,
             "Output": g.text[:160] + ("…" if len(g.text) > 160 else "")} for g in comparison.groups]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    if len(comparison.loose_groups) < len(comparison.groups):
        st.caption(f"Ignoring whitespace and case, there are {len(comparison.loose_groups)} distinct outputs.")


def _diff_picker(results: Sequence[RunResult], comparison: Comparison, key: str) -> None:
    ok = {r.index: r for r in results if r.ok}
    left_default, right_default = comparison.default_pair()
    options = list(ok)
    label = {i: f"Run {i + 1}" for i in options}
    pick = st.columns(2)
    left = pick[0].selectbox("Left", options, index=options.index(left_default), key=f"{key}_left",
                             format_func=label.get)
    right = pick[1].selectbox("Right", options, index=options.index(right_default), key=f"{key}_right",
                              format_func=label.get)
    a, b = ok[left].text or "", ok[right].text or ""
    if a == b:
        st.success(f"Run {left + 1} and run {right + 1} are byte-identical.")
    st.html(diff_columns(diff(a, b), f"Run {left + 1}", f"Run {right + 1}"))
    st.html(legend())
    _fork_view(ok[left], ok[right])


STRIP_BEFORE, STRIP_AFTER = 40, 12


def _fork_view(a: RunResult, b: RunResult) -> None:
    """With logprobs: what each run chose at the first token where they part, and how close the call was."""
    sides = fork_between(a, b)
    if sides is None:
        if a.text != b.text and not (a.logprobs and b.logprobs):
            st.caption("Ask for log-probabilities to see why these two runs part at their first fork.")
        return
    st.subheader("At the first fork")
    for column, side, run in zip(st.columns(2), sides, (a, b)):
        start = max(0, side.position - STRIP_BEFORE)
        column.html(fork_table(side))
        column.html(strip_html(token_strip(run)[start:side.position + STRIP_AFTER], side.position - start))
    st.caption("Tokens are shaded by their probability: the paler, the surer the model was. "
               "A near tie (top two within 10 points) is the usual reason a fixed seed still forks.")


def _heatmap(comparison: Comparison) -> None:
    runs = [f"Run {i + 1}" for i in comparison.matrix_runs]
    cells = pd.DataFrame([{"a": runs[i], "b": runs[j], "similarity": value}
                          for i, row in enumerate(comparison.matrix) for j, value in enumerate(row)])
    chart = alt.Chart(cells).mark_rect().encode(
        x=alt.X("a:N", sort=runs, title=None), y=alt.Y("b:N", sort=runs, title=None),
        color=alt.Color("similarity:Q", scale=alt.Scale(domain=[min(0.5, float(cells.similarity.min())), 1],
                                                         scheme="orangered", reverse=True)),
        tooltip=["a", "b", alt.Tooltip("similarity:Q", format=".3f")],
    ).properties(height=min(60 + 28 * len(runs), 520))
    st.altair_chart(chart, width="stretch")


def show_results(results: Sequence[RunResult], key: str) -> Comparison:
    """Everything below the cards: headline, verdict, groups, diff of two runs, similarity heatmap."""
    comparison = compare(results)
    summary = comparison.summary
    headline(summary)
    if summary.all_identical:
        st.success(verdict(summary) + " Same seed, same parameters, same answer: reproducible.")
    else:
        st.info(verdict(summary))
    if summary.successful < 2:
        return comparison
    with st.expander(f"Groups of identical outputs ({len(comparison.groups)})", expanded=not summary.all_identical):
        _groups(comparison)
    st.subheader("Side by side")
    _diff_picker(results, comparison, key)
    if not summary.all_identical:
        with st.expander("Divergence tree: the prefixes the runs share, and where they split"):
            st.code("\n".join(render_lines(divergence_tree(results))), language=None)
    if summary.successful > 2 and not summary.all_identical:
        st.subheader("Similarity between runs")
        _heatmap(comparison)
    return comparison
