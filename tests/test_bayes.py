"""Bayesian GLMM (nested Laplace) against brms/Stan with the book's priors.

Reference values: ``tests/reference/bayes.json`` from ``Rscript tests/r/reference_bayes.R``
(4 chains x 20,000 draws each, so the Monte Carlo error of a posterior mean is below 1% of
its posterior SD; log marginal likelihoods by bridge sampling, the median of 5 runs).
Tolerances are in posterior SDs because that is the scale on which a reader compares two
posteriors; they cover the Laplace approximation and the remaining Monte Carlo error.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from conftest import DATA, load_reference
from mmteach.bayes import bayes_factor, fit_bayes_glmm, slope_prior_sd
from mmteach.datasets import load_dataset
from mmteach.errors import DataError, ModelError

REF = load_reference("bayes")
CASES = {
    # brm(lick ~ dff + (1 | mouseID), family = bernoulli(), prior = normal(0,10) b, cauchy(0,5) sd)
    "water_lick": ("water_lick", "binomial"),
    # brm(lick ~ dff + (1 + dff | mouseID), ...), lkj(1) on the correlation
    "water_lick_slope": ("water_lick", "binomial"),
    # brm(count ~ x + (1 | g), family = poisson(), ...)
    "poisson": ("glmm_poisson.csv", "poisson"),
}


def _data(source: str) -> pd.DataFrame:
    return load_dataset(source) if source == "water_lick" else pd.read_csv(DATA / source)


@pytest.fixture(scope="module")
def fits() -> dict:
    out = {}
    for name, (source, family) in CASES.items():
        ref = REF[name]
        d = _data(source)
        out[name] = fit_bayes_glmm(d, ref["formula"], family=family)
        if "formula0" in ref:
            out[name + "0"] = fit_bayes_glmm(d, ref["formula0"], family=family)
    return out


def _fixed_name(brms_name: str) -> str:
    return "(Intercept)" if brms_name == "b_Intercept" else brms_name[2:]


@pytest.mark.parametrize("case", list(CASES))
def test_fixed_effects_match_brms(fits, case):
    fit = fits[case].tidy().set_index("term")
    for name, ref in REF[case]["draws"].items():
        if not name.startswith("b_"):
            continue
        row = fit.loc[_fixed_name(name)]
        sd = ref["sd"]
        # measured: means within 0.023 SD, SDs within 1%, interval ends within 0.06 SD
        assert abs(row["estimate"] - ref["mean"]) < 0.05 * sd, name  # posterior mean
        assert abs(row["std_error"] / sd - 1) < 0.02, name  # posterior SD, 2%
        assert abs(row["conf_low"] - ref["q025"]) < 0.08 * sd, name  # l-95% CI
        assert abs(row["conf_high"] - ref["q975"]) < 0.08 * sd, name  # u-95% CI
        assert math.isnan(row["p_value"])  # a posterior has no p-value


@pytest.mark.parametrize("case", list(CASES))
def test_random_effect_sds_match_brms(fits, case):
    fit = fits[case]
    summary = fit.extras["sd_summary"]
    for name, ref in REF[case]["draws"].items():
        if not name.startswith("sd_"):
            continue
        # brms names sd_<group>__<term>
        group, term = name[3:].split("__")
        term = "(Intercept)" if term == "Intercept" else term
        row = summary[(summary["group"] == group) & (summary["term"] == term)].iloc[0]
        sd = ref["sd"]
        # measured: means within 0.01 SD; interval ends within 0.13 SD (the upper end of the
        # random-slope SD, a long right tail read off the coarse 3-D grid)
        assert abs(row["mean"] - ref["mean"]) < 0.05 * sd, name  # posterior mean of the SD
        assert abs(row["conf_low"] - ref["q025"]) < 0.15 * sd, name
        assert abs(row["conf_high"] - ref["q975"]) < 0.15 * sd, name
        vc = next(v for v in fit.varcomps if v.group == group and v.term == term)
        assert vc.sd == pytest.approx(row["mean"])


def test_correlation_matches_brms(fits):
    ref = REF["water_lick_slope"]["draws"]["cor_mouseID__Intercept__dff"]
    rho = fits["water_lick_slope"].correlations[0].corr
    assert abs(rho - ref["mean"]) < 0.05 * ref["sd"]  # posterior mean of the correlation (0.003 SD)


@pytest.mark.parametrize("case", [c for c in CASES if "formula0" in REF[c]])
def test_bayes_factor_matches_bridge_sampling(fits, case):
    ref = REF[case]
    bf = bayes_factor(fits[case], fits[case + "0"])
    # brms::bayes_factor(fit1, fit0) by bridge sampling (its runs spread by ~0.015); log BF
    # within 0.03, i.e. BF within 3% (measured: 0.004)
    assert ref["logml_spread"] < 0.03
    assert abs(bf.log_bf10 - ref["log_bf10"]) < 0.03
    # each log marginal likelihood, as bridge_sampler(fit)$logml
    assert abs(bf.log_ml1 - ref["logml1"]) < 0.03
    assert abs(bf.log_ml0 - ref["logml0"]) < 0.03
    assert "brms::bayes_factor(fit1, fit0)" in bf.r_code()
    assert bf.tidy()["log_marginal_likelihood"].tolist() == [bf.log_ml0, bf.log_ml1]
    assert bf.glance().loc[0, "bf10"] == pytest.approx(math.exp(ref["log_bf10"]), rel=0.03)


def test_priors_are_the_books(fits):
    # brms's prior_summary() of the reference fit
    prior = pd.DataFrame(REF["water_lick"]["prior"])
    assert "normal(0, 10)" in set(prior.loc[prior["class"] == "b", "prior"])
    assert "cauchy(0, 5)" in set(prior.loc[prior["class"] == "sd", "prior"])
    assert "student_t(3, 0, 2.5)" in set(prior.loc[prior["class"] == "Intercept", "prior"])
    code = fits["water_lick"].r_code()
    assert "prior(normal(0, 10), class = b)" in code
    assert "prior(cauchy(0, 5), class = sd)" in code


def test_poisson_intercept_prior_follows_brms():
    # brms centres the default Poisson intercept prior on log(median(y)), rounded to 0.1
    prior = pd.DataFrame(REF["poisson"]["prior"])
    brms = prior.loc[prior["class"] == "Intercept", "prior"].iloc[0]
    d = pd.read_csv(DATA / "glmm_poisson.csv")
    fit = fit_bayes_glmm(d, "count ~ x + (1 | g)", family="poisson")
    assert brms in fit.r_code()


def test_deterministic():
    d = load_dataset("water_lick")
    a = fit_bayes_glmm(d, "lick ~ dff + (1 | mouseID)").tidy()
    b = fit_bayes_glmm(d, "lick ~ dff + (1 | mouseID)").tidy()
    pd.testing.assert_frame_equal(a, b)


@pytest.mark.parametrize(("d", "n"), [(3, 16384), (18, 65536)])
def test_draws_are_multivariate_t_quantiles_of_the_sobol_points(d, n):
    """The proposal's draws are the normal quantiles of a scrambled Sobol sequence over the
    square root of a chi-square(nu)/nu quantile, exactly as scipy.stats' norm.ppf and chi2.ppf
    give them (bayes._draws calls their special functions directly, for speed)."""
    from scipy import stats

    from mmteach.bayes import _NU, _draws

    u = np.clip(stats.qmc.Sobol(d + 1, scramble=True, seed=20221).random_base2(int(math.log2(n))), 1e-12, 1 - 1e-12)
    expected = stats.norm.ppf(u[:, :d]) / np.sqrt(stats.chi2.ppf(u[:, d], _NU) / _NU)[:, None]
    np.testing.assert_array_equal(_draws(d, n), expected)


def test_narrow_prior_moves_bayes_factor_not_estimate():
    # Lindley: the Bayes factor follows the prior width, the posterior hardly does
    d = load_dataset("water_lick")
    wide = fit_bayes_glmm(d, "lick ~ dff + (1 | mouseID)", b_prior_sd=10)
    narrow = fit_bayes_glmm(d, "lick ~ dff + (1 | mouseID)", b_prior_sd=0.1)
    null_wide = fit_bayes_glmm(d, "lick ~ 1 + (1 | mouseID)", b_prior_sd=10)
    null_narrow = fit_bayes_glmm(d, "lick ~ 1 + (1 | mouseID)", b_prior_sd=0.1)
    # normal(0, 0.1) shrinks a slope with SE 0.02 by about (0.02 / 0.1)^2 = 4%
    assert abs(wide.coef("dff").estimate - narrow.coef("dff").estimate) < 0.2 * wide.coef(
        "dff").std_error
    bf_wide = bayes_factor(wide, null_wide).bf10
    bf_narrow = bayes_factor(narrow, null_narrow).bf10
    # Savage-Dickey: BF10 = prior density at 0 / posterior density at 0; the prior's is
    # 100 times higher with SD 0.1, the posterior's about the same
    assert bf_wide < 1 < bf_narrow
    assert 50 < bf_narrow / bf_wide < 150
    # the null model has no slope: its fit, and so the Bayes factor, ignores the slope prior
    assert null_narrow.extras["log_marginal_likelihood"] == null_wide.extras["log_marginal_likelihood"]
    assert null_narrow.extras["priors"][0] is None
    assert bayes_factor(wide, null_narrow).bf10 == bf_wide
    assert "class = b" not in null_narrow.r_code() and "slopes normal" not in " ".join(null_narrow.messages)
    assert slope_prior_sd("lick ~ 1 + (1 | mouseID)", 0.1) is None
    assert slope_prior_sd("lick ~ dff + (1 | mouseID)", 0.1) == 0.1
    # priors the two models share must agree
    other_sd = fit_bayes_glmm(d, "lick ~ 1 + (1 | mouseID)", sd_prior_scale=1.0)
    with pytest.raises(ModelError, match="different priors"):
        bayes_factor(wide, other_sd)
    with pytest.raises(ModelError, match="different priors"):
        bayes_factor(wide, fit_bayes_glmm(d, "lick ~ dff + (1 | mouseID)", b_prior_sd=0.1))
    with pytest.raises(ModelError, match="give the SD of their normal prior"):
        fit_bayes_glmm(d, "lick ~ dff + (1 | mouseID)", b_prior_sd=None)


@pytest.mark.parametrize(
    ("formula", "kwargs", "error", "fragment"),
    [
        ("lick ~ dff", {}, ModelError, "random-effects term"),
        ("lick ~ dff + (1 + dff + day | mouseID)", {}, ModelError, "at most two"),
        ("lick ~ dff + (1 + dff | mouseID) + (1 | day)", {}, ModelError, "up to 3 variance"),
        ("dff ~ 1 + (1 | mouseID)", {}, DataError, "0/1"),
        ("lick ~ dff + (1 | mouseID)", {"family": "binomial", "one_mouse": True}, ModelError,
         "only 1 level"),
    ],
)
def test_teaching_errors(formula, kwargs, error, fragment):
    d = load_dataset("water_lick").assign(day=lambda x: np.arange(len(x)) % 4)
    if kwargs.pop("one_mouse", False):
        d = d[d["mouseID"] == 1]
    with pytest.raises(error, match=fragment):
        fit_bayes_glmm(d, formula, **kwargs)


def test_bayes_factor_needs_same_rows():
    d = load_dataset("water_lick")
    fit1 = fit_bayes_glmm(d, "lick ~ dff + (1 | mouseID)")
    fit0 = fit_bayes_glmm(d.iloc[:400], "lick ~ 1 + (1 | mouseID)")
    with pytest.raises(ModelError, match="same data"):
        bayes_factor(fit1, fit0)


def _dense_laplace(model, theta: np.ndarray, start: np.ndarray):
    """The reference for mmteach.bayes._laplace_batch: the same Newton iteration at one theta
    on the plain dense design D = U T (the fit used it for its mode search until that
    batched its points)."""
    from mmteach.bayes import _beta_prior, _block_factors, _integrate, _scaling
    from mmteach.families import canonical_mean_weight
    from mmteach.optim import backtrack

    T = _scaling(model, _block_factors(model, np.asarray(theta, dtype=float)))
    D = model.design.U @ T  # (n, d)
    Dt = D.T
    d = D.shape[1]
    p = model.Xc.shape[1]
    diag_b, diag_v = np.arange(p), np.arange(p, d)

    def objective(w: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        mu, wt, ll = canonical_mean_weight(model.y, model.trials, model.family, D @ w)
        lpb, gb, hb = _beta_prior(model, w[:p])
        v = w[p:]
        grad = Dt @ (model.y - mu)
        grad[:p] += gb
        grad[p:] -= v
        H = (Dt * wt) @ D
        H[diag_b, diag_b] += hb
        H[diag_v, diag_v] += 1.0
        return ll + model.const + float(lpb) - 0.5 * float(v @ v), grad, H

    w = np.array(start, dtype=float)
    f, grad, H = objective(w)
    for _ in range(100):
        step = np.linalg.solve(H, grad)
        w0, f0, used = w, f, [0.0]

        def try_step(rows: np.ndarray, t: np.ndarray, w0: np.ndarray = w0, f0: float = f0,
                     step: np.ndarray = step, used: list = used) -> np.ndarray:
            nonlocal w, f, grad, H
            cand = w0 + t[0] * step
            fr, gr, Hr = objective(cand)
            ok = fr >= f0 - 1e-12 or t[0] < 1e-8  # as in _laplace_batch
            if ok:
                w, f, grad, H, used[0] = cand, fr, gr, Hr, t[0]
            return np.array([ok])

        backtrack(try_step, np.ones(1), halvings=60)
        if abs(f - f0) < 1e-11 and np.max(np.abs(used[0] * step)) < 1e-7:
            break
    return _integrate(model, np.array([f]), w[None], H[None], T[None])[0]


@pytest.mark.parametrize(
    ("source", "formula"),
    [
        ("water_lick", "lick ~ dff + (1 + dff | mouseID)"),  # one term, two effects per level
        ("glmm_crossed.csv", "y ~ x + (1 | subj) + (1 | item)"),  # crossed: off-diagonal pairs
        ("glmm_multi_binom_crossed.csv", "cbind(s, n - s) ~ x + (1 | subj) + (1 | item)"),
    ],
)
def test_batched_laplace_is_the_dense_one(source, formula):
    # the batched Newton steps build D'WD from the sparse pattern of [X, Z] scaled by the
    # factors (_Design); the reference (_dense_laplace) from the dense design: the same numbers
    from mmteach.bayes import _laplace_batch, _prepare

    model, _mf, _link = _prepare(_data(source), formula, "binomial", (), 10.0, 5.0, None)
    rng = np.random.default_rng(3)
    thetas = rng.normal(-0.5, 0.6, size=(5, model.n_theta))
    d = model.Xc.shape[1] + model.q
    batch = _laplace_batch(model, thetas, np.zeros((5, d)))
    for theta, got in zip(thetas, batch, strict=True):
        want = _dense_laplace(model, theta, np.zeros(d))
        assert got.log_marginal == pytest.approx(want.log_marginal, abs=1e-8)
        np.testing.assert_allclose(got.mode, want.mode, atol=1e-6)
        np.testing.assert_allclose(got.cov, want.cov, rtol=1e-6, atol=1e-10)


def _fixed_moments(post, model) -> tuple[np.ndarray, np.ndarray]:
    """Posterior means and SDs of the (centred) fixed effects from a _posterior's weighted draws."""
    p = model.Xc.shape[1]
    beta = post.draws[..., :p].reshape(-1, p)
    w = post.draw_weights.ravel()
    mean = w @ beta
    return mean, np.sqrt(w @ (beta - mean) ** 2)


