"""The results view every page shares, once the runs are in: the verdict block, the run cards by group, the groups,
the side-by-side diff, why the runs fork, the divergence tree and the heatmap. (ui.live shows the runs as they arrive.)
"""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import pandas as pd
import streamlit as st

from core import (MATRIX_MAX_RUNS, Comparison, RunRequest, RunResult, compare, diff, divergence_tree,
                  fork_between, fork_causes, render_lines, token_strip)
from ui.groups import causes_list, group_cards, groups_table, lettered_groups, open_card, runs_in_group_order
from ui.html import diff_columns, fork_table, group_colours, legend, md, run_card, strip_html
from ui.verdict import stale_container, verdict_block

CARDS_PER_ROW = 3
GRID_ABOVE = 12  # more runs than this: the group cards that fit two rows, then a compact grid of every run
COMPARISONS_KEPT = 4  # a page shows at most a few results views at once (two scenarios, a suite's prompt)
_COMPARED = "results_compared"
HEATMAP_MAX = MATRIX_MAX_RUNS  # runs (then groups) in the heatmap: N² cells of a larger batch would weigh on the browser


def card_slots(count: int, per_row: int) -> list:
    """An empty slot per card, `per_row` to a row."""
    slots = []
    for start in range(0, count, per_row):
        columns = st.columns(per_row)
        slots += [columns[k].empty() for k in range(min(per_row, count - start))]
    return slots


def _show_cards(cards: Sequence[str], per_row: int) -> None:
    for slot, markup in zip(card_slots(len(cards), per_row), cards):
        slot.html(markup)


def run_cards(results: Sequence[RunResult], comparison: Comparison | None = None, per_row: int = CARDS_PER_ROW, *,
              key: str = "cards") -> None:
    """A card per run; with a comparison, a stacked card per group ("A ×22") and the failed runs' cards, and above
    GRID_ABOVE runs only the group cards of two rows, then a grid of all runs (its widget keyed `key`_grid)."""
    if comparison is None:
        _show_cards([run_card(result) for result in results], per_row)
        return
    stacks = group_cards(results, comparison)
    if len(results) <= GRID_ABOVE:
        _show_cards(stacks + [run_card(result) for result in results if not result.ok], per_row)
        return
    _show_cards(stacks[: 2 * per_row], per_row)
    if len(stacks) > 2 * per_row:
        st.caption(f"{len(stacks) - 2 * per_row} more groups: their runs are in the table below.")
    _run_grid(results, comparison, key)


def grid_frame(results: Sequence[RunResult], comparison: Comparison) -> pd.DataFrame:
    """A row per run in run order: its group letter ("failed" for a failed run), latency, fingerprint, tokens."""
    return pd.DataFrame([{
        "Run": result.index + 1, "Group": comparison.letter(result.index) or "failed",
        "Latency (ms)": round(result.latency_ms),
        "Fingerprint": result.system_fingerprint or "–",
        "Tokens": result.usage.completion_tokens if result.usage else None,
        "Finish": (result.finish_reason or "?") if result.ok else f"failed: {result.error.kind}",
    } for result in sorted(results, key=lambda result: result.index)])


def _badge_cell(letter: str) -> str:
    if letter == "failed":
        return "color:rgb(229,72,77);font-weight:700"
    fill, ink = group_colours(letter)
    return f"background-color:{fill};color:{ink};font-weight:700"


def _run_grid(results: Sequence[RunResult], comparison: Comparison, key: str) -> None:
    """Every run in a row; picking one opens its card beside the grid."""
    frame = grid_frame(results, comparison)
    grid, opened = st.columns([2, 3])
    picked = grid.dataframe(frame.style.map(_badge_cell, subset=["Group"]), hide_index=True, width="content",
                            on_select="rerun", selection_mode="single-row", key=f"{key}_grid")
    if picked.selection.rows:
        by_number = {result.index + 1: result for result in results}
        opened.html(open_card(by_number[int(frame.Run[picked.selection.rows[0]])], comparison))
    else:
        opened.caption(f"All {len(results)} runs, by group letter. Pick a run to open it here.")


def nothing_sent(exc: Exception) -> None:
    """A refused request: the reason, which may quote what the visitor typed or imported, shown as plain text."""
    st.error(f"Nothing was sent: {md(exc)}")


def saved_caption(experiment_id: str | None, save_error: str | None) -> None:
    """Where the batch was saved, or why it was not (all of it, or from some run on)."""
    if save_error:
        st.warning(f"Not (all) saved to the history: {md(save_error)}")
    if experiment_id:
        st.caption(f"Saved to the history as `{experiment_id}` · [open it in History](history?experiment={experiment_id})")


def _groups(comparison: Comparison) -> None:
    st.html(groups_table(comparison))
    if len(comparison.loose_groups) < len(comparison.groups):
        st.caption(f"Ignoring whitespace and case, there are {len(comparison.loose_groups)} distinct outputs.")


def _diff_picker(results: Sequence[RunResult], comparison: Comparison, key: str) -> tuple[RunResult, RunResult]:
    """Two runs side by side, by default the modal answer and the run least like it; returns the two."""
    ok = {r.index: r for r in results if r.ok}
    left_default, right_default = comparison.default_pair()
    options = [run for _, run in runs_in_group_order(comparison)]
    label = {run: f"Run {run + 1} · {letter}" for letter, run in runs_in_group_order(comparison)}
    pick = st.columns(2)
    left = pick[0].selectbox("Left", options, index=options.index(left_default), key=f"{key}_left",
                             format_func=label.get)
    right = pick[1].selectbox("Right", options, index=options.index(right_default), key=f"{key}_right",
                              format_func=label.get)
    a, b = ok[left].text or "", ok[right].text or ""
    if a == b:
        st.success(f"Run {left + 1} and run {right + 1} are byte-identical.")
    st.html(diff_columns(diff(a, b), label[left], label[right]))
    st.html(legend())
    return ok[left], ok[right]


