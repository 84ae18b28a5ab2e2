"""mmteach: why pooling cells from few mice misleads, and what mixed models do instead.

This file only routes: it registers the pages and draws the shared sidebar (presentation
mode for a projector, where the data come from). Run with ``streamlit run app.py``.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

import ui_common as ui

HERE = Path(__file__).parent

st.set_page_config(page_title="mmteach: mixed models for neuroscience", page_icon=":material/biotech:",
                   layout="wide")

# (file, title, icon, URL path): the URL paths are what instructors put in shared links.
PAGES = [
    ("pages/1_Overview.py", "Overview", ":material/explore:", "overview"),
    ("pages/2_Ca_frequency.py", "Ca++ frequency: pooling", ":material/show_chart:", "frequency"),
    ("pages/3_Ca_amplitude.py", "Ca++ amplitude: paired cells", ":material/compare_arrows:", "amplitude"),
    ("pages/4_Water_lick.py", "Water lick: binary outcome", ":material/water_drop:", "water-lick"),
    ("pages/5_Your_data.py", "Your data", ":material/upload_file:", "your-data"),
    ("pages/6_Simulation.py", "Simulation", ":material/casino:", "simulation"),
]

pages = [
    st.Page(path, title=title, icon=icon, url_path=url, default=i == 0)
    for i, (path, title, icon, url) in enumerate(PAGES)
    if (HERE / path).is_file()  # the simulation page is optional in a partial build
]
page = st.navigation(pages)

# Presentation mode is global: read it from the URL once, then from the toggle.
if "_present_loaded" not in st.session_state:
    st.session_state["_present_loaded"] = True
    st.session_state[ui.PRESENT_KEY] = st.query_params.get(ui.PRESENT_KEY) == "1"
with st.sidebar:
    st.toggle("Presentation mode", key=ui.PRESENT_KEY,
              help="Large fonts and one chart per row, for a projector.")
    st.caption(
        "Examples 2-4 of Yu et al. (2022, Neuron 110:21-35). Their original files are not "
        f"public any more: the built-in data are a *{ui.RECONSTRUCTION_LABEL.lower()}*."
    )
if ui.presenting():
    st.html(ui.PRESENTATION_CSS)
    st.query_params[ui.PRESENT_KEY] = "1"
elif ui.PRESENT_KEY in st.query_params:
    del st.query_params[ui.PRESENT_KEY]

page.run()
