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
        marks = []
        for x, color, dash, label in ((truth, _TRUE_COLOR, "solid", truth_label),
                                      (float(values.mean()) if values.size else np.nan,
                                       _MEAN_COLOR, "dash", "average")):
            if np.isfinite(x):
                marks.append(x)
                fig.add_vline(x=x, line_color=color, line_dash=dash, line_width=3,
                              row=1, col=i + 1)
                # a legend entry per line kind, once
                if i == 0:
                    fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name=label,
                                             line={"color": color, "dash": dash, "width": 3}))
        # the range holds the data and both lines, with a margin so no line sits on the frame
        ends = marks + ([float(values.min()), float(values.max())] if values.size else [])
        axis: dict = {"title_text": x_title}
        if ends:
            lo, hi = min(ends), max(ends)
            pad = 0.06 * (hi - lo) if hi > lo else max(abs(hi), 1.0) * 0.1
            axis["range"] = [lo - pad, hi + pad]
        fig.update_xaxes(**axis, row=1, col=i + 1)
    fig.update_yaxes(title_text="replicates", row=1, col=1)
    # the legend (two short entries) at the right: never over the axis titles
    fig.update_layout(title=title, height=380, bargap=0.05,
                      legend={"orientation": "v", "x": 1.02, "y": 1, "yanchor": "top"})
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
    """Histograms of the REML standard errors with the true SE marked; the pooled LM's
    average SE (often far off the scale) is given in each panel's title.

    Examples
    --------
    >>> from mmteach.simulate import simulate_report
    >>> fig = report_se_histogram(simulate_report(reps=20, n_classes=5, n_per_class=5))
    >>> fig.layout.title.text.startswith("Standard errors")
    True
    """
    lm = result.pooled_std_errors.mean(0)
    names = [f"{term} (pooled LM: {lm[i]:.3g})" for i, term in enumerate(TERMS)]
    return _histogram_panels(
        [result.std_errors[:, 0], result.std_errors[:, 1]], list(result.true_se), names,
        title=f"Standard errors over {result.reps} replicates", x_title="SE",
        truth_label="true SE")


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


def _alpha_label(fig: go.Figure, alpha: float) -> None:
    """The nominal alpha line, labelled outside the plot (right margin) so the label never
    sits on a bar, a point or an error bar."""
    fig.add_hline(y=alpha, line_dash="dash", line_color="#333333")
    fig.add_annotation(text=f"α = {alpha:g}", xref="paper", x=1.01, xanchor="left",
                       y=alpha, yref="y", showarrow=False, font={"color": "#333333"})
    fig.update_layout(margin_r=90)


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
    names = [_SHORT[m] for m in t["method"]]
    fig = go.Figure(go.Bar(
        x=names, y=t["rejection_rate"],
        marker_color=[_METHOD_COLORS[m] for m in t["method"]],
        error_y={"type": "data", "symmetric": False,
                 "array": t["conf_high"] - t["rejection_rate"],
                 "arrayminus": t["rejection_rate"] - t["conf_low"]},
        hovertemplate="%{x}: %{y:.1%}<extra></extra>",
    ))
    # the rates above the top of each CI, so the label never overlaps the error bar
    fig.add_trace(go.Scatter(x=names, y=t["conf_high"], mode="text",
                             text=[f"{r:.1%}" for r in t["rejection_rate"]],
                             textposition="top center", hoverinfo="skip"))
    _alpha_label(fig, result.alpha)
    fig.update_layout(title=f"Type I error over {result.reps} data sets with no true effect",
                      yaxis={"title": "share of data sets rejecting", "range": [0, 1.12],
                             "tickformat": ".0%"}, height=420, showlegend=False)
    return style(fig)


def type1_pvalue_histogram(result: TypeIResult) -> go.Figure:
    """Histogram of each method's p-values, one panel each: flat when a test is valid.

    Examples
    --------
    >>> from mmteach.simulate import simulate_type1
    >>> fig = type1_pvalue_histogram(simulate_type1(reps=50))
    >>> len(fig.data)
    3
    """
    keys = list(result.p_values)
    fig = make_subplots(rows=1, cols=len(keys), subplot_titles=[_SHORT.get(k, k) for k in keys],
                        horizontal_spacing=0.07)
    for i, key in enumerate(keys):
        fig.add_trace(go.Histogram(x=result.p_values[key],
                                   xbins={"start": 0, "end": 1, "size": 0.05},
                                   name=TYPE1_METHODS[key], marker_color=_METHOD_COLORS[key],
                                   opacity=0.8, showlegend=False), row=1, col=i + 1)
        # a valid test puts 5% of the data sets in each of the 20 bins
        fig.add_hline(y=0.05 * result.reps, line_dash="dot", line_color="#333333",
                      row=1, col=i + 1)
        fig.update_xaxes(title_text="p-value", range=[0, 1], dtick=0.5, row=1, col=i + 1)
    fig.update_yaxes(title_text="data sets", row=1, col=1)
    # two short title lines (they must fit a projector): what a valid test shows, and why a
    # valid test can still bend (the page's caption gives this run's numbers)
    fig.update_layout(title="No effect: a valid test is flat (dotted line);<br>"
                            "boundary fits and unequal ICCs push p towards 1",
                      height=470, bargap=0.05, margin_t=130)
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
            name=TYPE1_METHODS.get(key, key),
            # dashed: the mouse-means ANOVA often lies on top of the LME
            line={"color": _METHOD_COLORS.get(key),
                  "dash": "dash" if key == "mouse_means" else "solid"},
            error_y={"type": "data", "symmetric": False,
                     "array": part["conf_high"] - part["rejection_rate"],
                     "arrayminus": part["rejection_rate"] - part["conf_low"]},
        ))
    _alpha_label(fig, alpha)
    # the legend inside the plot, in the empty middle right (pooled rises above it, the
    # valid tests stay below it), never over the axis title
    fig.update_layout(title="Type I error as the design changes",
                      xaxis_title=titles.get(over, over),
                      yaxis={"title": "type I error", "range": [0, 1.05], "tickformat": ".0%"},
                      height=440, legend={"x": 0.98, "xanchor": "right", "y": 0.5,
                                          "yanchor": "middle",
                                          "bgcolor": "rgba(255,255,255,0.85)"})
    return style(fig)
