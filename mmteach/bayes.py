"""Bayesian GLMM by nested Laplace approximation, with the book's brms priors.

The posterior of the random-effect SDs (and correlation) is computed on a grid; at each
grid point the fixed and random effects are integrated out by a Laplace approximation
(the idea of INLA, Rue, Martino & Chopin 2009), which importance sampling from a
multivariate t around it then corrects: that gives the marginal likelihood, and so Bayes
factors, and the slight skewness a Gaussian misses. The draws come from a fixed scrambled
Sobol sequence, so a fit is deterministic, and it is fast enough to rerun whenever a
student moves a slider; ``tests/r/reference_bayes.R`` checks it against brms (Stan) with
long chains and bridge sampling.

Priors are brms's with the choices of the book (Yu et al. 2022): slopes ~ normal(0, 10),
random-effect SDs ~ half-Cauchy(0, 5), the intercept of the centred predictors ~
student_t(3, 0, 2.5) (brms's default; for a Poisson model brms centres it on
log(median(y)) instead), correlations ~ lkj(1), i.e. uniform.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse, stats
from scipy.special import gammaincinv, gammaln, ndtri

from mmteach.errors import ModelError
from mmteach.families import canonical_loglik, canonical_mean_weight, check_family, check_response, log_normaliser
from mmteach.formula import Formula, parse_formula
from mmteach.model_frame import ModelFrame, build_model, check_group_levels
from mmteach.optim import backtrack, newton_minimize
from mmteach.results import BayesFactor, Coef, Correlation, FitResult, RanefValue, VarComp, r_data_prep

# Grid points whose log posterior is this far below the mode carry < 1e-4 of the mass
_DROP = {1: 9.0, 2: 7.0, 3: 6.0}
# Grid step (in standard deviations of the Gaussian fitted at the mode) by dimension; with
# importance sampling at each point the coarse 3-D grid still lands within 0.03 posterior
# SD of brms on the water-lick random-slope model (tests/test_bayes.py), in ~0.2 s
_STEP = {1: 0.2, 2: 0.6, 3: 1.0}
_MAX_THETA = 3
# Importance sampling: the effective draws a fit aims at are those of _DRAWS draws at every
# grid point (by dimension); they are shared out in proportion to the points' Laplace
# weights, at least _MIN_DRAWS a point (see _draw_counts). And the t proposal's df.
_DRAWS = {1: 256, 2: 128, 3: 64}
_MIN_DRAWS = 8
_NU = 8.0
_LOOKAHEAD = 8  # with one variance parameter: grid points fitted per side in one batch (_posterior)
_MIN_ESS = 1000  # fewer effective draws than this get a warning (water lick: ~5,400-5,700)


@dataclass(frozen=True)
class _Model:
    """The model on its internal scale: centred X, the random-effect design, the priors."""

    y: np.ndarray
    trials: np.ndarray
    family: str
    Xc: np.ndarray  # fixed effects, predictors centred when there is an intercept
    back: np.ndarray  # beta = back @ beta_c
    has_intercept: bool
    blocks: tuple  # (codes, Z (n, k), m) per random term
    const: float  # log-likelihood constant: log C(n, y) or -log y!
    b_sd: float | None  # None: no slope, so no slope prior
    sd_scale: float
    intercept_prior: tuple[float, float, float]
    design: _Design

    @property
    def n_theta(self) -> int:
        return sum(1 if b[1].shape[1] == 1 else 3 for b in self.blocks)

    @property
    def q(self) -> int:
        return sum(b[1].shape[1] * b[2] for b in self.blocks)


@dataclass(frozen=True)
class _Design:
    """The design before the random effects are scaled, U = [X_c, Z] (n, d), the same at
    every theta: at a grid point eta = D (beta_c, v) with D = U T, T = diag(I, L per level)
    (:func:`_scaling`), so a point keeps its T (d x d), not its D (n x d; a random slope's
    ~700 points held 50 MB of them).

    U'WU's upper-triangle non-zeros are ``A @ w``, at rows ``r``, columns ``s``, and
    D'WD = T' U'WU T. Why not ``(D' * w) @ D`` on the dense design: a row of D has p + k
    non-zeros of its d columns (water lick, random slope: 4 of 18), and the dense stacked
    product was ~40% of the grid's Newton steps. Why not
    :class:`mmteach.sparse_chol.RowPattern`: that one sums for a single weight vector into
    a sparse matrix; here d is small, the Hessians are dense, and a batch of weight vectors
    goes through one sparse-times-dense product.
    """

    U: np.ndarray  # (n, d)
    A: sparse.csr_matrix  # (number of non-zeros, n)
    r: np.ndarray
    s: np.ndarray


def _design(Xc: np.ndarray, blocks: Sequence[tuple]) -> _Design:
    n, p = Xc.shape
    cols, vals, off = [np.broadcast_to(np.arange(p), (n, p))], [Xc], p
    for codes, Z, m in blocks:
        k = Z.shape[1]
        cols.append(off + codes[:, None] * k + np.arange(k))
        vals.append(Z)
        off += k * m
    col, val = np.hstack(cols), np.hstack(vals)  # (n, p + sum k): each row's non-zeros, in order
    a, b = np.triu_indices(col.shape[1])
    keys = col[:, a] * off + col[:, b]  # a before b, so the column of a is the smaller one
    uniq, inv = np.unique(keys, return_inverse=True)
    A = sparse.coo_matrix(((val[:, a] * val[:, b]).ravel(), (inv.ravel(), np.repeat(np.arange(n), a.size))),
                          shape=(uniq.size, n)).tocsr()
    U = np.zeros((n, off))
    np.put_along_axis(U, col, val, axis=1)
    return _Design(U, A, uniq // off, uniq % off)


def _scaling(model: _Model, factors: list[np.ndarray]) -> np.ndarray:
    """T (..., d, d) with D = U T: the identity on the fixed effects, each level's factor L
    on its random effects; each factor is (k, k), or a stack (B, k, k) for a batch of thetas."""
    batch = factors[0].shape[:-2]
    p = model.Xc.shape[1]
    d = p + model.q
    T = np.zeros((*batch, d, d))
    T[..., np.arange(p), np.arange(p)] = 1.0
    off = p
    for (_codes, _Z, m), L in zip(model.blocks, factors, strict=True):
        k = L.shape[-1]
        g, i, j = np.ogrid[:m, :k, :k]
        T[..., off + g * k + i, off + g * k + j] = L[..., None, :, :]
        off += k * m
    return T


def _block_factors(model: _Model, theta: np.ndarray) -> list[np.ndarray]:
    """Cholesky factor L (k x k) of each random term's covariance, from theta; for a batch of
    thetas (B, n_theta), a stack (B, k, k) per term."""
    theta = np.asarray(theta, dtype=float)
    out, pos = [], 0
    for _codes, Z, _m in model.blocks:
        if Z.shape[1] == 1:
            out.append(np.exp(theta[..., pos])[..., None, None])
            pos += 1
        else:
            s0, s1, rho = np.exp(theta[..., pos]), np.exp(theta[..., pos + 1]), np.tanh(theta[..., pos + 2])
            L = np.zeros((*theta.shape[:-1], 2, 2))
            L[..., 0, 0] = s0
            L[..., 1, 0] = s1 * rho
            L[..., 1, 1] = s1 * np.sqrt(np.maximum(1 - rho * rho, 0.0))
            out.append(L)
            pos += 3
    return out


def _log_prior_theta(model: _Model, theta: np.ndarray) -> np.ndarray:
    """log p(theta) on the internal scale (log SDs, atanh correlations), Jacobians included;
    ``theta`` is (..., n_theta) and the result (...): the grid's points in one call."""
    theta = np.asarray(theta, dtype=float)
    s = model.sd_scale
    out = np.zeros(theta.shape[:-1])
    pos = 0
    for _codes, Z, _m in model.blocks:
        for _ in range(Z.shape[1]):
            t = theta[..., pos]
            out += math.log(2 / (math.pi * s)) - np.log1p((np.exp(t) / s) ** 2) + t
            pos += 1
        if Z.shape[1] == 2:
            rho = np.tanh(theta[..., pos])
            out += math.log(0.5) + np.log(np.maximum(1 - rho * rho, 1e-300))
            pos += 1
    return out


