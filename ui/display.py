"""How pages show results: tables, figures, code, notes, and the presentation-mode CSS."""

from __future__ import annotations

import logging
import os
import re
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from pandas.io.formats.style import Styler

from mmteach import budget, figures, validate
from mmteach.figures import style
from ui import marshal_once
from ui.cache import BoundedCache, SharedFigure, data_token, figure_bytes, shared
from ui.state import presenting

marshal_once.install()  # shared tables are serialised once, not on every rerun

PRESENTATION_CSS = """
<style>
/* Text, widget labels and the values inside widgets: large enough for the back row. */
.stApp, .stMarkdown p, .stMarkdown li, .stCaption, label, .stAlert p, summary p,
table, .stTable td, .stTable th, [data-testid="stWidgetLabel"] p, .stButton button p,
[data-testid="stDownloadButton"] button p, [data-testid="stExpander"] summary p,
[data-testid="stMarkdownContainer"] p, [data-testid="stMarkdownContainer"] li,
[data-testid="stSliderThumbValue"] p, [data-testid="stRadioOption"] p,
[data-testid="stFileUploaderDropzoneInstructions"] span,
[data-testid="stMain"] input, [data-testid="stMain"] textarea, [role="option"],
[data-testid="stCheckbox"] p, [data-testid="stButtonGroup"] button p
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
/* a cell's text sits in a markdown block inside the td: it takes the td's white-space, so a
   stacked cell ("estimate ± SE" over "p = ...") breaks at its newline (pre-line, below) and a
   cell the page marked "nowrap" (numbers, p-values) stays on one line */
[data-testid="stTable"] td [data-testid="stMarkdownContainer"], [data-testid="stTable"] td p
  { white-space: inherit !important; }
/* long labels wrap instead of ending in "..." */
.stMarkdownEllipsis, .stMarkdownEllipsis p { white-space: normal !important;
  overflow: visible !important; text-overflow: clip !important; }
/* control labels, tags and radio options: projector-sized, never broken inside a word */
[data-testid="stMultiSelectTagsContainer"] [data-tag] > span { font-size: 1.3rem !important; }
[data-testid="stRadioOption"] p, [data-testid="stWidgetLabel"] p, [data-testid="stMain"] button p
  { word-break: normal !important; overflow-wrap: normal !important; hyphens: none !important; }
[data-testid="stRadioOption"] p { white-space: nowrap !important; }
[data-testid="stRadioGroup"] { flex-wrap: wrap; row-gap: 0.3rem; }
/* checkboxes and toggles grow with their labels */
[data-testid="stCheckbox"] label > div:first-of-type { transform: scale(1.5); transform-origin: left center;
  margin-right: 0.9rem; }
/* tables fit the screen: cells wrap (estimate over p, long names), never scroll sideways */
[data-testid="stTable"] table { width: 100% !important; max-width: 100%; }
[data-testid="stTable"] td, [data-testid="stTable"] th { white-space: pre-line; overflow-wrap: anywhere; }
[data-testid="stTable"] > div { overflow-x: visible !important; }
/* the first screen shows content, not padding */
[data-testid="stMainBlockContainer"] { padding-top: 2rem !important; }
h1 { font-size: 2.4rem !important; } h2 { font-size: 2.3rem !important; }
h3 { font-size: 1.9rem !important; }
.katex { font-size: 1.1em !important; } .katex-display .katex { font-size: 1.5em !important; }
code { font-size: 0.9em !important; }
</style>
"""


# Every ASCII punctuation character may be backslash-escaped in Markdown (CommonMark); an
# escaped one is shown as itself. Escaping all of them means no link, emphasis, heading,
# list, HTML tag, entity, LaTeX ($) or bare-URL autolink can come out of user text.
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:&@=\"'^%,;?/])")


def escape_markdown(text: object) -> str:
    r"""Text that Streamlit's Markdown shows literally (user text inside our messages).

    Examples
    --------
    >>> print(escape_markdown("[Log in](http://e.invalid) **x**"))
    \[Log in\]\(http\:\/\/e\.invalid\) \*\*x\*\*
    """
    lines = str(text).replace("\r", "").split("\n")
    # a single newline would join the lines in Markdown: keep them as separate lines
    return "  \n".join(_MD_SPECIAL.sub(r"\\\1", line) for line in lines)


# The title of the box app.py shows for an error no page explains (tests look for it).
UNEXPECTED = "This page stopped because of an unexpected problem on the server"