@pytest.mark.parametrize("formula", ["lick ~ dff + (1 | mouseID)", "lick ~ dff + (1 + dff | mouseID)"])
def test_single_precision_sampling_is_far_inside_the_monte_carlo_error(formula):
    # _importance evaluates the likelihood of every draw in float32 for speed; the posterior
    # (fixed effects' means and SDs) and log p(y) must agree with the float64 evaluation to
    # far less than the sampling's own error (~1.4% of a posterior SD at ~5,500 effective draws)
    from mmteach.bayes import _posterior, _prepare, _sampling_precision

    model, _mf, _link = _prepare(load_dataset("water_lick"), formula, "binomial", (), 10.0, 5.0, None)
    got, want = _posterior(model), _posterior(model, precision=np.float64)
    assert _sampling_precision(model) is np.float32  # 0/1 outcomes: the fast path is the one tested
    assert got.draws.dtype == np.float64  # only the likelihood is in single precision
    (m32, s32), (m64, s64) = _fixed_moments(got, model), _fixed_moments(want, model)
    np.testing.assert_allclose(m32, m64, atol=1e-5 * s64.min())  # measured: < 1e-6 SD
    np.testing.assert_allclose(s32, s64, rtol=1e-5)
    assert got.log_marginal == pytest.approx(want.log_marginal, abs=1e-5)
    assert got.ess == pytest.approx(want.ess, rel=1e-5)


