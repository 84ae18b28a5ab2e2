"""Streamlit views of the design planner (pages/7_design.py): cached engine calls of mmteach.power
and the tables, figures and computed sentences around them."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from mmteach import planner_figures as PF
from mmteach.power import METHODS, CostPlan, Design, PowerResult, analytic_power, cost_plan, power_curve, simulate_power
from ui import display

MICE_GRID = (3, 4, 5, 6, 8, 10, 12, 16, 20)
CELLS_GRID = (4, 10, 20, 50, 100)


@st.cache_data(show_spinner=False, max_entries=64)
def run_point(design: Design, reps: int, alpha: float, seed: int) -> PowerResult:
    return simulate_power(design, reps=reps, alpha=alpha, seed=seed)


@st.cache_data(show_spinner=False, max_entries=32)
def run_curve(design: Design, over: str, values: tuple, reps: int, alpha: float, seed: int) -> pd.DataFrame:
    return power_curve(design, over, list(values), reps=reps, alpha=alpha, seed=seed)


@st.cache_data(show_spinner=False, max_entries=32)
def run_cost(design: Design, cost_mouse: float, cost_cell: float, budget: float, target: float,
             method: str, reps: int, alpha: float, seed: int) -> CostPlan:
    return cost_plan(design, mice=MICE_GRID, cells=CELLS_GRID, cost_per_mouse=cost_mouse,
                     cost_per_cell=cost_cell, budget=budget, target_power=target, method=method,
                     reps=reps, alpha=alpha, seed=seed)


def point_view(res: PowerResult) -> None:
    """The rejection-rate table of one design with its design effect, effective n, singular rate."""
    d = res.design
    t = res.tidy()[["label", "rejection_rate", "conf_low", "conf_high"]].rename(columns={
        "label": "analysis", "rejection_rate": res.what, "conf_low": "95% CI low", "conf_high": "95% CI high"})
    display.show_table(t, name=res.what, key="design_rates", hide_index=True,
                       formats=dict.fromkeys([res.what, "95% CI low", "95% CI high"], "{:.1%}"))
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Design effect 1 + ICC (m − 1)", f"{d.design_effect:.2f}")
    c2.metric(f"Effective n of {d.n_cells:,} cells", f"{d.effective_n:.1f}")
    c3.metric("Singular LME fits", f"{res.singular_rate:.1%}")
    if d.conditions == 2:
        c4.metric(f"Exact t-test {res.what}", f"{analytic_power(d, res.alpha):.1%}",
                  help="The mouse-means t-test's rate from the noncentral t (R: power.t.test); the "
                       "simulated row should agree within its CI.")
    rates = res.rejection_rate
    best = max(rates, key=rates.get)
    st.markdown(
        f"**Read it:** {d.n_cells:,} cells from {d.n_mice} mice carry about as much information as "
        f"{d.effective_n:.0f} independent cells. "
        + (f"With no true effect the pooled LM still rejects in {rates['pooled_lm']:.0%} of experiments "
           f"(nominal {res.alpha:g}): its {res.what} is not a valid answer."
           if d.effect == 0 else
           f"Highest rate: {METHODS[best]}, {rates[best]:.0%}"
           + ("; but it is not valid: set the effect to 0 to see how often it rejects a null."
              if best == "pooled_lm" else ".")))
    with st.expander("R code: the same simulation with lme4 (slow, for checking)"):
        st.code(res.r_code(), language="r")


def curves_view(design: Design, reps: int, alpha: float, seed: int, what: str) -> None:
    """Curves over mice and over cells per mouse, side by side."""
    left, right = display.columns(2)
    mice = tuple(m for m in MICE_GRID if m >= (3 if design.kind == "within" else 2))
    with left, st.spinner("Simulating over mice"):
        c = run_curve(design, "mice", mice, reps, alpha, seed)
        display.show_fig(PF.power_curve_plot(c, "mice", alpha=alpha, rate=what,
                                              target=None if design.effect == 0 else 0.8),
                         key="design_fig_mice")
    cells = tuple(x for x in (4, 6, 10, 20, 50, 100, 200) if design.kind == "between" or x >= 4)
    with right, st.spinner("Simulating over cells per mouse"):
        c = run_curve(design, "cells_per_mouse", cells, reps, alpha, seed)
        display.show_fig(PF.power_curve_plot(c, "cells_per_mouse", alpha=alpha, rate=what,
                                              target=None if design.effect == 0 else 0.8),
                         key="design_fig_cells")


def cost_view(plan: CostPlan) -> None:
    display.show_fig(PF.cost_plot(plan), key="design_fig_cost")
    st.markdown(f"**Read it:** {plan.sentence()}")
    with st.expander("Every design in the grid"):
        grid = plan.grid[["mice", "cells_per_mouse", "cost", "power", "conf_low", "conf_high"]].rename(
            columns={"cells_per_mouse": "cells per mouse", "conf_low": "95% CI low", "conf_high": "95% CI high"})
        display.show_table(grid, name="cost grid", key="design_cost_grid", hide_index=True,
                           formats={"power": "{:.1%}", "95% CI low": "{:.1%}", "95% CI high": "{:.1%}",
                                    "cost": "{:,.0f}"})
