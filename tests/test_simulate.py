"""Simulation studies and the batch REML fitters (issue 6).

Reference values come from tests/r/reference_simulate.R (tests/reference/simulate.json); the
single replicates it simulated are in tests/data/sim_*.csv.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT, load_reference
from mmteach.errors import DataError, MMTeachError
from mmteach.sim_reml import (
    fit_intercept_batch,
    fit_slope_batch,
    intercept_stats,
    means_anova,
    pooled_f_test,
    slope_deviance,
    slope_stats,
    slope_true_vcov,
)
from mmteach.simulate import (
    EXAMPLE1_ICC,
    binomial_ci,
    simulate_report,
    simulate_type1,
    type1_curve,
)

REF = load_reference("simulate")
TERMS = ("(Intercept)", "X")


def _vals(d: dict) -> np.ndarray:
    return np.array(list(d.values()), dtype=float)


# ----------------------------------------------------------------------------------------
# Batch fitters against R, one replicate at a time
# ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=sorted(REF["report"]))
def report_case(request):
    case = REF["report"][request.param]
    d = pd.read_csv(ROOT / case["data"])
    A, c, s = slope_stats(d["X"].to_numpy(), d["Y"].to_numpy(), d["class"].to_numpy())
    fit = fit_slope_batch(A, c[None], s[None], len(d))
    return case, A, fit


def test_slope_fit_matches_lmer(report_case) -> None:
    # R: fit <- lme4::lmer(Y ~ 1 + X + (1 + X | class), data = dat, REML = TRUE,
    #            control = lmerControl(optCtrl = list(xtol_abs = 1e-14, ftol_abs = 1e-15, ...)))
    case, _, fit = report_case
    assert fit.converged[0]
    # fixef(fit): relative 1e-5
    np.testing.assert_allclose(fit.beta[0], _vals(case["fixef"]), rtol=1e-5)
    # sqrt(diag(vcov(fit))): relative 1e-4
    np.testing.assert_allclose(fit.se[0], _vals(case["se"]), rtol=1e-4)
    # as.data.frame(VarCorr(fit))$sdcor and sigma(fit): absolute 1e-3
    assert fit.sd_intercept[0] == pytest.approx(case["sd_intercept"], abs=1e-3)
    assert fit.sd_slope[0] == pytest.approx(case["sd_slope"], abs=1e-3)
    assert fit.corr[0] == pytest.approx(case["corr"], abs=1e-3)
    assert fit.sigma[0] == pytest.approx(case["sigma"], abs=1e-3)
    # REMLcrit(fit): the same deviance function, so the optima agree to 1e-6
    assert fit.reml_criterion[0] == pytest.approx(case["reml_criterion"], abs=1e-6)
    # ... and never worse than lmer with its default optimiser settings
    assert fit.reml_criterion[0] <= case["reml_criterion_default"] + 1e-9
    assert bool(fit.singular[0]) == case["singular"]  # isSingular(fit)


def test_true_se_matches_r_and_dense(report_case) -> None:
    case, A, _ = report_case
    design = case["design"]
    got = slope_true_vcov(A, design["sd_b0"], design["sd_b1"], design["sigma_w"])
    # R: solve(sum_i t(X) %*% solve(V) %*% X), V = X D X' + sigma^2 I (true_vcov in the script)
    np.testing.assert_allclose(got, np.array(case["true_vcov"]), rtol=1e-10)
    # Direct dense computation in numpy from the data.
    d = pd.read_csv(ROOT / case["data"])
    D = np.diag([design["sd_b0"] ** 2, design["sd_b1"] ** 2])
    acc = np.zeros((2, 2))
    for _, g in d.groupby("class"):
        X = np.column_stack([np.ones(len(g)), g["X"].to_numpy()])
        V = X @ D @ X.T + design["sigma_w"] ** 2 * np.eye(len(g))
        acc += X.T @ np.linalg.solve(V, X)
    np.testing.assert_allclose(got, np.linalg.inv(acc), rtol=1e-10)


def test_slope_deviance_equals_dense_reml() -> None:
    """The Woodbury deviance equals -2 REML log-likelihood computed with full matrices."""
    case = REF["report"]["sim_report_small"]
    d = pd.read_csv(ROOT / case["data"])
    x, y, g = d["X"].to_numpy(), d["Y"].to_numpy(), d["class"].to_numpy()
    A, c, s = slope_stats(x, y, g)
    n = len(d)
    X = np.column_stack([np.ones(n), x])
    for theta in ([0.7, -0.3, 0.2], [1.5, 0.0, 0.05], [0.0, 0.4, 0.9]):
        L = np.array([[theta[0], 0.0], [theta[1], theta[2]]])
        H = np.eye(n)
        for k in np.unique(g):
            rows = np.flatnonzero(g == k)
            H[np.ix_(rows, rows)] += X[rows] @ L @ L.T @ X[rows].T
        Hi = np.linalg.inv(H)
        P = X.T @ Hi @ X
        b = np.linalg.solve(P, X.T @ Hi @ y)
        r2 = (y - X @ b) @ Hi @ (y - X @ b)
        nu = n - 2
        dense = (np.linalg.slogdet(H)[1] + np.linalg.slogdet(P)[1]
                 + nu * (1 + math.log(2 * math.pi * r2 / nu)))
        got = slope_deviance(np.array([theta]), A, c[None], s[None], n)[0]
        assert got == pytest.approx(dense, rel=1e-10)


def test_batch_equals_one_at_a_time() -> None:
    """Fitting replicates together gives each replicate's own fit."""
    rng = np.random.default_rng(7)
    x = np.round(rng.uniform(1, 20, size=(12, 15)))
    A = np.stack([np.array([[15, xi.sum()], [xi.sum(), (xi * xi).sum()]]) for xi in x])
    y = 5 + 2 * x[None] + rng.normal(size=(4, 12, 1)) + rng.normal(size=(4, 12, 1)) * x[None] \
        + rng.normal(size=(4, 12, 15)) * 2
    c = np.stack([y.sum(-1), (y * x).sum(-1)], -1)
    s = (y * y).sum(-1)
    together = fit_slope_batch(A, c, s, 180)
    for r in range(4):
        alone = fit_slope_batch(A, c[r:r + 1], s[r:r + 1], 180)
        np.testing.assert_allclose(together.beta[r], alone.beta[0], rtol=1e-8)
        np.testing.assert_allclose(together.theta[r], alone.theta[0], rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name", sorted(REF["typeI"]))
def test_intercept_fit_matches_lmertest(name: str) -> None:
    case = REF["typeI"][name]
    d = pd.read_csv(ROOT / case["data"])
    n, S, Q, cond = intercept_stats(d["y"].to_numpy(), d["mouse"].to_numpy(),
                                    d["condition"].to_numpy())
    fit = fit_intercept_batch(n, S[None], Q[None], cond)
    assert fit.converged[0]
    # R: fit <- lmerTest::lmer(y ~ condition + (1 | mouse), data = dat); fixef(fit), rel 1e-5
    np.testing.assert_allclose(fit.beta[0], _vals(case["fixef"]), rtol=1e-5, atol=1e-9)
    # summary(fit)$coefficients[, "Std. Error"], rel 1e-4; [, "df"] (Satterthwaite), abs 1e-2
    np.testing.assert_allclose(fit.se[0], _vals(case["se"]), rtol=1e-4)
    np.testing.assert_allclose(fit.coef_df[0], _vals(case["coef_df"]), atol=1e-2)
    # VarCorr(fit) SD of mouse and sigma(fit), abs 1e-3
    assert fit.sd_mouse[0] == pytest.approx(case["sd_mouse"], abs=1e-3)
    assert fit.sigma[0] == pytest.approx(case["sigma"], abs=1e-3)
    assert fit.reml_criterion[0] == pytest.approx(case["reml_criterion"], abs=1e-6)  # REMLcrit
    # anova(fit): F rel 1e-4, DenDF abs 1e-2, p abs 1e-4
    assert fit.num_df == case["lme_numdf"]
    assert fit.F[0] == pytest.approx(case["lme_F"], rel=1e-4)
    assert fit.ddf[0] == pytest.approx(case["lme_ddf"], abs=1e-2)
    assert fit.p_value[0] == pytest.approx(case["lme_p"], abs=1e-4)
    # anova(lm(y ~ condition)): F and p, rel 1e-8 (closed form)
    F, _, p = pooled_f_test(n, S[None], Q[None], cond)
    assert F[0] == pytest.approx(case["lm_F"], rel=1e-8)
    assert p[0] == pytest.approx(case["lm_p"], rel=1e-6)
    # anova(lm(y ~ condition, data = aggregate(y ~ mouse + condition, dat, mean)))
    F, _, p = means_anova(n, S[None], cond)
    assert F[0] == pytest.approx(case["means_F"], rel=1e-8)
    assert p[0] == pytest.approx(case["means_p"], rel=1e-6)


def test_balanced_lme_f_equals_mouse_means_anova() -> None:
    """Balanced, interior fit: the LME F test is exactly the ANOVA of mouse means."""
    res = simulate_type1(reps=300, seed=5)
    ok = ~res.lme_singular
    assert ok.sum() > 250
    np.testing.assert_allclose(res.p_values["lme"][ok], res.p_values["mouse_means"][ok],
                               rtol=1e-6)
    np.testing.assert_allclose(res.lme_ddf[ok], 19.0, atol=1e-6)  # 24 mice - 5 conditions


def test_intercept_stats_rejects_crossed_mouse() -> None:
    with pytest.raises(DataError, match="exactly one condition"):
        intercept_stats(np.arange(4.0), np.array([1, 1, 2, 2]), np.array([1, 2, 1, 1]))


# ----------------------------------------------------------------------------------------
# The Monte Carlo report
# ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def redraw() -> object:
    return simulate_report(reps=200, seed=11, redraw_random_effects=True)


def test_report_averages_match_truth(redraw) -> None:
    ft = redraw.fixed_table().set_index("term")
    st = redraw.sd_table().set_index("name")
    # Unbiased estimates: within 3.5 Monte Carlo SEs of beta = (5, 2).
    for term, true in zip(TERMS, (5.0, 2.0)):
        assert abs(ft.loc[term, "avg_estimate"] - true) < 3.5 * ft.loc[term, "mc_se_estimate"]
    # The average REML SE tracks the true SE (within 3%), the pooled LM's does not.
    np.testing.assert_allclose(ft["avg_std_error"], ft["true_std_error"], rtol=0.03)
    assert ft.loc["(Intercept)", "pooled_lm_avg_std_error"] > 3 * ft.loc["(Intercept)",
                                                                        "true_std_error"]
    assert ft.loc["X", "pooled_lm_avg_std_error"] < 0.5 * ft.loc["X", "true_std_error"]
    # The estimates really scatter by the true SE (SD of an SD: ~ SD / sqrt(2 R)).
    mc = ft["true_std_error"] / math.sqrt(2 * 200)
    assert np.all(np.abs(ft["sd_of_estimates"] - ft["true_std_error"]) < 4 * mc)
    # REML SDs: within 4 Monte Carlo SEs of (1, 1, 2).
    assert np.all(np.abs(st["avg_sd"] - st["true_sd"]) < 4 * st["mc_se_sd"])


def test_report_coverage_near_95(redraw) -> None:
    # Wald z interval; binomial SD of a rate near 0.95 from 200 replicates is 0.0154.
    assert "Wald z" in redraw.coverage_method
    for cov in redraw.coverage:
        assert abs(cov - 0.95) < 3 * math.sqrt(0.95 * 0.05 / 200)


def test_report_table_within_one_draw_spread(redraw) -> None:
    """The report's averages (one draw of the class effects) lie where one draw can fall."""
    published = {  # seed report, sections 5.1 and 5.2
        "est": (5.01, 2.04), "se": (0.155, 0.309), "sd": (1.000, 0.977, 1.96),
    }
    for key, arr in (("est", redraw.estimates), ("se", redraw.std_errors), ("sd", redraw.sds)):
        centre, spread = arr.mean(0), arr.std(0, ddof=1)
        assert np.all(np.abs(np.array(published[key]) - centre) < 3 * spread), key


def test_report_true_se_matches_report() -> None:
    res = simulate_report(reps=2, seed=1)
    # The report: true SEs 0.165 and 0.316 for its own draw of X (rel 3% for another draw).
    np.testing.assert_allclose(res.true_se, [0.165, 0.316], rtol=0.03)
    assert any("100,000 rows" in note for note in res.notes)


def test_report_fixed_effects_kept_across_replicates() -> None:
    """As in the report: one draw of u, so the estimates scatter less than the true SE."""
    res = simulate_report(reps=60, seed=4)
    assert res.extras["random_effects"].shape == (40, 2)
    spread = res.estimates.std(0, ddof=1)
    assert np.all(spread < 0.5 * res.true_se)
    again = simulate_report(reps=60, seed=4)
    np.testing.assert_array_equal(res.estimates, again.estimates)  # reproducible


def test_report_to_dict_and_text() -> None:
    res = simulate_report(reps=30, seed=2, n_classes=10, n_per_class=8)
    d = res.to_dict()
    for key in ("avg_estimate", "avg_std_error", "true_std_error", "coverage"):
        assert set(d[key]) == set(TERMS)
    assert set(d["avg_sd"]) == {"Residual", "(Intercept)", "X"}
    assert d["avg_estimate"]["X"] == pytest.approx(res.estimates[:, 1].mean())
    assert "Fixed effects" in res.summary_text() and "100,000" in res.summary_text()


def test_report_progress_and_chunks() -> None:
    calls = []
    res = simulate_report(reps=30, seed=3, n_classes=5, n_per_class=6,
                          progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (30, 30) and all(t == 30 for _, t in calls)
    assert [c for c, _ in calls] == sorted(c for c, _ in calls)
    assert res.estimates.shape == (30, 2) and res.converged.all()


@pytest.mark.parametrize("bad", [{"n_classes": 2}, {"n_per_class": 1}, {"sigma_w": 0.0},
                                 {"x_low": 5, "x_high": 5}, {"reps": 0}, {"beta": (1.0,)}])
def test_report_rejects_bad_design(bad: dict) -> None:
    with pytest.raises(MMTeachError):
        simulate_report(**{"reps": 5, **bad})


# ----------------------------------------------------------------------------------------
# Type I error
# ----------------------------------------------------------------------------------------
def test_type1_example1_pooling_above_90_percent() -> None:
    res = simulate_type1(reps=1000, seed=1)
    rates = res.to_dict()["rejection_rate"]
    # Published: > 90% type I error when the 1,200 neurons are treated as independent.
    assert rates["pooled_lm"] > 0.9
    # The LME and the mouse-means ANOVA hold alpha: within 3 binomial SDs (0.0069) of 0.05.
    for key in ("lme", "mouse_means"):
        assert abs(rates[key] - 0.05) < 3 * math.sqrt(0.05 * 0.95 / 1000)
    t = res.table().set_index("method")
    assert np.all(t["conf_low"] <= t["rejection_rate"]) and np.all(t["rejection_rate"]
                                                                   <= t["conf_high"])
    assert "Clopper-Pearson" in res.ci_method
    assert "Pooled LM" in res.summary_text()


def test_type1_no_clustering_pooling_is_fine() -> None:
    """ICC = 0: the cells really are independent and the pooled F test holds alpha."""
    res = simulate_type1(reps=1000, seed=3, icc=0.0)
    assert abs(res.to_dict()["rejection_rate"]["pooled_lm"] - 0.05) < 3 * math.sqrt(
        0.05 * 0.95 / 1000)


def test_type1_exact_sums_match_cell_level_simulation() -> None:
    """Per-mouse sums drawn from their exact law behave like sums of simulated cells."""
    res = simulate_type1(reps=400, seed=8, icc=0.3, mice_per_condition=(4, 4),
                         cells_per_mouse=20)
    rng = np.random.default_rng(9)
    cond = np.repeat([0, 1], 4)
    b = rng.normal(size=(400, 8)) * math.sqrt(0.3)
    y = b[..., None] + rng.normal(size=(400, 8, 20)) * math.sqrt(0.7)
    p_raw = pooled_f_test(np.full(8, 20.0), y.sum(-1), (y * y).sum(-1), cond)[2]
    # Two independent estimates of the same rate: within 4 SDs of their difference.
    diff = (res.p_values["pooled_lm"] < 0.05).mean() - (p_raw < 0.05).mean()
    assert abs(diff) < 4 * math.sqrt(2 * 0.5 * 0.5 / 400)


def test_binomial_ci_clopper_pearson() -> None:
    # R: binom.test(50, 1000)$conf.int -> 0.0373353976047 0.0653904879155 (abs 1e-10)
    lo, hi = binomial_ci(50, 1000)
    assert float(lo) == pytest.approx(0.0373353976047, abs=1e-10)
    assert float(hi) == pytest.approx(0.0653904879155, abs=1e-10)
    # R: binom.test(0, 20)$conf.int -> 0 0.168433470983 (abs 1e-10)
    lo, hi = binomial_ci(0, 20)
    assert float(lo) == 0.0 and float(hi) == pytest.approx(0.168433470983, abs=1e-10)


def test_type1_curve_pooling_grows_with_icc() -> None:
    calls = []
    df = type1_curve(over="icc", values=[0.0, 0.1, 0.5], reps=200, seed=2,
                     progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (600, 600)
    pooled = df[df["method"] == "pooled_lm"].set_index("icc")["rejection_rate"]
    assert pooled.loc[0.0] < 0.15 < pooled.loc[0.1] < pooled.loc[0.5]
    assert pooled.loc[0.5] > 0.9
    lme = df[df["method"] == "lme"]["rejection_rate"]
    assert lme.max() < 0.12
    cells = type1_curve(over="cells_per_mouse", values=[5, 100], reps=200, seed=2,
                        icc=EXAMPLE1_ICC)
    pooled = cells[cells["method"] == "pooled_lm"]["rejection_rate"].to_numpy()
    assert pooled[0] < pooled[1]  # more cells per mouse: pooling gets worse


@pytest.mark.parametrize("bad", [{"mice_per_condition": (1, 1)}, {"icc": 1.0},
                                 {"icc": (0.1, 0.2)}, {"cells_per_mouse": 1},
                                 {"alpha": 0.0}, {"total_var": -1.0}])
def test_type1_rejects_bad_design(bad: dict) -> None:
    with pytest.raises(DataError):
        simulate_type1(**{"reps": 5, **bad})


def test_type1_curve_rejects_unknown_axis() -> None:
    with pytest.raises(DataError, match="icc"):
        type1_curve(over="alpha", values=[0.05])
