"""Plotly figures for the teaching pages (tables are formatted by :mod:`mmteach.tables`).

Every builder takes plain DataFrames and returns a ``go.Figure``, so the pages only lay
things out. The figures redraw the published ones
(Yu et al. 2022): pooled vs per-mouse boxplots, spaghetti and before/after plots, the
per-mouse correlation boxplot, binned lick proportions with GLMM curves, caterpillar and
forest plots.
"""

from __future__ import annotations

import copy
import functools
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots as plotly_make_subplots

from mmteach.errors import DataError

# The table formatters moved to mmteach.tables; pages still reach them as figures.fmt_p etc.
# until they import tables themselves (pages are edited after the lead's slimming lands).
from mmteach.tables import (  # noqa: E402, F401, I001
    COMPARISON_COLUMNS,
    comparison_rows,
    display_value,
    fmt_df,
    fmt_est_se,
    fmt_num,
    fmt_p,
    format_side_by_side,
    is_missing,
)
from mmteach.tables import natural_levels as _levels  # groups in natural order: 2 before 10

# Okabe-Ito colours, ordered so the first four (the time points of Example 2) stay apart for
# deuteranopes and protanopes too (tests/test_figures.py measures it); yellow last: faint on white.
PALETTE: tuple[str, ...] = (
    "#E69F00", "#0072B2", "#009E73", "#000000", "#56B4E9", "#D55E00", "#CC79A7", "#999999",
    "#F0E442",
)
SIGNIFICANT = "#D55E00"  # vermillion, with a diamond marker: not told by colour alone
NOT_SIGNIFICANT = "#0072B2"
_BASE_FONT = 13
_PRESENTATION_FONT = 22


def _need(data: pd.DataFrame, *cols: str) -> None:
    missing = [c for c in cols if c not in data.columns]
    if missing:
        raise DataError(
            f"Cannot draw the plot: no column {', '.join(map(repr, missing))} in the data "
            f"(columns: {', '.join(map(str, data.columns))})."
        )


def _label(level: Any, labels: Mapping[Any, str] | None) -> str:
    if labels is not None:
        for key in (level, str(level)):
            if key in labels:
                return labels[key]
    return str(level)


def _grid(n: int, cols: int) -> tuple[int, int]:
    cols = max(1, min(cols, n))
    return math.ceil(n / cols) if n else 1, cols


def _cell(i: int, cols: int) -> tuple[int, int]:
    return i // cols + 1, i % cols + 1


_LINK_TAG = re.compile(r"<(/?a\b)", re.IGNORECASE)


def _no_links(value: Any) -> Any:
    """``value`` with plotly's link tags (``<a href=...>``) made literal text.

    Plotly renders a small HTML subset in every title, name and category label; column names
    and group levels come from a student's file, and a link there would be live in the page.
    Only ``<a`` is defused: the builders' own ``<br>``/``<b>`` keep working.

    >>> _no_links('mouse <a href="http://x.invalid">login</a>')
    'mouse &lt;a href="http://x.invalid">login&lt;/a>'
    """
    if isinstance(value, str):
        return _LINK_TAG.sub(r"&lt;\1", value)
    if isinstance(value, (list, tuple, np.ndarray)) and len(value) and any(
            isinstance(v, str) and "<" in v for v in value):
        return [(_LINK_TAG.sub(r"&lt;\1", v) if isinstance(v, str) else v) for v in value]
    return value


def _defuse_layout_links(lay: dict[str, Any]) -> None:
    """No live links from user text in a layout dict (titles, axes, annotations), in place."""
    titled = [lay, lay.get("legend", {}), *(v for k, v in lay.items() if _AXIS_KEY.match(k))]
    for part in titled:
        title = part.get("title")
        if isinstance(title, dict) and title.get("text"):
            title["text"] = _no_links(title["text"])
        elif isinstance(title, str):
            part["title"] = _no_links(title)
    for ann in lay.get("annotations", ()):
        if ann.get("text"):
            ann["text"] = _no_links(ann["text"])


_TEXT_PROPS = ("name", "x", "y", "text", "hovertext")


