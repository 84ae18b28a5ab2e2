"""Analytic gradient of the profiled (RE)ML criterion of :class:`mmteach.lme_deviance.LmeProblem`.

Used by the LME fit (L-BFGS-B on it, :meth:`LmeProblem.fit`) and by the Satterthwaite and
Kenward-Roger df (:mod:`mmteach.dfmethods`, through :func:`theta_derivatives`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
from scipy.linalg.blas import dsymm
from scipy.linalg.lapack import dpotrf, dpotri, dtrtri

if TYPE_CHECKING:
    from mmteach.lme_deviance import LmeProblem

LOG_2PI = math.log(2.0 * math.pi)
MAX_PAIRS = 5_000_000  # pairs of non-zeros in a row of Z1'Z2 the sparse Schur paths store

# With V = I + Z Lambda Lambda' Z' (relative to sigma^2), A = Lambda' H Lambda + I (H = Z'Z),
# D_i = dLambda/dtheta_i and e the penalised residual (V^-1 times the GLS residual):
#   d log|A|    = 2 tr(A^-1 Lambda' H D_i)               (A^-1 needed on the diagonal blocks
#                                                          of A^-1 Lambda' H only)
#   d log|RX|^2 = -2 tr(C F' D_i Lambda' F),  F = Z'V^-1 X, C = (X'V^-1 X)^-1
#   d pwrss     = -2 w' D_i Lambda' w,        w = Z'e     (beta profiled out: envelope)
# A^-1 comes from the block form used by the dense solve (big factor block diagonal, the
# others through a dense Schur complement S), so only S^-1 (q2 x q2) is formed densely.
# Each gradient costs about two criterion evaluations; L-BFGS-B with it needs 15-40 of
# them where the finite-difference Newton needed 200-350 criterion evaluations.
GRAD_MAX_Q2 = 1500  # S^-1 is dense: q2^3
GRAD_MAX_Q1Q2 = 6_000_000  # Y S^-1 is a dense q1 x q2
GRAD_MIN_Q = 200  # two variance parameters: the gradient pays from this many random effects
GRAD_DENSE_P = 40_000  # P = Z1'Z2 dense below this many entries (q1 q2) ...
GRAD_DENSE_FILL = 0.1  # ... when at least this fraction of them is non-zero


@dataclass
class Derivatives:
    """Parts of the profiled criterion at one theta and their gradients (Q basis for X)."""

    ld: float  # log|A| (+ log|RX|^2 for REML, with the constant of the QR)
    pwrss: float
    g_ld: np.ndarray
    g_pw: np.ndarray
    cinv_q: np.ndarray  # (X'V^-1 X)^-1 for the orthonormal Q
    beta_q: np.ndarray
    ldL2: float
    ldRX2: float
    b1: np.ndarray  # conditional modes b = Lambda u: big factor (l1, k1), the others (q2,)
    b2: np.ndarray
    # per factor (rows, cols, theta index of T's free elements, sum over levels of
    # F_l[:, :p] (x) (T'F_l)[:, :p] as (k, p, k, p)): what d cinv_q / d theta is made of,
    # kept so that the fit's last gradient also serves the Satterthwaite df (one gradient
    # fewer) without paying for the Jacobian on the optimiser's other steps
    jac_parts: list = field(default_factory=list, repr=False)
    n_theta: int = 0

    @property
    def dcinv_q(self) -> np.ndarray:
        """(n_theta, p, p): d (X'V^-1 X)^-1 / d theta for the orthonormal Q (computed on
        first use)."""
        if not hasattr(self, "_dcinv_q"):
            cinv = self.cinv_q
            p = cinv.shape[0]
            out = np.zeros((self.n_theta, p, p))
            for r, c, ti, G in self.jac_parts:
                for rr, cc, tt in zip(r, c, ti):
                    Dm = G[rr, :, cc, :]  # F[:, rr, :p]' (T'F)[:, cc, :p] over levels
                    out[tt] += cinv @ (Dm + Dm.T) @ cinv
            self._dcinv_q = out
        return self._dcinv_q

    def objective(self, n_eff: int) -> float:
        return self.ld + n_eff * (1.0 + LOG_2PI + math.log(self.pwrss / n_eff))

    def gradient(self, n_eff: int) -> np.ndarray:
        return self.g_ld + (n_eff / self.pwrss) * self.g_pw


def _grad_pays(pr: LmeProblem) -> bool:
    """Whether fits and Satterthwaite df use the analytic gradient. A gradient costs 1.5-5
    criteria plus ~0.3 ms of fixed numpy work, so on small problems with one or two
    variance parameters (most teaching fits: a criterion in ~20 us) the finite differences
    stay faster (lme_fit_ca_frequency: 7 ms against 10 ms)."""
    m = pr.n_theta
    return _grad_supported(pr) and (m >= 3 or (m == 2 and pr.q >= GRAD_MIN_Q))


def _grad_supported(pr: LmeProblem) -> bool:
    """The block form below handles any terms: the big factor's block diagonal, the others
    through the dense Schur complement (Lambda2 diagonal, or block diagonal for slopes)."""
    return pr.p > 0 and pr.q2 <= GRAD_MAX_Q2 and pr.q1 * pr.q2 <= GRAD_MAX_Q1Q2


class _Coupling:
    """``P = Z1'Z2`` stored per (level of the big factor, column of the others): the k1 rows
    of one level share their columns, so a block-row scaling ``diag_l(B_l) P`` is one batched
    k1 x k1 product on the stored entries (no sparse-matrix products per theta)."""

    def __init__(self, pr: LmeProblem) -> None:
        k1, q1, q2 = pr.f1.k, pr.q1, pr.q2
        self.lev, self.col, self.vec = pr._p_entries  # sorted by level, then column
        self.vec_t = np.ascontiguousarray(self.vec.T)  # (k1, E)
        self.t_index = [pr._t_index(f) for f in pr.rest]  # by position: survives pickling
        l1 = pr.f1.n_levels
        self.cnt = np.bincount(self.lev, minlength=l1)  # entries per level (self.lev is sorted)
        # each level meets one column of the others (cells nested in mice, scalar terms):
        # entry e is level e, and every product with P is a gather or, summed by column, a
        # product with the q2 x l1 indicator of the columns (sparse products cost 15-20 us of
        # scipy's own overhead each, 6 a gradient)
        self.nested = bool(np.all(self.cnt == 1))
        if self.nested:
            self.ind = np.zeros((q2, l1))
            self.ind[self.col, np.arange(l1)] = 1.0
            self.vv = self.vec_t[:, None, :] * self.vec_t[None, :, :]  # (k1, k1, l1)
        else:
            self.P = pr._z1tz2_sp
            self.PT = self.P.T  # a CSC view: its products are as fast as a converted CSR
            rows = (self.lev[:, None] * k1 + np.arange(k1)[None, :]).ravel()
            cols = np.repeat(self.col, k1)
            # a CSR matrix with these entries whose data are overwritten per theta
            m = sp.csr_matrix((np.arange(1, rows.size + 1, dtype=float), (rows, cols)), shape=(q1, q2))
            # the values come level-last, (k1, E) (see derivatives): position e k1 + a -> a E + e
            n_e = self.lev.size
            perm = m.data.astype(np.int64) - 1
            self.perm = (perm % k1) * n_e + perm // k1
            self.m = m
            # and its transpose (q2 x q1) the same way: a sparse .T per theta cost 0.1 ms
            mt = m.T.tocsr()  # its data: the positions + 1 of the entries, as m's
            perm_t = mt.data.astype(np.int64) - 1
            self.perm_t = (perm_t % k1) * n_e + perm_t // k1
            self.mt = mt
        self.scalar = all(f.k == 1 for f in pr.rest)
        # few random effects outside the big factor: P dense, as the scipy.sparse calls' own
        # overhead exceeds the arithmetic; but not when P is mostly zeros, nor for nested
        # levels (their gathers beat the dense products on 6 mice and 11)
        self.use_dense = (not self.nested and q1 * q2 <= GRAD_DENSE_P
                          and self.P.nnz >= GRAD_DENSE_FILL * q1 * q2)
        self._kq = (k1, l1, q2)

    @property
    def pairs(self) -> bool:
        """Whether sums over pairs of a level's entries are cheap (nested, or K is stored)."""
        return self.nested or self.K is not None

    @property
    def K(self) -> sp.csc_matrix | None:
        """The pair matrix (built on first use: fits on dense P never need it)."""
        if not hasattr(self, "_K"):
            self._build_pairs()
        return self._K

    def _build_pairs(self) -> None:
        # Pairs of entries of one level: P' B P = sum_l P_l' B_l'B_l P_l is, entry by entry, a
        # fixed linear map of the (k1 x k1 per level) weights B_l'B_l: one sparse matrix K
        # (q2^2 x l1 k1^2) with K[(c1, c2), (l, x, y)] = P_l[x, c1] P_l[y, c2] gives it as
        # K @ w, and the sums over pairs of S^-1 that the gradient needs as K' @ vec(S^-1):
        # two sparse products in C instead of gathers over the pairs in numpy
        k1, l1, q2 = self._kq
        cnt = self.cnt
        npair = cnt * cnt
        self._K = None
        if int(npair.sum()) * k1 * k1 <= MAX_PAIRS:
            # both matrices are symmetric: only pairs in the lower triangle (col1 >= col2),
            # a pair with itself at half weight (see derivatives for the way back). A level's
            # entries are sorted by column, so entry i of a level pairs with its entries
            # 0..i: made by repeats, as integer division over all pairs cost 35 ms on
            # lme_crossed_50k
            ptr = np.concatenate([[0], np.cumsum(cnt)])
            first = ptr[self.lev]  # the level's first entry, for each entry
            reps = np.arange(self.lev.size) - first + 1
            e1 = np.repeat(np.arange(self.lev.size), reps)
            start = np.cumsum(reps) - reps
            e2 = np.arange(e1.size) - np.repeat(start - first, reps)
            plev = self.lev[e1]
            half = np.where(e1 == e2, 0.5, 1.0)
            slot = (self.col[e1] * q2 + self.col[e2]).astype(np.int32)
            # K' in CSR straight from the pairs (grouped by level already: no COO sort,
            # which cost 0.2 s on lme_crossed_50k's 1.25M pairs); K is its CSC transpose
            v1, v2 = self.vec[e1] * half[:, None], self.vec[e2]  # one gather a side (0.1 ms)
            data = np.concatenate([v1[:, x] * v2[:, y] for x in range(k1) for y in range(k1)])
            ptr1 = np.concatenate([[0], np.cumsum(np.bincount(plev, minlength=l1))])
            indptr = np.concatenate([ptr1[:-1] + j * plev.size for j in range(k1 * k1)]
                                    + [[k1 * k1 * plev.size]])
            KT = sp.csr_matrix((data, np.tile(slot, k1 * k1), indptr),
                               shape=(k1 * k1 * l1, q2 * q2))
            # rows (x, y, l): the per-level k1 x k1 weights level-last, as derivatives keeps them
            self.KT = KT
            self._K = self.KT.T

    @property
    def dense(self) -> np.ndarray:
        """P as a dense q1 x q2 array (built on first use)."""
        if not hasattr(self, "_dense"):
            self._dense = self.P.toarray()
        return self._dense

    def mul(self, x: np.ndarray, vals: np.ndarray | None = None) -> np.ndarray:
        """``P x`` for x (q2, c), or with ``vals`` (k1, E) the product of the matrix with
        those entries in P's places; level-last (k1, c, l1)."""
        v = self.vec_t if vals is None else vals
        if self.nested:
            return v[:, None, :] * x.T.take(self.col, axis=1)  # take: 4x faster than x[col].T
        k1, l1, _ = self._kq
        m = self.P if vals is None else self.matrix(vals)
        return _level_last(np.asarray(m @ x), l1, k1)

    def tmul(self, X: np.ndarray, vals: np.ndarray | None = None) -> np.ndarray:
        """``P' X`` for a level-last X (k1, c, l1) (or the matrix of ``vals``'s): (q2, c)."""
        if self.nested:
            v = self.vec_t if vals is None else vals
            return self.ind @ np.einsum("al,acl->lc", v, X)
        m = self.PT if vals is None else self.matrix_t(vals)
        return np.asarray(m @ _level_first(X))

    def gram(self, vals: np.ndarray, T1: np.ndarray, BY: np.ndarray) -> np.ndarray:
        """``(B P)'(B P)`` for the entries ``vals`` of ``B P`` (B = diag_l(B_l), B_l'B_l =
        T1 BY_l); exact in the lower triangle (the pair sums fill only that)."""
        q2 = self._kq[2]
        if self.nested:  # one column a level: diagonal, the levels' squared norms by column
            return np.diag(self.ind @ np.einsum("al,al->l", vals, vals))
        if self.K is not None:  # the diagonal's pairs carry half weight
            out = (self.K @ _lmul(T1, BY).ravel()).reshape(q2, q2)
            out.flat[::q2 + 1] *= 2.0  # a strided view: no index arrays
            return out
        return (self.matrix_t(vals) @ self.matrix(vals)).toarray()

    def pair_weights(self, LSL: np.ndarray) -> np.ndarray:
        """``R_l = sum over pairs (c, d) of level l's entries of LSL[c, d] P_l[:, c]
        P_l[:, d]'`` for a symmetric LSL (q2 x q2, lower triangle read), (k1, k1, l1)."""
        if self.nested:
            return self.vv * LSL.diagonal()[self.col]
        k1, l1, _ = self._kq
        R = (self.KT @ LSL.ravel()).reshape(k1, k1, l1)
        return R + R.transpose(1, 0, 2)  # the upper-triangle pairs are the transposes

    def matrix(self, vals: np.ndarray) -> sp.csr_matrix:
        """The q1 x q2 CSR matrix with entries ``vals`` (k1, E) (reused between calls)."""
        self.m.data[:] = vals.ravel()[self.perm]
        return self.m

    def matrix_t(self, vals: np.ndarray) -> sp.csr_matrix:
        """The transpose of :meth:`matrix` (q2 x q1, CSR; reused between calls)."""
        self.mt.data[:] = vals.ravel()[self.perm_t]
        return self.mt