@contextmanager
def unexpected_errors(where: str) -> Iterator[None]:
    """Around a page (app.py) and around every fragment's body: an error no page explains
    goes, with its traceback, to the server log only (the shipped config has
    client.showErrorDetails = "none"); the student gets a plain sentence. Fragments need
    their own: Streamlit draws an exception raised in a fragment itself (a redacted "This
    app has encountered an error") before it could reach app.py."""
    try:
        yield
    except Exception:  # noqa: BLE001 - st.stop() and reruns are BaseExceptions and pass through
        logging.getLogger("mmteach").exception("unexpected error in %s", where)
        error(UNEXPECTED, "Nothing you entered is lost. Change the last setting, or reload the "
              "page; if it happens again, tell the instructor which page and settings you used.")


def error(title: str, detail: object = None) -> None:
    """An error box whose text is never read as Markdown or HTML.

    ``title`` (in bold) and ``detail`` (e.g. an MMTeachError, whose message may quote a
    student's formula, column names or file contents) are escaped; the excerpt of a formula
    with its caret line (the indented lines of a FormulaError) is shown as code, where the
    caret lines up.
    """
    body = f"**{escape_markdown(title)}**" if title else ""
    excerpt: list[str] = []
    if detail is not None:
        lines = str(detail).split("\n")
        excerpt = [ln[4:] for ln in lines if ln.startswith("    ")]
        prose = escape_markdown(" ".join(ln for ln in lines if not ln.startswith("    ")))
        body = f"{body}  \n{prose}" if body else prose
    st.error(body)
    if excerpt:
        st.code("\n".join(excerpt), language=None)


def note(text: str, *, kind: str = "info") -> None:
    """An info or warning box for a sentence that quotes user text (escaped, as in error)."""
    (st.warning if kind == "warning" else st.info)(escape_markdown(text))


def skipped(analysis: str, n_groups: int, n_rows: int, *, label: str, unit: str = "groups",
            plural: bool = True) -> bool:
    """True when ``analysis`` is too big for these data (mmteach.budget), after saying so in
    a note: what was left out, the size of the data, the limit and why."""
    reason = budget.skip_reason(analysis, n_groups, n_rows, label=label, unit=unit, plural=plural)
    if reason:
        note(reason)
    return reason is not None


def check_plottable(data: pd.DataFrame, group: str) -> None:
    """Raise DataError (with the engine's teaching message) for values no figure can draw:
    infinite or extreme numbers, ids too large to keep apart."""
    validate.check_values(data, [c for c in data.columns if c != group], [group])


def columns(n: int, *, gap: str = "medium") -> list[Any]:
    """``n`` side-by-side columns; in presentation mode one full-width block per item."""
    if presenting():
        return [st.container() for _ in range(n)]
    return list(st.columns(n, gap=gap))


# Projector versions of shared figures, kept beside them (keyed by the shared figure's id; a
# weak reference tells a reused id from the same figure).
PRESENTED = BoundedCache(256, 64)


def _projector_copy(fig: go.Figure) -> go.Figure:
    # a copy: figures from compute.fig are shared by every session
    big = style(go.Figure(fig), presentation=True)  # the builders already applied the normal style
    big.update_layout(height=int((big.layout.height or 450) * 1.35))
    return shared(big)


def _kept_projector_copy(fig: SharedFigure) -> tuple[tuple[Any, go.Figure], int]:
    big = _projector_copy(fig)
    return (weakref.ref(fig), big), figure_bytes(big)


def presentation_figure(fig: go.Figure) -> go.Figure:
    """``fig`` restyled for a projector; made once per shared figure (restyling costs 20-60 ms,
    on every rerun of the instructor's page otherwise)."""
    if not isinstance(fig, SharedFigure):
        return _projector_copy(fig)
    ref, big = PRESENTED.get_or_compute(("present", id(fig)),
                                        lambda: _kept_projector_copy(fig))
    return big if ref() is fig else _projector_copy(fig)


def show_fig(fig: go.Figure, *, key: str | None = None) -> None:
    """Draw a plotly figure, with projector-sized fonts in presentation mode.

    The figure is shown as a shared figure (``ui.cache.SharedFigure``: the browser draws it
    once, not twice), so it must not be changed after it is shown."""
    if presenting():
        fig = presentation_figure(fig)
    fig = shared(fig)
    st.plotly_chart(fig, theme=None, key=key, config={"displaylogo": False})