def _beta_prior(model: _Model, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """log p(beta_c) (summed over the last axis) with its gradient and the diagonal of minus
    its Hessian; ``beta`` is (p,) or a stack of draws (S, p)."""
    lp = np.zeros(beta.shape)
    grad = np.zeros(beta.shape)
    neg_hess = np.zeros(beta.shape)
    start = 0
    if model.has_intercept:
        nu, loc, sc = model.intercept_prior
        r = beta[..., 0] - loc
        lp[..., 0] = (gammaln((nu + 1) / 2) - gammaln(nu / 2) - 0.5 * math.log(nu * math.pi)
                      - math.log(sc) - (nu + 1) / 2 * np.log1p(r * r / (nu * sc * sc)))
        den = nu * sc * sc + r * r
        grad[..., 0] = -(nu + 1) * r / den
        neg_hess[..., 0] = (nu + 1) * (nu * sc * sc - r * r) / (den * den)
        start = 1
    if model.b_sd is not None:
        b = beta[..., start:]
        v = model.b_sd ** 2
        lp[..., start:] = -0.5 * b * b / v - 0.5 * math.log(2 * math.pi * v)
        grad[..., start:] = -b / v
        neg_hess[..., start:] = 1 / v
    return lp.sum(axis=-1), grad, neg_hess


@dataclass(frozen=True)
class _Conditional:
    """The Laplace approximation at one theta."""

    log_marginal: float  # log p(y | theta)
    mode: np.ndarray  # (beta_c, v)
    cov: np.ndarray  # inverse negative Hessian at the mode
    scaling: np.ndarray  # T (d, d): eta = U T (beta_c, v), see _Design


def _laplace_batch(model: _Model, thetas: np.ndarray, starts: np.ndarray) -> list[_Conditional]:
    """The Laplace approximation of p(y | theta) at each of the thetas (B, n_theta) at once,
    from the starts (B, d): maximise log p(y, beta_c, v | theta) by Newton's method and
    integrate beta_c and v out. The Newton steps of every point are stacked matrix products,
    so that a grid of hundreds of points (a random slope: three variance parameters) costs
    a few dozen numpy calls per Newton step instead of a few per point."""
    T = _scaling(model, _block_factors(model, thetas))  # (B, d, d)
    Tt = T.transpose(0, 2, 1)
    B, d, _ = T.shape
    p = model.Xc.shape[1]
    diag_b, diag_v = np.arange(p), np.arange(p, d)
    U = model.design

    def objective(w: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, ...]:
        Tr, Ttr = (T, Tt) if rows.size == B else (T[rows], Tt[rows])  # no copy when all rows
        eta = (Tr @ w[:, :, None])[..., 0] @ U.U.T  # D w = U (T w), one product for all points
        mu, wt, ll = canonical_mean_weight(model.y, model.trials, model.family, eta)
        lpb, gb, hb = _beta_prior(model, w[:, :p])
        v = w[:, p:]
        f = ll + model.const + lpb - 0.5 * np.einsum("bj,bj->b", v, v)
        grad = (Ttr @ ((model.y - mu) @ U.U)[:, :, None])[..., 0]  # D'(y - mu) = T' U'(y - mu)
        grad[:, :p] += gb
        grad[:, p:] -= v
        H = np.zeros((rows.size, d, d))
        upper = (U.A @ wt.T).T  # the non-zeros of U'WU, point by point
        H[:, U.r, U.s] = upper
        H[:, U.s, U.r] = upper
        H = Ttr @ H @ Tr
        H[:, diag_b, diag_b] += hb
        H[:, diag_v, diag_v] += 1.0
        return f, grad, H

    w = np.array(starts, dtype=float)
    f, grad, H = objective(w, np.arange(B))
    active = np.arange(B)  # the points still moving
    for _ in range(100):
        if active.size == 0:
            break
        step = np.linalg.solve(H[active], grad[active][..., None])[..., 0]
        w0, f0 = w[active].copy(), f[active].copy()
        t_used = np.zeros(active.size)

        def try_step(rows: np.ndarray, t: np.ndarray, w0: np.ndarray = w0, f0: np.ndarray = f0,
                     step: np.ndarray = step, active: np.ndarray = active,
                     t_used: np.ndarray = t_used) -> np.ndarray:
            cand = w0[rows] + t[:, None] * step[rows]
            fr, gr, Hr = objective(cand, active[rows])
            # a step below 1e-8 of Newton's is taken as it is: the mode to working precision
            ok = (fr >= f0[rows] - 1e-12) | (t < 1e-8)
            idx = active[rows[ok]]
            w[idx], f[idx], grad[idx], H[idx] = cand[ok], fr[ok], gr[ok], Hr[ok]
            t_used[rows[ok]] = t[ok]
            return ok

        backtrack(try_step, np.ones(active.size), halvings=60)
        moved = np.max(np.abs(t_used[:, None] * step), axis=1)
        converged = (np.abs(f[active] - f0) < 1e-11) & (moved < 1e-7)
        active = active[~converged]
    return _integrate(model, f, w, H, T)


def _integrate(model: _Model, f: np.ndarray, w: np.ndarray, H: np.ndarray, T: np.ndarray
               ) -> list[_Conditional]:
    """The Laplace approximations from the modes ``w`` (B, d), the log joint there ``f`` (B,)
    and its negative Hessian ``H`` (B, d, d): the end of both Newton loops."""
    B, d = w.shape
    p = model.Xc.shape[1]
    sign, logdet = np.linalg.slogdet(H)
    if np.any(sign <= 0):
        raise ModelError("The Bayesian fit failed: the posterior of the fixed and random "
                         "effects is not concave at its mode. Check for separation (an "
                         "outcome that is always 0 or 1 in a mouse or at some predictor "
                         "values).")
    q = d - p
    # log p(y|theta) = log joint at the mode + d/2 log(2 pi) - 1/2 log|H|; the N(0, I)
    # prior of v contributes -q/2 log(2 pi)
    log_marginal = f - 0.5 * q * math.log(2 * math.pi) + 0.5 * d * math.log(2 * math.pi) - 0.5 * logdet
    cov = np.linalg.inv(H)
    return [_Conditional(float(log_marginal[b]), w[b], cov[b], T[b]) for b in range(B)]


def _prepare(data: pd.DataFrame, formula: str | Formula, family: str, factors: Sequence[str],
             b_prior_sd: float | None, sd_prior_scale: float,
             intercept_prior: tuple[float, float, float] | None) -> tuple[_Model, ModelFrame, str]:
    fam, link = check_family(family, None)
    if link not in ("logit", "log"):
        raise ModelError("The Bayesian GLMM uses the logit link for binomial and the log link "
                         "for Poisson outcomes.")
    mf = build_model(data, formula, factors=factors)
    if not mf.blocks:
        raise ModelError("A Bayesian GLMM needs a random-effects term such as (1 | mouse).")
    check_group_levels(mf)
    y, trials = check_response(mf, fam)
    blocks = []
    for b in mf.blocks:
        Z = np.asarray(b.Z, dtype=float).reshape(mf.n_obs, -1)
        if Z.shape[1] > 2:
            raise ModelError(
                f"The Bayesian fit integrates over the random-effect SDs on a grid and takes "
                f"at most two random effects per grouping term; ({' + '.join(b.terms)} | "
                f"{b.group}) has {Z.shape[1]}. Use fewer random slopes.")
        blocks.append((np.asarray(b.codes, dtype=np.intp), Z, b.n_levels))
    X = np.asarray(mf.X, dtype=float)
    names = list(mf.fixed_names)
    has_intercept = bool(names and names[0] == "(Intercept)")
    back = np.eye(X.shape[1])
    Xc = X.copy()
    if has_intercept:
        # brms centres the predictors and puts the intercept prior on the centred intercept
        means = X[:, 1:].mean(axis=0)
        Xc[:, 1:] -= means
        back[0, 1:] = -means
    if X.shape[1] == int(has_intercept):
        b_prior_sd = None  # nothing to put it on: the fit does not depend on it
    elif b_prior_sd is None:
        raise ModelError(f"The model has slopes ({', '.join(names[int(has_intercept):])}): give "
                         "the SD of their normal prior (b_prior_sd).")
    const = float(log_normaliser(y, trials, fam))
    if intercept_prior is None:
        loc = 0.0
        if fam == "poisson":
            med = float(np.median(y))
            loc = round(math.log(med), 1) if med > 0 else 0.0
        intercept_prior = (3.0, loc, 2.5)
    model = _Model(y, trials, fam, Xc, back, has_intercept, tuple(blocks), const,
                   None if b_prior_sd is None else float(b_prior_sd), float(sd_prior_scale),
                   tuple(intercept_prior), _design(Xc, blocks))
    if model.n_theta > _MAX_THETA:
        raise ModelError(
            f"The Bayesian fit integrates over the random-effect SDs on a grid, which is "
            f"practical for up to {_MAX_THETA} variance parameters; this model has "
            f"{model.n_theta}. Use fewer random-effect terms.")
    return model, mf, link


@dataclass(frozen=True)
class _Posterior:
    thetas: np.ndarray  # (K, n_theta) grid points
    weights: np.ndarray  # (K,) normalised posterior weights of the grid points
    draws: np.ndarray  # (N, d) draws of (beta_c, v), each grid point's in one block
    draw_weights: np.ndarray  # (N,) normalised weights of the draws (all N sum to 1)
    starts: np.ndarray  # (K,) where each grid point's block of draws begins
    log_marginal: float  # log p(y)
    ess: float  # effective sample size of the weighted draws


@functools.lru_cache(maxsize=8)
def _draws(d: int, n: int) -> np.ndarray:
    """``n`` (a power of 2) multivariate-t(_NU) draws in ``d`` dimensions, standardised,
    from a scrambled Sobol sequence with a fixed seed: the same every run, more even than
    random draws."""
    u = stats.qmc.Sobol(d + 1, scramble=True, seed=20221).random_base2(int(math.log2(n)))
    u = np.clip(u, 1e-12, 1 - 1e-12)
    # the normal and chi-square quantiles by the special functions that scipy.stats' norm.ppf
    # and chi2.ppf call, without their argument checks: the same arrays, bit for bit, in ~60
    # instead of ~100 ms for a random slope's 65,536 draws, which each pool worker computes
    # the first time it meets a model of that size
    z = ndtri(u[:, :d])
    out = z / np.sqrt(2.0 * gammaincinv(_NU / 2, u[:, d]) / _NU)[:, None]
    out.flags.writeable = False  # cached and shared between fits
    return out


def _sampling_precision(model: _Model) -> type:
    """float32 for 0/1 outcomes, float64 otherwise (see :func:`_importance`): with counts or
    many trials per row the terms y * eta grow with y, and so would float32's rounding error."""
    return np.float32 if model.family == "binomial" and np.all(model.trials == 1) else np.float64


def _draw_counts(log_post: np.ndarray, per_point: int) -> np.ndarray:
    """Importance-sampling draws for each grid point, from the points' Laplace log
    posteriors: in proportion to their weights, rounded up to a power of 2, at least
    _MIN_DRAWS.

    ``per_point`` draws at every point give about ``per_point * K_eff`` effective draws,
    K_eff = 1 / sum(w^2) of the normalised weights w, but most of them at points that carry
    little of the posterior (a random slope's grid: ~700 points, K_eff ~80). Shared out in
    proportion to w, that many draws give as many effective draws (each draw's weight is then
    about the same), with a fraction of the likelihood evaluations: the optimal allocation
    of a stratified sample. Powers of 2, so that each point's block of the Sobol sequence,
    largest first, starts at a multiple of its length (the sequence's balanced blocks).
    """
    w = np.exp(log_post - log_post.max())
    w /= w.sum()
    want = per_point / float(np.sum(w**2)) * w
    return 2 ** np.maximum(np.ceil(np.log2(np.maximum(want, 1.0))), math.log2(_MIN_DRAWS)).astype(int)


def _importance(model: _Model, conds: Sequence[_Conditional], zt: np.ndarray,
                precision: type | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Correct the Laplace approximation at each grid point by importance sampling.

    At each point, draws (beta_c, v) from a multivariate t around the Laplace mode and
    curvature and weighs them by the exact joint density; ``zt`` (K, S, d) are each point's
    standardised draws. Returns the estimates of log p(y | theta) (K,), the draws (K, S, d)
    and their weights, normalised per point (K, S). The Gaussian approximation alone misses
    the slight skewness of a logistic posterior (about 0.1 posterior SD in the tails).
    Points go through in stacks: one numpy call per step for many points, not a few per
    point (a random slope's grid has ~700).
    """
    K, S, d = zt.shape
    p = model.Xc.shape[1]
    q = d - p
    mode = np.array([c.mode for c in conds])  # (K, d)
    C = np.linalg.cholesky(np.array([c.cov for c in conds]))  # (K, d, d)
    x = mode[:, None, :] + zt @ np.swapaxes(C, 1, 2)  # (K, S, d)
    ll = np.empty((K, S))
    # In single precision for 0/1 outcomes (``precision``, :func:`_sampling_precision`): eta
    # and log(1 + e^eta) for draws x rows at every grid point are most of a fit, and float32
    # halves the memory traffic and doubles the SIMD width (2.5x on this kernel; water lick's
    # fits 53 -> 43 ms with a random intercept, 209 -> 183 ms with a random slope). The error
    # is far below the sampling's own: on water lick the posterior means and SDs move by
    # < 1e-6 of a posterior SD and log p(y) by < 1e-6, while ~5,500 effective draws leave a
    # Monte Carlo error of ~1.4% of a posterior SD (tests/test_bayes.py compares the two).
    precision = precision or _sampling_precision(model)
    y, trials, U = (a.astype(precision) for a in (model.y, model.trials, model.design.U))
    # a few points at a time: eta of <= 256 KB (float32) stays in the cache through canonical_loglik's passes
    # (stacks of 32 MB made the fit slower, memory-bound)
    chunk = max(1, 2**16 // (S * len(model.y)))
    for a in range(0, K, chunk):
        scaled = x[a:a + chunk] @ np.array([c.scaling.T for c in conds[a:a + chunk]])  # (k, S, d): T x
        ll[a:a + chunk] = canonical_loglik(y, trials, model.family, scaled.astype(precision) @ U.T)
    lpb = _beta_prior(model, x[..., :p])[0]
    v = x[..., p:]
    log_joint = ll + model.const + lpb - 0.5 * np.einsum("ksj,ksj->ks", v, v) - 0.5 * q * math.log(
        2 * math.pi)
    log_q = (gammaln((_NU + d) / 2) - gammaln(_NU / 2) - 0.5 * d * math.log(_NU * math.pi)
             - np.log(np.diagonal(C, axis1=1, axis2=2)).sum(axis=1)[:, None]
             - (_NU + d) / 2 * np.log1p(np.einsum("ksj,ksj->ks", zt, zt) / _NU))
    log_r = log_joint - log_q
    top = log_r.max(axis=1, keepdims=True)
    r = np.exp(log_r - top)
    return top[:, 0] + np.log(r.mean(axis=1)), x, r / r.sum(axis=1, keepdims=True)


def _posterior(model: _Model, precision: type | None = None) -> _Posterior:
    """Mode and curvature of p(theta | y), then a grid over its bulk (``precision``: of
    the importance sampling's likelihood, see :func:`_importance`)."""
    nt = model.n_theta
    d = model.Xc.shape[1] + model.q
    cache: dict[tuple, _Conditional] = {}
    last = [np.zeros(d)]

    def keys_of(thetas: np.ndarray) -> list[tuple]:
        return list(map(tuple, np.round(thetas, 12).tolist()))

    def neg_log_post_many(thetas: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """neg_log_post at many thetas, their Laplace fits in one batch (from ``starts``)."""
        thetas = np.clip(thetas, -12, 6)
        fits = conditionals(thetas, starts)
        return -(np.array([c.log_marginal for c in fits]) + _log_prior_theta(model, thetas))

    def conditionals(thetas: np.ndarray, starts: np.ndarray | None = None) -> list[_Conditional]:
        """The Laplace fits at thetas, those not yet in the cache in one batch (from ``starts``,
        or the last mode)."""
        keys = keys_of(thetas)
        new = [i for i, k in enumerate(keys) if k not in cache]
        if new:
            at = np.tile(last[0], (len(thetas), 1)) if starts is None else starts
            for i, c in zip(new, _laplace_batch(model, thetas[new], at[new]), strict=True):
                cache[keys[i]] = c
        return [cache[k] for k in keys]

    start = np.zeros(nt)
    pos = 0
    for _codes, Z, _m in model.blocks:
        start[pos:pos + Z.shape[1]] = math.log(0.5)
        pos += 1 if Z.shape[1] == 1 else 3

    def objective(x: np.ndarray, keep: bool = False, rows: np.ndarray | None = None) -> np.ndarray:
        """neg_log_post at x (..., 1, nt): a finite-difference stencil's points in one batch,
        started from the mode at the search's current point."""
        flat = x.reshape(-1, nt)
        vals = neg_log_post_many(flat, np.tile(last[0], (len(flat), 1)))
        if keep:
            last[0] = conditionals(np.clip(flat[-1:], -12, 6))[0].mode
        return vals.reshape(x.shape[:-1])

    # Newton's method on finite differences, each stencil's Laplace fits in one batch: it
    # takes ~8 batches where Nelder-Mead took ~130 Laplace fits one after another (water
    # lick's random slope), and it stops at a tighter mode (gradient ~1e-7, not a simplex
    # of 1e-4). Steps of at most 1 (a factor e on an SD): a longer one can leap past the
    # mode onto the plateau that clipping theta at -12 makes.
    x, _f, _conv, _it = newton_minimize(objective, start[None], stacked=True, max_step=1.0)
    mode = np.clip(x[0], -12, 6)
    # curvature by central differences (the stencil's points in one batch)
    h = 1e-3
    at_mode = conditionals(mode[None])[0]  # fitted by the search's last step
    f0 = -(at_mode.log_marginal + float(_log_prior_theta(model, mode)))
    eye = np.eye(nt) * h
    stencil = [mode + sgn * eye[i] for i in range(nt) for sgn in (1, -1)]
    stencil += [mode + si * eye[i] + sj * eye[j] for i in range(nt) for j in range(i)
                for si, sj in ((1, 1), (1, -1), (-1, 1), (-1, -1))]
    at = iter(neg_log_post_many(np.array(stencil), np.tile(at_mode.mode, (len(stencil), 1))))
    hess = np.zeros((nt, nt))
    for i in range(nt):
        hess[i, i] = (next(at) - 2 * f0 + next(at)) / h**2
    for i in range(nt):
        for j in range(i):
            hess[i, j] = hess[j, i] = (next(at) - next(at) - next(at) + next(at)) / (4 * h * h)
    vals, vecs = np.linalg.eigh(hess)
    vals = np.maximum(vals, 0.05)  # a flat direction still gets a finite grid
    E = vecs / np.sqrt(vals)  # theta = mode + E z, z ~ N(0, I) near the mode
    step = _STEP[nt]

    def lattice(pts: Sequence[tuple]) -> np.ndarray:
        """theta at lattice points z = step * pt (one formula everywhere: the cache's keys)."""
        return np.clip(mode + (step * np.array(pts, dtype=float).reshape(-1, nt)) @ E.T, -12, 6)

    # flood fill over the lattice z = step * integer vector, from the mode outwards, a wave of
    # neighbours at a time (each wave's Laplace fits in one batch, each started from the mode
    # of the point it was reached from); which points are kept does not depend on the order
    origin = (0,) * nt
    values = {origin: -f0}
    # With one variance parameter a wave is two points, so the fill took ~30 batches of two
    # Laplace fits each, each batch's numpy calls costing as much as its arithmetic. Points
    # further out on the same side are fitted in the same batch (``ahead``) and taken when
    # the fill reaches them; those it never reaches are dropped, so the grid is the same.
    ahead: dict[tuple, float] = {}
    frontier = [origin]
    accepted = []
    while frontier:
        wave: dict[tuple, tuple] = {}
        for pt in frontier:
            if -values[pt] - f0 > _DROP[nt]:
                continue
            accepted.append(pt)
            for i in range(nt):
                for sgn in (-1, 1):
                    nb = list(pt)
                    nb[i] += sgn
                    nb = tuple(nb)
                    if nb not in values and nb not in wave and max(abs(c) for c in nb) * step < 12:
                        wave[nb] = pt
        if not wave:
            break
        pts_new = list(wave)
        missing = [nb for nb in pts_new if nb not in ahead]
        if missing:
            todo = [(nb, wave[nb]) for nb in missing]
            if nt == 1:  # and the next points on the same side, started from the same mode
                for nb in missing:
                    out = nb[0] - wave[nb][0]
                    for j in range(1, _LOOKAHEAD):
                        far = (nb[0] + j * out,)
                        if far not in values and far not in ahead and abs(far[0]) * step < 12:
                            todo.append((far, wave[nb]))
            thetas_new = lattice([pt for pt, _ in todo])
            starts = np.array([c.mode for c in conditionals(lattice([src for _, src in todo]))])
            for (pt, _), v in zip(todo, neg_log_post_many(thetas_new, starts), strict=True):
                ahead[pt] = -v
        for nb in pts_new:
            values[nb] = ahead.pop(nb)
        frontier = pts_new
    pts = sorted(set(values))
    sizes = _draw_counts(np.array([values[pt] for pt in pts]), _DRAWS[nt])
    order = np.argsort(-sizes, kind="stable")  # largest blocks first (see _draw_counts)
    pts, sizes = [pts[i] for i in order], sizes[order]
    thetas = lattice(pts)
    conds = conditionals(thetas)
    # consecutive blocks of one Sobol sequence: each point gets its own draws, so their
    # errors average out over the grid instead of repeating at every point
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    zt = _draws(d, 2 ** math.ceil(math.log2(int(sizes.sum()))))
    log_lik, draws, inner = np.empty(len(pts)), [], []
    for S in np.unique(sizes)[::-1]:  # the points with the same number of draws in one stack
        idx = np.flatnonzero(sizes == S)
        block = zt[starts[idx[0]]:starts[idx[-1]] + S].reshape(len(idx), S, d)
        log_lik[idx], x, r = _importance(model, [conds[i] for i in idx], block, precision)
        draws.append(x.reshape(-1, d))
        inner.append(r.ravel())
    draws, inner = np.concatenate(draws), np.concatenate(inner)
    logp = log_lik + _log_prior_theta(model, thetas)
    top = logp.max()
    weights = np.exp(logp - top)
    total = weights.sum()
    log_ml = top + math.log(total) + nt * math.log(step) + float(np.sum(np.log(1 / np.sqrt(vals))))
    weights /= total
    draw_weights = np.repeat(weights, sizes) * inner
    ess = 1.0 / float(np.sum(draw_weights**2))
    return _Posterior(thetas, weights, draws, draw_weights, starts, log_ml, ess)


def _weighted_quantile(x: np.ndarray, w: np.ndarray, q: float) -> float:
    order = np.argsort(x)
    cdf = np.cumsum(w[order]) - 0.5 * w[order]
    return float(np.interp(q, cdf, x[order]))


def _r_call(mf: ModelFrame, family: str, factors: Sequence[str], model: _Model) -> str:
    fam = "bernoulli()" if family == "binomial" and np.all(model.trials == 1) else (
        "binomial()" if family == "binomial" else "poisson()")
    nu, loc, sc = model.intercept_prior
    priors = [f"prior(normal(0, {model.b_sd:g}), class = b)"] if model.b_sd is not None else []
    priors.append(f"prior(cauchy(0, {model.sd_scale:g}), class = sd)")
    if model.has_intercept:
        priors.append(f"prior(student_t({nu:g}, {loc:g}, {sc:g}), class = Intercept)")
    formula = mf.formula.to_r()
    return (r_data_prep("d", factors)
            + f"fit <- brms::brm({formula}, data = d, family = {fam},\n"
            + "                 prior = c(" + ",\n                           ".join(priors) + "),\n"
            + "                 chains = 4, iter = 4000, save_pars = brms::save_pars(all = TRUE))\n"
            + "summary(fit)")


def fit_bayes_glmm(
    data: pd.DataFrame,
    formula: str | Formula,
    *,
    family: str = "binomial",
    factors: Sequence[str] = (),
    b_prior_sd: float | None = 10.0,
    sd_prior_scale: float = 5.0,
    intercept_prior: tuple[float, float, float] | None = None,
) -> FitResult:
    """Bayesian GLMM (logistic or Poisson) with brms's priors, by nested Laplace approximation.

    Parameters
    ----------
    data : pandas.DataFrame
    formula : str
        lme4 syntax with at least one random-effects term and at most two random effects
        per grouping term (e.g. ``(1 + dff | mouseID)``), three variance parameters in all.
    family : {"binomial", "poisson"}
        Logit and log link. A binomial response is 0/1 or ``cbind(successes, failures)``.
    factors : columns to treat as categorical.
    b_prior_sd : SD of the normal prior on each slope (the book: 10). A model without
        slopes does not use it (its fit is the same for any value, and None is allowed):
        see :func:`slope_prior_sd`.
    sd_prior_scale : scale of the half-Cauchy prior on each random-effect SD (the book: 5).
    intercept_prior : ``(df, location, scale)`` of the Student-t prior on the intercept of
        the centred predictors; brms's default when None: ``(3, 0, 2.5)``, and for Poisson
        ``(3, round(log(median(y)), 1), 2.5)``.

    Returns
    -------
    FitResult
        ``estimate`` posterior mean, ``std_error`` posterior SD, ``conf_low``/``conf_high``
        the equal-tailed 95% credible interval (as brms's l-95% CI / u-95% CI); no
        p-values. Variance components give the posterior mean of each SD;
        ``extras["sd_summary"]`` their 95% intervals and ``extras["log_marginal_likelihood"]``
        log p(y) for Bayes factors.

    Examples
    --------
    >>> from mmteach.datasets import load_dataset
    >>> fit = fit_bayes_glmm(load_dataset("water_lick"), "lick ~ dff + (1 | mouseID)")
    >>> row = fit.tidy().set_index("term").loc["dff"]
    >>> print(f"{row.estimate:.3f} [{row.conf_low:.3f}, {row.conf_high:.3f}]")
    0.062 [0.024, 0.101]
    """
    model, mf, _link = _prepare(data, formula, family, factors, b_prior_sd, sd_prior_scale,
                                intercept_prior)
    post = _posterior(model)
    p = model.Xc.shape[1]
    w = post.weights
    dw = post.draw_weights
    beta = post.draws[:, :p] @ model.back.T  # (N, p)
    mean = dw @ beta
    var = dw @ (beta - mean) ** 2
    coefs = []
    for j, name in enumerate(mf.fixed_names):
        lo = _weighted_quantile(beta[:, j], dw, 0.025)
        hi = _weighted_quantile(beta[:, j], dw, 0.975)
        coefs.append(Coef(name, float(mean[j]), float(math.sqrt(max(var[j], 0.0))), math.nan,
                          math.nan, math.nan, lo, hi))
    # random-effect SDs, correlations and posterior means of the random effects
    names = mf.varcorr_group_names()
    factors_k = [_block_factors(model, t) for t in post.thetas]
    vcs, cors, sd_rows, ranefs = [], [], [], []
    col = p
    for bi, b in enumerate(mf.blocks):
        k = len(b.terms)
        Ls = np.array([f[bi] for f in factors_k])  # (K, k, k)
        cov = Ls @ np.swapaxes(Ls, 1, 2)
        for j, term in enumerate(b.terms):
            sd_j = np.sqrt(cov[:, j, j])
            sd_mean = float(w @ sd_j)
            vcs.append(VarComp(names[bi], term, sd_mean**2, sd_mean))
            sd_rows.append({"group": names[bi], "term": term, "mean": sd_mean,
                            "conf_low": _weighted_quantile(sd_j, w, 0.025),
                            "conf_high": _weighted_quantile(sd_j, w, 0.975)})
        if k == 2:
            rho = cov[:, 0, 1] / np.sqrt(cov[:, 0, 0] * cov[:, 1, 1])
            cors.append(Correlation(names[bi], b.terms[0], b.terms[1], float(w @ rho)))
        m = b.n_levels
        v = post.draws[:, col:col + k * m].reshape(-1, m, k)  # (N, m, k)
        # u = L v draw by draw, averaged: average v at each grid point first, then scale by
        # that point's L (the same sum in a cheaper order: 5% of the fit the other way)
        v_mean = np.add.reduceat(dw[:, None, None] * v, post.starts, axis=0)  # (K, m, k)
        u_mean = np.einsum("kab,kmb->ma", Ls, v_mean)
        for li, level in enumerate(b.levels):
            for j, term in enumerate(b.terms):
                ranefs.append(RanefValue(b.group, str(level), term, float(u_mean[li, j])))
        col += k * m
    msgs = [
        "Posterior by nested Laplace approximation with importance sampling (a grid over "
        "the random-effect SDs, the effects integrated out at each point), checked against "
        "brms/Stan: estimates are posterior means, SEs posterior SDs, intervals 95% credible "
        "intervals. A Bayesian fit gives no p-value; read the interval.",
        "Priors (the book's brms choices): "
        + ("" if model.b_sd is None else f"slopes normal(0, {model.b_sd:g}), ")
        + f"random-effect SDs half-Cauchy(0, {model.sd_scale:g}), intercept of the centred predictors "
        f"student_t({model.intercept_prior[0]:g}, {model.intercept_prior[1]:g}, "
        f"{model.intercept_prior[2]:g}).",
    ]
    if post.ess < _MIN_ESS:
        msgs.append(f"The importance sampling kept only {post.ess:.0f} effective draws: the "
                    "posterior is far from the approximation (often a sign of separation or "
                    "very little data per group). Treat the intervals as rough.")
    return FitResult(
        model="bayes", formula=mf.formula.text, method="Bayes (nested Laplace)",
        df_method="none", coefficients=tuple(coefs), n_obs=mf.n_obs, varcomps=tuple(vcs),
        correlations=tuple(cors), groups=tuple(mf.group_sizes().items()), messages=tuple(msgs),
        r_call=_r_call(mf, model.family, factors, model), ranef_values=tuple(ranefs),
        extras={"sd_summary": pd.DataFrame(sd_rows),
                "log_marginal_likelihood": post.log_marginal,
                "priors": (model.b_sd, model.sd_scale, model.intercept_prior),
                "grid_points": len(post.thetas), "effective_draws": post.ess},
    )


def slope_prior_sd(formula: str | Formula, b_prior_sd: float) -> float | None:
    """The ``b_prior_sd`` a fit of ``formula`` uses: the given one, or None when its fixed part
    is the intercept alone (no slope to put a prior on).

    Passing this to :func:`fit_bayes_glmm` gives the same fit for every slope prior, so a
    cache keyed by the arguments fits such a model once, not once per prior.

    Examples
    --------
    >>> slope_prior_sd("lick ~ dff + (1 | mouseID)", 0.5), slope_prior_sd("lick ~ 1 + (1 | mouseID)", 0.5)
    (0.5, None)
    """
    parsed = formula if isinstance(formula, Formula) else parse_formula(formula)
    return b_prior_sd if parsed.fixed else None


def bayes_factor(fit: FitResult, reduced: FitResult) -> BayesFactor:
    """Bayes factor of one :func:`fit_bayes_glmm` fit against another, as
    ``brms::bayes_factor(fit1, fit0)`` computes it (there by bridge sampling).

    Both fits must use the same rows and priors. BF10 > 1 favours ``fit``. It depends on
    the prior of the extra slopes: a wide prior (normal(0, 10) for an effect of size 0.06)
    spreads the bigger model's prior mass over implausibly large effects and so penalises
    it, however clear the effect (Lindley's paradox).

    Examples
    --------
    >>> from mmteach.datasets import load_dataset
    >>> d = load_dataset("water_lick")
    >>> bf = bayes_factor(fit_bayes_glmm(d, "lick ~ dff + (1 | mouseID)"),
    ...                   fit_bayes_glmm(d, "lick ~ 1 + (1 | mouseID)"))
    >>> round(bf.bf10, 2)
    0.32
    """
    for f in (fit, reduced):
        if f.model != "bayes" or "log_marginal_likelihood" not in f.extras:
            raise ModelError("A Bayes factor compares two fits of fit_bayes_glmm.")
    if fit.n_obs != reduced.n_obs:
        raise ModelError("The two models use different rows (missing values in a column only "
                         "one of them uses); a Bayes factor needs the same data.")
    (b1, *shared1), (b0, *shared0) = fit.extras["priors"], reduced.extras["priors"]
    # a model without slopes has no slope prior: only the priors of both models must agree
    if shared1 != shared0 or None not in (b1, b0) and b1 != b0:
        raise ModelError("The two fits use different priors; a Bayes factor needs the same "
                         "priors on the parameters they share.")
    r_code = (fit.r_call.replace("fit <-", "fit1 <-").replace("\nsummary(fit)", "\n")
              + reduced.r_call.replace("fit <-", "fit0 <-").replace("\nsummary(fit)", "\n")
              + "brms::bayes_factor(fit1, fit0)")
    return BayesFactor(formula=fit.formula, reduced=reduced.formula,
                       log_ml1=fit.extras["log_marginal_likelihood"],
                       log_ml0=reduced.extras["log_marginal_likelihood"], r_call=r_code)
