"""GLMM (issue 4) against lme4::glmer; reference values from tests/r/reference_glmm.R.

Tolerances: the brief asks for estimates and loglik to 1e-4 (relative) and SEs of the
fixed effects to 1e-3 (relative) against glmer. We compare with glmer converged tightly
(``glmerControl(tolPwrss = 1e-12, optimizer = c("bobyqa", "bobyqa"),
optCtrl = list(rhoend = 1e-10))``, key ``tight`` in the JSON): with its defaults glmer
stops PIRLS at a relative change of 1e-7 and Nelder-Mead at FtolAbs 1e-5, which leaves its
reported optimum off by up to 1.5e-3 (probit case) and its Hessian SEs off by up to 1%
(cbpp). Against the default fit we check the looser tolerances it supports.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmteach.errors import DataError, ModelError
from mmteach.glmm import compare_glmm, fit_glmm, odds_ratio_table

ROOT = Path(__file__).resolve().parents[1]
REF = json.loads((ROOT / "tests/reference/glmm.json").read_text())

# (reference key, formula, family, link, nAGQ, factors); R call in the comment.
CASES = [
    # lme4::glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), data = cbpp,
    #             family = binomial)
    ("cbpp_laplace", "cbind(incidence, size - incidence) ~ period + (1 | herd)", "binomial",
     None, 1, ["herd", "period"]),
    # same with nAGQ = 25
    ("cbpp_agq25", "cbind(incidence, size - incidence) ~ period + (1 | herd)", "binomial",
     None, 25, ["herd", "period"]),
    # lme4::glmer(y ~ x + (1 | g), data = bern, family = binomial)  (and nAGQ = 10)
    ("bernoulli_laplace", "y ~ x + (1 | g)", "binomial", None, 1, []),
    ("bernoulli_agq10", "y ~ x + (1 | g)", "binomial", None, 10, []),
    ("bernoulli_null", "y ~ 1 + (1 | g)", "binomial", None, 1, []),
    # lme4::glmer(count ~ x + (1 | g), data = pois, family = poisson)  (and nAGQ = 5)
    ("poisson_laplace", "count ~ x + (1 | g)", "poisson", None, 1, []),
    ("poisson_agq5", "count ~ x + (1 | g)", "poisson", None, 5, []),
    # lme4::glmer(y ~ x + arm + (1 | g), data = prob, family = binomial(link = "probit"))
    ("probit_laplace", "y ~ x + arm + (1 | g)", "binomial", "probit", 1, []),
    # lme4::glmer(y ~ x + (1 | subj) + (1 | item), data = crossed, family = binomial)
    ("crossed_laplace", "y ~ x + (1 | subj) + (1 | item)", "binomial", None, 1, []),
    # lme4::glmer(cbind(s, n - s) ~ x + (1 + x | g), data = slope, family = binomial)
    ("slope_laplace", "cbind(s, n - s) ~ x + (1 + x | g)", "binomial", None, 1, []),
]


def _data(ref: dict) -> pd.DataFrame:
    if ref["data"].startswith(".."):
        return pd.read_csv(ROOT / "datasets/water_lick.csv")
    return pd.read_csv(ROOT / "tests/data" / ref["data"])


_FITS: dict[str, object] = {}


def _fit(case):
    key, formula, family, link, nagq, factors = case
    if key not in _FITS:
        _FITS[key] = fit_glmm(_data(REF[key]), formula, family=family, link=link, nagq=nagq,
                              factors=factors)
    return _FITS[key]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_matches_tight_glmer(case):
    ref = REF[case[0]]["tight"]
    fit = _fit(case)
    td = fit.tidy().set_index("term")
    for term, value in ref["fixef"].items():
        assert td.loc[term, "estimate"] == pytest.approx(value, rel=1e-4, abs=1e-6)
        assert td.loc[term, "std_error"] == pytest.approx(ref["se"][term], rel=1e-3)
    assert fit.loglik == pytest.approx(ref["loglik"], rel=1e-4)
    assert fit.loglik == pytest.approx(ref["loglik"], abs=1e-4)  # much tighter in practice
    assert fit.aic == pytest.approx(ref["aic"], rel=1e-6)
    assert fit.bic == pytest.approx(ref["bic"], rel=1e-6)
    assert fit.deviance == pytest.approx(ref["deviance"], rel=1e-6)
    theta = np.atleast_1d(ref["theta"])
    # theta on lme4's scale; a singular (near-zero) element is only checked to be small
    np.testing.assert_allclose(fit.extras["theta"], theta, rtol=1e-4, atol=1e-3)
    assert fit.singular == ref["singular"]
    assert fit.converged


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_close_to_default_glmer(case):
    """glmer with its default (looser) convergence: estimates 5e-3, SEs 2e-2, loglik 1e-5."""
    ref = REF[case[0]]
    fit = _fit(case)
    td = fit.tidy().set_index("term")
    for term, value in ref["fixef"].items():
        assert td.loc[term, "estimate"] == pytest.approx(value, rel=5e-3, abs=1e-4)
        assert td.loc[term, "std_error"] == pytest.approx(ref["se"][term], rel=2e-2)
    assert fit.loglik == pytest.approx(ref["loglik"], rel=1e-5)


@pytest.mark.parametrize("case", CASES[:3] + CASES[5:6] + CASES[7:9],
                         ids=lambda c: c[0])
def test_variance_components_and_ranef(case):
    ref = REF[case[0]]["tight"]
    fit = _fit(case)
    vc = fit.variance_components()
    # as.data.frame(VarCorr(fit)): grp, var1, var2, vcov, sdcor
    for row in ref["varcorr"]:
        if row["var2"] is not None and not isinstance(row["var2"], str):
            continue
        if isinstance(row["var2"], str):
            continue  # correlations are checked in test_slope_correlation
        hit = vc[(vc.group == row["grp"]) & (vc.term == row["var1"])]
        assert hit["sd"].iloc[0] == pytest.approx(row["sdcor"], rel=1e-4)
    re = fit.ranef()
    for block in ref["ranef"]:
        for term, values in block["values"].items():
            sub = re[(re.group == block["group"]) & (re.term == term)].set_index("level")
            got = sub.loc[[str(v) for v in block["levels"]], "value"].to_numpy()
            np.testing.assert_allclose(got, values, rtol=2e-3, atol=2e-4)


def test_slope_correlation():
    ref = REF["slope_laplace"]["tight"]
    fit = _fit(CASES[-1])
    cor = [r for r in ref["varcorr"] if isinstance(r["var2"], str)][0]["sdcor"]
    # singular fit: slope SD near zero, correlation at the boundary (-1)
    assert fit.correlations[0].corr == pytest.approx(cor, abs=1e-2)
    assert any("singular" in m for m in fit.messages)
    assert any("fewer random effects" in m for m in fit.messages)


def test_lrt_matches_anova():
    # anova(glmer(y ~ x + (1 | g)), glmer(y ~ 1 + (1 | g))): Chisq, Df
    ref = REF["bernoulli_lrt"]
    tight = 2 * (REF["bernoulli_laplace"]["tight"]["loglik"]
                 - REF["bernoulli_null"]["tight"]["loglik"])
    cmp = compare_glmm(_data(REF["bernoulli_laplace"]), "y ~ x + (1 | g)", "y ~ 1 + (1 | g)",
                       family="binomial")
    assert cmp.df == ref["df"]
    assert cmp.chisq == pytest.approx(tight, rel=1e-4)
    assert cmp.chisq == pytest.approx(ref["chisq"], rel=1e-3)
    assert cmp.p_value == pytest.approx(ref["p"], rel=1e-2)
    assert "anova(full, reduced)" in cmp.r_call


def test_cbpp_lrt():
    # anova(glmer(cbind(...) ~ period + (1|herd)), glmer(cbind(...) ~ 1 + (1|herd)))
    ref = REF["cbpp_lrt"]
    d = _data(REF["cbpp_laplace"])
    cmp = compare_glmm(d, "cbind(incidence, size - incidence) ~ period + (1 | herd)",
                       "cbind(incidence, size - incidence) ~ 1 + (1 | herd)",
                       family="binomial", factors=["herd", "period"])
    assert cmp.df == 3
    assert cmp.chisq == pytest.approx(ref["chisq"], rel=1e-3)


def test_water_lick():
    # lme4::glmer(lick ~ dff + (1 | mouseID), data = d, family = binomial)
    if "water_lick" not in REF:
        pytest.skip("water_lick reference missing: rerun tests/r/reference_glmm.R")
    ref = REF["water_lick"]["tight"]
    fit = fit_glmm(_data(ref), "lick ~ dff + (1 | mouseID)", factors=["mouseID"])
    c = fit.coef("dff")
    assert c.estimate == pytest.approx(ref["fixef"]["dff"], rel=1e-4)
    assert c.std_error == pytest.approx(ref["se"]["dff"], rel=1e-3)
    assert fit.loglik == pytest.approx(ref["loglik"], rel=1e-4)
    assert math.isinf(c.df)
    assert fit.r_call.splitlines()[-2] == (
        "fit <- lme4::glmer(lick ~ dff + (1 | mouseID), data = d, family = binomial)")
    lrt = compare_glmm(_data(ref), "lick ~ dff + (1 | mouseID)", "lick ~ 1 + (1 | mouseID)",
                       family="binomial", factors=["mouseID"])
    assert lrt.chisq == pytest.approx(REF["water_lick_lrt"]["chisq"], rel=1e-3)


def test_odds_ratio_table_reproduces_slides():
    # slides: exp(c(0.06235, 0.06235 -+ 1.96 * 0.01986)) - 1 = 0.06433480 0.02370091 0.10658157
    from mmteach.results import Coef, FitResult

    r = FitResult("glmm", "", "Laplace", "z",
                  (Coef("dff", 0.06235, 0.01986, math.inf, 3.14, 0.0017, 0.0, 0.0),), 512)
    row = odds_ratio_table(r).iloc[0]
    assert row["percent_change"] == pytest.approx(6.433480, abs=1e-5)
    assert row["percent_low"] == pytest.approx(2.370091, abs=1e-5)
    assert row["percent_high"] == pytest.approx(10.658157, abs=1e-5)
    assert row["odds_ratio"] == pytest.approx(1.0643348, abs=1e-6)


def test_wald_table_is_z():
    fit = _fit(CASES[2])
    td = fit.tidy()
    assert np.all(np.isinf(td["df"]))
    z = td["estimate"] / td["std_error"]
    np.testing.assert_allclose(td["statistic"], z)
    np.testing.assert_allclose(td["conf_high"] - td["estimate"], 1.959964 * td["std_error"],
                               rtol=1e-6)


def test_bad_responses_raise_teaching_errors():
    d = pd.DataFrame({"y": [0, 1, 2, 1, 0, 1], "x": np.arange(6.0), "g": list("aabbcc")})
    with pytest.raises(DataError, match="0/1"):
        fit_glmm(d, "y ~ x + (1 | g)")
    d2 = d.assign(y=[0, 1, -1, 3, 2, 1])
    with pytest.raises(DataError, match="counts"):
        fit_glmm(d2, "y ~ x + (1 | g)", family="poisson")
    with pytest.raises(ModelError, match="random-effects term"):
        fit_glmm(d.assign(y=[0, 1, 1, 1, 0, 1]), "y ~ x", family="binomial")
    with pytest.raises(ModelError, match="family"):
        fit_glmm(d, "y ~ x + (1 | g)", family="gamma")
    with pytest.raises(ModelError, match="link"):
        fit_glmm(d, "y ~ x + (1 | g)", family="poisson", link="logit")


def test_agq_needs_scalar_intercept():
    d = _data(REF["slope_laplace"])
    with pytest.raises(ModelError, match="single random intercept"):
        fit_glmm(d, "cbind(s, n - s) ~ x + (1 + x | g)", nagq=5)
