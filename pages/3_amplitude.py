"""Example 3: Ca++ event amplitude of 622 cells in 11 mice, each at baseline and at 24h.

Two levels of clustering (measurements in cells, cells in mice): pooled LM and t-tests vs
the paired t-test and LMEs with five random-effect structures, and an LRT ladder.
"""

from __future__ import annotations

import streamlit as st

from mmteach import figures as F
from mmteach import narrative as N
from mmteach.examples import CA_AMPLITUDE
from mmteach.lm import fit_lm, t_test
from mmteach.lme import fit_lme
from mmteach.model_selection import lrt_ladder
from mmteach.subsample import PRESETS, cell_counts, subsample_per_group, units_per_group
from ui import compute, controls, display, ladder_view, lme_view, narrate, pooling_view, router, sources, state

router.run_under_router()

EX = CA_AMPLITUDE
NAME, TERMS, FACTORS, STRUCTURES, NLME = EX.dataset, EX.terms, EX.factors, EX.structures, EX.nlme
DF_METHODS = ("containment", "satterthwaite", "kenward-roger", "z")


formula = EX.formula


st.title("Ca++ amplitude: cells measured twice, in few mice")
st.markdown(
    "The integrated amplitude of Ca++ events was measured in the same cells at **baseline** "
    "and **24h** after ketamine: 622 cells from 11 mice, so the data cluster twice "
    "(two measurements per cell, many cells per mouse)."
)
data = sources.example_data(NAME)

full = units_per_group(data, "midx", "cidx")
ps = state.PageState("amp", {
    "structure": state.Param("lme.obj1", choices=list(STRUCTURES)),
    "estimation": state.Param("ML", choices=["REML", "ML"]),
    "df": state.Param("containment", choices=list(DF_METHODS)),
    "anyway": state.Param(False),
    "seed": state.Param(0, lo=0, hi=999_999),
})
ps.add({f"n{m}": state.Param(n, lo=0, hi=n) for m, n in full.items()},
       data_token=sources.source_label(data))


with controls.panel():
    controls.units_per_mouse(ps, data, "midx", full, unit="cidx", presets=PRESETS[:2],
                             note="each cell keeps both measurements; 0 drops the mouse")
    controls.lme_settings(ps, STRUCTURES, df_methods=DF_METHODS,
                          format_structure=lambda s: f"{s}: {STRUCTURES[s]}")
    st.checkbox("Fit unidentifiable structures anyway, as nlme does", key=ps.key("anyway"))
ps.sync()

counts = {m: int(ps[f"n{m}"]) for m in full}
sub = compute.here(subsample_per_group, data, "midx", counts, seed=int(ps["seed"]), unit="cidx")
if sub.empty:
    st.warning("Every mouse has 0 cells: move a slider up or pick a preset.")
    st.stop()
sources.source_note(data, "Example 3, Ca++ event integrated amplitude")
reml = ps["estimation"] == "REML"
structure = ps["structure"]
ladder_args = ({m: formula(m) for m in STRUCTURES}, EX.ladder)
pooling_formula = "res ~ treatment + " + ("(1 + treatment | midx)" if "treatment | midx" in STRUCTURES[structure]
                                          else "(1 | midx)")
# the slow fits start now in the process pool, while this script draws the figures (the
# arguments are those of the calls in lme_view, ladder_view and pooling_view below)
compute.prefetch(lrt_ladder, sub, *ladder_args, factors=FACTORS, unidentifiable_ok=EX.unidentifiable())
compute.prefetch(fit_lme, sub, formula(structure), factors=FACTORS, reml=reml, df_method=ps["df"],
                 **({"allow_unidentifiable": True} if ps["anyway"] else {}))
if pooling_view.is_open("amp"):
    compute.prefetch(fit_lme, sub, pooling_formula, factors=FACTORS, reml=reml)

