"""Simulation: the Monte Carlo report (does REML get it right?) and the type I error of pooling.

Every design parameter has a control (defaults: the report's and Example 1's); a run button
starts the batch simulation with a progress bar. Results are kept in the session together
with the settings they were run with.
"""

from __future__ import annotations

import streamlit as st

from mmteach import sim_figures as SF
from mmteach.errors import MMTeachError
from mmteach.simulate import EXAMPLE1_ICC, EXAMPLE1_MICE, simulate_report, simulate_type1, type1_curve
from ui import display, router, state

router.run_under_router()

N_COND = len(EXAMPLE1_MICE)
RESULT_KEY = "_sim.results"  # {"report": (settings, result), "typeI": ..., "curve": ...}

st.title("Simulation: what happens over 1,000 experiments")
st.markdown(
    "One data set cannot tell you whether a method is right. Here we simulate many data sets "
    "from a model we know and look at what each analysis does on average: whether a mixed "
    "model recovers the truth, and how often pooling cells finds an effect that is not there."
)

ps = state.PageState("sim", {
    # Monte Carlo report (Bossier 2018)
    "k": state.Param(40, lo=3, hi=200), "n": state.Param(50, lo=3, hi=500),
    "beta0": state.Param(5.0, lo=-100.0, hi=100.0), "beta1": state.Param(2.0, lo=-100.0, hi=100.0),
    "sd_b0": state.Param(1.0, lo=0.0, hi=10.0), "sd_b1": state.Param(2.0, lo=0.0, hi=10.0),
    "sigma_w": state.Param(1.0, lo=0.1, hi=10.0), "redraw": state.Param(False),
    "reps": state.Param(1000, lo=10, hi=5000), "seed": state.Param(1, lo=0, hi=999_999),
    # Type I error (Example 1)
    **{f"mice{c + 1}": state.Param(m, lo=1, hi=20) for c, m in enumerate(EXAMPLE1_MICE)},
    **{f"icc{c + 1}": state.Param(round(v, 3), lo=0.0, hi=0.95) for c, v in enumerate(EXAMPLE1_ICC)},
    "cells": state.Param(50, lo=2, hi=500), "alpha": state.Param(0.05, lo=0.001, hi=0.2),
    "t1reps": state.Param(1000, lo=50, hi=10000), "t1seed": state.Param(1, lo=0, hi=999_999),
    "over": state.Param("icc", choices=["icc", "cells_per_mouse"]),
    "curvereps": state.Param(500, lo=50, hi=5000),
})
results: dict = st.session_state.setdefault(RESULT_KEY, {})


def _bar(text: str):
    """A progress bar and the callback that drives it."""
    bar = st.progress(0.0, text=text)

    def update(done: int, total: int) -> None:
        bar.progress(min(done / total, 1.0), text=f"{text} {done:,} / {total:,}")

    return bar, update


tab_report, tab_type1 = st.tabs(["Monte Carlo report: random slopes", "Type I error of pooling"])

