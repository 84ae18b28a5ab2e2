"""Design planner: power and type I error of a clustered experiment, and the cheapest design.

Widgets and cached engine calls only (ui/design_view.py, mmteach/power.py).
"""

from __future__ import annotations

import streamlit as st

from mmteach.errors import MMTeachError
from mmteach.power import METHODS, Design
from ui import design_view as V
from ui import display, router, state

router.run_under_router()

st.title("Plan an experiment: mice, cells and power")
st.markdown(
    "How many mice, and how many cells per mouse? Each simulated experiment is analysed three or "
    "four ways; the share of experiments with p < alpha is the **power** (or, with effect 0, the "
    "**type I error**). The effect is in SDs of one cell; the ICC is the share of that variance "
    "that lies between mice."
)
ps = state.PageState("design", {
    "kind": state.Param("between", choices=["between", "within"]),
    "conditions": state.Param(2, lo=2, hi=6), "mice": state.Param(6, lo=2, hi=40),
    "cells": state.Param(20, lo=2, hi=500), "icc": state.Param(0.3, lo=0.0, hi=0.95),
    "effect": state.Param(0.5, lo=0.0, hi=3.0), "slope_sd": state.Param(0.0, lo=0.0, hi=2.0),
    "alpha": state.Param(0.05, lo=0.001, hi=0.2), "reps": state.Param(1000, lo=100, hi=5000),
    "seed": state.Param(1, lo=0, hi=999_999),
    "cost_mouse": state.Param(300.0, lo=0.0, hi=1e6), "cost_cell": state.Param(5.0, lo=0.0, hi=1e5),
    "budget": state.Param(6000.0, lo=1.0, hi=1e8), "target": state.Param(0.8, lo=0.5, hi=0.99),
    "method": state.Param("lme", choices=list(METHODS)),
})
with st.container(border=True):
    # a wider first column: in presentation mode its options (never broken inside a word)
    # ran 50-76 px into the sliders beside them at 1280x720
    c1, c2, c3, c4 = st.columns([1.5, 1, 1, 1])
    c1.radio("Design", ["between", "within"], key=ps.key("kind"), horizontal=True,
             format_func={"between": "each mouse in one condition",
                          "within": "every mouse in both conditions"}.get)
    within = ps["kind"] == "within"
    if not within:
        c1.slider("Conditions", 2, 6, key=ps.key("conditions"))
    c2.slider("Mice " + ("in total" if within else "per condition"), 2, 40, key=ps.key("mice"))
    c2.slider("Cells per mouse", 2, 500, key=ps.key("cells"))
    c3.slider("ICC", 0.0, 0.95, step=0.01, key=ps.key("icc"))
    c3.slider("Effect (SDs of one cell)", 0.0, 3.0, step=0.05, key=ps.key("effect"),
              help="0 shows the type I error: how often each analysis finds an effect that is not there.")
    if within:
        c3.slider("Treatment-effect SD between mice", 0.0, 2.0, step=0.05, key=ps.key("slope_sd"))
    c4.slider("alpha", 0.001, 0.2, step=0.001, key=ps.key("alpha"))
    c4.slider("Replicates", 100, 5000, step=100, key=ps.key("reps"))
    c4.number_input("Seed", 0, 999_999, step=1, key=ps.key("seed"))
ps.sync()

try:
    design = Design(kind=ps["kind"], conditions=2 if within else int(ps["conditions"]), mice=int(ps["mice"]),
                    cells_per_mouse=int(ps["cells"]), icc=float(ps["icc"]), effect=float(ps["effect"]),
                    slope_sd=float(ps["slope_sd"]) if within else 0.0)
except MMTeachError as err:
    display.error("This design cannot be planned", err)
    st.stop()
run = dict(reps=int(ps["reps"]), alpha=float(ps["alpha"]), seed=int(ps["seed"]))

st.subheader("This design")
with st.spinner("Simulating experiments"):
    res = V.run_point(design, **run)
V.point_view(res)

st.subheader(f"{res.what.capitalize()} as the design grows")
if st.toggle("Show the curves over mice and over cells per mouse", key="design_curves"):
    V.curves_view(design, run["reps"] // 2, run["alpha"], run["seed"], res.what)

st.subheader("Cost: more mice or more cells?")
if ps["method"] not in design.methods():  # the random slope exists in the within design only
    ps.set("method", "lme")
with st.container(border=True):
    c1, c2, c3, c4, c5 = st.columns(5)
    c1.number_input("Cost per mouse", 0.0, 1e6, step=50.0, key=ps.key("cost_mouse"))
    c2.number_input("Cost per cell", 0.0, 1e5, step=1.0, key=ps.key("cost_cell"))
    c3.number_input("Budget", 1.0, 1e8, step=500.0, key=ps.key("budget"))
    c4.slider("Target power", 0.5, 0.99, step=0.01, key=ps.key("target"))
    c5.selectbox("Analysis", list(design.methods()), key=ps.key("method"), format_func=METHODS.get)
ps.sync()
if st.button("Find the cheapest design", type="primary", key="design_run_cost") or "design_cost" in st.session_state:
    st.session_state["design_cost"] = True
    with st.spinner(f"Simulating {len(V.MICE_GRID) * len(V.CELLS_GRID)} designs"):
        plan = V.run_cost(design, float(ps["cost_mouse"]), float(ps["cost_cell"]), float(ps["budget"]),
                          float(ps["target"]), ps["method"], max(200, run["reps"] // 4), run["alpha"], run["seed"])
    V.cost_view(plan)