def _defuse_links(fig: go.Figure, lay: dict[str, Any]) -> None:
    """No live links from user text anywhere in ``fig`` (titles, axes, annotations, traces);
    ``lay`` is the layout as a dict, edited in place."""
    _defuse_layout_links(lay)
    for tr in fig.data:
        for prop in _TEXT_PROPS:
            value = tr[prop] if prop in tr else None
            if value is not None:
                new = _no_links(value)
                if new is not value:  # only figures that carry a link tag are rewritten
                    tr[prop] = new


_AXIS_KEY = re.compile(r"^[xy]axis\d*$")


def style(fig: go.Figure, *, presentation: bool = False) -> go.Figure:
    """Common look; ``presentation`` enlarges fonts, markers and margins for a projector.

    Axes use ``automargin`` so tick labels never run into the axis titles, whatever the
    font size; the top margin leaves room for a title above subplot titles.
    """
    # The layout is edited as a plain dict and put back once without re-validation (the
    # builders' layouts are valid already): plotly's per-property update path took 60-150 ms
    # a figure with subplots (half of building one, and a control change redraws several).
    lay = fig.layout.to_plotly_json()
    # the default template goes back as plotly's shared object (the layout setter does that);
    # rebuilt from its dict it would cost ~40 ms
    lay = copy.deepcopy({k: v for k, v in lay.items() if k != "template"})
    _style_layout(lay, presentation=presentation)
    if presentation:
        fig.for_each_trace(_bigger_markers, selector={"type": "scatter"})
    _defuse_links(fig, lay)
    fig._validate = False  # plotly's own switch (BaseFigure(_validate=...)), for this swap only
    try:
        fig.layout = lay
    finally:
        fig._validate = True
    return fig


def _style_layout(lay: dict[str, Any], *, presentation: bool = False) -> None:
    """The layout part of :func:`style`, on a layout dict (in place)."""
    size = _PRESENTATION_FONT if presentation else _BASE_FONT
    margin = ({"l": 70, "r": 30, "t": 120, "b": 70} if presentation
              else {"l": 60, "r": 20, "t": 70, "b": 50})
    own_margin = lay.get("margin", {})
    for side in margin:  # a builder may need more room on a side (e.g. a label at the right)
        own = own_margin.get(side)
        if own is not None:
            margin[side] = max(margin[side], int(own * (1.4 if presentation else 1)))
    # plain properties, not template="plotly_white": building a template deep-copies it
    # (~70 ms a figure), too slow for a 1 s rerun budget
    lay["font"] = {**lay.get("font", {}), "size": size, "color": "#2a3f5f"}
    lay["paper_bgcolor"] = lay["plot_bgcolor"] = "white"
    lay["margin"] = {**own_margin, **margin}
    legend = lay.setdefault("legend", {})
    legend["font"] = {**legend.get("font", {}), "size": size - 2 if presentation else size}
    grid = {"gridcolor": "#e5ecf6", "zerolinecolor": "#c8d4e3", "linecolor": "#c8d4e3"}
    lay.setdefault("xaxis", {})
    lay.setdefault("yaxis", {})
    axes = [k for k in lay if _AXIS_KEY.match(k)]
    for key in axes:
        lay[key].update(grid)
        # automargin where a title can meet tick labels (and on a single pair of axes): on
        # the untitled inner axes of a panel grid it only made the browser lay the chart
        # out again (~0.1 s of the amplitude page's 11-panel charts in Chromium)
        title = lay[key].get("title")
        titled = bool(title.get("text") if isinstance(title, dict) else title)
        lay[key]["automargin"] = titled or len(axes) <= 2
    for ann in lay.get("annotations", ()):
        ann["font"] = {**ann.get("font", {}), "size": size + 1}


@functools.lru_cache(maxsize=128)
def _titled_grid(rows: int, cols: int, n_titles: int | None,
                 options: tuple[tuple[str, Any], ...]) -> tuple[dict[str, Any], Any, str]:
    """make_subplots' layout (as a dict) and grid references for one grid, computed once,
    with placeholder subplot titles ("\x00" and the title's rank) where the titles go."""
    titles = None if n_titles is None else [f"\x00{i}" for i in range(n_titles)]
    fig = plotly_make_subplots(rows=rows, cols=cols, subplot_titles=titles, **dict(options))
    lay = {k: v for k, v in fig.layout.to_plotly_json().items() if k != "template"}
    return lay, fig._grid_ref, fig._grid_str


