"""Controls the pages share: units per mouse with presets, model settings, a run button."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd
import streamlit as st

from mmteach.lme import df_methods_for
from mmteach.subsample import PRESETS, preset_counts
from ui.state import PageState, presenting


def panel(label: str = "Controls: cells per mouse and model") -> Any:
    """The box that holds a page's controls.

    On a projector (presentation mode) it is a collapsed expander, so the first screen shows
    the data and the charts and the instructor opens the controls when changing something;
    otherwise a bordered box that is always open.
    """
    if presenting():
        return st.expander(label, expanded=False)
    return st.container(border=True)


def units_per_mouse(ps: PageState, data: pd.DataFrame, group: str, full: Mapping[Any, int], *,
                    unit: str | None = None, noun: str = "Cells", note: str = "drawn at random "
                    "with a fixed seed; 0 drops the mouse", per_row: int = 6,
                    presets: Sequence[str] = PRESETS) -> None:
    """Sliders for the units (cells, trials) of each mouse, the presets and the sampling seed.

    The sliders write ``ps["n<mouse>"]``; ``presets`` are the buttons offered (a page leaves
    out "drop mouse 2" where mouse 2 is not special); a preset sets them all through a callback (before the
    sliders are drawn on the next run, as Streamlit requires).
    """

    def apply(preset: str) -> None:
        for m, n in preset_counts(data, group, preset, unit=unit).items():
            ps.set(f"n{m}", n)

    st.markdown(f"**{noun} per mouse** ({note})")
    mice = list(full.items())
    for start in range(0, len(mice), per_row):
        cols = st.columns(min(per_row, len(mice)))
        for col, (m, n) in zip(cols, mice[start:start + per_row], strict=False):
            col.slider(f"Mouse {m} (of {n})", 0, n, key=ps.key(f"n{m}"))
    preset_cols = st.columns(len(PRESETS) + 2)  # same widths on every page
    for col, preset in zip(preset_cols, presets, strict=False):
        col.button(preset, key=f"{ps.page}_preset_{preset}", on_click=apply, args=(preset,),
                   width="stretch")
    preset_cols[-1].number_input("Sampling seed", 0, 999_999, step=1, key=ps.key("seed"))


def lme_settings(ps: PageState, structures: Sequence[str], *, df_methods: Sequence[str],
                 structure_label: str = "Random effects (LME)",
                 format_structure: Callable[[str], str] = str,
                 estimation_help: str | None = None, df_help: str | None = None) -> None:
    """Random-effects structure, REML/ML and the df method in one row.

    Kenward-Roger is offered only with REML (as lmerTest defines it); a link or an earlier
    choice that asks for it with ML switches to Satterthwaite, saying so.
    """
    c1, c2, c3 = st.columns([2, 1, 1.3])  # the random-effects names are long
    c1.selectbox(structure_label, list(structures), key=ps.key("structure"),
                 format_func=format_structure)
    c2.radio("Estimation", ["REML", "ML"], key=ps.key("estimation"), horizontal=True,
             help=estimation_help)
    choices = df_methods_for(ps["estimation"] == "REML", tuple(df_methods))
    if ps["df"] not in choices:
        ps.set("df", "satterthwaite")
        st.caption("Kenward-Roger needs REML; switched to Satterthwaite.")
    c3.selectbox("Degrees of freedom", choices, key=ps.key("df"), help=df_help)


def run_button(label: str, *, key: str, inputs: tuple, run: Callable[[Callable[[int, int], None]], Any],
               disabled: bool = False, what: str = "samples") -> Any | None:
    """A button that runs a long computation with a progress bar and keeps its result.

    The result is kept in session state under the inputs it was computed from, so it is
    shown again on later reruns and disappears (instead of going stale) when an input
    changes. ``run`` receives a ``progress(done, total)`` callback.
    """
    store, started = f"_run.{key}", f"_run.{key}.started"
    if st.session_state.get(started) == inputs and st.session_state.get(store, (None,))[0] != inputs:
        # a run with these inputs began but never finished: the student left the page or
        # pressed something else while it ran (Streamlit stops the run)
        st.warning("The last run was interrupted before it finished; press the button to run it again.")
    if st.button(label, key=key, disabled=disabled):
        st.session_state[started] = inputs
        bar = st.progress(0.0, text="Starting…")

        def progress(done: int, total: int) -> None:
            bar.progress(min(1.0, done / max(total, 1)), text=f"{done:,} of {total:,} {what}")

        try:
            st.session_state[store] = (inputs, run(progress))
        finally:
            bar.empty()
    kept = st.session_state.get(store)
    if kept is not None and kept[0] == inputs:
        return kept[1]
    return None
