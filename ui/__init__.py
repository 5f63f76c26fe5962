"""The Streamlit pieces the pages share: the session and its sidebar, run cards, the results view; and their HTML."""