def _plotly_chunk() -> str | None:
    """File name of Streamlit's plotly.js chunk (``static/js/PlotlyChart.<hash>.js``), or None."""
    found = sorted((Path(st.__file__).parent / "static" / "static" / "js").glob("PlotlyChart.*.js"))
    return found[0].name if len(found) == 1 else None


PLOTLY_CHUNK = _plotly_chunk()
# Starts the import once the page has been idle and the student has not clicked or typed for
# PRELOAD_QUIET_MS: the import is one ~0.6 s task on the browser's main thread, and a control
# changed while it runs waits for it (a simulation slider moved right after a page opened by
# its link: 0.84-0.88 s to the redraw instead of 0.13-0.14 s). Resolved against the main
# bundle's own URL (so it is the same module React imports later, under any base path); a
# failure only means the chart pays for the import itself, as without this.
# ``window.__mmteachPlotly`` says how far it got.
PRELOAD_QUIET_MS = 1000
_PRELOAD_JS = """<script>(() => {
  const main = document.querySelector('script[type="module"][src*="/static/js/index."]');
  if (!main || window.__mmteachPlotly) return;
  window.__mmteachPlotly = "waiting";
  const idle = window.requestIdleCallback || ((f) => setTimeout(f, 200));
  const inputs = ["pointerdown", "keydown"];
  let lastInput = 0;
  const touched = () => { lastInput = performance.now(); };
  const start = () => {
    inputs.forEach((t) => window.removeEventListener(t, touched, true));
    window.__mmteachPlotly = "importing";
    window.__mmteachPlotlyStarted = performance.now();
    import(new URL("./%(chunk)s", main.src).href)
      .then(() => { window.__mmteachPlotly = "loaded"; }, () => { window.__mmteachPlotly = "failed"; });
  };
  const wait = () => idle(() => {
    const quietFor = %(quiet)d - (performance.now() - lastInput);
    if (quietFor > 0) setTimeout(wait, quietFor); else start();
  });
  inputs.forEach((t) => window.addEventListener(t, touched, {capture: true, passive: true}));
  touched();
  wait();
})();</script>"""


def preload_chart_library() -> None:
    """Have the browser load plotly.js (a 4.7 MB script it spends ~0.7 s of its main thread
    on) while the student reads, not when a page's first chart arrives.

    Streamlit imports it only for the first chart, so the first chart page a student moves to
    from the overview waited for it: alone, 1.7-2.5 s to that page drawn without this and
    1.0-1.5 s with it (3 Dec 2026). A page opened by its own address gains nothing: the
    browser is busy the whole time. The import waits for a quiet second (no click, no key:
    ``PRELOAD_QUIET_MS``) so that it does not hold up a control the student is changing.
    Nothing is shown. Skipped if this Streamlit's chunk is not where it is expected.
    """
    if PLOTLY_CHUNK is not None:
        st.html(_PRELOAD_JS % {"chunk": PLOTLY_CHUNK, "quiet": PRELOAD_QUIET_MS}, unsafe_allow_javascript=True)


def _cell_formatter(how: str | Callable[[Any], str] | None) -> Callable[[Any], str]:
    """How one column's cells are printed: "–" when missing, text as it is, numbers by
    ``how`` (a format string such as "{:.1f}" or a function), else by fmt_num."""
    fn = figures.display_value if how is None else (how if callable(how) else how.format)

    def shown(v: Any) -> str:
        if isinstance(v, str):
            return v
        return "–" if figures.is_missing(v) else fn(v)

    return shown


def _translate_once(styler: Styler) -> Styler:
    """``styler`` with pandas' rendering done once and kept, for a Styler that every session shares.

    Streamlit marshals a Styler by calling its ``_compute`` and ``_translate`` (pandas' own
    per-cell rendering) on every rerun: in a load test that was nearly half the server's
    time for an unchanged page. The translation depends only on the data and the formats, so
    it is kept on the instance (Streamlit accepts only the Styler class itself, so the two
    methods are wrapped per instance rather than overridden in a subclass).
    """
    compute, translate = styler._compute, styler._translate
    memo: dict[Any, Any] = {}

    def compute_once() -> Any:
        return styler if memo else compute()

    def translate_once(*args: Any, **kwargs: Any) -> Any:
        key = (args, tuple(sorted(kwargs.items())))
        if key not in memo:
            memo[key] = marshal_once.share_styles(translate(*args, **kwargs))
        return memo[key]

    styler._compute = compute_once  # instance attributes: found before the class's methods
    styler._translate = translate_once
    return styler


