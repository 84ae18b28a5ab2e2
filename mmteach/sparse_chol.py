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

DENSE_BELOW = 400  # dense LAPACK is faster than CHOLMOD's overhead for smaller matrices


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
        self._symbolic = analyze(sp.csc_matrix(template)) if self.sparse else None
        self._dense: np.ndarray | None = None

    def factor(self, A: sp.spmatrix) -> None:
        """Numeric factorisation of ``A`` (same pattern as the template)."""
        try:
            if self.sparse:
                self._symbolic.cholesky_inplace(sp.csc_matrix(A))
            else:
                M = A.toarray() if sp.issparse(A) else np.asarray(A)
                self._dense = sla.cholesky(M, lower=True, check_finite=True)
        except (CholmodNotPositiveDefiniteError, np.linalg.LinAlgError, ValueError) as e:
            raise NotPositiveDefinite(str(e)) from None

    def logdet(self) -> float:
        if self.sparse:
            return float(self._symbolic.logdet())
        return 2.0 * float(np.log(np.diag(self._dense)).sum())

    def solve(self, b: np.ndarray) -> np.ndarray:
        """``A^-1 b`` for a vector or a matrix of columns."""
        if self.sparse:
            return np.asarray(self._symbolic(b))
        return sla.cho_solve((self._dense, True), b, check_finite=False)
