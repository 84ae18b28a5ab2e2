"""The sparse linear algebra (issue 13): every path gives the same numbers as the dense one.

The dense block-diagonal + Schur path of ``LmeProblem`` is the one checked against lme4 in
test_lme.py / test_lme_broad.py; the sparse paths (CHOLMOD on the whole system, and the
Schur complement of the largest factor from pair sums) must reproduce it to rounding.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import mmteach.lme_deviance as ld
from mmteach.sparse_chol import DENSE_BELOW, PatternCholesky, RowPattern


def _spd(q: int, seed: int = 0) -> sp.csc_matrix:
    rng = np.random.default_rng(seed)
    A = sp.random(q, q, density=4 / q, random_state=seed, format="csc")
    return (A @ A.T + sp.identity(q) * (1 + rng.uniform())).tocsc()


def test_pattern_cholesky_sparse_equals_dense():
    A = _spd(DENSE_BELOW + 50)
    s, d = PatternCholesky(A), PatternCholesky(A, force_dense=True)
    for scale in (1.0, 3.0):
        s.factor(A * scale)
        d.factor(A * scale)
        assert s.logdet() == pytest.approx(d.logdet(), rel=1e-12)
        assert s.logdet() == pytest.approx(np.linalg.slogdet((A * scale).toarray())[1], rel=1e-10)
        b = np.arange(A.shape[0], dtype=float)
        np.testing.assert_allclose(s.solve(b), d.solve(b), rtol=1e-9, atol=1e-12)


def test_row_pattern_matches_explicit_products():
    rng = np.random.default_rng(3)
    n, q = 50, 12
    cols = np.column_stack([rng.integers(0, 6, n), 6 + rng.integers(0, 6, n)])
    a, w = rng.normal(size=(n, 2)), rng.uniform(0.5, 2, n)
    A = sp.csr_matrix((a.ravel(), cols.ravel(), np.arange(0, 2 * n + 1, 2)), shape=(n, q))
    rp = RowPattern(cols, q)
    np.testing.assert_allclose(rp.hessian(a, w).toarray(),
                               (A.T @ sp.diags(w) @ A).toarray() + np.eye(q), atol=1e-12)
    v = rng.normal(size=n)
    np.testing.assert_allclose(rp.at(a, v), A.T @ v, atol=1e-12)
    u = rng.normal(size=q)
    np.testing.assert_allclose(rp.times(a, u), A @ u, atol=1e-12)


def _crossed(slope: bool):
    rng = np.random.default_rng(11)
    n, na, nb = 900, 90, 30
    a = np.concatenate([np.arange(na), rng.integers(0, na, n - na)])
    b = np.concatenate([np.arange(nb), rng.integers(0, nb, n - nb)])
    x = rng.normal(size=n)
    y = 1 + 0.4 * x + rng.normal(0, 0.8, na)[a] + rng.normal(0, 0.5, nb)[b] + rng.normal(size=n)
    X = np.column_stack([np.ones(n), x])
    Za = np.column_stack([np.ones(n), x]) if slope else np.ones((n, 1))
    return y, X, [ld.Block(a, na, Za, "a"), ld.Block(b, nb, np.ones((n, 1)), "b")]


@pytest.mark.parametrize("slope", [False, True], ids=["intercepts", "slope"])
def test_lme_paths_agree(monkeypatch, slope):
    y, X, blocks = _crossed(slope)
    monkeypatch.setattr(ld, "SCHUR_SPARSE", 10**12)
    monkeypatch.setattr(ld, "SPARSE_Q2", 10**9)
    monkeypatch.setattr(ld, "SPARSE_Q", 10**9)
    dense = ld.LmeProblem(y, X, blocks)
    assert not dense.use_sparse and not dense.schur_sparse
    monkeypatch.setattr(ld, "SPARSE_Q2", 0)
    chol = ld.LmeProblem(y, X, blocks)
    assert chol.use_sparse
    monkeypatch.setattr(ld, "SCHUR_SPARSE", 0)
    monkeypatch.setattr(ld, "SCHUR_MAX_K", 2)
    schur = ld.LmeProblem(y, X, blocks)
    assert schur.schur_sparse and not schur.use_sparse
    problems = [dense, chol, schur]
    theta = np.array([0.7, 0.2, 0.4, 0.5]) if slope else np.array([0.7, 0.5])
    ref = dense.solve(theta, True)
    for pr in problems[1:]:
        for reml in (True, False):
            assert pr.objective(theta, reml) == pytest.approx(dense.objective(theta, reml), rel=1e-11)
        sol = pr.solve(theta, True)
        np.testing.assert_allclose(sol.beta, ref.beta, rtol=1e-9)
        np.testing.assert_allclose(sol.xtvx_inv, ref.xtvx_inv, rtol=1e-8)
        for b1, b2 in zip(sol.extras["b"], ref.extras["b"]):
            np.testing.assert_allclose(b1, b2, rtol=1e-7, atol=1e-10)
        p1, p2 = pr.parts(theta), dense.parts(theta)
        for v1, v2 in zip(p1, p2):
            np.testing.assert_allclose(v1, v2, rtol=1e-8)
    fits = [pr.fit(reml=True) for pr in problems]
    for f in fits[1:]:
        assert f.loglik == pytest.approx(fits[0].loglik, abs=1e-7)
        np.testing.assert_allclose(f.theta, fits[0].theta, rtol=1e-4, atol=1e-6)


def test_without_cholmod_same_numbers(monkeypatch):
    """Where scikit-sparse is not installed the dense fallback gives the same fits."""
    import mmteach.sparse_chol as sc

    y, X, blocks = _crossed(slope=True)
    monkeypatch.setattr(sc, "DENSE_BELOW", 0)
    monkeypatch.setattr(ld, "SPARSE_Q2", 0)
    with_chol = ld.LmeProblem(y, X, blocks)
    with_chol._sparse_setup()  # otherwise done on the first sparse solve
    has_cholmod = sc.analyze is not None
    monkeypatch.setattr(sc, "analyze", None)
    without = ld.LmeProblem(y, X, blocks)
    without._sparse_setup()
    assert without._rows.chol.sparse is False
    theta = np.array([0.7, 0.2, 0.4, 0.5])
    assert with_chol.use_sparse and with_chol._rows.chol.sparse is has_cholmod
    assert without.objective(theta, True) == pytest.approx(with_chol.objective(theta, True), rel=1e-11)
