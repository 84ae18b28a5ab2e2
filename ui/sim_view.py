"""Streamlit views of the simulation page: the Monte Carlo report, the type I error study and the
misspecification study (a treatment effect that varies between mice). Engine: mmteach.simulate,
mmteach.power; texts are computed there from each run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

from mmteach import planner_figures as PF
from mmteach import sim_figures as SF
from mmteach.errors import MMTeachError
from mmteach.power import Design, misspec_reading, power_curve, simulate_power
from mmteach.simulate import simulate_report, simulate_type1, type1_curve, type1_curve_reading
from ui import display
from ui.state import PageState

SLOPE_SDS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)


def _bar(text: str):
    """A progress bar and the callback that drives it."""
    bar = st.progress(0.0, text=text)

    def update(done: int, total: int) -> None:
        bar.progress(min(done / total, 1.0), text=f"{text} {done:,} / {total:,}")

    return bar, update


def _run(results: dict, key: str, settings: dict, text: str, fn: Callable[..., Any], **kw: Any) -> None:
    """Run one study with a progress bar; keep (settings, result) or show the teaching error."""
    bar, update = _bar(text)
    try:
        results[key] = (settings, fn(**settings, progress=update, **kw))
    except MMTeachError as err:
        display.error("This simulation cannot run", err)
    bar.empty()


def _stale(settings: dict, now: dict, what: str = "this run") -> None:
    if settings != now:
        st.warning(f"The settings changed since {what}: press *Run* to update.")


def report_view(ps: PageState, results: dict) -> None:
    """The Monte Carlo report: random effects redrawn per replicate by default (issue 12.4)."""
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
        st.toggle("New random effects per replicate (off: the report's design, class effects drawn once)",
                  key=ps.key("redraw"),
                  help="On (default): every replicate is a new experiment with new classes, the "
                       "question the SE answers. Off: the report's design, class effects drawn "
                       "once and kept, so replicates differ only in their residuals.")
        run = st.button("Run the Monte Carlo simulation", type="primary", key="sim_run_report")
    now = {"n_classes": int(ps["k"]), "n_per_class": int(ps["n"]),
           "beta": (float(ps["beta0"]), float(ps["beta1"])), "sd_b0": float(ps["sd_b0"]),
           "sd_b1": float(ps["sd_b1"]), "sigma_w": float(ps["sigma_w"]), "reps": int(ps["reps"]),
           "seed": int(ps["seed"]), "redraw_random_effects": bool(ps["redraw"])}
    if "report" not in results and not run:
        st.caption("The report's own loop repeats each class 50 times (`for (j in 1:NinClass)` around "
                   "a draw of all 50 rows), so its fits used 100,000 rows instead of 2,000. This page "
                   "generates n rows per class, as the model says.")
    if run:
        _run(results, "report", now, "Fitting replicates", simulate_report)
    if "report" not in results:
        # the work, from the settings; no time: it depends on the settings and on the server
        st.info(f"Press **Run the Monte Carlo simulation**: it simulates {now['reps']:,} experiments of "
                f"{now['n_classes']} classes with {now['n_per_class']} rows each and fits the mixed model "
                "and the pooled LM to every one; a bar shows how far it has come.")
        return
    settings, rep = results["report"]
    _stale(settings, now)
    st.subheader("Fixed effects: average over replicates vs the truth")
    ft = rep.fixed_table().rename(columns={
        "true_estimate": "true", "avg_estimate": "average estimate", "mc_se_estimate": "MC error",
        "true_std_error": "true SE", "avg_std_error": "average SE", "sd_of_estimates": "SD of estimates",
        "pooled_lm_avg_std_error": "pooled LM average SE", "coverage": "95% coverage"})
    display.show_table(ft.round(4), name="fixed effects", key="sim_fixed", hide_index=True,
                       formats={"95% coverage": "{:.1%}"})
    design = ("random effects redrawn per replicate" if settings["redraw_random_effects"]
              else "the report's design: random effects drawn once")
    (st.info if settings["redraw_random_effects"] else st.warning)(f"**Read it ({design}):** {rep.reading()}")
    st.caption(f"Coverage: {rep.coverage_method}. MC error = SD of estimates / √reps.")
    st.subheader("Standard deviations: average estimate vs the truth")
    sd = rep.sd_table().rename(columns={"true_sd": "true SD", "avg_sd": "average SD", "mc_se_sd": "MC error"})
    display.show_table(sd.round(4), name="standard deviations", key="sim_sds", hide_index=True)
    display.show_fig(SF.report_estimates_histogram(rep), key="sim_fig_est")
    display.show_fig(SF.report_se_histogram(rep), key="sim_fig_se")
    display.show_fig(SF.report_sd_histogram(rep), key="sim_fig_sd")
    for note in rep.notes:
        st.caption(f"Note: {note}")
    if not rep.converged.all():
        st.caption(f"{int((~rep.converged).sum())} replicates did not converge.")
    with st.expander("R code of one replicate"):
        st.code("library(lme4)\nfit <- lmer(Y ~ 1 + X + (1 + X | class), data = dat, REML = TRUE)\n"
                "summary(fit)", language="r")
        st.code(f"simulate_report(**{now!r})", language="python")


def type1_view(ps: PageState, results: dict, n_cond: int) -> None:
    """Example 1's design with no effect: type I error of pooling, and its curve."""
    with st.container(border=True):
        cols = st.columns(n_cond)
        for c in range(n_cond):
            cols[c].slider(f"Mice in condition {c + 1}", 1, 20, key=ps.key(f"mice{c + 1}"))
            cols[c].slider(f"ICC in condition {c + 1}", 0.0, 0.95, step=0.001, format="%.3f",
                           key=ps.key(f"icc{c + 1}"))
        c1, c2, c3, c4 = st.columns(4)
        c1.slider("Cells per mouse", 2, 500, key=ps.key("cells"))
        c2.slider("alpha", 0.001, 0.2, step=0.001, key=ps.key("alpha"))
        c3.slider("Replicates", 50, 10000, step=50, key=ps.key("t1reps"))
        c4.number_input("Seed", 0, 999_999, step=1, key=ps.key("t1seed"))
        run = st.button("Run the type I error study", type="primary", key="sim_run_type1")
    now = {"mice_per_condition": tuple(int(ps[f"mice{c + 1}"]) for c in range(n_cond)),
           "icc": tuple(float(ps[f"icc{c + 1}"]) for c in range(n_cond)),
           "cells_per_mouse": int(ps["cells"]), "alpha": float(ps["alpha"]),
           "reps": int(ps["t1reps"]), "seed": int(ps["t1seed"])}
    if run:
        _run(results, "typeI", now, "Simulating experiments", simulate_type1)
    if "typeI" in results:
        settings, t1 = results["typeI"]
        _stale(settings, now)
        st.subheader("How often each analysis finds an effect that is not there")
        tab = t1.table()[["label", "rejections", "rejection_rate", "conf_low", "conf_high"]]
        tab = tab.rename(columns={"label": "analysis", "rejection_rate": "type I error",
                                  "conf_low": "95% CI low", "conf_high": "95% CI high"})
        display.show_table(tab.round(4), name="type I error", key="sim_type1", hide_index=True,
                           formats=dict.fromkeys(["type I error", "95% CI low", "95% CI high"], "{:.1%}"))
        st.caption(f"95% CI: {t1.ci_method}. Nominal alpha = {t1.alpha:g}.")
        left, right = display.columns(2)
        with left:
            display.show_fig(SF.type1_bar(t1), key="sim_fig_t1")
        with right:
            display.show_fig(SF.type1_pvalue_histogram(t1), key="sim_fig_p")
        st.caption(t1.pvalue_reading())
        for note in t1.notes:
            st.caption(f"Note: {note}")
        with st.expander("R code of one replicate"):
            st.code("anova(lm(y ~ condition, data = dat))                     # pooled\n"
                    "means <- aggregate(y ~ mouse + condition, data = dat, mean)\n"
                    "anova(lm(y ~ condition, data = means))                   # mouse means\n"
                    "anova(lmerTest::lmer(y ~ condition + (1 | mouse), data = dat))  # LME", language="r")
    else:
        st.info("Press **Run the type I error study**.")
    st.subheader("Type I error as the design changes")
    c1, c2 = st.columns([1, 3])
    c1.radio("Vary", ["icc", "cells_per_mouse"], key=ps.key("over"),
             format_func={"icc": "ICC (all conditions)", "cells_per_mouse": "cells per mouse"}.get)
    values = [0.0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7] if ps["over"] == "icc" else [2, 5, 10, 20, 50, 100, 200]
    c2.slider("Replicates per point", 50, 5000, step=50, key=ps.key("curvereps"))
    c2.caption(f"Values: {', '.join(map(str, values))}; mice per condition and alpha as set above"
               + ("." if ps["over"] == "icc" else "; ICCs as set above."))
    run_curve = c2.button("Run the curve", key="sim_run_curve")
    cnow = {"over": ps["over"], "values": tuple(values), "reps": int(ps["curvereps"]),
            "seed": int(ps["t1seed"]), "alpha": float(ps["alpha"]),
            "mice_per_condition": now["mice_per_condition"]}
    other = "icc" if ps["over"] == "cells_per_mouse" else "cells_per_mouse"
    cnow[other] = now[other]
    if run_curve:
        _run(results, "curve", cnow, "Simulating the curve", type1_curve)
    if "curve" in results:
        settings, curve = results["curve"]
        _stale(settings, cnow, "this curve was run")
        display.show_fig(SF.type1_curve_plot(curve, alpha=settings["alpha"]), key="sim_fig_curve")
        st.markdown(f"**Read it:** {type1_curve_reading(curve)}")


