"""Streamlit UI for clinicians."""