def _subplot_grid(rows: int, cols: int, titles: tuple[str, ...] | None,
                  options: tuple[tuple[str, Any], ...]) -> tuple[dict[str, Any], Any, str]:
    """make_subplots' layout (a fresh dict) and grid references for one grid and its titles.

    The grid is computed once per shape, not per set of titles: titles such as "Mouse 2
    (739 cells, 43%)" change with every slider move, and plotly's make_subplots takes
    ~50 ms. The titles are written into the placeholders' annotations (plotly makes none
    for an empty title, so neither does this)."""
    lay, grid_ref, grid_str = _titled_grid(rows, cols, None if titles is None else len(titles), options)
    lay = copy.deepcopy(lay)
    if titles is not None and "annotations" in lay:
        kept = []
        for ann in lay["annotations"]:
            text = ann.get("text")
            if isinstance(text, str) and text.startswith("\x00"):
                ann["text"] = titles[int(text[1:])]
                if not ann["text"]:
                    continue
            kept.append(ann)
        lay["annotations"] = kept
    return lay, grid_ref, grid_str


def make_subplots(*, rows: int, cols: int, subplot_titles: Sequence[str] | None = None,
                  **options: Any) -> go.Figure:
    """plotly's make_subplots, with each grid's layout computed once and reused.

    plotly builds a grid through its per-property update path: 50-100 ms for the 12 panels
    of a per-mouse figure, on every control change that changes the data. The layout depends
    only on these arguments, so it is kept (LRU, 128 grids) and put into a new figure without
    re-validation; ``add_trace(row=, col=)`` works as on plotly's own figure.
    """
    lay, grid_ref, grid_str = _subplot_grid(
        rows, cols, tuple(subplot_titles) if subplot_titles is not None else None,
        tuple(sorted(options.items())))
    fig = go.Figure()
    fig._validate = False  # plotly's own switch; the cached layout is plotly's, valid already
    try:
        fig.layout = lay
    finally:
        fig._validate = True
    fig.__dict__["_grid_ref"] = grid_ref  # as plotly's make_subplots attaches them
    fig.__dict__["_grid_str"] = grid_str
    return fig


def dict_figure(traces: Sequence[dict[str, Any]], layout: Mapping[str, Any]) -> go.Figure:
    """A styled figure on one pair of axes assembled from plain dicts (plotly trace dicts and
    a layout dict): the figure ``go.Figure`` + ``add_traces`` + ``update_layout`` +
    :func:`style` give, without plotly's per-property checks (see :func:`grid_figure`)."""
    lay = copy.deepcopy(dict(layout))
    if isinstance(lay.get("title"), str):
        lay["title"] = {"text": lay["title"]}
    _style_layout(lay)
    _defuse_layout_links(lay)
    fig = go.Figure({"data": [_defused_trace(t) for t in traces], "layout": lay}, _validate=False)
    fig._validate = True  # later edits (presentation mode) are checked as usual
    return fig


def _defused_trace(trace: Mapping[str, Any]) -> dict[str, Any]:
    trace = dict(trace)
    for prop in _TEXT_PROPS:
        if trace.get(prop) is not None:
            trace[prop] = _no_links(trace[prop])
    return trace


def grid_figure(traces: Sequence[dict[str, Any]], cells: Sequence[tuple[int, int]], *, rows: int, cols: int,
                subplot_titles: Sequence[str], layout: Mapping[str, Any],
                x_titles: Mapping[int, str] | None = None, y_titles: Mapping[int, str] | None = None,
                **options: Any) -> go.Figure:
    """A styled figure of subplot panels assembled from plain dicts: ``traces`` (plotly trace
    dicts) go to ``cells`` ((row, col), from 1), ``x_titles`` name the x axes of a row and
    ``y_titles`` the y axes of a column, ``layout`` adds top-level layout (title, height).

    The same figure as :func:`make_subplots`, ``add_traces``, ``update_xaxes``/``update_yaxes``
    and :func:`style` give (the per-mouse figures' tests compare their JSON), built without
    plotly's per-property checks, which took ~80% of building an 11-panel figure: every
    slider move that changes the data builds two or three of them in the server's one
    interpreter lock. The dicts come from this module's own builders, never from user input
    unchecked (text passes :func:`_no_links` like every figure's).
    """
    lay, grid_ref, grid_str = _subplot_grid(
        rows, cols, tuple(subplot_titles), tuple(sorted(options.items())))
    for row, title in (x_titles or {}).items():
        for c in range(cols):
            lay[grid_ref[row - 1][c][0].layout_keys[0]]["title"] = {"text": title}
    for col, title in (y_titles or {}).items():
        for r in range(rows):
            lay[grid_ref[r][col - 1][0].layout_keys[1]]["title"] = {"text": title}
    for key, value in layout.items():
        lay[key] = {"text": value} if key == "title" and isinstance(value, str) else value
    _style_layout(lay)
    _defuse_layout_links(lay)
    data = [_defused_trace({**trace, **grid_ref[r - 1][c - 1][0].trace_kwargs})
            for trace, (r, c) in zip(traces, cells, strict=True)]
    fig = go.Figure({"data": data, "layout": lay}, _validate=False)
    fig._validate = True  # later edits (presentation mode) are checked as usual
    fig.__dict__["_grid_ref"] = grid_ref  # as plotly's make_subplots attaches them
    fig.__dict__["_grid_str"] = grid_str
    return fig


