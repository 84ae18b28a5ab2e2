"""Design planner (issue 14): power and type I error by simulation, checked against the analytic
noncentral t, against an lme4 + lmerTest loop in R (tests/r/reference_power.R ->
tests/reference/power.json) and against the general LME fitter; joblib and Dask give the same grid.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from conftest import load_reference
from mmteach.cli import main
from mmteach.errors import DataError
from mmteach.lme import fit_lme
from mmteach.power import (
    Design,
    _slope_reml,  # the batch's REML criterion, to compare optima
    analytic_power,
    cost_plan,
    fit_ri_within,
    fit_slope_within,
    power_curve,
    power_grid,
    simulate_power,
)
from mmteach.sim_reml import fit_slope_batch

REF = load_reference("power")


def _mc_se(p: float, n: int) -> float:
    return math.sqrt(max(p * (1 - p), 0.01 * 0.99) / n)


@pytest.mark.parametrize("design", [
    Design(mice=6, cells_per_mouse=10, icc=0.3, effect=1.0),
    Design(mice=4, cells_per_mouse=50, icc=0.6, effect=1.5),
    Design(kind="within", mice=8, cells_per_mouse=20, icc=0.3, effect=0.4, slope_sd=0.3),
])
def test_mouse_means_power_matches_noncentral_t(design):
    # R: power.t.test(n = m, delta = d, sd = sqrt(v)) is the same noncentral-t formula.
    res = simulate_power(design, reps=4000, seed=11)
    exact = analytic_power(design)
    # tolerance: 4 Monte Carlo SEs of a 4000-replicate proportion
    assert abs(res.rejection_rate["mouse_means"] - exact) < 4 * _mc_se(exact, 4000)


def test_analytic_power_is_alpha_without_effect():
    assert analytic_power(Design(effect=0.0)) == pytest.approx(0.05, abs=1e-12)


@pytest.mark.parametrize("point", REF["points"], ids=lambda p: f"{p['design']['kind']}-{p['design']['effect']}")
def test_rates_match_lme4_loop(point):
    # R: lmerTest::lmer loop, 300 replicates per point (tests/r/reference_power.R); mmteach 3000.
    # Tolerance: 3.5 SEs of the difference of the two Monte Carlo proportions.
    d = point["design"]
    res = simulate_power(Design(**d), reps=3000, seed=5)
    for method, r_rate in point["rejection_rate"].items():
        py = res.rejection_rate[method]
        se = math.sqrt(_mc_se(r_rate, point["reps"]) ** 2 + _mc_se(py, 3000) ** 2)
        assert abs(py - r_rate) < 3.5 * se, (method, py, r_rate)
    se = math.sqrt(_mc_se(point["singular_rate"], point["reps"]) ** 2 + _mc_se(res.singular_rate, 3000) ** 2)
    assert abs(res.singular_rate - point["singular_rate"]) < 3.5 * se + 0.01


def _cells(rng, k, n0, n1, sd_b, sd_s, sd_e, effect):
    b, s = rng.normal(0, sd_b, k), rng.normal(0, sd_s, k)
    mouse = np.repeat(np.arange(k), n0 + n1)
    x = np.tile(np.r_[np.zeros(n0), np.ones(n1)], k)
    y = b[mouse] + (effect + s[mouse]) * x + rng.normal(0, sd_e, mouse.size)
    return pd.DataFrame({"y": y, "x": x, "mouse": mouse})


def _sums(d, n0, n1):
    g = d.groupby(["mouse", "x"])["y"]
    S = g.sum().unstack().to_numpy()
    W = (g.var(ddof=1).unstack().to_numpy() * np.array([n0 - 1, n1 - 1])).sum(-1)
    return S[None, :, 0], S[None, :, 1], W[None]


@pytest.mark.parametrize("seed,sd_b", [(1, 1.0), (2, 0.0), (3, 0.3)])
def test_within_closed_forms_match_general_lme(seed, sd_b):
    # The general fitter is checked against lmerTest elsewhere (tests/test_lme.py); here the
    # closed forms of the batch must give the same estimate, SE and Satterthwaite df (1e-6).
    rng = np.random.default_rng(seed)
    d = _cells(rng, 7, 5, 6, sd_b, 0.5, 1.0, 0.3)
    S0, S1, W = _sums(d, 5, 6)
    est, se, df, sing = fit_ri_within(S0, S1, W, 5, 6)
    ri = fit_lme(d, "y ~ x + (1 | mouse)", factors=["mouse"]).coef("x")
    assert est[0] == pytest.approx(ri.estimate, rel=1e-6)
    assert se[0] == pytest.approx(ri.std_error, rel=1e-5)
    assert df[0] == pytest.approx(ri.df, rel=1e-3)
    b1, se1, sing1, df1 = fit_slope_within(S0, S1, W, 5, 6)
    rs = fit_lme(d, "y ~ x + (1 + x | mouse)", factors=["mouse"])
    assert b1[0] == pytest.approx(rs.coef("x").estimate, rel=1e-5, abs=1e-7)
    assert se1[0] == pytest.approx(rs.coef("x").std_error, rel=1e-4)
    assert bool(sing1[0]) == rs.singular
    if not rs.singular:
        assert df1[0] == pytest.approx(rs.coef("x").df, rel=2e-3)
        return
    # On the boundary (seed 2) the REML surface is flat along the slope's last Cholesky entry
    # (~1e-5 at the optimum), and the Satterthwaite df swings along it: lmer's default fit
    # gives df 8.01 and a tightly converged lmer (bobyqa, rhoend 1e-12) 7.42 for these data,
    # the same criterion to 1e-3. Both fitters here land on that ridge (which point depends on
    # the machine's last bits: df 7.42 vs 11.5), so what must agree is the optimum itself.
    n0, n1, k = 5, 6, 7
    a_mat = np.array([[n0 + n1, n1], [n1, n1]], float)
    c = np.stack([S0 + S1, S1], -1)
    q = W + S0**2 / n0 + S1**2 / n1
    fit = fit_slope_batch(np.broadcast_to(a_mat, (k, 2, 2)), c, q, k * (n0 + n1))
    point = np.concatenate([fit.theta, fit.sigma[:, None]], -1)
    dev = _slope_reml(point, a_mat, c.sum(1), np.einsum("rki,rkj->rij", c, c), q.sum(1), k, k * (n0 + n1))[0]
    assert dev[0] == pytest.approx(rs.reml_criterion, rel=1e-8)
    assert 1.0 <= df1[0] <= 2 * k and 1.0 <= rs.coef("x").df <= 2 * k


def test_pooling_inflates_type_one_error_and_slope_model_does_not():
    res = simulate_power(kind="within", mice=8, cells_per_mouse=20, icc=0.3, effect=0.0,
                         slope_sd=0.5, reps=1000)
    r = res.rejection_rate
    assert r["lme"] > 0.12 and r["pooled_lm"] > 0.08  # the treatment-by-mouse variance is ignored
    assert r["lme_slope"] < 0.08 and r["mouse_means"] < 0.08
    # what the intercept-only SE misses: it is smaller than the spread of its estimates
    assert res.extras["ri_se"].mean() < 0.8 * res.extras["ri_estimate"].std()


def test_design_effect_and_tables():
    res = simulate_power(mice=5, cells_per_mouse=21, icc=0.2, effect=0.5, reps=100)
    g = res.glance().iloc[0]
    assert g["design_effect"] == pytest.approx(1 + 0.2 * 20)
    assert g["effective_n"] == pytest.approx(2 * 5 * 21 / 5.0)
    t = res.tidy()
    assert (t["conf_low"] <= t["rejection_rate"]).all() and (t["rejection_rate"] <= t["conf_high"]).all()
    assert "lmerTest" in res.r_code()


@pytest.mark.parametrize("kwargs", [dict(kind="crossed"), dict(mice=1), dict(icc=1.0),
                                    dict(kind="within", conditions=3), dict(cells_per_mouse=1)])
def test_bad_designs_are_refused_in_words(kwargs):
    with pytest.raises(DataError, match=r"\w+ \w+ \w+"):
        Design(**kwargs)


def test_grid_is_the_same_serial_and_with_joblib():
    pts = [Design(mice=m, cells_per_mouse=10) for m in (3, 5)]
    a = power_grid(pts, reps=200, seed=3)
    b = power_grid(pts, reps=200, seed=3, n_jobs=2)
    pd.testing.assert_frame_equal(a, b)


def test_grid_runs_on_a_dask_cluster():
    distributed = pytest.importorskip("distributed")
    pts = [Design(mice=m, cells_per_mouse=10) for m in (3, 4)]
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  protocol="tcp://", host="127.0.0.1", dashboard_address=None) as cluster:
        got = power_grid(pts, reps=100, seed=2, dask=cluster.scheduler_address)
    pd.testing.assert_frame_equal(got, power_grid(pts, reps=100, seed=2))


def test_power_rises_with_mice_and_cost_plan_picks_cheapest():
    curve = power_curve(Design(icc=0.5, effect=1.0), "mice", [3, 10], reps=400)
    lme = curve[curve["method"] == "lme"].set_index("mice")["rejection_rate"]
    assert lme[10] > lme[3] + 0.2
    plan = cost_plan(Design(icc=0.5, effect=1.0), mice=[3, 6, 10], cells=[5, 50], cost_per_mouse=100,
                     cost_per_cell=1, budget=1500, target_power=0.6, reps=300)
    g = plan.grid
    ok = g[g["power"] >= 0.6]
    assert plan.cheapest["cost"] == ok["cost"].min()
    assert plan.best_in_budget["power"] == g[g["cost"] <= 1500]["power"].max()
    assert f"{plan.cheapest['mice']} mice" in plan.sentence()


def test_cli_power_json(capsys):
    assert main(["simulate", "power", "--reps", "200", "--effect", "0", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["rate_is"] == "type I error"
    assert set(out["rejection_rate"]) == {"pooled_lm", "mouse_means", "lme"}
    assert out["conf_low"]["lme"] <= out["rejection_rate"]["lme"] <= out["conf_high"]["lme"]
    assert main(["simulate", "power", "--kind", "within", "--mice", "6", "--slope-sd", "0.4",
                 "--reps", "100"]) == 0
    assert "treatment slope" in capsys.readouterr().out


def test_misspec_reading_uses_the_run():
    from mmteach.power import misspec_reading

    res = simulate_power(kind="within", mice=8, cells_per_mouse=20, effect=0.0, slope_sd=0.5, reps=400)
    text = misspec_reading(res)
    assert f"{res.extras['ri_se'].mean():.3g}" in text
    assert f"{res.rejection_rate['lme']:.1%}" in text
    with pytest.raises(DataError):
        misspec_reading(simulate_power(reps=50))


@pytest.mark.parametrize("case", load_reference("power_analytic"), ids=lambda c: str(c["design"]))
def test_analytic_power_matches_power_t_test(case):
    # R: power.t.test(..., strict = TRUE) (tests/r/reference_power_analytic.R); tolerance 1e-6
    # (R's noncentral t integrates numerically).
    assert analytic_power(Design(**case["design"])) == pytest.approx(case["power"], rel=1e-6)


@pytest.mark.parametrize("seed", [2, 4, 13])
def test_boundary_slope_fits_get_lmertest_satterthwaite_df(seed):
    # Singular random-slope fits: the batch's df must be lmerTest's Satterthwaite df, which the
    # general fitter reproduces (tests/test_dfmethods.py against lmerTest); tolerance 1e-3.
    rng = np.random.default_rng(seed)
    d = _cells(rng, 8, 10, 10, 0.55, 0.3, 0.84, 0.0)
    S0, S1, W = _sums(d, 10, 10)
    b1, se1, sing, df1 = fit_slope_within(S0, S1, W, 10, 10)
    rs = fit_lme(d, "y ~ x + (1 + x | mouse)", factors=["mouse"])
    assert sing[0] and rs.singular
    assert df1[0] == pytest.approx(rs.coef("x").df, rel=1e-3)
