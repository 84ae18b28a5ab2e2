"""Shared Streamlit helpers for the mmteach pages: state in the URL, caching, presentation.

Pages stay thin: they declare their controls through :class:`PageState` (so every setting
is in the URL an instructor can share), fetch data and fits through the cached helpers
here, and show tables and figures through :func:`show_table` / :func:`show_fig` (which
switch to large fonts and one chart per row in presentation mode).
"""

from __future__ import annotations

import importlib
import math
import runpy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from mmteach import errors, figures
from mmteach.errors import MMTeachError
from mmteach.figures import style

APP_ROOT = Path(__file__).resolve().parent


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

PRESENT_KEY = "presentation"
RECONSTRUCTION_LABEL = "Reconstruction calibrated to the published results"
ORIGINAL_LABEL = "Original file"
# The original file of each example, under the name it was published with.
ORIGINAL_FILES = {"ca_frequency": "Example2.txt", "ca_amplitude": "Example3.txt",
                  "water_lick": "waterlick_sim.txt"}

# Engine functions by name: cached calls take the name (hashable) not the function.
ENGINE: dict[str, tuple[str, str]] = {
    "fit_lm": ("mmteach.lm", "fit_lm"),
    "t_test": ("mmteach.lm", "t_test"),
    "fit_fixed_group": ("mmteach.lm", "fit_fixed_group"),
    "fit_per_group": ("mmteach.lm", "fit_per_group"),
    "fit_lme": ("mmteach.lme", "fit_lme"),
    "compare_models": ("mmteach.compare", "compare_models"),
    "f_test": ("mmteach.compare", "f_test"),
    "icc_oneway": ("mmteach.icc", "icc_oneway"),
    "fit_glmm": ("mmteach.glmm", "fit_glmm"),
    "odds_ratio_table": ("mmteach.glmm", "odds_ratio_table"),
    "fit_glm": ("mmteach.alternatives", "fit_glm"),
    "fit_gee": ("mmteach.alternatives", "fit_gee"),
    "proportion_t_test": ("mmteach.alternatives", "proportion_t_test"),
    "fit_bayes_glmm": ("mmteach.bayes", "fit_bayes_glmm"),
    "bayes_factor": ("mmteach.bayes", "bayes_factor"),
    "load_dataset": ("mmteach.datasets", "load_dataset"),
    "parse_formula": ("mmteach.formula", "parse_formula"),
}


def engine(name: str) -> Callable[..., Any] | None:
    """The engine function ``name``, or None while that part of mmteach is not installed."""
    module, attr = ENGINE[name]
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError):
        return None


def unavailable(what: str) -> None:
    """Say that an analysis is missing from this build, instead of failing."""
    st.info(f"{what} is not available in this build of mmteach yet.")


# --- caching ---------------------------------------------------------------------------------
@st.cache_data(show_spinner=False, max_entries=64)
def load(name: str) -> pd.DataFrame:
    """A built-in data set (cached; the attrs keep its source label)."""
    fn = engine("load_dataset")
    if fn is None:
        raise MMTeachError("The built-in data sets are not installed in this build.")
    return fn(name)


@st.cache_data(show_spinner=False, max_entries=16)
def _load_original(name: str, raw: bytes, filename: str) -> pd.DataFrame:
    fn = engine("load_dataset")
    if fn is None:
        raise MMTeachError("The built-in data sets are not installed in this build.")
    df = fn(name, override=raw)
    df.attrs["source_file"] = filename
    return df


def _original_key(name: str) -> str:
    return f"_original.{name}"


def dataset(name: str) -> pd.DataFrame:
    """The data of example ``name``: the original file uploaded in this session if there
    is one (see :func:`original_file_picker`), else the built-in data."""
    stored = st.session_state.get(_original_key(name))
    if stored is not None:
        filename, raw = stored
        return _load_original(name, raw, filename)
    return load(name)


def source_label(df: pd.DataFrame) -> str:
    """"Original file (Example2.txt, uploaded)" or the reconstruction's label."""
    label = df.attrs.get("source_label", RECONSTRUCTION_LABEL)
    if df.attrs.get("source_file"):
        label = f"{label} ({df.attrs['source_file']}, uploaded)"
    return label


