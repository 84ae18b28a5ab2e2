"""GLM families and links: names, R spellings, means, variances, weights, log-likelihoods and response checks.

Two families are offered, as in the teaching examples: ``binomial`` (0/1 outcomes or
successes out of trials; logit or probit link) and ``poisson`` (counts; log link). Every
GLMM path (:mod:`mmteach.glmm_laplace`, :mod:`mmteach.glmm_scalar`, :mod:`mmteach.bayes`)
and the marginal models (:mod:`mmteach.marginal`) take their family arithmetic from here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy.special import expit, gammaln, ndtr, xlogy

from mmteach.errors import DataError, ModelError

if TYPE_CHECKING:
    from mmteach.model_frame import ModelFrame

EPS = np.finfo(float).eps
_PROBIT_THRESH = 8.125890664701906  # -qnorm(.Machine$double.eps), R's probit clamp
_LOGIT_THRESH = 36.04365338911715  # -log(.Machine$double.eps)
ETA_MAX_LOG = 700.0  # exp overflow guard for the log link

FAMILY_LINKS = {"binomial": ("logit", "probit"), "poisson": ("log",)}


def check_family(family: str, link: str | None) -> tuple[str, str]:
    """Return ``(family, link)`` with lme4's default link filled in.

    Examples
    --------
    >>> check_family("binomial", None)
    ('binomial', 'logit')
    """
    fam = str(family).lower()
    if fam not in FAMILY_LINKS:
        raise ModelError(
            f"The family '{family}' is not available: mmteach fits GLMMs for 'binomial' "
            "(0/1 outcomes or successes out of trials) and 'poisson' (counts)."
        )
    lk = FAMILY_LINKS[fam][0] if link is None else str(link).lower()
    if lk not in FAMILY_LINKS[fam]:
        raise ModelError(
            f"The link '{link}' cannot be used with the {fam} family here; choose one of "
            f"{', '.join(FAMILY_LINKS[fam])}."
        )
    return fam, lk


def family_r(family: str, link: str) -> str:
    """The family as R code: ``binomial`` or ``binomial(link = "probit")``.

    Examples
    --------
    >>> family_r("binomial", "probit")
    'binomial(link = "probit")'
    """
    default = FAMILY_LINKS[family][0]
    return family if link == default else f'{family}(link = "{link}")'


def mu_eta(eta: np.ndarray, link: str) -> tuple[np.ndarray, np.ndarray]:
    """Mean and d mu / d eta, clamped as R's family objects clamp them.

    Examples
    --------
    >>> [float(v) for v in mu_eta(np.array(0.0), "logit")]
    [0.5, 0.25]
    """
    if link == "logit":
        e = np.clip(eta, -_LOGIT_THRESH, _LOGIT_THRESH)
        mu = expit(e)
        return mu, np.maximum(mu * (1.0 - mu), EPS)
    if link == "probit":
        e = np.clip(eta, -_PROBIT_THRESH, _PROBIT_THRESH)
        mu = ndtr(e)
        return mu, np.maximum(np.exp(-0.5 * eta * eta) / math.sqrt(2 * math.pi), EPS)
    mu = np.maximum(np.exp(np.minimum(eta, ETA_MAX_LOG)), EPS)  # log link; no overflow
    return mu, mu


def log_normaliser(y: np.ndarray, trials: np.ndarray, family: str) -> np.ndarray:
    """Sum over the last axis of the terms of log f(y) free of the mean: log C(n, y) or -log y!.

    Examples
    --------
    >>> round(float(log_normaliser(np.array([1.0, 2.0]), np.array([3.0, 2.0]), "binomial")), 6)
    1.098612
    """
    if family == "binomial":
        return np.sum(gammaln(trials + 1) - gammaln(y + 1) - gammaln(trials - y + 1), axis=-1)
    return np.sum(-gammaln(y + 1), axis=-1)


def canonical_mean_weight(y: np.ndarray, trials: np.ndarray, family: str, eta: np.ndarray
                          ) -> tuple[np.ndarray, np.ndarray, float | np.ndarray]:
    """Expected response, Fisher weight and log-likelihood (without the normaliser) under the
    canonical link (logit for binomial, log for Poisson).

    Examples
    --------
    >>> mu, w, ll = canonical_mean_weight(np.array([1.0]), np.array([1.0]), "binomial", np.array([0.0]))
    >>> float(mu[0]), float(w[0]), round(ll, 6)
    (0.5, 0.25, -0.693147)
    """
    ll = canonical_loglik(y, trials, family, eta)
    ll = float(ll) if np.ndim(ll) == 0 else ll  # one value per row of a stack of eta (B, n)
    if family == "binomial":
        p = expit(eta)
        return trials * p, trials * p * (1 - p), ll
    mu = np.exp(np.minimum(eta, ETA_MAX_LOG))
    return mu, mu, ll


def canonical_loglik(y: np.ndarray, trials: np.ndarray, family: str, eta: np.ndarray) -> np.ndarray:
    """Log-likelihood without the normaliser under the canonical link, for each row of ``eta`` (..., n).

    Examples
    --------
    >>> canonical_loglik(np.array([2.0]), np.ones(1), "poisson", np.zeros((2, 1))).tolist()
    [-1.0, -1.0]
    """
    if family == "binomial":
        # log(1 + e^eta) = (eta + |eta|) / 2 + log(1 + e^-|eta|), without overflow; numpy's
        # logaddexp(0, eta) gives the same to rounding but is ~5x slower, and this line is
        # most of the Bayesian GLMM's importance sampling (draws x rows, at every grid point).
        # The linear part goes through two matrix-vector products, so only one temporary the
        # size of eta is made (a second one, max(eta, 0), had doubled the time: fresh pages).
        # log(1 + e) rather than log1p(e): with e in (0, 1] both are within 2.3e-16 of the
        # exact value (1 + e is rounded once), and numpy's log is twice as fast as its log1p
        a = np.abs(eta)
        linear = eta @ (y - 0.5 * trials) - 0.5 * (a @ trials)
        np.negative(a, out=a)
        np.exp(a, out=a)
        a += 1.0
        np.log(a, out=a)
        return linear - a @ trials
    return eta @ y - np.exp(np.minimum(eta, ETA_MAX_LOG)).sum(axis=-1)


def logit_rows(eta: np.ndarray, need_sp: bool = True):
    """``log(1 + e^eta)``, ``mu`` and ``mu (1 - mu)`` without overflow, from one exp (in place).

    With ``e = exp(-|eta|)`` and ``p = 1 / (1 + e)``: ``mu (1 - mu) = e p^2`` and ``mu`` is
    ``1 - e p`` (eta >= 0) or ``e p`` (eta < 0), i.e. ``0.5 + sign(eta) (0.5 - e p)``. This
    is the hot loop of the scalar GLMM path, hence the in-place arithmetic.

    Examples
    --------
    >>> sp, mu, w = logit_rows(np.array([0.0, 800.0]))
    >>> sp.round(6).tolist(), mu.tolist(), w.tolist()
    ([0.693147, 800.0], [0.5, 1.0], [0.25, 0.0])
    """
    e = np.abs(eta)
    np.negative(e, out=e)
    np.exp(e, out=e)
    d = e + 1.0
    sp = None
    if need_sp:
        sp = np.log(d)
        sp += np.maximum(eta, 0.0)
    np.divide(1.0, d, out=d)
    e *= d  # e p
    w = e * d
    mu = np.subtract(0.5, e, out=d)
    np.copysign(mu, eta, out=mu)
    mu += 0.5
    return sp, mu, w


@dataclass(frozen=True)
class Response:
    """A (batch of) response vector(s) with the constants the deviance needs.

    ``y`` are successes (binomial) or counts (Poisson), shape ``(..., n)``.

    Examples
    --------
    >>> r = Response.make(np.array([0.0, 1.0]), np.ones(2), "binomial")
    >>> r.bernoulli, r.loglik_rows(np.array([0.5, 0.5])).round(4).tolist()
    (True, [-0.6931, -0.6931])
    """

    y: np.ndarray
    trials: np.ndarray
    family: str
    const: np.ndarray  # sum over rows of log C(n, y) or -log y!
    llsat: np.ndarray  # per row: log-likelihood of the saturated model (without const)
    bernoulli: bool = False

    @classmethod
    def make(cls, y: np.ndarray, trials: np.ndarray, family: str) -> Response:
        y = np.asarray(y, dtype=float)
        n = np.asarray(trials, dtype=float)
        const = log_normaliser(y, n, family)
        if family == "binomial":
            p = y / n
            llsat = xlogy(y, p) + xlogy(n - y, 1 - p)
        else:
            llsat = xlogy(y, y) - y
        bern = family == "binomial" and bool(np.all(n == 1))
        return cls(y, n, family, const, llsat, bern)

    def take(self, idx: np.ndarray) -> Response:
        """The responses of batch rows ``idx``."""
        if self.y.ndim == 1:
            return self
        return Response(self.y[idx], self.trials[idx], self.family, self.const[idx],
                        self.llsat[idx], self.bernoulli)

    def loglik_rows(self, mu: np.ndarray) -> np.ndarray:
        """Per-row log f(y | mu) without the constant."""
        if self.family == "binomial":
            m = np.clip(mu, EPS, 1 - EPS)
            if self.bernoulli:
                # one log per row instead of two: this is the bootstrap's hot loop
                return np.log(np.where(self.y > 0.5, m, 1 - m))
            return self.y * np.log(m) + (self.trials - self.y) * np.log1p(-m)
        return self.y * np.log(mu) - mu

    def score_weight(self, mu: np.ndarray, dmu: np.ndarray,
                     canonical: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Working score ``r`` (d loglik / d eta, Fisher form) and Fisher weight ``w``."""
        if canonical:  # logit or log link: dmu = variance, so no divisions are needed
            return self.y - self.trials * mu, self.trials * dmu
        if self.family == "binomial":
            var = np.maximum(mu * (1 - mu), EPS)
            r = (self.y - self.trials * mu) * dmu / var
            w = self.trials * dmu * dmu / var
        else:
            r = (self.y - mu) * dmu / mu
            w = dmu * dmu / mu
        return r, w


