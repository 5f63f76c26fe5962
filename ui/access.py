"""Who may use this instance: OpenID Connect sign-in when secrets have an [auth] section, else a passcode when
APP_PASSCODE is set, else open (with a note when a paid backend is configured)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

import streamlit as st

from core.access import FailureLog, passcode_matches
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


@st.cache_resource
def _failures() -> FailureLog:
    return FailureLog()


def _passcode(expected: str) -> str:
    visitor = _visitor()
    if not st.session_state.get("access_granted"):
        _stop_at_the_gate("A passcode is needed", "Enter the passcode you were given to use this instance.")
        given = st.text_input("Passcode", type="password", key="passcode")
        if st.button("Enter", type="primary", key="enter_passcode") and given:
            time.sleep(_failures().delay(visitor))
            if passcode_matches(given, expected):
                _failures().passed(visitor)
                st.session_state["access_granted"] = True
                st.rerun()
            _failures().failed(visitor)
            st.error("That passcode is not right.")
        st.stop()
    return visitor


def _visitor() -> str:
    """Who is asking, for the quota and the passcode's failure count: the client's address (the first
    X-Forwarded-For hop behind a reverse proxy), else this session."""
    forwarded = (st.context.headers or {}).get("X-Forwarded-For", "")
    address = forwarded.split(",")[0].strip() or st.context.ip_address
    if isinstance(address, str) and address:  # (AppTest hands out a stand-in object instead)
        return f"ip:{address}"
    return "session:" + st.session_state.setdefault("session_identity", uuid.uuid4().hex)


def require_access(secrets: Mapping[str, Any], source: Mapping[str, Any]) -> str:
    """Stop the page at the gate unless the visitor may pass; return who they are, for the quota."""
    if isinstance(secrets.get("auth"), Mapping):
        return _sign_in()
    if source.get("APP_PASSCODE"):
        return _passcode(str(source["APP_PASSCODE"]))
    return _visitor()