def _on_original_upload(name: str) -> None:
    up = st.session_state.get(f"_original_upload.{name}")
    st.session_state.pop(f"_original_error.{name}", None)
    if up is None:  # the file was removed from the uploader: back to the built-in data
        st.session_state.pop(_original_key(name), None)
        return
    raw = up.getvalue()
    try:
        _load_original(name, raw, up.name)
    except MMTeachError as err:
        st.session_state[f"_original_error.{name}"] = f"{up.name}: {err}"
        return
    st.session_state[_original_key(name)] = (up.name, raw)


def _back_to_reconstruction(name: str) -> None:
    st.session_state.pop(_original_key(name), None)
    st.session_state.pop(f"_original_error.{name}", None)
    st.session_state.pop(f"_original_upload.{name}", None)


def original_file_picker(name: str) -> None:
    """An expander to upload the original file of example ``name``.

    The file is checked by the original-format reader; a good file replaces the built-in
    data on every page of this session (through :func:`dataset`), a malformed one gets the
    reader's message. A button goes back to the built-in data.
    """
    filename = ORIGINAL_FILES[name]
    stored = st.session_state.get(_original_key(name))
    try:
        where = source_label(dataset(name))
    except MMTeachError:
        where = RECONSTRUCTION_LABEL
    ask = "" if stored else f" (have the original {filename}?)"
    with st.expander(f"Data: {where}{ask}"):
        st.markdown(
            f"The built-in data are a *{RECONSTRUCTION_LABEL.lower()}*: they have the "
            f"published design and reproduce the published estimates, but the values are "
            f"simulated. If you have the original **{filename}** (format as published), "
            "upload it: every page then analyses it instead, until you go back or reload "
            "the browser tab (an upload lives in this browser session only)."
        )
        st.file_uploader(f"Original {filename}", type=["txt", "csv", "tsv"],
                         key=f"_original_upload.{name}", on_change=_on_original_upload,
                         args=(name,))
        if stored:
            st.button("Back to the reconstruction", key=f"_original_reset.{name}",
                      on_click=_back_to_reconstruction, args=(name,))
    error = st.session_state.get(f"_original_error.{name}")
    if error:
        st.error(error)


@st.cache_data(show_spinner=False, max_entries=512)
def _cached_call(fn_name: str, data: pd.DataFrame, args: tuple, kwargs: tuple) -> tuple[bool, Any]:
    # Errors are cached too (as text) so an unfittable setting does not refit on each rerun.
    fn = engine(fn_name)
    if fn is None:
        return False, f"{fn_name} is not available in this build of mmteach yet."
    try:
        return True, fn(data, *args, **dict(kwargs))
    except MMTeachError as err:
        return False, (type(err).__name__, str(err))
    except ImportError:  # a part of the engine that is not installed in this build
        return False, f"{fn_name} needs a part of mmteach that is not installed in this build."


@st.cache_data(show_spinner=False, max_entries=256)
def _cached_fig(builder: str, data: pd.DataFrame, args: tuple, kwargs: tuple) -> go.Figure:
    return getattr(figures, builder)(data, *args, **dict(kwargs))


def fig(builder: str, data: pd.DataFrame, *args: Any, **kwargs: Any) -> go.Figure:
    """A figure from ``mmteach.figures`` by name, cached on the data and arguments
    (the many-panel plots take a few hundred ms to build; a cache hit is ~30 ms)."""
    return _cached_fig(builder, data, tuple(args), tuple(sorted(kwargs.items())))


class Analyses:
    """The fits a page shows side by side: results, their R/mmteach code, and errors.

    ``run`` calls an engine function through the cache. A fit that fails on purpose shows
    its teaching message (``teach`` first, the engine's text as detail) at once with
    ``st.error``, or is kept in ``errors`` for the page to show later when ``defer``.
    """

    def __init__(self, data: pd.DataFrame, *, defer: bool = False) -> None:
        self.data = data
        self.defer = defer
        self.fits: dict[str, Any] = {}
        self.code: dict[str, tuple[str, str]] = {}
        self.errors: list[str] = []

    def run(self, label: str, fn: str, *args: Any, py: str, teach: str | None = None,
            **kwargs: Any) -> Any:
        try:
            res = call(fn, self.data, *args, **kwargs)
        except MMTeachError as err:
            msg = f"**{label}: {teach}**\n\nDetail: {err}" if teach else f"{label}: {err}"
            if self.defer:
                self.errors.append(msg)
            else:
                st.error(msg)
            return None
        self.fits[label] = res
        self.code[label] = (getattr(res, "r_code", lambda: "")(), py)
        return res


