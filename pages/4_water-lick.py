"""Example 4: water-lick task, a binary outcome (correct lick) against dF/F in 8 mice.

Pooled GLM vs per-mouse proportion t-test vs GEE vs GLMM vs a Bayesian GLMM, odds ratios,
LRT and a parametric bootstrap.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from mmteach import figures as F
from mmteach import narrative as N
from mmteach.bayes import bayes_factor, fit_bayes_glmm
from mmteach.compare import compare_models
from mmteach.errors import MMTeachError
from mmteach.examples import WATER_LICK
from mmteach.glmm import fit_glmm
from mmteach.marginal import fit_gee, fit_glm, proportion_t_test
from mmteach.odds import odds_comparison_table
from mmteach.subsample import PRESETS, subsample_per_group, units_per_group
from ui import compute, controls, display, narrate, router, sources, state

router.run_under_router()

EX = WATER_LICK
NAME, GROUP, STRUCTURES = EX.dataset, EX.group, EX.structures
METHODS = {"Laplace": 1, "AGQ (25 points)": 25}
FULL_FIXED = "lick ~ dff"
TTEST = "Per-mouse proportion t-test"
NBOOT = 1000  # bootstrap samples by default, as pbkrtest::PBmodcomp (nsim = 1000)
PRIOR_SDS = (0.05, 0.1, 0.5, 1.0, 10.0)  # SD of the normal prior on the dF/F slope; the book: 10


st.title("Water lick: a yes/no outcome from few mice")
st.markdown(
    "Eight mice did a water-lick task; each trial is **correct (1) or wrong (0)**, with the "
    "mean neuronal activity (dF/F, %) of the trial. Does activity predict a correct lick? "
    "A binary outcome needs a GLM (logit link); trials of the same mouse need random "
    "effects: a GLMM."
)
data = sources.example_data(NAME)

full = units_per_group(data, GROUP)
ps = state.PageState("lick", {
    "structure": state.Param(next(iter(STRUCTURES)), choices=list(STRUCTURES)),
    "method": state.Param("Laplace", choices=list(METHODS)),
    "bins": state.Param(5, lo=2, hi=12),
    # pbkrtest::PBmodcomp's default; one run of 1,000 takes well under 10 s
    # (`python -m mmteach bench glmm_bootstrap_1000`)
    "nboot": state.Param(NBOOT, lo=20, hi=2000),
    "seed": state.Param(0, lo=0, hi=999_999),
    "prior_sd": state.Param(10.0, choices=list(PRIOR_SDS)),
})
ps.add({f"n{m}": state.Param(n, lo=0, hi=n) for m, n in full.items()},
       data_token=sources.source_label(data))


with controls.panel("Controls: trials per mouse and model"):
    controls.units_per_mouse(ps, data, GROUP, full, noun="Trials", per_row=len(full), presets=PRESETS[:2])
    c1, c2 = st.columns([1.6, 1.2])  # two rows: a long selectbox label stays readable
    c4 = st.columns(2)[0]
    c1.selectbox("Random effects (GLMM)", list(STRUCTURES), key=ps.key("structure"))
    c2.radio("GLMM likelihood", list(METHODS), key=ps.key("method"), horizontal=True,
             help="Laplace is glmer's default; adaptive Gauss-Hermite quadrature (nAGQ = 25) "
                  "is more accurate and works for a single random intercept only.")
    c4.select_slider("Bayes: prior SD of the slope", list(PRIOR_SDS), key=ps.key("prior_sd"),
                     format_func=lambda v: f"{v:g}",
                     help="The Bayesian GLMM puts a normal(0, SD) prior on the dF/F slope (the "
                          "book: 10). It barely moves the estimate but decides the Bayes factor.")
ps.sync()

counts = {m: int(ps[f"n{m}"]) for m in full}
sub = subsample_per_group(data, GROUP, counts, seed=int(ps["seed"]))
if sub.empty:
    st.warning("Every mouse has 0 trials: move a slider up or pick a preset.")
    st.stop()
sources.source_note(data, "Example 4, water-lick task")
st.caption(f"{len(sub)} trials, {int(sub['lick'].sum())} correct "
           f"({100 * sub['lick'].mean():.1f}%), {sub[GROUP].nunique()} mice.")

re_terms = STRUCTURES[ps["structure"]]
glmm_formula = f"{FULL_FIXED} + {re_terms}"
nagq = METHODS[ps["method"]]
method = ps["method"]
if nagq > 1 and re_terms != next(iter(STRUCTURES.values())):
    nagq, method = 1, "Laplace"  # as glmer: nAGQ > 1 needs a single scalar random effect
    st.caption("Adaptive quadrature works for a single random intercept only (as glmer's nAGQ > 1): "
               "with a random slope this GLMM uses the Laplace approximation.")
glmm = None
one_mouse = display.too_few_groups(sub[GROUP].nunique())
if not one_mouse:  # the slow fits side by side on every core; the calls below wait for them
    compute.prefetch(fit_glmm, sub, glmm_formula, family="binomial", nagq=nagq, factors=(GROUP,))
    for _formula in (glmm_formula, f"lick ~ 1 + {re_terms}"):
        compute.prefetch(fit_bayes_glmm, sub, _formula, family="binomial", b_prior_sd=float(ps["prior_sd"]))
    compute.prefetch(compare_models, sub, glmm_formula, f"lick ~ 1 + {re_terms}", family="binomial")
why_no_glmm = one_mouse
if one_mouse:
    st.error(f"**GLMM: {one_mouse}**")
else:
    try:
        glmm = compute.call(fit_glmm, sub, glmm_formula, family="binomial", nagq=nagq,
                       factors=(GROUP,))
    except MMTeachError as err:
        why_no_glmm = str(err)
        st.error(f"GLMM: {err}")


def _mouse_sd(result: object) -> float | None:
    """The GLMM's mouse intercept SD (log-odds scale)."""
    if result is None:
        return None
    vc = result.variance_components()
    return float(vc.loc[vc["group"] == GROUP, "sd"].iloc[0]) if (vc["group"] == GROUP).any() else 0.0


