"""Numerical core of the generalized linear mixed model (GLMM), as lme4's ``glmer``.

The model is ``g(E[y | u]) = X beta + Z Lambda(theta) u`` with spherical random effects
``u ~ N(0, I)``; ``Lambda`` holds the relative Cholesky factors ``T`` of each random-effects
term (lme4's ``theta`` is the column-major lower triangle of ``T``).

* Penalised IRLS (PIRLS) finds the conditional modes ``u`` for given ``(theta, beta)``.
* The Laplace deviance is ``-2 sum log f(y | u) + |u|^2 + log det(I + Lambda'Z'WZ Lambda)``
  (lme4's ``aic + sqrL + ldL2``), with Fisher weights ``W`` at the modes.
* Adaptive Gauss-Hermite quadrature (``nagq > 1``) for one scalar random intercept, on
  lme4's scale (sum of deviance residuals, as ``glmerAGQ``).
* The deviance is minimised over ``(theta, beta)`` jointly (glmer's stage 2) by a damped
  Newton method; the diagonal of each ``T`` is left free in sign (the deviance does not
  change when a column of ``T`` flips sign) so the problem is unconstrained, and signs are
  normalised at the end. For one scalar random-effects term with a canonical link (logit,
  log) under Laplace, :mod:`mmteach.glmm_scalar` does this with the exact gradient and
  Hessian (see :func:`uses_fast_path`). Several terms with a canonical link have the
  analytic gradient :func:`laplace_gradient`: stage 2 is then L-BFGS-B (bounded diagonal)
  and the Hessian central differences of the gradient; otherwise the derivatives are
  finite differences.
* ``vcov(beta)`` is ``2 H^-1`` restricted to beta, where ``H`` is the central finite
  difference Hessian (step 1e-4) of the deviance over ``(theta, beta)`` (or of its
  gradient): what ``vcov(glmer_fit)`` uses by default (``use.hessian = TRUE``).

Everything works on a batch of responses (leading axis) when there is a single
random-effects term, which makes the parametric bootstrap a handful of array operations
(:func:`fit_batch`, :func:`mmteach.glmm_scalar.fit_nested`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.linalg.lapack import dpotrf, dpotri
from scipy.optimize import minimize
from scipy.special import ndtri

from mmteach import glmm_scalar as fast
from mmteach.errors import MMTeachError, ModelError
from mmteach.families import Response, check_family, mu_eta
from mmteach.optim import backtrack, fd_derivatives, newton_minimize, newton_step
from mmteach.sparse_chol import RowPattern


# --------------------------------------------------------------------------------------
# problem specification
# --------------------------------------------------------------------------------------
# duplicates: the fields and k/m properties mirror model_frame.RandomBlock on purpose (this one adds theta_slice)
@dataclass(frozen=True)
class TermSpec:
    """One random-effects term: ``k`` covarying terms for ``m`` levels of ``group``."""

    group: str
    terms: tuple[str, ...]
    levels: tuple[str, ...]
    codes: np.ndarray
    Z: np.ndarray  # (n, k) raw columns
    theta_slice: slice  # where its lower triangle sits in theta

    @property
    def k(self) -> int:
        return len(self.terms)

    @property
    def m(self) -> int:
        return len(self.levels)

    def T(self, theta: np.ndarray) -> np.ndarray:
        """Lower-triangular relative factor(s), shape ``(..., k, k)``."""
        th = theta[..., self.theta_slice]
        k = self.k
        out = np.zeros(th.shape[:-1] + (k, k))
        rows, cols = _tril_colmajor(k)
        out[..., rows, cols] = th
        return out


def _tril_colmajor(k: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of the lower triangle in column-major (lme4) order."""
    rows, cols = [], []
    for c in range(k):
        for r in range(c, k):
            rows.append(r)
            cols.append(c)
    return np.array(rows), np.array(cols)


@dataclass(frozen=True)
class GlmmSpec:
    """Everything about a GLMM except the response values.

    Build it with :func:`make_spec`.
    """

    X: np.ndarray
    trials: np.ndarray
    family: str
    link: str
    terms: tuple[TermSpec, ...]
    n_theta: int
    diag_index: np.ndarray  # positions of diagonal elements of the T's in theta
    offset: np.ndarray  # (len(terms)+1,) start of each term in u
    _cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def single(self) -> bool:
        """True when there is one random-effects term (block-diagonal fast path)."""
        return len(self.terms) == 1

    @property
    def q(self) -> int:
        return int(self.offset[-1])

    def level_sum(self, v: np.ndarray) -> np.ndarray:
        """Sum ``v`` (..., n) over the rows of each level of the single term -> (..., m).

        Rows are visited grouped by level and summed with ``np.add.reduceat``: no BLAS
        call, so no thread start-up and no slow path for strided batch arrays.
        """
        if "perm" not in self._cache:
            codes = self.terms[0].codes
            m = self.terms[0].m
            perm = np.argsort(codes, kind="stable")
            counts = np.bincount(codes, minlength=m)
            starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
            sorted_ = bool(np.all(np.diff(codes) >= 0))
            self._cache["perm"] = None if sorted_ else perm
            self._cache["starts"] = starts
            self._cache["empty"] = bool(np.any(counts == 0))
        if self._cache["empty"]:
            out = np.zeros(v.shape[:-1] + (self.terms[0].m,))
            np.add.at(np.moveaxis(out, -1, 0), self.terms[0].codes, np.moveaxis(v, -1, 0))
            return out
        perm = self._cache["perm"]
        if perm is not None:
            v = v[..., perm]
        return np.add.reduceat(v, self._cache["starts"], axis=-1)

    def theta_start(self) -> np.ndarray:
        """lme4's default start: 1 on the diagonal of each T, 0 elsewhere."""
        th = np.zeros(self.n_theta)
        th[self.diag_index] = 1.0
        return th


