"""fit_lme against lme4 / lmerTest / nlme (reference values from tests/r/reference_lme.R).

Tolerances (each written next to its assertion): estimates and log-likelihoods 1e-5
relative, standard errors 1e-4 relative, df 1e-2 relative, variances 1e-3 relative (or
1e-6 absolute near zero).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from conftest import EXAMPLE1, ROOT
from conftest import case_factors as factors
from conftest import load_case_data as load
from mmteach.errors import ModelError
from mmteach.lme import fit_lme

EX1 = EXAMPLE1
REF = json.loads((ROOT / "tests" / "reference" / "lme.json").read_text())
CASES = REF["cases"]




_FITS: dict[tuple, object] = {}


def fit_case(name: str, df_method: str = "satterthwaite"):
    key = (name, df_method)
    if key not in _FITS:
        c = CASES[name]
        _FITS[key] = fit_lme(load(c["data_file"]), c["formula"], factors=factors(c),
                             reml=c["reml"], df_method=df_method)
    return _FITS[key]


REML_CASES = [k for k, c in CASES.items() if c["reml"]]


@pytest.mark.parametrize("name", list(CASES))
def test_fixed_effects_satterthwaite(name):
    # R: summary(lmerTest::lmer(<formula>, data, REML = <reml>), ddf = "Satterthwaite")
    c = CASES[name]
    fit = fit_case(name)
    got = fit.tidy()
    ref = pd.DataFrame(c["coef_satterthwaite"])
    assert got["term"].tolist() == ref["term"].tolist()
    se = ref["se"].to_numpy()
    # estimates: 1e-5 relative (absolute floor 1e-5 SE near 0) against the tightly converged
    # lme4 fit (lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12)))
    np.testing.assert_allclose(got["estimate"], np.atleast_1d(c["tight"]["estimate"]), rtol=1e-5,
                               atol=1e-5 * se.min())
    # ... and within 1e-3 SE of lme4's default fit (whose theta stops ~1e-5 from the optimum)
    assert np.all(np.abs(got["estimate"].to_numpy() - ref["estimate"].to_numpy()) <= 1e-3 * se)
    np.testing.assert_allclose(got["std_error"], se, rtol=1e-4)  # SE: 1e-4 relative
    np.testing.assert_allclose(got["df"], ref["df"], rtol=1e-2)  # Satterthwaite df: 1e-2
    np.testing.assert_allclose(got["statistic"], ref["t"], rtol=1e-4, atol=1e-4)
    # p-values inherit the df tolerance: 1e-2 relative or 1e-10 absolute
    np.testing.assert_allclose(got["p_value"], ref["p"], rtol=1e-2, atol=1e-10)


@pytest.mark.parametrize("name", list(CASES))
def test_variance_components(name):
    # R: as.data.frame(VarCorr(fit))
    c = CASES[name]
    fit = fit_case(name)
    vc = fit.variance_components()
    ref = pd.DataFrame(c["varcorr"])
    var = ref[ref["var2"] == ""]
    assert vc["group"].tolist() == var["grp"].tolist()
    assert vc["term"].tolist() == var["var1"].tolist()
    # variances: 1e-3 relative, or 1e-6 absolute near zero
    np.testing.assert_allclose(vc["variance"], var["vcov"], rtol=1e-3, atol=1e-6)
    cors = ref[ref["var2"] != ""]
    got = {(r.group, r.term1, r.term2): r.corr for r in fit.correlations}
    assert len(got) == len(cors)
    for r in cors.itertuples():
        assert got[(r.grp, r.var1, r.var2)] == pytest.approx(r.sdcor, abs=1e-3)  # corr: 1e-3


@pytest.mark.parametrize("name", list(CASES))
def test_likelihood_and_flags(name):
    # R: logLik(fit); REMLcrit(fit); deviance(fit, REML = FALSE); AIC(fit); BIC(fit);
    #    isSingular(fit, tol = 1e-4)
    c = CASES[name]
    fit = fit_case(name)
    assert fit.loglik == pytest.approx(c["loglik"], rel=1e-5)
    if c["reml"]:
        assert fit.reml_criterion == pytest.approx(c["remlcrit"], rel=1e-5)
    else:
        assert math.isnan(fit.reml_criterion)
    assert fit.deviance == pytest.approx(c["deviance_ml"], rel=1e-5)
    assert fit.aic == pytest.approx(c["aic"], rel=1e-5)
    assert fit.bic == pytest.approx(c["bic"], rel=1e-5)
    assert fit.singular == bool(c["singular"])
    assert fit.n_obs == c["nobs"]
    assert dict(fit.groups) == {k.split(".")[0] if k not in dict(fit.groups) else k: v
                                for k, v in c["ngrps"].items()}
    if fit.singular:
        assert any("Singular" in m for m in fit.messages)


@pytest.mark.parametrize("name", list(CASES))
def test_vcov_and_conditional_modes(name):
    # R: vcov(fit); ranef(fit)
    c = CASES[name]
    fit = fit_case(name)
    V = np.asarray(c["vcov"], dtype=float).reshape(len(c["coef_satterthwaite"]), -1)
    # vcov: 2e-4 relative, small off-diagonal entries 1e-4 of the largest entry
    np.testing.assert_allclose(fit.extras["vcov"], V, rtol=2e-4, atol=1e-4 * np.abs(V).max())
    re = fit.ranef()
    for group, r in c["ranef"].items():
        terms = r["terms"] if isinstance(r["terms"], list) else [r["terms"]]
        vals = np.asarray(r["values"], dtype=float).reshape(len(r["levels"]), len(terms))
        for j, term in enumerate(terms):
            sub = re[(re["group"] == group) & (re["term"] == term)]
            got = sub.set_index("level").loc[[str(lv) for lv in r["levels"]], "value"]
            scale = max(np.abs(vals[:, j]).max(), 1e-8)
            # conditional modes: 1e-3 of their spread (they inherit theta's tolerance)
            np.testing.assert_allclose(got.to_numpy(), vals[:, j], atol=1e-3 * scale)


@pytest.mark.parametrize("name", [k for k in REML_CASES if "coef_kenward_roger" in CASES[k]])
def test_kenward_roger(name):
    # R: summary(fit, ddf = "Kenward-Roger"); pbkrtest::vcovAdj(fit)
    c = CASES[name]
    fit = fit_case(name, "kenward-roger")
    got = fit.tidy()
    ref = pd.DataFrame(c["coef_kenward_roger"])
    np.testing.assert_allclose(got["std_error"], ref["se"], rtol=1e-4)  # adjusted SE: 1e-4
    np.testing.assert_allclose(got["df"], ref["df"], rtol=1e-2)  # KR df: 1e-2
    np.testing.assert_allclose(got["p_value"], ref["p"], rtol=1e-2, atol=1e-10)
    Vadj = np.asarray(c["vcov_kr"], dtype=float).reshape(len(ref), -1)
    np.testing.assert_allclose(fit.extras["vcov_adjusted"], Vadj, rtol=2e-4,
                               atol=1e-4 * np.abs(Vadj).max())
    assert 'ddf = "Kenward-Roger"' in fit.r_code()


NLME = REF["nlme"]


@pytest.mark.parametrize("name", list(NLME))
def test_containment_matches_nlme(name):
    # R: summary(nlme::lme(<fixed>, random = <random>, data, method = <method>))
    c = NLME[name]
    d = load(c["data_file"])
    fit = fit_lme(d, c["mmteach_formula"], factors=factors(c), reml=c["method"] == "REML",
                  df_method="containment", allow_unidentifiable=True)
    ref = pd.DataFrame(c["coef"])
    got = fit.tidy()
    np.testing.assert_array_equal(got["df"], ref["df"])  # containment df: exact integers
    assert fit.loglik == pytest.approx(c["loglik"], rel=1e-5)  # logLik: 1e-5 relative
    assert fit.aic == pytest.approx(c["aic"], rel=1e-5)
    assert fit.bic == pytest.approx(c["bic"], rel=1e-5)  # nlme's REML BIC uses n - p
    np.testing.assert_allclose(got["estimate"], ref["estimate"], rtol=1e-4)
    np.testing.assert_allclose(got["std_error"], ref["se"], rtol=1e-3)  # nlme converges looser
    assert "nlme::lme(" in fit.r_code()


@pytest.mark.parametrize("obj", list(REF["lme4_errors"]))
def test_unidentifiable_refused_like_lme4_and_fitted_like_nlme(obj):
    # R: lmer(res ~ treatment + (1 | midx) + (treatment | cidx), REML = FALSE) -> error;
    #    nlme::lme(res ~ treatment, random = list(midx = ~1, cidx = ~treatment), method = "ML")
    e = REF["lme4_errors"][obj]
    d = load("lme_nested.csv")
    with pytest.raises(ModelError) as info:
        fit_lme(d, e["formula"], factors=["treatment"], reml=False)
    msg = str(info.value)
    assert msg.startswith(e["message"])  # lme4's own words first
    assert "fitted anyway, as nlme does" in msg and "two measurements per cell" in msg
    assert "allow_unidentifiable=True" not in msg  # no Python argument in a student's message
    fit = fit_lme(d, e["formula"], factors=["treatment"], reml=False, allow_unidentifiable=True)
    assert fit.loglik == pytest.approx(NLME[f"nest_{obj}_ml"]["loglik"], rel=1e-5)
    assert fit.loglik == pytest.approx(e["loglik_ignore_check"], rel=1e-5)
    assert any("fitted anyway" in m for m in fit.messages)


def test_grouping_factor_with_one_level_is_refused():
    d = load("lme_sleepstudy.csv")
    d = d[d["Subject"] == d["Subject"].iloc[0]]
    with pytest.raises(ModelError, match="at least 2 groups"):
        fit_lme(d, "Reaction ~ Days + (1 | Subject)")


def test_one_row_per_group_is_refused():
    d = pd.DataFrame({"y": [1.0, 2.0, 3.5, 4.0, 5.5], "g": [1, 2, 3, 4, 5]})
    with pytest.raises(ModelError, match="single row"):
        fit_lme(d, "y ~ 1 + (1 | g)")


def test_formula_without_random_term_is_refused():
    d = load("lme_sleepstudy.csv")
    with pytest.raises(ModelError, match="no random-effects term"):
        fit_lme(d, "Reaction ~ Days")


def test_kenward_roger_needs_reml():
    d = load("lme_sleepstudy.csv")
    with pytest.raises(ModelError, match="REML"):
        fit_lme(d, "Reaction ~ Days + (1 | Subject)", reml=False, df_method="kenward-roger")


def test_z_method_has_infinite_df():
    d = load("lme_sleepstudy.csv")
    fit = fit_lme(d, "Reaction ~ Days + (1 | Subject)", df_method="z")
    assert np.all(np.isinf(fit.tidy()["df"]))
    ref = pd.DataFrame(CASES["sleep_int_reml"]["coef_satterthwaite"])
    np.testing.assert_allclose(fit.tidy()["statistic"], ref["t"], rtol=1e-5)


def test_r_call_is_lmertest():
    fit = fit_case("sleep_slope_reml")
    assert "lmerTest::lmer(Reaction ~ Days + (Days | Subject), data = d, REML = TRUE)" in fit.r_code()


# ---------------------------------------------------------------- published Example 1 numbers
@pytest.fixture(scope="module")
def ex1():
    if not EX1.exists():
        pytest.skip("Example 1 data (../shared/data/example1_pcreb.csv) is not available")
    return pd.read_csv(EX1)


def test_published_example1_lmer(ex1):
    # published_results.md: lmer(res ~ treatment_idx + (1|midx)), REML, Satterthwaite
    fit = fit_lme(ex1, "res ~ treatment_idx + (1 | midx)", factors=["treatment_idx"])
    t = fit.tidy().set_index("term")
    pub = {
        "(Intercept)": (1.0006729, 0.1963782, 18.98927, 5.0956418, 6.434702e-05),
        "treatment_idx2": (0.8194488, 0.2890372, 18.98307, 2.8350982, 1.058783e-02),
        "treatment_idx3": (0.8429473, 0.3588556, 19.05714, 2.3489875, 2.975895e-02),
        "treatment_idx4": (0.1898432, 0.3586084, 19.00458, 0.5293888, 6.026655e-01),
        "treatment_idx5": (-0.3199877, 0.3043370, 19.01644, -1.0514256, 3.062415e-01),
    }
    for term, (est, se, df, tv, p) in pub.items():
        # printed to 7 decimals; lme4's own optimum differs from the exact one in the 8th
        # significant digit, so allow one unit in the last printed digit
        assert abs(t.loc[term, "estimate"] - est) <= 1e-7
        assert abs(t.loc[term, "std_error"] - se) <= 1e-7
        # lmerTest's numDeriv Hessian carries ~2e-6 of numerical error in df; one unit
        # in the last printed digit
        assert abs(t.loc[term, "df"] - df) <= 1e-5
        assert round(t.loc[term, "statistic"], 7) == pytest.approx(tv, abs=1.5e-7)
        assert float(f"{t.loc[term, 'p_value']:.6e}") == pytest.approx(p, rel=2e-6)
    assert round(fit.reml_criterion, 3) == 2264.466
    vc = fit.variance_components().set_index("group")
    assert round(vc.loc["midx", "variance"], 4) == 0.2629
    assert round(vc.loc["midx", "sd"], 5) == 0.51271
    assert round(vc.loc["Residual", "variance"], 4) == 0.3594
    assert round(vc.loc["Residual", "sd"], 5) == 0.59954


def test_published_example1_kenward_roger_and_nlme(ex1):
    fit = fit_lme(ex1, "res ~ treatment_idx + (1 | midx)", factors=["treatment_idx"],
                  df_method="kenward-roger")
    t = fit.tidy()
    assert [round(v, 4) for v in t["df"]] == [18.9806, 18.9745, 19.0485, 18.9960, 19.0078]
    assert [float(f"{p:.3g}") for p in t["p_value"]] == [6.44e-05, 0.0106, 0.0298, 0.603, 0.306]
    nl = fit_lme(ex1, "res ~ treatment_idx + (1 | midx)", factors=["treatment_idx"],
                 df_method="containment")
    assert nl.tidy()["df"].tolist() == [1176, 19, 19, 19, 19]
    assert round(nl.loglik, 3) == -1132.233
    assert round(nl.aic, 3) == 2278.466
    assert round(nl.bic, 3) == 2314.067


def test_published_example1_ml_logliks(ex1):
    full = fit_lme(ex1, "res ~ treatment_idx + (1 | midx)", factors=["treatment_idx"], reml=False)
    red = fit_lme(ex1, "res ~ 1 + (1 | midx)", reml=False)
    assert round(full.loglik, 3) == -1129.481
    assert round(red.loglik, 3) == -1137.721