STRIP_BEFORE, STRIP_AFTER = 40, 12


def _why(results: Sequence[RunResult], comparison: Comparison, request: RunRequest | None) -> None:
    """A line per group that parts from A: its likely cause and the evidence."""
    st.subheader("Why they fork")
    if request is None:
        st.caption("The request that made these runs is not known here, so their fork causes are not either.")
        return
    st.html(causes_list(fork_causes(results, request), comparison))


def _fork_view(a: RunResult, b: RunResult) -> None:
    """With logprobs: what each run chose at the first token where they part, and how close the call was."""
    sides = fork_between(a, b)
    if sides is None:
        if a.text != b.text and not (a.logprobs and b.logprobs):
            st.caption("Ask for log-probabilities to see what these two runs chose at their first fork.")
        return
    st.markdown(f"**At the first fork of run {a.index + 1} and run {b.index + 1}**")
    for column, side, run in zip(st.columns(2), sides, (a, b)):
        start = max(0, side.position - STRIP_BEFORE)
        column.html(fork_table(side))
        column.html(strip_html(token_strip(run)[start:side.position + STRIP_AFTER], side.position - start))
    st.caption("Tokens are shaded by their probability: the paler, the surer the model was. "
               "A near tie (top two within 10 points) is the usual reason a fixed seed still forks.")


def heatmap_cells(comparison: Comparison) -> tuple[pd.DataFrame, list[str]]:
    """The similarity of every pair of runs in group order (A's runs first), so groups read as blocks; above
    HEATMAP_MAX runs, of every pair of groups (the HEATMAP_MAX largest). Returns the cells and the axis order."""
    if len(comparison.matrix_runs) > HEATMAP_MAX:
        shown = lettered_groups(comparison)[:HEATMAP_MAX]
        labels = [f"{letter} ×{group.count}" for letter, group in shown]
        matrix = [row[: len(shown)] for row in comparison.group_matrix[: len(shown)]]
    else:
        ordered = runs_in_group_order(comparison)
        labels = [f"{letter} · run {run + 1}" for letter, run in ordered]
        position = {run: k for k, run in enumerate(comparison.matrix_runs)}
        matrix = [[comparison.matrix[position[a]][position[b]] for _, b in ordered] for _, a in ordered]
    cells = pd.DataFrame([{"a": labels[i], "b": labels[j], "similarity": value}
                          for i, row in enumerate(matrix) for j, value in enumerate(row)])
    return cells, labels


def _heatmap(comparison: Comparison) -> None:
    cells, labels = heatmap_cells(comparison)
    chart = alt.Chart(cells).mark_rect().encode(
        x=alt.X("a:N", sort=labels, title=None), y=alt.Y("b:N", sort=labels, title=None),
        color=alt.Color("similarity:Q", scale=alt.Scale(domain=[min(0.5, float(cells.similarity.min())), 1],
                                                         scheme="orangered", reverse=True)),
        tooltip=["a", "b", alt.Tooltip("similarity:Q", format=".3f")],
    ).properties(height=min(60 + 28 * len(labels), 520))
    st.altair_chart(chart, width="stretch")
    if len(comparison.matrix_runs) > HEATMAP_MAX:
        st.caption(f"{len(comparison.matrix_runs)} runs: one square per group of identical outputs.")


def _details(results: Sequence[RunResult], comparison: Comparison, key: str, request: RunRequest | None) -> None:
    """Below the cards: groups, the diff of two runs, why they fork, the tree, the heatmap."""
    summary = comparison.summary
    with st.expander(f"Groups of identical outputs ({len(comparison.groups)})", expanded=not summary.all_identical):
        _groups(comparison)
    st.subheader("Side by side")
    left, right = _diff_picker(results, comparison, key)
    if summary.all_identical:
        return
    _why(results, comparison, request)
    _fork_view(left, right)
    with st.expander("Divergence tree: the prefixes the runs share, and where they split"):
        st.code("\n".join(render_lines(divergence_tree(results))), language=None)
    if summary.successful > 2:
        st.subheader("Similarity between runs, by group")
        _heatmap(comparison)


def compared(results: Sequence[RunResult], key: str) -> Comparison:
    """compare(results), kept in the session for the COMPARISONS_KEPT views last shown while their runs stay the
    same: every click reruns the page, and 1,000 distinct answers take ~0.2 s to compare."""
    runs, kept = tuple(results), st.session_state.setdefault(_COMPARED, {})
    if key not in kept or kept[key][0] != runs:
        kept[key] = (runs, compare(runs))
    kept[key] = kept.pop(key)  # the newest last: the oldest is the first to go
    while len(kept) > COMPARISONS_KEPT:
        kept.pop(next(iter(kept)))
    return kept[key][1]


def show_results(results: Sequence[RunResult], key: str, *, made_by: str, stale: bool = False,
                 request: RunRequest | None = None) -> Comparison:
    """The whole view: the verdict block first, then the cards by group and the details; dimmed when `stale`.
    `request` (the one the runs answered) lets the fork view name causes that depend on its seed and temperature."""
    comparison = compared(results, key)
    with stale_container(f"{key}_results", stale):
        verdict_block(comparison, made_by)
        run_cards(results, comparison, key=key)
        if comparison.summary.successful >= 2:
            _details(results, comparison, key, request)
    return comparison
