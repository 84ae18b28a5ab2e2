"""Simulation: the Monte Carlo report (does REML get it right?), the type I error of pooling, and a
treatment effect that varies between mice (what a missing random slope does).

Every design parameter has a control; a run button starts the batch simulation with a progress
bar. Results are kept in the session with the settings they were run with (ui/sim_view.py).
"""

from __future__ import annotations

import streamlit as st

from mmteach.simulate import EXAMPLE1_ICC, EXAMPLE1_MICE
from ui import router, sim_view, state

router.run_under_router()

N_COND = len(EXAMPLE1_MICE)
RESULT_KEY = "_sim.results"  # {"report": (settings, result), "typeI": ..., "curve": ..., "misspec": ...}
VIEWS = {"report": "Monte Carlo report: random slopes", "type1": "Type I error of pooling",
         "misspec": "Effect varying by mouse"}

st.title("Simulation: what happens over many experiments")  # the number is a slider's, not the title's
st.markdown(
    "One data set cannot tell you whether a method is right. Here we simulate many data sets "
    "from a model we know and look at what each analysis does on average: whether a mixed "
    "model recovers the truth, and how often pooling cells finds an effect that is not there."
)

ps = state.PageState("sim", {
    "view": state.Param("report", choices=list(VIEWS)),
    # Monte Carlo report (Bossier 2018); random effects redrawn per replicate by default
    "k": state.Param(40, lo=3, hi=200), "n": state.Param(50, lo=3, hi=500),
    "beta0": state.Param(5.0, lo=-100.0, hi=100.0), "beta1": state.Param(2.0, lo=-100.0, hi=100.0),
    "sd_b0": state.Param(1.0, lo=0.0, hi=10.0), "sd_b1": state.Param(2.0, lo=0.0, hi=10.0),
    "sigma_w": state.Param(1.0, lo=0.1, hi=10.0), "redraw": state.Param(True),
    "reps": state.Param(1000, lo=10, hi=5000), "seed": state.Param(1, lo=0, hi=999_999),
    # Type I error (Example 1)
    **{f"mice{c + 1}": state.Param(m, lo=1, hi=20) for c, m in enumerate(EXAMPLE1_MICE)},
    **{f"icc{c + 1}": state.Param(round(v, 3), lo=0.0, hi=0.95) for c, v in enumerate(EXAMPLE1_ICC)},
    "cells": state.Param(50, lo=2, hi=500), "alpha": state.Param(0.05, lo=0.001, hi=0.2),
    "t1reps": state.Param(1000, lo=50, hi=10000), "t1seed": state.Param(1, lo=0, hi=999_999),
    "over": state.Param("icc", choices=["icc", "cells_per_mouse"]),
    "curvereps": state.Param(500, lo=50, hi=5000),
    # Misspecification: a within-mouse treatment whose effect varies between mice
    "ms_mice": state.Param(8, lo=3, hi=40), "ms_cells": state.Param(20, lo=4, hi=200),
    "ms_icc": state.Param(0.3, lo=0.0, hi=0.9), "ms_reps": state.Param(1000, lo=100, hi=5000),
    "ms_sd": state.Param(0.5, choices=list(sim_view.SLOPE_SDS)),
})
results: dict = st.session_state.setdefault(RESULT_KEY, {})

# one study at a time, named in the link (?view=type1); tabs would run all three on every rerun
st.segmented_control("Study", list(VIEWS), key=ps.key("view"), format_func=VIEWS.get, required=True)
if ps["view"] == "report":
    st.markdown(
        "**The report's question.** Each of *K* classes has its own intercept and slope: "
        "$Y_{ij} = (\\beta_0 + b_{0i}) + (\\beta_1 + b_{1i}) X_{ij} + \\varepsilon_{ij}$ with "
        "$X \\sim$ round(U(1, 20)). Fit `lmer(Y ~ 1 + X + (1 + X | class), REML = TRUE)` on "
        "every replicate: are the estimates, their standard errors and the SDs right on "
        "average? The true SE comes from $\\mathrm{Var}(\\hat\\beta) = (\\sum_i X_i' V_i^{-1} "
        "X_i)^{-1}$ with $V_i = X_i D X_i' + \\sigma_w^2 I$. Each replicate draws new classes "
        "(a new experiment); switch *New random effects per replicate* off for the report's "
        "own design, which keeps one draw of the classes."
    )
    sim_view.report_view(ps, results)
elif ps["view"] == "type1":
    st.markdown(
        "**Example 1's design with no effect at all.** 24 mice in 5 conditions (7, 6, 3, 3, 5), "
        "50 cells per mouse; each cell is its mouse's value plus noise, and the share of "
        "variance between mice (the ICC) is as in the pCREB data. All conditions have the same "
        "mean, so every *significant* result is a false positive. The published finding: "
        "treating the 1,200 cells as independent gives a type I error above 90%."
    )
    sim_view.type1_view(ps, results, N_COND)
else:
    st.markdown(
        "**Every mouse is measured under control and treatment, and the treatment does nothing on "
        "average**, but each mouse responds a little differently (its own treatment effect, SD "
        "below). `lmer(y ~ treatment + (1 | mouse))` assumes every mouse responds the same; "
        "`lmer(y ~ treatment + (1 + treatment | mouse))` lets the response vary (Barr et al. "
        "2013, *keep it maximal*; Aarts et al. 2015). How often does each call a null effect "
        "significant?"
    )
    sim_view.misspec_view(ps, results)

ps.sync()