def _bigger_markers(trace: Any) -> None:
    """Markers at least 10 px; sizes that encode a number (an array) are scaled instead."""
    size = trace.marker.size
    if size is None or np.isscalar(size):
        trace.marker.size = max(10, size or 0)
    else:
        trace.marker.size = np.asarray(size, dtype=float) * 1.4


# --- Example 2: pooled vs per mouse -------------------------------------------------------
def pooled_boxplot(
    data: pd.DataFrame,
    response: str,
    x: str,
    *,
    labels: Mapping[Any, str] | None = None,
    title: str = "All mice pooled",
    y_title: str | None = None,
) -> go.Figure:
    """One box per level of ``x`` with all cells pooled (panel A of the Example 2 figure)."""
    _need(data, response, x)
    levels = _levels(data[x])
    boxes = [{"type": "box", "y": part[response].to_numpy(), "name": _label(level, labels),
              "marker": {"color": PALETTE[i % len(PALETTE)]}, "boxpoints": "outliers", "legendgroup": str(level)}
             for i, (level, part) in enumerate(zip(levels, _split(data, x, levels), strict=True))]
    return dict_figure(boxes, {"title": title, "yaxis": {"title": {"text": y_title or response}},
                               "showlegend": False})


def per_mouse_boxplot(
    data: pd.DataFrame,
    response: str,
    x: str,
    group: str,
    *,
    labels: Mapping[Any, str] | None = None,
    cols: int = 2,
    group_name: str = "Mouse",
    unit: str = "cells",
    y_title: str | None = None,
) -> go.Figure:
    """Boxes by ``x`` in one panel per ``group`` (panel B of the Example 2 figure).

    Panel titles give each mouse's share of the rows (``unit`` names them: cells, trials,
    rows); the y axes are shared so the mice can be compared at a glance.
    """
    _need(data, response, x, group)
    groups = _levels(data[group])
    if not groups:
        raise DataError("There are no cells left to plot: every mouse has 0 cells.")
    x_levels = _levels(data[x])
    total = len(data)
    titles = [
        f"{group_name} {g} ({(data[group] == g).sum()} {unit}, "
        f"{100 * (data[group] == g).sum() / total:.0f}%)"
        for g in groups
    ]
    rows, ncols = _grid(len(groups), cols)
    traces, cells = [], []
    for gi, sub in enumerate(_split(data, group, groups)):
        for i, (level, part) in enumerate(zip(x_levels, _split(sub, x, x_levels), strict=True)):
            traces.append({"type": "box", "y": part[response].to_numpy(), "name": _label(level, labels),
                           "marker": {"color": PALETTE[i % len(PALETTE)]}, "boxpoints": "outliers",
                           "legendgroup": str(level), "showlegend": gi == 0})
            cells.append(_cell(gi, ncols))
    return grid_figure(traces, cells, rows=rows, cols=ncols, subplot_titles=titles, shared_yaxes="all",
                       vertical_spacing=0.12 if rows > 1 else 0.1, y_titles={1: y_title or response},
                       layout={"height": max(320, 260 * rows), "title": f"By {group_name.lower()}"})


