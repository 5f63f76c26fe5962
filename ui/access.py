"""Who may use this instance: OpenID Connect sign-in when secrets have an [auth] section, else a passcode when
APP_PASSCODE is set, else open (with a note when a paid backend is configured)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

import streamlit as st

from core.access import failure_delay, passcode_matches
from ui.html import md


def _stop_at_the_gate(title: str, text: str) -> None:
    st.title("Repro Lab")
    st.subheader(title)
    st.write(text)


def _sign_in() -> str:
    if not st.user.get("is_logged_in", False):
        _stop_at_the_gate("Sign in", "This instance is for signed-in colleagues only.")
        st.button("Sign in", type="primary", key="sign_in", on_click=st.login)
        st.stop()
    who = st.user.get("email") or st.user.get("name") or "signed in"
    with st.sidebar:
        st.caption(f"Signed in as **{md(who)}**")
        st.button("Sign out", key="sign_out", on_click=st.logout)
    return f"user:{who}"


def _passcode(expected: str) -> str:
    if not st.session_state.get("access_granted"):
        _stop_at_the_gate("A passcode is needed", "Enter the passcode you were given to use this instance.")
        given = st.text_input("Passcode", type="password", key="passcode")
        if st.button("Enter", type="primary", key="enter_passcode") and given:
            failures = st.session_state.get("passcode_failures", 0)
            time.sleep(failure_delay(failures))
            if passcode_matches(given, expected):
                st.session_state["access_granted"] = True
                st.rerun()
            st.session_state["passcode_failures"] = failures + 1
            st.error("That passcode is not right.")
        st.stop()
    return _session_identity()


def _session_identity() -> str:
    return "session:" + st.session_state.setdefault("session_identity", uuid.uuid4().hex)


def require_access(secrets: Mapping[str, Any], source: Mapping[str, Any]) -> str:
    """Stop the page at the gate unless the visitor may pass; return who they are, for the quota."""
    if isinstance(secrets.get("auth"), Mapping):
        return _sign_in()
    if source.get("APP_PASSCODE"):
        return _passcode(str(source["APP_PASSCODE"]))
    return _session_identity()
