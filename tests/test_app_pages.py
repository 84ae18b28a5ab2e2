"""Drive every control of every page with AppTest and check the numbers shown.

The expected numbers come from calling mmteach directly on the same rows; the page must
show exactly the same formatted values.
"""

from __future__ import annotations

import math
import re

import pandas as pd
import pytest
from streamlit import dataframe_util
from streamlit.testing.v1 import AppTest

from conftest import ROOT
from mmteach import figures as F
from mmteach.datasets import load_dataset, read_example2
from mmteach.errors import MMTeachError
from mmteach.formula import parse_formula
from mmteach.lm import fit_fixed_group, fit_lm, fit_per_group, t_test
from mmteach.narrative import p_text
from mmteach.subsample import subsample_per_group
from ui import compute, display

FREQ = "pages/2_frequency.py"
AMP = "pages/3_amplitude.py"
LICK = "pages/4_water-lick.py"
YOURS = "pages/5_your-data.py"
PAGES = ("pages/1_overview.py", FREQ, AMP, LICK, YOURS)
DATA = ROOT / "tests" / "data"
RECONSTRUCTION = "Reconstruction calibrated to the published results"
ONE_MOUSE = ("With one mouse there is no mouse-to-mouse variation to estimate: a mixed model "
             "needs at least two mice; compare the per-mouse fit instead")
FREQ_TERMS = {"treatment_idx2": "48h", "treatment_idx3": "72h", "treatment_idx4": "1wk"}


def open_page(page: str, *, open_sections: bool = True, **query: str) -> AppTest:
    """``page`` as a student opens it (``query``: its URL parameters), with every lazy expander
    then opened (``open_sections``), so that tests read what a student sees on opening them."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=900)
    at.query_params.update(query)
    at.run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return open_all(at) if open_sections else at


def open_all(at: AppTest) -> AppTest:
    """Open every closed lazy expander (ui.display.lazy_expander) on the page and rerun."""
    closed = [k for k in at.session_state.keys()
              if str(k).startswith(display.LAZY_PREFIX) and not at.session_state[k]]
    if closed:
        for k in closed:
            at.session_state[k] = True
        at.run()
        assert not at.exception, [e.value for e in at.exception]
    return at


def shown_table(at: AppTest, column: str) -> pd.DataFrame:
    """The st.dataframe whose columns include ``column``."""
    for df in at.dataframe:
        if column in df.value.columns:
            return df.value
    raise AssertionError(f"no table with column {column!r}")


def displayed(element) -> pd.DataFrame:
    """The cells as the browser shows them: a Styler's display values, else the raw values
    as text. st.dataframe's grid prints a missing value as "None" even when a Styler gives
    it a display text; st.table uses the Styler's text."""
    raw = element.value
    styler = element.proto.arrow_data.styler
    if not styler.display_values:
        return raw.astype(str)
    shown = dataframe_util.convert_arrow_bytes_to_pandas_df(styler.display_values)
    if element.type != "table":
        shown = shown.where(raw.notna().to_numpy(), "None")
    return shown


def assert_no_blank_markers(at: AppTest) -> None:
    """No table cell reads "None", "nan" or "<NA>": empty cells are shown as "–"."""
    tables = list(at.dataframe) + list(at.table)
    for element in tables:
        cells = displayed(element).to_numpy().ravel()
        bad = [c for c in cells if str(c).strip() in ("None", "nan", "NaN", "<NA>", "NaT")]
        assert not bad, (list(element.value.columns), bad[:5])


def errors(at: AppTest) -> list[str]:
    """The error boxes' text as the student reads it (display.error escapes Markdown)."""
    return [re.sub(r"\\(.)", r"\1", e.value) for e in at.error]


def expected_table(fits: dict, terms: dict[str, str]) -> pd.DataFrame:
    return F.format_side_by_side(F.comparison_rows(fits, terms))


def assert_rows(at: AppTest, expected: pd.DataFrame, column: str) -> None:
    shown = shown_table(at, column)
    for analysis in expected.index:
        assert analysis in shown.index, f"{analysis} missing; shown: {list(shown.index)}"
        # the numbers; a "why no estimate" column, when shown, is checked by test_app_narrative
        assert list(shown.loc[analysis, list(expected.columns)]) == list(expected.loc[analysis]), analysis


# --- page 2: Ca++ frequency --------------------------------------------------------------
@pytest.fixture(scope="module")
def freq() -> pd.DataFrame:
    return load_dataset("ca_frequency")


