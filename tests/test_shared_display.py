"""Shared display objects: figures, projector copies and tables made once for every session, drawn unchanged."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from mmteach import figures as F
from mmteach.tables import fmt_p
from ui import display
from ui.cache import SharedFigure, shared
from ui.chart_spec import browser_spec


def _figure() -> go.Figure:
    fig = go.Figure(go.Scatter(x=np.arange(50), y=np.arange(50) ** 0.5, name="mouse 1"))
    fig.update_layout(title="A figure", height=400)
    return F.style(fig)


def test_shared_figure_draws_the_same_json_from_one_dict():
    plain = _figure()
    expected = json.loads(pio.to_json(browser_spec(plain.to_dict()), validate=False))
    fig = shared(_figure())
    assert isinstance(fig, SharedFigure)
    assert fig.to_dict() is fig.to_dict()  # made once
    assert json.loads(pio.to_json(fig.to_dict(), validate=False)) == expected


def test_projector_copy_is_made_once_per_shared_figure_and_leaves_it_alone():
    fig = shared(_figure())
    before = json.loads(pio.to_json(fig))
    big = display.presentation_figure(fig)
    assert display.presentation_figure(fig) is big
    assert big is not fig
    assert big.layout.font.size > fig.layout.font.size
    assert big.layout.height == int(400 * 1.35)
    assert json.loads(pio.to_json(fig)) == before  # the shared one is unchanged
    # a figure nobody shares gets a fresh copy each time (nothing kept for it)
    loose = _figure()
    assert display.presentation_figure(loose) is not display.presentation_figure(loose)


def test_shared_table_translates_once_and_shows_the_pages_formats():
    df = pd.DataFrame({"estimate": [0.123456, -1.5], "p": [0.0004, np.nan], "n": [3, 4]},
                      index=["LM", "LME"])
    styler = display.shared_table(df, {"p": fmt_p})
    assert display.shared_table(df.copy(), {"p": fmt_p}) is styler  # same data and formats
    assert display.shared_table(df, {"p": "{:.3f}"}) is not styler  # other formats
    first = styler._translate(False, False)
    assert styler._translate(False, False) is first  # pandas' rendering kept
    shown = [[c["display_value"] for c in row if c.get("type") == "td"] for row in first["body"]]
    assert shown == [["0.1235", fmt_p(0.0004), "3"], ["-1.5", "–", "4"]]
    assert fmt_p(0.0004).endswith("*")