def _curves(result: object) -> pd.DataFrame | None:
    """Per-mouse and population curves of a random-intercept GLMM (None for slopes)."""
    if result is None or ps["structure"] != next(iter(STRUCTURES)):
        return None
    tidy = result.tidy().set_index("term")
    re = result.ranef()
    sd = _mouse_sd(result) or 0.0
    grid = np.linspace(sub["dff"].min(), sub["dff"].max(), 60)
    return F.glmm_curves(float(tidy.loc["(Intercept)", "estimate"]),
                         float(tidy.loc["dff", "estimate"]),
                         dict(zip(re["level"], re["value"], strict=True)), sd, grid)


curves = _curves(glmm)
narrate.say(N.curves_notice(curves, sd=_mouse_sd(glmm), why=why_no_glmm or (
    "the curves are drawn for the random-intercept model only" if glmm is not None else None)),
    lead="Notice:", box="info")


@st.fragment
def _lick_curves(sub: pd.DataFrame, curves: pd.DataFrame | None) -> None:
    """The bins only redraw this plot: a fragment, so moving them reruns nothing else."""
    st.slider("dF/F bins in the plot", 2, 12, key=ps.key("bins"))
    ps.sync()
    binned = compute.derived(F.binned_proportions, sub, "lick", "dff", GROUP, bins=int(ps["bins"]))
    display.show_fig(compute.derived(F.lick_proportion_curves, binned, curves))


left, right = display.columns(2)
with left:
    _lick_curves(sub, curves)
with right:
    if glmm is not None:
        display.show_fig(compute.derived(F.caterpillar_plot, glmm.ranef()))

st.subheader("Five analyses of the dF/F effect")
analyses = compute.Analyses(sub)
fits, code, _run = analyses.fits, analyses.code, analyses.run


_run("Pooled GLM (logistic)", fit_glm, FULL_FIXED, family="binomial")
_run(TTEST, proportion_t_test, "lick", GROUP, "dff")
_run("GEE (exchangeable)", fit_gee, FULL_FIXED, GROUP, family="binomial")
glmm_label = f"GLMM ({method})"
if glmm is not None:
    fits[glmm_label] = glmm
    code[glmm_label] = (
        glmm.r_code(), f"fit_glmm(data, {glmm_formula!r}, family='binomial', nagq={nagq})")
prior_sd = float(ps["prior_sd"])
if not one_mouse:
    _run("Bayesian GLMM", fit_bayes_glmm, glmm_formula, family="binomial", b_prior_sd=prior_sd)

if fits:
    # the t-test's one number per mouse is a difference of proportions, not a slope
    long = pd.concat([
        compute.derived(F.comparison_rows, {k: v for k, v in fits.items() if k != TTEST}, {"dff": "dF/F"}),
        compute.derived(F.comparison_rows, {k: v for k, v in fits.items() if k == TTEST},
                        {"p_high - p_low": "dF/F"}),
    ], ignore_index=True)
    long = long.set_index("analysis").loc[list(fits)].reset_index()
    shown = odds_comparison_table(
        long, credible=[getattr(fits[a], "model", "") == "bayes" for a in long["analysis"]],
        on_log_odds=[a != TTEST for a in long["analysis"]],
    ).rename(columns={"odds change per unit": "odds change per 1% dF/F"})
    display.show_table(shown, name="comparison table", key="lick_compare")
    st.caption("Odds change = 100 (exp(b) − 1) with its 95% interval (credible interval for "
               "the Bayesian fit). The t-test row is on another scale: for each mouse, the "
               "share of correct licks in its high-dF/F trials minus its low-dF/F trials, "
               "tested across mice (df = mice − 1). * marks p < 0.05.")
    display.show_fig(compute.derived(
        F.estimate_comparison_plot, long[[a != TTEST for a in long["analysis"]]].dropna(subset=["conf_low"]),
        term_label="dF/F (log odds)"))
    narrate.say(N.lick_reading(long, glmm=glmm_label if glmm is not None else None, gee="GEE (exchangeable)",
                               pooled="Pooled GLM (logistic)", n_trials=len(sub), sd=_mouse_sd(glmm),
                               why_no_glmm=why_no_glmm), lead="Read the table:")