def make_spec(
    X: np.ndarray,
    blocks: Sequence[Any],
    *,
    family: str = "binomial",
    link: str | None = None,
    trials: np.ndarray | None = None,
) -> GlmmSpec:
    """Collect the design of a GLMM.

    Parameters
    ----------
    X : (n, p) fixed-effects model matrix.
    blocks : objects with ``group``, ``codes``, ``levels``, ``terms``, ``Z`` (a
        :class:`mmteach.model_frame.RandomBlock` or anything shaped like it), in lme4's order.
    family, link : "binomial" (logit or probit) or "poisson" (log).
    trials : (n,) binomial trials for ``cbind`` responses; ones (Bernoulli) if None.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> blk = SimpleNamespace(group="g", codes=np.array([0, 0, 1, 1]), levels=("a", "b"),
    ...                       terms=("(Intercept)",), Z=np.ones((4, 1)))
    >>> spec = make_spec(np.ones((4, 1)), [blk])
    >>> spec.n_theta, spec.q
    (1, 2)
    """
    fam, lk = check_family(family, link)
    X = np.asarray(X, dtype=float)
    n = X.shape[0]
    if not blocks:
        raise ModelError(
            "A GLMM needs at least one random-effects term such as (1 | mouse); without "
            "one, fit an ordinary GLM instead."
        )
    terms, diag, offs = [], [], [0]
    pos = 0
    for b in blocks:
        Z = np.asarray(b.Z, dtype=float).reshape(n, -1)
        k = Z.shape[1]
        ntri = k * (k + 1) // 2
        rows, cols = _tril_colmajor(k)
        diag.extend(pos + np.flatnonzero(rows == cols))
        terms.append(
            TermSpec(str(b.group), tuple(b.terms), tuple(str(v) for v in b.levels),
                     np.asarray(b.codes, dtype=np.intp), Z, slice(pos, pos + ntri))
        )
        pos += ntri
        offs.append(offs[-1] + k * len(b.levels))
    tr = np.ones(n) if trials is None else np.asarray(trials, dtype=float)
    if fam == "poisson":
        tr = np.ones(n)
    return GlmmSpec(X, tr, fam, lk, tuple(terms), pos, np.array(diag, dtype=np.intp),
                    np.array(offs, dtype=np.intp))


# --------------------------------------------------------------------------------------
# PIRLS and the Laplace / AGQ deviance
# --------------------------------------------------------------------------------------
def _single_a(spec: GlmmSpec, theta: np.ndarray) -> np.ndarray:
    """Rows of Z Lambda for the single term: a_i = T' z_i, shape (..., n, k)."""
    t = spec.terms[0]
    T = t.T(theta)  # (..., k, k)
    return t.Z @ T  # (n, k) @ (..., k, k) broadcasts; matmul is much faster than einsum here


def _pirls_single(spec, resp, theta, beta, u):
    """PIRLS for a single term: levels are independent Newton problems.

    Returns (u, eta, mu, dmu, per-level Hessians H (..., m, k, k), ok flag).
    """
    t = spec.terms[0]
    k, codes = t.k, t.codes
    a = _single_a(spec, theta)  # (..., n, k)
    eta0 = beta @ spec.X.T  # (..., n)
    canon = spec.link in ("logit", "log")

    def lin(uu):
        # a sum over the k columns: einsum is several times slower for small k
        ug = uu[..., codes, :]
        out = eta0 + a[..., 0] * ug[..., 0]
        for j in range(1, k):
            out = out + a[..., j] * ug[..., j]
        return out

    def pdev_levels(eta, uu):
        mu, dmu = mu_eta(eta, spec.link)
        ll = spec.level_sum(resp.loglik_rows(mu))
        return -2 * ll + np.sum(uu * uu, axis=-1), mu, dmu, ll

    eta = lin(u)
    dev, mu, dmu, ll = pdev_levels(eta, u)
    ok = True
    for _ in range(60):
        r, w = resp.score_weight(mu, dmu, canon)
        grad = np.stack([spec.level_sum(r * a[..., j]) for j in range(k)], -1) - u
        H = _level_hessian(spec, a, w)
        if k == 1:
            delta = grad / H[..., 0]
        else:
            delta = np.linalg.solve(H, grad[..., None])[..., 0]
        step = np.ones(dev.shape)
        state: list[Any] = []

        def try_levels(els: np.ndarray, t: np.ndarray, u: np.ndarray = u, delta: np.ndarray = delta,
                       dev: np.ndarray = dev, step: np.ndarray = step, state: list[Any] = state) -> np.ndarray:
            # every level's step is its own line search; all levels are evaluated together
            step.flat[els] = t
            unew = u + step[..., None] * delta
            enew = lin(unew)
            state[:] = [unew, enew, *pdev_levels(enew, unew)]
            return (state[2] <= dev + 1e-10 * np.abs(dev)).flat[els]

        failed, t = backtrack(try_levels, step.ravel(), halvings=30)
        step.flat[:] = t
        if failed.any():
            ok = False
        unew, enew, dnew, mnew, dmnew, llnew = state
        change = np.max(np.abs(step[..., None] * delta)) if delta.size else 0.0
        u, eta, dev, mu, dmu, ll = unew, enew, dnew, mnew, dmnew, llnew
        if change < 1e-9:
            break
    else:
        ok = False
    _, w = resp.score_weight(mu, dmu, canon)
    H = _level_hessian(spec, a, w)
    return u, eta, mu, H, ok, ll


def _level_hessian(spec, a, w):
    """I + sum_i w_i a_i a_i' for every level, shape (..., m, k, k)."""
    k = a.shape[-1]
    H = np.empty(w.shape[:-1] + (spec.terms[0].m, k, k))
    for i in range(k):
        for j in range(i, k):
            s = spec.level_sum(w * a[..., i] * a[..., j])
            H[..., i, j] = s + (1.0 if i == j else 0.0)
            H[..., j, i] = H[..., i, j]
    return H


def _logdet(H: np.ndarray) -> np.ndarray:
    if H.shape[-1] == 1:
        return np.log(H[..., 0, 0])
    return np.linalg.slogdet(H)[1]


