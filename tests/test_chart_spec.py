"""The browser's version of a figure (ui.chart_spec): drawn once per mount, and drawn the same.

The unit tests check the template is written in as plotly.js applies it; the Chromium
tests load plotly.js (the copy in the plotly package, the same major version Streamlit
ships) and check, on figures the app draws, that (1) a second ``Plotly.react`` with a JSON
round trip of the spec (what Streamlit's chart does after mounting) leaves the chart's
calculated data alone, while plotly's own spec is recalculated and replotted, and (2) the
browser's spec renders to the same pixels as plotly's own.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import plotly
import plotly.graph_objects as go
import plotly.io as pio
import pytest

from mmteach import figures as F
from mmteach import sim_figures as SF
from ui.cache import shared
from ui.chart_spec import bake_template, browser_spec, figure_spec

CHROMIUM = "/usr/bin/chromium"
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def _amp() -> pd.DataFrame:
    rng = np.random.default_rng(2)
    rows, cid = [], 0
    for m in range(1, 5):
        for _ in range(15):
            cid += 1
            base = rng.uniform(0, 6)
            rows.append({"midx": m, "cidx": cid, "treatment": 1, "res": base})
            rows.append({"midx": m, "cidx": cid, "treatment": 2, "res": 1 + 0.5 * m * base + rng.normal(0, 1)})
    return pd.DataFrame(rows)


def _walk(value):
    yield value
    if isinstance(value, dict):
        for v in value.values():
            yield from _walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from _walk(v)


def test_spec_has_lists_no_template_and_a_content_revision():
    fig = F.spaghetti_plot(_amp(), "res", "treatment", "cidx", "midx")
    raw = fig.to_dict()
    assert "template" in raw["layout"] and any(isinstance(v, dict) and "bdata" in v for v in _walk(raw))
    spec = browser_spec(fig.to_dict())
    assert "template" not in spec["layout"]
    assert not any(isinstance(v, dict) and "bdata" in v for v in _walk(spec))
    assert not any(isinstance(v, np.ndarray) for v in _walk(spec))
    # the same numbers, as lists
    first = next(t for t in spec["data"] if t.get("y") is not None)
    same = next(t for t in fig.data if t.name == first.get("name"))
    assert np.allclose(np.asarray(first["y"], dtype=float), np.asarray(same.y, dtype=float), equal_nan=True)
    # the revision is a hash of the content: same figure, same revision; other data, another
    assert browser_spec(fig.to_dict())["layout"]["datarevision"] == spec["layout"]["datarevision"]
    other = _amp()
    other.loc[0, "res"] += 1
    moved = browser_spec(F.spaghetti_plot(other, "res", "treatment", "cidx", "midx").to_dict())
    assert moved["layout"]["datarevision"] != spec["layout"]["datarevision"]
    # and json.dumps-able as Streamlit sends it
    assert json.loads(pio.to_json(spec, validate=False))["layout"]["datarevision"] == spec["layout"]["datarevision"]


def test_template_defaults_fill_what_the_figure_leaves_unset():
    template = {
        "layout": {"colorway": ["#111111", "#222222"], "title": {"x": 0.05},
                   "xaxis": {"ticks": "", "zerolinewidth": 2, "gridcolor": "white"},
                   "yaxis": {"ticks": "outside"},
                   "annotationdefaults": {"arrowhead": 0, "arrowcolor": "#2a3f5f"},
                   "polar": {"bgcolor": "#E5ECF6"}},
        "data": {"bar": [{"type": "bar", "marker": {"line": {"color": "#E5ECF6", "width": 0.5}}},
                         {"type": "bar", "opacity": 0.5}]},
    }
    spec = {"data": [{"type": "bar", "x": [1], "y": [2], "marker": {"color": "red"}},
                     {"type": "bar", "x": [1], "y": [3]},
                     {"type": "bar", "x": [1], "y": [4], "opacity": 0.9},
                     {"type": "scatter", "x": [1], "y": [1], "xaxis": "x3", "yaxis": "y3"}],
            "layout": {"template": template, "title": {"text": "T"}, "xaxis": {"gridcolor": "#e5ecf6"},
                       "xaxis2": {}, "annotations": [{"text": "a", "arrowhead": 2}, {"text": "b"}]}}
    out = bake_template(spec)
    lay = out["layout"]
    assert "template" not in lay
    assert lay["title"] == {"text": "T", "x": 0.05}
    assert lay["colorway"] == ["#111111", "#222222"]
    assert lay["xaxis"] == {"gridcolor": "#e5ecf6", "ticks": "", "zerolinewidth": 2}  # the figure's colour wins
    assert lay["xaxis2"]["zerolinewidth"] == 2 and lay["xaxis3"]["ticks"] == ""  # x3: used by a trace only
    assert lay["yaxis3"] == {"ticks": "outside"}
    assert [a["arrowhead"] for a in lay["annotations"]] == [2, 0]
    assert "polar" not in lay  # no polar subplot here
    bars = out["data"][:3]
    assert bars[0]["marker"] == {"color": "red", "line": {"color": "#E5ECF6", "width": 0.5}}
    assert bars[1]["opacity"] == 0.5 and "marker" not in bars[1]  # the second bar takes the second item
    assert bars[2]["marker"]["line"]["width"] == 0.5 and bars[2]["opacity"] == 0.9  # cycles; own value wins
    assert "marker" not in out["data"][3]  # no scatter item in this template
    table = bake_template({"data": [{"type": "table"}], "layout": {"template": template}})
    assert "xaxis" not in table["layout"]  # a table has no axes to give the defaults to
    assert bake_template(json.loads(json.dumps(out))) == out  # nothing left to apply


def test_shared_figures_and_shown_figures_are_browser_specs():
    fig = shared(F.spaghetti_plot(_amp(), "res", "treatment", "cidx", "midx"))
    spec = fig.to_dict()
    assert "template" not in spec["layout"] and "datarevision" in spec["layout"]


@pytest.mark.parametrize("build", [
    lambda: F.spaghetti_plot(_amp(), "res", "treatment", "cidx", "midx"),
    lambda: F.before_after_scatter(_amp(), "res", "treatment", "cidx", "midx"),
    lambda: F.style(go.Figure(go.Bar(x=["a", "b"], y=np.array([1.5, np.nan])), layout={"title": "t"})),
])
def test_figure_spec_reads_the_figure_as_to_dict_does(build):
    fig = build()
    direct, via_dict = figure_spec(fig), browser_spec(fig.to_dict())
    # JSON text compares NaN with NaN (the lists hold float NaNs)
    assert json.dumps(direct, sort_keys=True) == json.dumps(via_dict, sort_keys=True)
    assert pio.to_json(fig) == pio.to_json(build())  # the figure is left alone


# ---------------------------------------------------------------------------------------
# In Chromium, with plotly.js
# ---------------------------------------------------------------------------------------
def _app_figures() -> dict[str, go.Figure]:
    amp = _amp()
    counts = pd.DataFrame({"baseline": [15, 15], "24h": [15, 14], "% of cells": [50.0, 50.0]},
                          index=pd.Index([1, 2], name="mouse"))
    return {
        "spaghetti (panels)": F.spaghetti_plot(amp, "res", "treatment", "cidx", "midx"),
        "per-mouse boxes": F.per_mouse_boxplot(amp, "res", "treatment", "midx"),
        "bars": SF.type1_bar(_type1()),
        "table": F.cell_count_table(counts),
    }


def _type1():
    from mmteach.simulate import simulate_type1

    return simulate_type1(reps=20, seed=1)


REACT_TWICE = """async ([spec, again]) => {
  const gd = document.getElementById('g');
  Plotly.purge(gd);
  await Plotly.newPlot(gd, spec.data, spec.layout, {displaylogo: false});
  const before = gd.calcdata;
  await Plotly.react(gd, again.data, again.layout, {displaylogo: false});
  return {recalculated: gd.calcdata !== before};
}"""

IMAGE = """async (spec) => {
  const gd = document.getElementById('g');
  Plotly.purge(gd);
  await Plotly.newPlot(gd, spec.data, spec.layout, {displaylogo: false});
  return await Plotly.toImage(gd, {format: 'png', width: 900, height: 500});
}"""


@pytest.fixture(scope="module")
def plotly_page():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1000, "height": 700})
        page.set_content("<html><body><div id='g' style='width:900px;height:500px'></div></body></html>")
        page.add_script_tag(path=str(PLOTLY_JS))
        yield page
        browser.close()


@pytest.mark.parametrize("name", ["spaghetti (panels)", "per-mouse boxes", "bars", "table"])
def test_a_remounted_chart_is_drawn_once_and_looks_the_same(plotly_page, name):
    fig = _app_figures()[name]
    raw = json.loads(pio.to_json(fig, validate=False))  # what st.plotly_chart sent before
    spec = json.loads(pio.to_json(browser_spec(fig.to_dict()), validate=False))  # what it sends now
    # Streamlit's second react: a JSON round trip of the same spec
    old = plotly_page.evaluate(REACT_TWICE, [raw, json.loads(json.dumps(raw))])
    new = plotly_page.evaluate(REACT_TWICE, [spec, json.loads(json.dumps(spec))])
    assert old["recalculated"], "the control: plotly's own spec is recalculated on the second react"
    assert not new["recalculated"]
    assert plotly_page.evaluate(IMAGE, spec) == plotly_page.evaluate(IMAGE, raw)
