"""The block every results view opens with: one sentence a room reads from the back, the key numbers, what the batch
proves and the settings that made it; and the container that dims results made with settings since changed."""

from __future__ import annotations

from html import escape

import streamlit as st

from core import BatchStatistics, Comparison, InvalidRequest, Summary, batch_statistics, compare_batches, verdict

STALE_LABEL = "From the previous settings — run again to refresh"


def divergence_label(summary: Summary) -> str:
    """The first word (counted from 1) at which some run leaves the modal output."""
    if summary.all_identical:
        return "all identical"
    if summary.first_divergence_word is None:
        return "–"
    return f"word {summary.first_divergence_word + 1}"


def _percent(share: float | None) -> str:
    return "–" if share is None else f"{share:.0%}"


def key_numbers(summary: Summary, statistics: BatchStatistics) -> list[tuple[str, str, str]]:
    """(name, label, value) of the numbers under the sentence."""
    fingerprints = summary.fingerprints
    served = str(len(fingerprints.counts)) + (" (mixed)" if fingerprints.mixed else "")
    return [("unique", "unique outputs", f"{summary.unique_outputs} / {summary.successful}"),
            ("identical", "identical to the modal answer", _percent(summary.identical_rate)),
            ("divergence", "first divergence", divergence_label(summary)),
            ("agreement", "identical pairs", _percent(statistics.pairwise_agreement)),
            ("fingerprints", "fingerprints", served if fingerprints.counts else "none reported")]


def _warnings(summary: Summary) -> list[str]:
    """What the visitor must know to read the numbers right: mixed fingerprints, failed runs."""
    lines = []
    fingerprints = summary.fingerprints
    if fingerprints.mixed:
        counts = ", ".join(f"{fp} ×{n}" for fp, n in fingerprints.counts.items())
        lines.append(f"Served by {len(fingerprints.counts)} backend configurations ({counts}): that alone can "
                     "explain different outputs.")
    if summary.errors:
        lines.append(f"{summary.errors} of {summary.runs} runs failed; their cards say why. They are left out of "
                     "the numbers.")
    return lines


def _tone(summary: Summary) -> str:
    if summary.note:
        return "rl-v-none"
    return "rl-v-same" if summary.all_identical else "rl-v-split"


def verdict_html(comparison: Comparison, made_by: str, *, stale: bool = False, title: str | None = None) -> str:
    """The verdict block's markup; `made_by` is the parameters line the page passes."""
    summary = comparison.summary
    statistics = batch_statistics(comparison)
    label = f'<p class="rl-stale-label">{STALE_LABEL}</p>' if stale else ""
    heading = f'<p class="rl-v-title">{escape(title)}</p>' if title else ""
    numbers = "".join(f'<span data-number="{name}"><small>{escape(text)}</small><b>{escape(value)}</b></span>'
                      for name, text, value in key_numbers(summary, statistics)) if not summary.note else ""
    numbers_html = f'<div class="rl-v-numbers">{numbers}</div>' if numbers else ""
    stats = "" if summary.note else f'<p class="rl-v-stats" data-stats>{escape(statistics.describe())}</p>'
    warnings = "".join(f'<p class="rl-v-warn">{escape(line)}</p>' for line in _warnings(summary))
    return (f'<div class="rl-verdict {_tone(summary)}{" rl-stale" if stale else ""}" data-verdict>{label}{heading}'
            f'<p class="rl-v-sentence">{escape(verdict(comparison))}</p>{numbers_html}{stats}{warnings}'
            f'<p class="rl-v-made">{escape(made_by)}</p></div>')


def verdict_block(comparison: Comparison, made_by: str, *, stale: bool = False, title: str | None = None) -> None:
    """The verdict sentence in large type, the key numbers, the statistics sentence and the parameters line."""
    st.html(verdict_html(comparison, made_by, stale=stale, title=title))


def contrast_line(expected_steadier: tuple[str, Comparison], other: tuple[str, Comparison], *,
                  two_sided: bool = False) -> str:
    """Whether the first batch is identical more often than the second (or, two-sided, either way) beyond chance
    (Fisher's exact test), in one line; empty when either has no successful run."""
    (label_a, a), (label_b, b) = expected_steadier, other
    try:
        contrast = compare_batches(batch_statistics(a), batch_statistics(b), label_a, label_b,
                                   "two-sided" if two_sided else "greater")
    except InvalidRequest:
        return ""
    beyond = "more than chance explains" if contrast.p_value < 0.05 else "not beyond chance at these N"
    return f"{contrast.statement()}: {beyond}."


def stale_container(key: str, stale: bool):
    """A keyed container; when `stale`, labelled as made with previous settings, and its contents dimmed (STYLE
    dims the siblings of the label inside any `st-key-…` container)."""
    container = st.container(key=key)
    if stale:
        container.html(f'<p class="rl-stale-label">{STALE_LABEL}</p>')
    return container
