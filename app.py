"""Repro Lab: send N identical chat requests and see where the answers diverge. Run with `streamlit run app.py`."""

import streamlit as st

from ui.live import arrive_on
from ui.present import presenting
from ui.session import NAVIGATED

present = presenting()
st.set_page_config(page_title="Repro Lab", page_icon=":material/difference:", layout="wide",
                   initial_sidebar_state="collapsed" if present else "auto")
page = st.navigation([
    st.Page("pages/seed_vs_no_seed.py", title="Seed vs no seed", icon=":material/casino:", default=True),
    st.Page("pages/experiment.py", title="Experiment", icon=":material/science:"),
    st.Page("pages/sweep.py", title="Sweep", icon=":material/ssid_chart:"),
    st.Page("pages/suite.py", title="Suite", icon=":material/checklist:"),
    st.Page("pages/probe.py", title="Probe", icon=":material/troubleshoot:"),
    st.Page("pages/history.py", title="History", icon=":material/history:", url_path="history"),
], position="top" if present else "sidebar")  # presenting hides the sidebar, so its page links move to the top bar
st.session_state[NAVIGATED] = True
arrive_on(page.title)
page.run()  # each page opens the session (gate and sidebar) itself: AppTest reruns a page without this script
