"""The Streamlit pieces the pages share: sidebar, run cards, the results view; and their HTML."""
