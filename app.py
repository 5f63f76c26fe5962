"""Repro Lab: send N identical chat requests and see where the answers diverge. Run with `streamlit run app.py`."""

import streamlit as st

from ui.live import arrive_on
from ui.session import NAVIGATED

st.set_page_config(page_title="Repro Lab", page_icon=":material/difference:", layout="wide")
page = st.navigation([
    st.Page("pages/experiment.py", title="Experiment", icon=":material/science:", default=True),
    st.Page("pages/seed_vs_no_seed.py", title="Seed vs no seed", icon=":material/casino:"),
    st.Page("pages/sweep.py", title="Sweep", icon=":material/ssid_chart:"),
    st.Page("pages/history.py", title="History", icon=":material/history:", url_path="history"),
])
st.session_state[NAVIGATED] = True
arrive_on(page.title)
page.run()  # each page opens the session (gate and sidebar) itself: AppTest reruns a page without this script