def cell_count_table(counts: pd.DataFrame) -> go.Figure:
    """The mouse x time cell-count table (from ``sampling.cell_counts``) as a figure."""
    header = [counts.index.name or ""] + [str(c) for c in counts.columns]
    cells = [list(counts.index)] + [
        [f"{v:.1f}%" if col == "% of cells" else f"{int(v):,}" for v in counts[col]]
        for col in counts.columns
    ]
    fig = go.Figure(go.Table(header={"values": header, "align": "center"},
                             cells={"values": cells, "align": "center"}))
    fig.update_layout(height=60 + 30 * (len(counts) + 1))
    return style(fig)


def group_scatter(
    data: pd.DataFrame, response: str, x: str, group: str, *, group_name: str = "Group",
    y_title: str | None = None,
) -> go.Figure:
    """``response`` against a numeric ``x``, coloured by group, with each group's LS line."""
    _need(data, response, x, group)
    fig = go.Figure()
    for i, g in enumerate(_levels(data[group])):
        sub = data[data[group] == g][[x, response]].dropna()
        color = PALETTE[i % len(PALETTE)]
        fig.add_trace(go.Scatter(x=sub[x], y=sub[response], mode="markers", opacity=0.6,
                                 marker={"size": 5, "color": color}, legendgroup=str(g),
                                 name=f"{group_name} {g}"))
        if len(sub) >= 2 and sub[x].nunique() > 1:
            slope, intercept = np.polyfit(sub[x], sub[response], 1)
            xs = np.array([sub[x].min(), sub[x].max()])
            fig.add_trace(go.Scatter(x=xs, y=intercept + slope * xs, mode="lines",
                                     line={"color": color}, legendgroup=str(g),
                                     showlegend=False, name=f"{group_name} {g} fit"))
    fig.update_layout(xaxis_title=x, yaxis_title=y_title or response, title=f"{y_title or response} by {x}")
    return style(fig)


# --- Example 3: paired measurements -------------------------------------------------------
def paired_wide(
    data: pd.DataFrame, response: str, time: str, unit: str, group: str,
    before: Any, after: Any,
) -> pd.DataFrame:
    """One row per cell: ``group``, ``unit``, ``before``, ``after`` (cells missing either
    value are dropped, as R's complete-case analysis does)."""
    _need(data, response, time, unit, group)
    sub = data[data[time].isin([before, after])]
    # pivot_table(aggfunc="first") without its group-by (a third of a per-mouse figure's
    # build): the first non-missing value of each cell and time, then one unstack
    sub = sub.dropna(subset=[response]).drop_duplicates([group, unit, time])
    wide = sub.set_index([group, unit, time])[response].unstack(time)
    wide = wide.rename(columns={before: "before", after: "after"})
    for col in ("before", "after"):
        if col not in wide.columns:
            wide[col] = np.nan
    wide = wide[["before", "after"]].dropna().reset_index()
    wide.columns.name = None
    return wide


def _paired_panels(
    data: pd.DataFrame, response: str, time: str, unit: str, group: str, before: Any, after: Any,
    *, cols: int, nothing: str,
) -> tuple[pd.DataFrame, list, int, int]:
    """The paired rows, their groups and the grid of one panel per group: the start of both
    paired figures. Returns ``(wide, groups, rows, cols)``."""
    wide = paired_wide(data, response, time, unit, group, before, after)
    groups = _levels(wide[group])
    if not groups:
        raise DataError(f"No cell has both measurements, so there is nothing {nothing}.")
    rows, ncols = _grid(len(groups), cols)
    return wide, groups, rows, ncols


def _split(data: pd.DataFrame, column: str, levels: Sequence[Any]) -> list[pd.DataFrame]:
    """The rows of each level of ``column``, in the order of ``levels`` (one groupby, not a
    boolean mask per level)."""
    parts = dict(tuple(data.groupby(column, sort=False, observed=True)))
    return [parts.get(level, data.iloc[:0]) for level in levels]


