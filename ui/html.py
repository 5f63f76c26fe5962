"""HTML for run cards and the side-by-side diff. Model output and prompts are untrusted: every text is escaped here.

Pure functions (no Streamlit) so the escaping and the markup can be tested exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from core.compare import Segment
from core.models import RunResult

STYLE = """<style>
.rl-card{border:1px solid rgba(128,128,128,.35);border-radius:.6rem;padding:.7rem .9rem;margin:.2rem 0;
  min-height:7rem}
.rl-card.rl-failed{border-color:rgba(229,72,77,.7);background:rgba(229,72,77,.07)}
.rl-meta{font-size:.8rem;opacity:.75;margin-bottom:.35rem;display:flex;flex-wrap:wrap;gap:.2rem .8rem}
.rl-meta b{opacity:1}
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
</style>"""

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


def run_card(result: RunResult) -> str:
    if result.ok:
        body = f'<p class="rl-text">{escape(result.text or "")}</p>'
        css = "rl-card"
    else:
        body = (f'<p class="rl-text"><span class="rl-error">{escape(result.error.kind)}</span> '
                f'{escape(result.error.message)}</p>')
        css = "rl-card rl-failed"
    notice = f'<p class="rl-notice">{escape(result.notice)}</p>' if result.notice else ""
    return (f'{STYLE}<div class="{css}" data-run="{result.index}"><div class="rl-meta">{run_meta(result)}</div>'
            f'{notice}{body}</div>')


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
    return (f'{STYLE}<div class="rl-diff">'
            f'<div><h4>{escape(left_title)}</h4><div class="rl-side" data-side="left">{_side(segments, True)}</div></div>'
            f'<div><h4>{escape(right_title)}</h4><div class="rl-side" data-side="right">{_side(segments, False)}</div>'
            f'</div></div>')


def legend() -> str:
    return (f'{STYLE}<div class="rl-legend"><span class="rl-side" style="border:0;padding:0">'
            f'<del>only in the left run</del></span><span class="rl-side" style="border:0;padding:0">'
            f'<ins>only in the right run</ins></span><span class="rl-side" style="border:0;padding:0">'
            f'<mark>replaced</mark></span>{FORK}<span>where the two runs first part</span></div>')
