"""Who may use this instance: OpenID Connect sign-in when secrets have an [auth] section, else a passcode when
APP_PASSCODE is set, else open (with a note when a paid backend is configured)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import streamlit as st

from core import ConfigurationError, FailureLog, ReproError, StorageError, client_identity, read_access, read_history
from core.policy import Network  # for the annotation only
from core.shared import SharedFailureLog, shared_database
from ui.html import md

LOOPBACK = "127.0.0.1"


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


def _failure_log(source: Mapping[str, Any]) -> FailureLog | SharedFailureLog:
    """With DATABASE_URL, the failure counts every replica shares; this process's own while the database is down."""
    url = read_history(source).database_url
    if url:
        try:
            return SharedFailureLog(shared_database(url))
        except ReproError:
            pass
    return _failures()


def _passcode(expected: str, visitor: str, source: Mapping[str, Any]) -> str:
    if not st.session_state.get("access_granted"):
        _stop_at_the_gate("A passcode is needed", "Enter the passcode you were given to use this instance.")
        given = st.text_input("Passcode", type="password", key="passcode")
        if st.button("Enter", type="primary", key="enter_passcode") and given:
            try:
                granted = _failure_log(source).attempt(visitor, given, expected)
            except StorageError:
                st.error("The passcode cannot be checked right now; try again in a minute.")
                st.stop()
            if granted:
                st.session_state["access_granted"] = True
                st.rerun()
            st.error("That passcode is not right.")
        st.stop()
    return visitor


def _visitor(trusted: Sequence[Network]) -> str:
    """Who is asking, for the quota and the passcode's failure count: the client's address (X-Forwarded-For only
    from a proxy in REPRO_TRUSTED_PROXIES, see core.policy.client_identity)."""
    # The TCP peer; from a peer on this machine, what Streamlit's server (uvicorn: FORWARDED_ALLOW_IPS, by default
    # 127.0.0.1 and ::1) read from X-Forwarded-For instead.
    peer = st.context.ip_address
    if peer is None:
        peer = LOOPBACK  # Streamlit reports a peer on this machine (a local proxy, a local browser) as None
    if not isinstance(peer, str):  # AppTest hands out a stand-in object
        return "session:" + st.session_state.setdefault("session_identity", uuid.uuid4().hex)
    forwarded = ",".join(st.context.headers.get_all("X-Forwarded-For")) if trusted else ""
    return client_identity(peer, forwarded, trusted)


def require_access(secrets: Mapping[str, Any], source: Mapping[str, Any]) -> str:
    """Stop the page at the gate unless the visitor may pass; return who they are, for the quota."""
    try:
        access = read_access(source, secrets)
    except ConfigurationError as exc:
        _stop_at_the_gate("This instance is not set up right", "Its operator needs to fix a setting.")
        st.error(md(exc))
        st.stop()
    if access.sign_in:
        return _sign_in()
    visitor = _visitor(access.trusted_proxies)
    if access.passcode:
        return _passcode(access.passcode, visitor, source)
    return visitor