def example_data(name: str) -> pd.DataFrame:
    """An example page's data set (the original file if one was uploaded, with the picker
    to upload one); a file that cannot be read stops the page with its message."""
    original_file_picker(name)
    try:
        return dataset(name)
    except MMTeachError as err:
        st.error(str(err))
        st.stop()
        raise  # unreachable: st.stop() ends the run


def call(fn_name: str, data: pd.DataFrame, *args: Any, **kwargs: Any) -> Any:
    """Call an engine function through the cache, keyed by the data and every argument.

    Raises the engine's MMTeachError subclass (ModelError, DataError, ...) with its message
    when the call fails on purpose.
    """
    kw = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in kwargs.items()))
    ok, value = _cached_call(fn_name, data, tuple(args), kw)
    if not ok:
        if isinstance(value, str):
            raise MMTeachError(value)
        cls_name, message = value
        raise getattr(errors, cls_name, MMTeachError)(message)
    return value


def try_call(fn_name: str, data: pd.DataFrame, *args: Any, **kwargs: Any) -> Any | None:
    """Like :func:`call` but shows the error in the page and returns None."""
    try:
        return call(fn_name, data, *args, **kwargs)
    except MMTeachError as err:
        st.error(str(err))
        return None


# --- state in the URL ----------------------------------------------------------------------
@dataclass(frozen=True)
class Param:
    """One control's default and the values a URL may set it to."""

    default: Any
    choices: Sequence[Any] | None = None
    lo: float | None = None
    hi: float | None = None


def _parse(text: str, spec: Param) -> Any:
    """Turn URL text into a control value of the default's type; ValueError if it is bad."""
    d = spec.default
    if isinstance(d, bool):
        if text not in ("0", "1", "true", "false"):
            raise ValueError(text)
        value: Any = text in ("1", "true")
    elif isinstance(d, int):
        value = int(text)
    elif isinstance(d, float):
        value = float(text)
        if not math.isfinite(value):
            raise ValueError(text)
    elif isinstance(d, (list, tuple)):
        value = [v for v in text.split(",") if v] if text else []
        if spec.choices is not None and any(v not in spec.choices for v in value):
            raise ValueError(text)
        return value
    else:
        value = text
    if spec.choices is not None and value not in spec.choices:
        raise ValueError(text)
    if spec.lo is not None and value < spec.lo:
        value = type(d)(spec.lo)
    if spec.hi is not None and value > spec.hi:
        value = type(d)(spec.hi)
    return value


