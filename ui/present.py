"""Presentation mode, for a projector: a toggle pinned in the top bar (kept in the URL as ?present=1) that hides the
sidebar, moves the page links to the top bar and raises the type size; and the layout rules every page gets, so a
narrow window (a laptop at 150 % zoom) keeps most of its width for the results."""

from __future__ import annotations

import streamlit as st

PRESENT = "present"  # the toggle's key and the query parameter

# The toggle sits in Streamlit's top bar, so it costs the page no height; the sidebar gives way on narrow windows.
LAYOUT = """<style>
.st-key-rl-present{position:fixed;top:.7rem;right:190px;z-index:999991;width:auto !important}
.stMainBlockContainer{padding-top:3.6rem}
@media (max-width:1000px){
  section[data-testid=stSidebar]{width:13.5rem !important;min-width:13.5rem !important;max-width:13.5rem !important}
  section[data-testid=stSidebar] [data-testid=stSidebarUserContent]{padding-left:1rem;padding-right:1rem}
}
</style>"""

PRESENTING = """<style>
section[data-testid=stSidebar],[data-testid=stSidebarCollapsedControl],[data-testid=stExpandSidebarButton]{
  display:none !important}
html{font-size:20px}
.stMainBlockContainer{max-width:none;padding-left:2.5rem;padding-right:2.5rem}
.rl-v-sentence{font-size:2.6rem}
.rl-side{font-size:1.15rem}
</style>"""


def presenting() -> bool:
    """Whether presentation mode is on: the toggle's state, or ?present=1 before the toggle was drawn."""
    if PRESENT in st.session_state:
        return bool(st.session_state[PRESENT])
    return st.query_params.get(PRESENT) == "1"


def presentation_toggle() -> bool:
    """Draw the toggle and the layout rules; keep the URL in step with the toggle; returns whether presenting."""
    st.html(LAYOUT)
    start = presenting()
    with st.container(key="rl-present"):
        on = st.toggle("Present", value=start, key=PRESENT,
                       help="Presentation mode: no sidebar, larger type, one full-width diff per scenario "
                            "(also ?present=1 in the address).")
    if on:
        st.query_params[PRESENT] = "1"
        st.html(PRESENTING)
    elif PRESENT in st.query_params:
        del st.query_params[PRESENT]
    return on