def freq_expected(sub: pd.DataFrame, *, formula: str = "res ~ treatment_idx + (1 | midx)",
                  reml: bool = False, df_method: str = "satterthwaite") -> pd.DataFrame:
    from mmteach.lme import fit_lme

    fits = {
        "Pooled LM": fit_lm(sub, "res ~ treatment_idx", factors=["treatment_idx"]),
        "Mouse as fixed effect": fit_fixed_group(sub, "res ~ treatment_idx + (1 | midx)",
                                                 factors=["treatment_idx", "midx"]),
    }
    label = f"LME {'REML' if reml else 'ML'}, {df_method} df"
    fits[label] = fit_lme(sub, formula, factors=["treatment_idx", "midx"], reml=reml,
                          df_method=df_method)
    fits["Mouse"] = fit_per_group(sub, "res ~ treatment_idx", "midx", factors=["treatment_idx"])
    return expected_table(fits, FREQ_TERMS)


def test_freq_default_numbers(freq):
    at = open_page(FREQ)
    assert not errors(at)
    assert_rows(at, freq_expected(freq), "48h: p")
    # The default reproduces the lecture's LME table (ML, Satterthwaite): 48h p = 0.311
    shown = shown_table(at, "48h: p")
    lme_row = next(i for i in shown.index if str(i).startswith("LME ML"))
    assert abs(float(shown.loc[lme_row, "48h: p"]) - 0.311) < 0.02
    counts = shown_table(at, "% of cells")
    assert counts.loc["2", "Total"] == (freq.midx == 2).sum()
    assert counts.loc["Total", "48h"] == (freq.treatment_idx == 2).sum()
    assert counts.index.name == "mouse"  # a word, not the data's column name
    labels = [b.label for b in at.get("download_button")]
    assert any("comparison table" in lab for lab in labels)
    assert any("data shown" in lab for lab in labels)
    codes = [c.value for c in at.code]
    assert fit_lm(freq, "res ~ treatment_idx", factors=["treatment_idx"]).r_code() in codes


def test_overview_numbers_are_computed_from_the_examples(freq):
    at = open_page("pages/1_overview.py")
    text = next(m.value for m in at.markdown if "Weighting by cell count" in m.value)
    counts = freq["midx"].value_counts()
    top = counts.idxmax()
    assert f"mouse {top} contributes {counts.max() / counts.sum():.0%} of the cells" in text
    assert f"would give {1 / len(counts):.0%} each" in text
    pages = next(m.value for m in at.markdown if "| page | data |" in m.value)  # the map of the pages
    assert pages.count("\n| **") == 6  # a row for every page but the overview
    for name, group, unit, word in (("ca_frequency", "midx", None, "cells"), ("ca_amplitude", "midx", "cidx", "cells"),
                                    ("water_lick", "mouseID", None, "trials")):
        d = load_dataset(name)
        n = d[unit].nunique() if unit else len(d)
        assert f"{n:,} {word} of {d[group].nunique()} mice" in pages, name


@pytest.mark.parametrize(
    ("structure", "estimation", "df_method"),
    [
        ("random intercept per mouse", "REML", "kenward-roger"),
        ("random intercept per mouse", "ML", "containment"),
        ("random intercept per mouse and per mouse x time", "REML", "z"),
    ],
)
def test_freq_model_controls(freq, structure, estimation, df_method):
    at = open_page(FREQ)
    at.selectbox(key="freq.structure").set_value(structure)
    at.radio(key="freq.estimation").set_value(estimation).run()  # KR is offered with REML only
    at.selectbox(key="freq.df").set_value(df_method)
    at.run()
    assert not at.exception and not errors(at)
    formulas = {
        "random intercept per mouse": "res ~ treatment_idx + (1 | midx)",
        "random intercept per mouse and per mouse x time":
            "res ~ treatment_idx + (1 | midx) + (1 | midx:treatment_idx)",
    }
    expected = freq_expected(freq, formula=formulas[structure], reml=estimation == "REML",
                             df_method=df_method)
    assert_rows(at, expected, "48h: p")
    assert at.query_params["structure"] == structure


def test_freq_kenward_roger_only_with_reml():
    at = open_page(FREQ, estimation="REML", df="kenward-roger")
    assert at.selectbox(key="freq.df").value == "kenward-roger"
    at.radio(key="freq.estimation").set_value("ML").run()
    assert "kenward-roger" not in at.selectbox(key="freq.df").options
    assert at.selectbox(key="freq.df").value == "satterthwaite"
    assert not errors(at)


def test_freq_sliders_and_edges(freq):
    at = open_page(FREQ)
    at.slider(key="freq.n1").set_value(1)
    at.slider(key="freq.n3").set_value(0)
    at.run()
    sub = subsample_per_group(freq, "midx", {1: 1, 2: 739, 3: 0, 4: 210}, seed=0)
    counts = shown_table(at, "% of cells")
    assert "3" not in counts.index and counts.loc["1", "Total"] == 1
    assert_rows(at, freq_expected(sub), "48h: p")
    # the one-cell mouse cannot be fitted alone: its row says why, in place of numbers
    per = fit_per_group(sub, "res ~ treatment_idx", "midx", factors=["treatment_idx"])
    note = per.loc[per.group.astype(str) == "1", "note"].iloc[0]
    assert note and shown_table(at, "48h: p").loc["Mouse 1", "why no estimate"] == note
    assert at.query_params["n1"] == "1" and at.query_params["n3"] == "0"


