"""Your data: the pooled-vs-mixed comparison on an uploaded CSV/TSV or a built-in set."""

from __future__ import annotations

import io

import pandas as pd
import streamlit as st

from mmteach import figures as F
from mmteach.errors import DataError, MMTeachError
from mmteach.formula import parse_formula
from mmteach.glmm import fit_glmm
from mmteach.lm import fit_fixed_group, fit_lm, fit_per_group
from mmteach.lme import fit_lme
from mmteach.marginal import fit_gee, fit_glm
from ui import compute, display, router, sources, state

router.run_under_router()

MAX_MB = 20
BUILTIN = {"ca_frequency": "Example 2: Ca++ event frequency",
           "ca_amplitude": "Example 3: Ca++ amplitude",
           "water_lick": "Example 4: water lick"}
FAMILIES = ("gaussian", "binomial")


@st.cache_data(show_spinner=False, max_entries=16)
def read_upload(raw: bytes, name: str) -> pd.DataFrame:
    """Parse an uploaded table; comma, tab, semicolon or whitespace separated."""
    if len(raw) > MAX_MB * 1024 * 1024:
        raise DataError(f"The file is {len(raw) / 2**20:.1f} MB; the limit is {MAX_MB} MB. "
                        "Upload a smaller extract (e.g. fewer columns).")
    text = raw.decode("utf-8-sig", errors="replace")
    if not text.strip():
        raise DataError(f"The file {name} is empty.")
    first = text.splitlines()[0]
    sep = next((s for s in ("\t", ",", ";") if s in first), r"\s+")
    try:
        df = pd.read_csv(io.StringIO(text), sep=sep, engine="python")
    except (pd.errors.ParserError, ValueError) as err:
        raise DataError(f"{name} could not be read as a table ({err}). Save it as CSV with "
                        "a header row and one row per observation.") from err
    if df.shape[1] < 2 or len(df) < 2:
        raise DataError(f"{name} has {df.shape[1]} column(s) and {len(df)} row(s); it needs "
                        "a header row, a response column and a grouping column.")
    df.columns = [str(c).strip() for c in df.columns]
    df.attrs["source_label"] = f"Your file {name}"
    return df


def check(df: pd.DataFrame, response: str, predictors: list[str], group: str,
          family: str) -> pd.DataFrame:
    """Rows usable for the models, or DataError with what to fix."""
    cols = [response, *predictors, group]
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise DataError(f"No column {', '.join(map(repr, missing))} in the data.")
    if response in predictors:
        raise DataError(f"The response {response!r} cannot also be a predictor.")
    if group in (response, *predictors):
        raise DataError(f"The grouping column {group!r} cannot also be the response or a "
                        "predictor: choose the column that names the mouse.")
    y = pd.to_numeric(df[response], errors="coerce")
    if y.notna().sum() < df[response].notna().sum():
        raise DataError(f"The response {response!r} has non-numeric values (e.g. "
                        f"{df.loc[y.isna() & df[response].notna(), response].iloc[0]!r}); "
                        "it must be a number in every row.")
    if family == "binomial" and not set(y.dropna().unique()) <= {0, 1}:
        raise DataError(f"A binomial model needs a 0/1 response, but {response!r} has "
                        f"values such as {sorted(set(y.dropna().unique()) - {0, 1})[:3]}. "
                        "Choose the gaussian family or recode the outcome as 0/1.")
    used = df[cols].dropna()
    n_na = len(df) - len(used)
    if n_na:
        st.warning(f"{n_na} row(s) with missing values in {', '.join(cols)} are left out "
                   "(as R's na.omit does).")
    if used.empty:
        raise DataError("No row has values in all the chosen columns.")
    if used[group].nunique() < 2:
        raise DataError(f"The grouping column {group!r} has {used[group].nunique()} level; "
                        "a mixed model needs at least 2 groups (better 5 or more).")
    return used


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
    "factors": state.Param([]), "family": state.Param("gaussian", choices=list(FAMILIES)),
    "formula": state.Param(""),
})
c1, c2 = st.columns([1, 2])
c1.radio("Data", ["built-in", "upload"], key=ps.key("source"), horizontal=True)
df: pd.DataFrame | None = None
try:
    if ps["source"] == "built-in":
        c2.selectbox("Built-in data set", list(BUILTIN), key=ps.key("dataset"),
                     format_func=BUILTIN.get)
        df = sources.dataset(ps["dataset"])  # an uploaded original file wins
    else:
        up = c2.file_uploader(f"CSV or TSV file (at most {MAX_MB} MB)",
                              type=["csv", "tsv", "txt"], key="yours_upload")
        if up is not None:
            df = read_upload(up.getvalue(), up.name)
except MMTeachError as err:
    display.error("This file cannot be analysed", err)
if df is None:
    ps.sync()
    st.info("Upload a file to start.")
    st.stop()

columns = list(df.columns)
defaults = {"ca_frequency": ("res", ["treatment_idx"], "midx", ["treatment_idx"]),
            "ca_amplitude": ("res", ["treatment"], "midx", ["treatment"]),
            "water_lick": ("lick", ["dff"], "mouseID", [])}
# fill empty or stale choices (a new file, another data set) with sensible ones
if ps["response"] not in columns:
    d = defaults.get(ps["dataset"]) if ps["source"] == "built-in" else None
    numeric = [c for c in columns if pd.api.types.is_numeric_dtype(df[c])]
    ps.set("response", d[0] if d else (numeric or columns)[0])
    ps.set("group", d[2] if d else columns[-1])
    rest = [c for c in columns if c not in (ps["response"], ps["group"])]
    ps.set("predictors", d[1] if d else rest[:1])
    ps.set("factors", d[3] if d else [])
    ps.set("family", "binomial" if d and d[0] == "lick" else "gaussian")