@pytest.mark.parametrize("formula", ["lick ~ dff + (1 | mouseID)", "lick ~ 1 + (1 | mouseID)"])
def test_fitting_grid_points_ahead_keeps_the_grid(formula, monkeypatch):
    # with one variance parameter the grid's flood fill fits points ahead of its frontier in
    # one batch (_LOOKAHEAD); it must keep exactly the points the one-wave-at-a-time fill keeps
    from mmteach import bayes

    model, _mf, _link = bayes._prepare(load_dataset("water_lick"), formula, "binomial", (), 10.0, 5.0, None)
    ahead = bayes._posterior(model)
    monkeypatch.setattr(bayes, "_LOOKAHEAD", 1)
    one_by_one = bayes._posterior(model)
    np.testing.assert_array_equal(ahead.thetas, one_by_one.thetas)
    # the far points' Newton iterations start elsewhere and end at the same modes (to ~1e-9;
    # a single draw's weight then differs by the float32 likelihood's rounding, ~1e-4 of itself)
    (m1, s1), (m0, s0) = _fixed_moments(ahead, model), _fixed_moments(one_by_one, model)
    np.testing.assert_allclose(m1, m0, atol=1e-6 * s0.min())
    np.testing.assert_allclose(s1, s0, rtol=1e-6)
    assert ahead.log_marginal == pytest.approx(one_by_one.log_marginal, abs=1e-6)