corr = compute.here(F.per_group_correlation, sub, "res", "treatment", "cidx", "midx")
narrate.say(compute.derived(N.crossing_notice, sub, corr, response="res", time="treatment", unit="cidx",
                            group="midx"),
            lead="Notice:", box="info")
with display.lazy_expander("Cells per mouse", key="amp.counts") as shown:
    if shown:
        display.show_table(compute.here(cell_counts, sub, "midx", "treatment", unit="cidx")
                           .rename(columns={"1": "baseline", "2": "24h"}).rename_axis("mouse"),
                           name="cell counts", key="amp_counts", formats={"% of cells": "{:.1f}"})
display.show_fig(compute.fig(F.spaghetti_plot, sub, "res", "treatment", "cidx", "midx",
                             y_title="integrated amplitude"))
display.show_fig(compute.fig(F.before_after_scatter, sub, "res", "treatment", "cidx", "midx", cols=6))
left, right = display.columns(2)
with left:
    if corr["correlation"].notna().any():
        display.show_fig(compute.derived(F.correlation_boxplot, corr))
with right:
    display.show_table(corr.rename(columns={"group": "mouse", "n_cells": "cells"}), name="correlations",
                  key="amp_corr", hide_index=True)

st.subheader("Pooled, paired and mixed analyses of the 24h change")
analyses = compute.Analyses(sub)
fits, code, _run = analyses.fits, analyses.code, analyses.run


_run("Pooled LM", fit_lm, "res ~ treatment", factors=FACTORS)
_run("t-test, equal variances", t_test, "res", "treatment", kind="pooled")
_run("Welch t-test", t_test, "res", "treatment", kind="welch")
_run("Paired t-test", t_test, "res", "treatment", kind="paired", pair="cidx")
pooling_view.means_row(analyses, "res", "treatment", "midx")
lme_label = f"LME {structure} ({ps['estimation']}, {ps['df']} df)"
lme, missing = lme_view.fit_or_refuse(
    analyses, lme_label, formula(structure), structure=structure, group="midx", factors=FACTORS, reml=reml,
    df_method=ps["df"], anyway=bool(ps["anyway"]),
    r_note=f"\n# nlme: lme(res ~ treatment, {NLME[structure]}, data = d, method = \"{ps['estimation']}\")",
    py_call=f"fit_lme(data, {formula(structure)!r}, factors=['treatment'], reml={reml}, df_method={ps['df']!r})")

if fits:
    long = compute.derived(F.comparison_rows, fits, TERMS)
    display.show_table(F.format_side_by_side(long), name="comparison table", key="amp_compare")
    forest = long.dropna(subset=["estimate", "conf_low"])
    if not forest.empty:
        display.show_fig(compute.derived(F.estimate_comparison_plot, forest, term_label="24h vs baseline"))
    narrate.say(compute.derived(N.pairing_reading, long, term="treatment2", pooled="Pooled LM",
                                paired="Paired t-test", mixed=lme_label, missing=missing), lead="Read the table:")
if lme is not None:
    display.fit_messages(lme)
    st.markdown(f"**Variance components of {structure}**")
    display.show_table(lme.variance_components(), name="variance components", key="amp_varcomp",
                  hide_index=True)
pooling_view.show(fits, sub, condition="treatment", group="midx", term="treatment2", term_label="the 24h change",
                  formula=formula(structure), factors=FACTORS, reml=reml, key="amp",
                  pooling_formula=pooling_formula)

ladder_view.show(
    sub, *ladder_args, structures=STRUCTURES, nlme=NLME, group="midx",
    factors=FACTORS, unidentifiable_ok=EX.unidentifiable(), key="amp_ladder",
    why_refused="with two measurements per cell, a cell's pair of values has a 2x2 covariance (three "
    "numbers), which cannot pin down four parameters (cell intercept and slope variances, their "
    "covariance and the residual variance). nlme fits the model anyway: its log-likelihood, and so the "
    "test, is well defined; only the split of the variances is arbitrary.")
display.code_expander(code, key=ps.page)
sources.data_download(sub, "ca_amplitude_shown")