for name in ("predictors", "factors"):
    ps.set(name, [c for c in ps[name] if c in columns])
if ps["group"] not in columns:
    ps.set("group", columns[-1])

m1, m2 = st.columns([1, 3])
m1.radio("Model from", ["choose columns", "type a formula"], key=ps.key("mode"))
with m2:
    if ps["mode"] == "choose columns":
        a, b, c, d_ = st.columns([1, 1.5, 1, 0.9])  # room for the predictor tags
        a.selectbox("Response", columns, key=ps.key("response"))
        b.multiselect("Predictors", columns, key=ps.key("predictors"))
        c.selectbox("Grouping (animal)", columns, key=ps.key("group"))
        d_.radio("Family", FAMILIES, key=ps.key("family"))
    else:
        st.text_input("lme4 formula", key=ps.key("formula"),
                      placeholder="res ~ treatment_idx + (1 | midx)")
        st.radio("Family", FAMILIES, key=ps.key("family"), horizontal=True)
    st.multiselect("Treat as categorical (factors)", columns, key=ps.key("factors"),
                   help="Numeric codes such as 1..4 for time points are categories, not "
                        "amounts: list them here.")
ps.sync()

family = ps["family"]
factors = tuple(ps["factors"])
try:
    if ps["mode"] == "choose columns":
        response, predictors, group = ps["response"], list(ps["predictors"]), ps["group"]
        rhs = " + ".join(predictors) if predictors else "1"
        formula = f"{response} ~ {rhs} + (1 | {group})"
    else:
        formula = ps["formula"].strip()
        if not formula:
            st.info("Type a formula, e.g. `res ~ treatment_idx + (1 | midx)`.")
            st.stop()
        parsed = parse_formula(formula, columns)
        if not parsed.grouping_columns():
            raise DataError("The formula has no random-effects term such as (1 | mouse): "
                            "add one naming the column of the animal.")
        response = parsed.response.columns()[0]
        group = parsed.grouping_columns()[0]
        # every grouping the engine accepts (a/b, (1|a) + (1|b)): the other grouping columns
        # are kept in the rows used; the first one is the animal of the plots and per-animal fits
        predictors = [v for v in parsed.variables() if v not in (response, group)]
    used = check(df, response, predictors, group, family)
except MMTeachError as err:
    display.error("This model cannot be fitted", err)
    st.stop()
sources.source_note(df, BUILTIN[ps["dataset"]] if ps["source"] == "built-in" else "uploaded file")
st.caption(display.escape_markdown(f"Model: {formula} ({family}); {len(used)} rows, {used[group].nunique()} groups."))

# --- plots ------------------------------------------------------------------------------
first = predictors[0] if predictors else None
n_groups = used[group].nunique()
left, right = display.columns(2)
try:
    display.check_plottable(used, group)
    if first is not None and display.skipped("per_group_plot", n_groups, len(used), unit=f"{group} levels",
                                             label=f"The figure by {group}", plural=False):
        pass
    elif first is not None and (first in factors or not pd.api.types.is_numeric_dtype(used[first])):
        few = n_groups <= 4  # beside the pooled plot; more groups get the full width
        with left if few else st.container():
            display.show_fig(compute.fig(F.pooled_boxplot, used, response, first, title="All groups pooled"))
        with right if few else st.container():
            display.show_fig(compute.fig(F.per_mouse_boxplot, used, response, first, group,
                               cols=2 if few else 4, group_name=group, unit="rows"))
    elif first is not None and family == "binomial":
        with left:
            display.show_fig(F.lick_proportion_curves(
                F.binned_proportions(used, response, first, group), x_title=first,
                y_title=f"proportion {response} = 1", group_name=group))
    elif first is not None:
        with left:
            display.show_fig(compute.fig(F.group_scatter, used, response, first, group, group_name=group))
except MMTeachError as err:
    display.error("These data cannot be drawn", err)

# --- fits -------------------------------------------------------------------------------
analyses = compute.Analyses(used)
fits, code, _run = analyses.fits, analyses.code, analyses.run


fixed_only = formula.split("+ (")[0] if ps["mode"] == "choose columns" else formula
if family == "gaussian":
    _run("Pooled LM", fit_lm, formula, factors=factors)
    if not display.skipped("fixed_group", n_groups, len(used), label=f"The {group}-as-fixed-effect fit",
                           unit=f"{group} levels", plural=False):
        _run(f"{group} as fixed effect", fit_fixed_group, formula, factors=factors)
    _run("LME (REML, Satterthwaite)", fit_lme, formula, factors=factors)
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
        long = F.comparison_rows(fits, {t: t for t in terms})
        display.show_table(F.format_side_by_side(long), name="comparison table",
                      key="yours_compare")
        term = st.selectbox("Forest plot of", terms, key="yours_term")
        forest = long[long["label"] == term].dropna(subset=["estimate", "conf_low"])
        if not forest.empty:
            display.show_fig(F.estimate_comparison_plot(forest, term_label=term))
    mixed = next((v for k, v in fits.items() if k.startswith(("LME", "GLMM"))), None)
    if mixed is not None:
        display.fit_messages(mixed)
        with st.expander("Variance components and random effects"):
            display.show_table(mixed.variance_components(), name="variance components",
                          key="yours_varcomp", hide_index=True)
            if not display.skipped("caterpillar", n_groups, len(used), unit=f"{group} levels",
                                   label="The figure of every random effect", plural=False):
                display.show_fig(F.caterpillar_plot(mixed.ranef(), group_name=group))
    display.code_expander(code)
sources.data_download(used, "your_data_shown")
