"""Likelihood-ratio tests and F tests against lme4's anova() and lmerTest's anova()."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from conftest import EXAMPLE1, ROOT
from conftest import case_factors as factors
from conftest import load_case_data as load
from mmteach.compare import boundary_p_value, compare_models, f_test
from mmteach.errors import ModelError

EX1 = EXAMPLE1
REF = json.loads((ROOT / "tests" / "reference" / "lme.json").read_text())




@pytest.mark.parametrize("name", list(REF["lrt"]))
def test_lrt_matches_lme4_anova(name):
    # R: anova(lmer(full), lmer(reduced))  (lme4 refits both by ML)
    c = REF["lrt"][name]
    cmp = compare_models(load(c["data_file"]), c["full"], c["reduced"], factors=factors(c))
    assert cmp.df == c["df"]
    assert cmp.chisq == pytest.approx(c["chisq"], rel=1e-5, abs=1e-6)  # Chisq: 1e-5
    assert cmp.p_value == pytest.approx(c["p"], rel=1e-4)
    assert cmp.loglik_full == pytest.approx(c["loglik_full"], rel=1e-5)  # logLik: 1e-5
    assert cmp.loglik_reduced == pytest.approx(c["loglik_reduced"], rel=1e-5)
    assert cmp.aic_full == pytest.approx(c["aic_full"], rel=1e-5)
    assert cmp.bic_reduced == pytest.approx(c["bic_reduced"], rel=1e-5)
    assert "anova(fit1, fit0)" in cmp.r_code()


@pytest.mark.parametrize("name", ["nest_cell", "penicillin_sample", "sleep_slope", "nest_slope"])
def test_boundary_p_value_when_a_variance_is_dropped(name):
    c = REF["lrt"][name]
    cmp = compare_models(load(c["data_file"]), c["full"], c["reduced"], factors=factors(c))
    assert cmp.boundary_note
    x, df = cmp.chisq, cmp.df
    expected = 0.5 * stats.chi2.sf(x, df) + (0.5 * stats.chi2.sf(x, df - 1) if df > 1 else 0.0)
    assert cmp.p_value_boundary == pytest.approx(expected, rel=1e-12)
    assert cmp.p_value_boundary < cmp.p_value
    assert "p_value_boundary" in cmp.to_dict()


def test_no_boundary_p_for_fixed_effect_test():
    c = REF["lrt"]["nest_trt"]
    cmp = compare_models(load(c["data_file"]), c["full"], c["reduced"], factors=factors(c))
    assert math.isnan(cmp.p_value_boundary) and cmp.boundary_note == ""


def test_boundary_rule_values():
    assert boundary_p_value(2.705543, 1) == pytest.approx(0.05, rel=1e-5)
    # two df (variance + covariance): 0.5 chi2_2 + 0.5 chi2_1
    assert boundary_p_value(5.0, 2) == pytest.approx(
        0.5 * stats.chi2.sf(5.0, 2) + 0.5 * stats.chi2.sf(5.0, 1))
    assert boundary_p_value(0.0, 1) == pytest.approx(1.0)


def test_reduced_linear_model_is_allowed():
    d = load("lme_sleepstudy.csv")
    cmp = compare_models(d, "Reaction ~ Days + (1 | Subject)", "Reaction ~ Days")
    n = len(d)
    X = np.column_stack([np.ones(n), d["Days"]])
    beta, *_ = np.linalg.lstsq(X, d["Reaction"], rcond=None)
    rss = float(np.sum((d["Reaction"] - X @ beta) ** 2))
    assert cmp.loglik_reduced == pytest.approx(-0.5 * n * (math.log(2 * math.pi * rss / n) + 1))
    assert cmp.df == 1 and cmp.p_value_boundary < cmp.p_value


def test_not_nested_is_refused():
    d = load("lme_sleepstudy.csv")
    with pytest.raises(ModelError, match="nested"):
        compare_models(d, "Reaction ~ 1 + (1 | Subject)", "Reaction ~ Days + (1 | Subject)")


def test_parametric_bootstrap_is_reproducible():
    d = load("lme_penicillin.csv")
    calls = []
    kw = dict(bootstrap=9, seed=3, progress=lambda i, n: calls.append((i, n)))
    a = compare_models(d, "diameter ~ 1 + (1 | plate) + (1 | sample)", "diameter ~ 1 + (1 | plate)",
                       **kw)
    b = compare_models(d, "diameter ~ 1 + (1 | plate) + (1 | sample)", "diameter ~ 1 + (1 | plate)",
                       bootstrap=9, seed=3)
    assert a.bootstrap_samples + a.bootstrap_failed == 9
    assert a.bootstrap_p_value == b.bootstrap_p_value
    # the observed LRT (279) is far beyond anything simulated without a sample effect
    assert a.bootstrap_p_value == pytest.approx(1 / (1 + a.bootstrap_samples))
    assert calls[-1] == (9, 9)


ANOVA = [(k, m) for k, c in REF["cases"].items()
         for m in ("satterthwaite", "kenward_roger") if f"anova_{m}" in c]


@pytest.mark.parametrize("name,method", ANOVA)
def test_f_test_matches_lmertest(name, method):
    # R: anova(fit, type = 3, ddf = "Satterthwaite" | "Kenward-Roger")
    c = REF["cases"][name]
    got = f_test(load(c["data_file"]), c["formula"], factors=factors(c),
                 df_method=method.replace("_", "-"), reml=c["reml"])
    ref = pd.DataFrame(c[f"anova_{method}"])
    assert got["term"].tolist() == ref["term"].tolist()
    assert got["num_df"].tolist() == ref["num_df"].tolist()
    # F: 5e-4 relative (it inherits lme4's own convergence noise in beta); den df: 1e-2
    np.testing.assert_allclose(got["F"], ref["F"], rtol=5e-4)
    np.testing.assert_allclose(got["den_df"], ref["den_df"], rtol=1e-2)
    np.testing.assert_allclose(got["p_value"], ref["p"], rtol=1e-2)


def test_published_example1_lrt_and_kr_f():
    d = load("EXAMPLE1")
    cmp = compare_models(d, "res ~ treatment_idx + (1 | midx)", "res ~ 1 + (1 | midx)",
                         factors=["treatment_idx"])
    assert round(cmp.chisq, 5) == 16.48011 and cmp.df == 4
    assert round(cmp.p_value, 6) == 0.002438
    assert round(cmp.loglik_full, 3) == -1129.481 and round(cmp.loglik_reduced, 3) == -1137.721
    f = f_test(d, "res ~ treatment_idx + (1 | midx)", "treatment_idx", factors=["treatment_idx"],
               df_method="kenward-roger")
    assert round(f["F"].iloc[0], 4) == 4.6878 and f["num_df"].iloc[0] == 4
    assert round(f["den_df"].iloc[0], 3) == 19.014
    assert round(f["p_value"].iloc[0], 6) == 0.008398


FTEST = json.loads((ROOT / "tests" / "reference" / "ftest.json").read_text())


@pytest.mark.parametrize("method", ["satterthwaite", "kenward_roger"])
def test_f_test_main_effect_inside_interaction_matches_lmertest(method):
    # R (tests/r/reference_ftest.R): fit <- lmerTest::lmer(Reaction ~ period * Days +
    #   (1 | Subject), data = d); anova(fit, type = 3, ddf = "Satterthwaite" | "Kenward-Roger")
    # lmerTest's type III contrasts (get_contrasts_type3), e.g. for 'Days' (contained in
    # period:Days) the slope averaged over periods, not the slope in the reference period.
    c = FTEST["cases"]["sleepstudy_period"]
    ref = pd.DataFrame(c[f"anova_{method}"]).set_index("term")
    d = load(c["data_file"])
    for term in ("period", "Days"):
        got = f_test(d, c["formula"], term, df_method=method.replace("_", "-"))
        assert got["num_df"].iloc[0] == ref.loc[term, "num_df"]
        assert got["F"].iloc[0] == pytest.approx(ref.loc[term, "F"], rel=1e-4)
        assert got["den_df"].iloc[0] == pytest.approx(ref.loc[term, "den_df"], rel=1e-2)
        assert got["p_value"].iloc[0] == pytest.approx(ref.loc[term, "p"], rel=1e-3)
