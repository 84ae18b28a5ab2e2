"""Tests of mmteach.tables: numbers, p-values and side-by-side tables as reports print them."""

from __future__ import annotations

import math

import pandas as pd

from mmteach import figures as F
from mmteach import tables
from mmteach.results import Coef, FitResult, PerGroupResult


def _fit(est: float, se: float, df: float, p: float) -> FitResult:
    coefs = (Coef("(Intercept)", 1.0, 0.1, df, 10.0, 1e-5, 0.8, 1.2),
             Coef("x2", est, se, df, est / se, p, est - 2 * se, est + 2 * se))
    return FitResult(model="lm", formula="y ~ x", method="OLS", df_method="residual",
                     coefficients=coefs, n_obs=10)


def test_comparison_rows_and_format():
    per_group = pd.DataFrame({"group": [1, 2], "term": ["x2", "(Intercept)"],
                              "estimate": [0.5, 1.0], "std_error": [0.2, 0.1],
                              "df": [8.0, 8.0], "p_value": [0.04, 0.001],
                              "conf_low": [0.1, 0.8], "conf_high": [0.9, 1.2]})
    long = tables.comparison_rows({"LM": _fit(-0.078, 0.017, 1720, 4.8e-6),
                              "LME": _fit(-0.0175, 0.0173, math.inf, 0.31),
                              "mouse": per_group}, {"x2": "48h"})
    assert list(long["analysis"]) == ["LM", "LME", "mouse 1", "mouse 2"]
    assert math.isnan(long.iloc[3]["estimate"])  # mouse 2 has no x2 row
    wide = tables.format_side_by_side(long)
    assert wide.loc["LM", "48h: estimate ± SE"] == "-0.0780 ±\u00a00.0170"
    assert wide.loc["LM", "48h: p"] == "4.8e-6\u00a0*"
    assert wide.loc["LME", "48h: p"] == "0.31"
    assert wide.loc["LME", "48h: df"] == "∞ (z)"
    assert wide.loc["mouse 2", "48h: estimate ± SE"] == "–"
    fig = F.estimate_comparison_plot(long.dropna(subset=["estimate"]), term_label="48h")
    assert list(fig.layout.yaxis.categoryarray) == ["mouse 1", "LME", "LM"]  # first analysis on top
    # a legend says what the colours and symbols mean: significant rows apart from the others
    assert [(t.name, list(t.y)) for t in fig.data] == [("p < 0.05", ["mouse 1", "LM"]),
                                                       ("p ≥ 0.05 (or no p)", ["LME"])]
    assert fig.layout.showlegend and fig.data[0].marker.symbol != fig.data[1].marker.symbol


def test_per_group_result_rows_equal_its_tidy_frame():
    per = PerGroupResult(formula="y ~ x", group="m",
                         fits=(("1", _fit(0.5, 0.2, 8, 0.04), ""), ("2", None, "too few rows")))
    from_result = tables.comparison_rows({"mouse": per}, {"x2": "48h"})
    from_frame = tables.comparison_rows({"mouse": per.tidy()}, {"x2": "48h"})
    pd.testing.assert_frame_equal(from_result, from_frame)
    assert list(from_result["analysis"]) == ["mouse 1", "mouse 2"]
    assert math.isnan(from_result.iloc[1]["estimate"])


def test_formatters():
    assert tables.fmt_df(math.inf) == "∞ (z)" and tables.fmt_df(12.0) == "12" and tables.fmt_df(7.25) == "7.2"
    assert tables.display_value(None) == "–" and tables.display_value(True) == "True"
    assert tables.display_value(1234.5678) == "1235"
    assert tables.is_missing(float("nan")) and not tables.is_missing("a")
    assert tables.natural_levels(pd.Series([10, 2, 1])) == [1, 2, 10]