def _ghrule(nagq: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Hermite nodes and weights for the standard normal (lme4's GHrule)."""
    z, w = np.polynomial.hermite_e.hermegauss(nagq)
    return z, w / math.sqrt(2 * math.pi)


def deviance_single(spec, resp, theta, beta, u, nagq=1):
    """Laplace (nagq = 1) or AGQ deviance for a single term, batched.

    ``theta`` (..., n_theta), ``beta`` (..., p), ``u`` (..., m, k) start values.
    Returns ``(deviance (...), u_mode, ok)``.
    """
    u, eta, mu, H, ok, ll_lvl = _pirls_single(spec, resp, theta, beta, u)
    usq = np.sum(u * u, axis=(-1, -2))
    ldl2 = np.sum(_logdet(H), axis=-1)
    if nagq <= 1:
        dev = -2 * (np.sum(ll_lvl, axis=-1) + resp.const) + usq + ldl2
        return dev, u, ok
    ll = resp.loglik_rows(mu)
    # Adaptive GHQ around the modes with sd = 1/sqrt(H) per level (lme4's glmerAGQ).
    t = spec.terms[0]
    a = _single_a(spec, theta)[..., 0]  # (..., n)
    devres_lvl = 2 * spec.level_sum(resp.llsat - ll)
    devc0 = devres_lvl + u[..., 0] ** 2
    sd = 1.0 / np.sqrt(H[..., 0, 0])
    z, w = _ghrule(nagq)
    eta0 = eta - a * u[..., t.codes, 0]
    mult = np.zeros(devc0.shape)
    for zk, wk in zip(z, w):
        if zk == 0:
            mult = mult + wk * math.sqrt(2 * math.pi)
            continue
        uk = u[..., 0] + zk * sd
        muk, _ = mu_eta(eta0 + a * uk[..., t.codes], spec.link)
        devc = 2 * spec.level_sum(resp.llsat - resp.loglik_rows(muk)) + uk**2
        mult = mult + np.exp(-0.5 * (devc - devc0) + 0.5 * zk * zk) * wk * math.sqrt(
            2 * math.pi)
    # lme4 leaves a log(2 pi) per level in its AGQ deviance; kept so logLik matches glmer.
    dev = (np.sum(devc0, axis=-1) + ldl2 - 2 * np.sum(np.log(mult), axis=-1)
           + devc0.shape[-1] * math.log(2 * math.pi))
    return dev, u, ok


def _sparse_design(spec: GlmmSpec) -> RowPattern:
    """The fixed pattern of ``A = Z Lambda`` for several terms: row ``i`` has one non-zero
    per term column, at the level of row ``i`` (cached on the spec)."""
    if "sparse" not in spec._cache:
        cols = []
        for j, t in enumerate(spec.terms):
            base = spec.offset[j] + t.codes * t.k
            cols.extend(base + c for c in range(t.k))
        spec._cache["sparse"] = RowPattern(np.column_stack(cols), spec.q)
    return spec._cache["sparse"]


def _a_values(spec: GlmmSpec, theta: np.ndarray) -> np.ndarray:
    """Non-zero values of ``Z Lambda(theta)``, (n, r): ``z_ij' T_j`` for each term j."""
    return np.column_stack([t.Z @ t.T(theta) for t in spec.terms])


def pirls_general(spec: GlmmSpec, resp: Response, theta: np.ndarray, beta: np.ndarray,
                  u: np.ndarray, *, with_beta: bool = False) -> tuple[float, np.ndarray, np.ndarray]:
    """Penalised IRLS for several terms, sparse; the Laplace deviance at the modes.

    With ``with_beta`` the fixed effects are updated jointly with ``u`` (glmer's
    ``nAGQ = 0`` stage, where beta is part of PIRLS); otherwise beta stays fixed.
    Steps are halved until the penalised deviance decreases, so PIRLS never leaves the
    region where it is finite. Returns ``(deviance, u, beta)``; the deviance is ``inf``
    where the fit breaks down numerically.
    """
    sd = _sparse_design(spec)
    a = _a_values(spec, theta)
    X = spec.X
    canon = spec.link in ("logit", "log")

    def pdev(uu, bb):
        mu, dmu = mu_eta(X @ bb + sd.times(a, uu), spec.link)
        ll = float(np.sum(resp.loglik_rows(mu)))
        return -2 * ll + float(uu @ uu), mu, dmu, ll

    dev, mu, dmu, ll = pdev(u, beta)
    if not np.isfinite(dev):
        return math.inf, u, beta
    try:
        for _ in range(80):
            r, w = resp.score_weight(mu, dmu, canon)
            sd.chol.factor(sd.hessian(a, w))
            gu = sd.at(a, r) - u
            if with_beta:
                # Schur complement of the u block: beta's equations after eliminating u
                hub = sd.at(a, w[:, None] * X)
                G = sd.chol.solve(hub)
                S = X.T @ (X * w[:, None]) - hub.T @ G
                x0 = sd.chol.solve(gu)
                db = np.linalg.solve(S, X.T @ r - hub.T @ x0)
                du = x0 - G @ db
            else:
                du, db = sd.chol.solve(gu), np.zeros_like(beta)
            tried: list[Any] = []

            def try_step(_rows: np.ndarray, t: np.ndarray, u: np.ndarray = u, beta: np.ndarray = beta,
                         du: np.ndarray = du, db: np.ndarray = db, dev: float = dev,
                         tried: list[Any] = tried) -> np.ndarray:
                tried[:] = pdev(u + t[0] * du, beta + t[0] * db)
                # rounding slack: the last steps (1e-8) must be taken, because the log
                # determinant is not stationary at the mode and would keep their error
                return np.array([tried[0] <= dev + 1e-11 * (1.0 + abs(dev))])

            failed, t = backtrack(try_step)
            if failed[0]:
                break  # no decrease along the Newton direction: at the mode to precision
            step = float(t[0])
            u, beta = u + step * du, beta + step * db
            dev, mu, dmu, ll = tried
            size = step * max(np.max(np.abs(du), initial=0.0), np.max(np.abs(db), initial=0.0))
            # a full Newton step of 1e-7 leaves an error of order 1e-14 (quadratic
            # convergence): one factorisation fewer than waiting for a step of 1e-10
            if size < 1e-10 or (step == 1.0 and size < 1e-7):
                break
        _, w = resp.score_weight(mu, dmu, canon)
        sd.chol.factor(sd.hessian(a, w))
        ldl2 = sd.chol.logdet()
    except (np.linalg.LinAlgError, ValueError, FloatingPointError):
        return math.inf, u, beta
    out = -2 * (ll + float(resp.const)) + float(u @ u) + ldl2
    return (out if np.isfinite(out) else math.inf), u, beta


GRAD_MAX_Q = 1500  # the Laplace gradient below forms A^-1 densely (q^3)
STAGE1_STEPS = 1
SCHUR_Q2 = 400  # beyond, A^-1 on the rows' non-zeros comes from a dense inverse of A


def laplace_gradient_supported(spec: GlmmSpec) -> bool:
    """Canonical links (logit, log) and a dense ``A^-1`` that stays cheap."""
    return spec.link in ("logit", "log") and spec.q <= GRAD_MAX_Q


def _inverse_on_rows(spec: GlmmSpec, A) -> np.ndarray:  # noqa: ANN001 - scipy CSC
    """``A^-1`` on each row's non-zeros: ``(n, r, r)`` with ``[i, s, t] = A^-1[c_is, c_it]``
    (``c_i`` the columns of row ``i`` of Z), and ``A`` factored in the design's Cholesky
    for solves.

    The first term (most levels) is block diagonal in ``A``; with the rest small (``q2``),
    ``A^-1`` follows from the Schur complement ``S = A22 - A21 A11^-1 A12``:
    ``[[A11^-1 + Y S^-1 Y', -Y S^-1], [., S^-1]]`` with ``Y = A11^-1 A12``. A row meets
    one level of the first term, so only the diagonal blocks of the first part are formed,
    and the rows read the three parts directly (a dense q x q inverse and its gather cost
    1.4 ms of a 3 ms gradient on glmm_crossed_7584).
    """
    sd = _sparse_design(spec)
    sd.chol.factor(A)
    D = A.toarray()
    cols = sd.cols
    t0 = spec.terms[0]
    k1, l1 = t0.k, t0.m
    q1 = int(spec.offset[1])
    q2 = spec.q - q1
    if q2 > SCHUR_Q2 or q2 == 0:
        L, info = dpotrf(D, lower=1)
        if info:
            raise np.linalg.LinAlgError("A is not positive definite")
        Ainv, info = dpotri(L, lower=1)  # from the Cholesky factor: a third of inv()'s work
        Ainv = np.tril(Ainv) + np.tril(Ainv, -1).T
        return Ainv[cols[:, :, None], cols[:, None, :]]
    idx = np.arange(q1).reshape(l1, k1)
    A11 = D[idx[:, :, None], idx[:, None, :]]  # (l1, k1, k1)
    A11inv = 1.0 / A11 if k1 == 1 else np.linalg.inv(A11)
    A12 = D[:q1, q1:].reshape(l1, k1, q2)
    Y = A11inv * A12 if k1 == 1 else A11inv @ A12
    S = D[q1:, q1:] - A12.reshape(q1, q2).T @ Y.reshape(q1, q2)
    L, info = dpotrf(S, lower=1)
    if info:
        raise np.linalg.LinAlgError("A is not positive definite")
    Sinv, _ = dpotri(L, lower=1)
    Sinv = np.tril(Sinv) + np.tril(Sinv, -1).T
    YS = Y.reshape(q1, q2) @ Sinv
    B11 = A11inv + np.einsum("lak,lbk->lab", YS.reshape(l1, k1, q2), Y)
    # a row's first k1 columns are the first term's (its level's block), the rest the others'
    c1, c2 = cols[:, :k1], cols[:, k1:] - q1
    out = np.empty((cols.shape[0], cols.shape[1], cols.shape[1]))
    out[:, :k1, :k1] = B11[c1[:, 0] // k1]
    out[:, :k1, k1:] = -YS[c1[:, :, None], c2[:, None, :]]
    out[:, k1:, :k1] = np.swapaxes(out[:, :k1, k1:], 1, 2)
    out[:, k1:, k1:] = Sinv[c2[:, :, None], c2[:, None, :]]
    return out


def laplace_gradient(spec: GlmmSpec, resp: Response, theta: np.ndarray, beta: np.ndarray,
                     u: np.ndarray, with_du: bool = False):  # noqa: ANN201 - array or pair
    """Gradient of the Laplace deviance in ``(theta, beta)`` at the conditional modes ``u``.

    With ``a = Z Lambda``, ``A = a'Wa + I``, score ``r`` and weights ``w`` (canonical link,
    so ``dr/deta = -w``), for a parameter ``phi`` moving ``eta`` by ``e = d eta/d phi`` at
    fixed ``u`` (``Z dLambda u`` for theta, a column of X for beta):

    * ``-2 loglik + u'u``: ``-2 r'e`` (u is a mode: envelope);
    * ``log|A|``: ``tr(A^-1 dA) = 2 sum_k w_k da_k'A^-1 a_k + sum_k w'_k h_k deta_k`` with the
      leverages ``h_k = a_k'A^-1 a_k`` and the total change of the linear predictor
      ``deta = e + a du``, ``du = A^-1 (dLambda'Z'r - a'W e)`` (implicit function theorem).

    ``u`` must be the mode to working precision (PIRLS): the envelope step relies on it.
    With ``with_du`` also returns ``du / d(theta, beta)`` (q, m): a warm start for PIRLS at
    nearby points, right to second order.
    """
    sd = _sparse_design(spec)
    a = _a_values(spec, theta)
    eta = spec.X @ beta + sd.times(a, u)
    mu, dmu = mu_eta(eta, spec.link)
    r, w = resp.score_weight(mu, dmu, True)
    wp = w * (1.0 - 2.0 * mu) if spec.link == "logit" else w  # dw / deta
    Ainv_rows = _inverse_on_rows(spec, sd.hessian(a, w))
    cols = sd.cols
    v = np.einsum("nij,nj->ni", Ainv_rows, a)  # A^-1 a_k on S_k
    h = np.einsum("ni,ni->n", a, v)
    n, p = spec.X.shape
    m = spec.n_theta + p
    E = np.zeros((n, m))
    dF = np.zeros((spec.q, m))
    direct = np.zeros(m)
    col0 = 0
    for t in spec.terms:
        rows_t, cols_t = _tril_colmajor(t.k)
        for j, (rr, cc) in enumerate(zip(rows_t, cols_t)):
            i = t.theta_slice.start + j
            c = col0 + cc  # d a[:, c] / d theta_i = Z_t[:, rr]
            da = t.Z[:, rr]
            E[:, i] = da * u[cols[:, c]]
            dF[:, i] = np.bincount(cols[:, c], weights=da * r, minlength=spec.q)
            direct[i] = 2.0 * float(np.sum(w * da * v[:, c]))
        col0 += t.k
    E[:, spec.n_theta:] = spec.X
    dF -= sd.at(a, w[:, None] * E)
    du = sd.chol.solve(dF)
    deta = E + sd.times(a, du)
    g = -2.0 * (r @ E) + direct + (wp * h) @ deta
    return (g, du) if with_du else g


# --------------------------------------------------------------------------------------
# optimisation
# --------------------------------------------------------------------------------------
class _Objective:
    """Deviance over packed parameters ``(theta, beta)`` for one term, batched, with u warm starts."""

    def __init__(self, spec: GlmmSpec, resp: Response, nagq: int, u0: np.ndarray):
        self.spec, self.resp, self.nagq = spec, resp, nagq
        self.u = u0
        self.nt = spec.n_theta

    def __call__(self, par: np.ndarray, keep: bool = False,
                 rows: np.ndarray | None = None) -> np.ndarray:
        """Deviances of ``par``; with ``rows``, ``par`` holds only those batch members."""
        th, be = par[..., : self.nt], par[..., self.nt:]
        resp, u0 = (self.resp, self.u) if rows is None else (self.resp.take(rows), self.u[rows])
        dev, u, ok = deviance_single(self.spec, resp, th, be, u0, self.nagq)
        dev = np.where(np.isfinite(dev), dev, np.inf)
        if keep:
            if rows is None:
                self.u = u
            else:
                self.u = np.array(self.u)
                self.u[rows] = u
        return dev


THETA_MAX = 25.0  # |theta| bound: a random-effect SD of 25 on the link scale is no model


class _GeneralObjective:
    """Laplace deviance for several terms as a function of ``theta`` (``stage = 1``: beta
    found by PIRLS, glmer's ``nAGQ = 0``) or of ``(theta, beta)`` (``stage = 2``), with
    the modes (and beta) of the last accepted point as warm start."""

    def __init__(self, spec: GlmmSpec, resp: Response, beta: np.ndarray) -> None:
        self.spec, self.resp = spec, resp
        self.u = np.zeros(spec.q)
        self.beta = np.asarray(beta, dtype=float)
        self.stage = 1
        self.nt = spec.n_theta
        self.M: np.ndarray | None = None  # beta = M gamma: stage 2 searches over gamma
        self._last: tuple | None = None  # the last PIRLS: (x, deviance, modes, beta)

    def one(self, x: np.ndarray, keep: bool = False) -> float:
        x = np.asarray(x, dtype=float)
        self._last = None
        if not np.all(np.isfinite(x)) or np.any(np.abs(x[: self.nt]) > THETA_MAX):
            return math.inf
        th = x[: self.nt]
        be = self.beta if self.stage == 1 else x[self.nt:]
        if self.M is not None and self.stage == 2:
            be = self.M @ be
        dev, u, be_new = pirls_general(self.spec, self.resp, th, be, self.u,
                                       with_beta=self.stage == 1)
        self._last = (x, dev, u, be_new)
        if keep:
            self._keep(dev, u, be_new)
        return dev

    def _keep(self, dev: float, u: np.ndarray, beta: np.ndarray) -> None:
        if np.isfinite(dev):
            self.u = u
            if self.stage == 1:
                self.beta = beta

    def accept(self, x: np.ndarray) -> float:
        """:meth:`one` with ``keep=True``, from the last evaluation when that was at ``x``
        (a line search's accepted point: PIRLS would repeat itself from the same start)."""
        last = self._last
        if last is not None and np.array_equal(last[0], x):
            self._keep(*last[1:])
            return last[1]
        return self.one(x, keep=True)

    def __call__(self, par: np.ndarray, keep: bool = False,
                 rows: np.ndarray | None = None) -> np.ndarray:
        par = np.atleast_2d(par)
        return np.array([self.one(p, keep) for p in par])


def _guarded_newton(obj: _GeneralObjective, x0: np.ndarray, *, maxit: int = 100,
                    radius: float = 1.0) -> tuple[np.ndarray, float, bool, int]:
    """Newton over one parameter vector with a trust region and the theta bound.

    Each step is :func:`mmteach.optim.newton_step` (downhill, off saddles), cut to the
    trust radius (doubled after a full step, shrunk to the accepted length otherwise) and
    halved until the deviance decreases: no step can jump to theta = -60 or beta = -70,
    which is how the unguarded Newton method crashed on nested designs.
    """
    x = np.array(x0, dtype=float)
    fx = obj.one(x, keep=True)
    if not np.isfinite(fx):
        return x, fx, False, 0
    nt = obj.nt
    for it in range(1, maxit + 1):
        _, g, H = fd_derivatives(obj, x[None, :], np.array([fx]), 1e-4, exact_cross=False)
        if not (np.all(np.isfinite(g)) and np.all(np.isfinite(H))):
            return x, fx, False, it
        step, posdef = newton_step(g, H)
        step = step[0]
        nrm = float(np.linalg.norm(step))
        if nrm > radius:
            step = step * (radius / nrm)
        trial: dict[str, Any] = {}

        def try_step(_rows: np.ndarray, t: np.ndarray, x: np.ndarray = x, step: np.ndarray = step,
                     fx: float = fx, trial: dict[str, Any] = trial) -> np.ndarray:
            xn = x + t[0] * step
            xn[:nt] = np.clip(xn[:nt], -THETA_MAX, THETA_MAX)
            trial.update(xn=xn, fn=obj.one(xn))
            return np.array([trial["fn"] <= fx])

        failed, t_last = backtrack(try_step)
        if failed[0]:
            return x, fx, bool(posdef[0]), it  # no decrease possible: optimum to precision
        t, xn, fn = float(t_last[0]), trial["xn"], trial["fn"]
        radius = min(2 * radius, 10.0) if t == 1.0 and nrm >= radius else max(t * min(nrm, radius), 1e-3)
        gain = fx - fn
        x, fx = xn, obj.accept(xn)
        if posdef[0] and gain < 1e-10 * (1 + abs(fx)) and t * min(nrm, radius) < 1e-5:
            return x, fx, True, it
    return x, fx, False, maxit


def _quasi_newton(obj: _GeneralObjective, x0: np.ndarray) -> tuple[np.ndarray, float, bool, int] | None:
    """Stage 2 by L-BFGS-B (scipy) on the analytic Laplace gradient: about one PIRLS per
    iteration, where the finite-difference Newton paid 2m + m(m-1)/2 of them per step.
    Returns None (the caller then runs the guarded Newton) when it stops on the boundary,
    where theta = 0 may be a saddle that needs the negative-curvature escape."""
    spec, nt = obj.spec, obj.nt
    calls = [0]
    last: list = [None, math.inf]  # the last point evaluated (obj.u holds its modes)
    prev: list = [None, None]  # last (theta, beta) with finite deviance, du there

    def fg(x: np.ndarray) -> tuple[float, np.ndarray]:
        calls[0] += 1
        last[:] = [np.array(x, dtype=float), math.inf]
        th, gam = x[:nt], x[nt:]
        be = gam if obj.M is None else obj.M @ gam
        par = np.concatenate([th, be])
        # PIRLS from the modes moved to first order: one iteration fewer per point
        u0 = obj.u if prev[0] is None else obj.u + prev[1] @ (par - prev[0])
        dev, u, _ = pirls_general(spec, obj.resp, th, be, u0)
        if not np.isfinite(dev):
            return math.inf, np.zeros_like(x)
        obj.u = u  # warm start for the next point
        last[1] = dev
        g, du = laplace_gradient(spec, obj.resp, th, be, u, with_du=True)
        prev[:] = [par, du]
        if obj.M is not None:
            g = np.concatenate([g[:nt], obj.M.T @ g[nt:]])
        return dev, g

    lower = np.full(x0.size, -np.inf)
    upper = np.full(x0.size, np.inf)
    lower[:nt], upper[:nt] = -THETA_MAX, THETA_MAX
    lower[spec.diag_index] = 0.0
    x0 = np.clip(x0, lower, upper)
    with np.errstate(all="ignore"):
        res = minimize(fg, x0, jac=True, method="L-BFGS-B", bounds=list(zip(lower, upper)),
                       options={"ftol": 1e-15, "gtol": 1e-7, "maxiter": 500})
    x = np.asarray(res.x, dtype=float)
    if not np.isfinite(res.fun) or np.any(x[spec.diag_index] < 1e-4):
        return None
    f = last[1] if np.array_equal(last[0], x) else obj.one(x, keep=True)
    return x, f, bool(np.isfinite(f)), calls[0]


def _fit_general(spec: GlmmSpec, resp: Response, theta0: np.ndarray, beta0: np.ndarray
                 ) -> tuple[np.ndarray, _GeneralObjective, bool, int]:
    """glmer's two stages: theta with beta inside PIRLS (nAGQ = 0), then Laplace over both."""
    obj = _GeneralObjective(spec, resp, beta0)
    # with the analytic gradient stage 2 needs stage 1 only for a start in the right region:
    # STAGE1_STEPS Newton steps, not convergence
    maxit = STAGE1_STEPS if laplace_gradient_supported(spec) else 100
    x1, f1, ok1, it1 = _guarded_newton(obj, theta0, maxit=maxit)
    if not np.isfinite(f1):  # the start itself breaks down: try small variances
        x1, f1, ok1, it1 = _guarded_newton(obj, 0.1 * spec.theta_start(), maxit=maxit)
    obj.stage = 2
    # search over gamma = R beta / sqrt(n) (X = QR): columns of X M are orthogonal with unit
    # mean square, so an uncentred predictor (height around 500) does not make the Hessian
    # nearly singular and stall Newton; the reported Hessian is on beta's scale, as lme4's
    n = spec.X.shape[0]
    R = np.linalg.qr(spec.X, mode="r")
    try:
        obj.M = np.linalg.inv(R / math.sqrt(n))
    except np.linalg.LinAlgError:
        obj.M = None
    gamma = obj.beta if obj.M is None else (R / math.sqrt(n)) @ obj.beta
    x2 = np.concatenate([x1, gamma])
    res = None
    if laplace_gradient_supported(spec):  # L-BFGS-B bounds the diagonal at 0: signs first
        res = _quasi_newton(obj, np.concatenate([_normalise_theta(spec, x1), gamma]))
    if res is not None:
        x, f, ok, it2 = res
    else:
        x, f, ok, it2 = _guarded_newton(obj, x2, radius=0.5)
    if obj.M is not None:
        x = np.concatenate([x[: spec.n_theta], obj.M @ x[spec.n_theta:]])
        obj.M = None
    return x, obj, ok and np.isfinite(f), it1 + it2


# --------------------------------------------------------------------------------------
# fitting
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CoreFit:
    """Raw results of a GLMM fit on matrices."""

    theta: np.ndarray
    beta: np.ndarray
    u: np.ndarray  # spherical conditional modes, (m, k) for one term else (q,)
    deviance: float  # -2 log-likelihood (lme4's Laplace scale) or AGQ deviance
    vcov: np.ndarray
    hessian: np.ndarray
    gradient: np.ndarray
    converged: bool
    singular: bool
    iterations: int
    nagq: int

    @property
    def loglik(self) -> float:
        return -0.5 * self.deviance


def glm_start(spec: GlmmSpec, y: np.ndarray) -> np.ndarray:
    """IRLS fit of the GLM without random effects: the fixed-effects start values."""
    resp = Response.make(y, spec.trials, spec.family)
    X = spec.X
    if spec.family == "binomial":
        p = (resp.y + 0.5) / (resp.trials + 1.0)
        eta = np.log(p / (1 - p)) if spec.link == "logit" else np.clip(
            ndtri(p), -5, 5)
    else:
        eta = np.log(resp.y + 0.1)
    beta = np.linalg.lstsq(X, eta, rcond=None)[0]

    def dev(b):
        return -2.0 * np.sum(resp.loglik_rows(mu_eta(X @ b, spec.link)[0]))

    d = dev(beta)
    for _ in range(25):
        mu, dmu = mu_eta(X @ beta, spec.link)
        r, w = resp.score_weight(mu, dmu)
        stepb = np.linalg.lstsq(X * np.sqrt(w)[:, None], r / np.sqrt(w), rcond=None)[0]
        tried: list[float] = [d]

        def try_step(_rows: np.ndarray, t: np.ndarray, beta: np.ndarray = beta, stepb: np.ndarray = stepb,
                     d: float = d, tried: list[float] = tried) -> np.ndarray:
            tried[0] = dev(beta + t[0] * stepb)
            return np.array([tried[0] <= d + 1e-10 * abs(d)])

        # halve steps that increase the deviance (large counts); the last one tried is taken
        _, t = backtrack(try_step, halvings=30)
        stepb = float(t[0]) * stepb
        beta, d = beta + stepb, tried[0]
        if np.max(np.abs(stepb)) < 1e-10:
            break
    return beta


def _u_zero(spec: GlmmSpec, batch: tuple[int, ...] = ()) -> np.ndarray:
    if spec.single:
        t = spec.terms[0]
        return np.zeros(batch + (t.m, t.k))
    return np.zeros(spec.q)


def _normalise_theta(spec: GlmmSpec, theta: np.ndarray) -> np.ndarray:
    """Flip columns of each T so its diagonal is non-negative (lme4's convention)."""
    th = np.array(theta, dtype=float)
    for t in spec.terms:
        T = t.T(th)
        signs = np.where(np.diagonal(T, axis1=-2, axis2=-1) < 0, -1.0, 1.0)
        T = T * signs[..., None, :]
        rows, cols = _tril_colmajor(t.k)
        th[..., t.theta_slice] = T[..., rows, cols]
    return th


_BREAKDOWN = (
    "The fit broke down numerically: for some parameter values the model predicts "
    "probabilities or counts so extreme that its likelihood cannot be computed, and the "
    "optimiser found no way back. This happens when a predictor has a large scale (centre "
    "and scale it, e.g. height in metres from the mean instead of raw values), when a group "
    "has only zeros or only ones, or when the random-effects structure is richer than the "
    "data support; try centring predictors or a simpler random-effects structure."
)


def fit_core(spec: GlmmSpec, y: np.ndarray, *, nagq: int = 1,
             start: tuple[np.ndarray, np.ndarray] | None = None) -> CoreFit:
    """Fit a GLMM (see :func:`_fit_core`); a numerical failure becomes a :class:`ModelError`."""
    try:
        with np.errstate(all="ignore"):
            return _fit_core(spec, y, nagq=nagq, start=start)
    except MMTeachError:
        raise
    except (np.linalg.LinAlgError, FloatingPointError, ValueError, OverflowError,
            ZeroDivisionError) as e:
        raise ModelError(_BREAKDOWN) from e


def _fit_core(spec: GlmmSpec, y: np.ndarray, *, nagq: int = 1,
              start: tuple[np.ndarray, np.ndarray] | None = None) -> CoreFit:
    """Fit a GLMM by maximum likelihood (Laplace or adaptive quadrature).

    Parameters
    ----------
    spec : from :func:`make_spec`.
    y : (n,) successes (binomial) or counts (Poisson).
    nagq : 1 for the Laplace approximation, > 1 for adaptive Gauss-Hermite quadrature
        (one scalar random intercept only, as in glmer).
    start : optional ``(theta, beta)``.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> rng = np.random.default_rng(1)
    >>> g = np.repeat(np.arange(10), 30); x = rng.normal(size=300)
    >>> y = rng.binomial(1, 1 / (1 + np.exp(-(0.5 * x + rng.normal(size=10)[g]))))
    >>> blk = SimpleNamespace(group="g", codes=g, levels=tuple("abcdefghij"),
    ...                       terms=("(Intercept)",), Z=np.ones((300, 1)))
    >>> fit = fit_core(make_spec(np.column_stack([np.ones(300), x]), [blk]), y)
    >>> bool(fit.converged), fit.beta.shape
    (True, (2,))
    """
    if nagq > 1 and not (spec.single and spec.terms[0].k == 1):
        raise ModelError(
            "Adaptive Gauss-Hermite quadrature (nAGQ > 1) needs a single random intercept "
            "such as (1 | mouse), as in lme4; use nagq = 1 (the Laplace approximation) for "
            "random slopes or several grouping factors."
        )
    if nagq > 25:
        raise ModelError("lme4 allows at most 25 quadrature points (nAGQ <= 25); use fewer.")
    resp = Response.make(y, spec.trials, spec.family)
    if start is None:
        theta0, beta0 = spec.theta_start(), glm_start(spec, y)
    else:
        theta0, beta0 = (np.asarray(s, dtype=float) for s in start)
    x0 = np.concatenate([theta0, beta0])[None, :]
    if not spec.single:
        xg, obj, okg, it = _fit_general(spec, resp, theta0, beta0)
        x, conv = xg[None, :], np.array([okg])
    else:
        obj = _Objective(spec, resp, nagq, _u_zero(spec, (1,)))
        if uses_fast_path(spec, nagq):
            x, f, conv, u1, it = fast.fit_scalar(spec, y[None, :], x0)
            obj.u = u1[..., None]
        else:
            # the finite-difference stencil in one batched PIRLS (stacked): water lick's
            # random slope 93-115 -> 35-50 ms, adaptive quadrature 68-120 -> 38-51 ms
            x, f, conv, it = newton_minimize(obj, x0, stacked=True)
    x = x[0]
    if not np.all(np.isfinite(x)):
        raise ModelError(_BREAKDOWN)
    theta = _normalise_theta(spec, x[: spec.n_theta])
    beta = x[spec.n_theta:]
    par = np.concatenate([theta, beta])[None, :]
    fx = obj(par, keep=True)
    if not np.isfinite(fx[0]):
        raise ModelError(_BREAKDOWN)
    if isinstance(obj, _GeneralObjective) and laplace_gradient_supported(spec):
        g, H = _gradient_hessian(obj, par[0])
    else:
        _, g, H = fd_derivatives(obj, par, fx, stacked=True)
        g, H = g[0], H[0]
    nt = spec.n_theta
    try:
        Hinv = np.linalg.inv(H)
        V = Hinv[nt:, nt:]
        V = V + V.T  # 2 H^-1, symmetrised as lme4's calc.vcov.hess
        if np.any(np.linalg.eigvalsh(V) <= 0):
            raise np.linalg.LinAlgError
    except np.linalg.LinAlgError:
        V = np.full((len(beta), len(beta)), np.nan)
    singular = bool(np.any(np.abs(theta[spec.diag_index]) < 1e-4))
    u = obj.u if isinstance(obj, _GeneralObjective) else obj.u[0]
    if not singular:
        # lme4's convergence check: scaled gradient max(min(|H^-1/2 g|, |g|)) < 0.002
        try:
            sg = np.linalg.solve(np.linalg.cholesky(H).T, g)
            gradok = np.max(np.minimum(np.abs(sg), np.abs(g))) < 2e-3
        except np.linalg.LinAlgError:
            gradok = False
    else:
        gradok = True
    return CoreFit(theta, beta, np.asarray(u), float(fx[0]), V, H, g,
                   bool(conv[0]) and gradok and bool(np.isfinite(fx[0])), singular, it, nagq)


def _gradient_hessian(obj: _GeneralObjective, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gradient and Hessian for the vcov and lme4's convergence check at ``x`` (modes in
    ``obj.u``): the Hessian by central differences of the analytic gradient (2m PIRLS +
    gradients instead of the 2m + 2m(m-1) deviances of the 4-point rule); the gradient by
    central differences of the deviances at the same points, as lme4's ``deriv12`` (its
    convergence warning on badly scaled predictors comes from that difference quotient)."""
    spec, nt = obj.spec, obj.nt
    _g, du = laplace_gradient(spec, obj.resp, x[:nt], x[nt:], obj.u, with_du=True)

    def dev_grad(z: np.ndarray, u0: np.ndarray) -> tuple[float, np.ndarray]:
        dev, u, _ = pirls_general(spec, obj.resp, z[:nt], z[nt:], u0)
        if not np.isfinite(dev):
            return math.nan, np.full(z.size, np.nan)
        return dev, laplace_gradient(spec, obj.resp, z[:nt], z[nt:], u)

    g = np.empty(x.size)
    H = np.empty((x.size, x.size))
    h = 1e-4  # fd_derivatives' (lme4's deriv12) step
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = h
        # PIRLS starts from the modes moved to first order (error h^2)
        (fp, gp), (fm, gm) = dev_grad(x + e, obj.u + h * du[:, i]), dev_grad(x - e, obj.u - h * du[:, i])
        g[i] = (fp - fm) / (2 * h)
        H[i] = (gp - gm) / (2 * h)
    return g, 0.5 * (H + H.T)


def uses_fast_path(spec: GlmmSpec, nagq: int) -> bool:
    """True when :mod:`mmteach.glmm_scalar` fits the model: Laplace, one scalar random-effects
    term, canonical link (logit or log); it has the exact gradient and Hessian."""
    return (nagq <= 1 and spec.single and spec.terms[0].k == 1
            and spec.link in ("logit", "log"))


def fit_batch(spec: GlmmSpec, Y: np.ndarray, theta0: np.ndarray, beta0: np.ndarray,
              u0: np.ndarray | None = None, *, nagq: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Fit the same model to many responses at once (single random-effects term).

    ``Y`` is (B, n); every fit starts from ``(theta0, beta0)`` (warm start from the
    observed fit). Returns ``(deviance (B,), converged (B,))``.
    """
    B = Y.shape[0]
    t = spec.terms[0]
    u_init = np.zeros((B, t.m, t.k)) if u0 is None else np.broadcast_to(
        u0, (B, t.m, t.k)).copy()
    x0 = np.tile(np.concatenate([theta0, beta0]), (B, 1))
    if uses_fast_path(spec, nagq):
        _x, f, conv, _u, _ = fast.fit_scalar(spec, Y, x0, u_init[..., 0])
    else:
        resp = Response.make(Y, np.broadcast_to(spec.trials, Y.shape).copy(), spec.family)
        _x, f, conv, _ = newton_minimize(_Objective(spec, resp, nagq, u_init), x0, maxit=40)
    return f, conv & np.isfinite(f)


def simulate_response(spec: GlmmSpec, fit: CoreFit, nsim: int,
                      rng: np.random.Generator) -> np.ndarray:
    """Responses simulated from a fitted GLMM, new random effects each time.

    As ``simulate.merMod`` (``use.u = FALSE``): u ~ N(0, I), b = Lambda u, then
    y ~ Binomial(trials, mu) or Poisson(mu). Returns (nsim, n).
    """
    n = spec.X.shape[0]
    eta = np.tile(spec.X @ fit.beta, (nsim, 1))
    for t in spec.terms:
        u = rng.standard_normal((nsim, t.m, t.k))
        b = u @ t.T(fit.theta).T  # (nsim, m, k): b_j = T u_j
        eta += np.einsum("nk,snk->sn", t.Z, b[:, t.codes, :])
    mu, _ = mu_eta(eta, spec.link)
    if spec.family == "binomial":
        return rng.binomial(spec.trials.astype(np.int64), np.clip(mu, 0, 1)).astype(float)
    return rng.poisson(mu).astype(float).reshape(nsim, n)