def _clamp(value: Any, spec: Param) -> Any:
    """Keep a number inside its control's range (a slider refuses a value outside it)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    if spec.lo is not None and value < spec.lo:
        return type(spec.default)(spec.lo)
    if spec.hi is not None and value > spec.hi:
        return type(spec.default)(spec.hi)
    return value


def _unparse(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value)


class PageState:
    """Controls of one page whose values live in session state and in the URL.

    Usage: ``ps = PageState("freq", {"reml": Param(True)})``; give widgets
    ``key=ps.key("reml")``; call ``ps.sync()`` after the last widget. On a session's first
    run of the page the URL's query parameters set the controls (bad values are ignored
    with a warning); after that the controls write the URL.
    """

    def __init__(self, page: str, params: Mapping[str, Param]) -> None:
        self.page = page
        self.params: dict[str, Param] = {}
        self._bad: list[str] = []
        self._first = f"_{page}_loaded" not in st.session_state
        self.add(params)
        st.session_state[f"_{page}_loaded"] = True

    def key(self, name: str) -> str:
        """The session-state key of control ``name``."""
        return f"{self.page}.{name}"

    def add(self, params: Mapping[str, Param], *, data_token: str | None = None) -> None:
        """Declare controls (may be called again, e.g. once the mice are known).

        ``data_token`` names the data the controls refer to (e.g. the source label): when
        it changes (an original file was uploaded, or dropped), these controls go back to
        their defaults, since e.g. the cells per mouse of one file mean nothing for another.
        """
        reset = False
        if data_token is not None:
            token_key = f"_{self.page}.data_token"
            reset = st.session_state.get(token_key, data_token) != data_token
            st.session_state[token_key] = data_token
        for name, spec in params.items():
            self.params[name] = spec
            k = self.key(name)
            if reset:
                st.session_state[k] = spec.default
                continue
            if self._first and name in st.query_params:
                try:
                    st.session_state[k] = _parse(st.query_params[name], spec)
                    continue
                except ValueError:
                    self._bad.append(name)
            if k not in st.session_state:
                # a widget's value is dropped when its page is left: restore the last one
                saved = st.session_state.get(f"_saved.{k}", spec.default)
                ok = spec.choices is None or isinstance(saved, list) or saved in spec.choices
                st.session_state[k] = saved if ok else spec.default
            st.session_state[k] = _clamp(st.session_state[k], spec)

    def __getitem__(self, name: str) -> Any:
        return st.session_state[self.key(name)]

    def set(self, name: str, value: Any) -> None:
        """Set a control's value (only before its widget is drawn, or in a callback)."""
        st.session_state[self.key(name)] = value

    def sync(self) -> None:
        """Write every control to the URL (and remember it for when the page is left)."""
        if self._bad:
            st.warning("Ignored link settings that are not valid here: " + ", ".join(self._bad))
        values = {PRESENT_KEY: "1"} if st.session_state.get(PRESENT_KEY) else {}
        for name in self.params:
            value = st.session_state.get(self.key(name), self.params[name].default)
            st.session_state[f"_saved.{self.key(name)}"] = value
            values[name] = _unparse(value)
        if dict(st.query_params) != values:
            st.query_params.from_dict(values)


# --- presentation mode ---------------------------------------------------------------------
def presenting() -> bool:
    """True when the sidebar's presentation mode is on."""
    return bool(st.session_state.get(PRESENT_KEY, False))


PRESENTATION_CSS = """
<style>
/* Text, widget labels and the values inside widgets: large enough for the back row. */
.stApp, .stMarkdown p, .stMarkdown li, .stCaption, label, .stAlert p, summary p,
table, .stTable td, .stTable th, [data-testid="stWidgetLabel"] p, .stButton button p,
[data-testid="stDownloadButton"] button p, [data-testid="stExpander"] summary p,
[data-testid="stMarkdownContainer"] p, [data-testid="stMarkdownContainer"] li,
[data-testid="stSliderThumbValue"] p, [data-testid="stRadioOption"] p,
[data-testid="stTab"] p, [data-testid="stFileUploaderDropzoneInstructions"] span,
[data-testid="stMain"] input, [data-testid="stMain"] textarea, [role="option"],
[data-baseweb="tag"] span, [data-testid="stCheckbox"] p
  { font-size: 1.45rem !important; }
[data-testid="stSliderTickBar"] p, [data-testid="stTooltipIcon"] svg { font-size: 1.1rem !important; }
/* widgets grow with their text */
[data-testid="stMain"] input { min-height: 2.6rem; }
/* sliders: a bigger thumb, its value above it (not over the track), room for both */
[data-testid="stSlider"] [style*="translate(-50%, -50%)"] { width: 1.3rem !important;
  height: 1.3rem !important; }
[data-testid="stSliderThumbValue"] { top: auto !important; bottom: calc(100% + 0.1rem) !important;
  height: auto !important; }
[data-testid="stSliderThumbValue"] p { line-height: 1.2 !important; }
[data-testid="stSlider"] [role="group"] { margin-top: 1.2rem; }
[data-testid="stRadioOption"] > div > div:first-child { transform: scale(1.4); margin-right: 0.5rem; }
/* table cells the page marked "nowrap" (numbers, p-values) keep that inside their text */
[data-testid="stTable"] td p { white-space: inherit !important; }
/* long labels wrap instead of ending in "..." */
.stMarkdownEllipsis, .stMarkdownEllipsis p { white-space: normal !important;
  overflow: visible !important; text-overflow: clip !important; }
h1 { font-size: 3rem !important; } h2 { font-size: 2.3rem !important; }
h3 { font-size: 1.9rem !important; }
.katex { font-size: 1.1em !important; } .katex-display .katex { font-size: 1.5em !important; }
code { font-size: 0.9em !important; }
</style>
"""


