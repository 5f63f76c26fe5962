"""The groups of identical outputs made visible: a stacked card per group ("A ×22") that shows its text from the fork
on, the groups table previewing each group at its fork, the runs in group order, and the fork causes as lines.

Pure functions (no Streamlit), so the markup is tested exactly; every model text is escaped here.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from core import Comparison, Divergence, ForkCause, Group, RunResult, group_letter
from core.analysis.diff import tokenize, word_count
from ui.html import FORK, badge, card, letter_position, run_card, run_meta

CONTEXT_WORDS = 4  # words kept in view before a fork, so the reader sees what the fork continues
MIN_FOLDED_WORDS = 6  # a shorter shared start is shown whole: folding it would save nothing
PREVIEW_CHARS = 140
LISTED_GROUPS = 50  # rows of the groups table and lines of fork causes: 1,000 distinct answers made 450 kB of them


def lettered_groups(comparison: Comparison) -> list[tuple[str, Group]]:
    """Each group with its letter, the modal one (A) first."""
    return [(group_letter(position), group) for position, group in enumerate(comparison.groups)]


def run_numbers(indices: Sequence[int]) -> str:
    """Runs numbered from 1, consecutive ones as ranges: "1–3, 5, 8–9"."""
    spans: list[list[int]] = []
    for number in sorted(index + 1 for index in indices):
        if spans and number == spans[-1][1] + 1:
            spans[-1][1] = number
        else:
            spans.append([number, number])
    return ", ".join(str(a) if a == b else f"{a}–{b}" for a, b in spans)


def _context_start(fork_token: int) -> int:
    """The token CONTEXT_WORDS words before the fork (tokens are words with their whitespace)."""
    return max(0, fork_token - CONTEXT_WORDS)


def folded_text(text: str, fork: Divergence | None) -> str:
    """The text from a few words before the fork on, the shared words before them folded into an expandable line,
    and the fork marked; the whole text when there is no fork."""
    if fork is None:
        return escape(text)
    tokens = tokenize(text)
    start = _context_start(fork.token_index)
    head = "".join(tokens[:start])
    if word_count(tokens[:start]) >= MIN_FOLDED_WORDS:
        head = (f'<details class="rl-fold"><summary>…shared {word_count(tokens[:start])} words…</summary>'
                f"{escape(head)}</details>")
    else:
        head = escape(head)
    lead = escape("".join(tokens[start:fork.token_index]))
    marker = FORK if fork.token_index else ""  # a fork at the first word is where the text starts anyway
    return f'{head}{lead}{marker}{escape("".join(tokens[fork.token_index:]))}'


def fork_preview(text: str, fork: Divergence | None, chars: int = PREVIEW_CHARS) -> str:
    """Plain text of the group at its fork: from a few words before it, cut to `chars`, "…" where cut."""
    tokens = tokenize(text)
    start = _context_start(fork.token_index) if fork else 0
    preview = "".join(tokens[start:]).strip()
    cut = preview[:chars].rstrip() + "…" if len(preview) > chars else preview
    return ("…" if start else "") + cut


def _spread(values: Sequence[float], unit: str) -> str:
    low, high = min(values), max(values)
    return f"{low:,.0f} {unit}" if round(low) == round(high) else f"{low:,.0f}–{high:,.0f} {unit}"


def _distinct(values: Sequence[str | None], missing: str) -> str:
    return ", ".join(dict.fromkeys(value or missing for value in values))


def stack_meta(runs: Sequence[RunResult], letter: str) -> str:
    """The facts line of a stack of identical runs: badge "A ×22", which runs, latency, fingerprints, tokens."""
    parts = [f"runs {run_numbers([run.index for run in runs])}", _spread([run.latency_ms for run in runs], "ms"),
             escape(_distinct([run.system_fingerprint for run in runs], "no fingerprint"))]
    tokens = [run.usage.completion_tokens for run in runs if run.usage]
    if tokens:
        parts.append(_spread(tokens, "tokens"))
    parts.append(escape(_distinct([run.finish_reason for run in runs], "?")))
    return badge(letter, f"{letter} ×{len(runs)}") + "".join(f"<span>{part}</span>" for part in parts)


def stack_card(runs: Sequence[RunResult], letter: str, fork: Divergence | None) -> str:
    """One card for runs with the same output: the text from its fork on, the shared start folded."""
    first = runs[0]
    meta = stack_meta(runs, letter) if len(runs) > 1 else badge(letter) + run_meta(first)
    body = f'<div class="rl-text">{folded_text(first.text or "", fork)}</div>'
    notices = _distinct([run.notice for run in runs if run.notice], "")
    attributes = f'data-run="{first.index}" data-runs="{" ".join(str(run.index) for run in runs)}"'
    return card(body, meta, attributes=attributes, letter=letter, notice=notices or None)


def group_cards(results: Sequence[RunResult], comparison: Comparison) -> list[str]:
    """A stacked card per group, A first."""
    by_index = {result.index: result for result in results}
    return [stack_card([by_index[index] for index in group.run_indices], letter, comparison.fork(group))
            for letter, group in lettered_groups(comparison)]


def _more_groups(count: int, tag: str) -> str:
    """The line that stands for the groups left out of a list, or nothing."""
    if count <= 0:
        return ""
    return f'<{tag} class="rl-more">{count:,} more groups: the grid of runs gives each run\'s group.</{tag}>'


def groups_table(comparison: Comparison) -> str:
    """The groups with their badge, runs, where they part and their text at the fork: the LISTED_GROUPS largest."""
    rows = []
    for letter, group in lettered_groups(comparison)[:LISTED_GROUPS]:
        fork = comparison.fork(group)
        where = "–" if fork is None else "modal" if letter == "A" else f"word {fork.word_index + 1}"
        rows.append(f"<tr><td>{badge(letter, f'{letter} ×{group.count}')}</td><td>{run_numbers(group.run_indices)}"
                    f'</td><td>{where}</td><td class="rl-preview">{escape(fork_preview(group.text, fork))}</td></tr>')
    return ('<div class="rl-scroll"><table class="rl-groups"><thead><tr><th>Group</th><th>Runs</th><th>Parts at</th>'
            f'<th>At the fork</th></tr></thead><tbody>{"".join(rows)}</tbody></table>'
            f'{_more_groups(len(comparison.groups) - LISTED_GROUPS, "p")}</div>')


def runs_in_group_order(comparison: Comparison) -> list[tuple[str, int]]:
    """(letter, run) for every successful run: group A's runs first, then B's, …, each group by run number."""
    return [(letter, run) for letter, group in lettered_groups(comparison) for run in group.run_indices]


def causes_list(causes: Sequence[ForkCause], comparison: Comparison) -> str:
    """One line per fork cause, for the LISTED_GROUPS first: the group's badge, the cause, its evidence."""
    letters = {run: letter for letter, run in runs_in_group_order(comparison)}
    items = "".join(f'<li>{badge(letters[cause.runs[0]])}<span class="rl-cause">{escape(cause.cause)}</span>'
                    f"<span>{escape(cause.evidence)}</span></li>" for cause in causes[:LISTED_GROUPS])
    return f'<ul class="rl-causes">{items}{_more_groups(len(causes) - LISTED_GROUPS, "li")}</ul>'


def open_card(result: RunResult, comparison: Comparison) -> str:
    """One run's card as its group's card shows it (from the fork on), or its error card."""
    letter = comparison.letter(result.index)
    if letter is None:
        return run_card(result)
    return stack_card([result], letter, comparison.fork(comparison.groups[letter_position(letter)]))