def test_freq_one_mouse_left_explains(freq):
    from mmteach.lme import fit_lme

    at = open_page(FREQ, n1="0", n2="0", n3="0")
    assert at.slider(key="freq.n4").value == 210 and at.slider(key="freq.n2").value == 0
    sub = freq[freq.midx == 4]
    with pytest.raises(MMTeachError) as err:
        fit_lme(sub, "res ~ treatment_idx + (1 | midx)", factors=["treatment_idx", "midx"])
    # the teaching sentence first, the engine's message after it as the detail
    lme_error = next(e for e in errors(at) if e.startswith("**LME"))
    assert ONE_MOUSE in lme_error and str(err.value) in lme_error
    assert lme_error.index(ONE_MOUSE) < lme_error.index(str(err.value))
    shown = shown_table(at, "48h: p")
    lm = expected_table({"Pooled LM": fit_lm(sub, "res ~ treatment_idx",
                                             factors=["treatment_idx"])}, FREQ_TERMS)
    assert list(shown.loc["Pooled LM", list(lm.columns)]) == list(lm.loc["Pooled LM"])
    assert "Mouse 4" in shown.index  # the per-mouse fit the sentence points to


@pytest.mark.parametrize(("page", "query"), [
    (AMP, {f"n{m}": "0" for m in range(2, 12)}),
    (LICK, {f"n{m}": "0" for m in range(2, 9)}),
])
def test_one_mouse_left_explains_on_other_pages(page, query):
    at = open_page(page, **query)
    assert not at.exception
    assert any(ONE_MOUSE in e for e in errors(at)), errors(at)


def test_freq_all_mice_dropped():
    at = open_page(FREQ, n1="0", n2="0", n3="0", n4="0")
    assert not errors(at)
    assert any("0 cells" in w.value for w in at.warning)


def test_freq_presets_and_seed(freq):
    at = open_page(FREQ)
    at.button(key="freq_preset_balance mice").click().run()
    assert [at.slider(key=f"freq.n{m}").value for m in (1, 2, 3, 4)] == [210] * 4
    at.number_input(key="freq.seed").set_value(5).run()
    sub = subsample_per_group(freq, "midx", {m: 210 for m in (1, 2, 3, 4)}, seed=5)
    assert_rows(at, freq_expected(sub), "48h: p")
    at.button(key="freq_preset_drop mouse 2").click().run()
    assert at.slider(key="freq.n2").value == 0 and at.slider(key="freq.n1").value == 466
    assert "Mouse 2" not in shown_table(at, "48h: p").index
    at.button(key="freq_preset_as published").click().run()
    assert at.slider(key="freq.n2").value == 739


def test_freq_url_state(freq):
    at = open_page(FREQ, estimation="ML", df="z", n2="100", term="1wk", seed="3")
    assert at.radio(key="freq.estimation").value == "ML"
    assert at.radio(key="freq.term").value == "1wk"
    sub = subsample_per_group(freq, "midx", {2: 100}, seed=3)
    assert_rows(at, freq_expected(sub, reml=False, df_method="z"), "1wk: p")
    at.radio(key="freq.estimation").set_value("REML").run()
    assert at.query_params["estimation"] == "REML" and at.query_params["n2"] == "100"


def test_freq_bad_url_values_are_ignored_with_a_warning():
    at = open_page(FREQ, open_sections=False, estimation="maximum", n1="abc")
    assert at.radio(key="freq.estimation").value == "ML"
    assert any("estimation" in w.value and "n1" in w.value for w in at.warning)
    assert not errors(at)


# --- page 3: Ca++ amplitude --------------------------------------------------------------
AMP_TERMS = {"treatment2": "24h vs baseline"}


@pytest.fixture(scope="module")
def amp() -> pd.DataFrame:
    return load_dataset("ca_amplitude")


def amp_fits(sub: pd.DataFrame) -> dict:
    return {
        "Pooled LM": fit_lm(sub, "res ~ treatment", factors=["treatment"]),
        "t-test, equal variances": t_test(sub, "res", "treatment", kind="pooled"),
        "Welch t-test": t_test(sub, "res", "treatment", kind="welch"),
        "Paired t-test": t_test(sub, "res", "treatment", kind="paired", pair="cidx"),
    }


