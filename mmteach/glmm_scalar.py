"""Batched Laplace fits of a GLMM with one scalar random-effects term and a canonical link.

This is the fast path behind :func:`mmteach.glmm_laplace.fit_core` and the parametric bootstrap
for models such as ``lick ~ dff + (1 | mouseID)`` (binomial, logit link) or
``count ~ x + (1 | g)`` (Poisson, log link): one random-effects term with a single column
``z`` (usually the intercept), Laplace approximation.

With one scalar term the random effects of different levels are independent given
``(theta, beta)``, so every quantity is a sum over the rows of each level and a batch of
responses (the bootstrap samples, leading axis) is processed with a few array operations:

* Rows with the same level, ``z`` and fixed-effects row are merged into one binomial
  (or Poisson) row with summed successes and trials: the canonical-link log-likelihood
  ``y eta - n b(eta)`` only needs these sums. A reduced model ``y ~ 1 + (1 | g)`` on
  Bernoulli data collapses to one row per level.
* PIRLS is a scalar Newton iteration per level, started from a first-order prediction of
  the modes (their exact derivatives are known), checked per sample: samples that have
  converged leave the active set.
* The outer problem over ``(theta, beta)`` is solved by Newton's method with the exact
  gradient and the exact Hessian of the Laplace deviance (modes profiled out, including the
  second derivatives of the modes that enter the log-determinant), so it converges
  quadratically; each sample stops when its Newton decrement is below ``tol`` and the
  Hessian is positive definite. The deviance is even in theta, so its theta gradient
  vanishes at ``theta = 0``: where the curvature there is negative, a step along it is
  forced (a plain Newton method would stop at that saddle with a too-high deviance). A
  boundary fit (theta -> 0 with positive curvature) converges like any other.
* Samples are worked through in blocks small enough for the row arrays to stay in cache;
  level sums are ``np.add.reduceat`` over contiguous levels (no BLAS, no scatter), and
  ``mu``, ``mu (1 - mu)`` and ``log(1 + e^eta)`` come from a single ``exp``.
* In the bootstrap (:func:`fit_nested`) each sample's full model starts from its own
  reduced fit, which is close to the full optimum under the null hypothesis.

The deviance is lme4's Laplace deviance ``-2 log f(y | u) + |u|^2 + sum_j log(1 + theta^2
S_j)``. Unlike R's family objects it does not clamp ``eta`` at +-36 (logit) or ``mu`` at
machine epsilon (log link): these clamps only act far from any optimum (fitted
probabilities within 1e-16 of 0 or 1) and are where the clamped deviance stops being
smooth; the log link is capped at ``eta <= 700`` against overflow.

Nothing here imports :mod:`mmteach.glmm_laplace`; it works on any spec with ``X``,
``trials``, ``family``, ``link`` and one term with ``codes``, ``Z`` and ``m``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mmteach.families import ETA_MAX_LOG, log_normaliser, logit_rows
from mmteach.optim import ESCAPE, backtrack, newton_step

_U_TOL = 1e-9  # PIRLS stops when every level's Newton step is below this
_MAX_DTHETA = 5.0  # trust region of a Newton step: theta ...
_MAX_DETA = 20.0  # ... and the fixed part of the linear predictor on any row
_BLOCK = 32768  # samples x merged rows per block: row arrays of 256 kB stay in cache


# --------------------------------------------------------------------------------------
# design: rows merged and sorted by level
# --------------------------------------------------------------------------------------
class _Sums:
    """Sums over the rows of each level of ``v * f`` for fixed row features ``f``.

    ``feats`` is (k, N); identical features are summed once and a feature equal to 1 needs
    no product. Levels are contiguous blocks of rows starting at ``starts`` (none empty),
    so the sums are ``np.add.reduceat``: no BLAS call, no scatter.
    """

    def __init__(self, feats: np.ndarray, starts: np.ndarray):
        uniq, inv = np.unique(np.asarray(feats, dtype=float), axis=0, return_inverse=True)
        self.cols = [None if np.all(col == 1.0) else col for col in uniq]
        self.index = inv.reshape(-1)
        self.starts = starts

    def __call__(self, v: np.ndarray) -> np.ndarray:
        """(B, N) -> (B, k, m)."""
        out = np.stack([np.add.reduceat(v if col is None else v * col, self.starts, axis=1)
                        for col in self.cols], axis=1)
        return out[:, self.index]


@dataclass(frozen=True)
class ScalarDesign:
    """The rows of a one-term model merged by (level, z, X row) and sorted by level.

    Trials ``n`` and powers of ``z`` are folded into the row features of the sums.
    Levels without rows are left out (their mode is 0 and they add nothing).
    """

    logit: bool
    family: str
    m: int  # levels of the term, empty ones included
    lv: np.ndarray  # (m_eff,) levels that have rows
    order: np.ndarray | None  # original rows in merged order (None: identity)
    merge: np.ndarray | None  # start of each merged row in ``order`` (None: no merging)
    unit_binomial: bool  # every original row is one Bernoulli trial (log C(n, y) = 0)
    X: np.ndarray  # (N, p) merged fixed-effects rows
    Xt: np.ndarray  # (p, N)
    counts: np.ndarray  # (m_eff,) merged rows per level
    z: np.ndarray | None  # (N,), None when z == 1
    rowf: np.ndarray | None  # (3, N) n, n z, n z^2 for the PIRLS sums; None when all 1
    starts: np.ndarray  # (m_eff,) first merged row of each level
    s_y: _Sums  # y * (z, X)
    s_mu: _Sums  # n mu * (z, X)
    s_w: _Sums  # n w * (z Phi, X_k X_l)
    s_w1: _Sums  # n w' * z Phi_s Phi_t
    s_w2: _Sums  # n w'' * z^2 Phi_s Phi_t
    s_all: _Sums | None  # log link (mu = w = w' = w''): all of the above at once
    sizes: tuple[int, ...]  # rows of the four blocks above
    pairs: tuple[np.ndarray, np.ndarray]  # (s, t), s <= t, of the P(P+1)/2 products
    xpairs: tuple[np.ndarray, np.ndarray]  # the same for the p columns of X

    @property
    def P(self) -> int:
        return self.X.shape[1] + 1


def design(spec: Any) -> ScalarDesign:
    """The merged design of ``spec`` (cached on the spec).

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> t = SimpleNamespace(codes=np.array([2, 0, 2, 0, 2]), Z=np.ones((5, 1)), m=3)
    >>> spec = SimpleNamespace(X=np.ones((5, 1)), trials=np.ones(5), family="binomial",
    ...                        link="logit", terms=(t,), _cache={})
    >>> d = design(spec)
    >>> d.X.shape, d.lv.tolist(), d.counts.tolist()
    ((2, 1), [0, 2], [1, 1])
    """
    cache = getattr(spec, "_cache", None)
    if cache is not None and "scalar_design" in cache:
        return cache["scalar_design"]
    t = spec.terms[0]
    codes = np.asarray(t.codes, dtype=np.intp)
    z0 = np.asarray(t.Z, dtype=float)[:, 0]
    X0 = np.asarray(spec.X, dtype=float)
    n0 = np.asarray(spec.trials, dtype=float)
    uniq, inv = np.unique(np.column_stack([codes.astype(float), z0, X0]), axis=0,
                          return_inverse=True)
    inv = inv.reshape(-1)
    order = np.argsort(inv, kind="stable")
    N = uniq.shape[0]
    if N < len(inv):
        merge = np.flatnonzero(np.r_[True, np.diff(inv[order]) != 0])
        n = np.add.reduceat(n0[order], merge)
    else:
        merge = None
        n = n0[order]
    lvl = uniq[:, 0].astype(np.intp)
    lv, starts, counts = np.unique(lvl, return_index=True, return_counts=True)
    z = uniq[:, 1]
    X = np.ascontiguousarray(uniq[:, 2:])
    p = X.shape[1]
    Phi = np.column_stack([z, X]).T  # (P, N) features: z, then the columns of X
    s_idx, t_idx = np.triu_indices(p + 1)
    xs, xt = np.triu_indices(p)
    F = Phi[s_idx] * Phi[t_idx]  # (nf, N)
    f_y = np.vstack([z, X.T])
    f_mu = f_y * n
    f_w = np.vstack([Phi * (n * z), X.T[xs] * X.T[xt] * n])
    f_w1 = F * (n * z)
    f_w2 = F * (n * z * z)
    logit = spec.link == "logit"
    rowf = np.vstack([n, n * z, n * z * z])
    des = ScalarDesign(
        logit=logit,
        family=spec.family,
        m=int(t.m),
        lv=lv,
        order=None if np.array_equal(order, np.arange(len(order))) else order,
        merge=merge,
        unit_binomial=spec.family == "binomial" and bool(np.all(n0 == 1)),
        X=X,
        Xt=np.ascontiguousarray(X.T),
        counts=counts,
        z=None if np.all(z == 1) else z,
        rowf=None if np.all(rowf == 1) else rowf,
        starts=starts,
        s_y=_Sums(f_y, starts),
        s_mu=_Sums(f_mu, starts),
        s_w=_Sums(f_w, starts),
        s_w1=_Sums(f_w1, starts),
        s_w2=_Sums(f_w2, starts),
        s_all=None if logit else _Sums(np.vstack([f_mu, f_w, f_w1, f_w2]), starts),
        sizes=(len(f_mu), len(f_w), len(f_w1), len(f_w2)),
        pairs=(s_idx, t_idx),
        xpairs=(xs, xt),
    )
    if cache is not None:
        cache["scalar_design"] = des
    return des


@dataclass(frozen=True)
class _Data:
    """A batch of responses on the merged rows, with the sums that do not change."""

    y: np.ndarray  # (B, N) merged successes / counts
    yz: np.ndarray  # (B, m) sum of y z per level
    yX: np.ndarray  # (B, p) sum of y X
    const: np.ndarray  # (B,) sum of log C(n, y) (binomial) or -log y! (Poisson)

    def take(self, idx: np.ndarray) -> _Data:
        return _Data(self.y[idx], self.yz[idx], self.yX[idx], self.const[idx])


def _data(des: ScalarDesign, Y: np.ndarray, trials: np.ndarray) -> _Data:
    if des.family == "binomial":
        if des.unit_binomial:
            const = np.zeros(Y.shape[0])
        else:
            const = log_normaliser(Y, trials, "binomial")
    else:
        const = log_normaliser(Y, trials, "poisson")
    y = Y if des.order is None else Y[:, des.order]
    if des.merge is not None:
        y = np.add.reduceat(y, des.merge, axis=1)
    y = np.ascontiguousarray(y)
    sy = des.s_y(y)
    return _Data(y, sy[:, 0], sy[:, 1:].sum(axis=-1), const)


# --------------------------------------------------------------------------------------
# PIRLS: conditional modes per level
# --------------------------------------------------------------------------------------
def _eta(des: ScalarDesign, eta_fix: np.ndarray, c: np.ndarray, u: np.ndarray) -> np.ndarray:
    eta = np.repeat(c[:, None] * u, des.counts, axis=1)
    if des.z is not None:
        eta *= des.z
    eta += eta_fix
    if not des.logit:
        np.minimum(eta, ETA_MAX_LOG, out=eta)
    return eta


def _level_eval(des, eta_fix, c, u, yfix, yz):
    """Per level: log-likelihood, ``R = sum r z`` (score) and ``S = sum w z^2``."""
    eta = _eta(des, eta_fix, c, u)
    st = des.starts
    f = des.rowf
    if des.logit:
        sp, mu, w = logit_rows(eta)
        if f is not None:
            sp *= f[0]
            mu *= f[1]
            w *= f[2]
        SP = np.add.reduceat(sp, st, axis=1)
        MU = np.add.reduceat(mu, st, axis=1)
        S = np.add.reduceat(w, st, axis=1)
    else:
        mu = np.exp(eta, out=eta)  # b(eta) = b'(eta) = b''(eta) = exp(eta)
        if f is None:
            SP = MU = S = np.add.reduceat(mu, st, axis=1)
        else:
            SP, MU, S = (np.add.reduceat(mu * f[k], st, axis=1) for k in range(3))
    ll = yfix + c[:, None] * u * yz - SP
    return ll, yz - MU, S


def _pirls(des: ScalarDesign, dat: _Data, x: np.ndarray, u: np.ndarray,
           maxit: int = 60) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Conditional modes for a batch at parameters ``x = (theta, beta)``.

    Returns ``(laplace deviance (B,), u (B, m), ok (B,))``.
    """
    B = x.shape[0]
    c_all = x[:, 0]
    eta_fix = x[:, 1:] @ des.Xt
    yfix_all = np.add.reduceat(dat.y * eta_fix, des.starts, axis=1)  # sum of y X beta
    u_out = np.array(u, dtype=float)
    pd_out = np.empty_like(u_out)
    S_out = np.empty_like(u_out)
    ok = np.ones(B, dtype=bool)
    act = np.arange(B)
    ef, c, yfix, yz, ua = eta_fix, c_all, yfix_all, dat.yz, u_out.copy()
    ll, R, S = _level_eval(des, ef, c, ua, yfix, yz)
    pd = ua * ua - 2.0 * ll
    failed = np.zeros(B, dtype=bool)
    for _ in range(maxit):
        delta = (c[:, None] * R - ua) / (1.0 + (c * c)[:, None] * S)
        failed |= ~np.all(np.isfinite(delta), axis=1)
        fin = (np.max(np.abs(delta), axis=1) < _U_TOL) | failed
        if fin.any():
            idx = act[fin]
            ok[act[failed]] = False
            u_out[idx], pd_out[idx], S_out[idx] = ua[fin], pd[fin], S[fin]
            keep = ~fin
            act = act[keep]
            if len(act) == 0:
                break
            ef, c, yfix, yz = ef[keep], c[keep], yfix[keep], yz[keep]
            ua, pd, R, S, delta = ua[keep], pd[keep], R[keep], S[keep], delta[keep]
            failed = failed[keep]
        un = ua + delta
        lln, Rn, Sn = _level_eval(des, ef, c, un, yfix, yz)
        pdn = un * un - 2.0 * lln
        bad = ~(pdn <= pd + 1e-10 * np.abs(pd))
        # step halving, per level (each level its own line search, from half the step), for
        # the samples that need it; a sample's levels are evaluated together
        first_bad = np.flatnonzero(bad.ravel())
        m = bad.shape[1]

        def try_levels(els: np.ndarray, t: np.ndarray, un: np.ndarray = un, ua: np.ndarray = ua,
                       delta: np.ndarray = delta, pd: np.ndarray = pd, pdn: np.ndarray = pdn,
                       Rn: np.ndarray = Rn, Sn: np.ndarray = Sn, ef: np.ndarray = ef, c: np.ndarray = c,
                       yfix: Any = yfix, yz: Any = yz, first_bad: np.ndarray = first_bad,
                       m: int = m) -> np.ndarray:
            r, lv = np.divmod(first_bad[els], m)
            un[r, lv] = ua[r, lv] + t * delta[r, lv]
            rows = np.unique(r)
            lr, Rr, Sr = _level_eval(des, ef[rows], c[rows], un[rows], yfix[rows], yz[rows])
            pdn[rows], Rn[rows], Sn[rows] = un[rows] ** 2 - 2.0 * lr, Rr, Sr
            return pdn[r, lv] <= pd[r, lv] + 1e-10 * np.abs(pd[r, lv])

        failed_levels, _ = backtrack(try_levels, np.full(first_bad.size, 0.5), halvings=40)
        bad = np.zeros_like(bad)
        bad.ravel()[first_bad[failed_levels]] = True
        rows = np.flatnonzero(bad.any(axis=1))
        if len(rows):  # no decrease possible at those levels: give up on these samples
            failed[rows] = True
            keepu = bad[rows]
            un[rows] = np.where(keepu, ua[rows], un[rows])
            pdn[rows] = np.where(keepu, pd[rows], pdn[rows])
            Rn[rows] = np.where(keepu, R[rows], Rn[rows])
            Sn[rows] = np.where(keepu, S[rows], Sn[rows])
        ua, pd, R, S = un, pdn, Rn, Sn
    else:
        ok[act] = False
        u_out[act], pd_out[act], S_out[act] = ua, pd, S
    dev = (np.sum(pd_out, axis=1) + np.sum(np.log1p((c_all * c_all)[:, None] * S_out), axis=1)
           - 2.0 * dat.const)
    ok &= np.isfinite(dev)
    return dev, u_out, ok