if glmm is not None:
    display.fit_messages(glmm)
    with st.expander("GLMM variance components and random effects"):
        display.show_table(glmm.variance_components(), name="variance components",
                      key="lick_varcomp", hide_index=True)
        display.show_table(glmm.ranef(), name="random effects", key="lick_ranef", hide_index=True)

st.subheader("Is dF/F needed? Likelihood-ratio test, Bayes factor, parametric bootstrap")
reduced = f"lick ~ 1 + {re_terms}"
lrt = None
try:
    if one_mouse:
        raise MMTeachError(one_mouse)
    lrt = compute.call(compare_models, sub, glmm_formula, reduced, family="binomial")
    st.markdown(f"LRT of `{glmm_formula}` against `{reduced}`: chi-square = "
                f"{lrt.chisq:.3f} on {lrt.df} df, p = {F.fmt_p(lrt.p_value)}.")
    code["LRT"] = (lrt.r_code(), f"compare_models(data, {glmm_formula!r}, {reduced!r}, "
                   "family='binomial')")
except MMTeachError as err:
    if one_mouse:  # the GLMM's box above already says why; no second box
        st.caption(f"No likelihood-ratio test: {one_mouse}")
    else:
        st.error(f"LRT: {err}")

bayes_fit = fits.get("Bayesian GLMM")


def _slope_posterior(fit: object) -> dict[str, float]:
    row = fit.tidy().set_index("term").loc["dff"]
    return {"post_mean": float(row["estimate"]), "post_sd": float(row["std_error"])}

if bayes_fit is not None:
    try:
        with st.spinner("Bayes factor: fitting the model without dF/F…"):
            bayes0 = compute.call(fit_bayes_glmm, sub, reduced, family="binomial",
                             b_prior_sd=prior_sd)
        bf = bayes_factor(bayes_fit, bayes0)
        favours = ("with dF/F" if bf.bf10 >= 1 else "without dF/F")
        ratio = bf.bf10 if bf.bf10 >= 1 else 1 / bf.bf10
        st.markdown(
            f"Bayes factor of `{glmm_formula}` against `{reduced}`: BF10 = **{bf.bf10:.3g}**, "
            f"i.e. the data are {ratio:.3g} times as probable {favours}, with a normal(0, "
            f"{prior_sd:g}) prior on the dF/F slope.")
        st.caption(
            "Unlike the interval, a Bayes factor depends strongly on the prior of the extra "
            "slope: a wide prior spreads the bigger model's belief over huge effects that the "
            "data rule out, and so penalises it even when the slope is clearly positive "
            "(Lindley's paradox). Move *Bayes: prior SD of the slope* and watch BF10 change "
            "while the slope's credible interval barely moves. "
            + narrate.plain(N.bayes_story(bf.bf10, prior_sd=prior_sd, **_slope_posterior(bayes_fit))))
        code["Bayes factor"] = (bf.r_code(), "bayes_factor(fit_bayes_glmm(data, "
                                f"{glmm_formula!r}, b_prior_sd={prior_sd:g}), "
                                f"fit_bayes_glmm(data, {reduced!r}, b_prior_sd={prior_sd:g}))")
    except MMTeachError as err:
        display.error("Bayes factor", err)

st.number_input("Bootstrap samples", 20, 2000, step=20, key=ps.key("nboot"),
                help=f"pbkrtest::PBmodcomp uses {NBOOT:,} by default; fewer run faster but "
                     "give a rougher p-value.")
# a bootstrap sample refits both models, as the LRT above did on these data: its measured time
per_sample = compute.seconds(compare_models, sub, glmm_formula, reduced, family="binomial") if lrt else None
if per_sample:
    st.caption(N.bootstrap_time(per_sample, int(ps["nboot"])))
ps.sync()
try:
    boot = controls.run_button(
        "Run the parametric bootstrap", key="lick_boot_run", disabled=bool(one_mouse), what="samples",
        inputs=(sources.source_label(data), tuple(sorted(counts.items())), int(ps["seed"]), glmm_formula,
                int(ps["nboot"])),
        # in the process pool: one student's bootstrap takes a core, never the other pages
        run=lambda progress: compute.background(compare_models, sub, glmm_formula, reduced, family="binomial",
                                                bootstrap=int(ps["nboot"]), seed=int(ps["seed"]),
                                                progress=progress))
except MMTeachError as err:
    boot = None
    display.error("Bootstrap", err)
if boot is not None:
    narrate.say(N.bootstrap_reading(boot.bootstrap_p_value, boot.bootstrap_samples, boot.bootstrap_failed,
                                    lrt.p_value if lrt is not None else None))
else:
    st.caption("The bootstrap refits both models on data simulated from the smaller one, "
               f"as pbkrtest::PBmodcomp does (with {NBOOT:,} samples by default); press the "
               "button to run it.")
display.code_expander(code)
sources.data_download(sub, "water_lick_shown")