def _chol_inv(A: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """For a level-last stack ``(k, k, l)`` of positive definite matrices: the sum of their
    log-determinants, the inverses of their Cholesky factors ``L^-1`` and
    ``A^-1 = L^-T L^-1`` (level-last too); closed forms for k <= 2 (numpy's batched LAPACK
    calls cost ~1 us per tiny matrix, 10x the arithmetic). Here A = T'HT + I >= I, so only
    overflow or NaN in theta can break it: a log-determinant that is not finite tells (one
    check instead of a reduction per diagonal element, each ~2-4 us on 622 levels)."""
    k = A.shape[0]
    if k == 1:
        ld = float(np.log(A).sum())
        if not math.isfinite(ld):
            raise np.linalg.LinAlgError("not positive definite")
        Ai = 1.0 / A
        return ld, np.sqrt(Ai), Ai
    if k == 2:
        a, b, c = A[0, 0], A[1, 0], A[1, 1]
        ia = 1.0 / a  # 1 / l11^2
        r = b * ia  # l21 / l11, l21 = b / l11
        d = c - b * r  # l22^2 = c - l21^2
        ld = float(np.log(a * d).sum())  # log|A| = log(l11^2 l22^2)
        if not math.isfinite(ld):
            raise np.linalg.LinAlgError("not positive definite")
        # filled row by row: cheaper than np.stack (L^-1 = [[1/l11, 0], [-r/l22, 1/l22]],
        # L^-T L^-1 = [[1/l11^2 + r^2/l22^2, -r/l22^2], [., 1/l22^2]])
        Li = np.empty((2, 2, a.size))
        Ai = np.empty((2, 2, a.size))
        np.divide(1.0, d, out=Ai[1, 1])
        np.sqrt(ia, out=Li[0, 0])
        np.sqrt(Ai[1, 1], out=Li[1, 1])
        Li[0, 1] = 0.0
        np.multiply(Li[1, 1], r, out=Li[1, 0])
        np.negative(Li[1, 0], out=Li[1, 0])
        np.multiply(Ai[1, 1], r, out=Ai[0, 1])
        np.negative(Ai[0, 1], out=Ai[0, 1])
        Ai[1, 0] = Ai[0, 1]
        Ai[0, 0] = ia - r * Ai[0, 1]
        return ld, Li, Ai
    L = np.linalg.cholesky(np.moveaxis(A, 2, 0))
    Li = np.linalg.inv(L)
    ld = 2.0 * float(np.log(np.diagonal(L, axis1=1, axis2=2)).sum())
    Ai = np.swapaxes(Li, 1, 2) @ Li
    return ld, np.ascontiguousarray(np.moveaxis(Li, 0, 2)), np.ascontiguousarray(np.moveaxis(Ai, 0, 2))


# Products of stacks of tiny matrices, one per level, kept level-LAST, (a, b, l): the
# per-level loops then run over the contiguous last axis (einsum on 622 2x2 x 2x3 products:
# 5-9 us, against 19-36 us for numpy's stacked matmul on level-first (l, a, b) stacks,
# which pays a call per tiny matrix); a matrix shared by all levels on the left is one GEMM.
def _chol(A: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor of a small dense matrix: LAPACK's dpotrf without numpy's
    wrapper (1-1.5 us against 7-8 us for np.linalg.cholesky at 3 x 3 and 11 x 11)."""
    L, info = dpotrf(A, lower=1)
    if info:
        raise np.linalg.LinAlgError("not positive definite")
    return L


def _mm(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``A_l @ B_l`` for every level l (stacks (a, k, l) and (k, b, l))."""
    return np.einsum("akl,kbl->abl", A, B)


def _lmul(T: np.ndarray, X: np.ndarray) -> np.ndarray:
    """``T @ X_l`` for every level l of ``X`` (k, b, l): one GEMM on (k, b l)."""
    k, b, n = X.shape
    return (T @ X.reshape(k, b * n)).reshape(T.shape[0], b, n)


def _rmul(X: np.ndarray, T: np.ndarray) -> np.ndarray:
    """``X_l @ T`` for every level l of ``X`` (a, k, l)."""
    return np.einsum("akl,kb->abl", X, T)


def _lsum(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``sum_l A_l' B_l`` for stacks (k, a, l) and (k, b, l)."""
    return np.einsum("kal,kbl->ab", A, B)  # 3x lighter than tensordot's copies here


def _bmm_lf(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``A_l @ B_l`` on level-first stacks (l, a, k) and (l, k, b), for wide b (the dense
    coupling's q2 columns): numpy's stacked matmul, or a broadcast product for k = 1."""
    if A.shape[2] == 1:
        return A * B
    return A @ B


def _level_first(X: np.ndarray) -> np.ndarray:
    """A level-last stack (a, b, l) as the (l a) x b matrix of the random-effects order."""
    return X.transpose(2, 0, 1).reshape(-1, X.shape[1])


def _level_last(X: np.ndarray, l1: int, k1: int) -> np.ndarray:
    """The inverse of :func:`_level_first`: rows (l a) of X as a (k1, cols, l1) view."""
    return X.reshape(l1, k1, -1).transpose(1, 2, 0)


def derivatives(pr: LmeProblem, theta: np.ndarray, reml: bool, jacobian: bool = False) -> Derivatives:
    """Criterion parts and their analytic gradients at ``theta`` (see the formulas above).
    The Jacobian ``dcinv_q`` is computed on first use, or here with ``jacobian=True``.

    Raises ``np.linalg.LinAlgError`` where a factor is not positive definite.
    """
    theta = np.asarray(theta, dtype=float)
    f1, p = pr.f1, pr.p
    l1, k1, q1, q2 = f1.n_levels, f1.k, pr.q1, pr.q2
    ll = getattr(pr, "_ll", None)
    if ll is None:  # Z1'Z1 and Z1'[X y] per level, level-last (see _mm)
        ll = pr._ll = (np.ascontiguousarray(pr.ztz1.transpose(1, 2, 0)),
                       np.ascontiguousarray(pr.ztxy1.transpose(1, 2, 0)), np.eye(k1)[:, :, None])
    H1, F1xy, eye = ll
    T1 = pr._factor_T(theta, f1)
    HT = _rmul(H1, T1)  # H11 T1 per level
    ld, L1inv, A11inv = _chol_inv(_lmul(T1.T, HT) + eye)  # ld = log|A11|
    blk = _rmul(L1inv, T1.T)  # L1^-1 T1' per level
    blkT = blk.transpose(1, 0, 2)  # T1 L1^-T: b1 = T1 u1 = blkT (...)
    c1 = _mm(blk, F1xy)  # (k1, p+1, l1)
    M = pr.xytxy - _lsum(c1, c1)
    BY = _rmul(A11inv, T1.T)  # A11^-1 T1' per level
    if q2:
        cp = getattr(pr, "_coupling", None)
        if cp is None:
            cp = pr._coupling = _Coupling(pr)
        # Lambda2: a diagonal (scalar terms, kept as a vector) or block diagonal (dense:
        # q2 is small where the other factors have slopes, e.g. mice in cell-slope models)
        scalar, dense = cp.scalar, cp.use_dense
        if scalar:
            r2, _c2i, i2 = pr._lam2_index
            d2 = np.zeros(q2)
            d2[r2] = theta[i2]
        else:
            lam2 = pr._lambda2(theta)
        if dense:
            # q2 wide: numpy's stacked matmul on level-first views (one BLAS-sized product
            # per level), the products below on the (q1, q2) matrix
            Pm = cp.dense
            BP = _bmm_lf(blk.transpose(2, 0, 1), Pm.reshape(l1, k1, q2)).reshape(q1, q2)
            Gs = pr.z2tz2 - BP.T @ BP
            rhs2 = pr.z2txy - BP.T @ _level_first(c1)
        else:
            # L1^-1 Lambda1' P on P's entries (grouped by level: a repeat, not a gather)
            # (a sum over the k1 columns: 3-4x faster than a broadcast product and its sum,
            # or a stacked matmul, on lme_many_effects' 3,000 entries)
            Brep = blk if cp.nested else np.repeat(blk, cp.cnt, axis=2)  # (k1, k1, E)
            BPv = Brep[:, 0] * cp.vec_t[0]
            for j in range(1, k1):
                BPv += Brep[:, j] * cp.vec_t[j]
            Gs = pr.z2tz2 - cp.gram(BPv, T1, BY)
            rhs2 = pr.z2txy - cp.tmul(c1, BPv)
        if scalar:
            DD = np.multiply.outer(d2, d2)
            S = Gs * DD
        else:
            Gs = np.tril(Gs) + np.tril(Gs, -1).T  # the pair sums fill the lower triangle only
            LGs = lam2.T @ Gs  # Lambda2' Gs
            S = LGs @ lam2
        S.flat[::q2 + 1] += 1.0
        L2 = _chol(S)
        ld += 2.0 * np.log(L2.diagonal()).sum()
        # S^-1 (lower triangle; L2's zeros above) is needed below anyway: the two triangular
        # solves for the right-hand sides become one symmetric product
        Sinv, info = dpotri(L2, lower=1)
        if info:
            raise np.linalg.LinAlgError("S^-1")
        rhs2 = d2[:, None] * rhs2 if scalar else lam2.T @ rhs2
        u2 = dsymm(1.0, Sinv, rhs2, lower=1)  # S^-1 rhs2
        M = M - rhs2.T @ u2
        b2 = d2[:, None] * u2 if scalar else lam2 @ u2  # Lambda2 u2
        BPb2 = _level_last(BP @ b2, l1, k1) if dense else cp.mul(b2, BPv)
        b1 = _mm(blkT, c1 - BPb2)
    else:
        b1 = _mm(blkT, c1)
    M = 0.5 * (M + M.T)
    Lm = _chol(M)
    RXt = Lm[:p, :p]
    Rinv, info = dtrtri(RXt, lower=1)  # p x p: LAPACK's own call, 10x lighter than numpy's inv
    if info:
        raise np.linalg.LinAlgError("RX")
    cinv = Rinv.T @ Rinv
    beta_q = cinv @ M[:p, p]
    pwrss = float(Lm[p, p] ** 2)
    ldL2 = ld
    ldRX2 = 2.0 * np.log(RXt.diagonal()).sum() + pr._ldR2
    if reml:
        ld += ldRX2
    # FF = Z'V^-1 [X y] = Z'[X y] - H Lambda A^-1 Lambda' Z'[X y]
    FF1 = F1xy - _mm(H1, b1)
    # diagonal blocks of N = A^-1 Lambda' H, summed over levels (only the sums enter):
    # sum_l A11^-1 T1'H11 = sum_l BY_l H_l (+ the Schur part below, added to H_l there)
    Nmid = H1
    N1_schur = 0.0
    if q2:
        if dense:
            FF1 = FF1 - _level_last(Pm @ b2, l1, k1)
            FF2 = pr.z2txy - Pm.T @ _level_first(b1) - pr.z2tz2 @ b2
        else:
            FF1 = FF1 - cp.mul(b2)
            FF2 = pr.z2txy - cp.tmul(b1) - pr.z2tz2 @ b2
        # S^-1 filled in above the diagonal, where a product needs it (not on the pair sums
        # with scalar terms, which read the lower triangle: 0.15 ms at q2 = 200)
        Sfull = Sinv + np.tril(Sinv, -1).T if dense or not scalar or not cp.pairs else None
        # A^-1 = [[A11^-1 + Y S^-1 Y', -Y S^-1], [., S^-1]] with Y = A11^-1 A12; N11's
        # blocks are A11^-1 T1'H11 + Y S^-1 E' with E = (H11 T1 A11^-1 T1' - I) P Lambda2,
        # N22 = S^-1 Lambda2 Gs; Y and E are block-row scalings of P Lambda2
        BE = _mm(HT, BY) - eye
        if dense or (not cp.pairs and not scalar):  # P Lambda2 dense (q1 x q2 is bounded)
            # q2 wide: level-first views, as for BP above
            Pd = cp.dense if dense else cp.P
            PL = (Pd * d2[None, :] if scalar else np.asarray(Pd @ lam2)).reshape(l1, k1, q2)
            YS = _bmm_lf(BY.transpose(2, 0, 1), PL).reshape(q1, q2) @ Sfull
            N1_schur = np.tensordot(YS.reshape(l1, k1, q2), _bmm_lf(BE.transpose(2, 0, 1), PL),
                                    axes=([0, 2], [0, 2]))
        elif cp.pairs:
            # sum over levels of Y_l S^-1 E_l' = sum_l BY_l R_l BE_l' with R_l the pair sums
            # (they read the lower triangle of the symmetric Lambda2 S^-1 Lambda2')
            LSL = Sinv * DD if scalar else lam2 @ Sfull @ lam2.T
            R = cp.pair_weights(LSL)
            Nmid = Nmid + _mm(R, BE.transpose(1, 0, 2))  # sum_l BY_l (H_l + R_l BE_l')
        else:
            PL = cp.vec_t * d2[cp.col]  # (k1, E)
            Yv = np.einsum("abe,be->ae", BY[:, :, cp.lev], PL)
            Ev = np.einsum("abe,be->ae", BE[:, :, cp.lev], PL)
            YS = np.asarray(cp.matrix(Yv) @ Sfull).reshape(l1, k1, q2)
            g = YS[cp.lev, :, cp.col]  # (E, k1): (Y S^-1)[(l, a), col of entry]
            N1_schur = g.T @ Ev.T
        if scalar:
            # diag(S^-1 Lambda2 Gs) from the lower triangles (both symmetric; Sinv is 0 above)
            Q = Sinv * Gs
            N2 = Q @ d2 + Q.T @ d2 - Q.diagonal() * d2
    N1 = np.einsum("akl,kbl->ab", BY, Nmid) + N1_schur
    v = np.empty(p + 1)
    v[:p], v[p] = -beta_q, 1.0
    g_ld = np.zeros(pr.n_theta)
    g_pw = np.zeros(pr.n_theta)
    jac_parts = []
    # per factor: F'F over its levels ((k (p+1)) square; FF1 is level-last, so its rows are
    # contiguous) and the sum over levels of N
    F1t = FF1.reshape(k1 * (p + 1), l1)
    parts = [(f1, F1t @ F1t.T, N1)]
    pos = 0
    for f in pr.rest:
        lf, kf = f.n_levels, f.k
        sl = slice(pos, pos + lf * kf)
        if scalar:
            Nsum = N2[sl].sum().reshape(1, 1)
        else:  # sum of the diagonal k x k blocks of S^-1 Lambda2' Gs
            Nsum = np.einsum("lai,ilb->ab", Sfull[sl].reshape(lf, kf, q2), LGs[:, sl].reshape(q2, lf, kf))
        Fm = FF2[sl].reshape(lf, kf * (p + 1))
        parts.append((f, Fm.T @ Fm, Nsum))
        pos = sl.stop
    for j, (f, FtF, Nsum) in enumerate(parts):
        r, c, ti = pr._f1_index if j == 0 else cp.t_index[j - 1]
        # G[a, i, b, j] = sum over levels of F[l, a, i] (T'F)[l, b, j] (T the factor's T):
        # F'F, then T; the log|RX| term contracts its X columns with cinv, pwrss's with v,
        # and the Jacobian of cinv reads it too
        kf = f.k
        if j == 0:
            Tf = T1
        else:
            Tf = np.zeros((kf, kf))
            Tf[r, c] = theta[ti]
        G = np.einsum("aicj,cb->aibj", FtF.reshape(kf, p + 1, kf, p + 1), Tf)
        Gx = G[:, :p, :, :p]
        K_pw = np.einsum("aibj,i,j->ab", G, v, v)
        # K_ld = Nsum' ([r, c] = sum_l N[l, c, r])
        K_ld = Nsum.T - np.einsum("aibj,ij->ab", Gx, cinv) if reml else Nsum.T
        g_ld[ti] += 2.0 * K_ld[r, c]
        g_pw[ti] -= 2.0 * K_pw[r, c]
        jac_parts.append((r, c, ti, Gx))
    bv1 = (v @ b1).T  # modes of the fit: Lambda A^-1 Lambda'Z'(y - X beta), (l1, k1)
    bv2 = b2 @ v if q2 else np.zeros(0)
    D = Derivatives(float(ld), pwrss, g_ld, g_pw, cinv, beta_q, float(ldL2), float(ldRX2), bv1,
                    bv2, jac_parts, pr.n_theta)
    if jacobian:
        D.dcinv_q  # noqa: B018 - computed now, as asked
    return D


@dataclass
class ThetaDerivatives:
    """What lmerTest's Satterthwaite df need at the optimum, from the analytic gradients:
    ``ld`` = log|A| (+ log|RX|^2 for REML) and ``pwrss`` with their gradients and Hessians
    (forward differences of the gradients), and d (X'V^-1 X)^-1 / d theta (original X)."""

    ld: float
    pwrss: float
    g_ld: np.ndarray
    g_pw: np.ndarray
    H_ld: np.ndarray
    H_pw: np.ndarray
    dcinv: np.ndarray  # (n_theta, p, p)


def theta_derivatives(pr: LmeProblem, theta: np.ndarray, reml: bool) -> ThetaDerivatives | None:
    """Gradients, Hessians and the Jacobian of vcov at ``theta``; None where the analytic
    gradient does not cover the structure (callers then use finite differences)."""
    if not _grad_pays(pr):
        return None
    theta = np.asarray(theta, dtype=float)
    try:
        last = getattr(pr, "_last_derivatives", None)  # the fit's last gradient, at its optimum
        if last is not None and last[1] == reml and last[2] is not None and np.array_equal(last[0], theta):
            D0 = last[2]
        else:
            D0 = derivatives(pr, theta, reml)
        m = theta.size
        H_ld = np.empty((m, m))
        H_pw = np.empty((m, m))
        for i in range(m):
            # forward differences of the analytic gradient: m gradients instead of the 2m
            # of central ones. The gradient carries no truncation error of its own, so the
            # step can be small: at h = 1e-6 the Hessian is within ~1e-6 (relative) of the
            # central one (lme_many_effects, lme_cell_slopes_ca_amplitude; roundoff only
            # showed below 1e-7), far inside the 1e-2 on the df the R comparisons allow
            h = 1e-6 * max(abs(theta[i]), 0.05)
            e = np.zeros(m)
            e[i] = h
            Dp = derivatives(pr, theta + e, reml)
            H_ld[i] = (Dp.g_ld - D0.g_ld) / h
            H_pw[i] = (Dp.g_pw - D0.g_pw) / h
    except np.linalg.LinAlgError:
        return None
    Ri = pr._Rinv
    dcinv = np.einsum("ij,tjk,lk->til", Ri, D0.dcinv_q, Ri)
    return ThetaDerivatives(D0.ld, D0.pwrss, D0.g_ld, D0.g_pw, 0.5 * (H_ld + H_ld.T),
                            0.5 * (H_pw + H_pw.T), dcinv)
