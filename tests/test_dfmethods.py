"""Satterthwaite, Kenward-Roger and containment df on matrices (engine level)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT
from mmteach.dfmethods import (
    containment_df,
    kenward_roger,
    satterthwaite_df,
    satterthwaite_f,
    satterthwaite_info,
)
from mmteach.lme import problem_from_frame
from mmteach.model_frame import build_model

REF = json.loads((ROOT / "tests" / "reference" / "lme.json").read_text())


def engine_fit(case: str):
    c = REF["cases"][case]
    d = pd.read_csv(ROOT / "tests" / "data" / c["data_file"])
    fac = [c["factors"]] if isinstance(c["factors"], str) else c["factors"]
    mf = build_model(d, c["formula"], factors=fac)
    return mf, problem_from_frame(mf).fit(reml=c["reml"]), c


@pytest.mark.parametrize("case", ["sleep_slope_reml", "sleep_slope_ml", "penicillin_reml",
                                  "nest_obj1_reml", "slope_uncorr_reml", "nearzero_reml"])
def test_satterthwaite_df_matches_lmertest(case):
    # R: summary(lmerTest::lmer(...), ddf = "Satterthwaite")[, "df"]
    mf, fit, c = engine_fit(case)
    df = satterthwaite_df(fit, np.eye(fit.problem.p))
    ref = [r["df"] for r in c["coef_satterthwaite"]]
    np.testing.assert_allclose(df, ref, rtol=1e-2)  # df: 1e-2 relative


def test_satterthwaite_info_structure():
    _, fit, _ = engine_fit("sleep_slope_reml")
    info = satterthwaite_info(fit)
    m = fit.theta.size + 1
    assert info.hessian.shape == (m, m) and len(info.jacobian) == m
    np.testing.assert_allclose(info.hessian, info.hessian.T, atol=1e-8 * np.abs(info.hessian).max())
    # vcov_varpar is 2 H^-1 for a positive definite Hessian
    np.testing.assert_allclose(info.vcov_varpar @ info.hessian, 2 * np.eye(m), atol=1e-8)
    # d vcov(beta) / d sigma = 2 vcov / sigma exactly
    np.testing.assert_allclose(info.jacobian[-1], 2 * fit.vcov / fit.sigma, rtol=1e-12)


def test_satterthwaite_f_of_single_row_is_t_squared():
    _, fit, c = engine_fit("sleep_int_reml")
    L = np.array([[0.0, 1.0]])
    F, q, ddf = satterthwaite_f(fit, L)
    t = c["coef_satterthwaite"][1]["t"]
    assert q == 1
    assert F == pytest.approx(t**2, rel=1e-6)
    assert ddf == pytest.approx(c["coef_satterthwaite"][1]["df"], rel=1e-2)


@pytest.mark.parametrize("case", ["sleep_slope_reml", "penicillin_reml", "nest_obj4_reml",
                                  "slope_corr_reml", "sleep_uncorr_reml"])
def test_kenward_roger_matches_pbkrtest(case):
    # R: pbkrtest::vcovAdj(fit); summary(fit, ddf = "Kenward-Roger")
    _, fit, c = engine_fit(case)
    kr = kenward_roger(fit)
    p = fit.problem.p
    Vadj = np.asarray(c["vcov_kr"], dtype=float).reshape(p, p)
    np.testing.assert_allclose(kr.phi_adj, Vadj, rtol=2e-4, atol=1e-4 * np.abs(Vadj).max())
    np.testing.assert_allclose(kr.df(np.eye(p)), [r["df"] for r in c["coef_kenward_roger"]],
                               rtol=1e-2)
    np.testing.assert_allclose(kr.phi, fit.vcov, rtol=1e-8, atol=1e-12)


def test_kenward_roger_refits_ml_by_reml():
    _, fit_ml, _ = engine_fit("sleep_slope_ml")
    _, fit_reml, _ = engine_fit("sleep_slope_reml")
    np.testing.assert_allclose(kenward_roger(fit_ml).phi_adj, kenward_roger(fit_reml).phi_adj,
                               rtol=1e-6)


def test_containment_nested_and_crossed_layouts():
    # nlme::lme(res ~ treatment, random = ~1 | midx/cidx): 483 df for both coefficients
    c = REF["nlme"]["nest_obj1_ml"]
    d = pd.read_csv(ROOT / "tests" / "data" / c["data_file"])
    mf = build_model(d, "res ~ treatment + (1 | midx/cidx)", factors=["treatment"])
    groups = [b.codes for b in sorted(mf.blocks, key=lambda b: b.n_levels)]
    col, term = containment_df(mf.X, mf.assign, groups)
    assert col.tolist() == [r["df"] for r in c["coef"]]
    assert term.tolist() == col.tolist()


def test_containment_between_and_within_covariates():
    # 6 mice x 4 cells; z varies between mice only, x within mice:
    # strata: mouse 6 - 1 (intercept) - 1 (z) = 4; residual 24 - 6 - 1 (x) = 17
    rng = np.random.default_rng(1)
    mouse = np.repeat(np.arange(6), 4)
    z = rng.normal(size=6)[mouse]
    x = rng.normal(size=24)
    X = np.column_stack([np.ones(24), z, x])
    col, term = containment_df(X, [0, 1, 2], [mouse])
    assert col.tolist() == [17.0, 4.0, 17.0]
    assert term.tolist() == [17.0, 4.0, 17.0]