def columns(n: int, *, gap: str = "medium") -> list[Any]:
    """``n`` side-by-side columns; in presentation mode one full-width block per item."""
    if presenting():
        return [st.container() for _ in range(n)]
    return list(st.columns(n, gap=gap))


def show_fig(fig: go.Figure, *, key: str | None = None) -> None:
    """Draw a plotly figure, with projector-sized fonts in presentation mode."""
    if presenting():  # the builders already applied the normal style
        fig = style(fig, presentation=True)
        fig.update_layout(height=int((fig.layout.height or 450) * 1.35))
    st.plotly_chart(fig, theme=None, key=key, config={"displaylogo": False})


def _cell_formatter(how: str | Callable[[Any], str] | None) -> Callable[[Any], str]:
    """How one column's cells are printed: "–" when missing, text as it is, numbers by
    ``how`` (a format string such as "{:.1f}" or a function), else by fmt_num."""
    fn = figures.display_value if how is None else (how if callable(how) else how.format)

    def shown(v: Any) -> str:
        if isinstance(v, str):
            return v
        return "–" if figures.is_missing(v) else fn(v)

    return shown


def display_table(df: pd.DataFrame,
                  formats: Mapping[str, str | Callable[[Any], str]] | None = None) -> Any:
    """A Styler that shows ``df`` as the pages print numbers: "–" for missing cells, floats
    to 4 significant digits; ``formats`` maps a column to a format string ("{:.1f}") or a
    function (e.g. ``figures.fmt_p``). Columns without missing cells keep their numbers
    underneath (they sort as numbers); a column with a missing cell is shown as text,
    since st.dataframe prints a missing cell as "None" whatever a Styler says."""
    formats = formats or {}
    if not (df.index.is_unique and df.columns.is_unique):  # a Styler needs unique labels
        return df.map(figures.display_value)
    gaps = [c for c in df.columns if df[c].isna().any()]
    numeric_gaps = _numeric_gaps(df)
    if gaps:
        df = df.copy()
        for c in gaps:
            df[c] = df[c].map(_cell_formatter(formats.get(c)))
    styler = df.style.format(_cell_formatter(None))
    for col, how in formats.items():
        if col in df.columns and col not in gaps:
            styler = styler.format(_cell_formatter(how), subset=[col])
    # numbers and p-values never break inside ("2e-" / "16"); long text columns may wrap
    short = [c for c in df.columns
             if df[c].map(lambda v: len(figures.display_value(v))).max() <= 16]
    if short and len(df):
        styler = styler.set_properties(subset=short, **{"white-space": "nowrap"})
    if numeric_gaps:  # numbers shown as text still line up on the right
        styler = styler.set_properties(subset=numeric_gaps, **{"text-align": "right"})
    return styler


def _numeric_gaps(df: pd.DataFrame) -> list[Any]:
    """Numeric columns with a missing cell (shown as text, so they need right alignment)."""
    return [c for c in df.columns
            if pd.api.types.is_numeric_dtype(df[c]) and df[c].isna().any()]