def misspec_view(ps: PageState, results: dict) -> None:
    """A within-mouse treatment whose effect varies between mice: LME with and without the slope."""
    with st.container(border=True):
        c1, c2, c3, c4 = st.columns(4)
        c1.slider("Mice (each sees control and treatment)", 3, 40, key=ps.key("ms_mice"))
        c2.slider("Cells per mouse (half per condition)", 4, 200, step=2, key=ps.key("ms_cells"))
        c3.slider("ICC (mouse share of the variance)", 0.0, 0.9, step=0.05, key=ps.key("ms_icc"))
        c4.select_slider("Treatment-effect SD between mice (read-out below)", list(SLOPE_SDS),
                         key=ps.key("ms_sd"))
        c1.slider("Replicates per point", 100, 5000, step=100, key=ps.key("ms_reps"))
        run = st.button("Run the misspecification study", type="primary", key="sim_run_misspec")
    design = Design(kind="within", mice=int(ps["ms_mice"]), cells_per_mouse=int(ps["ms_cells"]),
                    icc=float(ps["ms_icc"]), effect=0.0)
    now = {"design": design, "reps": int(ps["ms_reps"]), "sd": float(ps["ms_sd"])}
    if run:
        try:
            with st.spinner("Simulating experiments with no true treatment effect"):
                curve = power_curve(design, "slope_sd", SLOPE_SDS, reps=now["reps"])
                one = simulate_power(design, slope_sd=now["sd"], reps=now["reps"])
            results["misspec"] = (now, (curve, one))
        except MMTeachError as err:
            display.error("This simulation cannot run", err)
    if "misspec" not in results:
        st.info("Press **Run the misspecification study**.")
        return
    settings, (curve, one) = results["misspec"]
    _stale(settings, now)
    display.show_fig(PF.misspec_plot(curve), key="sim_fig_misspec")
    st.markdown(f"**Read it:** {misspec_reading(one)}")
    with st.expander("R code of one replicate"):
        st.code(one.r_code(), language="r")
