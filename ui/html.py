"""HTML for run cards and the side-by-side diff. Model output and prompts are untrusted: every text is escaped here.

Pure functions (no Streamlit) so the escaping and the markup can be tested exactly. The fragments carry no CSS: a
page sends STYLE once per script run (ui.session does), not once per fragment.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from html import escape

from core import ForkSide, RunResult, Segment

# overflow-wrap:anywhere, unlike break-word, also narrows what a flex item needs: a long unbroken fingerprint or
# finish reason in .rl-meta wraps inside its card instead of spilling over the next one.
STYLE = """<style>
.rl-card{border:1px solid rgba(128,128,128,.35);border-radius:.6rem;padding:.7rem .9rem;margin:.2rem 0;
  min-height:7rem;overflow-wrap:anywhere}
.rl-card.rl-failed{border-color:rgba(229,72,77,.7);background:rgba(229,72,77,.07)}
.rl-card.rl-grouped{border-left:.4rem solid var(--rl-fill)}
.rl-meta{font-size:.8rem;margin-bottom:.35rem;display:flex;flex-wrap:wrap;align-items:center;gap:.2rem .8rem}
.rl-meta>span:not(.rl-badge){opacity:.85}
.rl-badge{display:inline-block;min-width:1.7em;text-align:center;font-weight:800;font-size:.85rem;line-height:1.5;
  padding:0 .4rem;border-radius:.35rem;background:var(--rl-fill);color:var(--rl-ink);
  box-shadow:0 0 0 1px rgba(128,128,128,.6);white-space:nowrap}
.rl-fold{margin:0 0 .15rem 0;white-space:normal}
.rl-fold summary{cursor:pointer;font-style:italic;font-size:.9rem;opacity:.75}
.rl-fold[open]{white-space:pre-wrap;opacity:.75}
.rl-text{white-space:pre-wrap;word-break:break-word;line-height:1.5;font-size:.98rem;margin:0;max-height:15rem;
  overflow:auto}
.rl-error{color:rgb(229,72,77);font-weight:600}
.rl-notice{font-size:.8rem;margin:0 0 .3rem 0;color:rgb(210,153,34)}
.rl-diff{display:grid;grid-template-columns:1fr 1fr;gap:1rem}
.rl-diff h4{margin:0 0 .3rem 0;font-size:.95rem}
.rl-side{border:1px solid rgba(128,128,128,.35);border-radius:.6rem;padding:.8rem 1rem;white-space:pre-wrap;
  word-break:break-word;line-height:1.6;font-size:1.02rem}
.rl-side del{background:rgba(229,72,77,.28);text-decoration:line-through;text-decoration-thickness:2px;
  color:inherit;border-radius:.2rem}
