"""Alternatives to the GLMM: pooled GLM, GEE, per-mouse t-test (the Bayesian GLMM: test_bayes.py).

Reference values: tests/r/reference_glmm.R (glm, geepack::geeglm) on tests/data/glmm_bernoulli.csv.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from conftest import ROOT
from mmteach.errors import DataError
from mmteach.glmm import fit_glmm
from mmteach.marginal import fit_gee, fit_glm, proportion_t_test

REF = json.loads((ROOT / "tests/reference/glmm.json").read_text())
BERN = pd.read_csv(ROOT / "tests/data/glmm_bernoulli.csv")


def test_glm_matches_r():
    # glm(y ~ x, data = bern, family = binomial)
    ref = REF["bernoulli_glm"]
    fit = fit_glm(BERN, "y ~ x + (1 | g)")  # the random term is dropped
    td = fit.tidy().set_index("term")
    for term, v in ref["coef"].items():
        assert td.loc[term, "estimate"] == pytest.approx(v, rel=1e-6)
        assert td.loc[term, "std_error"] == pytest.approx(ref["se"][term], rel=1e-5)
    assert fit.loglik == pytest.approx(ref["loglik"], rel=1e-8)
    assert fit.aic == pytest.approx(ref["aic"], rel=1e-8)
    assert fit.r_call.startswith("fit <- glm(y ~ x, data = d, family = binomial)")


def test_glm_standard_errors_smaller_than_glmm():
    """The lecture's point: pooling understates the intercept's uncertainty."""
    glm = fit_glm(BERN, "y ~ x")
    glmm = fit_glmm(BERN, "y ~ x + (1 | g)")
    assert glm.coef("(Intercept)").std_error < 0.6 * glmm.coef("(Intercept)").std_error


def test_gee_matches_geeglm():
    # geepack::geeglm(y ~ x, id = factor(g), data = bern, family = binomial,
    #                 corstr = "exchangeable")
    # tolerances: geeglm's convergence (its default tol 1e-10 on the estimates)
    ref = REF["bernoulli_gee"]
    fit = fit_gee(BERN, "y ~ x", "g")
    td = fit.tidy().set_index("term")
    for term, v in ref["coef"].items():
        assert td.loc[term, "estimate"] == pytest.approx(v, abs=1e-7)  # coef(fit)
        assert td.loc[term, "std_error"] == pytest.approx(ref["se"][term], rel=1e-6)  # robust SE
    assert fit.extras["alpha"] == pytest.approx(ref["alpha"], abs=1e-7)  # summary(fit)$corr
    assert fit.extras["scale"] == pytest.approx(ref["scale"], rel=1e-6)  # summary(fit)$dispersion
    assert fit.groups == (("g", 20),)


def test_gee_needs_cluster_column():
    with pytest.raises(DataError, match="cluster"):
        fit_gee(BERN, "y ~ x", "mouse")


def test_proportion_t_test_is_a_paired_t_test_across_mice():
    fit = proportion_t_test(BERN, "y", "g", "x")
    # independent computation: per-group median split, scipy's paired t-test
    hi, lo = [], []
    for _, s in BERN.groupby("g"):
        h = s.x > s.x.median()
        hi.append(s.y[h].mean())
        lo.append(s.y[~h].mean())
    t = stats.ttest_rel(hi, lo)
    c = fit.coefficients[0]
    assert c.statistic == pytest.approx(t.statistic, rel=1e-10)
    assert c.p_value == pytest.approx(t.pvalue, rel=1e-8)
    assert c.df == 19
    assert c.estimate == pytest.approx(np.mean(np.subtract(hi, lo)), rel=1e-12)
    assert len(fit.extras["per_group"]) == 20


def test_proportion_t_test_rejects_non_binary():
    d = BERN.assign(y=BERN.y * 2)
    with pytest.raises(DataError, match="0/1"):
        proportion_t_test(d, "y", "g", "x")