def spaghetti_plot(
    data: pd.DataFrame, response: str, time: str, unit: str, group: str,
    *, before: Any = 1, after: Any = 2, labels: tuple[str, str] = ("baseline", "24h"),
    cols: int = 4, group_name: str = "Mouse", y_title: str | None = None,
) -> go.Figure:
    """One panel per mouse; one line per cell from its baseline to its 24h value."""
    wide, groups, rows, ncols = _paired_panels(data, response, time, unit, group, before, after, cols=cols,
                                               nothing="to connect")
    traces, cells = [], []
    for gi, (g, sub) in enumerate(zip(groups, _split(wide, group, groups), strict=True)):
        # one trace per mouse, segments separated by None: fast even with 600 cells
        xs = np.tile(np.array([labels[0], labels[1], None], dtype=object), len(sub))
        ys = np.column_stack([sub["before"], sub["after"], np.full(len(sub), np.nan)]).ravel()
        # lines only, as in the lecture's figure: a marker per value cost the browser ~0.1 s
        # a redraw of the 1,244 values of Example 3
        traces.append({"type": "scatter", "x": xs, "y": ys, "mode": "lines",
                       "line": {"width": 1, "color": PALETTE[gi % len(PALETTE)]}, "opacity": 0.5,
                       "showlegend": False, "name": f"{group_name} {g}"})
        cells.append(_cell(gi, ncols))
    return grid_figure(traces, cells, rows=rows, cols=ncols, shared_yaxes="all",
                       subplot_titles=[f"{group_name} {g}" for g in groups],
                       y_titles={1: y_title or response},
                       layout={"height": max(300, 240 * rows), "title": "Each line is one cell"})


def before_after_scatter(
    data: pd.DataFrame, response: str, time: str, unit: str, group: str,
    *, before: Any = 1, after: Any = 2, cols: int = 4, group_name: str = "Mouse",
    labels: tuple[str, str] = ("baseline", "24h"),
) -> go.Figure:
    """Per mouse: 24h against baseline, one dot per cell, with the least-squares line."""
    wide, groups, rows, ncols = _paired_panels(data, response, time, unit, group, before, after, cols=cols,
                                               nothing="to plot")
    traces, cells = [], []
    for gi, (g, sub) in enumerate(zip(groups, _split(wide, group, groups), strict=True)):
        cell = _cell(gi, ncols)
        x, y = sub["before"].to_numpy(), sub["after"].to_numpy()
        traces.append({"type": "scatter", "x": x, "y": y, "mode": "markers",
                       "marker": {"size": 5, "color": PALETTE[gi % len(PALETTE)]}, "showlegend": False,
                       "name": f"{group_name} {g}"})
        cells.append(cell)
        if len(sub) >= 2 and sub["before"].nunique() > 1:
            slope, intercept = np.polyfit(x, y, 1)
            xs = np.array([x.min(), x.max()])
            traces.append({"type": "scatter", "x": xs, "y": intercept + slope * xs, "mode": "lines",
                           "showlegend": False, "line": {"color": "black"},
                           "name": f"fit, slope {slope:.2f}"})
            cells.append(cell)
    return grid_figure(traces, cells, rows=rows, cols=ncols, shared_yaxes="all", shared_xaxes="all",
                       subplot_titles=[f"{group_name} {g}" for g in groups],
                       x_titles={rows: labels[0]}, y_titles={1: labels[1]},
                       layout={"height": max(300, 260 * rows), "title": "Before vs after, one dot per cell"})


def per_group_correlation(
    data: pd.DataFrame, response: str, time: str, unit: str, group: str,
    *, before: Any = 1, after: Any = 2,
) -> pd.DataFrame:
    """Pearson correlation of baseline and 24h values within each mouse.

    Columns ``group``, ``n_cells``, ``correlation`` (NaN for a mouse with < 3 cells).
    """
    wide = paired_wide(data, response, time, unit, group, before, after)
    rows = []
    groups = _levels(wide[group])
    for g, sub in zip(groups, _split(wide, group, groups), strict=True):
        x, y = sub["before"].to_numpy(), sub["after"].to_numpy()
        ok = len(sub) >= 3 and x.std(ddof=1) > 0 and y.std(ddof=1) > 0
        r = float(np.corrcoef(x, y)[0, 1]) if ok else math.nan
        rows.append({"group": g, "n_cells": len(sub), "correlation": r})
    return pd.DataFrame(rows, columns=["group", "n_cells", "correlation"])


