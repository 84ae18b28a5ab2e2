"""The Streamlit side of mmteach: helpers the pages share, one role per module.

- ``router``: the one workaround that keeps every page under app.py's ``st.navigation``;
- ``state``: control values in session state and in the URL, the presentation flag;
- ``compute``: cached engine calls (pages pass the engine function itself);
- ``pool_worker``: what runs in the process pool's workers (no Streamlit);
- ``sources``: example data, original-file uploads, where the data come from;
- ``display``: tables, figures, code expanders, presentation-mode CSS.

The engine (``mmteach``) never imports this package.
"""
