"""The prompt box every page shares, with presets; the classic demo comes first."""

from __future__ import annotations

import streamlit as st

PRESETS = {
    "Story (classic demo)": ("You always produce 3-sentence answers.", "Create a story about red panda."),
    "Factual question": ("You answer precisely and briefly.", "What causes the seasons on Earth?"),
    "Small coding task": ("You are a careful Python programmer. Answer with code only.",
                          "Write a Python function that checks whether a string is a palindrome."),
    "Long answer": ("You write detailed, well-structured answers.",
                    "Explain step by step how a language model turns a prompt into an answer."),
}
CLASSIC = PRESETS["Story (classic demo)"]


def prompt_box(key: str) -> tuple[str, str]:
    """Preset chips, then the system and user prompts; returns (system, prompt)."""
    system_key, prompt_key = f"{key}_system", f"{key}_prompt"
    st.session_state.setdefault(system_key, CLASSIC[0])
    st.session_state.setdefault(prompt_key, CLASSIC[1])

    def apply_preset() -> None:
        chosen = st.session_state.get(f"{key}_preset")
        if chosen:
            st.session_state[system_key], st.session_state[prompt_key] = PRESETS[chosen]

    st.pills("Presets", list(PRESETS), key=f"{key}_preset", on_change=apply_preset)
    system = st.text_area("System prompt", key=system_key, height=68)
    prompt = st.text_area("User prompt", key=prompt_key, height=100)
    return system, prompt