def correlation_boxplot(corr: pd.DataFrame, *, group_name: str = "Mouse") -> go.Figure:
    """Boxplot of the per-mouse correlations, every mouse shown as a labelled dot."""
    _need(corr, "group", "correlation")
    ok = corr.dropna(subset=["correlation"])
    box = {"type": "box", "y": ok["correlation"].to_numpy(), "name": "per-mouse r", "boxpoints": "all",
           "jitter": 0.4, "pointpos": 0,
           "text": [f"{group_name} {g} ({n} cells)" for g, n in zip(ok["group"], ok["n_cells"], strict=True)],
           "hovertemplate": "%{text}: r = %{y:.2f}<extra></extra>", "marker": {"color": PALETTE[2]}}
    return dict_figure([box], {"title": "Baseline-24h correlation within each mouse",
                               "yaxis": {"title": {"text": "correlation"}}, "showlegend": False})


# --- Example 4: binary outcome ------------------------------------------------------------
def binned_proportions(
    data: pd.DataFrame, response: str, x: str, group: str, *, bins: int = 5,
) -> pd.DataFrame:
    """Share of 1s of ``response`` per mouse and bin of ``x`` (equal-width bins).

    Columns ``group``, ``bin``, ``x_mid``, ``n``, ``proportion``.
    """
    _need(data, response, x, group)
    sub = data[[response, x, group]].dropna()
    if sub.empty:
        return pd.DataFrame(columns=["group", "bin", "x_mid", "n", "proportion"])
    edges = np.linspace(sub[x].min(), sub[x].max(), int(bins) + 1)
    if edges[0] == edges[-1]:
        edges = np.array([edges[0] - 0.5, edges[0] + 0.5])
    idx = np.clip(np.searchsorted(edges, sub[x], side="right") - 1, 0, len(edges) - 2)
    mids = (edges[:-1] + edges[1:]) / 2
    out = (
        sub.assign(bin=idx)
        .groupby([group, "bin"], observed=True)[response]
        .agg(n="size", proportion="mean")
        .reset_index()
        .rename(columns={group: "group"})
    )
    out["x_mid"] = mids[out["bin"].to_numpy()]
    return out[["group", "bin", "x_mid", "n", "proportion"]]


