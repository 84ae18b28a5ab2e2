"""mmteach: why pooling cells from few mice misleads, and what mixed models do instead.

This file only routes: it registers the pages and draws the shared sidebar (presentation
mode for a projector, where the data come from). Run with ``streamlit run app.py``.
"""

from __future__ import annotations

# Streamlit runs this file as "__main__" on every rerun. A process-pool worker started during
# a rerun runs it too, as "__mp_main__" (multiprocessing's spawn preparation re-imports the
# parent's main script): there it must neither route nor import Streamlit and the app's
# helpers, which a fit never uses (ui/pool_worker.py), so all of that happens in main().

# (file, title, icon, URL path): the URL paths are what instructors put in shared links.
# Each file is named after its URL path (see ui/router.py for why).
PAGES = [
    ("pages/1_overview.py", "Overview", ":material/explore:", "overview"),
    ("pages/2_frequency.py", "Ca++ frequency: pooling", ":material/show_chart:", "frequency"),
    ("pages/3_amplitude.py", "Ca++ amplitude: paired cells", ":material/compare_arrows:", "amplitude"),
    ("pages/4_water-lick.py", "Water lick: binary outcome", ":material/water_drop:", "water-lick"),
    ("pages/5_your-data.py", "Your data", ":material/upload_file:", "your-data"),
    ("pages/6_simulation.py", "Simulation", ":material/casino:", "simulation"),
    ("pages/7_design.py", "Plan an experiment", ":material/calculate:", "design"),
]


def main() -> None:
    """Route this rerun: the shared sidebar, then the page of the URL."""
    import streamlit as st

    from ui import display, pool_worker, sources, state, warm

    pool_worker.use_python_strings()  # before any data are read: see its docstring
    st.set_page_config(page_title="mmteach: mixed models for neuroscience", page_icon=":material/biotech:",
                       layout="wide")
    pages = [st.Page(path, title=title, icon=icon, url_path=url) for path, title, icon, url in PAGES]

    def home_page() -> None:
        """The app's root URL: open the overview under its own URL path.

        st.navigation serves its default page at "/" only (its url_path becomes ""), so if the
        overview were the default page, a shared link to /overview would show Streamlit's
        "Page not found" dialog. The overview is an ordinary page instead, and "/" forwards
        to it, keeping the query parameters (e.g. ?presentation=1).
        """
        st.switch_page(pages[0], query_params=st.query_params.to_dict())

    home = st.Page(home_page, title="Home", url_path="home", default=True, visibility="hidden")
    page = st.navigation([home, *pages])

    # Presentation mode is global: read it from the URL once, then from the toggle.
    if "_present_loaded" not in st.session_state:
        st.session_state["_present_loaded"] = True
        st.session_state[state.PRESENT_KEY] = st.query_params.get(state.PRESENT_KEY) == "1"
    with st.sidebar:
        st.toggle("Presentation mode", key=state.PRESENT_KEY,
                  help="Large fonts and one chart per row, for a projector.")
        st.caption(
            "Examples 2-4 of Yu et al. (2022, Neuron 110:21-35). Their original files are not "
            f"public any more: the built-in data are a *{sources.RECONSTRUCTION_LABEL.lower()}*. "
            "Each example page can load the original file instead."
        )
        display.preload_chart_library()  # plotly.js while the student reads: see its docstring
    if state.presenting():
        st.set_page_config(initial_sidebar_state="collapsed")  # the first screen is the page, not the menu
        st.html(display.PRESENTATION_CSS)
        st.query_params[state.PRESENT_KEY] = "1"
    elif state.PRESENT_KEY in st.query_params:
        del st.query_params[state.PRESENT_KEY]

    # the first session starts (once per server) a background open of every page on its
    # defaults, so a class's first page opens find warm caches (ui/warm.py)
    warm.start(tuple(url for *_, url in PAGES))
    with display.unexpected_errors(f"page {page.url_path}"):
        page.run()


if __name__ == "__main__":  # not in a pool worker: see the top of this file
    main()