def show_table(df: pd.DataFrame, *, name: str, key: str, hide_index: bool = False,
               formats: Mapping[str, str | Callable[[Any], str]] | None = None) -> None:
    """A table plus its CSV download button; a large HTML table in presentation mode.

    Both show empty cells as "–" and floats as the page's formatter does.
    """
    shown = display_table(df, formats)
    if presenting():
        st.table(shown, hide_index=hide_index)
    else:
        # small tables in full (no scrolling for 11 mice); long ones scroll. Row names such
        # as "LME (REML, Satterthwaite)" get a column wide enough to read them.
        config: dict[Any, Any] = {
            c: st.column_config.TextColumn(alignment="right") for c in _numeric_gaps(df)}
        if not hide_index and df.index.astype(str).str.len().max() > 14:
            config["_index"] = st.column_config.TextColumn(width="medium")
        st.dataframe(shown, hide_index=hide_index,
                     height="content" if len(df) <= 25 else "auto",
                     column_config=config or None)
    st.download_button(
        f"Download {name} (CSV)", df.to_csv(index=not hide_index).encode(),
        file_name=f"{key}.csv", mime="text/csv", key=f"dl_{key}",
    )


def source_note(df: pd.DataFrame, name: str) -> None:
    """Say where the data come from, under the data and in the sidebar."""
    label = source_label(df)
    st.caption(f"Data: **{name}** — {label}.")
    st.sidebar.caption(f"Data on this page: {label}.")


def too_few_groups(n_groups: int, unit: str = "mouse") -> str | None:
    """The teaching sentence for a mixed model asked to run on fewer than two groups."""
    if n_groups >= 2:
        return None
    return (f"With one {unit} there is no {unit}-to-{unit} variation to estimate: a mixed "
            f"model needs at least two mice; compare the per-{unit} fit instead.")


def data_download(df: pd.DataFrame, key: str) -> None:
    """A CSV download of exactly the rows the page analyses."""
    st.download_button(
        f"Download the data shown ({len(df):,} rows, CSV)", df.to_csv(index=False).encode(),
        file_name=f"{key}.csv", mime="text/csv", key=f"dl_data_{key}",
    )


def code_expander(fits: Mapping[str, Any]) -> None:
    """An expander with the R call (and the mmteach call) of each fit shown."""
    with st.expander("Show the R and mmteach code of each fit"):
        for name, (r_code, py_code) in fits.items():
            st.markdown(f"**{name}**")
            if r_code:
                st.code(r_code, language="r")
            if py_code:
                st.code(py_code, language="python")


def fit_messages(result: Any) -> None:
    """Show a fit's warnings (singular fit, no convergence, notes) as short notes."""
    for msg in getattr(result, "messages", ()) or ():
        st.caption(f"Note: {msg}")


# --- benchmark: slowest page rerun after a control change ----------------------------------
# (page, widget kind, widget key, two values to flip between); every value is warmed first
RERUN_BENCH_CONTROLS: tuple[tuple[str, str, str, tuple[Any, Any]], ...] = (
    ("pages/2_frequency.py", "radio", "freq.estimation", ("ML", "REML")),
    ("pages/3_amplitude.py", "radio", "amp.estimation", ("REML", "ML")),
    ("pages/4_water-lick.py", "slider", "lick.bins", (6, 5)),
    ("pages/5_your-data.py", "selectbox", "yours.dataset", ("water_lick", "ca_frequency")),
)


def make_page_rerun_bench() -> Callable[[], float]:
    """Set up ``page_rerun_max`` for ``mmteach.bench``: the timed call reruns the slowest page.

    Untimed setup: open every page in AppTest on the built-in data, flip its control to both
    values (so the caches are warm for unchanged inputs) and time one flip per page; the
    returned callable flips the control of the slowest page once and reruns it.
    """
    import time
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    app = Path(__file__).resolve().parent / "app.py"
    apps = []
    for page, kind, key, values in RERUN_BENCH_CONTROLS:
        at = AppTest.from_file(str(app), default_timeout=600).run()
        at.switch_page(page).run()
        state = {"i": 0}

        def flip(at: AppTest = at, kind: str = kind, key: str = key,
                 values: tuple[Any, Any] = values, state: dict = state) -> None:
            getattr(at, kind)(key=key).set_value(values[state["i"] % 2]).run()
            state["i"] += 1
            if at.exception:
                raise RuntimeError(f"{key}: {at.exception[0].value}")

        flip()
        flip()  # both values warm
        t0 = time.perf_counter()
        flip()
        apps.append((time.perf_counter() - t0, flip))
    return max(apps, key=lambda item: item[0])[1]
