"""Example 3: Ca++ event amplitude of 622 cells in 11 mice, each at baseline and at 24h.

Two levels of clustering (measurements in cells, cells in mice): pooled LM and t-tests vs
the paired t-test and LMEs with five random-effect structures, and an LRT ladder.
"""

from __future__ import annotations

import functools

import pandas as pd
import streamlit as st

from mmteach import figures as F
from mmteach.compare import compare_models
from mmteach.errors import MMTeachError, ModelError
from mmteach.lm import fit_lm, t_test
from mmteach.lme import fit_lme
from mmteach.subsample import PRESETS, cell_counts, preset_counts, subsample_per_group, units_per_group
from ui import compute, display, router, sources, state

router.run_under_router()

NAME = "ca_amplitude"
TERMS = {"treatment2": "24h vs baseline"}
FACTORS = ("treatment",)
STRUCTURES = {
    "lme.obj1": "(1 | midx/cidx)",
    "lme.obj2": "(1 | midx) + (1 | cidx)",
    "lme.obj3": "(1 | midx) + (treatment | cidx)",
    "lme.obj4": "(treatment | midx) + (1 | cidx)",
    "lme.obj5": "(treatment | midx) + (treatment | cidx)",
}
NLME = {
    "lme.obj1": "random = ~1 | midx/cidx",
    "lme.obj2": "random = list(midx = ~1, cidx = ~1)",
    "lme.obj3": "random = list(midx = ~1, cidx = ~treatment)",
    "lme.obj4": "random = list(midx = ~treatment, cidx = ~1)",
    "lme.obj5": "random = list(midx = ~treatment, cidx = ~treatment)",
}
LADDER = (("lme.obj3", "lme.obj1"), ("lme.obj4", "lme.obj1"), ("lme.obj5", "lme.obj3"),
          ("lme.obj5", "lme.obj4"))
DF_METHODS = ("containment", "satterthwaite", "kenward-roger", "z")
P_PLAIN = functools.partial(F.fmt_p, alpha=0.0)  # p-values without the 5% star


def _cell_code(text: str) -> str:
    """Code in a markdown table cell: its "|" would otherwise end the cell."""
    return "`" + text.replace("|", "\\|") + "`"


def formula(structure: str) -> str:
    """The lme4 formula of a named structure."""
    return f"res ~ treatment + {STRUCTURES[structure]}"


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


def _apply_preset(preset: str) -> None:
    for m, n in preset_counts(data, "midx", preset, unit="cidx").items():
        ps.set(f"n{m}", n)


with st.container(border=True):
    st.markdown("**Cells per mouse** (each cell keeps both measurements; 0 drops the mouse)")
    per_row = 6
    mice = list(full.items())
    for start in range(0, len(mice), per_row):
        cols = st.columns(per_row)
        for col, (m, n) in zip(cols, mice[start:start + per_row], strict=False):
            col.slider(f"Mouse {m} (of {n})", 0, n, key=ps.key(f"n{m}"))
    preset_cols = st.columns(len(PRESETS) + 2)
    for col, preset in zip(preset_cols, PRESETS, strict=False):
        col.button(preset, key=f"amp_preset_{preset}", on_click=_apply_preset, args=(preset,),
                   width="stretch")
    preset_cols[-1].number_input("Sampling seed", 0, 999_999, step=1, key=ps.key("seed"))
    c1, c2, c3 = st.columns([2, 1, 1.3])  # the random-effects names are long
    c1.selectbox("Random effects (LME)", list(STRUCTURES), key=ps.key("structure"),
                 format_func=lambda s: f"{s}: {STRUCTURES[s]}")
    c2.radio("Estimation", ["REML", "ML"], key=ps.key("estimation"), horizontal=True)
    # Kenward-Roger is defined for REML fits only (as in lmerTest)
    df_choices = [d for d in DF_METHODS if ps["estimation"] == "REML" or d != "kenward-roger"]
    if ps["df"] not in df_choices:
        ps.set("df", "satterthwaite")
        st.caption("Kenward-Roger needs REML; switched to Satterthwaite.")
    c3.selectbox("Degrees of freedom", df_choices, key=ps.key("df"))
    st.checkbox("Fit unidentifiable structures anyway, as nlme does", key=ps.key("anyway"))
