"""Plotly figures for the simulation page (Monte Carlo report and type I error study).

Each builder takes a result of :mod:`mmteach.simulate` (or the curve DataFrame) and returns a
``go.Figure``; the page only lays them out.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from mmteach.errors import DataError
from mmteach.figures import PALETTE, style
from mmteach.simulate import TERMS, TYPE1_METHODS, ReportResult, TypeIResult

_TRUE_COLOR = "#D55E00"
_MEAN_COLOR = "#0072B2"
_SHORT = {"pooled_lm": "Pooled LM", "mouse_means": "Mouse-means ANOVA", "lme": "LME"}
_METHOD_COLORS = {"pooled_lm": "#D55E00", "mouse_means": "#009E73", "lme": "#0072B2"}


def _histogram_panels(
    columns: Sequence[np.ndarray],
    truths: Sequence[float],
    names: Sequence[str],
    *,
    title: str,
    x_title: str,
    truth_label: str,
) -> go.Figure:
    fig = make_subplots(rows=1, cols=len(columns), subplot_titles=list(names),
                        horizontal_spacing=0.08)
    for i, (values, truth) in enumerate(zip(columns, truths, strict=True)):
        values = np.asarray(values, float)
        values = values[np.isfinite(values)]
        fig.add_trace(go.Histogram(x=values, nbinsx=40, marker_color=PALETTE[2], opacity=0.8,
                                   name=names[i], showlegend=False), row=1, col=i + 1)
        for x, color, dash, label in ((truth, _TRUE_COLOR, "solid", truth_label),
                                      (float(values.mean()) if values.size else np.nan,
                                       _MEAN_COLOR, "dash", "average")):
            if np.isfinite(x):
                fig.add_vline(x=x, line_color=color, line_dash=dash, line_width=3,
                              row=1, col=i + 1)
                # a legend entry per line kind, once
                if i == 0:
                    fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name=label,
                                             line={"color": color, "dash": dash, "width": 3}))
        fig.update_xaxes(title_text=x_title, row=1, col=i + 1)
    fig.update_yaxes(title_text="replicates", row=1, col=1)
    fig.update_layout(title=title, height=380, bargap=0.05,
                      legend={"orientation": "h", "y": -0.25})
    return style(fig)


def report_estimates_histogram(result: ReportResult) -> go.Figure:
    """Histograms of the REML fixed-effect estimates, true beta and average marked.

    Examples
    --------
    >>> from mmteach.simulate import simulate_report
    >>> fig = report_estimates_histogram(simulate_report(reps=20, n_classes=5, n_per_class=5))
    >>> len(fig.layout.annotations) >= 2
    True
    """
    return _histogram_panels(
        [result.estimates[:, 0], result.estimates[:, 1]], list(result.true_beta), TERMS,
        title=f"Estimates over {result.reps} replicates", x_title="estimate",
        truth_label="true value")


def report_se_histogram(result: ReportResult) -> go.Figure:
    """Histograms of the REML standard errors with the true SE marked (and the LM's average).

    Examples
    --------
    >>> from mmteach.simulate import simulate_report
    >>> fig = report_se_histogram(simulate_report(reps=20, n_classes=5, n_per_class=5))
    >>> fig.layout.title.text.startswith("Standard errors")
    True
    """
    fig = _histogram_panels(
        [result.std_errors[:, 0], result.std_errors[:, 1]], list(result.true_se), TERMS,
        title=f"Standard errors over {result.reps} replicates", x_title="SE",
        truth_label="true SE")
    lm = result.pooled_std_errors.mean(0)
    for i in range(2):
        axis = "" if i == 0 else str(i + 1)  # plotly names the first axes x / y, not x1 / y1
        fig.add_annotation(text=f"pooled LM average SE: {lm[i]:.3g}", xref=f"x{axis} domain",
                           yref=f"y{axis} domain", x=0.98, y=0.98, showarrow=False,
                           xanchor="right", font={"color": "#555555"})
    return fig


def report_sd_histogram(result: ReportResult) -> go.Figure:
    """Histograms of the estimated SDs (residual, random intercept, random slope).

    Examples
    --------
    >>> from mmteach.simulate import simulate_report
    >>> fig = report_sd_histogram(simulate_report(reps=20, n_classes=5, n_per_class=5))
    >>> len([t for t in fig.data if t.type == "histogram"])
    3
    """
    return _histogram_panels(
        [result.sds[:, i] for i in range(3)], list(result.true_sd),
        ["SD residual", "SD intercept", "SD slope"],
        title=f"Standard deviations over {result.reps} replicates", x_title="SD",
        truth_label="true SD")


def type1_bar(result: TypeIResult) -> go.Figure:
    """Rejection rate of each method with its 95% CI and the nominal alpha.

    Examples
    --------
    >>> from mmteach.simulate import simulate_type1
    >>> fig = type1_bar(simulate_type1(reps=50))
    >>> len(fig.data[0].y)
    3
    """
    t = result.table()
    fig = go.Figure(go.Bar(
        x=[_SHORT[m] for m in t["method"]], y=t["rejection_rate"],
        marker_color=[_METHOD_COLORS[m] for m in t["method"]],
        error_y={"type": "data", "symmetric": False,
                 "array": t["conf_high"] - t["rejection_rate"],
                 "arrayminus": t["rejection_rate"] - t["conf_low"]},
        text=[f"{r:.1%}" for r in t["rejection_rate"]], textposition="outside",
    ))
    fig.add_hline(y=result.alpha, line_dash="dash", line_color="#333333",
                  annotation_text=f"alpha = {result.alpha:g}", annotation_position="top left")
    fig.update_layout(title=f"Type I error over {result.reps} data sets with no true effect",
                      yaxis={"title": "share of data sets rejecting", "range": [0, 1.08],
                             "tickformat": ".0%"}, height=420, showlegend=False)
    return style(fig)


def type1_pvalue_histogram(result: TypeIResult) -> go.Figure:
    """Histogram of each method's p-values: uniform when a test is valid under the null.

    Examples
    --------
    >>> from mmteach.simulate import simulate_type1
    >>> fig = type1_pvalue_histogram(simulate_type1(reps=50))
    >>> len(fig.data)
    3
    """
    fig = go.Figure()
    for key, p in result.p_values.items():
        fig.add_trace(go.Histogram(x=p, xbins={"start": 0, "end": 1, "size": 0.05},
                                   name=TYPE1_METHODS[key], opacity=0.6,
                                   marker_color=_METHOD_COLORS[key]))
    fig.add_hline(y=0.05 * result.reps, line_dash="dot", line_color="#333333",
                  annotation_text="what a valid test gives", annotation_position="top right")
    fig.update_layout(barmode="overlay", title="p-values (flat if the test is valid)",
                      xaxis_title="p-value", yaxis_title="data sets", height=420,
                      legend={"orientation": "h", "y": -0.25})
    return style(fig)


def type1_curve_plot(curve: pd.DataFrame, *, alpha: float = 0.05) -> go.Figure:
    """Rejection rate against the curve's parameter, one line per method with 95% CIs.

    ``curve`` is :func:`mmteach.simulate.type1_curve`'s output; its first column is the
    parameter that varies.

    Examples
    --------
    >>> from mmteach.simulate import type1_curve
    >>> fig = type1_curve_plot(type1_curve(values=[0.0, 0.3], reps=50))
    >>> fig.layout.xaxis.title.text
    'ICC (same in every condition)'
    """
    if curve.empty or "method" not in curve.columns:
        raise DataError("The curve is empty: run the type I curve first.")
    over = curve.columns[0]
    titles = {"icc": "ICC (same in every condition)", "cells_per_mouse": "cells per mouse"}
    fig = go.Figure()
    for key, part in curve.groupby("method", sort=False):
        part = part.sort_values(over)
        fig.add_trace(go.Scatter(
            x=part[over], y=part["rejection_rate"], mode="lines+markers",
            name=TYPE1_METHODS.get(key, key), line={"color": _METHOD_COLORS.get(key)},
            error_y={"type": "data", "symmetric": False,
                     "array": part["conf_high"] - part["rejection_rate"],
                     "arrayminus": part["rejection_rate"] - part["conf_low"]},
        ))
    fig.add_hline(y=alpha, line_dash="dash", line_color="#333333",
                  annotation_text=f"alpha = {alpha:g}", annotation_position="bottom right")
    fig.update_layout(title="Type I error as the design changes",
                      xaxis_title=titles.get(over, over),
                      yaxis={"title": "type I error", "range": [0, 1.02], "tickformat": ".0%"},
                      height=440, legend={"orientation": "h", "y": -0.25})
    return style(fig)
