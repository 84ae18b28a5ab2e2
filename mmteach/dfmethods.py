"""Denominator degrees of freedom for tests of fixed effects in a linear mixed model.

Four rules, as R computes them:

* :func:`satterthwaite_df` / :func:`satterthwaite_f`: lmerTest (Kuznetsova, Brockhoff &
  Christensen 2017). The variance of a contrast ``L beta`` is a function of the variance
  parameters ``(theta, sigma)``; its gradient and the inverse Hessian of the (RE)ML deviance
  in that parametrisation give the Satterthwaite approximation ``2 V^2 / Var(V)``.
* :func:`kenward_roger`: pbkrtest (Halekoh & Hojsgaard 2014): a small-sample adjusted
  covariance of beta, and for a contrast matrix a scaled F statistic and its denominator df.
* :func:`containment_df`: nlme's ``getFixDF`` (Pinheiro & Bates 2000, sec. 2.4.2): a column
  is estimated in the innermost grouping stratum within which it varies.
* z: infinite degrees of freedom (a Wald z test).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mmteach.lme_deviance import LmeFit, LmeProblem
from mmteach.lme_gradient import theta_derivatives
from mmteach.optim import richardson_derivatives


# ------------------------------------------------------------------------- Satterthwaite
@dataclass(frozen=True)
class SatterthwaiteInfo:
    """Derivatives lmerTest keeps in the fitted model object.

    ``vcov_varpar`` is ``2 H^-1`` (H the Hessian of the deviance in ``(theta, sigma)``,
    inverted on its positive eigenvalues); ``jacobian[i]`` is d vcov(beta) / d varpar_i.
    """

    varpar: np.ndarray
    vcov_varpar: np.ndarray
    jacobian: tuple[np.ndarray, ...]
    hessian: np.ndarray


def satterthwaite_info(fit: LmeFit) -> SatterthwaiteInfo:
    """Hessian of the deviance and Jacobian of vcov(beta) in lmerTest's ``(theta, sigma)``.

    The deviance is lmerTest's ``devfun_vp``: for fixed theta, beta is the penalised least
    squares solution and sigma is free, so
    ``dev = log|L|^2 + pwrss/sigma^2 + n' log(2 pi sigma^2) [+ log|RX|^2]`` with
    ``n' = n - p`` for REML (n for ML). Sigma derivatives are exact; theta ones come from
    the analytic gradients (:func:`mmteach.lme_gradient.theta_derivatives`: the Jacobian
    exact, the Hessian by forward differences of the gradients) where they cover the
    structure, else from Richardson-extrapolated differences of the deviance parts.

    Examples
    --------
    >>> rng = np.random.default_rng(2)
    >>> g = np.repeat(np.arange(8), 6)
    >>> from mmteach.lme_deviance import Block
    >>> X = np.column_stack([np.ones(48), rng.normal(size=48)])
    >>> y = X @ [1.0, 0.5] + rng.normal(size=8)[g] + rng.normal(size=48)
    >>> fit = LmeProblem(y, X, [Block(g, 8, np.ones((48, 1)), "g")]).fit()
    >>> satterthwaite_info(fit).vcov_varpar.shape
    (2, 2)
    """
    pr: LmeProblem = fit.problem
    reml = fit.reml
    theta = fit.theta
    sigma = fit.sigma
    m = theta.size
    p = pr.p
    nprime = pr.n - p if reml else pr.n

    td = theta_derivatives(pr, theta, reml)
    if td is not None:  # analytic gradients (lme_deviance): m + 1 of them, no Richardson
        C = fit.solution.xtvx_inv
        s2 = sigma * sigma
        hess = np.zeros((m + 1, m + 1))
        hess[:m, :m] = td.H_ld + td.H_pw / s2
        hess[:m, m] = hess[m, :m] = -2.0 * td.g_pw / sigma**3
        hess[m, m] = 6.0 * td.pwrss / sigma**4 - 2.0 * nprime / s2
        jac = [s2 * td.dcinv[i] for i in range(m)] + [2.0 * sigma * C]
        return _satterthwaite_from(theta, sigma, hess, jac)

    def parts(t: np.ndarray) -> np.ndarray:
        ldL2, ldRX2, pwrss, _beta, cinv = pr.parts(t)
        d = ldL2 + (ldRX2 if reml else 0.0)
        return np.concatenate([[d, pwrss], cinv.ravel()])

    h = np.array([5e-3 * max(abs(v), 0.05) for v in theta])  # roundoff vs truncation
    f0, g, H = richardson_derivatives(parts, theta, h)
    C = f0[2:].reshape(p, p)
    P = f0[1]
    s2 = sigma * sigma
    hess = np.zeros((m + 1, m + 1))
    for i in range(m):
        for j in range(m):
            hess[i, j] = H[i][j][0] + H[i][j][1] / s2
        hess[i, m] = hess[m, i] = -2.0 * g[i][1] / sigma**3
    hess[m, m] = 6.0 * P / sigma**4 - 2.0 * nprime / s2
    jac = [s2 * g[i][2:].reshape(p, p) for i in range(m)] + [2.0 * sigma * C]
    return _satterthwaite_from(theta, sigma, hess, jac)


def _satterthwaite_from(theta: np.ndarray, sigma: float, hess: np.ndarray, jac: list[np.ndarray]
                        ) -> SatterthwaiteInfo:
    # lmerTest: 2 * pseudo-inverse of the Hessian on eigenvalues above 1e-8
    w, V = np.linalg.eigh(hess)
    pos = w > 1e-8
    vcov_varpar = 2.0 * (V[:, pos] / w[pos]) @ V[:, pos].T
    return SatterthwaiteInfo(np.append(theta, sigma), vcov_varpar, tuple(jac), hess)


# duplicates: its docstring repeats kenward_roger's layout and doctest set-up on purpose: each doctest runs alone
def satterthwaite_df(fit: LmeFit, L: np.ndarray, info: SatterthwaiteInfo | None = None
                     ) -> np.ndarray:
    """Satterthwaite df of each one-dimensional contrast (row of ``L``), as lmerTest.

    Parameters
    ----------
    fit : LmeFit
    L : ndarray, shape (p,) or (c, p)
    info : SatterthwaiteInfo, optional
        Reuse derivatives already computed for this fit.

    Returns
    -------
    ndarray, shape (c,)

    Examples
    --------
    >>> rng = np.random.default_rng(3)
    >>> g = np.repeat(np.arange(10), 5)
    >>> from mmteach.lme_deviance import Block
    >>> X = np.column_stack([np.ones(50), np.repeat(rng.normal(size=10), 5)])
    >>> y = X @ [1.0, 0.5] + rng.normal(size=10)[g] + rng.normal(size=50)
    >>> fit = LmeProblem(y, X, [Block(g, 10, np.ones((50, 1)), "g")]).fit()
    >>> bool(satterthwaite_df(fit, np.eye(2))[1] < 10)
    True
    """
    info = satterthwaite_info(fit) if info is None else info
    L = np.atleast_2d(np.asarray(L, dtype=float))
    V = fit.vcov
    out = np.empty(L.shape[0])
    for r, ell in enumerate(L):
        var = float(ell @ V @ ell)
        grad = np.array([float(ell @ J @ ell) for J in info.jacobian])
        denom = float(grad @ info.vcov_varpar @ grad)
        out[r] = 2.0 * var**2 / denom if denom > 0 else math.inf
    return out


def fstat_ddf(nu: np.ndarray, tol: float = 1e-8) -> np.ndarray:
    """lmerTest's get_Fstat_ddf: combine per-eigen-direction df (last axis) into one F denominator df.

    ``nu`` is (q,) for one test or (R, q) for R tests at once (the simulation's batches).

    Examples
    --------
    >>> fstat_ddf(np.array([[10.0, 10.0], [5.0, 50.0], [1.5, 9.0]])).round(3).tolist()
    [10.0, 7.647, 2.0]
    """
    nu = np.asarray(nu, dtype=float)
    q = nu.shape[-1]
    if q == 1:
        return nu[..., 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        e = (nu / (nu - 2.0)).sum(-1)
        out = 2.0 * e / (e - q)
    out = np.where(np.any(nu <= 2.0, axis=-1), 2.0, out)
    equal = np.all(np.abs(np.diff(nu, axis=-1)) < tol, axis=-1)
    return np.where(equal, nu.mean(-1), out)


def satterthwaite_f(fit: LmeFit, L: np.ndarray, info: SatterthwaiteInfo | None = None
                    ) -> tuple[float, int, float]:
    """F test of ``L beta = 0`` with Satterthwaite denominator df (lmerTest's contestMD).

    Returns ``(F, num_df, den_df)``.
    """
    info = satterthwaite_info(fit) if info is None else info
    L = np.atleast_2d(np.asarray(L, dtype=float))
    VL = L @ fit.vcov @ L.T
    d, P = np.linalg.eigh(VL)
    order = np.argsort(d)[::-1]
    d, P = d[order], P[:, order]
    tol = max(np.finfo(float).eps ** 0.5 * d[0], 0.0)
    q = int(np.sum(d > tol))
    PtL = (P.T @ L)[:q]
    t2 = (PtL @ fit.beta) ** 2 / d[:q]
    F = float(np.sum(t2) / q)
    nu = np.empty(q)
    for i in range(q):
        grad = np.array([float(PtL[i] @ J @ PtL[i]) for J in info.jacobian])
        nu[i] = 2 * d[i] ** 2 / float(grad @ info.vcov_varpar @ grad)
    return F, q, float(fstat_ddf(nu))


# ------------------------------------------------------------------------- Kenward-Roger
@dataclass(frozen=True)
class KenwardRoger:
    """pbkrtest's ``vcovAdj``: adjusted covariance ``PhiA`` with the pieces for the df."""

    phi: np.ndarray  # unadjusted vcov(beta)
    phi_adj: np.ndarray
    P: tuple[np.ndarray, ...]
    W: np.ndarray

    def df(self, L: np.ndarray) -> np.ndarray:
        """Denominator df of each one-dimensional contrast (row of L): pbkrtest's Lb_ddf."""
        L = np.atleast_2d(np.asarray(L, dtype=float))
        return np.array([self._adjust(row[None, :])[1] for row in L])

    def se(self, L: np.ndarray) -> np.ndarray:
        """Standard errors from the adjusted covariance (what lmerTest's summary prints)."""
        L = np.atleast_2d(np.asarray(L, dtype=float))
        return np.sqrt(np.einsum("ij,jk,ik->i", L, self.phi_adj, L))

    def f_test(self, L: np.ndarray, beta: np.ndarray) -> tuple[float, int, float]:
        """``(F, num_df, den_df)``: pbkrtest's scaled Wald F for ``L beta = 0``."""
        L = np.atleast_2d(np.asarray(L, dtype=float))
        scaling, ddf, q = self._adjust(L)
        Lb = L @ beta
        wald = float(Lb @ np.linalg.solve(L @ self.phi_adj @ L.T, Lb))
        return scaling * wald / q, q, ddf

    def _adjust(self, L: np.ndarray) -> tuple[float, float, int]:
        """F scaling, denominator df and rank (pbkrtest's .KR_adjust)."""
        phi = self.phi
        Theta = L.T @ np.linalg.solve(L @ phi @ L.T, L)
        ThetaPhi = Theta @ phi
        n = len(self.P)
        A1 = A2 = 0.0
        us = [ThetaPhi @ Pi @ phi for Pi in self.P]
        for i in range(n):
            for j in range(i, n):
                e = 1.0 if i == j else 2.0
                A1 += e * self.W[i, j] * np.trace(us[i]) * np.trace(us[j])
                A2 += e * self.W[i, j] * float(np.sum(us[i] * us[j].T))
        q = int(np.linalg.matrix_rank(L))
        B = (A1 + 6 * A2) / (2 * q)
        g = ((q + 1) * A1 - (q + 4) * A2) / ((q + 2) * A2)
        den = 3 * q + 2 * (1 - g)
        c1, c2, c3 = g / den, (q - g) / den, (q + 2 - g) / den
        V0 = 1 + c1 * B
        V1 = 1 - c2 * B
        V2 = 1 - c3 * B
        V0 = 0.0 if abs(V0) < 1e-10 else V0
        ratio = (1 - A2 / q) / V1 if abs(V1) > 1e-10 else 0.0
        rho = ratio**2 * V0 / V2 / q
        ddf = 4 + (q + 2) / (q * rho - 1)
        scaling = 1.0 if abs(ddf - 2) < 1e-2 else ddf * (1 - A2 / q) / (ddf - 2)
        return scaling, ddf, q


# duplicates: its docstring repeats satterthwaite_df's layout and doctest set-up on purpose: each doctest runs alone
def kenward_roger(fit: LmeFit) -> KenwardRoger:
    """Kenward-Roger adjusted covariance of beta, as ``pbkrtest::vcovAdj``.

    The variance parameters are the elements of each random term's covariance matrix and
    the residual variance (pbkrtest's linear parametrisation, ``V = sum_r gamma_r G_r``
    with ``G_r = Z E_r Z'`` and ``G = I`` for the residual). pbkrtest works with n x n
    matrices; here every product is taken to the random-effects space with Woodbury,
    ``V^-1 = (I - Z M Z') / s2`` with ``M = Lambda A^-1 Lambda'`` and
    ``A = Lambda' Z'Z Lambda + I``, where ``A^-1`` comes from the solve's block factorisation
    (block diagonal big factor + Schur complement). Only q x q matrices are formed, ``Z'Z``
    and ``Lambda`` stay sparse, and the traces ``tr(E_r K E_s K)`` read just the sub-blocks
    of ``K = Z' V^-1 Z`` of the two terms involved.
    An ML fit is refitted by REML first, as pbkrtest does.

    Examples
    --------
    >>> rng = np.random.default_rng(4)
    >>> g = np.repeat(np.arange(8), 6)
    >>> from mmteach.lme_deviance import Block
    >>> X = np.column_stack([np.ones(48), np.repeat(rng.normal(size=8), 6)])
    >>> y = X @ [1.0, 0.5] + rng.normal(size=8)[g] + rng.normal(size=48)
    >>> kr = kenward_roger(LmeProblem(y, X, [Block(g, 8, np.ones((48, 1)), "g")]).fit())
    >>> bool(kr.df(np.array([0.0, 1.0]))[0] < 8)
    True
    """
    pr = fit.problem
    if not fit.reml:
        fit = pr.fit(reml=True, theta0=fit.theta)
    X = pr.X
    n, p = X.shape
    s2 = fit.sigma**2
    Z = pr.z_matrix()
    q = Z.shape[1]
    Lam = pr.lambda_matrix(fit.theta)
    Mw = np.asarray((Lam @ (Lam @ pr.a_inverse(fit.theta)).T).T)  # Lambda A^-1 Lambda'
    Mw = 0.5 * (Mw + Mw.T)
    C = (Z.T @ Z).tocsr()
    CM = np.asarray(C @ Mw)  # C M; (C M)' = M C
    N = np.eye(q) - CM.T  # I - M C
    K = np.asarray(C @ N) / s2  # Z' V^-1 Z = C (I - M C) / s2
    K = 0.5 * (K + K.T)
    Y = (X - Z @ (Mw @ np.asarray(Z.T @ X))) / s2  # V^-1 X
    Czx = np.asarray(Z.T @ Y)  # Z' V^-1 X
    Dxx = Y.T @ Y  # X' V^-2 X
    Dzx = N.T @ Czx / s2  # Z' V^-2 X
    X3 = (Dxx - Czx.T @ Mw @ Czx) / s2  # X' V^-3 X
    tr_sinv2 = (n - 2 * np.trace(CM) + float(np.sum(CM * CM.T))) / s2**2  # tr V^-2
    phi = np.linalg.inv(X.T @ Y)
    phi = 0.5 * (phi + phi.T)

    # the variance parameters: for block b and terms (i, j), E_r = I_levels (x) (e_i e_j' +
    # e_j e_i') on the block's random effects (e_i e_i' on the diagonal)
    pars: list[tuple[int, int, int]] = []
    index = [pr.block_index(b) for b in range(len(pr.blocks))]
    for b, idx in enumerate(index):
        k = idx.shape[1]
        for j in range(k):
            for i in range(j, k):
                pars.append((b, i, j))
    nr = len(pars)
    ng = nr + 1

    def e_times(r: int, Mat: np.ndarray) -> np.ndarray:
        """E_r @ Mat for a q x m matrix (nonzero only on the rows of the block)."""
        b, i, j = pars[r]
        idx = index[b]
        out = np.zeros_like(Mat)
        out[idx[:, i]] += Mat[idx[:, j]]
        if i != j:
            out[idx[:, j]] += Mat[idx[:, i]]
        return out

    def sym_unit(k: int, i: int, j: int) -> np.ndarray:
        S = np.zeros((k, k))
        S[i, j] = S[j, i] = 1.0
        return S

    ECzx = [e_times(r, Czx) for r in range(nr)]
    # the diagonal blocks (per level) of Z' V^-2 Z = K (I - M C) / s2
    dzz_diag = {}
    for b, idx in enumerate(index):
        lv, k = idx.shape
        Kb = K[idx.ravel()].reshape(lv, k, q)
        Nb = N[:, idx.ravel()].reshape(q, lv, k)
        dzz_diag[b] = np.einsum("laj,jlb->lab", Kb, Nb) / s2
    # tr(E_r K E_s K) from the (block b, block c) sub-block of K
    t4: dict[tuple[int, int], np.ndarray] = {}
    for b, ib in enumerate(index):
        for c in range(b, len(index)):
            ic = index[c]
            Kbc = K[np.ix_(ib.ravel(), ic.ravel())].reshape(ib.shape[0], ib.shape[1],
                                                               ic.shape[0], ic.shape[1])
            t4[(b, c)] = np.einsum("lbmc,lamd->abcd", Kbc, Kbc)

    P = [-(Czx.T @ ec) for ec in ECzx] + [-Dxx]
    Q: list[list[np.ndarray | None]] = [[None] * ng for _ in range(ng)]
    Kt = np.zeros((ng, ng))
    KEC = [None] * nr
    for s_ in range(nr):
        rows = index[pars[s_][0]].ravel()
        KEC[s_] = K[:, rows] @ ECzx[s_][rows]
    for r in range(nr):
        br, ir, jr = pars[r]
        kr_ = index[br].shape[1]
        Sr = sym_unit(kr_, ir, jr)
        for s_ in range(r, nr):
            bs, is_, js = pars[s_]
            Ss = sym_unit(index[bs].shape[1], is_, js)
            Q[r][s_] = ECzx[r].T @ KEC[s_]
            if br <= bs:
                T = t4[(br, bs)]
                Kt[r, s_] = float(np.einsum("ab,cd,abcd->", Sr, Ss, T))
            else:
                T = t4[(bs, br)]
                Kt[r, s_] = float(np.einsum("ab,cd,abcd->", Ss, Sr, T))
            Kt[s_, r] = Kt[r, s_]
        Q[r][nr] = ECzx[r].T @ Dzx
        Kt[r, nr] = Kt[nr, r] = float(np.einsum("ab,lab->", Sr, dzz_diag[br]))
    Q[nr][nr] = X3
    Kt[nr, nr] = tr_sinv2
    IE2 = np.zeros((ng, ng))
    PhiP = [phi @ Pr for Pr in P]
    for r in range(ng):
        for s_ in range(r, ng):
            IE2[r, s_] = IE2[s_, r] = (Kt[r, s_] - 2 * float(np.sum(phi * Q[r][s_]))
                                       + float(np.sum(PhiP[r] * PhiP[s_].T)))
    ev = np.linalg.eigvalsh(IE2)
    W = 2 * np.linalg.inv(IE2) if np.min(np.abs(ev)) > 1e-10 else 2 * np.linalg.pinv(IE2)
    W = 0.5 * (W + W.T)
    U = np.zeros((p, p))
    for i in range(ng - 1):
        for j in range(i + 1, ng):
            U += W[i, j] * (Q[i][j] - P[i] @ phi @ P[j])
    U = U + U.T
    for i in range(ng):
        U += W[i, i] * (Q[i][i] - P[i] @ phi @ P[i])
    phi_adj = phi + 2 * phi @ U @ phi
    return KenwardRoger(phi=phi, phi_adj=phi_adj, P=tuple(P), W=W)


# ------------------------------------------------------------------------- containment
def containment_df(X: np.ndarray, assign: Sequence[int], groups: Sequence[np.ndarray]
                   ) -> tuple[np.ndarray, np.ndarray]:
    """nlme's containment (between-within) df for each column and each term of X.

    Parameters
    ----------
    X : ndarray, shape (n, p)
    assign : sequence of int
        Term index per column (0 = intercept), as ``ModelFrame.assign``.
    groups : sequence of ndarray
        Integer level codes of the grouping factors, outermost (fewest levels) first; an
        inner factor nested in an outer one must have its levels unique across the outer.

    Returns
    -------
    (column_df, term_df) : ndarray, ndarray
        ``term_df`` has one entry per distinct value of ``assign`` in increasing order.

    Examples
    --------
    Example 1's layout: 24 mice, treatment constant within a mouse.

    >>> mouse = np.repeat(np.arange(4), 3)
    >>> X = np.column_stack([np.ones(12), (mouse >= 2).astype(float)])
    >>> containment_df(X, [0, 1], [mouse])[0].tolist()
    [8.0, 2.0]
    """
    X = np.asarray(X, dtype=float)
    n, p = X.shape
    assign = list(assign)
    ngrps = [int(np.unique(g).size) for g in groups]
    Q = len(groups)
    strata = ngrps + [n]
    dfX = np.array(strata, dtype=float) - np.array([0] + ngrps, dtype=float)
    dfT = dfX.copy()

    def const(x: np.ndarray) -> bool:
        tol = math.sqrt(np.finfo(float).eps)
        y = x if x[0] == 0 else x / x[0] - 1
        return bool(np.all(np.abs(y) < tol))

    notint = np.array([not const(X[:, j]) for j in range(p)])
    term_ids = sorted(set(assign))
    valX = np.zeros(p)
    valT = np.zeros(len(term_ids))
    if notint.any():
        inn = np.ones((p, Q + 1))
        for qi, g in enumerate(groups):
            for j in range(p):
                inn[j, qi + 1] = _inner_fraction(X[:, j], np.asarray(g))
        stratX = np.array([max(i for i in range(Q + 1) if inn[j, i] > 0) for j in range(p)])
        col_of = {t: [j for j in range(p) if assign[j] == t] for t in term_ids}
        notint_t = np.array([notint[col_of[t]].any() for t in term_ids])
        strat_t = np.array([max(stratX[col_of[t]]) for t in term_ids])
        for s in stratX[notint]:
            dfX[s] -= 1
        if not notint.all():
            dfX[0] -= 1
        else:
            dfX[1:] += 1
        valX[notint] = dfX[stratX[notint]]
        for ti, t in enumerate(term_ids):
            if notint_t[ti]:
                dfT[strat_t[ti]] -= len(col_of[t])
        if not notint_t.all():
            dfT[0] -= 1
        else:
            dfT[1:] += 1
        valT[notint_t] = dfT[strat_t[notint_t]]
    else:
        notint_t = np.zeros(len(term_ids), dtype=bool)
    if not notint.all():
        valX[~notint] = dfX.max()
        valT[~notint_t] = dfT.max()
    return valX, valT


def _inner_fraction(x: np.ndarray, g: np.ndarray) -> float:
    """Fraction of groups within which x is not constant (nlme's inner_perc)."""
    order = np.argsort(g, kind="stable")
    gs, xs = g[order], x[order]
    starts = np.flatnonzero(np.r_[True, gs[1:] != gs[:-1]])
    first = np.repeat(xs[starts], np.diff(np.r_[starts, gs.size]))
    varies = np.add.reduceat((xs != first).astype(int), starts) > 0
    return float(varies.mean())