def check_response(mf: ModelFrame, family: str) -> tuple[np.ndarray, np.ndarray]:
    """Validate the response for the family and return ``(y, trials)``.

    Examples
    --------
    >>> import pandas as pd
    >>> from mmteach.model_frame import build_model
    >>> d = pd.DataFrame({"y": [0, 1, 1, 0], "g": list("aabb")})
    >>> mf = build_model(d, "y ~ 1 + (1 | g)")
    >>> check_response(mf, "binomial")[0].tolist()
    [0.0, 1.0, 1.0, 0.0]
    """
    y = np.asarray(mf.y, dtype=float)
    name = mf.formula.response.label
    if not np.all(np.isfinite(y)):
        raise DataError(f"The response {name} has missing or infinite values; remove them.")
    if family == "binomial":
        if mf.trials is None:
            bad = ~np.isin(y, (0.0, 1.0))
            if bad.any():
                raise DataError(
                    f"A binomial GLMM needs a 0/1 response, but {name} has values such as "
                    f"{y[bad][0]:g}. Code the outcome as 1 (success, e.g. a correct lick) and "
                    "0 (failure), or give successes and failures as cbind(successes, "
                    "failures)."
                )
            return y, np.ones_like(y)
        n = np.asarray(mf.trials, dtype=float)
        if np.any(y < 0) or np.any(n - y < 0) or np.any(y != np.round(y)) or np.any(
                n != np.round(n)):
            raise DataError(
                f"In {name} successes and failures must be non-negative whole numbers; "
                "check that the second column is failures (or total - successes)."
            )
        if np.any(n == 0):
            raise DataError(
                f"Some rows of {name} have zero trials; they carry no information, drop them."
            )
        return y, n
    if np.any(y < 0) or np.any(y != np.round(y)):
        raise DataError(
            f"A Poisson GLMM models counts, but {name} has negative or non-integer values. "
            "Use counts (0, 1, 2, ...) or choose another model (a linear mixed model for "
            "continuous outcomes)."
        )
    return y, np.ones_like(y)
