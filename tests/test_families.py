"""mmteach.families: family and link arithmetic and the response checks, against scipy's distributions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

from mmteach.errors import DataError, ModelError
from mmteach.families import (
    Response,
    canonical_loglik,
    canonical_mean_weight,
    check_family,
    check_response,
    family_r,
    logit_rows,
    mu_eta,
)
from mmteach.model_frame import build_model


def test_check_family_defaults_and_errors():
    assert check_family("Poisson", None) == ("poisson", "log")
    assert check_family("binomial", "probit") == ("binomial", "probit")
    with pytest.raises(ModelError, match="not available"):
        check_family("gamma", None)
    with pytest.raises(ModelError, match="cannot be used"):
        check_family("poisson", "logit")
    assert family_r("binomial", "logit") == "binomial"
    assert family_r("poisson", "log") == "poisson"


def test_mu_eta_matches_scipy():
    eta = np.linspace(-5, 5, 11)
    mu, d = mu_eta(eta, "logit")
    np.testing.assert_allclose(mu, special.expit(eta))
    np.testing.assert_allclose(d, mu * (1 - mu))
    mu, d = mu_eta(eta, "probit")
    np.testing.assert_allclose(mu, stats.norm.cdf(eta))
    np.testing.assert_allclose(d, stats.norm.pdf(eta))
    mu, d = mu_eta(eta, "log")
    np.testing.assert_allclose(mu, np.exp(eta))
    assert np.isfinite(mu_eta(np.array([1e4]), "log")[0]).all()  # clamped, no overflow


@pytest.mark.parametrize("family", ["binomial", "poisson"])
def test_response_loglik_is_the_pmf(family):
    rng = np.random.default_rng(1)
    n = rng.integers(1, 6, 20).astype(float)
    mu = rng.uniform(0.1, 0.9, 20) if family == "binomial" else rng.uniform(0.5, 4, 20)
    y = rng.binomial(n.astype(int), mu).astype(float) if family == "binomial" else rng.poisson(mu).astype(float)
    trials = n if family == "binomial" else np.ones(20)
    r = Response.make(y, trials, family)
    ll = float(np.sum(r.loglik_rows(mu)) + r.const)
    ref = stats.binom.logpmf(y, n, mu) if family == "binomial" else stats.poisson.logpmf(y, mu)
    assert ll == pytest.approx(float(np.sum(ref)), rel=1e-12)
    # canonical link: the same log-likelihood, mean and weight from eta
    eta = special.logit(mu) if family == "binomial" else np.log(mu)
    m, w, ll2 = canonical_mean_weight(y, trials, family, eta)
    assert ll2 + float(r.const) == pytest.approx(ll, rel=1e-12)
    np.testing.assert_allclose(m, trials * mu)
    np.testing.assert_allclose(w, trials * mu * (1 - mu) if family == "binomial" else mu)
    batch = canonical_loglik(y, trials, family, np.stack([eta, eta]))
    np.testing.assert_allclose(batch, ll2, rtol=1e-12)


def test_logit_rows_without_overflow():
    eta = np.array([-800.0, -3.0, 0.0, 2.5, 800.0])
    sp, mu, w = logit_rows(eta.copy())
    np.testing.assert_allclose(sp, np.logaddexp(0.0, eta))
    np.testing.assert_allclose(mu, special.expit(eta))
    np.testing.assert_allclose(w, special.expit(eta) * special.expit(-eta), atol=1e-300)


def test_canonical_loglik_extreme_eta_without_overflow():
    # |eta| of hundreds (separation, a wild importance-sampling draw): finite and exact
    eta = np.array([[-800.0, -3.0, 0.0, 2.5, 800.0], [700.0, -700.0, 40.0, -40.0, 1e-9]])
    y, trials = np.array([0.0, 1.0, 2.0, 3.0, 4.0]), np.array([1.0, 1.0, 3.0, 3.0, 4.0])
    want = eta @ y - np.logaddexp(0.0, eta) @ trials
    np.testing.assert_allclose(canonical_loglik(y, trials, "binomial", eta), want, rtol=1e-14)


def test_check_response_teaching_errors():
    d = pd.DataFrame({"y": [0, 2, 1, 0], "g": list("aabb"), "s": [1, 2, 0, 1], "f": [1, 0, 2, 0]})
    with pytest.raises(DataError, match="0/1 response"):
        check_response(build_model(d, "y ~ 1 + (1 | g)"), "binomial")
    y, n = check_response(build_model(d, "cbind(s, f) ~ 1 + (1 | g)"), "binomial")
    assert y.tolist() == [1, 2, 0, 1] and n.tolist() == [2, 2, 2, 1]
    d["c"] = [0.5, 1, 2, 3]
    with pytest.raises(DataError, match="counts"):
        check_response(build_model(d, "c ~ 1 + (1 | g)"), "poisson")