def _expit(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def glmm_curves(
    intercept: float, slope: float, ranef: Mapping[Any, float], sd_intercept: float,
    x_grid: Sequence[float],
) -> pd.DataFrame:
    """Fitted P(y = 1) of a random-intercept logistic GLMM along ``x_grid``.

    Rows for each mouse (its conditional mode added to the intercept), for the typical
    mouse (random effect 0, what the fixed effects describe) and for the population
    average (the curve averaged over the random-intercept distribution, by 40-point
    Gauss-Hermite quadrature): the two differ because the link is not linear.
    Columns ``curve``, ``x``, ``p``.
    """
    x = np.asarray(x_grid, dtype=float)
    frames = []
    for level, u in ranef.items():
        frames.append(pd.DataFrame({"curve": str(level), "x": x,
                                    "p": _expit(intercept + u + slope * x)}))
    frames.append(pd.DataFrame({"curve": "typical mouse", "x": x,
                                "p": _expit(intercept + slope * x)}))
    nodes, weights = np.polynomial.hermite_e.hermegauss(40)
    weights = weights / weights.sum()
    eta = intercept + slope * x[:, None] + max(sd_intercept, 0.0) * nodes[None, :]
    frames.append(pd.DataFrame({"curve": "population average", "x": x,
                                "p": _expit(eta) @ weights}))
    return pd.concat(frames, ignore_index=True)


def lick_proportion_curves(
    binned: pd.DataFrame, curves: pd.DataFrame | None = None, *,
    x_title: str = "dF/F (%)", y_title: str = "proportion of correct licks",
    group_name: str = "Mouse",
) -> go.Figure:
    """Binned proportions per mouse (dots sized by trials) with the GLMM's curves."""
    _need(binned, "group", "x_mid", "proportion", "n")
    groups = _levels(binned["group"])
    color = {str(g): PALETTE[i % len(PALETTE)] for i, g in enumerate(groups)}
    traces = []
    for g, sub in zip(groups, _split(binned, "group", groups), strict=True):
        traces.append({
            "type": "scatter", "x": sub["x_mid"].to_numpy(), "y": sub["proportion"].to_numpy(), "mode": "markers",
            "name": f"{group_name} {g}", "legendgroup": str(g),
            "marker": {"color": color[str(g)], "size": 5 + 2 * np.sqrt(sub["n"].to_numpy())},
            "customdata": sub["n"].to_numpy(), "hovertemplate": "%{y:.2f} of %{customdata} trials"})
    if curves is not None and not curves.empty:
        for name, sub in curves.groupby("curve", sort=False):
            special = name in ("typical mouse", "population average")
            traces.append({
                "type": "scatter", "x": sub["x"].to_numpy(), "y": sub["p"].to_numpy(), "mode": "lines",
                "name": name if special else f"{group_name} {name} (GLMM)",
                "legendgroup": name, "showlegend": special,
                "line": {"color": "black" if special else color.get(name, "grey"),
                         "width": 4 if special else 1.5,
                         "dash": "dash" if name == "typical mouse" else "solid"}})
    return dict_figure(traces, {"xaxis": {"title": {"text": x_title}},
                                "yaxis": {"title": {"text": y_title}, "range": [-0.02, 1.02]},
                                "title": "Correct licks by neuronal activity"})


# --- model summaries ----------------------------------------------------------------------
def caterpillar_plot(ranef: pd.DataFrame, *, group_name: str = "Mouse") -> go.Figure:
    """Random effects (conditional modes) sorted, one panel per term; error bars from a
    ``std_error`` column when present."""
    _need(ranef, "level", "term", "value")
    terms = list(dict.fromkeys(ranef["term"]))
    fig = make_subplots(rows=1, cols=max(1, len(terms)), subplot_titles=terms or [""])
    for ti, term in enumerate(terms):
        sub = ranef[ranef["term"] == term].sort_values("value")
        err = None
        if "std_error" in sub.columns:
            err = {"type": "data", "array": 1.96 * sub["std_error"].to_numpy()}
        fig.add_trace(go.Scatter(
            x=sub["value"], y=[f"{group_name} {lvl}" for lvl in sub["level"]],
            error_x=err, mode="markers", marker={"size": 9, "color": PALETTE[5]},
            showlegend=False, hovertemplate="%{y}: %{x:.3f}<extra></extra>",
        ), row=1, col=ti + 1)
        fig.add_vline(x=0, line_dash="dot", line_color="grey", row=1, col=ti + 1)
    # every level labelled (plotly would skip some when the font is large)
    fig.update_yaxes(automargin=True, tickmode="linear", dtick=1)
    fig.update_layout(title="Random effects per mouse (conditional modes)",
                      height=max(300, 150 + 30 * ranef["level"].nunique()))
    return style(fig)


def estimate_comparison_plot(
    table: pd.DataFrame, *, term_label: str = "", null_value: float = 0.0,
    x_title: str = "estimate (95% CI)",
) -> go.Figure:
    """Forest plot of one term across analyses: columns ``analysis``, ``estimate``,
    ``conf_low``, ``conf_high`` (and ``p_value``)."""
    _need(table, "analysis", "estimate", "conf_low", "conf_high")
    t = table.iloc[::-1]  # first analysis on top
    sig = t["p_value"] < 0.05 if "p_value" in t.columns else pd.Series(False, index=t.index)
    traces = []
    for flag, name, color, symbol in ((True, "p < 0.05", SIGNIFICANT, "diamond"),
                                      (False, "p ≥ 0.05 (or no p)", NOT_SIGNIFICANT, "circle")):
        part = t[sig.to_numpy() == flag]
        if part.empty:
            continue
        est = part["estimate"].to_numpy()
        traces.append({
            "type": "scatter", "x": est, "y": part["analysis"].to_numpy(), "mode": "markers", "name": name,
            "marker": {"size": 11, "color": color, "symbol": symbol},
            "error_x": {"type": "data", "symmetric": False, "array": part["conf_high"].to_numpy() - est,
                        "arrayminus": est - part["conf_low"].to_numpy()},
            "hovertemplate": "%{y}: %{x:.4g}<extra></extra>"})
    return dict_figure(traces, {
        # keep the analyses in table order whichever trace draws them
        "yaxis": {"categoryorder": "array", "categoryarray": list(t["analysis"]), "automargin": True},
        "showlegend": True,
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1.0},
        "shapes": [{"line": {"color": "grey", "dash": "dash"}, "type": "line", "x0": null_value,
                    "x1": null_value, "xref": "x", "y0": 0, "y1": 1, "yref": "y domain"}],
        "title": f"{term_label}: the same effect, different analyses".strip(": "),
        "xaxis": {"title": {"text": x_title}}, "height": max(260, 80 + 45 * len(t))})