def test_amp_default_numbers(amp):
    from mmteach.lme import fit_lme

    at = open_page(AMP)
    assert not errors(at)
    fits = amp_fits(amp)
    lme = fit_lme(amp, "res ~ treatment + (1 | midx/cidx)", factors=["treatment"],
                  reml=False, df_method="containment")
    fits["LME lme.obj1 (ML, containment df)"] = lme
    assert_rows(at, expected_table(fits, AMP_TERMS), "24h vs baseline: p")
    vc = next(d.value for d in at.dataframe if "variance" in d.value.columns)
    pd.testing.assert_frame_equal(vc.reset_index(drop=True), lme.variance_components(),
                                  check_dtype=False)
    corr = next(d.value for d in at.dataframe if "correlation" in d.value.columns)
    direct = F.per_group_correlation(amp, "res", "treatment", "cidx", "midx")
    assert list(corr["correlation"]) == pytest.approx(list(direct["correlation"]))
    assert list(corr.columns) == ["mouse", "cells", "correlation"]  # words, not the engine's names
    assert list(corr["cells"]) == list(direct["n_cells"])


def test_amp_ladder_matches_compare_models(amp):
    from mmteach.compare import compare_models

    at = open_page(AMP)
    ladder = next(d.value for d in at.dataframe if "chisq" in d.value.columns)
    row = ladder.iloc[1]  # obj4 vs obj1: both identifiable
    cmp = compare_models(amp, "res ~ treatment + (treatment | midx) + (1 | cidx)",
                         "res ~ treatment + (1 | midx/cidx)", factors=["treatment"])
    assert row["chisq"] == pytest.approx(cmp.chisq)
    assert row["p"] == pytest.approx(cmp.p_value)


def test_amp_unidentifiable_structure_explains_then_fits_anyway(amp):
    from mmteach.errors import ModelError
    from mmteach.lme import fit_lme

    formula = "res ~ treatment + (1 | midx) + (treatment | cidx)"
    at = open_page(AMP)
    at.selectbox(key="amp.structure").set_value("lme.obj3").run()
    with pytest.raises(ModelError) as err:
        fit_lme(amp, formula, factors=["treatment"], reml=False, df_method="containment")
    assert any(str(err.value) in w.value for w in at.warning)
    assert not any(k.startswith("LME") for k in shown_table(at, "24h vs baseline: p").index)
    at.checkbox(key="amp.anyway").check().run()
    assert not at.exception
    lme = fit_lme(amp, formula, factors=["treatment"], reml=False, df_method="containment",
                  allow_unidentifiable=True)
    exp = expected_table({"LME lme.obj3 (ML, containment df)": lme}, AMP_TERMS)
    assert_rows(at, exp, "24h vs baseline: p")


AMP_LADDER = (("(1 | midx) + (treatment | cidx)", "(1 | midx/cidx)"),
              ("(treatment | midx) + (1 | cidx)", "(1 | midx/cidx)"),
              ("(treatment | midx) + (treatment | cidx)", "(1 | midx) + (treatment | cidx)"),
              ("(treatment | midx) + (treatment | cidx)", "(treatment | midx) + (1 | cidx)"))


def test_amp_ladder_compares_every_model_as_nlme_does(amp):
    """The lecture's lesson must show by default: obj3 improves obj1 a lot, obj4 less, obj5
    adds little over obj3, with the lme4-refused models fitted as nlme fits them."""
    from mmteach.compare import compare_models

    at = open_page(AMP)
    assert at.checkbox(key="amp.anyway").value is False
    element = next(d for d in at.dataframe if "chisq" in d.value.columns)
    ladder = element.value
    for i, (big, small) in enumerate(AMP_LADDER):
        cmp = compare_models(amp, f"res ~ treatment + {big}", f"res ~ treatment + {small}",
                             factors=["treatment"], allow_unidentifiable=True)
        assert ladder["chisq"].iloc[i] == pytest.approx(cmp.chisq, rel=1e-6)
        assert ladder["p"].iloc[i] == pytest.approx(cmp.p_value, rel=1e-6, abs=1e-300)
    assert list(ladder["status"]) == ["fitted as nlme does; lme4 refuses it", "fitted",
                                      "fitted as nlme does; lme4 refuses it",
                                      "fitted as nlme does; lme4 refuses it"]
    chisq = list(ladder["chisq"])
    assert chisq[0] > 10 * chisq[1] and ladder["p"].iloc[2] > 0.1
    # one short explanation of lme4's refusal, not the engine's paragraph once per row
    notes = [c.value for c in at.caption] + [m.value for m in at.markdown]
    assert sum("lme4 refuses" in n for n in notes) == 1
    assert not any("number of observations" in n for n in notes)
    assert not any(v in ("None", "nan") for v in displayed(element).to_numpy().ravel())


@pytest.mark.parametrize("structure", ["lme.obj2", "lme.obj4"])
def test_amp_structures_and_options(amp, structure):
    from mmteach.lme import fit_lme

    formulas = {"lme.obj2": "res ~ treatment + (1 | midx) + (1 | cidx)",
                "lme.obj4": "res ~ treatment + (treatment | midx) + (1 | cidx)"}
    at = open_page(AMP, structure=structure, estimation="REML", df="satterthwaite")
    lme = fit_lme(amp, formulas[structure], factors=["treatment"], reml=True,
                  df_method="satterthwaite")
    exp = expected_table({f"LME {structure} (REML, satterthwaite df)": lme}, AMP_TERMS)
    assert_rows(at, exp, "24h vs baseline: p")