# --------------------------------------------------------------------------------------
# exact gradient and Hessian of the Laplace deviance
# --------------------------------------------------------------------------------------
def _sym(pairs: tuple[np.ndarray, np.ndarray], P: int, v: np.ndarray) -> np.ndarray:
    """(..., k) values of products (s, t), s <= t -> symmetric (..., P, P)."""
    out = np.empty(v.shape[:-1] + (P, P))
    s, t = pairs
    out[..., s, t] = v
    out[..., t, s] = v
    return out


def _ev(y: np.ndarray, vt: np.ndarray) -> np.ndarray:
    """``E y`` for ``E = diag(0, 1, ..., 1) + vt e_0'`` (per level)."""
    out = vt * y[..., :1]
    out[..., 1:] += y[..., 1:]
    return out


def _eme(M: np.ndarray, vt: np.ndarray) -> np.ndarray:
    """``E M E'`` for the same ``E``, without small matrix products."""
    EM = vt[..., :, None] * M[..., None, 0, :]
    EM[..., 1:, :] += M[..., 1:, :]
    out = EM[..., :, :1] * vt[..., None, :]
    out[..., :, 1:] += EM[..., :, 1:]
    return out


def derivatives(des: ScalarDesign, dat: _Data, x: np.ndarray,
                u: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradient (B, P), Hessian (B, P, P) and ``du/dx`` (B, m, P) at the modes ``u``.

    ``x = (c, beta)`` with ``c = theta``; ``eta_i = X_i beta + c z_i u_j`` for row ``i`` of
    level ``j``. Per level, ``S = sum w z^2``, ``R = sum r z`` (``r = y - n mu``),
    ``a = 1 + c^2 S``; with ``Phi_i = (z_i, X_i)`` the total derivative of ``eta`` (through
    the modes too) is ``eta_a = (E Phi_i)_a``, ``E = diag(0, 1, ..., 1) + vt e_0'``. The
    deviance is ``PD(u(x), x) + sum_j log a_j``; its Hessian is the profiled (Schur
    complement) Hessian of the penalised deviance ``PD`` plus the exact second derivative
    of ``sum_j log a_j``, which needs ``w' = dw/deta``, ``w''`` and the second derivatives
    of the modes (from differentiating ``c R(u) = u`` twice).
    """
    B, m = u.shape
    P = des.P
    c = x[:, 0]
    cc = c[:, None]
    eta = _eta(des, x[:, 1:] @ des.Xt, c, u)
    n_mu, n_w, n_f, _ = des.sizes
    if des.logit:
        _, mu, w = logit_rows(eta, need_sp=False)
        MU, WW = des.s_mu(mu), des.s_w(w)
        mu *= -2.0
        mu += 1.0
        mu *= w  # w' = w (1 - 2 mu)
        W1 = des.s_w1(mu)
        w *= np.subtract(1.0, 6.0 * w)  # w'' = w (1 - 6 w)
        W2 = des.s_w2(w)
    else:
        mu = np.exp(eta, out=eta)
        allsums = des.s_all(mu)
        MU = allsums[:, :n_mu]
        WW = allsums[:, n_mu:n_mu + n_w]
        W1 = allsums[:, n_mu + n_w:n_mu + n_w + n_f]
        W2 = allsums[:, n_mu + n_w + n_f:]
    R = dat.yz - MU[:, 0]  # (B, m)
    rX = dat.yX - MU[:, 1:].sum(axis=-1)  # (B, p)
    kz = np.swapaxes(WW[:, :P], 1, 2)  # (B, m, P): sum w z Phi = (S, sum w z X)
    Wxx = _sym(des.xpairs, P - 1, WW[:, P:].sum(axis=-1))  # sum w X X' over all rows
    M1 = _sym(des.pairs, P, np.swapaxes(W1, 1, 2))  # sum w' z Phi Phi'
    M2 = _sym(des.pairs, P, np.swapaxes(W2, 1, 2))  # sum w'' z^2 Phi Phi'
    S = kz[..., 0]
    a = 1.0 + cc * cc * S
    ia = 1.0 / a
    # first derivatives of the modes: u_a = -Q_a / a
    K = kz.copy()
    K[..., 0] = u * S  # sum w z d_a eta at fixed u
    Q = cc[..., None] * K
    Q[..., 0] -= R
    Ua = -Q * ia[..., None]
    # penalised deviance, modes profiled out
    g = np.empty((B, P))
    g[:, 0] = -2.0 * np.sum(u * R, axis=1)
    g[:, 1:] = -2.0 * rX
    M = np.empty((B, P, P))
    M[:, 0, 0] = np.sum(u * u * S, axis=1)
    M[:, 0, 1:] = np.sum(u[..., None] * K[..., 1:], axis=1)
    M[:, 1:, 0] = M[:, 0, 1:]
    M[:, 1:, 1:] = Wxx
    H = 2.0 * (M - np.einsum("bma,bmc,bm->bac", Q, Q, ia))
    # log-determinant sum_j log a_j
    vt = cc[..., None] * Ua
    vt[..., 0] += u
    Sa = _ev(M1[..., :, 0], vt)  # dS/dx_a = sum w' z^2 eta_a
    T = _eme(M1, vt)  # sum w' z eta_a eta_b
    Ra = -_ev(kz, vt)  # dR/dx_a
    rho = Ra - (cc * S)[..., None] * Ua
    Uab = -cc[..., None, None] * T
    Uab[..., 0, :] += rho
    Uab[..., :, 0] += rho
    Uab *= ia[..., None, None]  # second derivatives of the modes
    omega = cc[..., None, None] * Uab  # d^2 eta / dx_a dx_b = z omega_ab
    omega[..., 0, :] += Ua
    omega[..., :, 0] += Ua
    Sab = _eme(M2, vt) + omega * M1[..., 0, 0][..., None, None]
    c2 = (cc * cc)[..., None]
    A = c2 * Sa
    A[..., 0] += 2.0 * cc * S
    Aab = c2[..., None] * Sab
    twocSa = 2.0 * cc[..., None] * Sa
    Aab[..., 0, :] += twocSa
    Aab[..., :, 0] += twocSa
    Aab[..., 0, 0] += 2.0 * S
    g += np.einsum("bma,bm->ba", A, ia)
    H += np.einsum("bmac,bm->bac", Aab, ia) - np.einsum("bma,bmc,bm->bac", A, A, ia * ia)
    return g, H, Ua


# --------------------------------------------------------------------------------------
# Newton over (theta, beta)
# --------------------------------------------------------------------------------------


def fit_scalar(spec: Any, Y: np.ndarray, x0: np.ndarray, u0: np.ndarray | None = None, *,
               maxit: int = 50, tol: float = 1e-10
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Fit the model of ``spec`` to every row of ``Y`` (B, n) by Laplace ML.

    ``x0`` (B, 1 + p) are starts ``(theta, beta)``, ``u0`` (B, m) optional start modes.
    Returns ``(x, deviance, converged, u, iterations)``; a sample has converged when the
    Hessian is positive definite and the Newton decrement ``g' H^-1 g`` is below ``tol``
    (or below 1e-6 with no further decrease possible in working precision). ``theta`` may
    come out negative (the deviance is even in theta); callers normalise the sign. The
    batch is worked through in blocks of about ``_BLOCK`` values so that the row arrays
    stay in cache.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> rng = np.random.default_rng(0)
    >>> g = np.repeat(np.arange(6), 20); x = rng.normal(size=120)
    >>> y = rng.binomial(1, 1 / (1 + np.exp(-(x + rng.normal(size=6)[g]))))
    >>> t = SimpleNamespace(codes=g, Z=np.ones((120, 1)), m=6)
    >>> spec = SimpleNamespace(X=np.column_stack([np.ones(120), x]), trials=np.ones(120),
    ...                        family="binomial", link="logit", terms=(t,), _cache={})
    >>> xs, dev, conv, u, it = fit_scalar(spec, y[None, :], np.array([[1.0, 0.0, 0.0]]))
    >>> bool(conv[0]), u.shape
    (True, (1, 6))
    """
    des = design(spec)
    Y = np.atleast_2d(np.asarray(Y, dtype=float))
    B = Y.shape[0]
    trials = np.asarray(spec.trials, dtype=float)
    x = np.array(np.broadcast_to(x0, (B, des.P)), dtype=float)
    u = np.zeros((B, des.m))
    if u0 is not None:
        u[:] = np.broadcast_to(u0, (B, des.m))
    f = np.empty(B)
    conv = np.zeros(B, dtype=bool)
    iters = 0
    size = max(1, _BLOCK // des.X.shape[0])
    for i in range(0, B, size):
        sl = slice(i, min(i + size, B))
        ue = u[sl][:, des.lv]
        with np.errstate(over="ignore", invalid="ignore"):  # wild trial points are rejected
            x[sl], f[sl], conv[sl], ue, it = _fit_block(des, _data(des, Y[sl], trials),
                                                        x[sl], ue, maxit, tol)
        u[sl] = 0.0
        u[sl, des.lv] = ue
        iters = max(iters, it)
    return x, f, conv & np.isfinite(f), u, iters


def _fit_block(des, dat, x, u, maxit, tol):
    """Newton over ``(theta, beta)`` for one block of samples; see :func:`fit_scalar`."""
    B = x.shape[0]
    x = x.copy()
    f, u, ok = _pirls(des, dat, x, u)
    conv = np.zeros(B, dtype=bool)
    act = np.flatnonzero(ok)
    da = dat.take(act)
    g, H, U = derivatives(des, da, x[act], u[act])
    it = 0
    for it in range(1, maxit + 1):  # noqa: B007 (the count is returned)
        if len(act) == 0:
            break
        xa, fa, ua = x[act], f[act], u[act]
        step, convex = newton_step(g, H)
        dec = -np.sum(g * step, axis=1)
        done = (dec < tol) & np.isfinite(dec) & convex
        pend = np.flatnonzero(~done)
        # first trial inside a wide trust region (never binding near an optimum): theta
        # moves by at most _MAX_DTHETA and the linear predictor by at most _MAX_DETA
        reach = np.maximum(np.abs(step[:, 0]) / _MAX_DTHETA,
                           np.max(np.abs(step[:, 1:] @ des.Xt), axis=1) / _MAX_DETA)
        t = 1.0 / np.maximum(reach, 1.0)
        moved = np.zeros(len(act), dtype=bool)
        du = np.einsum("bmp,bp->bm", U, step)

        def try_steps(rows: np.ndarray, tp: np.ndarray, xa: np.ndarray = xa, fa: np.ndarray = fa,
                      ua: np.ndarray = ua, da: Any = da, step: np.ndarray = step, du: np.ndarray = du,
                      moved: np.ndarray = moved) -> np.ndarray:
            cand = xa[rows] + tp[:, None] * step[rows]
            fc, uc, okc = _pirls(des, da.take(rows), cand, ua[rows] + tp[:, None] * du[rows])
            good = okc & (fc <= fa[rows] + 1e-12 * np.abs(fa[rows]))
            gi = rows[good]
            xa[gi], fa[gi], ua[gi] = cand[good], fc[good], uc[good]
            moved[gi] = True
            return good

        # converged problems take no step
        failed, _ = backtrack(lambda rows, tp, pend=pend: try_steps(pend[rows], tp), t[pend])
        pend = pend[failed]
        # no decrease possible: at the optimum to working precision if the decrement is tiny
        done[pend] = (dec[pend] < 1e-6) & convex[pend]
        x[act], f[act], u[act] = xa, fa, ua
        conv[act[done]] = True
        act = act[moved]
        if len(act) == 0:
            break
        da = dat.take(act)
        g, H, U = derivatives(des, da, x[act], u[act])
    return x, f, conv, u, it


def nested_columns(spec_full: Any, spec_reduced: Any) -> np.ndarray | None:
    """Where the reduced model's X columns sit in the full model's X, if it is nested.

    Returns the column indices when both models have the same random-effects term and
    every column of the reduced X is also a column of the full X; else None.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> t = SimpleNamespace(codes=np.array([0, 0, 1, 1]), Z=np.ones((4, 1)))
    >>> X1 = np.column_stack([np.ones(4), np.arange(4.0)])
    >>> full = SimpleNamespace(X=X1, terms=(t,))
    >>> nested_columns(full, SimpleNamespace(X=X1[:, :1], terms=(t,))).tolist()
    [0]
    """
    t1, t0 = spec_full.terms[0], spec_reduced.terms[0]
    if not (np.array_equal(t1.codes, t0.codes) and np.array_equal(t1.Z, t0.Z)):
        return None
    X1, X0 = np.asarray(spec_full.X), np.asarray(spec_reduced.X)
    idx = []
    for col in X0.T:
        hits = [k for k in range(X1.shape[1]) if k not in idx and np.array_equal(X1[:, k], col)]
        if not hits:
            return None
        idx.append(hits[0])
    return np.array(idx, dtype=np.intp)


def fit_nested(spec_full: Any, spec_reduced: Any, Y: np.ndarray, x_full: np.ndarray,
               x_reduced: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fit a reduced and a full model to every row of ``Y``: the parametric bootstrap.

    The reduced model starts from ``x_reduced`` (its observed fit). When it is nested
    column-wise in the full one (:func:`nested_columns`), each sample's full fit starts
    from that sample's reduced fit with zeros for the extra fixed effects (and theta at
    least ``_ESCAPE``), which is close to the full optimum under the null hypothesis the
    samples come from; otherwise from ``x_full`` (the observed full fit).
    Returns ``(deviance_full, converged_full, deviance_reduced, converged_reduced)``.
    """
    B = np.atleast_2d(Y).shape[0]
    xr, d0, c0, ur, _ = fit_scalar(spec_reduced, Y, x_reduced)
    idx = nested_columns(spec_full, spec_reduced)
    if idx is None:
        x1 = np.broadcast_to(x_full, (B, len(x_full))).copy()
        u1 = ur * (np.abs(xr[:, :1]) / max(abs(float(x_full[0])), ESCAPE))
    else:
        th = np.maximum(np.abs(xr[:, 0]), ESCAPE)
        x1 = np.zeros((B, spec_full.X.shape[1] + 1))
        x1[:, 0] = th
        x1[:, 1 + idx] = xr[:, 1:]
        u1 = ur * (np.abs(xr[:, :1]) / th[:, None])  # same random effects b = theta u
    _, d1, c1, _, _ = fit_scalar(spec_full, Y, x1, u1)
    return d1, c1, d0, c0
