"""Batch REML fitting for Monte Carlo studies: many replicates that share one design.

A general mixed-model fitter works on the full ``n x p`` model matrix and pays for it on every
call.  In a simulation study the replicates share their design, and for the two models used
here every quantity REML needs comes from a handful of per-group sums:

* random intercept and slope with ``Z = X`` (``lmer(Y ~ 1 + X + (1 + X | class))``): per class
  ``A_i = X_i'X_i`` (2x2), ``c_i = X_i'y_i`` (2) and ``s_i = y_i'y_i``.  With the relative
  covariance ``Lambda Lambda'`` (``Lambda`` lower triangular, lme4's ``theta``), Woodbury gives
  ``X_i'V_i^-1 X_i = A_i - A_i Lambda M_i^-1 Lambda' A_i`` with ``M_i = I + Lambda' A_i Lambda``
  (2x2), so the profiled REML deviance costs O(K) 2x2 operations and is evaluated for all
  replicates at once in numpy.  ``theta`` (3 numbers) is optimised for all replicates together
  by a vectorised Newton method with finite-difference derivatives and a backtracking line
  search.
* random intercept with mice nested in conditions (``lmer(y ~ condition + (1 | mouse))``): per
  mouse ``n_j``, ``S_j = sum y`` and ``Q_j = sum y^2``; one variance ratio ``u = theta^2`` is
  optimised by a projected Newton method with exact derivatives, and the condition effect is
  tested with lmerTest's Satterthwaite F test (same parametrisation ``(theta, sigma)``).

The deviance is lme4's: ``log|L|^2 + log|R_X|^2 + (N - p) (1 + log(2 pi r^2 / (N - p)))``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
from scipy import stats

from mmteach.dfmethods import fstat_ddf
from mmteach.errors import DataError
from mmteach.optim import backtrack, fd_derivatives, newton_step

__all__ = [
    "SlopeBatch",
    "InterceptBatch",
    "slope_stats",
    "slope_deviance",
    "fit_slope_batch",
    "slope_true_vcov",
    "intercept_stats",
    "fit_intercept_batch",
    "pooled_f_test",
    "means_anova",
]

_LOG_2PI = float(np.log(2.0 * np.pi))


# =========================================================================================
# Random intercept and slope, Z = X (two columns: intercept and one predictor)
# =========================================================================================
@dataclass(frozen=True, eq=False)
class SlopeBatch:
    """REML fits of ``Y ~ 1 + X + (1 + X | class)`` for R replicates.

    Arrays have the replicates first: ``beta`` and ``se`` are (R, 2) in the order
    ``(Intercept), X``; ``theta`` is (R, 3) as lme4's ``getME(fit, "theta")``.
    """

    beta: np.ndarray
    se: np.ndarray
    vcov: np.ndarray  # (R, 2, 2)
    theta: np.ndarray
    sigma: np.ndarray
    sd_intercept: np.ndarray
    sd_slope: np.ndarray
    corr: np.ndarray  # NaN where a standard deviation is zero
    reml_criterion: np.ndarray
    converged: np.ndarray  # bool
    singular: np.ndarray  # bool, lme4's isSingular(tol = 1e-4) on theta
    iterations: int


def slope_stats(
    x: np.ndarray, y: np.ndarray, groups: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-group sufficient statistics of the random intercept and slope model.

    Parameters
    ----------
    x, y : array (n,)
        Predictor and response.
    groups : array (n,)
        Group labels (any hashable values); groups are ordered as ``np.unique`` sorts them.

    Returns
    -------
    A : array (K, 2, 2)
        ``X_i'X_i`` with ``X_i = [1, x]``.
    c : array (K, 2)
        ``X_i'y_i``.
    s : array (K,)
        ``y_i'y_i``.

    Examples
    --------
    >>> A, c, s = slope_stats(np.array([1., 2, 3, 4]), np.array([1., 2, 2, 5]),
    ...                       np.array([0, 0, 1, 1]))
    >>> A[1].tolist(), c[1].tolist(), float(s[1])
    ([[2.0, 7.0], [7.0, 25.0]], [7.0, 26.0], 29.0)
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    _, code = np.unique(np.asarray(groups), return_inverse=True)
    k = int(code.max()) + 1 if code.size else 0
    if x.shape != y.shape or x.shape != code.shape or k == 0:
        raise DataError(
            "x, y and groups must be non-empty arrays of the same length: each row is one "
            "observation with its predictor, response and group label."
        )
    cnt = np.bincount(code, minlength=k).astype(float)
    sx = np.bincount(code, x, k)
    sxx = np.bincount(code, x * x, k)
    A = np.stack([np.stack([cnt, sx], -1), np.stack([sx, sxx], -1)], -2)
    c = np.stack([np.bincount(code, y, k), np.bincount(code, x * y, k)], -1)
    s = np.bincount(code, y * y, k)
    return A, c, s


def _slope_core(theta, A, c, s):
    """Sums over classes for ``theta`` (..., 3): logdet M, P = X'H^-1X, q = X'H^-1y, y'H^-1y.

    Broadcasting: ``theta[..., None]`` meets the class axis of ``A`` (K,2,2) or (R,K,2,2)
    and of ``c`` (R,K,2), ``s`` (R,K).  Everything is written out for 2x2 blocks because
    elementwise numpy on (points, replicates, classes) arrays beats batched linalg here.
    """
    l1, l2, l3 = (theta[..., i, None] for i in range(3))
    a, b, d = A[..., 0, 0], A[..., 0, 1], A[..., 1, 1]
    c1, c2 = c[..., 0], c[..., 1]
    g1x = a * l1 + b * l2  # first column of A Lambda
    g1y = b * l1 + d * l2
    g2x = b * l3  # second column of A Lambda
    g2y = d * l3
    m11 = 1.0 + l1 * g1x + l2 * g1y  # M = I + Lambda' A Lambda
    m12 = l3 * g1y
    m22 = 1.0 + l3 * g2y
    det = m11 * m22 - m12 * m12
    i11, i12, i22 = m22 / det, -m12 / det, m11 / det
    wx1 = g1x * i11 + g2x * i12  # rows of (A Lambda) M^-1
    wx2 = g1x * i12 + g2x * i22
    wy1 = g1y * i11 + g2y * i12
    wy2 = g1y * i12 + g2y * i22
    v1 = l1 * c1 + l2 * c2  # Lambda' c
    v2 = l3 * c2
    p11 = (a - (wx1 * g1x + wx2 * g2x)).sum(-1)
    p12 = (b - (wx1 * g1y + wx2 * g2y)).sum(-1)
    p22 = (d - (wy1 * g1y + wy2 * g2y)).sum(-1)
    q1 = (c1 - (wx1 * v1 + wx2 * v2)).sum(-1)
    q2 = (c2 - (wy1 * v1 + wy2 * v2)).sum(-1)
    yy = (s - (i11 * v1 * v1 + 2.0 * i12 * v1 * v2 + i22 * v2 * v2)).sum(-1)
    logdet_m = np.log(det).sum(-1)
    return logdet_m, p11, p12, p22, q1, q2, yy


def _slope_finish(core, n_obs):
    """Deviance, beta, r^2 and P from the class sums (p = 2 fixed effects)."""
    logdet_m, p11, p12, p22, q1, q2, yy = core
    detp = p11 * p22 - p12 * p12
    b1 = (p22 * q1 - p12 * q2) / detp
    b2 = (p11 * q2 - p12 * q1) / detp
    r2 = yy - (b1 * q1 + b2 * q2)
    nu = n_obs - 2
    # Guard r2 <= 0 (perfect fit) so the optimiser sees +inf instead of NaN.
    with np.errstate(divide="ignore", invalid="ignore"):
        dev = logdet_m + np.log(detp) + nu * (1.0 + _LOG_2PI + np.log(r2 / nu))
    dev = np.where(np.isfinite(dev), dev, np.inf)
    return dev, b1, b2, r2, detp, p11, p12, p22


def slope_deviance(theta: np.ndarray, A: np.ndarray, c: np.ndarray, s: np.ndarray,
                   n_obs: int) -> np.ndarray:
    """Profiled REML deviance of ``Y ~ 1 + X + (1 + X | class)`` (lme4's ``REMLcrit``).

    Parameters
    ----------
    theta : array (..., R, 3)
        Relative Cholesky factor ``(L11, L21, L22)`` of the random-effect covariance over
        ``sigma^2``, in lme4's order.
    A, c, s : arrays
        Class sums from :func:`slope_stats`, ``A`` (K, 2, 2) or (R, K, 2, 2), ``c`` (R, K, 2),
        ``s`` (R, K).
    n_obs : int
        Total number of observations N.

    Returns
    -------
    array (..., R)

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = np.tile(np.arange(1., 6.), 4); g = np.repeat(np.arange(4), 5)
    >>> y = 1 + 2 * x + rng.normal(size=20) + rng.normal(size=4)[g]
    >>> A, c, s = slope_stats(x, y, g)
    >>> dev = slope_deviance(np.array([[1.0, 0.0, 0.5]]), A, c[None], s[None], 20)
    >>> dev.shape
    (1,)
    """
    return _slope_finish(_slope_core(np.asarray(theta, float), A, c, s), n_obs)[0]


def _slope_dev(theta, *, A, c, s, n_obs):
    """The REML criterion alone, for finite differences over a stack of theta points."""
    return _slope_finish(_slope_core(theta, A, c, s), n_obs)[0]


def _moment_start(A, c, s, n_obs):
    """Starting theta from per-class OLS: D = cov(b_i) - sigma^2 mean(A_i^-1), made PD."""
    a, b, d = A[..., 0, 0], A[..., 0, 1], A[..., 1, 1]
    det = a * d - b * b
    ok = det > 1e-10 * (a * d + 1e-300)
    r = c.shape[0]
    if not np.all(ok):  # a class with one distinct x: no per-class slope, use lme4's start
        return np.tile([1.0, 0.0, 1.0], (r, 1))
    c1, c2 = c[..., 0], c[..., 1]
    bi1 = (d * c1 - b * c2) / det
    bi2 = (a * c2 - b * c1) / det
    rss = s - (bi1 * c1 + bi2 * c2)
    k = c.shape[1]
    sig2 = np.maximum(rss.sum(-1) / max(n_obs - 2 * k, 1), 1e-12)  # (R,)
    ainv = np.stack([np.stack([d, -b], -1), np.stack([-b, a], -1)], -2) / det[..., None, None]
    bi = np.stack([bi1, bi2], -1)  # (R, K, 2)
    dev = bi - bi.mean(1, keepdims=True)
    cov = np.einsum("rki,rkj->rij", dev, dev) / max(k - 1, 1)
    mean_ainv = ainv.mean(-3) if ainv.ndim == 3 else ainv.mean(1)
    rel = (cov - sig2[:, None, None] * mean_ainv) / sig2[:, None, None]
    w, v = np.linalg.eigh(rel)
    scale = np.maximum(np.abs(np.diagonal(rel, axis1=1, axis2=2)).max(-1), 1e-8)
    w = np.maximum(w, 1e-2 * scale[:, None])  # interior start, away from theta = 0
    rel = np.einsum("rij,rj,rkj->rik", v, w, v)
    chol = np.linalg.cholesky(rel)
    return np.stack([chol[:, 0, 0], chol[:, 1, 0], chol[:, 1, 1]], -1)


# duplicates: its docstring repeats the layout and doctest set-up of fit_intercept_batch and compare_models on purpose
def fit_slope_batch(
    A: np.ndarray,
    c: np.ndarray,
    s: np.ndarray,
    n_obs: int,
    *,
    theta0: np.ndarray | None = None,
    tol: float = 1e-10,
    max_iter: int = 60,
) -> SlopeBatch:
    """REML fits of ``lmer(Y ~ 1 + X + (1 + X | class), REML = TRUE)`` for many replicates.

    Parameters
    ----------
    A : array (K, 2, 2) or (R, K, 2, 2)
        ``X_i'X_i`` per class (shared by all replicates when 3-dimensional).
    c : array (R, K, 2)
        ``X_i'y_i`` per replicate and class.
    s : array (R, K)
        ``y_i'y_i``.
    n_obs : int
        Observations per replicate.
    theta0 : array (R, 3), optional
        Starting values; by default a moment estimate from per-class OLS fits.
    tol : float
        Convergence tolerance on the Newton decrement (deviance units).
    max_iter : int
        Maximum Newton iterations.

    Returns
    -------
    SlopeBatch

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> x = np.tile(np.arange(1., 11.), 8); g = np.repeat(np.arange(8), 10)
    >>> y = 5 + 2 * x + rng.normal(size=8)[g] + rng.normal(size=8)[g] * x + rng.normal(size=80)
    >>> A, c, s = slope_stats(x, y, g)
    >>> fit = fit_slope_batch(A, c[None], s[None], 80)
    >>> bool(fit.converged[0]), fit.beta.shape
    (True, (1, 2))
    """
    c = np.asarray(c, float)
    s = np.asarray(s, float)
    A = np.asarray(A, float)
    if c.ndim != 3 or s.ndim != 2 or c.shape[:2] != s.shape:
        raise DataError(
            "fit_slope_batch needs c of shape (replicates, classes, 2) and s of shape "
            "(replicates, classes); add a leading axis of length 1 for a single data set."
        )
    r = c.shape[0]
    theta = _moment_start(A, c, s, n_obs) if theta0 is None else np.array(theta0, float)
    converged = np.zeros(r, bool)
    active = np.arange(r)
    iterations = 0
    while active.size and iterations < max_iter:
        iterations += 1
        Aa = A if A.ndim == 3 else A[active]
        ca, sa, th = c[active], s[active], theta[active]
        h = 1e-4 * (1.0 + np.abs(th))  # (Ra, 3) step per coordinate
        f0, g, H = fd_derivatives(partial(_slope_dev, A=Aa, c=ca, s=sa, n_obs=n_obs), th, None, h,
                                  stacked=True)
        # Saddle-free Newton: |eigenvalues|, floored, keeps the step a descent direction.
        step, _ = newton_step(g, H, escape=0.0)
        decrement = -(g * step).sum(-1)  # g' H^-1 g >= 0
        done = decrement < tol
        # Backtracking line search (Armijo) for the replicates still moving.
        new = th.copy()
        moving = np.flatnonzero(~done)

        def try_steps(rows: np.ndarray, alpha: np.ndarray, th: np.ndarray = th, step: np.ndarray = step,
                      Aa: np.ndarray = Aa, ca: np.ndarray = ca, sa: np.ndarray = sa, f0: np.ndarray = f0,
                      decrement: np.ndarray = decrement, new: np.ndarray = new,
                      moving: np.ndarray = moving) -> np.ndarray:
            todo = moving[rows]
            trial = th[todo] + alpha[:, None] * step[todo]
            At = Aa if Aa.ndim == 3 else Aa[todo]
            ft = _slope_finish(_slope_core(trial, At, ca[todo], sa[todo]), n_obs)[0]
            ok = ft <= f0[todo] - 1e-4 * alpha * decrement[todo]
            new[todo[ok]] = trial[ok]
            return ok

        failed, _ = backtrack(try_steps, np.ones(moving.size))
        stuck = np.zeros(th.shape[0], dtype=bool)
        stuck[moving[failed]] = True  # no decrease possible at machine precision: stop there
        small = np.abs(new - th).max(-1) < 1e-12 * (1.0 + np.abs(th).max(-1))
        theta[active] = new
        finished = done | stuck | small
        converged[active[done | small]] = True
        active = active[~finished]
    # Canonical sign (the deviance is even in L22 and in (L11, L21)): diagonal >= 0.
    flip = theta[:, 0] < 0
    theta[flip, :2] *= -1.0
    theta[:, 2] = np.abs(theta[:, 2])
    dev, b1, b2, r2, detp, p11, p12, p22 = _slope_finish(_slope_core(theta, A, c, s), n_obs)
    sig2 = r2 / (n_obs - 2)
    vcov = np.stack([np.stack([p22, -p12], -1), np.stack([-p12, p11], -1)], -2)
    vcov = vcov * (sig2 / detp)[:, None, None]
    sigma = np.sqrt(sig2)
    sd0 = sigma * np.abs(theta[:, 0])
    sd1 = sigma * np.hypot(theta[:, 1], theta[:, 2])
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = np.where((sd0 > 0) & (sd1 > 0),
                        theta[:, 0] * theta[:, 1] / (np.abs(theta[:, 0]) *
                                                     np.hypot(theta[:, 1], theta[:, 2])),
                        np.nan)
    return SlopeBatch(
        beta=np.stack([b1, b2], -1),
        se=np.sqrt(np.stack([vcov[:, 0, 0], vcov[:, 1, 1]], -1)),
        vcov=vcov,
        theta=theta,
        sigma=sigma,
        sd_intercept=sd0,
        sd_slope=sd1,
        corr=corr,
        reml_criterion=dev,
        converged=converged,
        # lme4: singular if a diagonal element of theta (lower bound 0) is below 1e-4
        singular=(theta[:, 0] < 1e-4) | (theta[:, 2] < 1e-4),
        iterations=iterations,
    )


def slope_true_vcov(A: np.ndarray, sd_b0: float, sd_b1: float, sigma_w: float) -> np.ndarray:
    """True ``Var(beta-hat) = (sum_i X_i' V_i^-1 X_i)^-1``, ``V_i = X_i D X_i' + sigma^2 I``.

    ``D = diag(sd_b0^2, sd_b1^2)``; computed through Woodbury from ``A_i = X_i'X_i`` only.

    Examples
    --------
    >>> A = np.array([[[3.0, 6.0], [6.0, 14.0]]] * 2)       # two classes with x = 1, 2, 3
    >>> v = slope_true_vcov(A, 1.0, 0.0, 1.0)
    >>> round(float(v[0, 0]), 4)   # (OLS var 14/6 + intercept var 1) / 2 classes
    1.6667
    """
    if sigma_w <= 0:
        raise DataError("sigma_w must be positive: it is the residual standard deviation.")
    theta = np.array([sd_b0 / sigma_w, 0.0, sd_b1 / sigma_w])
    _, p11, p12, p22, *_ = _slope_core(theta, np.asarray(A, float), np.zeros((1, 2)),
                                       np.zeros(1))
    p = np.array([[p11, p12], [p12, p22]], dtype=float)
    return sigma_w**2 * np.linalg.inv(p)


# =========================================================================================
# Random intercept, mice nested in conditions (one factor), Satterthwaite F test
# =========================================================================================
@dataclass(frozen=True, eq=False)
class InterceptBatch:
    """REML fits of ``lmer(y ~ condition + (1 | mouse))`` for R replicates.

    ``beta`` and ``se`` are (R, C) in R's treatment coding (``(Intercept)``, ``condition2``,
    ...); ``coef_df`` holds their Satterthwaite df.  ``F``, ``ddf``, ``p_value`` are
    lmerTest's ``anova()`` (type III, Satterthwaite) for the condition factor.
    """

    beta: np.ndarray
    se: np.ndarray
    coef_df: np.ndarray
    theta: np.ndarray
    sigma: np.ndarray
    sd_mouse: np.ndarray
    reml_criterion: np.ndarray
    F: np.ndarray
    num_df: int
    ddf: np.ndarray
    p_value: np.ndarray
    converged: np.ndarray
    singular: np.ndarray


def intercept_stats(
    y: np.ndarray, mouse: np.ndarray, condition: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-mouse sums ``n_j, S_j = sum y, Q_j = sum y^2`` and each mouse's condition code.

    Mice are ordered as ``np.unique`` sorts them; condition codes are 0..C-1 in sorted
    order of the labels (code 0 is R's reference level when labels sort as R's levels).

    Examples
    --------
    >>> n, S, Q, cond = intercept_stats(np.array([1., 2, 3, 5]), np.array([1, 1, 2, 2]),
    ...                                 np.array(["a", "a", "b", "b"]))
    >>> n.tolist(), S.tolist(), Q.tolist(), cond.tolist()
    ([2.0, 2.0], [3.0, 8.0], [5.0, 34.0], [0, 1])
    """
    y = np.asarray(y, float)
    _, mcode = np.unique(np.asarray(mouse), return_inverse=True)
    _, ccode = np.unique(np.asarray(condition), return_inverse=True)
    if not (y.shape == mcode.shape == ccode.shape) or y.size == 0:
        raise DataError(
            "y, mouse and condition must be non-empty arrays of the same length: each row is "
            "one cell with its value, its mouse and its mouse's condition."
        )
    m = int(mcode.max()) + 1
    cond = np.full(m, -1)
    cond[mcode] = ccode
    if np.any(np.bincount(mcode, ccode != cond[mcode], m) > 0):
        raise DataError(
            "Each mouse must belong to exactly one condition (mice nested in conditions); "
            "a mouse seen under two conditions needs a crossed design, not this study."
        )
    n = np.bincount(mcode, minlength=m).astype(float)
    return n, np.bincount(mcode, y, m), np.bincount(mcode, y * y, m), cond


def _ri_pieces(u, n, S, Q, onehot):
    """Profiled-REML pieces and their first two derivatives in u = theta^2.

    Cell-means coding of the condition (X_j = 1 e_c'): P = X'H^-1X is diagonal,
    P_c = sum_{j in c} n_j w_j with w_j = 1 / (1 + u n_j).
    Returns (t, t', t''), (r2, r2', r2''), P (R, C), P' (R, C), q (R, C).
    """
    w = 1.0 / (1.0 + u[:, None] * n)  # (R, M)
    w2, w3 = w * w, w * w * w
    P = (n * w) @ onehot  # (R, C)
    P1 = -(n * n * w2) @ onehot
    P2 = 2.0 * (n**3 * w3) @ onehot
    q = (S * w) @ onehot
    q1 = -(S * n * w2) @ onehot
    q2 = 2.0 * (S * n * n * w3) @ onehot
    t = np.log1p(u[:, None] * n).sum(-1) + np.log(P).sum(-1)
    t1 = (n * w).sum(-1) + (P1 / P).sum(-1)
    t2 = -(n * n * w2).sum(-1) + ((P2 * P - P1 * P1) / (P * P)).sum(-1)
    # r2 = sum Q - sum S^2 (u w) - sum q^2 / P, with d(u w)/du = w^2.
    gq = q * q / P
    gq1 = 2.0 * q * q1 / P - q * q * P1 / P**2
    gq2 = (2.0 * (q1 * q1 + q * q2) / P - 4.0 * q * q1 * P1 / P**2
           - q * q * P2 / P**2 + 2.0 * q * q * P1 * P1 / P**3)
    r2 = Q.sum(-1) - (S * S * (1.0 - w) / n).sum(-1) - gq.sum(-1)
    r21 = -(S * S * w2).sum(-1) - gq1.sum(-1)
    r22 = 2.0 * (S * S * n * w3).sum(-1) - gq2.sum(-1)
    return (t, t1, t2), (r2, r21, r22), P, P1, q


def _ri_profiled(u, n, S, Q, onehot, nu):
    """Profiled REML deviance (up to a constant) and its u-derivatives."""
    (t, t1, t2), (r2, r21, r22), *_ = _ri_pieces(u, n, S, Q, onehot)
    with np.errstate(divide="ignore", invalid="ignore"):
        f = t + nu * np.log(r2)
        f1 = t1 + nu * r21 / r2
        f2 = t2 + nu * (r22 / r2 - (r21 / r2) ** 2)
    return np.where(np.isfinite(f), f, np.inf), f1, f2


# duplicates: its docstring repeats fit_slope_batch's layout and doctest set-up on purpose: each doctest runs alone
def fit_intercept_batch(
    n: np.ndarray,
    S: np.ndarray,
    Q: np.ndarray,
    condition: np.ndarray,
    *,
    tol: float = 1e-12,
    max_iter: int = 100,
) -> InterceptBatch:
    """REML fits of ``lmerTest::lmer(y ~ condition + (1 | mouse))`` for many replicates.

    Each mouse belongs to one condition.  The variance ratio ``u = theta^2`` is found by a
    projected Newton method on the exact profiled REML deviance (start: the ANOVA moment
    estimate); the condition effect is tested as lmerTest's ``anova()`` does: type III F with
    the contrasts ``condition_c - condition_1`` and Satterthwaite's denominator df, from the
    Hessian of the REML deviance in ``(theta, sigma)`` and the gradient of ``vcov(beta)``.

    Parameters
    ----------
    n : array (M,) or (R, M)
        Cells per mouse.
    S, Q : arrays (R, M)
        Per-mouse sum and sum of squares of the response.
    condition : array (M,) of int
        Condition code 0..C-1 of each mouse (0 = reference level).

    Returns
    -------
    InterceptBatch

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> mouse = np.repeat(np.arange(6), 10); cond = np.repeat([0, 0, 0, 1, 1, 1], 10)
    >>> y = rng.normal(size=6)[mouse] + rng.normal(size=60)
    >>> n, S, Q, c = intercept_stats(y, mouse, cond)
    >>> fit = fit_intercept_batch(n, S[None], Q[None], c)
    >>> fit.num_df, round(float(fit.ddf[0]), 6)        # balanced: ddf = mice - conditions
    (1, 4.0)
    """
    S = np.atleast_2d(np.asarray(S, float))
    Q = np.atleast_2d(np.asarray(Q, float))
    n = np.asarray(n, float)
    cond = np.asarray(condition, int)
    n_cond = int(cond.max()) + 1
    mice = cond.size
    if S.shape != Q.shape or S.shape[1] != mice or np.any(np.bincount(cond) == 0):
        raise DataError(
            "fit_intercept_batch needs S and Q of shape (replicates, mice), one condition code "
            "per mouse, and at least one mouse in every condition code 0..C-1."
        )
    if mice <= n_cond:
        raise DataError(
            f"{mice} mice in {n_cond} conditions leave no mouse-to-mouse replication within a "
            "condition, so the mouse variance cannot be separated from the condition effect; "
            "use more mice than conditions."
        )
    r = S.shape[0]
    nn = np.broadcast_to(n, S.shape)
    n_obs = nn.sum(-1)
    onehot = np.eye(n_cond)[cond]  # (M, C)
    nu = n_obs - n_cond
    # Start: ANOVA (moment) estimate of u = sigma_b^2 / sigma^2, floored inside the domain.
    sw = (Q - S * S / nn).sum(-1) / np.maximum(n_obs - mice, 1)
    nc = nn @ onehot
    sc = S @ onehot
    ssb = (S * S / nn).sum(-1) - (sc * sc / nc).sum(-1)
    n0 = (n_obs - ((nn * nn) @ onehot / nc).sum(-1)) / (mice - n_cond)
    with np.errstate(divide="ignore", invalid="ignore"):
        u = np.maximum((ssb / (mice - n_cond) - sw) / n0, 0.0) / sw
    u = np.where(np.isfinite(u), u, 1.0)
    converged = np.zeros(r, bool)
    active = np.arange(r)
    for _ in range(max_iter):
        if active.size == 0:
            break
        na = nn[active]
        f, f1, f2 = _ri_profiled(u[active], na, S[active], Q[active], onehot, nu[active])
        ua = u[active]
        newton = f2 > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            step = np.where(newton, -f1 / f2, -np.sign(f1) * np.maximum(ua, 0.1))
        at_bound = (ua <= 0.0) & (f1 >= 0.0)  # KKT at u = 0: stay on the boundary
        step = np.where(at_bound, 0.0, step)
        alpha = np.ones_like(ua)
        new = ua.copy()
        accepted = at_bound.copy()
        for _ in range(50):
            todo = np.flatnonzero(~accepted)
            if todo.size == 0:
                break
            trial = np.maximum(ua[todo] + alpha[todo] * step[todo], 0.0)
            ft = _ri_profiled(trial, na[todo], S[active[todo]], Q[active[todo]], onehot,
                              nu[active[todo]])[0]
            ok = ft <= f[todo] + 1e-13 * np.abs(f[todo])
            new[todo[ok]] = trial[ok]
            accepted[todo[ok]] = True
            alpha[todo[~ok]] *= 0.5
        moved = np.abs(new - ua)
        u[active] = new
        done = at_bound | (moved <= tol * (1.0 + ua)) | ~accepted
        converged[active[done & accepted]] = True
        active = active[~done]
    return _intercept_finish(u, nn, S, Q, onehot, cond, converged)


def _intercept_finish(u, nn, S, Q, onehot, cond, converged):
    """Estimates, SEs and the Satterthwaite F test at the optimum ``u``."""
    n_cond = onehot.shape[1]
    n_obs = nn.sum(-1)
    nu_res = n_obs - n_cond
    (t, t1, t2), (r2, r21, r22), P, P1, q = _ri_pieces(u, nn, S, Q, onehot)
    sig2 = r2 / nu_res
    mu = q / P  # cell means (GLS)
    cvar = sig2[:, None] / P  # Var(mu_c); diagonal in cell-means coding
    beta = np.concatenate([mu[:, :1], mu[:, 1:] - mu[:, :1]], axis=1)
    theta = np.sqrt(u)
    sigma = np.sqrt(sig2)
    # Hessian of the unprofiled REML deviance in lmerTest's varpar = (theta, sigma):
    # d = t(theta^2) + r2(theta^2) / sigma^2 + (N - p) log(2 pi sigma^2).
    h_tt = 2.0 * t1 + 4.0 * u * t2 + (2.0 * r21 + 4.0 * u * r22) / sig2
    h_ts = -2.0 * (2.0 * theta * r21) / sigma**3
    h_ss = 6.0 * r2 / sig2**2 - 2.0 * nu_res / sig2
    hess = np.stack([np.stack([h_tt, h_ts], -1), np.stack([h_ts, h_ss], -1)], -2)
    avar = 2.0 * np.linalg.pinv(hess)  # vcov of (theta, sigma)
    # d Var(mu_c) / d theta and / d sigma.
    dv_dtheta = -sig2[:, None] * P1 * (2.0 * theta[:, None]) / P**2
    dv_dsigma = 2.0 * sigma[:, None] / P

    def contrast(L):  # L (C,) or (R, C) weights on the cell means -> var, df
        var = (L * L * cvar).sum(-1)
        g = np.stack([(L * L * dv_dtheta).sum(-1), (L * L * dv_dsigma).sum(-1)], -1)
        with np.errstate(divide="ignore", invalid="ignore"):
            df = 2.0 * var**2 / np.einsum("ri,rij,rj->r", g, avar, g)
        return var, df

    se = np.empty_like(beta)
    cdf = np.empty_like(beta)
    eye = np.eye(n_cond)
    for k in range(n_cond):
        L = eye[0] if k == 0 else eye[k] - eye[0]
        var, df = contrast(L)
        se[:, k] = np.sqrt(var)
        cdf[:, k] = df
    # Type III F for the condition: L = [0 I] in treatment coding = (e_c - e_1) rows.
    Lmat = eye[1:] - eye[0]  # (C-1, C)
    vl = np.einsum("ic,rc,jc->rij", Lmat, cvar, Lmat)
    d, vecs = np.linalg.eigh(vl)  # ascending; order does not matter for F or ddf
    lb = beta[:, 1:]  # = Lmat @ mu
    proj = np.einsum("rij,ri->rj", vecs, lb)  # P' L beta
    fstat = (proj * proj / d).sum(-1) / (n_cond - 1)
    rows = np.einsum("rij,ic->rjc", vecs, Lmat)  # each eigen contrast on the cell means
    nus = np.stack([contrast(rows[:, m, :])[1] for m in range(n_cond - 1)], -1)
    ddf = fstat_ddf(nus)
    pval = stats.f.sf(fstat, n_cond - 1, ddf)
    dev = t + nu_res * (1.0 + _LOG_2PI + np.log(r2 / nu_res))
    return InterceptBatch(
        beta=beta, se=se, coef_df=cdf, theta=theta, sigma=sigma, sd_mouse=sigma * theta,
        reml_criterion=dev, F=fstat, num_df=n_cond - 1, ddf=ddf, p_value=pval,
        converged=converged, singular=theta < 1e-4,
    )


def pooled_f_test(n: np.ndarray, S: np.ndarray, Q: np.ndarray,
                  condition: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``anova(lm(y ~ condition))`` on the pooled cells, from per-mouse sums.

    Treats every cell as independent (the mistake this study measures).
    Returns ``(F, df2, p)``, arrays over replicates, with ``df1 = C - 1``.

    Examples
    --------
    >>> F, df2, p = pooled_f_test(np.array([2., 2]), np.array([[3., 8]]),
    ...                           np.array([[5., 34]]), np.array([0, 1]))
    >>> float(F[0]), float(df2[0])                    # groups (1, 2) vs (3, 5)
    (5.0, 2.0)
    """
    S = np.atleast_2d(np.asarray(S, float))
    Q = np.atleast_2d(np.asarray(Q, float))
    nn = np.broadcast_to(np.asarray(n, float), S.shape)
    cond = np.asarray(condition, int)
    onehot = np.eye(int(cond.max()) + 1)[cond]
    n_cond = onehot.shape[1]
    nc, sc = nn @ onehot, S @ onehot
    n_obs = nn.sum(-1)
    ss_within = Q.sum(-1) - (sc * sc / nc).sum(-1)
    ss_between = (sc * sc / nc).sum(-1) - S.sum(-1) ** 2 / n_obs
    df2 = n_obs - n_cond
    fstat = (ss_between / (n_cond - 1)) / (ss_within / df2)
    return fstat, df2, stats.f.sf(fstat, n_cond - 1, df2)


def means_anova(n: np.ndarray, S: np.ndarray,
                condition: np.ndarray) -> tuple[np.ndarray, int, np.ndarray]:
    """One-way ANOVA of the mouse means by condition (``anova(lm(mean ~ condition))``).

    Returns ``(F, df2, p)`` with ``df1 = C - 1`` and ``df2 = mice - C``.

    Examples
    --------
    >>> F, df2, p = means_anova(np.array([1., 1, 1, 1]), np.array([[1., 2, 3, 5]]),
    ...                         np.array([0, 0, 1, 1]))
    >>> float(F[0]), df2
    (5.0, 2)
    """
    S = np.atleast_2d(np.asarray(S, float))
    means = S / np.broadcast_to(np.asarray(n, float), S.shape)
    cond = np.asarray(condition, int)
    onehot = np.eye(int(cond.max()) + 1)[cond]
    n_cond = onehot.shape[1]
    mice = cond.size
    if mice <= n_cond:
        raise DataError("The ANOVA of mouse means needs more mice than conditions.")
    k = onehot.sum(0)
    cm = means @ onehot / k
    ss_within = (means * means).sum(-1) - (cm * cm * k).sum(-1)
    ss_between = (cm * cm * k).sum(-1) - means.sum(-1) ** 2 / mice
    df2 = mice - n_cond
    fstat = (ss_between / (n_cond - 1)) / (ss_within / df2)
    return fstat, df2, stats.f.sf(fstat, n_cond - 1, df2)