def test_amp_cells_per_mouse_edges(amp):
    at = open_page(AMP)
    at.slider(key="amp.n1").set_value(1)
    at.slider(key="amp.n2").set_value(0)
    at.run()
    assert not at.exception
    counts = {1: 1, 2: 0}
    sub = subsample_per_group(amp, "midx", counts, seed=0, unit="cidx")
    assert_rows(at, expected_table(amp_fits(sub), AMP_TERMS), "24h vs baseline: p")
    tab = shown_table(at, "% of cells")
    assert tab.loc["1", "baseline"] == 1 and "2" not in tab.index
    at.button(key="amp_preset_balance mice").click().run()
    smallest = amp.groupby("midx").cidx.nunique().min()
    assert at.slider(key="amp.n1").value == smallest


# --- page 4: water lick ------------------------------------------------------------------
@pytest.fixture(scope="module")
def lick() -> pd.DataFrame:
    return load_dataset("water_lick")


@pytest.mark.parametrize(("method", "nagq"), [("Laplace", 1), ("AGQ (25 points)", 25)])
def test_lick_glmm_numbers(lick, method, nagq):
    from mmteach.glmm import fit_glmm, odds_ratio_table

    at = open_page(LICK, method=method)
    assert not errors(at)
    glmm = fit_glmm(lick, "lick ~ dff + (1 | mouseID)", family="binomial", nagq=nagq,
                    factors=["mouseID"])
    shown = shown_table(at, "odds change per 1% dF/F").loc[f"GLMM ({method})"]
    c = glmm.coef("dff")
    assert shown["estimate ± SE"] == F.fmt_est_se(c.estimate, c.std_error)
    assert shown["p"] == F.fmt_p(c.p_value)
    odds = odds_ratio_table(glmm).set_index("term").loc["dff"]
    assert shown["odds change per 1% dF/F"] == (
        f"{odds.percent_change:+.1f}% ({odds.percent_low:+.1f}% to {odds.percent_high:+.1f}%)")


def test_lick_trials_and_structure(lick):
    from mmteach.glmm import fit_glmm

    at = open_page(LICK)
    at.slider(key="lick.n3").set_value(0)
    at.slider(key="lick.n5").set_value(1)
    at.selectbox(key="lick.structure").set_value("random intercept + dF/F slope per mouse")
    at.slider(key="lick.bins").set_value(8)
    at.run()
    assert not at.exception
    # the random slope leaves the fast bootstrap path: the page says what it costs
    assert any("refits both models" in c.value for c in at.caption)
    sub = subsample_per_group(lick, "mouseID", {3: 0, 5: 1}, seed=0)
    formula = "lick ~ dff + (1 + dff | mouseID)"
    try:
        glmm = fit_glmm(sub, formula, family="binomial", nagq=1, factors=["mouseID"])
    except MMTeachError as err:
        assert any(str(err) in e for e in errors(at))
        return
    shown = shown_table(at, "odds change per 1% dF/F").loc["GLMM (Laplace)"]
    c = glmm.coef("dff")
    assert shown["estimate ± SE"] == F.fmt_est_se(c.estimate, c.std_error)


@pytest.mark.parametrize("prior_sd", [None, 0.1])
def test_lick_bayes_row_and_bayes_factor(lick, prior_sd):
    from mmteach.bayes import bayes_factor, fit_bayes_glmm

    at = open_page(LICK) if prior_sd is None else open_page(LICK, prior_sd=str(prior_sd))
    assert not errors(at)
    sd = 10.0 if prior_sd is None else prior_sd  # the book's normal(0, 10) by default
    assert at.select_slider(key="lick.prior_sd").value == sd
    fit1 = fit_bayes_glmm(lick, "lick ~ dff + (1 | mouseID)", b_prior_sd=sd)
    fit0 = fit_bayes_glmm(lick, "lick ~ 1 + (1 | mouseID)", b_prior_sd=sd)
    c = fit1.coef("dff")
    shown = shown_table(at, "odds change per 1% dF/F").loc["Bayesian GLMM"]
    assert shown["estimate ± SE"] == F.fmt_est_se(c.estimate, c.std_error)
    assert shown["p"] == "–"  # a posterior has no p-value
    lo, hi = 100 * (math.exp(c.conf_low) - 1), 100 * (math.exp(c.conf_high) - 1)
    assert f"({lo:+.1f}% to {hi:+.1f}%)" in shown["odds change per 1% dF/F"]
    bf = bayes_factor(fit1, fit0).bf10
    text = " ".join(m.value for m in at.markdown)
    assert f"BF10 = **{bf:.3g}**" in text
    # the wide default prior favours the model without dF/F, a narrow one the model with it
    assert ("without dF/F" in text) == (sd == 10.0)


