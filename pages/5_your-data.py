"""Your data: the pooled-vs-mixed comparison on an uploaded CSV/TSV or a built-in set."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from mmteach import figures as F
from mmteach import narrative as N
from mmteach.errors import MMTeachError
from mmteach.formula import parse_formula
from mmteach.glmm import fit_glmm
from mmteach.lm import fit_fixed_group, fit_lm, fit_per_group
from mmteach.lme import fit_lme
from mmteach.marginal import fit_gee, fit_glm
from mmteach.reader import MAX_MB
from ui import compute, data_view, display, narrate, pooling_view, router, sources, state, upload

router.run_under_router()

BUILTIN = {"ca_frequency": "Example 2: Ca++ event frequency",
           "ca_amplitude": "Example 3: Ca++ amplitude",
           "water_lick": "Example 4: water lick"}


st.title("Your data")
st.markdown(
    "Upload a table with one row per observation (a cell, a trial), a numeric response, "
    "predictors and a column naming the animal, or start from a built-in set. You get the "
    "same comparison as on the example pages: pooled vs animal-aware analyses."
)
ps = state.PageState("yours", {
    "source": state.Param("built-in", choices=["built-in", "upload"]),
    "dataset": state.Param("ca_frequency", choices=list(BUILTIN)),
    "mode": state.Param("choose columns", choices=["choose columns", "type a formula"]),
    "response": state.Param(""), "predictors": state.Param([]), "group": state.Param(""),
    "factors": state.Param([]), "family": state.Param("gaussian", choices=list(upload.FAMILIES)),
    "formula": state.Param(""),
})
c1, c2 = st.columns([1, 2])
c1.radio("Data", ["built-in", "upload"], key=ps.key("source"), horizontal=True)
df: pd.DataFrame | None = None
token = ""  # names the data: new data get new suggested columns
try:
    if ps["source"] == "built-in":
        c2.selectbox("Built-in data set", list(BUILTIN), key=ps.key("dataset"),
                     format_func=BUILTIN.get)
        df = sources.dataset(ps["dataset"])  # an uploaded original file wins
        token = f"{ps['dataset']}:{sources.source_label(df)}"
    else:
        up = c2.file_uploader(f"CSV, TSV or text table (at most {MAX_MB} MB)", key="yours_upload",
                              type=["csv", "tsv", "txt", "dat", "xlsx", "xls"])
        if up is not None:
            raw = up.getvalue()
            df, token = upload.read_upload(raw, up.name), f"{up.name}:{len(raw)}:{hash(raw)}"
except MMTeachError as err:
    display.error("This file cannot be analysed", err)
if df is None:
    ps.sync()
    st.info("Upload a file to start.")
    st.stop()
upload.read_notes(df)

columns = [str(c) for c in df.columns]
roles = upload.reset_on_new_data(ps, df, token)

m1, m2 = st.columns([1, 3])
m1.radio("Model from", ["choose columns", "type a formula"], key=ps.key("mode"))
with m2:
    if ps["mode"] == "choose columns":
        upload.column_widgets(ps, df, roles)
    else:
        st.text_input("lme4 formula", key=ps.key("formula"),
                      placeholder="res ~ treatment_idx + (1 | midx)")
        st.radio("Family", upload.FAMILIES, key=ps.key("family"), horizontal=True)
    st.multiselect("Treat as categorical (factors)", columns, key=ps.key("factors"),
                   help="Numeric codes such as 1..4 for time points are categories, not "
                        "amounts: list them here.")
ps.sync()

family = ps["family"]
factors = tuple(ps["factors"])
formula, response, predictors, group, used = upload.model_rows(ps, df)
sources.source_note(df, BUILTIN[ps["dataset"]] if ps["source"] == "built-in" else "uploaded file")
st.caption(display.escape_markdown(f"Model: {formula} ({family}); {len(used)} rows, {used[group].nunique()} groups."))

# --- plots ------------------------------------------------------------------------------
first = predictors[0] if predictors else None
n_groups = used[group].nunique()
data_view.group_figures(used, response, first, group, factors=factors, family=family)

# --- fits -------------------------------------------------------------------------------
analyses = compute.Analyses(used)
fits, code, _run = analyses.fits, analyses.code, analyses.run


fixed_only = formula.split(" + (1 | ")[0] if ps["mode"] == "choose columns" else formula
if family == "gaussian":
    _run("Pooled LM", fit_lm, formula, factors=factors)
    if not display.skipped("fixed_group", n_groups, len(used), label=f"The {group}-as-fixed-effect fit",
                           unit=f"{group} levels", plural=False):
        _run(f"{group} as fixed effect", fit_fixed_group, formula, factors=factors)
    _run("LME (REML, Satterthwaite)", fit_lme, formula, factors=factors)
    if first is not None and (first in factors or not pd.api.types.is_numeric_dtype(used[first])):
        pooling_view.means_row(analyses, response, first, group)
    if not display.skipped("per_group", n_groups, len(used), label=f"The per-{group} fits", unit=f"{group} levels"):
        _run(group, fit_per_group, formula, group, factors=factors)
else:
    _run("Pooled GLM", fit_glm, fixed_only, family="binomial", factors=factors)
    _run("GEE (exchangeable)", fit_gee, fixed_only, group, family="binomial",
         factors=factors)
    _run("GLMM (Laplace)", fit_glmm, formula, family="binomial", factors=factors)

if fits:
    tidies = [v.tidy() if hasattr(v, "tidy") else v for v in fits.values()]
    terms = [t for t in dict.fromkeys(t for td in tidies for t in td["term"])
             if t and t != "(Intercept)"]
    # not the coefficients of a grouping column as a fixed effect (`mouse id`3 too): one per animal
    groups = (group,) if ps["mode"] == "choose columns" else tuple(parse_formula(formula, columns).grouping_columns())
    terms = [t for t in terms if not str(t).lstrip("`").startswith(groups)]
    if terms:
        long = compute.derived(F.comparison_rows, fits, {t: t for t in terms})
        gaussian = family == "gaussian"
        marked = narrate.comparison_table(long, used, key="yours_compare", group=group, variables=predictors,
                                          fixed=f"{group} as fixed effect" if gaussian else None,
                                          per_group=group if gaussian else None, per_group_fit=fits.get(group),
                                          group_word=group)
        term = st.selectbox("Forest plot of", terms, key="yours_term")
        forest = marked[marked["label"] == term].dropna(subset=["estimate", "conf_low"])
        if not forest.empty:
            display.show_fig(compute.derived(F.estimate_comparison_plot, forest, term_label=term))
        if gaussian:
            narrate.say(N.frequency_reading(used, marked, term=term, label=term, group=group, pooled="Pooled LM",
                                            fixed=f"{group} as fixed effect", mixed="LME (REML, Satterthwaite)",
                                            per_group=group, missing=narrate.missing_reasons(analyses),
                                            unit="rows", group_word=group), lead="Read the table:")
            pooling_view.show(fits, used, condition=first or "", group=group, term=term, term_label=term,
                              formula=formula, factors=factors, key="yours")
    mixed = next((v for k, v in fits.items() if k.startswith(("LME", "GLMM"))), None)
    if mixed is not None:
        display.fit_messages(mixed)
        with display.lazy_expander("Variance components and random effects", key="yours.varcomp") as shown:
            if shown:
                display.show_table(mixed.variance_components(), name="variance components",
                                   key="yours_varcomp", hide_index=True)
                if not display.skipped("caterpillar", n_groups, len(used), unit=f"{group} levels",
                                       label="The figure of every random effect", plural=False):
                    display.show_fig(compute.derived(F.caterpillar_plot, mixed.ranef(), group_name=group))
    display.code_expander(code, key=ps.page)
sources.data_download(used, "your_data_shown")
