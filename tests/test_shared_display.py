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


def _marshalled(styler: object) -> bytes:
    """What st.dataframe sends for a Styler: Streamlit's own marshalling, data bytes included."""
    from streamlit import dataframe_util
    from streamlit.elements.lib.pandas_styler_utils import marshall_styler
    from streamlit.proto.ArrowData_pb2 import ArrowData

    proto = ArrowData()
    marshall_styler(proto, styler, "uuid")
    proto.data = dataframe_util.convert_pandas_df_to_arrow_bytes(
        dataframe_util.convert_anything_to_pandas_df(styler, ensure_copy=False))
    return proto.SerializeToString()


def test_shared_table_is_serialised_once_and_as_streamlit_serialises_it(monkeypatch):
    from streamlit import dataframe_util
    from streamlit.elements.lib import pandas_styler_utils

    from ui import marshal_once

    # the wrapped names are still Streamlit's (an upgrade that renames them fails here)
    assert dataframe_util.convert_pandas_df_to_arrow_bytes is marshal_once._arrow_bytes_once
    assert pandas_styler_utils._marshall_display_values is marshal_once._display_values_once
    assert marshal_once._arrow_bytes.__name__ == "convert_pandas_df_to_arrow_bytes"
    assert marshal_once._display_values.__name__ == "_marshall_display_values"

    df = pd.DataFrame({"analysis": ["Pooled LM", "LME"], "estimate": [0.123456, np.nan],
                       "p": [0.0004, 0.2]}).set_index("analysis")
    shared_styler = display.shared_table(df, {"p": fmt_p})
    plain = display.display_table(df.copy(), {"p": fmt_p}, html=False)  # nobody shares it
    plain.set_uuid("uuid")
    shared_styler.set_uuid("uuid")
    expected = _marshalled(plain)

    calls = {"display": 0, "arrow": 0}
    use_display, to_arrow = pandas_styler_utils._use_display_values, marshal_once._arrow_bytes

    def counting_display(*args, **kwargs):
        calls["display"] += 1
        return use_display(*args, **kwargs)

    def counting_arrow(*args, **kwargs):
        calls["arrow"] += 1
        return to_arrow(*args, **kwargs)

    monkeypatch.setattr(pandas_styler_utils, "_use_display_values", counting_display)
    monkeypatch.setattr(marshal_once, "_arrow_bytes", counting_arrow)
    assert _marshalled(shared_styler) == expected  # the same bytes as Streamlit's own path
    first = dict(calls)
    assert first == {"display": 0, "arrow": 2}  # display text (built as lists) and data, once each
    for _ in range(3):
        assert _marshalled(shared_styler) == expected
    assert calls == first  # reruns reuse both
    _marshalled(plain)
    assert calls == {"display": 1, "arrow": 4}  # a table nobody shares goes Streamlit's way each time


def test_display_text_frame_is_streamlits():
    from streamlit.elements.lib import pandas_styler_utils

    from ui import marshal_once

    frames = [
        pd.DataFrame({"estimate": [0.123456, -1.5, np.nan], "p": [0.0004, np.nan, 0.5], "n": [3, 4, 5],
                      "note": ["", "a mouse has no cells", None]}, index=["LM", "LME", "GLMM"]),
        pd.DataFrame({"mouse": ["1", "10", "2"], "cells": [130, 33, 85], "share": [52.1, 13.2, 34.0]}),
        pd.DataFrame({"x": pd.Categorical(["a", "b", "a"]), "flag": [True, False, True],
                      "value": [1e-20, 123456789.0, -0.0]}, index=pd.Index([5, 7, 9], name="row")),
    ]
    for df in frames:
        styler = display.display_table(df, {"p": fmt_p}, html=False)
        styles = styler._translate(False, False)
        ours = marshal_once._display_frame(styler.data, styles)
        theirs = pandas_styler_utils._use_display_values(styler.data, styles)
        pd.testing.assert_frame_equal(ours, theirs, check_exact=True)
        assert marshal_once._arrow_bytes(ours) == marshal_once._arrow_bytes(theirs)