.rl-side ins{background:rgba(46,160,67,.30);text-decoration:none;color:inherit;border-radius:.2rem}
.rl-side mark{background:rgba(210,153,34,.38);color:inherit;border-radius:.2rem}
.rl-side mark del,.rl-side mark ins{background:transparent;font-weight:700}
.rl-fork{display:inline-block;font-size:.7rem;font-weight:700;padding:0 .35rem;margin:0 .2rem;border-radius:.6rem;
  background:rgb(217,72,15);color:#fff;vertical-align:middle;white-space:nowrap}
.rl-legend{font-size:.85rem;opacity:.85;margin:.4rem 0;display:flex;gap:1rem;flex-wrap:wrap}
.rl-legend span{padding:0 .3rem;border-radius:.2rem}
.rl-strip{line-height:2;font-family:ui-monospace,monospace;font-size:.85rem;white-space:pre-wrap;word-break:break-word}
.rl-strip span{border-radius:.2rem;padding:.05rem 0}
.rl-strip .rl-at{outline:2px solid rgb(217,72,15)}
.rl-fork-table{border-collapse:collapse;width:100%;font-size:.92rem}
.rl-fork-table td{padding:.15rem .4rem;border-bottom:1px solid rgba(128,128,128,.2)}
.rl-fork-table .rl-bar{height:.6rem;background:rgb(217,72,15);border-radius:.3rem}
.rl-tie{display:inline-block;font-size:.75rem;font-weight:700;padding:0 .4rem;border-radius:.6rem;
  background:rgba(210,153,34,.35)}
.rl-verdict{border:1px solid rgba(128,128,128,.35);border-left:.5rem solid var(--rl-tone);border-radius:.6rem;
  padding:.45rem 1rem .55rem;margin:.1rem 0 .5rem}
.rl-v-same{--rl-tone:#009E73;background:rgba(0,158,115,.09)}
.rl-v-split{--rl-tone:#D55E00;background:rgba(213,94,0,.09)}
.rl-v-none{--rl-tone:#8C8C8C}
.rl-v-title{font-size:1rem;font-weight:700;margin:0;opacity:.85}
.rl-v-sentence{font-size:2.1rem;font-weight:750;line-height:1.2;margin:.05rem 0 .35rem}
.rl-v-numbers{display:flex;flex-wrap:wrap;gap:.2rem 1.8rem;margin:0 0 .25rem}
.rl-v-numbers span{display:flex;flex-direction:column}
.rl-v-numbers small{font-size:.8rem;opacity:.75}
.rl-v-numbers b{font-size:1.3rem;line-height:1.25}
.rl-v-stats{font-size:1.05rem;margin:0}
.rl-v-warn{font-size:.95rem;margin:.15rem 0 0;font-weight:600}
.rl-v-made{font-size:.85rem;opacity:.8;margin:.2rem 0 0;font-family:ui-monospace,monospace;overflow-wrap:anywhere}
.rl-stale-label{display:inline-block;font-weight:700;font-size:.95rem;padding:.1rem .6rem;border-radius:.4rem;
  background:#F0E442;color:#000;margin:0 0 .3rem}
.rl-verdict.rl-stale>:not(.rl-stale-label){opacity:.4}
[class*="st-key-"]:has(>div>div>.rl-stale-label)>:not(:has(.rl-stale-label)){opacity:.4;filter:grayscale(.8)}
.rl-groups{border-collapse:collapse;width:100%;font-size:.95rem}
.rl-groups th,.rl-groups td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid rgba(128,128,128,.25);
  vertical-align:top}
.rl-groups td.rl-preview{white-space:pre-wrap;overflow-wrap:anywhere}
.rl-scroll{max-height:26rem;overflow:auto}
.rl-causes{list-style:none;padding:0;margin:.2rem 0 .6rem 0}
.rl-causes li{margin:.2rem 0;display:flex;gap:.5rem;align-items:baseline}
.rl-cause{font-weight:700;white-space:nowrap}
</style>"""

_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")


def md(text: object) -> str:
    """Untrusted text made inert inside st.markdown and the other calls that render markdown: no links, images,
    code spans or colour directives, just the characters."""
    return _MARKDOWN.sub(r"\\\1", str(text))


FORK = '<span class="rl-fork" title="first divergence">◆ fork</span>'


def run_meta(result: RunResult) -> str:
    """One line of facts about a run: latency, fingerprint, tokens, finish reason, retries."""
    parts = [f"<b>Run {result.index + 1}</b>", f"{result.latency_ms:,.0f} ms"]
    if result.ok:
        parts.append(escape(result.system_fingerprint or "no fingerprint"))
        if result.usage:
            parts.append(f"{result.usage.completion_tokens} tokens")
        parts.append(escape(result.finish_reason or "?"))
    if result.retries:
        parts.append(f"{result.retries} retr{'y' if result.retries == 1 else 'ies'}")
    return "".join(f"<span>{p}</span>" for p in parts)


# Okabe–Ito without its black (a dark theme's background): fills a colour-blind reader tells apart, each with the
# ink (black or white) that reads on it at 4.5:1 or better; A, the modal answer, is blue.
PALETTE = (("#0072B2", "#FFFFFF"), ("#E69F00", "#000000"), ("#009E73", "#000000"), ("#CC79A7", "#000000"),
           ("#56B4E9", "#000000"), ("#D55E00", "#000000"), ("#F0E442", "#000000"))
OTHER_GROUPS = ("#8C8C8C", "#000000")  # past the palette the letters alone tell groups apart


def letter_position(letter: str) -> int:
    """The inverse of core.group_letter: A → 0, Z → 25, AA → 26."""
    position = 0
    for char in letter:
        position = position * 26 + ord(char) - ord("A") + 1
    return position - 1


def group_colours(letter: str) -> tuple[str, str]:
    """The fill and ink of a group's badge."""
    position = letter_position(letter)
    return PALETTE[position] if position < len(PALETTE) else OTHER_GROUPS


def group_style(letter: str) -> str:
    """The CSS variables a badge and a card's edge take their colours from."""
    fill, ink = group_colours(letter)
    return f"--rl-fill:{fill};--rl-ink:{ink}"


def badge(letter: str, label: str | None = None) -> str:
    """The group's letter (or `label`, e.g. "A ×22") on its colour."""
    return (f'<span class="rl-badge" data-group="{escape(letter)}" style="{group_style(letter)}">'
            f"{escape(label or letter)}</span>")


def card(body: str, meta: str, *, attributes: str, letter: str | None = None, notice: str | None = None,
         failed: bool = False) -> str:
    """A card: its facts line, a notice, the body; with a letter, the group's badge colour on its edge."""
    css = "rl-card" + (" rl-failed" if failed else "") + (" rl-grouped" if letter else "")
    style = f' data-group="{escape(letter)}" style="{group_style(letter)}"' if letter else ""
    notice_html = f'<p class="rl-notice">{escape(notice)}</p>' if notice else ""
    return f'<div class="{css}" {attributes}{style}><div class="rl-meta">{meta}</div>{notice_html}{body}</div>'


def run_card(result: RunResult, letter: str | None = None) -> str:
    """One run's card, its whole text; with `letter`, its group's badge."""
    if result.ok:
        body = f'<div class="rl-text">{escape(result.text or "")}</div>'
    else:
        body = (f'<div class="rl-text"><span class="rl-error">{escape(result.error.kind)}</span> '
                f'{escape(result.error.message)}</div>')
    meta = (badge(letter) if letter else "") + run_meta(result)
    return card(body, meta, attributes=f'data-run="{result.index}"', letter=letter, notice=result.notice,
                failed=not result.ok)


def _side(segments: Sequence[Segment], left: bool, *, fork: bool = True) -> str:
    """One column's markup; `fork` places the marker before the first difference (not inside a refinement)."""
    out = []
    for segment in segments:
        text = segment.a if left else segment.b
        if segment.op != "equal" and fork:
            out.append(FORK)
            fork = False
        if segment.op == "equal":
            out.append(escape(text))
        elif segment.op == "replace":
            inner = _side(segment.chars, left, fork=False) if segment.chars else escape(text)
            out.append(f"<mark>{inner}</mark>")
        elif text:
            tag = "del" if segment.op == "delete" else "ins"
            out.append(f"<{tag}>{escape(text)}</{tag}>")
    return "".join(out)


def diff_columns(segments: Sequence[Segment], left_title: str, right_title: str) -> str:
    """Two aligned columns: deletions struck in the left, insertions in the right, replacements marked in both."""
    return ('<div class="rl-diff">'
            f'<div><h4>{escape(left_title)}</h4><div class="rl-side" data-side="left">{_side(segments, True)}</div></div>'
            f'<div><h4>{escape(right_title)}</h4><div class="rl-side" data-side="right">{_side(segments, False)}</div>'
            f'</div></div>')


def legend() -> str:
    return ('<div class="rl-legend"><span class="rl-side" style="border:0;padding:0">'
            f'<del>only in the left run</del></span><span class="rl-side" style="border:0;padding:0">'
            f'<ins>only in the right run</ins></span><span class="rl-side" style="border:0;padding:0">'
            f'<mark>replaced</mark></span>{FORK}<span>where the two runs first part</span></div>')


def _token(text: str) -> str:
    """A token shown so its whitespace is visible."""
    return escape(text.replace(" ", "␣").replace("\n", "⏎"))


def strip_html(tokens: Sequence[tuple[str, float]], fork_at: int | None) -> str:
    """The run's tokens shaded by probability (the paler, the surer); the fork's token outlined."""
    spans = []
    for position, (token, probability) in enumerate(tokens):
        alpha = round(0.55 * (1 - probability), 3)
        outline = ' class="rl-at"' if position == fork_at else ""
        spans.append(f'<span{outline} style="background:rgba(229,72,77,{alpha})" '
                     f'title="p = {probability:.3f}">{escape(token)}</span>')
    return f'<div class="rl-strip">{"".join(spans)}</div>'


def fork_table(side: ForkSide) -> str:
    """What one run chose at the fork, its top alternatives with probabilities, the margin and a near-tie badge."""
    rows = "".join(
        f"<tr><td>{'▶' if token == side.chosen else ''}</td><td><code>{_token(token)}</code></td>"
        f'<td style="width:45%"><div class="rl-bar" style="width:{probability * 100:.1f}%"></div></td>'
        f"<td>{probability:.1%}</td></tr>"
        for token, probability in side.alternatives)
    tie = ' <span class="rl-tie">near tie</span>' if side.near_tie else ""
    return (f'<p>Run {side.run + 1} chose <code>{_token(side.chosen)}</code> ({side.chosen_prob:.1%}) · '
            f"margin between the top two {side.margin:.1%}{tie}</p><table class=\"rl-fork-table\">{rows}</table>")
