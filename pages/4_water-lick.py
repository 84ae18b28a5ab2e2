"""Example 4: water-lick task, a binary outcome (correct lick) against dF/F in 8 mice.

Pooled GLM vs per-mouse proportion t-test vs GEE vs GLMM vs a Bayesian GLMM, odds ratios,
LRT and a parametric bootstrap.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from mmteach import figures as F
from mmteach import narrative as N
from mmteach.bayes import fit_bayes_glmm
from mmteach.examples import WATER_LICK
from mmteach.marginal import fit_gee, fit_glm, proportion_t_test
from mmteach.subsample import PRESETS, subsample_per_group, units_per_group
from ui import compute, controls, display, lick_view, narrate, router, sources, state, term_test_view

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
sub = compute.here(subsample_per_group, data, GROUP, counts, seed=int(ps["seed"]))
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
one_mouse = display.too_few_groups(sub[GROUP].nunique())
reduced = f"lick ~ 1 + {re_terms}"
if not one_mouse:
    lick_view.prefetch(sub, glmm_formula, reduced, nagq=nagq, group=GROUP, prior_sd=float(ps["prior_sd"]))
glmm, why_no_glmm = lick_view.glmm_or_why(sub, glmm_formula, nagq=nagq, group=GROUP, one_mouse=one_mouse)
mouse_sd = lick_view.mouse_sd(glmm, GROUP)
curves = lick_view.curves(glmm, sub, group=GROUP, intercept_only=ps["structure"] == next(iter(STRUCTURES)))
narrate.say(N.curves_notice(curves, sd=mouse_sd, why=why_no_glmm or (
    "the curves are drawn for the random-intercept model only" if glmm is not None else None)),
    lead="Notice:", box="info")


@st.fragment
def _lick_curves(sub: pd.DataFrame, curves: pd.DataFrame | None) -> None:
    """The bins only redraw this plot: a fragment, so moving them reruns nothing else."""
    with display.unexpected_errors("the water-lick curves"):
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
    long = lick_view.odds_comparison(fits, ttest=TTEST, key="lick_compare")
    narrate.say(compute.derived(N.lick_reading, long, glmm=glmm_label if glmm is not None else None,
                                gee="GEE (exchangeable)", pooled="Pooled GLM (logistic)", n_trials=len(sub),
                                sd=mouse_sd, why_no_glmm=why_no_glmm), lead="Read the table:")
if glmm is not None:
    display.fit_messages(glmm)
    with display.lazy_expander("GLMM variance components and random effects", key="lick.varcomp") as shown:
        if shown:
            display.show_table(glmm.variance_components(), name="variance components",
                               key="lick_varcomp", hide_index=True)
            display.show_table(glmm.ranef(), name="random effects", key="lick_ranef", hide_index=True)

st.subheader("Is dF/F needed? Likelihood-ratio test, Bayes factor, parametric bootstrap")
lrt = term_test_view.lrt(sub, glmm_formula, reduced, code=code, one_mouse=one_mouse, full_fit=glmm,
                         factors=(GROUP,))
term_test_view.bayes(sub, glmm_formula, reduced, fits.get("Bayesian GLMM"), prior_sd=prior_sd, term="dff",
                     term_label="dF/F", code=code)
term_test_view.bootstrap(ps, sub, glmm_formula, reduced, nboot=NBOOT, timed=lrt is not None,
                         disabled=bool(one_mouse), lrt_p=lrt.p_value if lrt is not None else None,
                         data_key=(sources.source_label(data), tuple(sorted(counts.items())), int(ps["seed"])),
                         key="lick_boot_run", factors=(GROUP,))
display.code_expander(code, key=ps.page)
sources.data_download(sub, "water_lick_shown")