# ===========================================================================================
with tab_report:
    st.markdown(
        "**The report's question.** Each of *K* classes has its own intercept and slope: "
        "$Y_{ij} = (\\beta_0 + b_{0i}) + (\\beta_1 + b_{1i}) X_{ij} + \\varepsilon_{ij}$ with "
        "$X \\sim$ round(U(1, 20)). Fit `lmer(Y ~ 1 + X + (1 + X | class), REML = TRUE)` on "
        "every replicate: are the estimates, their standard errors and the SDs right on "
        "average? The true SE comes from $\\mathrm{Var}(\\hat\\beta) = (\\sum_i X_i' V_i^{-1} "
        "X_i)^{-1}$ with $V_i = X_i D X_i' + \\sigma_w^2 I$."
    )
    with st.container(border=True):
        c1, c2, c3, c4 = st.columns(4)
        c1.slider("Classes K", 3, 200, key=ps.key("k"))
        c1.slider("Rows per class n", 3, 500, key=ps.key("n"))
        c2.slider("True intercept β0", -100.0, 100.0, step=0.5, key=ps.key("beta0"))
        c2.slider("True slope β1", -100.0, 100.0, step=0.5, key=ps.key("beta1"))
        c3.slider("SD of random intercepts σb0", 0.0, 10.0, step=0.1, key=ps.key("sd_b0"))
        c3.slider("SD of random slopes σb1", 0.0, 10.0, step=0.1, key=ps.key("sd_b1"))
        c3.slider("Residual SD σw", 0.1, 10.0, step=0.1, key=ps.key("sigma_w"))
        c4.slider("Replicates", 10, 5000, step=10, key=ps.key("reps"))
        c4.number_input("Seed", 0, 999_999, step=1, key=ps.key("seed"))
        c4.toggle("New random effects per replicate", key=ps.key("redraw"),
                  help="Off: as in the report, the class effects are drawn once and kept, so "
                       "replicates differ only in their residuals.")
        run_report = st.button("Run the Monte Carlo simulation", type="primary",
                               key="sim_run_report")
    report_settings = {
        "n_classes": int(ps["k"]), "n_per_class": int(ps["n"]),
        "beta": (float(ps["beta0"]), float(ps["beta1"])), "sd_b0": float(ps["sd_b0"]),
        "sd_b1": float(ps["sd_b1"]), "sigma_w": float(ps["sigma_w"]), "reps": int(ps["reps"]),
        "seed": int(ps["seed"]), "redraw_random_effects": bool(ps["redraw"]),
    }
    if "report" not in results and not run_report:  # after a run, its notes say so
        st.caption(
            "The report's own loop repeats each class 50 times (`for (j in 1:NinClass)` "
            "around a draw of all 50 rows), so its fits used 100,000 rows instead of 2,000. "
            "This page generates n rows per class, as the model says."
        )
    if run_report:
        bar, update = _bar("Fitting replicates")
        try:
            results["report"] = (report_settings, simulate_report(**report_settings,
                                                                  progress=update))
        except MMTeachError as err:
            st.error(str(err))
        bar.empty()
    if "report" in results:
        settings, rep = results["report"]
        if settings != report_settings:
            st.warning("The settings changed since this run: press *Run* to update.")
        st.subheader("Fixed effects: average over replicates vs the truth")
        ft = rep.fixed_table().rename(columns={
            "true_estimate": "true", "avg_estimate": "average estimate",
            "mc_se_estimate": "MC error", "true_std_error": "true SE",
            "avg_std_error": "average SE", "sd_of_estimates": "SD of estimates",
            "pooled_lm_avg_std_error": "pooled LM average SE", "coverage": "95% coverage"})
        display.show_table(ft.round(4), name="fixed effects", key="sim_fixed", hide_index=True,
                      formats={"95% coverage": "{:.1%}"})
        st.caption(f"Coverage: {rep.coverage_method}. MC error = SD of estimates / √reps.")
        st.subheader("Standard deviations: average estimate vs the truth")
        sd = rep.sd_table().rename(columns={"true_sd": "true SD", "avg_sd": "average SD",
                                            "mc_se_sd": "MC error"})
        display.show_table(sd.round(4), name="standard deviations", key="sim_sds", hide_index=True)
        display.show_fig(SF.report_estimates_histogram(rep), key="sim_fig_est")
        display.show_fig(SF.report_se_histogram(rep), key="sim_fig_se")
        display.show_fig(SF.report_sd_histogram(rep), key="sim_fig_sd")
        st.markdown(
            "**Read it:** the REML average SE sits near the true SE, while the pooled LM's SE "
            "is far off: too large for the intercept, far too small for the slope, because "
            "it ignores that slopes vary between classes."
        )
        for note in rep.notes:
            st.caption(f"Note: {note}")
        if not rep.converged.all():
            st.caption(f"{int((~rep.converged).sum())} replicates did not converge.")
        with st.expander("R code of one replicate"):
            st.code("library(lme4)\nfit <- lmer(Y ~ 1 + X + (1 + X | class), data = dat, "
                    "REML = TRUE)\nsummary(fit)", language="r")
            st.code(f"simulate_report(**{report_settings!r})", language="python")
    else:
        st.info("Press **Run the Monte Carlo simulation** (1,000 replicates take about a "
                "second).")

