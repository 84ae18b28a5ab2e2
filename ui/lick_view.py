"""Streamlit views of the water-lick page: the GLMM or why not, its per-mouse curves, the odds-scale table."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from mmteach import figures as F
from mmteach.bayes import fit_bayes_glmm, slope_prior_sd
from mmteach.compare import compare_models
from mmteach.errors import MMTeachError
from mmteach.glmm import fit_glmm
from mmteach.odds import odds_comparison_table
from ui import compute, display


def prefetch(data: pd.DataFrame, formula: str, reduced: str, *, nagq: int, group: str, prior_sd: float) -> None:
    """Start the slow fits (GLMM, both Bayesian fits, the LRT) side by side on every core; the
    page's later calls of the same arguments wait for them."""
    compute.prefetch(fit_glmm, data, formula, family="binomial", nagq=nagq, factors=(group,))
    for f in (formula, reduced):
        compute.prefetch(fit_bayes_glmm, data, f, family="binomial", b_prior_sd=slope_prior_sd(f, prior_sd))
    if nagq == 1:  # the LRT's full model is this GLMM (ui/term_test_view.lrt)
        compute.prefetch(fit_glmm, data, reduced, family="binomial", nagq=1, factors=(group,))
    else:
        compute.prefetch(compare_models, data, formula, reduced, family="binomial")


def glmm_or_why(data: pd.DataFrame, formula: str, *, nagq: int, group: str,
                one_mouse: str | None) -> tuple[Any, str | None]:
    """The binomial GLMM, or None and the reason (shown in an error box)."""
    if one_mouse:
        st.error(f"**GLMM: {one_mouse}**")
        return None, one_mouse
    try:
        return compute.call(fit_glmm, data, formula, family="binomial", nagq=nagq, factors=(group,)), None
    except MMTeachError as err:
        st.error(f"GLMM: {err}")
        return None, str(err)


def mouse_sd(result: Any, group: str) -> float | None:
    """The GLMM's mouse intercept SD (log-odds scale)."""
    if result is None:
        return None
    vc = result.variance_components()
    return float(vc.loc[vc["group"] == group, "sd"].iloc[0]) if (vc["group"] == group).any() else 0.0


def curves(result: Any, data: pd.DataFrame, *, group: str, intercept_only: bool) -> pd.DataFrame | None:
    """Per-mouse and population curves of a random-intercept GLMM (None for slopes)."""
    if result is None or not intercept_only:
        return None
    tidy = result.tidy().set_index("term")
    re = result.ranef()
    sd = mouse_sd(result, group) or 0.0
    grid = np.linspace(data["dff"].min(), data["dff"].max(), 60)
    return F.glmm_curves(float(tidy.loc["(Intercept)", "estimate"]),
                         float(tidy.loc["dff", "estimate"]),
                         dict(zip(re["level"], re["value"], strict=True)), sd, grid)


def odds_comparison(fits: dict[str, Any], *, ttest: str, key: str) -> pd.DataFrame:
    """The table and forest plot of the dF/F effect, slopes as odds changes; returns the long rows.

    The t-test's one number per mouse is a difference of proportions, not a slope: its row is
    on its own scale and left out of the forest plot.
    """
    long = pd.concat([
        compute.derived(F.comparison_rows, {k: v for k, v in fits.items() if k != ttest}, {"dff": "dF/F"}),
        compute.derived(F.comparison_rows, {k: v for k, v in fits.items() if k == ttest},
                        {"p_high - p_low": "dF/F"}),
    ], ignore_index=True)
    long = long.set_index("analysis").loc[list(fits)].reset_index()
    shown = odds_comparison_table(
        long, credible=[getattr(fits[a], "model", "") == "bayes" for a in long["analysis"]],
        on_log_odds=[a != ttest for a in long["analysis"]],
    ).rename(columns={"odds change per unit": "odds change per 1% dF/F"})
    display.show_table(shown, name="comparison table", key=key)
    st.caption("Odds change = 100 (exp(b) − 1) with its 95% interval (credible interval for "
               "the Bayesian fit). The t-test row is on another scale: for each mouse, the "
               "share of correct licks in its high-dF/F trials minus its low-dF/F trials, "
               "tested across mice (df = mice − 1). * marks p < 0.05.")
    display.show_fig(compute.derived(
        F.estimate_comparison_plot, long[[a != ttest for a in long["analysis"]]].dropna(subset=["conf_low"]),
        term_label="dF/F (log odds)"))
    return long