@pytest.mark.parametrize("formula", ["lick ~ dff + (1 | mouseID)", "lick ~ 1 + (1 + dff | mouseID)",
                                     "lick ~ dff + (1 + dff | mouseID)"])
def test_newton_mode_search_finds_the_mode_nelder_mead_finds(formula, monkeypatch):
    # the posterior mode of theta (which centres the grid) is found by batched Newton steps;
    # a tightly converged Nelder-Mead search (the method before) must give the same posterior
    from scipy import optimize

    from mmteach import bayes

    def nelder_mead(fun, x0, **_kw):
        res = optimize.minimize(lambda t: float(fun(t[None, None])[0, 0]), x0[0], method="Nelder-Mead",
                                options={"xatol": 1e-7, "fatol": 1e-10, "maxiter": 20_000,
                                         "initial_simplex": np.vstack([x0[0], x0[0] + 0.5 * np.eye(x0.shape[1])])})
        return res.x[None], np.array([res.fun]), np.array([res.success]), res.nit

    model, _mf, _link = bayes._prepare(load_dataset("water_lick"), formula, "binomial", (), 10.0, 5.0, None)
    newton = bayes._posterior(model)
    monkeypatch.setattr(bayes, "newton_minimize", nelder_mead)
    simplex = bayes._posterior(model)
    assert len(newton.thetas) == len(simplex.thetas)
    np.testing.assert_allclose(newton.thetas, simplex.thetas, atol=1e-4)
    (m1, s1), (m0, s0) = _fixed_moments(newton, model), _fixed_moments(simplex, model)
    np.testing.assert_allclose(m1, m0, atol=1e-5 * s0.min())  # measured: < 4e-6 SD
    np.testing.assert_allclose(s1, s0, rtol=1e-5)
    assert newton.log_marginal == pytest.approx(simplex.log_marginal, abs=1e-5)