@pytest.mark.parametrize(("structure", "method", "seed"), [
    ("random intercept per mouse", "Laplace", 4141),
    ("random intercept + dF/F slope per mouse", "Laplace", 4142),
    ("random intercept per mouse", "AGQ (25 points)", 4143),
])
def test_lick_lrt_sentence_is_compare_glmms(lick, structure, method, seed):
    # anova(full, reduced) as compare_glmm gives it (tests/test_glmm.py checks it against R);
    # with Laplace the page's GLMM is the full model, so only the reduced one is fitted again
    from mmteach.glmm import compare_glmm
    from ui.cache import data_token

    counts = lick.groupby("mouseID").size().to_dict()
    first = next(iter(counts))
    counts[first] = 41  # data no other test fits, so the cache holds only what this page did
    at = open_page(LICK, **{f"n{first}": "41", "seed": str(seed), "structure": structure, "method": method})
    assert not errors(at)
    assert (at.selectbox(key="lick.structure").value, at.radio(key="lick.method").value) == (structure, method)
    re = {"random intercept per mouse": "(1 | mouseID)"}.get(structure, "(1 + dff | mouseID)")
    full, reduced = f"lick ~ dff + {re}", f"lick ~ 1 + {re}"
    sub = subsample_per_group(lick, "mouseID", counts, seed=seed)
    want = compare_glmm(sub, full, reduced, family="binomial")
    said = next(m.value for m in at.markdown if m.value.startswith("LRT of"))
    assert f"chi-square = {want.chisq:.3f} on {want.df} df, p = {F.fmt_p(want.p_value)}." in said
    token = data_token(sub)
    both_refitted = [k for k in list(compute.RESULTS._data) if k[0] == "mmteach.compare.compare_models"
                     and k[1] == token and k[2] == (full, reduced) and "bootstrap" not in dict(k[3])]
    assert bool(both_refitted) == (method != "Laplace" and "slope" not in structure)
    reduced_alone = [k for k in list(compute.RESULTS._data) if k[0] == "mmteach.glmm.fit_glmm"
                     and k[1] == token and k[2] == (reduced,)]
    assert bool(reduced_alone) != bool(both_refitted)


def test_lick_prior_change_refits_only_the_model_with_the_slope():
    # the model without dF/F has no slope prior: a new prior SD must not refit it
    at = open_page(LICK)
    at.select_slider(key="lick.prior_sd").set_value(0.5).run()
    assert not errors(at)
    priors: dict[str, set] = {}
    for key in list(compute.RESULTS._data):
        name, _token, args, kwargs = key
        if name == "mmteach.bayes.fit_bayes_glmm":
            priors.setdefault(args[0], set()).add(dict(kwargs)["b_prior_sd"])
    assert {10.0, 0.5} <= priors["lick ~ dff + (1 | mouseID)"]
    assert priors["lick ~ 1 + (1 | mouseID)"] == {None}


def test_lick_bootstrap_default_is_pbmodcomps():
    at = open_page(LICK)
    assert at.number_input(key="lick.nboot").value == 1000  # pbkrtest::PBmodcomp's nsim
    assert any("1,000 samples" in c.value for c in at.caption)


def test_lick_bootstrap_button(lick):
    from mmteach.compare import compare_models

    at = open_page(LICK, nboot="20", seed="1")
    at.button(key="lick_boot_run").click().run()
    assert not at.exception and not errors(at)
    cmp = compare_models(lick, "lick ~ dff + (1 | mouseID)", "lick ~ 1 + (1 | mouseID)",
                         family="binomial", bootstrap=20, seed=1)
    text = " ".join(m.value for m in at.markdown)
    # plain text: no literal "**" around a starred p (the old line printed "**0.048 ***")
    assert f"Parametric bootstrap p = {p_text(cmp.bootstrap_p_value)} from 20 samples" in text
    line = next(m.value for m in at.markdown if "Parametric bootstrap p" in m.value)
    assert "**" not in line
    # the result stays on screen after another rerun
    at.run()
    assert "Parametric bootstrap p" in " ".join(m.value for m in at.markdown)


def test_an_error_inside_the_curves_fragment_gets_the_plain_note(monkeypatch, caplog):
    """Streamlit draws an exception raised in a fragment itself (past app.py's handler): the
    water-lick curves' fragment has its own, so a bug there shows the plain note, is logged
    with its traceback, and the rest of the page is still drawn."""
    def broken(*args, **kwargs):
        raise RuntimeError("a bug no page explains")

    monkeypatch.setattr(F, "binned_proportions", broken)
    with caplog.at_level("ERROR", logger="mmteach"):
        at = open_page(LICK, open_sections=False)
    assert not at.exception, [e.value for e in at.exception]
    said = errors(at)
    assert len(said) == 1 and said[0].startswith(f"**{display.UNEXPECTED}**"), said
    assert "a bug no page explains" not in " ".join(said)
    assert any("water-lick curves" in r.getMessage() and r.exc_info for r in caplog.records)
    assert "GLMM (Laplace)" in shown_table(at, "odds change per 1% dF/F").index


