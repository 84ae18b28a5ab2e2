"""The one place that keeps a page's direct run under app.py's router (see run_under_router)."""

from __future__ import annotations

import runpy
from pathlib import Path

import streamlit as st

APP_ROOT = Path(__file__).resolve().parent.parent


def run_under_router() -> None:
    """Make sure this page runs inside app.py's router (shared sidebar, URL paths).

    A folder called ``pages/`` beside ``app.py`` makes Streamlit route the first session
    after the server starts by file name (its old multipage mode) until ``st.navigation``
    has run once. The page files are named after their URL paths (``2_frequency.py`` is
    ``/frequency``), so that first session finds the page instead of showing "Page not
    found"; this call then hands over to ``app.py``, whose ``st.navigation`` runs this page
    again, and stops the direct run. Every later run goes through the router and this
    returns at once.
    """
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        runpy.run_path(str(APP_ROOT / "app.py"), run_name="__main__")
        st.stop()
