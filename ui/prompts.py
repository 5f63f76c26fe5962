"""The prompt box every page shares, with presets; the classic demo comes first."""

from __future__ import annotations

import streamlit as st

from ui.html import md
from ui.present import presenting

PRESETS = {
    "Story (classic demo)": ("You always produce 3-sentence answers.", "Create a story about red panda."),
    "Factual question": ("You answer precisely and briefly.", "What causes the seasons on Earth?"),
    "Small coding task": ("You are a careful Python programmer. Answer with code only.",
                          "Write a Python function that checks whether a string is a palindrome."),
    "Long answer": ("You write detailed, well-structured answers.",
                    "Explain step by step how a language model turns a prompt into an answer."),
}
CLASSIC_NAME = next(iter(PRESETS))
CLASSIC = PRESETS[CLASSIC_NAME]


def box_keys(key: str, preset: str = CLASSIC_NAME) -> tuple[str, str]:
    """The widget keys of the system and user prompt boxes shown while `preset` is picked."""
    number = list(PRESETS).index(preset)
    return f"{key}_system_{number}", f"{key}_prompt_{number}"


def prompt_box(key: str) -> tuple[str, str]:
    """Preset chips, then the system and user prompts; returns (system, prompt).

    Each preset has its own pair of boxes, created with the preset's text as their value, and nothing is written to
    their session state. A text put only in the session state reaches the browser as an empty box plus a value to
    apply once; a browser that draws the box again from the element (as happened with a dozen sessions opening at
    once) showed, and could send back, an empty prompt. Picking another preset shows its boxes afresh."""
    chosen = st.pills("Presets", list(PRESETS), default=CLASSIC_NAME, required=True, key=f"{key}_preset")
    system_key, prompt_key = box_keys(key, chosen)
    system_text, prompt_text = PRESETS[chosen]
    system = st.text_area("System prompt", system_text, key=system_key, height=68)
    prompt = st.text_area("User prompt", prompt_text, key=prompt_key, height=100)
    return system, prompt


def _open_key(key: str) -> str:
    return f"{key}_prompt_open"


def fold_prompt(key: str) -> None:
    """A Run button's callback: fold the prompt away, so the results that follow start near the top of the page."""
    st.session_state[_open_key(key)] = False


def folding_prompt_box(key: str) -> tuple[str, str]:
    """prompt_box inside an expander, open until a run folds it (fold_prompt) and folded from the start when
    presenting; while folded, one line quotes the prompts. Returns (system, prompt)."""
    with st.expander("Prompt", expanded=not presenting(), key=_open_key(key), on_change="rerun",
                     icon=":material/edit_note:"):
        system, prompt = prompt_box(key)
    if not st.session_state.get(_open_key(key)):
        st.caption(f"System: “{md(system)}” · User: “{md(prompt)}”")
    return system, prompt