ps.sync()

counts = {m: int(ps[f"n{m}"]) for m in full}
sub = subsample_per_group(data, "midx", counts, seed=int(ps["seed"]), unit="cidx")
if sub.empty:
    st.warning("Every mouse has 0 cells: move a slider up or pick a preset.")
    st.stop()
sources.source_note(data, "Example 3, Ca++ event integrated amplitude")

st.info(
    "**Notice:** within each mouse a cell's 24h value rises with its baseline value (the "
    "lines hardly cross, the scatter slopes up): the two measurements of a cell are "
    f"positively correlated. Analyses that treat the {len(sub):,} values as independent "
    "waste this pairing; the LME and the paired t-test use it."
)
with st.expander("Cells per mouse", expanded=False):
    display.show_table(cell_counts(sub, "midx", "treatment", unit="cidx")
                  .rename(columns={"1": "baseline", "2": "24h"}),
                  name="cell counts", key="amp_counts", formats={"% of cells": "{:.1f}"})
display.show_fig(compute.fig(F.spaghetti_plot, sub, "res", "treatment", "cidx", "midx"))
display.show_fig(compute.fig(F.before_after_scatter, sub, "res", "treatment", "cidx", "midx", cols=6))
left, right = display.columns(2)
with left:
    corr = F.per_group_correlation(sub, "res", "treatment", "cidx", "midx")
    if corr["correlation"].notna().any():
        display.show_fig(F.correlation_boxplot(corr))
with right:
    display.show_table(corr.rename(columns={"group": "mouse"}), name="correlations",
                  key="amp_corr", hide_index=True)

st.subheader("Pooled, paired and mixed analyses of the 24h change")
reml = ps["estimation"] == "REML"
structure = ps["structure"]
analyses = compute.Analyses(sub)
fits, code, _run = analyses.fits, analyses.code, analyses.run


_run("Pooled LM", fit_lm, "res ~ treatment", factors=FACTORS,
     py="fit_lm(data, 'res ~ treatment', factors=['treatment'])")
_run("t-test, equal variances", t_test, "res", "treatment", kind="pooled",
     py="t_test(data, 'res', 'treatment', kind='pooled')")
_run("Welch t-test", t_test, "res", "treatment", kind="welch",
     py="t_test(data, 'res', 'treatment', kind='welch')")
_run("Paired t-test", t_test, "res", "treatment", kind="paired", pair="cidx",
     py="t_test(data, 'res', 'treatment', kind='paired', pair='cidx')")
lme_label = f"LME {structure} ({ps['estimation']}, {ps['df']} df)"
lme_kwargs = {"factors": FACTORS, "reml": reml, "df_method": ps["df"]}
if ps["anyway"]:
    lme_kwargs["allow_unidentifiable"] = True
try:
    lme = compute.call(fit_lme, sub, formula(structure), **lme_kwargs)
    fits[lme_label] = lme
    code[lme_label] = (lme.r_code() + f"\n# nlme: lme(res ~ treatment, {NLME[structure]}, "
                       f"data = d, method = \"{ps['estimation']}\")",
                       f"fit_lme(data, {formula(structure)!r}, factors=['treatment'], "
                       f"reml={reml}, df_method={ps['df']!r})")
except MMTeachError as err:
    lme = None
    teach = display.too_few_groups(sub["midx"].nunique())
    if teach:
        st.error(f"**LME {structure}: {teach}**\n\nDetail: {err}")
    elif isinstance(err, ModelError) and not ps["anyway"]:
        st.warning(f"**{structure} cannot be estimated from these data.** {err}")
        st.caption("Tick *fit anyway, as nlme does* to see what nlme reports: the numbers "
                   "exist, but the variances are not separately determined by the data.")
    else:
        st.error(f"LME {structure}: {err}")

