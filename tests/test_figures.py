"""Tests of mmteach.figures: the figures show the data they are given."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from mmteach import figures as F
from mmteach.errors import DataError


@pytest.fixture()
def freq() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    rows = []
    for m, n in ((1, 30), (2, 50), (3, 10)):
        for i in range(n):
            rows.append({"midx": m, "treatment_idx": 1 + i % 4, "res": rng.normal(0.7, 0.2)})
    return pd.DataFrame(rows)


@pytest.fixture()
def amp() -> pd.DataFrame:
    rng = np.random.default_rng(2)
    rows, cid = [], 0
    for m in range(1, 5):
        for _ in range(20):
            cid += 1
            base = rng.uniform(0, 6)
            rows.append({"midx": m, "cidx": cid, "treatment": 1, "res": base})
            rows.append({"midx": m, "cidx": cid, "treatment": 2,
                         "res": 1 + 0.5 * m * base + rng.normal(0, 1)})
    df = pd.DataFrame(rows)
    df.loc[3, "res"] = np.nan  # one missing value: that cell drops out of the paired plots
    return df


def test_pooled_boxplot_has_one_box_per_time_with_all_values(freq):
    fig = F.pooled_boxplot(freq, "res", "treatment_idx", labels={1: "24h", 2: "48h"})
    assert isinstance(fig, go.Figure)
    assert [t.name for t in fig.data] == ["24h", "48h", "3", "4"]
    assert sum(len(t.y) for t in fig.data) == len(freq)


def test_per_mouse_boxplot_panels_and_shares(freq):
    fig = F.per_mouse_boxplot(freq, "res", "treatment_idx", "midx")
    titles = [a.text for a in fig.layout.annotations]
    assert titles[1].startswith("Mouse 2 (50 cells, 56%")
    assert len(fig.data) == 3 * 4
    assert sum(len(t.y) for t in fig.data) == len(freq)
    # the legend lists each time point once
    assert sum(bool(t.showlegend) for t in fig.data) == 4


def test_per_mouse_boxplot_with_no_cells_explains():
    with pytest.raises(DataError, match="0 cells"):
        F.per_mouse_boxplot(pd.DataFrame({"res": [], "t": [], "m": []}), "res", "t", "m")


def test_missing_column_is_a_data_error(freq):
    with pytest.raises(DataError, match="'time'"):
        F.pooled_boxplot(freq, "res", "time")


def test_paired_wide_and_correlations(amp):
    wide = F.paired_wide(amp, "res", "treatment", "cidx", "midx", 1, 2)
    assert len(wide) == 79  # the cell with a missing value is dropped
    corr = F.per_group_correlation(amp, "res", "treatment", "cidx", "midx")
    sub = wide[wide.midx == 3]
    assert corr.set_index("group").loc[3, "correlation"] == pytest.approx(
        np.corrcoef(sub["before"], sub["after"])[0, 1])
    fig = F.correlation_boxplot(corr)
    assert list(fig.data[0].y) == pytest.approx(list(corr["correlation"]))


def test_correlation_needs_three_cells(amp):
    small = amp[amp.cidx.isin([1, 2, 21, 22, 23])]
    corr = F.per_group_correlation(small, "res", "treatment", "cidx", "midx").set_index("group")
    assert math.isnan(corr.loc[1, "correlation"])
    assert corr.loc[2, "n_cells"] == 3


def test_spaghetti_and_scatter(amp):
    sp = F.spaghetti_plot(amp, "res", "treatment", "cidx", "midx")
    assert len(sp.data) == 4
    # 3 points (before, after, gap) per cell
    assert len(sp.data[0].y) == 3 * 19
    sc = F.before_after_scatter(amp, "res", "treatment", "cidx", "midx")
    lines = [t for t in sc.data if t.mode == "lines"]
    assert len(lines) == 4
    wide = F.paired_wide(amp, "res", "treatment", "cidx", "midx", 1, 2)
    sub = wide[wide.midx == 4]
    slope = np.polyfit(sub["before"], sub["after"], 1)[0]
    assert lines[3].name == f"fit, slope {slope:.2f}"


def test_binned_proportions():
    df = pd.DataFrame({"m": [1, 1, 1, 2, 2, 2], "y": [0, 1, 1, 0, 0, 1],
                       "x": [0.0, 0.1, 10.0, 0.0, 9.0, 10.0]})
    b = F.binned_proportions(df, "y", "x", "m", bins=2)
    got = b.set_index(["group", "bin"])["proportion"]
    assert got[(1, 0)] == pytest.approx(0.5)
    assert got[(1, 1)] == pytest.approx(1.0)
    assert got[(2, 1)] == pytest.approx(0.5)
    assert b["n"].sum() == 6


def test_glmm_curves_population_average_is_flatter_than_typical_mouse():
    c = F.glmm_curves(-1.0, 0.2, {"1": 0.5, "2": -0.5}, 1.5, [-10, 0, 10, 20])
    typical = c[c.curve == "typical mouse"]["p"].to_numpy()
    pop = c[c.curve == "population average"]["p"].to_numpy()
    mouse1 = c[c.curve == "1"]["p"].to_numpy()
    assert mouse1[1] == pytest.approx(1 / (1 + math.exp(0.5)))
    # averaging over mice pulls probabilities towards 1/2 (attenuation)
    assert np.all(np.abs(pop - 0.5) < np.abs(typical - 0.5))
    # with no mouse variance the two coincide
    c0 = F.glmm_curves(-1.0, 0.2, {}, 0.0, [0, 5])
    np.testing.assert_allclose(c0[c0.curve == "population average"]["p"],
                               c0[c0.curve == "typical mouse"]["p"])
    fig = F.lick_proportion_curves(
        pd.DataFrame({"group": [1], "x_mid": [0.0], "proportion": [0.3], "n": [4]}), c)
    assert {t.name for t in fig.data if t.showlegend} >= {"typical mouse", "population average"}


# deuteranopia and protanopia simulation, Machado et al. (2009), severity 1, on linear sRGB
CVD = {"deuteranopia": np.array([[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413],
                                 [-0.011820, 0.042940, 0.968881]]),
       "protanopia": np.array([[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216],
                               [-0.003882, -0.048116, 1.051998]]),
       "normal": np.eye(3)}


def _lab(hex_colour: str, vision: str) -> np.ndarray:
    c = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)]) / 255
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    lin = np.clip(CVD[vision] @ lin, 0, 1)
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]) @ lin
    f = xyz / np.array([0.95047, 1.0, 1.08883])
    f = np.where(f > 0.008856, np.cbrt(f), 7.787 * f + 16 / 116)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


@pytest.mark.parametrize("vision", list(CVD))
def test_first_four_colours_stay_apart_for_colour_blind_viewers(vision):
    """The 24h/48h/72h/1wk boxes: CIE76 colour difference at least 40 (ggplot's hues fell to 28)."""
    labs = [_lab(c, vision) for c in F.PALETTE[:4]]
    worst = min(np.linalg.norm(a - b) for i, a in enumerate(labs) for b in labs[i + 1:])
    assert worst >= 40
    assert np.linalg.norm(_lab(F.SIGNIFICANT, vision) - _lab(F.NOT_SIGNIFICANT, vision)) >= 40


def test_axis_titles_name_the_measurement(freq):
    fig = F.pooled_boxplot(freq, "res", "treatment_idx", y_title="events per min")
    assert fig.layout.yaxis.title.text == "events per min"
    fig = F.per_mouse_boxplot(freq, "res", "treatment_idx", "midx", y_title="events per min")
    assert fig.layout.yaxis.title.text == "events per min"


def test_caterpillar_sorted_with_errors():
    re = pd.DataFrame({"group": "m", "level": ["1", "2", "3"], "term": "(Intercept)",
                       "value": [0.3, -0.2, 0.1], "std_error": [0.1, 0.1, 0.2]})
    fig = F.caterpillar_plot(re)
    assert list(fig.data[0].x) == [-0.2, 0.1, 0.3]
    assert list(fig.data[0].error_x.array) == pytest.approx([0.196, 0.392, 0.196])


def test_cell_count_table_and_style():
    counts = pd.DataFrame({"1": [3, 3], "Total": [3, 3], "% of cells": [100.0, 100.0]},
                          index=pd.Index(["1", "Total"], name="midx"))
    fig = F.cell_count_table(counts)
    assert list(fig.data[0].cells.values[-1]) == ["100.0%", "100.0%"]
    big = F.style(go.Figure(), presentation=True)
    assert big.layout.font.size > F.style(go.Figure()).layout.font.size


def test_user_text_in_a_figure_is_never_a_live_link(freq):
    """Column names and group levels come from a student's file: plotly renders <a href> tags
    in titles, names and category labels, so a link there would be live in the page."""
    link = '<a href="http://example.invalid/login">Log in again</a>'
    d = freq.rename(columns={"res": link})
    d["midx"] = d["midx"].map({1: link, 2: "m2", 3: "m3", 4: "m4"})
    fig = F.per_mouse_boxplot(d, link, "treatment_idx", "midx")
    shown = str(fig.to_dict())  # (to_json would hide a "<" as \\u003c)
    assert "<a href" not in shown and "&lt;a href" in shown
    assert "two<br>lines" in str(F.style(go.Figure(layout={"title": {"text": "two<br>lines"}})).to_dict())


def test_panel_grids_draw_lightly_in_the_browser(amp):
    """What the browser redraws on every slider move stays light: the spaghetti plot draws
    lines only (as the lecture's figure), and a panel grid keeps plotly's automargin (an
    extra layout pass in the browser) on its titled axes only, where a title meets tick
    labels; a single pair of axes keeps it whatever its titles."""
    fig = F.spaghetti_plot(amp, "res", "treatment", "cidx", "midx", y_title="amplitude")
    assert {t.mode for t in fig.data} == {"lines"}
    lay = fig.layout.to_plotly_json()
    axes = {k: v for k, v in lay.items() if k[1:5] == "axis"}
    titled = {k for k, v in axes.items() if (v.get("title") or {}).get("text")}
    assert titled and len(axes) > len(titled)  # the left column's y titles, bottom row's x
    assert all(axes[k]["automargin"] for k in titled)
    assert not any(axes[k]["automargin"] for k in set(axes) - titled)
    single = F.style(go.Figure(go.Scatter(x=[1, 2], y=[3, 4])))
    assert single.layout.xaxis.automargin and single.layout.yaxis.automargin


def test_grid_figure_is_the_figure_plotly_builds():
    """grid_figure (dicts, no per-property checks) gives the JSON of make_subplots +
    add_traces + update_xaxes/update_yaxes/update_layout + style, link tags defused too."""
    import json

    import plotly.io as pio

    titles = ["Mouse 1", 'Mouse <a href="http://x.invalid">2</a>', "Mouse 3"]
    traces = [{"type": "scatter", "x": np.arange(3.0), "y": np.arange(3.0) ** 2, "mode": "lines",
               "line": {"color": "#000000", "width": 1}, "name": f"trace {i}", "showlegend": False}
              for i in range(3)] + [{"type": "box", "y": np.array([1.0, 2.0, 5.0]), "name": "<a>box</a>",
                                     "marker": {"color": "#E69F00"}, "boxpoints": "outliers"}]
    cells = [(1, 1), (1, 2), (2, 1), (2, 1)]
    fast = F.grid_figure(traces, cells, rows=2, cols=2, subplot_titles=titles, shared_yaxes="all",
                         x_titles={2: "baseline"}, y_titles={1: "amplitude"},
                         layout={"height": 500, "title": "Each line is one cell"})
    slow = F.make_subplots(rows=2, cols=2, subplot_titles=titles, shared_yaxes="all")
    slow.add_traces([go.Scatter(**{k: v for k, v in t.items() if k != "type"}) if t["type"] == "scatter"
                     else go.Box(**{k: v for k, v in t.items() if k != "type"}) for t in traces],
                    rows=[r for r, _ in cells], cols=[c for _, c in cells])
    slow.update_xaxes(title_text="baseline", row=2)
    slow.update_yaxes(title_text="amplitude", col=1)
    slow.update_layout(height=500, title="Each line is one cell")
    slow = F.style(slow)

    def spec(fig):
        return json.loads(pio.to_json(fig, validate=False, engine="json"))

    assert spec(fast) == spec(slow)
    assert "<a" not in json.dumps(spec(fast)["layout"]["annotations"])


def test_dict_figure_is_the_figure_plotly_builds():
    """dict_figure gives the JSON of go.Figure + add_traces + update_layout + style."""
    import json

    import plotly.io as pio

    traces = [{"type": "scatter", "x": np.array([1.0, 2.0]), "y": ["a", 'mouse <a href="x">b</a>'],
               "mode": "markers", "name": "own", "marker": {"size": 11, "color": "#000000"}},
              {"type": "box", "y": np.array([0.1, 0.5, 0.9]), "name": "r", "boxpoints": "all"}]
    layout = {"title": "Each mouse", "yaxis": {"title": {"text": "correlation"}}, "height": 420,
              "shapes": [{"type": "line", "x0": 0, "x1": 0, "xref": "x", "y0": 0, "y1": 1, "yref": "y domain"}]}
    fast = F.dict_figure(traces, layout)
    slow = go.Figure()
    slow.add_traces([go.Scatter(**{k: v for k, v in traces[0].items() if k != "type"}),
                     go.Box(**{k: v for k, v in traces[1].items() if k != "type"})])
    slow.update_layout(**layout)
    slow = F.style(slow)

    def spec(fig):
        return json.loads(pio.to_json(fig, validate=False, engine="json"))

    assert spec(fast) == spec(slow)
    assert "<a" not in json.dumps(spec(fast)["data"])