# --- page 5: your data -------------------------------------------------------------------
def upload(at: AppTest, text: str, name: str = "mine.csv") -> AppTest:
    at.radio(key="yours.source").set_value("upload").run()
    at.file_uploader(key="yours_upload").set_value((name, text.encode(), "text/csv")).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_yours_builtin_and_formula(freq):
    from mmteach.lme import fit_lme

    at = open_page(YOURS)
    assert not errors(at)
    lme = fit_lme(freq, "res ~ treatment_idx + (1 | midx)", factors=["treatment_idx"])
    terms = {t: t for t in ("treatment_idx2", "treatment_idx3", "treatment_idx4")}
    assert_rows(at, expected_table({"LME (REML, Satterthwaite)": lme}, terms),
                "treatment_idx2: p")
    at.radio(key="yours.mode").set_value("type a formula").run()
    at.text_input(key="yours.formula").input("res ~ treatment_idx + (1 | midx)").run()
    assert not errors(at)
    assert_rows(at, expected_table({"LME (REML, Satterthwaite)": lme}, terms),
                "treatment_idx2: p")
    assert at.query_params["formula"] == "res ~ treatment_idx + (1 | midx)"


def test_yours_bad_formula_shows_parser_message():
    at = open_page(YOURS)
    at.radio(key="yours.mode").set_value("type a formula").run()
    at.text_input(key="yours.formula").input("res ~ treatment_idx + (1 | mouse").run()
    assert not at.exception
    with pytest.raises(MMTeachError) as err:
        parse_formula("res ~ treatment_idx + (1 | mouse", list(load_dataset("ca_frequency")))
    # the sentence in the error box, the formula and its caret as code below it
    assert any(str(err.value).split("\n")[0] in e for e in errors(at)), errors(at)
    assert any("res ~ treatment_idx + (1 | mouse" in c.value and "^" in c.value for c in at.code)


def test_yours_binomial_builtin(lick):
    from mmteach.glmm import fit_glmm

    at = open_page(YOURS, dataset="water_lick")
    assert not errors(at)
    glmm = fit_glmm(lick, "lick ~ dff + (1 | mouseID)", family="binomial")
    assert_rows(at, expected_table({"GLMM (Laplace)": glmm}, {"dff": "dff"}), "dff: p")


GOOD = "y,x,m\n" + "\n".join(f"{(i * 7) % 5 + i % 3},{i % 2},{i % 4}" for i in range(40))


def test_yours_upload_good_file():
    at = upload(open_page(YOURS), GOOD)
    at.selectbox(key="yours.response").set_value("y")
    at.multiselect(key="yours.predictors").set_value(["x"])
    at.selectbox(key="yours.group").set_value("m")
    at.run()
    assert not at.exception and not errors(at)
    df = pd.read_csv(pd.io.common.StringIO(GOOD))
    lm = fit_lm(df, "y ~ x + (1 | m)")
    assert_rows(at, expected_table({"Pooled LM": lm}, {"x": "x"}), "x: p")


@pytest.mark.parametrize(
    ("text", "settings", "message"),
    [
        ("y,x,m\na,1,1\nb,2,2\nc,1,1\n", {"response": "y", "group": "m"}, "non-numeric"),
        (GOOD, {"response": "y", "group": "m", "family": "binomial"}, "0/1 response"),
        ("y,x,m\n1,1,1\n2,2,1\n3,1,1\n", {"response": "y", "group": "m"}, "at least 2 groups"),
        ("", {}, "empty"),
        ("value\n1\n2\n", {}, "needs"),
    ],
)
def test_yours_bad_uploads_get_a_message(text, settings, message):
    at = upload(open_page(YOURS), text)
    for name, value in settings.items():
        widget = at.radio(key="yours.family") if name == "family" else \
            at.selectbox(key=f"yours.{name}")
        widget.set_value(value)
    if settings:
        at.multiselect(key="yours.predictors").set_value(["x"])
        at.run()
    assert not at.exception
    assert any(message in e for e in errors(at)), errors(at)


def test_yours_missing_values_warn_and_formula_with_unknown_column():
    text = GOOD + "\n,1,2\n3,,1\n"
    at = upload(open_page(YOURS), text)
    at.selectbox(key="yours.response").set_value("y")
    at.multiselect(key="yours.predictors").set_value(["x"])
    at.selectbox(key="yours.group").set_value("m")
    at.run()
    # display.note escapes Markdown (the sentence quotes column names): read it as shown
    assert any("2 row(s) with missing values" in re.sub(r"\\(.)", r"\1", w.value) for w in at.warning)
    at.radio(key="yours.mode").set_value("type a formula").run()
    at.text_input(key="yours.formula").input("y ~ dose + (1 | m)").run()
    assert not at.exception
    assert any("dose" in e for e in errors(at))


