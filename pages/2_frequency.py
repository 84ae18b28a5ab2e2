"""Example 2: Ca++ event frequency of PV cells in 4 mice at 4 times after ketamine.

Pooled LM vs mouse as a fixed effect vs LME vs one fit per mouse, with cells per mouse
under the student's control.
"""

from __future__ import annotations

import streamlit as st

from mmteach import figures as F
from mmteach import narrative as N
from mmteach.examples import CA_FREQUENCY
from mmteach.lm import fit_fixed_group, fit_lm, fit_per_group
from mmteach.lme import DF_METHODS, fit_lme
from mmteach.subsample import cell_counts, subsample_per_group, units_per_group
from ui import compute, controls, display, narrate, pooling_view, router, sources, state

router.run_under_router()

EX = CA_FREQUENCY
NAME, TERMS, FACTORS, STRUCTURES = EX.dataset, EX.terms, EX.factors, EX.structures
TIME = {1: "24h", 2: "48h", 3: "72h", 4: "1wk"}
Y_TITLE = "Ca++ event frequency"

st.title("Ca++ event frequency: many cells pooled from few mice")  # no claim: the data's story is the notice's
st.markdown(
    "Ca++ event frequencies of PV cells were measured at 24h, 48h, 72h and 1 week after "
    "ketamine in **four mice**. Does activity change relative to 24h?"
)
data = sources.example_data(NAME)

full = units_per_group(data, "midx")
ps = state.PageState("freq", {
    "structure": state.Param(next(iter(STRUCTURES)), choices=list(STRUCTURES)),
    # ML by default: the lecture's lmerTest table is an ML fit (REML = FALSE), see datasets/README.md
    "estimation": state.Param("ML", choices=["REML", "ML"]),
    "df": state.Param("satterthwaite", choices=list(DF_METHODS)),
    "term": state.Param("48h", choices=list(TERMS.values())),
    "seed": state.Param(0, lo=0, hi=999_999),
})
ps.add({f"n{m}": state.Param(n, lo=0, hi=n) for m, n in full.items()},
       data_token=sources.source_label(data))


with controls.panel():
    controls.units_per_mouse(ps, data, "midx", full, per_row=len(full))
    controls.lme_settings(
        ps, STRUCTURES, df_methods=DF_METHODS,
        estimation_help="ML reproduces the lecture's table (intercept SE 0.035 on 4.9 df). REML, lme4's "
                        "default, estimates the mouse variance with less bias and so gives a larger "
                        "intercept SE with only 4 mice (0.040 on 3.5 df); the time effects barely move.",
        df_help="satterthwaite and kenward-roger as lmerTest; containment as nlme; "
                "z treats the t statistic as normal (too optimistic with 4 mice).")
ps.sync()

counts = {m: int(ps[f"n{m}"]) for m in full}
sub = compute.here(subsample_per_group, data, "midx", counts, seed=int(ps["seed"]))
if sub.empty:
    st.warning("Every mouse has 0 cells: move a slider up or pick a preset.")
    st.stop()
sources.source_note(data, "Example 2, Ca++ event frequency")
reml = ps["estimation"] == "REML"
re_terms = STRUCTURES[ps["structure"]]
lme_formula = f"res ~ treatment_idx + {re_terms}"
# the LME starts now in the process pool, while this script draws the figures
compute.prefetch(fit_lme, sub, lme_formula, factors=FACTORS, reml=reml, df_method=ps["df"])

notice = st.empty()  # filled once the fits below are known: the sentence follows them
left, right = display.columns(2)
with left:
    display.show_fig(compute.fig(F.pooled_boxplot, sub, "res", "treatment_idx", labels=TIME, y_title=Y_TITLE))
with right:
    display.show_fig(compute.fig(F.per_mouse_boxplot, sub, "res", "treatment_idx", "midx", labels=TIME,
                                 y_title=Y_TITLE))

st.subheader("Cells per mouse and time point")
table = compute.here(cell_counts, sub, "midx", "treatment_idx").rename(columns={str(k): v for k, v in
                                                                    TIME.items()}).rename_axis("mouse")
display.show_table(table, name="cell counts", key="freq_counts", formats={"% of cells": "{:.1f}"})

st.subheader("The same question, four analyses")
analyses = compute.Analyses(sub, defer=True)
fits, code, errors = analyses.fits, analyses.code, analyses.errors
teach_lme = display.too_few_groups(sub["midx"].nunique())


_run = analyses.run
_run("Pooled LM", fit_lm, "res ~ treatment_idx", factors=("treatment_idx",))
_run("Mouse as fixed effect", fit_fixed_group, "res ~ treatment_idx + (1 | midx)", factors=FACTORS)
lme_label = f"LME {ps['estimation']}, {ps['df']} df"
_run(lme_label, fit_lme, lme_formula, factors=FACTORS, reml=reml, df_method=ps["df"], teach=teach_lme)
pooling_view.means_row(analyses, "res", "treatment_idx", "midx")
_run("Mouse", fit_per_group, "res ~ treatment_idx", "midx", factors=("treatment_idx",))
code["Mouse"] = ("by(data, data$midx, function(d) summary(lm(res ~ treatment_idx, data = d)))",
                 code.get("Mouse", ("", ""))[1])
for msg in errors:
    st.error(msg)
missing = narrate.missing_reasons(analyses)

if fits:
    long = compute.derived(F.comparison_rows, fits, TERMS)
    st.caption("Estimate ± SE of the change from 24h; * marks p < 0.05. Per-mouse rows are "
               "separate LMs within each mouse.")
    narrate.comparison_table(long, sub, key="freq_compare", group="midx", variables=["treatment_idx"],
                             fixed="Mouse as fixed effect", per_group="Mouse", per_group_fit=fits.get("Mouse"))
    lme = fits.get(lme_label)
    if lme is not None:
        display.fit_messages(lme)
        with display.lazy_expander("LME variance components", key="freq.varcomp") as shown:
            if shown:
                display.show_table(lme.variance_components(), name="variance components",
                                   key="freq_varcomp", hide_index=True)
    term = st.radio("Forest plot of", list(TERMS.values()), key=ps.key("term"),
                    horizontal=True)
    ps.sync()
    forest = long[(long["label"] == term)].dropna(subset=["estimate", "conf_low"])
    if not forest.empty:
        display.show_fig(compute.derived(F.estimate_comparison_plot, forest, term_label=f"{term} vs 24h"))
    pooling_view.show(fits, sub, condition="treatment_idx", group="midx", term={v: k for k, v in TERMS.items()}[term],
                      term_label=term, formula=lme_formula, factors=FACTORS, reml=reml, key="freq")
    term_key = next(k for k, v in TERMS.items() if v == term)
    story = {"term": term_key, "label": term, "group": "midx", "pooled": "Pooled LM", "per_group": "Mouse"}
    with notice:
        narrate.say(compute.derived(N.frequency_notice, sub, long, reference="24h", **story),
                    lead="Notice:", box="info")
    narrate.say(compute.derived(N.frequency_reading, sub, long, fixed="Mouse as fixed effect", mixed=lme_label,
                                missing=missing, **story), lead="Read the table:")
    display.code_expander(code, key=ps.page)
sources.data_download(sub, "ca_frequency_shown")