def test_counts_and_trials_keep_double_precision():
    # y * eta grows with the counts, and float32's rounding with it: only 0/1 outcomes use it
    from mmteach.bayes import _prepare, _sampling_precision

    counts = _data("glmm_multi_binom_crossed.csv")
    model, _mf, _link = _prepare(counts, "cbind(s, n - s) ~ x + (1 | subj) + (1 | item)", "binomial", (),
                                 10.0, 5.0, None)
    assert _sampling_precision(model) is np.float64


def test_draw_counts_follow_the_weights():
    # powers of 2, at least _MIN_DRAWS, more for heavier points, and as many effective draws
    # as per_point draws at every point would give (per_point * K_eff)
    from mmteach.bayes import _MIN_DRAWS, _draw_counts

    log_post = -0.5 * np.linspace(-4.2, 4.2, 43) ** 2  # a Gaussian's grid, step 0.2 SD
    sizes = _draw_counts(log_post, 256)
    assert np.all(sizes >= _MIN_DRAWS) and np.all(2 ** np.round(np.log2(sizes)) == sizes)
    w = np.exp(log_post - log_post.max())
    w /= w.sum()
    assert np.all(np.diff(sizes[np.argsort(w)]) >= 0)  # more weight, never fewer draws
    ess = 1 / np.sum((np.repeat(w / sizes, sizes)) ** 2)  # each draw's weight w_k / S_k
    assert ess >= 256 / np.sum(w**2)
    assert sizes.sum() < 0.7 * 256 * len(w)  # two thirds of the draws of 256 everywhere (rounded up)


@pytest.mark.parametrize(("formula", "share"), [("lick ~ dff + (1 | mouseID)", 0.6),
                                                ("lick ~ dff + (1 + dff | mouseID)", 0.3)])
def test_importance_draws_go_where_the_posterior_is(formula, share):
    # the grid's draws are shared out by the points' Laplace weights (_draw_counts): fewer
    # likelihood evaluations than _DRAWS at every point, and at least as many effective draws
    # as that gave (3,892 with a random intercept and 3,657 with a random slope)
    from mmteach import bayes

    model, _mf, _link = bayes._prepare(load_dataset("water_lick"), formula, "binomial", (), 10.0, 5.0, None)
    post = bayes._posterior(model)
    per_point = bayes._DRAWS[model.n_theta]
    assert len(post.draw_weights) < share * per_point * len(post.weights)
    assert post.ess >= 0.9 * per_point / np.sum(post.weights**2)
    assert post.draw_weights.sum() == pytest.approx(1.0)
    assert np.all(np.diff(post.starts) > 0) and post.starts[0] == 0