# Tables shown (their translated Stylers), keyed by the data and the formats.
TABLES = BoundedCache(int(os.environ.get("MMTEACH_TABLE_CACHE_ENTRIES", 1024)),
                      float(os.environ.get("MMTEACH_TABLE_CACHE_MB", 64)))


def _formats_key(formats: Mapping[str, str | Callable[[Any], str]] | None) -> tuple:
    """A hashable form of ``formats``: format strings as they are, functions by identity
    (the pages pass module-level functions and partials that live as long as the server)."""
    return tuple((str(c), how if isinstance(how, str) else ("fn", id(how)))
                 for c, how in (formats or {}).items())


def shared_table(df: pd.DataFrame, formats: Mapping[str, str | Callable[[Any], str]] | None = None,
                 *, html: bool = False) -> Any:
    """:func:`display_table` of ``df``, built and translated once for every session."""
    key = (data_token(df), tuple(map(str, df.index.names)), _formats_key(formats), html)

    def build() -> tuple[Any, int]:
        styler = display_table(df, formats, html=html)
        if isinstance(styler, Styler):
            _translate_once(styler)
            marshal_once.share_frame(styler.data)
        return styler, int(df.memory_usage(deep=True).sum()) * 4 + 4096  # data, display text, styles

    return TABLES.get_or_compute(key, build)


def display_table(df: pd.DataFrame, formats: Mapping[str, str | Callable[[Any], str]] | None = None,
                  *, html: bool = True) -> Any:
    """A Styler that shows ``df`` as the pages print numbers: "–" for missing cells, floats
    to 4 significant digits; ``formats`` maps a column to a format string ("{:.1f}") or a
    function (e.g. ``figures.fmt_p``). Columns without missing cells keep their numbers
    underneath (they sort as numbers); a column with a missing cell is shown as text,
    since st.dataframe prints a missing cell as "None" whatever a Styler says.

    ``html`` adds the layout CSS an HTML table (``st.table``) needs; st.dataframe's grid reads
    only colours and font weight from a Styler, and per-cell CSS costs marshalling time."""
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
    if not html:
        return styler
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
    shown = shared_table(df, formats, html=presenting())
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
        # a callable: the CSV is made when a student clicks, not on every rerun
        f"Download {name} (CSV)", lambda: df.to_csv(index=not hide_index).encode(),
        file_name=f"{key}.csv", mime="text/csv", key=f"dl_{key}",
    )


def too_few_groups(n_groups: int, unit: str = "mouse") -> str | None:
    """The teaching sentence for a mixed model asked to run on fewer than two groups."""
    if n_groups >= 2:
        return None
    return (f"With one {unit} there is no {unit}-to-{unit} variation to estimate: a mixed "
            f"model needs at least two mice; compare the per-{unit} fit instead.")


LAZY_PREFIX = "open."  # the session-state key of every lazy expander starts so (tests open them all)


@contextmanager
def lazy_expander(label: str, *, key: str, expanded: bool = False) -> Iterator[bool]:
    """An expander whose content is computed and sent only while it is open: yields whether it is.

    Streamlit runs and sends a closed expander's content on every rerun: on the amplitude page
    the closed code, cell-count and partial-pooling sections (and the pooling fit behind them)
    cost a cached rerun a quarter of its server CPU (AppTest, 60 ms closed against 78-96 ms
    open). Opening one reruns the page; nothing in a lazy expander may be a widget whose
    value must outlive its closing.

    >>> with lazy_expander("Variance components", key="freq.varcomp") as is_open:  # doctest: +SKIP
    ...     if is_open:
    ...         show_table(...)
    """
    box = st.expander(label, expanded=expanded, key=LAZY_PREFIX + key, on_change="rerun")
    with box:
        yield bool(box.open)


def is_open(key: str) -> bool:
    """Whether the lazy expander ``key`` is open (before it is drawn: e.g. to prefetch its fits)."""
    return bool(st.session_state.get(LAZY_PREFIX + key, False))


def code_expander(fits: Mapping[str, Any], *, key: str) -> None:
    """An expander with the R call (and the mmteach call) of each fit shown (built only when open)."""
    with lazy_expander("Show the R and mmteach code of each fit", key=f"{key}.code") as shown:
        if not shown:
            return
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
