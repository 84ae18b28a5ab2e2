"""Profiled (RE)ML deviance of a linear mixed model, on plain matrices.

This follows lme4 (Bates, Maechler, Bolker & Walker 2015, "Fitting Linear Mixed-Effects
Models Using lme4", J. Stat. Softw. 67(1)), section 3:

* the random effects are ``b = Lambda(theta) u`` with spherical ``u ~ N(0, sigma^2 I)``;
  ``Lambda`` is block diagonal, one lower-triangular ``k x k`` factor ``T`` per random term,
  repeated for every level of its grouping factor;
* for a given ``theta`` the penalised least squares problem is solved through the Cholesky
  factor ``L`` of ``Lambda' Z'Z Lambda + I``; ``beta`` and ``sigma`` are profiled out, so the
  optimiser only searches over ``theta`` (the diagonal of each ``T`` is bounded below by 0).

Speed comes from the structure: the grouping factor with the most levels gives a block
diagonal part (one small ``k x k`` Cholesky per level, done in one batched call); all other
grouping factors (crossed or nested) go into a dense Schur complement, which is small in
the teaching data sets (mice, plates, subjects). When the other factors are large too, the
Schur complement is built from sparse pair sums (a scalar largest factor, as crossed
intercepts), or the whole ``Lambda'Z'Z Lambda + I`` goes to a sparse Cholesky with a
fill-reducing ordering found once (:mod:`mmteach.sparse_chol`); see :func:`_prefer_sparse`.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from scipy.linalg import solve_triangular
from scipy.optimize import minimize

from mmteach import lme_gradient
from mmteach.errors import ModelError
from mmteach.lme_gradient import LOG_2PI, _grad_pays, derivatives
from mmteach.optim import fd_derivatives_bounded, projected_newton
from mmteach.sparse_chol import RowPattern

SINGULAR_TOL = 1e-4  # lme4's isSingular(tol = 1e-4)
SPARSE_Q2 = 40  # see _prefer_sparse
SPARSE_Q = 400
SCHUR_SPARSE = 20_000  # q1 * q2 from which W is kept sparse (see _decompose)
# CHOLMOD beat the pair sums when the big factor has random slopes (lme_many_effects,
# lme_cell_slopes_ca_amplitude: 2-4x), the pair sums beat CHOLMOD 2x on crossed intercepts
SCHUR_MAX_K = 1


@dataclass(frozen=True)
class Block:
    """One random-effects term on matrices (the part of ``design.RandomBlock`` used here).

    ``codes`` gives the level of each row, ``Z`` the raw columns of the term, ``key`` names
    the grouping factor: blocks with the same key share levels (uncorrelated terms such as
    ``(1|g) + (0 + x|g)``).
    """

    codes: np.ndarray
    n_levels: int
    Z: np.ndarray
    key: str = ""

    @property
    def k(self) -> int:
        return int(self.Z.shape[1])


@dataclass
class _Factor:
    """Blocks sharing one grouping factor, merged (their T's form a block diagonal)."""

    codes: np.ndarray
    n_levels: int
    Z: np.ndarray  # (n, k) all columns of the merged blocks
    block_ids: list[int]
    offsets: list[int]  # first column of each block inside Z

    @property
    def k(self) -> int:
        return int(self.Z.shape[1])


def _sparse_z(codes: np.ndarray, n_levels: int, Z: np.ndarray) -> sp.csr_matrix:
    """Sparse model matrix with columns ordered level-major: (level 0 terms, level 1 ...)."""
    n, k = Z.shape
    # k entries a row, their columns increasing: the CSR arrays directly (no COO sort)
    cols = (codes[:, None] * k + np.arange(k)[None, :]).ravel()
    return sp.csr_matrix((np.asarray(Z, dtype=float).ravel(), cols, np.arange(0, n * k + 1, k)),
                         shape=(n, n_levels * k))


@dataclass
class Solution:
    """Everything the penalised least squares solve gives at one ``theta``."""

    theta: np.ndarray
    reml: bool
    objective: float  # REML criterion or ML deviance (profiled)
    beta: np.ndarray
    sigma: float
    xtvx_inv: np.ndarray  # (RX'RX)^-1; times sigma^2 it is vcov(beta)
    ldL2: float
    ldRX2: float
    pwrss: float
    u: np.ndarray | None = None
    extras: dict = field(default_factory=dict)


class LmeProblem:
    """A linear mixed model ``y = X beta + Z b + e`` ready for profiled-deviance fitting.

    Parameters
    ----------
    y : ndarray, shape (n,)
    X : ndarray, shape (n, p)
    blocks : sequence of Block
        Random-effect terms in lme4's order; ``theta`` is the concatenation, block by block,
        of the lower triangle of each ``T`` in column-major order (lme4's ``getME(, "theta")``).

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> g = np.repeat(np.arange(6), 5)
    >>> y = 1 + rng.normal(size=6)[g] + rng.normal(size=30)
    >>> prob = LmeProblem(y, np.ones((30, 1)), [Block(g, 6, np.ones((30, 1)), "g")])
    >>> fit = prob.fit(reml=True)
    >>> round(float(fit.beta[0]), 3) == round(float(prob.solve(fit.theta, True).beta[0]), 3)
    True
    """

    def __init__(self, y: np.ndarray, X: np.ndarray, blocks: Sequence[Block]) -> None:
        y = np.asarray(y, dtype=float)
        X = np.asarray(X, dtype=float)
        if X.ndim != 2 or X.shape[0] != y.shape[0]:
            raise ModelError("The fixed-effects matrix and the response have different numbers of rows.")
        if not blocks:
            raise ModelError("A mixed model needs at least one random-effects term such as (1 | mouse).")
        self.y = y
        self.X = X
        self.n, self.p = X.shape
        self._orthogonalise()
        self.blocks = list(blocks)
        # theta layout and bounds
        self.theta_slices: list[slice] = []
        lower: list[float] = []
        start = 0
        for b in self.blocks:
            k = b.k
            m = k * (k + 1) // 2
            self.theta_slices.append(slice(start, start + m))
            for j in range(k):  # column-major lower triangle: diagonal first in each column
                for i in range(j, k):
                    lower.append(0.0 if i == j else -np.inf)
            start += m
        self.n_theta = start
        self.lower = np.array(lower)
        self._group_factors()
        self._precompute()
        self._index_setup()
        self.use_sparse = _prefer_sparse(self)  # its set-up waits for the first sparse solve

    # ---------------------------------------------------------------- pickling
    # Fitted results travel from the app's pool workers and wait in its shared caches by the
    # hundred. The set-up products above (per-level cross-products, index patterns) were 80%
    # of a pickled amplitude fit (255 of 312 KB); they follow from y, X and the blocks
    # (which the fit's model frame shares, so they pickle once), so an unpickled problem
    # keeps only those and makes the rest again on its first use (profiles, df, shrinkage).
    def __getstate__(self) -> dict:
        return {"_rebuild_from": (self.y, self.X, self.blocks)}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.__dict__["_rebuild_lock"] = threading.Lock()

    def __getattr__(self, name: str):  # noqa: ANN204 - any attribute of the rebuilt problem
        # only called for an attribute not found: an unpickled problem not yet rebuilt
        state = self.__dict__
        if name.startswith("__") or "_rebuild_from" not in state:
            raise AttributeError(name)
        with state["_rebuild_lock"]:  # two sessions may use one cached fit at once
            if "_rebuild_from" in state:
                fresh = LmeProblem(*state["_rebuild_from"])
                state.update(fresh.__dict__)  # all at once: other threads see old or whole
                del state["_rebuild_from"]
        return getattr(self, name)

    # ---------------------------------------------------------------- set-up
    def _orthogonalise(self) -> None:
        """Work with ``Q = X R^-1`` (orthonormal columns) and ``y - X gamma`` (OLS residuals).

        The criterion is the same for any such reparametrisation (up to the constant
        ``log|R|^2`` in the REML term, added back), but the cross-products the solve
        subtracts from each other are then of the size of the residuals, not of the raw
        data: a response around 1e5 with residual SD 0.05, or a predictor around 1e4, would
        otherwise lose most of the digits of the penalised residual sum of squares.
        Estimates are mapped back, ``beta = gamma + R^-1 beta_Q``.
        """
        X, y, p = self.X, self.y, self.p
        if p == 0:
            self._Xq, self._R = X, np.zeros((0, 0))
            self._gamma, self._yr, self._ldR2 = np.zeros(0), y.copy(), 0.0
            return
        Q, R = np.linalg.qr(X)
        sgn = np.where(np.diag(R) < 0, -1.0, 1.0)
        Q, R = Q * sgn, R * sgn[:, None]
        qy = Q.T @ y
        yr = y - Q @ qy
        q2 = Q.T @ yr  # one re-orthogonalisation step
        yr = yr - Q @ q2
        self._Xq, self._R = Q, R
        self._Rinv = np.linalg.inv(R)
        self._gamma = self._Rinv @ (qy + q2)
        self._yr = yr
        self._ldR2 = 2.0 * float(np.log(np.abs(np.diag(R))).sum())

    def _to_original(self, beta_q: np.ndarray, cinv_q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """beta and (X'V~^-1 X)^-1 for the original X from their values for Q."""
        if self.p == 0:
            return beta_q, cinv_q
        Ri = self._Rinv
        return self._gamma + Ri @ beta_q, Ri @ cinv_q @ Ri.T

    def _group_factors(self) -> None:
        factors: dict[str, _Factor] = {}
        order: list[str] = []
        for i, b in enumerate(self.blocks):
            key = b.key or f"__block{i}"
            f = factors.get(key)
            if f is not None and f.n_levels == b.n_levels and np.array_equal(f.codes, b.codes):
                f.offsets.append(f.Z.shape[1])
                f.Z = np.hstack([f.Z, b.Z])
                f.block_ids.append(i)
            else:
                if f is not None:  # same name but different levels: keep apart
                    key = f"{key}__{i}"
                factors[key] = _Factor(np.asarray(b.codes, dtype=np.int64), int(b.n_levels),
                                       np.asarray(b.Z, dtype=float), [i], [0])
                order.append(key)
        fl = [factors[k] for k in order]
        # the factor with most random effects becomes the block-diagonal part
        big = max(range(len(fl)), key=lambda j: fl[j].n_levels * fl[j].k)
        self.f1 = fl[big]
        self.rest = [f for j, f in enumerate(fl) if j != big]

    def _precompute(self) -> None:
        Xy = np.column_stack([self._Xq, self._yr])
        self.Xy = Xy
        f1 = self.f1
        l1, k1 = f1.n_levels, f1.k
        # per-level Z1'Z1 and Z1'[X y]: sums over the rows of each level
        zz = np.einsum("ni,nj->nij", f1.Z, f1.Z).reshape(self.n, -1)
        self.ztz1 = _group_sum(f1.codes, zz, l1).reshape(l1, k1, k1)
        zx = np.einsum("ni,nj->nij", f1.Z, Xy).reshape(self.n, -1)
        self.ztxy1 = _group_sum(f1.codes, zx, l1).reshape(l1, k1, self.p + 1)
        self.xytxy = Xy.T @ Xy
        self.q1 = l1 * k1
        if self.rest:
            # Z2'Z2, Z2'[X y] and Z1'Z2 straight from the codes: in each row a factor's k
            # entries sit in the columns level * k + j, so every cross-product is a sum over
            # rows of products of entries, one bincount or COO sum (building the sparse Z's and
            # multiplying them cost 0.4 ms of a 14 ms cell-slope fit)
            cols, vals, start = [], [], 0
            for f in self.rest:
                cols.append(start + f.codes[:, None] * f.k + np.arange(f.k)[None, :])
                vals.append(f.Z)
                start += f.n_levels * f.k
            c2, v2 = np.hstack(cols), np.hstack(vals)  # (n, columns of the other terms)
            q2 = self.q2 = start
            pairs = (c2[:, :, None] * q2 + c2[:, None, :]).ravel()
            self.z2tz2 = np.bincount(pairs, weights=(v2[:, :, None] * v2[:, None, :]).ravel(),
                                     minlength=q2 * q2).reshape(q2, q2)
            self.z2txy = sum(_group_sum(c2[:, j], v2[:, j, None] * Xy, q2) for j in range(c2.shape[1]))
            # P = Z1'Z2 by its entries: one per (level of the big factor, column of the
            # others) meeting in some row, holding the sums of the level's k1 columns times
            # that column (made from the codes: a sparse COO -> CSR -> COO round trip cost
            # 0.3 ms of a cell-slope fit, whose gradient needs the entries only)
            uk, inv = np.unique((f1.codes[:, None] * q2 + c2).ravel(), return_inverse=True)
            prod = f1.Z[:, :, None] * v2[:, None, :]  # (n, k1, columns of the others)
            vec = np.column_stack([np.bincount(inv, weights=prod[:, a].ravel(), minlength=uk.size)
                                   for a in range(k1)])
            keep = np.any(vec != 0.0, axis=1)  # as the sparse product leaves out zeros (0/1 slopes)
            uk = uk[keep]
            self._p_entries = (uk // q2, uk % q2, vec[keep])
        else:
            self.q2 = 0
        # sparse W for the Schur complement once the dense q1 x q2 products get large
        # the Schur complement of the big factor from pair sums (see _decompose)
        self.schur_sparse = False
        if self.q2 > 0 and self.q1 * self.q2 >= SCHUR_SPARSE and k1 <= SCHUR_MAX_K:
            self._schur_pairs(l1, k1)
        self.q = self.q1 + self.q2

    def _schur_pairs(self, l1: int, k1: int) -> None:
        """Fixed products for W'W = sum over levels l of P_l' M_l P_l (P = Z1'Z2).

        ``P_l`` (k1 x q2) are level l's rows of P; each level meets few levels of the other
        factors, so ``P_l' M_l P_l`` has few non-zeros: for every pair of them keep the slot in
        the q2 x q2 matrix and the k1 x k1 outer product of the two columns of ``P_l``; per
        theta only ``M_l = (L1^-1 T1')'(L1^-1 T1')`` changes. Stored only when the pairs are
        few (``MAX_PAIRS``).
        """
        q2 = self.q2
        P = self._z1tz2_sp.tocoo()
        lev, a = np.divmod(P.row, k1)
        uk, inv = np.unique(lev.astype(np.int64) * q2 + P.col, return_inverse=True)
        elev = uk // q2
        cnt = np.bincount(elev, minlength=l1)
        # read through the module: one limit for this path and the gradient's (tests lower it)
        if int((cnt * cnt).sum()) > lme_gradient.MAX_PAIRS:
            return
        self.schur_sparse = True
        # the pair arrays are built on first use (_decompose): fits on the analytic
        # gradient never need them (0.04 s of set-up on lme_crossed_50k)
        self._pair_parts = (uk, inv, a, P.data, cnt, l1, k1)

    def _ensure_pairs(self) -> None:
        if hasattr(self, "_p_pairs"):
            return
        uk, inv, a, data, cnt, l1, k1 = self._pair_parts
        q2 = self.q2
        vec = np.zeros((uk.size, k1))
        np.add.at(vec, (inv, a), data)
        ecol = uk % q2
        npair = cnt * cnt
        ptr = np.concatenate([[0], np.cumsum(cnt)])
        plev = np.repeat(np.arange(l1), npair)
        within = np.arange(plev.size) - np.repeat(np.cumsum(npair) - npair, npair)
        e1 = np.repeat(ptr[:-1], npair) + within // np.repeat(cnt, npair)
        e2 = np.repeat(ptr[:-1], npair) + within % np.repeat(cnt, npair)
        outer = (vec[e1][:, :, None] * vec[e2][:, None, :]).reshape(plev.size, k1 * k1)
        self._p_pairs = (ecol[e1] * q2 + ecol[e2], outer, plev)
        self._z2tz2_dense = self.z2tz2
        self._lam2_diagonal = all(f.k == 1 for f in self.rest)

    @property
    def _z1tz2_sp(self) -> sp.csr_matrix:
        """P = Z1'Z2 as a sparse q1 x q2 matrix, from its entries (built on first use)."""
        if not hasattr(self, "_p_csr"):
            lev, col, vec = self._p_entries
            k1 = self.f1.k
            rows = (lev[:, None] * k1 + np.arange(k1)[None, :]).ravel()
            P = sp.csr_matrix((vec.ravel(), (rows, np.repeat(col, k1))), shape=(self.q1, self.q2))
            P.eliminate_zeros()  # a slope column's zeros, as the sparse product leaves them out
            self._p_csr = P
        return self._p_csr

    @property
    def z1tz2(self) -> np.ndarray:
        """Dense Z1'Z2 per level of the big factor, (l1, k1, q2); built on first use (only the
        dense path needs it, and it is large for crossed designs)."""
        if not hasattr(self, "_z1tz2_dense"):
            self._z1tz2_dense = self._z1tz2_sp.toarray().reshape(self.f1.n_levels, self.f1.k, self.q2)
        return self._z1tz2_dense

    # ---------------------------------------------------------------- theta -> factors
    def block_T(self, theta: np.ndarray, i: int) -> np.ndarray:
        """Lower-triangular relative covariance factor ``T`` of block ``i``."""
        k = self.blocks[i].k
        T = np.zeros((k, k))
        vals = theta[self.theta_slices[i]]
        pos = 0
        for j in range(k):
            for r in range(j, k):
                T[r, j] = vals[pos]
                pos += 1
        return T

    def _t_index(self, f: _Factor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row, col, theta index) of every free element of a factor's block-diagonal T."""
        rows, cols, idx = [], [], []
        for bid, off in zip(f.block_ids, f.offsets):
            k = self.blocks[bid].k
            pos = self.theta_slices[bid].start
            for j in range(k):
                for r in range(j, k):
                    rows.append(off + r)
                    cols.append(off + j)
                    idx.append(pos)
                    pos += 1
        return np.array(rows, dtype=int), np.array(cols, dtype=int), np.array(idx, dtype=int)

    def _index_setup(self) -> None:
        self._f1_index = self._t_index(self.f1)
        rows, cols, idx = [], [], []
        pos = 0
        for f in self.rest:
            r, c, i = self._t_index(f)
            for lev in range(f.n_levels):
                base = pos + lev * f.k
                rows.append(base + r)
                cols.append(base + c)
                idx.append(i)
            pos += f.n_levels * f.k
        if rows:
            self._lam2_index = (np.concatenate(rows), np.concatenate(cols), np.concatenate(idx))

    def _factor_T(self, theta: np.ndarray, f: _Factor) -> np.ndarray:
        r, c, i = self._f1_index if f is self.f1 else self._t_index(f)
        T = np.zeros((f.k, f.k))
        T[r, c] = theta[i]
        return T

    def _lambda2(self, theta: np.ndarray) -> np.ndarray:
        """Dense Lambda for the non-block-diagonal factors."""
        r, c, i = self._lam2_index
        out = np.zeros((self.q2, self.q2))
        out[r, c] = theta[i]
        return out

    # ---------------------------------------------------------------- random-effects space
    # The solve orders the random effects as: the big factor (level-major), then the other
    # factors one after the other (level-major). These helpers expose that space to the
    # Kenward-Roger code, which works on q x q matrices instead of n x n ones.
    def block_index(self, i: int) -> np.ndarray:
        """``(n_levels, k)`` positions of block ``i``'s random effects in the solve's order."""
        k = self.blocks[i].k
        for f, start in self._factor_starts():
            if i in f.block_ids:
                off = f.offsets[f.block_ids.index(i)]
                return start + (np.arange(f.n_levels)[:, None] * f.k + off + np.arange(k)[None, :])
        raise IndexError(i)

    def _factor_starts(self) -> list[tuple[_Factor, int]]:
        out = [(self.f1, 0)]
        pos = self.q1
        for f in self.rest:
            out.append((f, pos))
            pos += f.n_levels * f.k
        return out

    def z_matrix(self) -> sp.csc_matrix:
        """Sparse ``Z`` (n x q) in the solve's order."""
        return sp.hstack([_sparse_z(f.codes, f.n_levels, f.Z) for f, _ in self._factor_starts()]
                         ).tocsc()

    def lambda_matrix(self, theta: np.ndarray) -> sp.csr_matrix:
        """Sparse block-diagonal ``Lambda(theta)`` (q x q) in the solve's order."""
        theta = np.asarray(theta, dtype=float)
        T1 = self._factor_T(theta, self.f1)
        L1 = sp.kron(sp.identity(self.f1.n_levels, format="csr"), sp.csr_matrix(T1))
        if not self.q2:
            return L1.tocsr()
        return sp.block_diag([L1, sp.csr_matrix(self._lambda2(theta))], format="csr")

    def a_inverse(self, theta: np.ndarray) -> np.ndarray:
        """Dense ``(Lambda' Z'Z Lambda + I)^-1`` (q x q) from the block factorisation.

        With ``A11 = L1 L1'`` block diagonal and ``S = L2 L2'`` its Schur complement,
        ``A^-1 = [[A11^-1 + G G', -G L2^-1], [., L2^-T L2^-1]]`` where
        ``G = L1^-T W L2^-T`` and ``W = L1^-1 A12`` (Woodbury): the only large products
        are the ``q1 x q1`` rank-``q2`` update ``G G'``.
        """
        theta = np.asarray(theta, dtype=float)
        _T1, L1, _c1, W, L2, _c2, _lam2, _M, _ld = self._decompose(theta)
        l1, k1 = self.f1.n_levels, self.f1.k
        L1inv = np.linalg.inv(L1)  # (l1, k1, k1) batched
        A11inv = np.einsum("lji,ljk->lik", L1inv, L1inv)  # L1^-T L1^-1 per level
        out = np.zeros((self.q, self.q))
        q1 = self.q1
        diag = (np.arange(l1)[:, None] * k1 + np.arange(k1)[None, :])
        out[diag[:, :, None], diag[:, None, :]] = A11inv
        if self.q2:
            L2inv = np.linalg.inv(L2)
            W = W.toarray() if sp.issparse(W) else W
            WL = (W.reshape(q1, self.q2) @ L2inv.T).reshape(l1, k1, self.q2)  # W L2^-T
            G = np.einsum("lji,ljq->liq", L1inv, WL).reshape(q1, self.q2)  # L1^-T W L2^-T
            out[:q1, :q1] += G @ G.T
            out[:q1, q1:] = -G @ L2inv
            out[q1:, :q1] = out[:q1, q1:].T
            out[q1:, q1:] = L2inv.T @ L2inv
        return out

    # ---------------------------------------------------------------- the solve
    def _decompose(self, theta: np.ndarray, need_w: bool = True):
        f1 = self.f1
        T1 = self._factor_T(theta, f1)
        k1 = f1.k
        if k1 == 1:
            t = T1[0, 0]
            d = np.sqrt(t * t * self.ztz1[:, 0, 0] + 1.0)  # (l1,)
            L1 = d[:, None, None]
            c1 = (t * self.ztxy1) / d[:, None, None]
            ld1 = 2.0 * np.log(d).sum()
        else:
            A1 = np.einsum("ji,ljk,km->lim", T1, self.ztz1, T1) + np.eye(k1)
            L1 = np.linalg.cholesky(A1)
            c1 = np.linalg.solve(L1, np.einsum("ji,ljc->lic", T1, self.ztxy1))
            ld1 = 2.0 * np.log(np.diagonal(L1, axis1=1, axis2=2)).sum()
        C1 = c1.reshape(self.q1, -1)
        M = self.xytxy - C1.T @ C1
        W = L2 = c2 = lam2 = None
        ld2 = 0.0
        if self.q2 and self.schur_sparse:
            self._ensure_pairs()
            # the same algebra with W = L1^-1 A12 sparse (one row block per level of the big
            # factor touches only the levels of the others it meets): W'W costs the sum over
            # levels of (their non-zeros)^2 instead of q1 q2^2; only S is dense
            r2, c2i, i2 = self._lam2_index
            lam2 = sp.csr_matrix((theta[i2], (r2, c2i)), shape=(self.q2, self.q2))
            q1, q2 = self.q1, self.q2
            if k1 == 1:
                blk = T1[0, 0] / L1  # (l1, 1, 1)
            else:
                blk = np.linalg.inv(L1) @ T1.T  # (l1, k1, k1): L1^-1 T1' per level
            Mlev = (np.swapaxes(blk, 1, 2) @ blk).reshape(f1.n_levels, k1 * k1)
            slot, outer, plev = self._p_pairs
            vals = np.einsum("pk,pk->p", outer, Mlev[plev]) if k1 > 1 else outer[:, 0] * Mlev[plev, 0]
            G = self._z2tz2_dense - np.bincount(slot, weights=vals, minlength=q2 * q2).reshape(q2, q2)
            if self._lam2_diagonal:
                d2 = lam2.diagonal()
                S = d2[:, None] * G * d2[None, :]
                S[np.diag_indices(q2)] += 1.0
            else:
                S = (lam2.T @ (lam2.T @ G).T) + np.eye(q2)
            wc = self._z1tz2_sp.T @ (np.swapaxes(blk, 1, 2) @ c1).reshape(q1, -1)  # W'C1 / Lambda2'
            rhs2 = lam2.T @ (self.z2txy - wc)
            W = None
            if need_w:
                Bd = sp.bsr_matrix((blk, np.arange(f1.n_levels), np.arange(f1.n_levels + 1)),
                                   shape=(q1, q1)).tocsr()
                W = (Bd @ self._z1tz2_sp @ lam2).tocsr()
            L2 = np.linalg.cholesky(S)
            c2 = solve_triangular(L2, rhs2, lower=True)
            M = M - c2.T @ c2
            ld2 = 2.0 * np.log(np.diag(L2)).sum()
            lam2 = lam2.toarray()
        elif self.q2:
            lam2 = self._lambda2(theta)
            q1, q2 = self.q1, self.q2
            if k1 == 1:
                A12 = (T1[0, 0] * self.z1tz2.reshape(q1, q2)) @ lam2
                W = (A12 / L1.reshape(q1, 1)).reshape(f1.n_levels, 1, q2)
            else:
                A12 = (np.matmul(T1.T, self.z1tz2).reshape(q1, q2) @ lam2)
                W = np.linalg.solve(L1, A12.reshape(f1.n_levels, k1, q2))
            W2 = W.reshape(q1, q2)
            S = lam2.T @ self.z2tz2 @ lam2 + np.eye(q2) - W2.T @ W2
            L2 = np.linalg.cholesky(S)
            rhs2 = lam2.T @ self.z2txy - W2.T @ C1
            c2 = solve_triangular(L2, rhs2, lower=True)
            M = M - c2.T @ c2
            ld2 = 2.0 * np.log(np.diag(L2)).sum()
        return T1, L1, c1, W, L2, c2, lam2, M, ld1 + ld2

    # ---------------------------------------------------------------- the sparse solve
    # With several large grouping factors (crossed, or many nested levels) the dense Schur
    # complement of the other factors costs q1 * q2^2 per theta; instead the whole
    # A = Lambda'Z'Z Lambda + I is factored by CHOLMOD (fill-reducing ordering and symbolic
    # analysis found once), and X and y enter through B = Lambda'Z'[X y]:
    # M = [X y]'[X y] - B' A^-1 B is the same (p+1) x (p+1) matrix the dense path builds.
    def _sparse_setup(self) -> None:
        cols = []
        for f, start in self._factor_starts():
            base = start + f.codes * f.k
            cols.extend(base + j for j in range(f.k))
        self._rows = RowPattern(np.column_stack(cols), self.q)
        self._row_t_index = [self._t_index(f) for f, _ in self._factor_starts()]
        # Z_f'[X y] per level of each factor: B = Lambda'Z'[X y] is then T_f' times it
        self._ztxy = []
        for f, _ in self._factor_starts():
            zx = np.einsum("ni,nj->nij", f.Z, self.Xy).reshape(self.n, -1)
            self._ztxy.append(_group_sum(f.codes, zx, f.n_levels).reshape(f.n_levels, f.k, self.p + 1))

    def _sparse_decompose(self, theta: np.ndarray):
        if not hasattr(self, "_rows"):  # fits on the analytic gradient never get here
            self._sparse_setup()
        Ts, vals = [], []
        for (f, _), (r, c, i) in zip(self._factor_starts(), self._row_t_index):
            T = np.zeros((f.k, f.k))
            T[r, c] = theta[i]
            Ts.append(T)
            vals.append(f.Z @ T)
        a = np.column_stack(vals)
        rows = self._rows
        rows.chol.factor(rows.hessian(a))
        B = np.concatenate([np.matmul(T.T, zx).reshape(-1, self.p + 1)
                            for T, zx in zip(Ts, self._ztxy)])
        AiB = rows.chol.solve(B)
        M = self.xytxy - B.T @ AiB
        return Ts, AiB, 0.5 * (M + M.T), rows.chol.logdet()

    def _m_logdet(self, theta: np.ndarray) -> tuple[np.ndarray, float]:
        """``M`` (the (p+1) x (p+1) matrix whose Cholesky gives RX and pwrss) and log|L|^2."""
        if self.use_sparse:
            _Ts, _AiB, M, ld = self._sparse_decompose(theta)
            return M, ld
        *_, M, ld = self._decompose(theta, need_w=False)
        return M, ld

    def objective(self, theta: np.ndarray, reml: bool) -> float:
        """Profiled REML criterion (reml=True) or ML deviance at ``theta``."""
        try:
            M, ldL2 = self._m_logdet(np.asarray(theta, dtype=float))
            Lm = np.linalg.cholesky(M)
        except np.linalg.LinAlgError:
            return np.inf
        return self._criterion(Lm, ldL2, reml)

    def _criterion(self, Lm: np.ndarray, ldL2: float, reml: bool) -> float:
        p = self.p
        pwrss = Lm[p, p] ** 2
        if reml:
            nmp = self.n - p
            ldRX2 = 2.0 * np.log(np.diag(Lm)[:p]).sum() + self._ldR2
            return ldL2 + ldRX2 + nmp * (1.0 + LOG_2PI + math.log(pwrss / nmp))
        return ldL2 + self.n * (1.0 + LOG_2PI + math.log(pwrss / self.n))

    def parts(self, theta: np.ndarray) -> tuple[float, float, float, np.ndarray, np.ndarray]:
        """``(ldL2, ldRX2, pwrss, beta, (RX'RX)^-1)`` at ``theta`` (beta the PLS solution)."""
        M, ldL2 = self._m_logdet(np.asarray(theta, dtype=float))
        _Lm, ldRX2, pwrss, _beta_q, beta, xtvx_inv = self._fixed_part(M)
        return ldL2, ldRX2, pwrss, beta, xtvx_inv

    def _fixed_part(self, M: np.ndarray):
        """From M: its Cholesky factor, log|RX|^2, pwrss, beta (orthonormal design and
        original X) and (RX'RX)^-1 for the original X."""
        p = self.p
        Lm = np.linalg.cholesky(M)
        RXt = Lm[:p, :p]
        ldRX2 = 2.0 * np.log(np.diag(RXt)).sum() + self._ldR2
        Rinv = np.linalg.inv(RXt)  # lower-triangular inverse
        cinv_q = Rinv.T @ Rinv
        beta_q = cinv_q @ M[:p, p]
        beta, xtvx_inv = self._to_original(beta_q, cinv_q)
        return Lm, ldRX2, Lm[p, p] ** 2, beta_q, beta, xtvx_inv

    def solve(self, theta: np.ndarray, reml: bool) -> Solution:
        """Full solution at ``theta``: beta, sigma, unscaled vcov, spherical modes ``u``."""
        theta = np.asarray(theta, dtype=float)
        if self.use_sparse:
            return self._sparse_solve(theta, reml)
        T1, L1, c1, W, L2, c2, lam2, M, ldL2 = self._decompose(theta)
        p = self.p
        Lm, ldRX2, pwrss, beta_q, beta, xtvx_inv = self._fixed_part(M)
        sigma = math.sqrt(pwrss / (self.n - p if reml else self.n))
        # back-substitute L' u = c - RZX beta for the conditional modes
        r1 = c1[:, :, p] - c1[:, :, :p] @ beta_q  # (l1, k1)
        if self.q2:
            r2 = c2[:, p] - c2[:, :p] @ beta_q
            u2 = np.linalg.solve(L2.T, r2)
            r1 = r1 - (W @ u2).reshape(r1.shape) if sp.issparse(W) else r1 - W @ u2
        else:
            u2 = np.zeros(0)
        if L1.shape[1] == 1:
            u1 = r1 / L1[:, :, 0]
        else:
            u1 = np.linalg.solve(np.swapaxes(L1, 1, 2), r1[:, :, None])[:, :, 0]
        b1 = u1 @ T1.T  # per level: T1 u
        b2 = lam2 @ u2 if self.q2 else u2
        obj = self._criterion(Lm, ldL2, reml)
        sol = Solution(theta, reml, obj, beta, sigma, xtvx_inv, ldL2, ldRX2, pwrss)
        sol.extras["b"] = self._split_b(b1, b2)
        return sol

    def _sparse_solve(self, theta: np.ndarray, reml: bool) -> Solution:
        Ts, AiB, M, ldL2 = self._sparse_decompose(theta)
        p = self.p
        Lm, ldRX2, pwrss, beta_q, beta, xtvx_inv = self._fixed_part(M)
        sigma = math.sqrt(pwrss / (self.n - p if reml else self.n))
        u = AiB[:, p] - AiB[:, :p] @ beta_q  # A u = Lambda'Z'(y - X beta)
        bs = [u[start:start + f.n_levels * f.k].reshape(f.n_levels, f.k) @ T.T
              for (f, start), T in zip(self._factor_starts(), Ts)]
        b2 = np.concatenate([b.ravel() for b in bs[1:]]) if len(bs) > 1 else np.zeros(0)
        sol = Solution(theta, reml, self._criterion(Lm, ldL2, reml), beta, sigma, xtvx_inv,
                       ldL2, ldRX2, pwrss)
        sol.extras["b"] = self._split_b(bs[0], b2)
        return sol

    def _split_b(self, b1: np.ndarray, b2: np.ndarray) -> list[np.ndarray]:
        """Conditional modes per original block, each (n_levels, k)."""
        out: list[np.ndarray | None] = [None] * len(self.blocks)
        for bid, off in zip(self.f1.block_ids, self.f1.offsets):
            kb = self.blocks[bid].k
            out[bid] = b1[:, off:off + kb]
        pos = 0
        for f in self.rest:
            bf = b2[pos:pos + f.n_levels * f.k].reshape(f.n_levels, f.k)
            pos += f.n_levels * f.k
            for bid, off in zip(f.block_ids, f.offsets):
                kb = self.blocks[bid].k
                out[bid] = bf[:, off:off + kb]
        return out  # type: ignore[return-value]

    # ---------------------------------------------------------------- optimisation
    def _flip_columns(self, f, x: np.ndarray, fx: float, ok: bool, rounds: int = 6, newton=None):
        """Leave a false boundary optimum through the sign symmetry of T's columns.

        ``Lambda Lambda'`` does not change when a whole column of ``T`` changes sign. With
        the diagonal element of a column at its bound 0 the column reads ``(0, t_ij...)``
        and the only way inside is ``t_ii > 0``, which moves the covariances in the
        direction of the sign of ``t_ij``; the other sign needs the column negated. Newton
        can therefore stop at a point that is optimal for one sign only (e.g. intercept
        variance 0 in ``(x | g)`` while a correlation of -1 fits better). Each such column
        is negated and Newton restarted; the best point is kept.
        """
        for _ in range(rounds):
            improved = False
            for bi, b in enumerate(self.blocks):
                starts = self.theta_slices[bi].start + np.cumsum([0] + [b.k - j for j in range(b.k - 1)])
                for j, pos in enumerate(starts):
                    below = np.arange(pos + 1, pos + b.k - j)
                    if x[pos] < SINGULAR_TOL and below.size and np.any(x[below] != 0.0):
                        x1 = x.copy()
                        x1[below] = -x1[below]
                        f1 = f(x1)
                        # only worth a Newton run if moving the diagonal inside goes downhill
                        h = 1e-4 * max(abs(x1[pos]), 1e-2)
                        e = np.zeros_like(x1)
                        e[pos] = h
                        slope = (-3 * f1 + 4 * f(x1 + e) - f(x1 + 2 * e)) / (2 * h)
                        if not slope < -1e-8 * max(1.0, abs(f1)):
                            continue
                        xr, fr, okr = (projected_newton(f, x1, f1, self.lower) if newton is None
                                       else newton(x1))
                        if fr < fx - 1e-10:
                            x, fx, ok, improved = xr, fr, okr, True
            if not improved:
                break
        return x, fx, ok

    def _gradient(self, theta: np.ndarray, reml: bool) -> np.ndarray | None:
        if not _grad_pays(self):
            return None
        last = getattr(self, "_last_gradient", None)
        if last is not None and last[1] == reml and np.array_equal(last[0], theta):
            return last[2]
        try:
            return derivatives(self, theta, reml).gradient(self.n - self.p if reml else self.n)
        except np.linalg.LinAlgError:
            return None

    def _quasi_newton(self, x0: np.ndarray, reml: bool) -> tuple[np.ndarray, float, bool]:
        """L-BFGS-B (scipy) on the analytic gradient: each iteration costs one gradient
        (about three criteria), where the finite-difference Newton paid 2m + m(m-1) criteria
        per step. Its convergence tests are relative to the criterion, so the tolerances
        are tight: lme4's optimum is matched to 1e-5 of the estimates."""
        n_eff = self.n - self.p if reml else self.n

        last: list = [None, np.inf, None]  # the last point evaluated, its value and gradient
        seen: list[tuple] = []  # every point evaluated: (theta, value, gradient, derivatives)

        def fg(t: np.ndarray) -> tuple[float, np.ndarray]:
            D = None
            try:
                D = derivatives(self, t, reml)
                out = D.objective(n_eff), D.gradient(n_eff)
            except np.linalg.LinAlgError:
                out = np.inf, np.zeros_like(t)
            last[:] = [np.array(t, dtype=float), *out]
            self._last_derivatives = (last[0], reml, D)  # the final solution reuses it
            seen.append((last[0], *out, D))
            return out

        def pgrad(t: np.ndarray, g: np.ndarray) -> float:
            free = (t > self.lower + 1e-9) | (g < 0)
            return float(np.max(np.abs(g[free]))) if free.any() else 0.0

        def settle(xr: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
            """L-BFGS-B's answer, or the point evaluated on the way with the smallest
            projected gradient among those whose criterion equals the lowest to rounding
            (1e-12): near the optimum the criterion's last bits are noise, a line search may
            reject the better point for them and end on a worse one, which then cost a
            Newton polish (lme_cell_slopes_ca_amplitude: 5 gradients)."""
            xr = np.maximum(np.asarray(xr, dtype=float), self.lower)
            fr, gr = (last[1], last[2]) if np.array_equal(last[0], xr) else fg(xr)
            finite = [v for _, v, _, _ in seen if np.isfinite(v)]
            if not finite:
                return xr, fr, gr
            low = min(finite)
            near = [e for e in seen if e[1] <= low + 1e-12 * abs(low)]
            t, v, g, D = min(near, key=lambda e: pgrad(e[0], e[2]))
            if pgrad(t, g) < pgrad(xr, gr) and v <= fr + 1e-12 * abs(fr):
                last[:] = [t, v, g]
                self._last_derivatives = (t, reml, D)
                return t.copy(), v, g
            return xr, fr, gr

        bounds = [(lo if np.isfinite(lo) else None, None) for lo in self.lower]
        # gtol: the projected gradient at which the Newton polish below stops too (1e-6);
        # at 1e-8 L-BFGS-B went on with line searches whose trial points' gradients are
        # rounding noise (lme_cell_slopes_ca_amplitude: 6 more gradients, one time in two,
        # depending on the last bits of the arithmetic)
        opts = {"ftol": 1e-15, "gtol": 1e-6, "maxiter": 1000, "maxcor": 20}
        res = minimize(fg, x0, jac=True, method="L-BFGS-B", bounds=bounds, options=opts)
        x, fx, g = settle(res.x)
        # A diagonal of T whose column is otherwise 0 enters the criterion squared: at its
        # bound 0 the derivative vanishes, so a projected step that overshoots to 0 ends
        # L-BFGS-B there even when the bound is a saddle ((treatment | midx) by ML went to
        # 0 from every start). Probe a little inside; restart from there when it is downhill.
        for _ in range(3):
            moved = False
            for i in np.flatnonzero((self.lower == 0.0) & (x < 1e-8)):
                xi = x.copy()
                xi[i] = 1e-2
                fi, gi = fg(xi)
                if not (fi < fx - 1e-10 or gi[i] < 0):
                    continue
                res = minimize(fg, xi, jac=True, method="L-BFGS-B", bounds=bounds, options=opts)
                xr, fr, gr = settle(res.x)
                if fr < fx - 1e-10:
                    x, fx, g, moved = xr, fr, gr, True
                    break
            if not moved:
                break
        # L-BFGS-B stops on relative changes of a criterion in the thousands: a few Newton
        # steps (Hessian from forward differences of the gradient) land on the optimum to
        # ~1e-9, as the finite-difference Newton did (lme4's printed digits need it)
        for _ in range(4):
            free = np.flatnonzero((x > self.lower + 1e-9) | (g < 0))
            # a gradient below 1e-6 (criterion in the hundreds or more) leaves theta within
            # ~1e-8 of the optimum, inside lme4's own convergence noise
            if not free.size or not np.isfinite(fx) or np.max(np.abs(g[free])) < 1e-6:
                break
            H = np.empty((free.size, free.size))
            for j, i in enumerate(free):
                h = 1e-5 * max(abs(x[i]), 0.05)
                e = np.zeros_like(x)
                e[i] = h
                H[j] = (fg(x + e)[1][free] - g[free]) / h
            try:
                step = -np.linalg.solve(np.linalg.cholesky(0.5 * (H + H.T)).T,
                                        np.linalg.solve(np.linalg.cholesky(0.5 * (H + H.T)), g[free]))
            except np.linalg.LinAlgError:
                break
            xn = x.copy()
            xn[free] += step
            xn = np.maximum(xn, self.lower)
            fn, gn = fg(xn)
            if not fn <= fx + 1e-12 * abs(fx):
                break
            x, fx, g = xn, fn, gn
            if np.max(np.abs(step)) < 1e-9 * (1.0 + np.max(np.abs(x))):
                break
        free = (x > self.lower + 1e-9) | (g < 0)
        ok = bool(np.isfinite(fx)) and (not free.any() or float(np.max(np.abs(g[free]))) < 1e-3)
        self._last_gradient = (x.copy(), reml, g)
        return x, float(fx), ok

    def start_theta(self) -> np.ndarray:
        """lme4's start: identity T for every term."""
        return np.where(self.lower == 0.0, 1.0, 0.0)

    def fit(self, reml: bool = True, theta0: np.ndarray | None = None) -> LmeFit:
        """Minimise the profiled criterion over theta within its bounds.

        Where the analytic gradient covers the structure (:func:`derivatives`: any terms
        of the largest factor, scalar terms elsewhere) L-BFGS-B runs on it, polished by
        Newton steps; otherwise a projected Newton method with finite-difference derivatives
        (L-BFGS-B on differences as its fallback). Both land well inside lme4's own
        convergence noise. Boundary optima are then checked for sign flips and restarts.
        """
        x0 = self.start_theta() if theta0 is None else np.asarray(theta0, dtype=float)

        def f(t: np.ndarray) -> float:
            return self.objective(t, reml)

        grad_path = _grad_pays(self)
        if grad_path:
            x, fx, ok = self._quasi_newton(x0, reml)
            if not np.isfinite(fx):  # the start itself breaks down
                x, fx, ok = self._quasi_newton(np.where(self.lower == 0.0, 0.5, 0.0), reml)
        else:
            fx0 = f(x0)
            if not np.isfinite(fx0):
                x0 = np.where(self.lower == 0.0, 0.5, 0.0)
                fx0 = f(x0)
            x, fx, ok = projected_newton(f, x0, fx0, self.lower)
        if not ok:
            bounds = [(lo if np.isfinite(lo) else None, None) for lo in self.lower]
            res = minimize(f, x, method="L-BFGS-B", bounds=bounds,
                           options={"ftol": 1e-15, "gtol": 1e-10, "maxiter": 5000})
            xb = np.maximum(np.asarray(res.x, dtype=float), self.lower)
            xb, fb, ok = projected_newton(f, xb, f(xb), self.lower)
            if fb <= fx:
                x, fx = xb, fb
        def newton(x1: np.ndarray) -> tuple[np.ndarray, float, bool]:
            # restarts on the gradient where it pays: L-BFGS-B stops at a scalar variance
            # of 0 (its derivative vanishes there), and the finite-difference Newton from
            # inside cost 300+ criteria (0.4 s of a 0.6 s cell-slope fit)
            if grad_path:
                return self._quasi_newton(x1, reml)
            return projected_newton(f, x1, f(x1), self.lower)

        x, fx, ok = self._flip_columns(f, x, fx, ok, newton=newton)
        if np.any(x[self.lower == 0.0] < SINGULAR_TOL):
            # a boundary optimum may be a local one: restart from inside and keep the best
            for x1 in (np.where((self.lower == 0.0) & (x < SINGULAR_TOL), 0.5, x),
                       self.start_theta() * 0.5 + np.where(self.lower == 0.0, 0.0, 0.1)):
                xr, fr, okr = newton(x1)
                xr, fr, okr = self._flip_columns(f, xr, fr, okr, newton=newton)
                if fr < fx - 1e-10:
                    x, fx, ok = xr, fr, okr
        grad = self._gradient(x, reml)
        if grad is None:
            grad, _ = fd_derivatives_bounded(f, x, fx, self.lower)
        free = (x > self.lower + 1e-9) | (grad < 0)
        gmax = float(np.max(np.abs(grad[free]))) if free.any() else 0.0
        converged = bool(np.isfinite(fx)) and gmax < 2e-3
        sol = self._solve_by_derivatives(x, reml) if grad_path else None
        sol = self.solve(x, reml) if sol is None else sol
        return LmeFit(problem=self, solution=sol, converged=converged, grad_max=gmax)

    def _solve_by_derivatives(self, theta: np.ndarray, reml: bool) -> Solution | None:
        """:meth:`solve` from the gradient's block solve (same numbers; the criterion's own
        path may need set-up the gradient does not)."""
        last = getattr(self, "_last_derivatives", None)
        if last is not None and last[1] == reml and last[2] is not None and np.array_equal(last[0], theta):
            D = last[2]
        else:
            try:
                D = derivatives(self, theta, reml)
            except np.linalg.LinAlgError:
                return None
        n_eff = self.n - self.p if reml else self.n
        beta, xtvx_inv = self._to_original(D.beta_q, D.cinv_q)
        sol = Solution(np.asarray(theta, dtype=float), reml, D.objective(n_eff), beta,
                       math.sqrt(D.pwrss / n_eff), xtvx_inv, D.ldL2, D.ldRX2, D.pwrss)
        sol.extras["b"] = self._split_b(D.b1, D.b2)
        return sol


def _prefer_sparse(pr: LmeProblem) -> bool:
    """Sparse Cholesky of the whole system, or the dense Schur complement of the smaller factors?

    The dense path costs about ``q1 q2^2`` per theta (``q2`` the random effects outside the
    largest factor), the sparse one about ``n r^2`` plus the factorisation; below a few
    dozen ``q2`` the dense path's batched small solves win. Crossed designs whose largest
    factor is a scalar intercept keep the Schur complement, built from pair sums
    (``schur_sparse``): its dense ``q2 x q2`` LAPACK Cholesky is faster than CHOLMOD's on
    the same fill (timed on lme_crossed_50k, lme_many_effects and
    lme_cell_slopes_ca_amplitude, see ``mmteach.bench``).
    """
    return bool(pr.q2) and not pr.schur_sparse and (pr.q2 >= SPARSE_Q2 or pr.q >= SPARSE_Q)


def _group_sum(codes: np.ndarray, vals: np.ndarray, n_levels: int) -> np.ndarray:
    """Column sums of ``vals`` within each level (fast bincount per column)."""
    out = np.empty((n_levels, vals.shape[1]))
    for j in range(vals.shape[1]):
        out[:, j] = np.bincount(codes, weights=vals[:, j], minlength=n_levels)
    return out


# duplicates: its properties forward to the Solution one by one, alike in shape only
@dataclass
class LmeFit:
    """The optimum: the problem, the solution at the optimal theta and convergence info."""

    problem: LmeProblem
    solution: Solution
    converged: bool
    grad_max: float

    @property
    def theta(self) -> np.ndarray:
        return self.solution.theta

    @property
    def reml(self) -> bool:
        return self.solution.reml

    @property
    def beta(self) -> np.ndarray:
        return self.solution.beta

    @property
    def sigma(self) -> float:
        return self.solution.sigma

    @property
    def vcov(self) -> np.ndarray:
        """Covariance matrix of beta: sigma^2 (X' V~^-1 X)^-1 as lme4's vcov()."""
        return self.solution.sigma**2 * self.solution.xtvx_inv

    @property
    def n_par(self) -> int:
        """Parameters as lme4 counts them for AIC/BIC: fixed + theta + sigma."""
        return self.problem.p + self.problem.n_theta + 1

    @property
    def loglik(self) -> float:
        return -0.5 * self.solution.objective

    @property
    def deviance_ml(self) -> float:
        """ML deviance at this theta (lme4's deviance(fit, REML = FALSE))."""
        pr = self.problem
        s = self.solution
        return s.ldL2 + pr.n * (1.0 + LOG_2PI + math.log(s.pwrss / pr.n))

    @property
    def aic(self) -> float:
        return -2.0 * self.loglik + 2.0 * self.n_par

    @property
    def bic(self) -> float:
        return -2.0 * self.loglik + self.n_par * math.log(self.problem.n)

    @property
    def singular(self) -> bool:
        """lme4's isSingular: a diagonal element of some T below 1e-4."""
        lo = self.problem.lower == 0.0
        return bool(np.any(self.theta[lo] < SINGULAR_TOL))

    def covariance(self, i: int) -> np.ndarray:
        """Covariance matrix sigma^2 T T' of the random effects of block ``i``."""
        T = self.problem.block_T(self.theta, i)
        return self.sigma**2 * (T @ T.T)

    def ranef(self) -> list[np.ndarray]:
        """Conditional modes per block, each (n_levels, k)."""
        return self.solution.extras["b"]
