"""Cholesky factors of sparse symmetric positive definite matrices with a fixed pattern.

Mixed-model fits factor ``Lambda'Z'WZ Lambda + I`` hundreds of times, always with the
same sparsity pattern (only the values change with ``theta`` and the weights). CHOLMOD
(through scikit-sparse) finds a fill-reducing ordering and the symbolic factor once
(:meth:`PatternCholesky.factor` then only refactors numerically), as lme4 does through the
Matrix package. Where scikit-sparse is not installed, or the matrix is small enough that a
dense LAPACK factor is faster, the same interface uses a dense Cholesky.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

try:  # optional: a C library (SuiteSparse) behind it, not always installable
    from sksparse.cholmod import CholmodNotPositiveDefiniteError, analyze
except ImportError:  # pragma: no cover - depends on the machine
    analyze = None
    CholmodNotPositiveDefiniteError = np.linalg.LinAlgError

DENSE_BELOW = 50  # dense LAPACK beats CHOLMOD only on small matrices (glmm_crossed_7584, q = 340: 2x)


class NotPositiveDefinite(np.linalg.LinAlgError):
    """The matrix to factor is not (numerically) positive definite."""


class PatternCholesky:
    """Repeated Cholesky factors of matrices sharing the sparsity pattern of ``template``.

    Examples
    --------
    >>> A = sp.csc_matrix(np.array([[4.0, 1.0], [1.0, 3.0]]))
    >>> ch = PatternCholesky(A)
    >>> ch.factor(A)
    >>> round(ch.logdet(), 6) == round(float(np.log(11.0)), 6)
    True
    >>> ch.solve(np.array([1.0, 2.0])).round(6).tolist()
    [0.090909, 0.636364]
    """

    def __init__(self, template: sp.spmatrix, *, force_dense: bool = False) -> None:
        self.n = template.shape[0]
        self.sparse = analyze is not None and not force_dense and self.n >= DENSE_BELOW
        # simplicial with AMD: the factors here are thin (one level per row per factor), and
        # the supernodal variant's dense-block overhead made it 2-4x slower on them
        self._template = sp.csc_matrix(template)
        self._symbolic = self._analyze()
        self._dense: np.ndarray | None = None
        self._values: np.ndarray | None = None  # the values of the matrix factored last

    def _analyze(self):  # noqa: ANN202 - a CHOLMOD Factor, or None on the dense path
        return (analyze(self._template, mode="simplicial", ordering_method="amd")
                if self.sparse else None)

    def __getstate__(self) -> dict:
        # A CHOLMOD factor cannot be pickled, and fitted results travel between processes
        # (the app's process pool) and into caches: ship the pattern, redo the (cheap)
        # symbolic analysis on arrival; a numeric factor must be recomputed by factor().
        return {**self.__dict__, "_symbolic": None, "_dense": None, "_values": None}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._symbolic = self._analyze()

    def factor(self, A: sp.spmatrix) -> None:
        """Numeric factorisation of ``A`` (same pattern as the template); nothing to do when
        ``A`` is the matrix factored last (a GLMM's gradient refactors PIRLS's last matrix)."""
        vals = A.data if sp.issparse(A) else np.asarray(A)
        if self._values is not None and np.array_equal(vals, self._values):
            return
        self._values = None
        try:
            if self.sparse:
                self._symbolic.cholesky_inplace(A if sp.isspmatrix_csc(A) else sp.csc_matrix(A))
            else:
                M = A.toarray() if sp.issparse(A) else np.asarray(A)
                self._dense = sla.cholesky(M, lower=True, check_finite=True)
        except (CholmodNotPositiveDefiniteError, np.linalg.LinAlgError, ValueError) as e:
            raise NotPositiveDefinite(str(e)) from None
        self._values = vals.copy()

    def logdet(self) -> float:
        if self.sparse:
            return float(self._symbolic.logdet())
        return 2.0 * float(np.log(np.diag(self._dense)).sum())

    def solve(self, b: np.ndarray) -> np.ndarray:
        """``A^-1 b`` for a vector or a matrix of columns."""
        if self.sparse:
            return np.asarray(self._symbolic(b))
        return sla.cho_solve((self._dense, True), b, check_finite=False)


class RowPattern:
    """``A'WA + I`` and ``A'v`` for a sparse ``A`` (n x q) with ``r`` non-zeros per row.

    ``cols`` (n, r) gives the columns of each row's non-zeros (random-effects design:
    one level of each term per row); the values ``a`` (n, r) may change between calls, the
    pattern does not. ``A'WA + I`` is then a sum of the row products ``w_i a_is a_it`` into
    fixed slots of a CSC matrix (one ``bincount``), factored by a :class:`PatternCholesky`
    that keeps its ordering and symbolic analysis.

    Examples
    --------
    >>> rp = RowPattern(np.array([[0, 2], [1, 2]]), 3)
    >>> rp.hessian(np.ones((2, 2))).toarray().tolist()
    [[2.0, 0.0, 1.0], [0.0, 2.0, 1.0], [1.0, 1.0, 3.0]]
    """

    def __init__(self, cols: np.ndarray, q: int) -> None:
        self.cols = np.asarray(cols, dtype=np.int64)
        n, r = self.cols.shape
        self.q = q
        # A itself (n x q, CSR) with the values overwritten per call: its products in C beat
        # numpy gathers and bincounts 1.5-3x (glmm_crossed_7584, several columns at once)
        self._A = sp.csr_matrix((np.zeros(n * r), self.cols.ravel(), np.arange(0, n * r + 1, r)),
                                shape=(n, q))
        keys = (np.tile(self.cols, (1, r)) * q + np.repeat(self.cols, r, axis=1)).ravel()
        diag = np.arange(q, dtype=np.int64) * (q + 1)
        uniq, inv = np.unique(np.concatenate([keys, diag]), return_inverse=True)
        # slots of the row products, pair (s, t) by pair, (r * r * n,): the products are then
        # contiguous vectors (numpy's loops over a length-r inner axis cost 2-3x more)
        self.pos = np.ascontiguousarray(inv[: keys.size].reshape(n, r * r).T).ravel()
        self.diag_pos = inv[keys.size:]
        self._prod = np.empty((r * r, n))
        self.nnz = uniq.size
        self.indices = (uniq % q).astype(np.int32)
        self.indptr = np.searchsorted(uniq // q, np.arange(q + 1)).astype(np.int32)
        self._H = self.matrix(np.ones(self.nnz))
        self.chol = PatternCholesky(self._H)

    def matrix(self, data: np.ndarray) -> sp.csc_matrix:
        return sp.csc_matrix((data, self.indices, self.indptr), shape=(self.q, self.q))

    def hessian(self, a: np.ndarray, w: np.ndarray | None = None) -> sp.csc_matrix:
        """``A'WA + I`` (``W = I`` when ``w`` is None) in the fixed pattern.

        The returned matrix is reused (its values overwritten) by the next call: building a
        new scipy matrix each time cost more than the sums themselves on small designs.
        """
        at = np.ascontiguousarray(a.T)
        awt = at if w is None else at * w
        r = at.shape[0]
        for s in range(r):
            for t in range(r):
                np.multiply(awt[s], at[t], out=self._prod[s * r + t])
        data = np.bincount(self.pos, weights=self._prod.ravel(), minlength=self.nnz)
        data[self.diag_pos] += 1.0
        self._H.data[:] = data
        return self._H

    def _load(self, a: np.ndarray) -> sp.csr_matrix:
        """``A`` with values ``a`` (reused: overwritten by the next call)."""
        self._A.data[:] = a.ravel()
        return self._A

    def at(self, a: np.ndarray, v: np.ndarray) -> np.ndarray:
        """``A'v`` for ``v`` (n,) -> (q,), or (n, c) -> (q, c)."""
        return self._load(a).T @ v

    def times(self, a: np.ndarray, u: np.ndarray) -> np.ndarray:
        """``A u`` for ``u`` (q,) -> (n,), or (q, c) -> (n, c)."""
        return self._load(a) @ u