# ===========================================================================================
with tab_type1:
    st.markdown(
        "**Example 1's design with no effect at all.** 24 mice in 5 conditions (7, 6, 3, 3, 5), "
        "50 cells per mouse; each cell is its mouse's value plus noise, and the share of "
        "variance between mice (the ICC) is as in the pCREB data. All conditions have the same "
        "mean, so every *significant* result is a false positive. The published finding: "
        "treating the 1,200 cells as independent gives a type I error above 90%."
    )
    with st.container(border=True):
        cols = st.columns(N_COND)
        for c in range(N_COND):
            cols[c].slider(f"Mice in condition {c + 1}", 1, 20, key=ps.key(f"mice{c + 1}"))
            cols[c].slider(f"ICC in condition {c + 1}", 0.0, 0.95, step=0.001, format="%.3f",
                           key=ps.key(f"icc{c + 1}"))
        c1, c2, c3, c4 = st.columns(4)
        c1.slider("Cells per mouse", 2, 500, key=ps.key("cells"))
        c2.slider("alpha", 0.001, 0.2, step=0.001, key=ps.key("alpha"))
        c3.slider("Replicates", 50, 10000, step=50, key=ps.key("t1reps"))
        c4.number_input("Seed", 0, 999_999, step=1, key=ps.key("t1seed"))
        run_t1 = st.button("Run the type I error study", type="primary", key="sim_run_type1")
    t1_settings = {
        "mice_per_condition": tuple(int(ps[f"mice{c + 1}"]) for c in range(N_COND)),
        "icc": tuple(float(ps[f"icc{c + 1}"]) for c in range(N_COND)),
        "cells_per_mouse": int(ps["cells"]), "alpha": float(ps["alpha"]),
        "reps": int(ps["t1reps"]), "seed": int(ps["t1seed"]),
    }
    if run_t1:
        bar, update = _bar("Simulating experiments")
        try:
            results["typeI"] = (t1_settings, simulate_type1(**t1_settings, progress=update))
        except MMTeachError as err:
            st.error(str(err))
        bar.empty()
    if "typeI" in results:
        settings, t1 = results["typeI"]
        if settings != t1_settings:
            st.warning("The settings changed since this run: press *Run* to update.")
        st.subheader("How often each analysis finds an effect that is not there")
        tab = t1.table()[["label", "rejections", "rejection_rate", "conf_low", "conf_high"]]
        tab = tab.rename(columns={"label": "analysis", "rejection_rate": "type I error",
                                  "conf_low": "95% CI low", "conf_high": "95% CI high"})
        display.show_table(tab.round(4), name="type I error", key="sim_type1", hide_index=True,
                      formats=dict.fromkeys(["type I error", "95% CI low", "95% CI high"],
                                            "{:.1%}"))
        st.caption(f"95% CI: {t1.ci_method}. Nominal alpha = {t1.alpha:g}.")
        left, right = display.columns(2)
        with left:
            display.show_fig(SF.type1_bar(t1), key="sim_fig_t1")
        with right:
            display.show_fig(SF.type1_pvalue_histogram(t1), key="sim_fig_p")
        for note in t1.notes:
            st.caption(f"Note: {note}")
        with st.expander("R code of one replicate"):
            st.code("anova(lm(y ~ condition, data = dat))                     # pooled\n"
                    "means <- aggregate(y ~ mouse + condition, data = dat, mean)\n"
                    "anova(lm(y ~ condition, data = means))                   # mouse means\n"
                    "anova(lmerTest::lmer(y ~ condition + (1 | mouse), data = dat))  # LME",
                    language="r")
    else:
        st.info("Press **Run the type I error study**.")

    st.subheader("Type I error as the design changes")
    c1, c2 = st.columns([1, 3])
    c1.radio("Vary", ["icc", "cells_per_mouse"], key=ps.key("over"),
             format_func={"icc": "ICC (all conditions)", "cells_per_mouse": "cells per mouse"}.get)
    values = ([0.0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7] if ps["over"] == "icc"
              else [2, 5, 10, 20, 50, 100, 200])
    c2.slider("Replicates per point", 50, 5000, step=50, key=ps.key("curvereps"))
    c2.caption(f"Values: {', '.join(map(str, values))}; mice per condition and alpha as set "
               "above" + ("." if ps["over"] == "icc" else "; ICCs as set above."))
    run_curve = c2.button("Run the curve", key="sim_run_curve")
    curve_settings = {"over": ps["over"], "values": tuple(values), "reps": int(ps["curvereps"]),
                      "seed": int(ps["t1seed"]), "alpha": float(ps["alpha"]),
                      "mice_per_condition": t1_settings["mice_per_condition"]}
    if ps["over"] == "cells_per_mouse":
        curve_settings["icc"] = t1_settings["icc"]
    else:
        curve_settings["cells_per_mouse"] = t1_settings["cells_per_mouse"]
    if run_curve:
        bar, update = _bar("Simulating the curve")
        try:
            results["curve"] = (curve_settings, type1_curve(**curve_settings, progress=update))
        except MMTeachError as err:
            st.error(str(err))
        bar.empty()
    if "curve" in results:
        settings, curve = results["curve"]
        if settings != curve_settings:
            st.warning("The settings changed since this curve was run: press *Run the curve*.")
        display.show_fig(SF.type1_curve_plot(curve, alpha=settings["alpha"]), key="sim_fig_curve")
        st.markdown(
            "**Read it:** with no clustering (ICC 0) pooling is fine; as soon as mice differ, "
            "the pooled test's false-positive rate climbs, and more cells per mouse make it "
            "*worse*, not better. The LME and the mouse-means ANOVA stay near alpha."
        )

ps.sync()