if fits:
    long = F.comparison_rows(fits, TERMS)
    display.show_table(F.format_side_by_side(long), name="comparison table", key="amp_compare")
    forest = long.dropna(subset=["estimate", "conf_low"])
    if not forest.empty:
        display.show_fig(F.estimate_comparison_plot(forest, term_label="24h vs baseline"))
    st.markdown(
        "**Read the table:** every analysis estimates about the same change; they differ "
        "in the standard error. The pooled LM and the unpaired t-tests ignore that each "
        "cell is measured twice; because the two values are positively correlated their "
        "difference varies less, so the paired t-test and the LME give smaller SEs and "
        "p-values. Rigour is not a hunt for the smallest p-value: the LME is right "
        "because it matches the design (cells in mice), not because p is smaller."
    )
if lme is not None:
    display.fit_messages(lme)
    st.markdown(f"**Variance components of {structure}**")
    display.show_table(lme.variance_components(), name="variance components", key="amp_varcomp",
                  hide_index=True)

st.subheader("Choosing the random effects: likelihood-ratio tests (ML)")
st.markdown(
    "Each row tests whether the extra random effects of the bigger model improve the fit "
    "(both fitted by ML, as `anova()` does). The lecture's reading: a cell-level random "
    "slope (obj3) improves obj1 substantially, a mouse-level slope (obj4) less, and slopes "
    "at both levels (obj5) add little over obj3.\n\n"
    "| model | lme4 random effects | nlme |\n|---|---|---|\n"
    + "\n".join(f"| {m} | {_cell_code(STRUCTURES[m])} | {_cell_code(NLME[m])} |"
                for m in STRUCTURES)
)
REFUSED = "fitted as nlme does; lme4 refuses it"
rows = []
boundary_notes: list[str] = []
refused: set[str] = set()
for big, small in LADDER:
    row: dict[str, object] = {"bigger": big, "smaller": small}
    args = (sub, formula(big), formula(small))
    try:
        try:
            cmp = compute.call(compare_models, *args, factors=FACTORS)
            status = "fitted"
        except ModelError:
            if display.too_few_groups(sub["midx"].nunique()):
                raise
            # lme4 refuses the cell-level slopes; their log-likelihood is still well
            # defined (only the split of the variances is not), so compare as nlme does
            cmp = compute.call(compare_models, *args, factors=FACTORS, allow_unidentifiable=True)
            status = REFUSED
            refused.update(m for m in (big, small) if "treatment | cidx" in STRUCTURES[m])
        row.update({"chisq": cmp.chisq, "df": cmp.df, "p": cmp.p_value,
                    "p (boundary 50:50)": cmp.p_value_boundary, "status": status})
        if cmp.boundary_note:
            boundary_notes.append(cmp.boundary_note)
    except MMTeachError as err:
        teach = display.too_few_groups(sub["midx"].nunique())
        row.update({"chisq": None, "df": None, "p": None, "p (boundary 50:50)": None,
                    "status": "cannot be fitted"})
        st.error(f"**{big} vs {small}: {teach}**\n\nDetail: {err}" if teach
                 else f"{big} vs {small}: {err}")
    rows.append(row)
ladder = pd.DataFrame(rows)
display.show_table(ladder, name="LRT ladder", key="amp_ladder", hide_index=True,
              formats={"chisq": "{:.2f}", "df": "{:.0f}", "p": P_PLAIN,
                       "p (boundary 50:50)": P_PLAIN})
if refused:
    st.caption(
        f"**Why lme4 refuses {' and '.join(sorted(refused))}:** with two measurements per "
        "cell, a cell's pair of values has a 2x2 covariance (three numbers), which cannot "
        "pin down four parameters (cell intercept and slope variances, their covariance and "
        "the residual variance). nlme fits the model anyway: its log-likelihood, and so the "
        "test, is well defined; only the split of the variances is arbitrary."
    )
st.caption(
    "A variance tested at zero sits on the **boundary** of its range, so the chi-square "
    "p-value is conservative (too large); the 50:50 mixture p-value corrects it where one "
    "variance is tested (– where no simple mixture applies), and the book uses alpha = 0.1 "
    "as a rule of thumb."
)
if boundary_notes:
    with st.expander("More on tests at the boundary"):
        for note in dict.fromkeys(boundary_notes):
            st.markdown(note)
display.code_expander(code)
sources.data_download(sub, "ca_amplitude_shown")
