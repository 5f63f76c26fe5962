"""Repro Lab's engine: configuration, backends, the parallel runner and comparison. Never imports streamlit."""
