"""Plotly figures for partial pooling, SD profiles, the design planner and the misspecification study.

Each builder takes an engine result (:mod:`mmteach.pooling`, :mod:`mmteach.profile`,
:mod:`mmteach.power`) or its DataFrame and returns a ``go.Figure``; pages only lay them out.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from scipy import stats

from mmteach.errors import DataError
from mmteach.figures import dict_figure, style
from mmteach.pooling import PoolingResult
from mmteach.power import METHODS, CostPlan
from mmteach.profile import SDProfile

__all__ = ["shrinkage_plot", "shrinkage_plane", "profile_plot", "power_curve_plot", "cost_plot",
           "misspec_plot"]

# Okabe-Ito: own (no pooling), LME (partial pooling), pooled (complete pooling)
_OWN, _LME, _POOLED, _POP = "#E69F00", "#0072B2", "#D55E00", "#009E73"
_METHOD_COLORS = {"pooled_lm": "#D55E00", "mouse_means": "#009E73", "lme": "#0072B2",
                  "lme_slope": "#CC79A7"}
_METHOD_SHORT = {"pooled_lm": "Pooled LM", "mouse_means": "Mouse means", "lme": "LME (1 | mouse)",
                 "lme_slope": "LME (1 + treatment | mouse)"}


def shrinkage_plot(pp: PoolingResult, term: str | None = None) -> go.Figure:
    """Per mouse: an arrow from its own estimate to its LME (shrunk) estimate, pooled lines.

    Mice are ordered by cell count (fewest at the top), so the longer arrows of small mice
    stand out; hover shows the shrinkage weight and the conditional SD.
    """
    term = term or pp.terms[0]
    t = pp.table[pp.table["term"] == term].sort_values("n", ascending=False).reset_index(drop=True)
    if t.empty:
        raise DataError(f"There is no random term {term!r} to draw.")
    labels = [f"mouse {lv} (n={n})" for lv, n in zip(t["level"], t["n"])]
    arrows = [{"arrowcolor": "#777777", "arrowhead": 3, "arrowsize": 1.2, "arrowwidth": 2, "ax": own, "axref": "x",
               "ay": y, "ayref": "y", "showarrow": True, "text": "", "x": lme, "xref": "x", "y": y, "yref": "y"}
              for y, own, lme in zip(labels, t["own"].to_numpy(), t["lme"].to_numpy(), strict=True)
              if np.isfinite(own)]
    traces = [
        {"type": "scatter", "x": t["own"].to_numpy(), "y": labels, "mode": "markers", "name": "own (no pooling)",
         "marker": {"color": _OWN, "size": 11, "symbol": "circle-open", "line": {"width": 2.5}},
         "hovertemplate": "%{y}: own %{x:.3g}<extra></extra>"},
        {"type": "scatter", "x": t["lme"].to_numpy(), "y": labels, "mode": "markers",
         "name": "LME (partial pooling)", "marker": {"color": _LME, "size": 11},
         "error_x": {"type": "data", "array": 1.96 * t["cond_sd"].to_numpy(), "color": _LME, "thickness": 1},
         "customdata": np.stack([t["weight"], t["cond_sd"]], -1),
         "hovertemplate": "%{y}: LME %{x:.3g} (weight %{customdata[0]:.2f}, cond. SD %{customdata[1]:.2g})"
                          "<extra></extra>"}]
    pooled = float(t["pooled"].iloc[0])
    pop = float(t["population"].iloc[0])
    for x, color, dash, name in ((pooled, _POOLED, "dash", "pooled LM (complete)"),
                                 (pop, _POP, "dot", "LME population")):
        traces.append({"type": "scatter", "x": [x, x], "y": [labels[0], labels[-1]], "mode": "lines", "name": name,
                       "line": {"color": color, "dash": dash, "width": 2.5}, "hoverinfo": "skip"})
    what = "intercept" if term == "(Intercept)" else term
    # no x-axis title (the title names the axis) so the legend below can never cover it
    return dict_figure(traces, {"annotations": arrows, "title": f"Each mouse's {what}: own → LME",
                                "height": max(420, 160 + 34 * len(t)),
                                "legend": {"orientation": "h", "y": -0.08, "x": 0, "yanchor": "top"}})


def _ellipse(center: np.ndarray, cov: np.ndarray, level: float, n: int = 100) -> np.ndarray:
    w, v = np.linalg.eigh(cov)
    r = np.sqrt(stats.chi2.ppf(level, 2) * np.maximum(w, 0.0))
    a = np.linspace(0, 2 * np.pi, n)
    return center + (v @ (r[:, None] * np.stack([np.cos(a), np.sin(a)]))).T


def shrinkage_plane(pp: PoolingResult, terms: tuple[str, str] | None = None) -> go.Figure:
    """Intercept-slope plane: own estimates, LME estimates, arrows, and the fitted covariance ellipse."""
    if len(pp.terms) < 2:
        raise DataError("The intercept-slope plane needs a random slope; this model has only a "
                        "random intercept.")
    a, b = terms or pp.terms[:2]
    ia, ib = pp.terms.index(a), pp.terms.index(b)
    t = pp.table.pivot(index="level", columns="term", values=["own", "lme", "n"])
    fig = go.Figure()
    for lev in t.index:
        x0, y0 = t.loc[lev, ("own", a)], t.loc[lev, ("own", b)]
        x1, y1 = t.loc[lev, ("lme", a)], t.loc[lev, ("lme", b)]
        if np.isfinite(x0) and np.isfinite(y0):
            fig.add_annotation(x=x1, y=y1, ax=x0, ay=y0, xref="x", yref="y", axref="x", ayref="y",
                               showarrow=True, arrowhead=3, arrowwidth=1.5, arrowcolor="#777777", text="")
    cov = pp.covariance[np.ix_([ia, ib], [ia, ib])]
    center = pp.population[[ia, ib]]
    for level, dash in ((0.5, "dot"), (0.95, "solid")):
        e = _ellipse(center, cov, level)
        fig.add_trace(go.Scatter(x=e[:, 0], y=e[:, 1], mode="lines", line={"color": _POP, "dash": dash},
                                 name=f"fitted mouse distribution, {level:.0%}", hoverinfo="skip"))
    txt = [f"mouse {lv}" for lv in t.index]
    fig.add_trace(go.Scatter(x=t[("own", a)], y=t[("own", b)], mode="markers", name="own (no pooling)",
                             text=txt, marker={"color": _OWN, "size": 10, "symbol": "circle-open",
                                               "line": {"width": 2.5}},
                             hovertemplate="%{text}: own (%{x:.3g}, %{y:.3g})<extra></extra>"))
    fig.add_trace(go.Scatter(x=t[("lme", a)], y=t[("lme", b)], mode="markers", name="LME (partial pooling)",
                             text=txt, marker={"color": _LME, "size": 10},
                             hovertemplate="%{text}: LME (%{x:.3g}, %{y:.3g})<extra></extra>"))
    fig.add_trace(go.Scatter(x=[pp.pooled[ia]], y=[pp.pooled[ib]], mode="markers", name="pooled LM",
                             marker={"color": _POOLED, "size": 14, "symbol": "x"}))
    # title pinned to the top, the (up to three-row) legend between it and the plot
    fig.update_layout(title={"text": "Intercept and slope per mouse: shrinkage", "y": 0.98, "yanchor": "top"},
                      xaxis_title=a, yaxis_title=b, height=580,
                      legend={"orientation": "h", "y": 1.0, "x": 0, "yanchor": "bottom"}, margin={"t": 170})
    return style(fig)


def profile_plot(pr: SDProfile) -> go.Figure:
    """Deviance increase against the SD, with the critical line and the profile interval."""
    t = pr.table
    crit = float(stats.chi2.ppf(pr.level, 1))
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=t["sd"], y=t["delta"], mode="lines+markers", name="deviance - minimum",
                             line={"color": _LME, "width": 3}))
    fig.add_hline(y=crit, line_dash="dash", line_color="#333333")
    hi = pr.conf_high if np.isfinite(pr.conf_high) else float(t["sd"].max())
    fig.add_vrect(x0=pr.conf_low, x1=hi, fillcolor=_POP, opacity=0.15, line_width=0)
    fig.add_annotation(x=(pr.conf_low + hi) / 2, y=crit, yshift=14, showarrow=False,
                       text=f"{pr.level:.0%} interval [{pr.conf_low:.3g}, {hi:.3g}]")
    fig.update_layout(title=f"Profile of the ML deviance over the {pr.term} SD",
                      xaxis_title=f"SD of {pr.term}", yaxis_title="deviance increase",
                      height=380, showlegend=False,
                      yaxis_range=[0, max(crit * 1.6, float(t["delta"].max()) * 1.05)])
    return style(fig)


def power_curve_plot(curve: pd.DataFrame, over: str, *, alpha: float = 0.05, rate: str = "power",
                     target: float | None = None) -> go.Figure:
    """Rejection rate against ``over`` (mice or cells per mouse), one line per method, 95% CIs."""
    if curve.empty:
        raise DataError("The curve is empty: run the simulation first.")
    titles = {"mice": "mice", "cells_per_mouse": "cells per mouse",
              "slope_sd": "treatment-effect SD between mice"}
    fig = go.Figure()
    for key, part in curve.groupby("method", sort=False):
        part = part.sort_values(over)
        fig.add_trace(go.Scatter(
            x=part[over], y=part["rejection_rate"], mode="lines+markers", name=_METHOD_SHORT.get(key, key),
            line={"color": _METHOD_COLORS.get(key), "dash": "dash" if key == "mouse_means" else "solid"},
            error_y={"type": "data", "symmetric": False, "array": part["conf_high"] - part["rejection_rate"],
                     "arrayminus": part["rejection_rate"] - part["conf_low"]},
            hovertemplate=f"{METHODS.get(key, key)}<br>{over} %{{x}}: %{{y:.1%}}<extra></extra>"))
    line = target if target is not None else alpha
    fig.add_hline(y=line, line_dash="dash", line_color="#333333",
                  annotation_text=(f"target {line:.0%}" if target is not None else f"α = {alpha:g}"),
                  annotation_position="top right")
    # the legend at the right, never over the axis title (whatever the font size)
    # power spans 0-100%; a type I error plot zooms to its data so alpha stays visible
    top = 1.05 if target is not None else min(1.05, float(curve["conf_high"].max()) * 1.15 + 0.05)
    fig.update_layout(title=f"{rate[0].upper() + rate[1:]} against {titles.get(over, over)}",
                      xaxis_title=titles.get(over, over),
                      yaxis={"title": rate, "range": [0, top], "tickformat": ".0%"}, height=420,
                      legend={"orientation": "v", "x": 1.02, "y": 1, "yanchor": "top"})
    return style(fig)


def cost_plot(plan: CostPlan) -> go.Figure:
    """Power against cost, one line per number of cells per mouse; cheapest and best designs marked."""
    g = plan.grid
    fig = go.Figure()
    palette = ["#56B4E9", "#E69F00", "#009E73", "#CC79A7", "#0072B2", "#D55E00", "#999999"]
    for i, (cells, part) in enumerate(g.groupby("cells_per_mouse")):
        part = part.sort_values("cost")
        fig.add_trace(go.Scatter(x=part["cost"], y=part["power"], mode="lines+markers",
                                 name=f"{cells} cells per mouse", text=part["mice"],
                                 line={"color": palette[i % len(palette)]},
                                 hovertemplate="%{text} mice: cost %{x:,.0f}, power %{y:.0%}<extra></extra>"))
    fig.add_hline(y=plan.target_power, line_dash="dash", line_color="#333333",
                  annotation_text=f"target {plan.target_power:.0%}", annotation_position="top left")
    fig.add_vline(x=plan.budget, line_dash="dot", line_color="#333333",
                  annotation_text=f"budget {plan.budget:,.0f}", annotation_position="bottom right")
    for rec, name, sym in ((plan.cheapest, "cheapest reaching target", "star"),
                           (plan.best_in_budget, "best within budget", "diamond")):
        if rec is not None:
            fig.add_trace(go.Scatter(x=[rec["cost"]], y=[rec["power"]], mode="markers", name=name,
                                     marker={"size": 18, "symbol": sym, "color": "#000000"},
                                     hovertemplate=f"{rec['mice']} mice x {rec['cells_per_mouse']} cells"
                                                   "<extra></extra>"))
    fig.update_layout(title="More mice, not more cells: power against cost",
                      xaxis_title="total cost", yaxis={"title": "power", "range": [0, 1.05], "tickformat": ".0%"},
                      height=440, legend={"orientation": "v", "x": 1.02, "y": 1, "yanchor": "top"})
    return style(fig)


def misspec_plot(curve: pd.DataFrame, *, alpha: float = 0.05) -> go.Figure:
    """Type I error over the treatment-by-mouse SD (the misspecification study)."""
    return power_curve_plot(curve, "slope_sd", alpha=alpha, rate="type I error")
