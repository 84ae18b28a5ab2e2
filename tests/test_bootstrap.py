"""Parametric bootstrap LRT for GLMMs against pbkrtest::PBmodcomp (tests/r/reference_glmm.R)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT, load_reference
from mmteach import glmm_laplace as core
from mmteach.glmm import _prepare, compare_glmm, parametric_bootstrap

REF = load_reference("glmm")
PB = REF["pb_small"]
DATA = pd.read_csv(ROOT / "tests/data" / PB["data"])


@pytest.fixture(scope="module")
def pb_result():
    calls = []
    cmp = compare_glmm(DATA, PB["full"], PB["reduced"], family="binomial", bootstrap=1000,
                       seed=2024, progress=lambda d, t: calls.append((d, t)))
    return cmp, calls


def test_pbmodcomp_p_value_within_monte_carlo_error(pb_result):
    # pbkrtest::PBmodcomp(glmer(y ~ x + (1|g)), glmer(y ~ 1 + (1|g)), nsim = 1000, seed = 2024)
    cmp, _ = pb_result
    p_r = PB["pb_p"]
    tol = 3 * math.sqrt(2 * p_r * (1 - p_r) / 1000)  # two independent Monte Carlo errors
    assert abs(cmp.bootstrap_p_value - p_r) < tol
    # PBmodcomp's own convention (LRT* <= 0 left out): a fixed effect tested, few LRT* at 0
    assert abs(cmp.bootstrap_p_value_pbmodcomp - p_r) < tol
    assert cmp.bootstrap_positive <= cmp.bootstrap_samples
    # the observed LRT is the same as PBmodcomp's (anova) statistic
    assert cmp.chisq == pytest.approx(PB["lrt_chisq"], rel=1e-3, abs=1e-4)
    assert cmp.p_value == pytest.approx(PB["lrt_p"], rel=1e-3)


def test_bootstrap_bookkeeping(pb_result):
    cmp, calls = pb_result
    assert 0 < cmp.bootstrap_samples <= 1000
    assert cmp.bootstrap_samples + cmp.bootstrap_failed <= 1000
    assert calls[-1] == (1000, 1000)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert any("Parametric bootstrap" in m for m in cmp.messages)
    assert "PBmodcomp" in cmp.r_call
    assert cmp.to_dict()["bootstrap_samples"] == cmp.bootstrap_samples


def test_bootstrap_is_reproducible_with_seed():
    a = compare_glmm(DATA, PB["full"], PB["reduced"], family="binomial", bootstrap=40, seed=7)
    b = compare_glmm(DATA, PB["full"], PB["reduced"], family="binomial", bootstrap=40, seed=7)
    assert a.bootstrap_p_value == b.bootstrap_p_value
    assert a.bootstrap_samples == b.bootstrap_samples
    mf1, _, _, y, s1, _ = _prepare(DATA, PB["full"], "binomial", None, 1, ())
    mf0, _, _, _, s0, _ = _prepare(DATA, PB["reduced"], "binomial", None, 1, ())
    f1, f0 = core.fit_core(s1, y), core.fit_core(s0, y)
    l7, _ = parametric_bootstrap(s1, s0, f1, f0, 10, seed=7)
    l7b, _ = parametric_bootstrap(s1, s0, f1, f0, 10, seed=7)
    l8, _ = parametric_bootstrap(s1, s0, f1, f0, 10, seed=8)
    np.testing.assert_array_equal(l7, l7b)
    assert not np.array_equal(l7, l8)


def test_batched_refits_equal_single_refits():
    """The vectorised bootstrap refits give the same LRT as fitting each sample alone."""
    mf1, _, _, y, s1, _ = _prepare(DATA, PB["full"], "binomial", None, 1, ())
    mf0, _, _, _, s0, _ = _prepare(DATA, PB["reduced"], "binomial", None, 1, ())
    f1, f0 = core.fit_core(s1, y), core.fit_core(s0, y)
    rng = np.random.default_rng(3)
    Y = core.simulate_response(s0, f0, 5, rng)
    d1, c1 = core.fit_batch(s1, Y, f1.theta, f1.beta)
    d0, c0 = core.fit_batch(s0, Y, f0.theta, f0.beta)
    assert c1.all() and c0.all()
    for i in range(5):
        a1, a0 = core.fit_core(s1, Y[i]), core.fit_core(s0, Y[i])
        assert d1[i] == pytest.approx(a1.deviance, abs=1e-6)
        assert d0[i] == pytest.approx(a0.deviance, abs=1e-6)


def test_simulated_responses_follow_the_reduced_model():
    mf0, _, _, y, s0, _ = _prepare(DATA, PB["reduced"], "binomial", None, 1, ())
    f0 = core.fit_core(s0, y)
    Y = core.simulate_response(s0, f0, 4000, np.random.default_rng(1))
    assert set(np.unique(Y)) <= {0.0, 1.0}
    # marginal mean = E[plogis(b0 + sd * z)]
    z, w = np.polynomial.hermite_e.hermegauss(40)
    sd = f0.theta[0]
    expected = np.sum(w / math.sqrt(2 * math.pi) / (1 + np.exp(-(f0.beta[0] + sd * z))))
    assert Y.mean() == pytest.approx(expected, abs=0.01)


def test_parametric_bootstrap_counts():
    mf1, _, _, y, s1, _ = _prepare(DATA, PB["full"], "binomial", None, 1, ())
    mf0, _, _, _, s0, _ = _prepare(DATA, PB["reduced"], "binomial", None, 1, ())
    lrt, failed = parametric_bootstrap(s1, s0, core.fit_core(s1, y), core.fit_core(s0, y),
                                       30, seed=5, chunk=7)
    assert len(lrt) + failed == 30
    assert np.all(lrt >= 0)


def _water_lick_fits(random: str) -> tuple:
    """Specs and observed fits of lick ~ dff + RANDOM and lick ~ 1 + RANDOM on water_lick."""
    d = pd.read_csv(ROOT / "datasets/water_lick.csv")
    _, _, _, y, s1, _ = _prepare(d, f"lick ~ dff + {random}", "binomial", None, 1, ["mouseID"])
    _, _, _, _, s0, _ = _prepare(d, f"lick ~ 1 + {random}", "binomial", None, 1, ["mouseID"])
    return s1, s0, core.fit_core(s1, y), core.fit_core(s0, y)


def test_water_lick_bootstrap_refits_all_converge():
    """The benchmark's bootstrap (issue 4: dff on water_lick, seed 1, chunks of 250).

    Every refit converges. Before the exact-Hessian Newton, samples 273, 503 and 926 were
    counted as failed (the batched Newton stalled at an interior point: not a boundary) and
    311, 365, 667, 781 and 899 stopped at theta = 0 in the full model, a saddle where the
    theta gradient vanishes by symmetry, with deviances 1 to 4 too high (LRT* = 0). Single
    fits from glmer's default start (theta = 1, GLM fixed effects) find the same optima.
    """
    s1, s0, f1, f0 = _water_lick_fits("(1 | mouseID)")
    rng = np.random.default_rng(1)
    Y = np.vstack([core.simulate_response(s0, f0, 250, rng) for _ in range(4)])
    d1, c1, d0, c0 = core.fast.fit_nested(s1, s0, Y, np.r_[f1.theta, f1.beta],
                                          np.r_[f0.theta, f0.beta])
    assert c1.all() and c0.all()
    assert np.all(d1 <= d0 + 1e-8)  # the full model never fits worse than the reduced one
    # the same optima when every refit starts from the observed fits instead
    e1, k1 = core.fit_batch(s1, Y, f1.theta, f1.beta)
    e0, k0 = core.fit_batch(s0, Y, f0.theta, f0.beta)
    assert k1.all() and k0.all()
    np.testing.assert_allclose(d1, e1, atol=1e-6)
    np.testing.assert_allclose(d0, e0, atol=1e-6)
    for i in (273, 311, 365, 503, 667, 781, 899, 926):
        a = core.fit_core(s1, Y[i])
        assert a.converged and not a.singular
        assert d1[i] == pytest.approx(a.deviance, abs=1e-6)


def test_nested_columns():
    mf1, _, _, _, s1, _ = _prepare(DATA, PB["full"], "binomial", None, 1, ())
    mf0, _, _, _, s0, _ = _prepare(DATA, PB["reduced"], "binomial", None, 1, ())
    assert core.fast.nested_columns(s1, s0).tolist() == [0]
    assert core.fast.nested_columns(s0, s1) is None  # x is not a column of the reduced X


def test_random_slope_bootstrap_refits_reach_the_optimum():
    """The general (random-slope) path: batched refits equal single refits, and the full
    model never fits worse than the reduced one. The observed full fit is singular (the
    slope's Cholesky factor is 0), and refits start there: a saddle where the deviance's
    theta gradient vanishes by symmetry. Before the Newton steps escaped along negative
    curvature (as glmm_scalar does), 9 of these 40 full-model refits stayed at theta = 0 with
    deviances 0.1 to 5 too high (LRT* = 0) and the bootstrap dropped them."""
    s1, s0, f1, f0 = _water_lick_fits("(1 + dff | mouseID)")
    lrt, failed = parametric_bootstrap(s1, s0, f1, f0, 40, seed=1)
    assert failed == 0 and len(lrt) == 40
    assert np.all(lrt > 0)
    Y = core.simulate_response(s0, f0, 6, np.random.default_rng(4))
    d1, c1 = core.fit_batch(s1, Y, f1.theta, f1.beta)
    d0, c0 = core.fit_batch(s0, Y, f0.theta, f0.beta)
    assert c1.all() and c0.all() and np.all(d1 <= d0 + 1e-8)
    for i in range(len(Y)):
        # fit_core starts from glmer's default (theta = 1, GLM fixed effects)
        assert d1[i] == pytest.approx(core.fit_core(s1, Y[i]).deviance, abs=1e-5)
        assert d0[i] == pytest.approx(core.fit_core(s0, Y[i]).deviance, abs=1e-5)
