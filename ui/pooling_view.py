"""Streamlit views beside a page's comparison table: the mouse-means row's sentence, partial pooling
(own -> LME estimate per mouse) and, for a singular fit, the profile of the zero SD with what to do.

Pages call :func:`means_row` among their analyses and :func:`show` under the table (one line each).
Engine: mmteach.mouse_means, mmteach.pooling, mmteach.profile.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import streamlit as st

from mmteach import planner_figures as PF
from mmteach.errors import MMTeachError
from mmteach.lme import fit_lme
from mmteach.mouse_means import fit_mouse_means, mouse_means_sentence
from mmteach.pooling import partial_pooling
from mmteach.profile import SDProfile, profile_sd
from ui import compute, display

MEANS_LABEL = "Mouse means"  # the summary-statistics analysis


def means_row(analyses: compute.Analyses, response: str, condition: str, group: str) -> None:
    """Add the t-test / ANOVA on per-mouse means as a row of the page's comparison.

    With fewer than two mice there is no such test, and the page's mixed-model message already
    says why one mouse cannot be generalised from: no second error box for the same reason.
    """
    if analyses.data[group].nunique() < 2:
        return
    analyses.run(MEANS_LABEL, fit_mouse_means, response, condition, group)


def lme_profile(data: pd.DataFrame, formula: str, *, factors: Sequence[str] = (), reml: bool = True) -> SDProfile:
    """The LME refitted (cached) and the ML profile of its first zero SD (lme4's profile())."""
    return profile_sd(fit_lme(data, formula, factors=factors, reml=reml))


def _lme(fits: dict[str, Any]) -> tuple[str, Any] | tuple[None, None]:
    for label, fit in fits.items():
        if getattr(fit, "model", "") == "lme":
            return label, fit
    return None, None


def show(fits: dict[str, Any], data: pd.DataFrame, *, condition: str, group: str, term: str,
         term_label: str, formula: str, factors: Sequence[str] = (), reml: bool = True, key: str,
         pooling_formula: str | None = None) -> None:
    """Under a comparison table: when the mouse means equal the LME, partial pooling, singular fits.

    ``pooling_formula`` draws the shrinkage of a model with the mouse term only (when the page's
    model also has cell-level terms, a mouse has no single shrinkage weight).
    """
    label, lme = _lme(fits)
    means = fits.get(MEANS_LABEL)
    if means is not None:
        st.caption(compute.derived(mouse_means_sentence, means, lme, data, condition, group, term, term_label))
    if lme is None:
        return
    # one SD: the profile takes a fraction of a second; with more variance parameters each point
    # re-optimises the others (seconds to tens of seconds), so it waits for a click
    quick = len(lme.extras["lmefit"].theta) == 1
    if lme.singular and (quick or st.button("Explain the singular fit (profile of the zero SD, "
                                            "10-40 s)", key=f"{key}_explain")):
        try:
            pr = compute.call(lme_profile, data, formula, factors=tuple(factors), reml=reml)
        except MMTeachError as err:
            st.caption(str(err))
        else:
            with st.expander(f"Why is the fit singular? The profile of the {pr.term} SD", expanded=True):
                display.show_fig(compute.derived(PF.profile_plot, pr), key=f"{key}_profile")
                st.markdown(pr.advice())
                st.code(pr.r_code(), language="r")
    if display.skipped("partial_pooling", int(data[group].nunique()), len(data),
                       label="The partial-pooling view", plural=False, unit=f"{group} levels"):
        return
    with display.lazy_expander("Partial pooling: how the LME pulls each mouse towards the population",
                               key=f"{key}.pooling") as shown:
        if shown:
            _pooling(lme, label, data, group=group, factors=factors, reml=reml, key=key,
                     pooling_formula=pooling_formula)


def is_open(key: str) -> bool:
    """Whether the partial-pooling section of page ``key`` is open (its fit is needed)."""
    return display.is_open(f"{key}.pooling")


def _pooling(lme: Any, label: str, data: pd.DataFrame, *, group: str, factors: Sequence[str], reml: bool,
             key: str, pooling_formula: str | None) -> None:
    """The partial-pooling section: shrinkage figures, sentence, table and R code."""
    try:
        if pooling_formula:
            label = f"{pooling_formula} (the mouse term alone, so each mouse has one weight)"
            lme = compute.call(fit_lme, data, pooling_formula, factors=tuple(factors), reml=reml)
        pp = compute.derived(partial_pooling, lme)
    except MMTeachError as err:
        st.caption(str(err))
        return
    display.show_fig(compute.derived(PF.shrinkage_plot, pp), key=f"{key}_shrink")
    if len(pp.terms) > 1:
        display.show_fig(compute.derived(PF.shrinkage_plane, pp), key=f"{key}_plane")
    st.markdown(pp.sentence())
    tab = pp.table[["level", "term", "n", "own", "lme", "pooled", "weight", "cond_sd"]].rename(columns={
        "level": group, "n": "cells", "own": "own (no pooling)", "lme": "LME (partial pooling)",
        "pooled": "pooled LM", "weight": "shrinkage weight", "cond_sd": "conditional SD"})
    display.show_table(tab, name="partial pooling", key=f"{key}_pooling", hide_index=True,
                       formats={c: "{:.3g}" for c in tab.columns[3:]})
    st.caption(f"Fit: {label}. Weight = σb² / (σb² + σ² / n) for a random intercept; conditional "
               "SD as lme4's ranef(fit, condVar = TRUE).")
    st.code(pp.r_code(), language="r")
