"""Streamlit view of "is this term needed?" for a binomial GLMM: LRT, Bayes factor, parametric bootstrap."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from mmteach import figures as F
from mmteach import narrative as N
from mmteach.bayes import bayes_factor, fit_bayes_glmm, slope_prior_sd
from mmteach.compare import compare_models
from mmteach.errors import MMTeachError
from mmteach.glmm import compare_glmm_fits, fit_glmm
from ui import compute, controls, display, narrate
from ui.state import PageState


def _slope_posterior(fit: Any, term: str) -> dict[str, float]:
    row = fit.tidy().set_index("term").loc[term]
    return {"post_mean": float(row["estimate"]), "post_sd": float(row["std_error"])}


def lrt(data: pd.DataFrame, full: str, reduced: str, *, code: dict, one_mouse: str | None,
        full_fit: Any = None, factors: tuple[str, ...] = ()) -> Any:
    """The LRT of ``full`` against ``reduced`` in one sentence (its R call added to ``code``);
    None when it cannot run (with one mouse the GLMM's box already said why: a caption only).

    ``full_fit``: the page's Laplace GLMM of ``full`` (fitted with ``factors``), if it has one:
    then only the reduced model is fitted (the same test, :func:`compare_glmm_fits`)."""
    try:
        if one_mouse:
            raise MMTeachError(one_mouse)
        if full_fit is not None and full_fit.extras["nagq"] == 1:
            reduced_fit = compute.call(fit_glmm, data, reduced, family="binomial", nagq=1, factors=factors)
            res = compute.derived(compare_glmm_fits, data, full_fit, reduced_fit)
        else:
            res = compute.call(compare_models, data, full, reduced, family="binomial")
        st.markdown(f"LRT of `{full}` against `{reduced}`: chi-square = "
                    f"{res.chisq:.3f} on {res.df} df, p = {F.fmt_p(res.p_value)}.")
        code["LRT"] = (res.r_code(), f"compare_models(data, {full!r}, {reduced!r}, "
                       "family='binomial')")
        return res
    except MMTeachError as err:
        if one_mouse:  # the GLMM's box above already says why; no second box
            st.caption(f"No likelihood-ratio test: {one_mouse}")
        else:
            st.error(f"LRT: {err}")
        return None


def bayes(data: pd.DataFrame, full: str, reduced: str, bayes_fit: Any, *, prior_sd: float, term: str,
          term_label: str, code: dict) -> None:
    """BF10 of ``full`` against ``reduced`` under the page's prior on the term's slope, with why it
    moves with the prior (Lindley's paradox) while the interval does not."""
    if bayes_fit is None:
        return
    try:
        with st.spinner(f"Bayes factor: fitting the model without {term_label}…"):
            bayes0 = compute.call(fit_bayes_glmm, data, reduced, family="binomial",
                                  b_prior_sd=slope_prior_sd(reduced, prior_sd))
        bf = bayes_factor(bayes_fit, bayes0)
        favours = (f"with {term_label}" if bf.bf10 >= 1 else f"without {term_label}")
        ratio = bf.bf10 if bf.bf10 >= 1 else 1 / bf.bf10
        st.markdown(
            f"Bayes factor of `{full}` against `{reduced}`: BF10 = **{bf.bf10:.3g}**, "
            f"i.e. the data are {ratio:.3g} times as probable {favours}, with a normal(0, "
            f"{prior_sd:g}) prior on the {term_label} slope.")
        st.caption(
            "Unlike the interval, a Bayes factor depends strongly on the prior of the extra "
            "slope: a wide prior spreads the bigger model's belief over huge effects that the "
            "data rule out, and so penalises it even when the slope is clearly positive "
            "(Lindley's paradox). Move *Bayes: prior SD of the slope* and watch BF10 change "
            "while the slope's credible interval barely moves. "
            + narrate.plain(N.bayes_story(bf.bf10, prior_sd=prior_sd, **_slope_posterior(bayes_fit, term))))
        code["Bayes factor"] = (bf.r_code(), "bayes_factor(fit_bayes_glmm(data, "
                                f"{full!r}, b_prior_sd={prior_sd:g}), "
                                f"fit_bayes_glmm(data, {reduced!r}, b_prior_sd={slope_prior_sd(reduced, prior_sd)}))")
    except MMTeachError as err:
        display.error("Bayes factor", err)


def _refit_seconds(data: pd.DataFrame, full: str, reduced: str, factors: tuple[str, ...]) -> float | None:
    """How long a refit of both models took on these data: the LRT's (compare_models), or the
    two Laplace GLMM fits it was computed from (see :func:`lrt`)."""
    both = compute.seconds(compare_models, data, full, reduced, family="binomial")
    if both is not None:
        return both
    each = [compute.seconds(fit_glmm, data, f, family="binomial", nagq=1, factors=factors) for f in (full, reduced)]
    return None if None in each else sum(each)


def bootstrap(ps: PageState, data: pd.DataFrame, full: str, reduced: str, *, data_key: tuple, nboot: int,
              timed: bool, disabled: bool, lrt_p: float | None, key: str, factors: tuple[str, ...] = ()) -> None:
    """The number of samples (``ps["nboot"]``), its expected time (when ``timed``: the LRT ran) and
    the button that runs the parametric bootstrap, as pbkrtest::PBmodcomp; ``data_key`` names the
    data, so a kept result disappears when they change."""
    st.number_input("Bootstrap samples", 20, 2000, step=20, key=ps.key("nboot"),
                    help=f"pbkrtest::PBmodcomp uses {nboot:,} by default; fewer run faster but "
                         "give a rougher p-value.")
    # a bootstrap sample refits both models, as the LRT did on these data: its measured time
    per_sample = _refit_seconds(data, full, reduced, factors) if timed else None
    if per_sample:
        st.caption(N.bootstrap_time(per_sample, int(ps["nboot"])))
    ps.sync()
    try:
        boot = controls.run_button(
            "Run the parametric bootstrap", key=key, disabled=disabled, what="samples",
            inputs=(*data_key, full, int(ps["nboot"])),
            # in the process pool: one student's bootstrap takes a core, never the other pages
            run=lambda progress: compute.background(compare_models, data, full, reduced, family="binomial",
                                                    bootstrap=int(ps["nboot"]), seed=int(ps["seed"]),
                                                    progress=progress))
    except MMTeachError as err:
        boot = None
        display.error("Bootstrap", err)
    if boot is not None:
        narrate.say(N.bootstrap_reading(boot.bootstrap_p_value, boot.bootstrap_samples, boot.bootstrap_failed,
                                        lrt_p))
    else:
        st.caption("The bootstrap refits both models on data simulated from the smaller one, "
                   f"as pbkrtest::PBmodcomp does (with {nboot:,} samples by default); press the "
                   "button to run it.")