# --- every table: empty cells read "–" ---------------------------------------------------
@pytest.mark.parametrize("present", ["0", "1"], ids=["normal", "presentation"])
@pytest.mark.parametrize(("page", "query"), [
    *((p, {}) for p in PAGES),
    (AMP, {"n1": "2", "n2": "0"}),  # a mouse with too few cells for a correlation
    (FREQ, {"n1": "1"}),
])
def test_tables_show_dashes_for_empty_cells(page, query, present):
    at = open_page(page, presentation=present, **query)
    assert at.dataframe or at.table or page.endswith("overview.py")
    assert_no_blank_markers(at)


# --- original data files -------------------------------------------------------------------
ORIGINALS = [(FREQ, "ca_frequency", "Example2.txt", "freq"),
             (AMP, "ca_amplitude", "Example3.txt", "amp"),
             (LICK, "water_lick", "waterlick_sim.txt", "lick")]


def upload_original(at: AppTest, name: str, filename: str, raw: bytes) -> AppTest:
    at.file_uploader(key=f"_original_upload.{name}").set_value(
        (filename, raw, "text/plain")).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def source_captions(at: AppTest) -> list[str]:
    return [c.value for c in at.caption] + [c.value for c in at.sidebar.caption]


@pytest.mark.parametrize(("page", "name", "filename", "prefix"), ORIGINALS)
def test_original_file_replaces_the_reconstruction_everywhere(page, name, filename, prefix):
    raw = (DATA / f"original_{filename}").read_bytes()
    original = load_dataset(name, override=raw)
    group = "mouseID" if name == "water_lick" else "midx"
    at = upload_original(open_page(page), name, filename, raw)
    label = f"Original file ({filename}, uploaded)"
    # the page says which data it shows, under the data and in the sidebar
    assert any(label in c.value for c in at.caption), source_captions(at)
    assert any(label in c.value for c in at.sidebar.caption)
    # ... and analyses them: the cells-per-mouse sliders are the file's, all rows are used
    first = original[group].min()
    n_first = (original.loc[original[group] == first, "cidx"].nunique() if name == "ca_amplitude"
               else int((original[group] == first).sum()))
    assert at.slider(key=f"{prefix}.n{first}").value == n_first
    assert at.slider(key=f"{prefix}.n{first}").max == n_first
    assert any(f"({len(original):,} rows, CSV)" in b.label for b in at.get("download_button"))
    # the "Your data" page uses the same file for this data set
    at.switch_page(YOURS).run()
    at.selectbox(key="yours.dataset").set_value(name).run()
    assert not at.exception
    assert any(label in c.value for c in at.caption)
    # back to the reconstruction
    at.switch_page(page).run()
    at.button(key=f"_original_reset.{name}").click().run()
    assert not at.exception
    assert any(RECONSTRUCTION in c.value for c in at.caption)
    builtin = load_dataset(name)
    assert any(f"({len(builtin):,} rows, CSV)" in b.label for b in at.get("download_button"))


@pytest.mark.parametrize(("text", "filename"), [
    (b"res,treatment_idx,midx\n0.5,9,1\n0.7,6,1\n", "Example2.txt"),  # unknown time code
    ((DATA / "original_Example3.txt").read_bytes(), "Example3.txt"),  # the wrong example
    (b"", "Example2.txt"),
])
def test_malformed_original_file_gets_the_readers_message(text, filename):
    at = upload_original(open_page(FREQ), "ca_frequency", filename, text)
    with pytest.raises(MMTeachError) as err:
        read_example2(text)
    assert any(str(err.value) in e for e in errors(at)), errors(at)
    assert any(RECONSTRUCTION in c.value for c in at.caption)  # the page keeps the built-in data


@pytest.mark.parametrize("page", [FREQ, AMP, LICK])
def test_closed_sections_are_built_only_when_opened(page):
    """A closed lazy expander (code, partial pooling, variance components) sends nothing: the
    page's rerun and its redraw in the browser skip it; opening it shows it in full."""
    at = open_page(page, open_sections=False)
    labels = [e.label for e in at.expander]
    assert "Show the R and mmteach code of each fit" in labels
    assert not at.code
    lazy_tables = {FREQ: ("variance", "shrinkage weight"), AMP: ("% of cells", "shrinkage weight"),
                   LICK: ("variance",)}[page]  # amplitude shows its variance components openly

    def tables_shown() -> set[str]:
        return {c for d in at.dataframe for c in lazy_tables if c in d.value.columns}

    assert not tables_shown()
    open_all(at)
    assert at.code and tables_shown() == set(lazy_tables)
