"""Analytic derivatives of the profiled (RE)ML criterion (mmteach.lme_gradient.derivatives)
against finite differences of the criterion itself, and the Satterthwaite information they
give against the Richardson-extrapolated path (which the R-agreement tests check against
lmerTest)."""

from __future__ import annotations

import numpy as np
import pytest

from mmteach import dfmethods
from mmteach.lme_deviance import Block, LmeProblem
from mmteach.lme_gradient import _grad_supported, derivatives


def _problem(kind: str, seed: int = 4) -> LmeProblem:
    rng = np.random.default_rng(seed)
    n = 400
    x = rng.normal(size=n)
    X = np.column_stack([np.ones(n), x, rng.integers(0, 2, n)])
    g = np.concatenate([np.arange(60), rng.integers(0, 60, n - 60)])
    h = rng.integers(0, 12, n)
    k = rng.integers(0, 5, n)
    y = X @ [1.0, 0.5, -0.3] + rng.normal(size=60)[g] * (1 + 0.4 * x) + rng.normal(size=12)[h] \
        + rng.normal(size=n)
    one = np.ones((n, 1))
    slope = np.column_stack([np.ones(n), x])
    blocks = {
        "intercept": [Block(g, 60, one, "g")],
        "slope": [Block(g, 60, slope, "g")],
        "crossed": [Block(g, 60, one, "g"), Block(h, 12, one, "h"), Block(k, 5, one, "k")],
        "slope_crossed": [Block(g, 60, slope, "g"), Block(h, 12, one, "h")],
        "uncorrelated": [Block(g, 60, one, "g"), Block(g, 60, x[:, None], "g"), Block(h, 12, one, "h")],
        # slopes outside the big factor: Lambda2 block diagonal ((treatment | midx) + (treatment | cidx))
        "slope_slope": [Block(g, 60, slope, "g"), Block(h, 12, slope, "h")],
        "slope_mixed": [Block(g, 60, one, "g"), Block(h, 12, slope, "h"), Block(k, 5, one, "k")],
    }[kind]
    return LmeProblem(y, X, blocks)


KINDS = ["intercept", "slope", "crossed", "slope_crossed", "uncorrelated", "slope_slope", "slope_mixed"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("reml", [True, False])
def test_gradient_and_jacobian_match_finite_differences(kind: str, reml: bool) -> None:
    pr = _problem(kind)
    assert _grad_supported(pr)
    rng = np.random.default_rng(1)
    theta = pr.start_theta() * 0.8 + rng.uniform(-0.3, 0.3, pr.n_theta)
    D = derivatives(pr, theta, reml, jacobian=True)
    n_eff = pr.n - pr.p if reml else pr.n
    assert D.objective(n_eff) == pytest.approx(pr.objective(theta, reml), rel=1e-12)
    g = D.gradient(n_eff)

    def cinv_q(t: np.ndarray) -> np.ndarray:
        M, _ = pr._m_logdet(t)
        R = np.linalg.cholesky(M)[: pr.p, : pr.p]
        Ri = np.linalg.inv(R)
        return Ri.T @ Ri

    for i in range(theta.size):
        e = np.zeros_like(theta)
        e[i] = 1e-5
        fd = (pr.objective(theta + e, reml) - pr.objective(theta - e, reml)) / 2e-5
        assert g[i] == pytest.approx(fd, rel=1e-6, abs=1e-6)
        jfd = (cinv_q(theta + e) - cinv_q(theta - e)) / 2e-5
        np.testing.assert_allclose(D.dcinv_q[i], jfd, rtol=1e-5, atol=1e-8 * np.abs(jfd).max())


@pytest.mark.parametrize("kind", ["slope", "crossed", "slope_crossed", "slope_slope"])
def test_satterthwaite_analytic_equals_richardson(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fit = _problem(kind).fit(reml=True)
    L = np.eye(fit.problem.p)
    info = dfmethods.satterthwaite_info(fit)
    df = dfmethods.satterthwaite_df(fit, L, info)
    monkeypatch.setattr(dfmethods, "theta_derivatives", lambda *a, **k: None)
    ref = dfmethods.satterthwaite_info(fit)
    np.testing.assert_allclose(info.hessian, ref.hessian, rtol=1e-5, atol=1e-6 * np.abs(ref.hessian).max())
    for J, Jr in zip(info.jacobian, ref.jacobian):
        # the Richardson steps (5e-3 relative) are the less accurate side here
        np.testing.assert_allclose(J, Jr, rtol=1e-3, atol=1e-6 * np.abs(Jr).max())
    np.testing.assert_allclose(df, dfmethods.satterthwaite_df(fit, L, ref), rtol=1e-5)


@pytest.mark.parametrize("kind", ["slope_crossed", "crossed", "slope_mixed"])
def test_gradient_without_the_pair_matrix(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Beyond MAX_PAIRS the gradient takes (Y S^-1) from a sparse-dense product: same numbers."""
    theta = None
    out = []
    monkeypatch.setattr("mmteach.lme_gradient.GRAD_DENSE_P", 0)  # the sparse coupling paths
    for limit in (None, 0):
        if limit is not None:
            monkeypatch.setattr("mmteach.lme_gradient.MAX_PAIRS", limit)
        pr = _problem(kind)
        theta = pr.start_theta() * 0.6 if theta is None else theta
        out.append(derivatives(pr, theta, True).gradient(pr.n - pr.p))
    assert pr._coupling.K is None
    np.testing.assert_allclose(out[1], out[0], rtol=1e-10)


@pytest.mark.parametrize("kind", KINDS)
def test_quasi_newton_reaches_the_finite_difference_newton_optimum(kind: str) -> None:
    from mmteach.optim import projected_newton

    pr = _problem(kind)
    fit = pr.fit(reml=True)
    f = lambda t: pr.objective(t, True)  # noqa: E731
    x0 = pr.start_theta()
    x, fx, _ok = projected_newton(f, x0, f(x0), pr.lower)
    assert fit.converged
    assert fit.solution.objective <= fx + 1e-7
    np.testing.assert_allclose(fit.beta, pr.solve(x, True).beta, rtol=1e-6,
                               atol=1e-6 * np.sqrt(np.diag(fit.vcov)).min())


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("reml", [True, False])
def test_solution_from_the_gradient_solve_equals_solve(kind: str, reml: bool) -> None:
    pr = _problem(kind)
    theta = pr.start_theta() * 0.9 + 0.05
    a, b = pr.solve(theta, reml), pr._solve_by_derivatives(theta, reml)
    for name in ("objective", "sigma", "ldL2", "ldRX2", "pwrss"):
        assert getattr(b, name) == pytest.approx(getattr(a, name), rel=1e-10)
    np.testing.assert_allclose(b.beta, a.beta, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(b.xtvx_inv, a.xtvx_inv, rtol=1e-9, atol=1e-14)
    for ba, bb in zip(a.extras["b"], b.extras["b"]):
        np.testing.assert_allclose(bb, ba, rtol=1e-8, atol=1e-12)


def test_fit_survives_pickling_with_the_gradient_caches() -> None:
    """Fits travel between processes (the app's pool): the cached coupling and pair
    matrices must work after unpickling."""
    import pickle

    fit = _problem("slope_crossed").fit(reml=True)
    info = dfmethods.satterthwaite_info(fit)
    again = pickle.loads(pickle.dumps(fit))
    info2 = dfmethods.satterthwaite_info(again)
    np.testing.assert_allclose(info2.vcov_varpar, info.vcov_varpar, rtol=1e-10)
    assert again.problem.objective(fit.theta, True) == pytest.approx(fit.solution.objective, rel=1e-12)


@pytest.mark.parametrize("kind", ["slope_crossed", "slope_mixed"])
def test_pickled_problem_ships_its_data_and_rebuilds_the_rest(kind: str) -> None:
    """A fit's problem pickles as y, X and the blocks only (the cached results of the app
    hold hundreds); its first use after unpickling makes every set-up product again, equal to
    the original's, so criterion, Satterthwaite and Kenward-Roger are unchanged."""
    import pickle

    fit = _problem(kind).fit(reml=True)
    pr = fit.problem
    assert set(pr.__getstate__()) == {"_rebuild_from"}
    again = pickle.loads(pickle.dumps(fit))
    assert "_rebuild_from" in again.problem.__dict__  # not rebuilt yet
    assert again.problem.n_theta == pr.n_theta  # the first use rebuilds
    assert "_rebuild_from" not in again.problem.__dict__
    for name, value in vars(pr).items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(getattr(again.problem, name), value, err_msg=name)
    assert again.problem.objective(fit.theta, True) == pr.objective(fit.theta, True)
    kr, kr2 = dfmethods.kenward_roger(fit), dfmethods.kenward_roger(again)
    np.testing.assert_allclose(kr2.phi_adj, kr.phi_adj, rtol=1e-12)
    eye = np.eye(pr.p)
    np.testing.assert_allclose(dfmethods.satterthwaite_df(again, eye), dfmethods.satterthwaite_df(fit, eye),
                               rtol=1e-10)
    with pytest.raises(AttributeError):
        _ = again.problem.no_such_attribute


def test_unpickled_problem_rebuilds_once_under_concurrent_first_use(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two sessions may use one cached fit at once: the rebuild happens once, and every
    thread sees a whole problem."""
    import pickle
    import threading

    fit = _problem("crossed").fit(reml=False)
    blob = pickle.dumps(fit)
    built = []
    init = LmeProblem.__init__

    def counting(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        built.append(1)
        init(self, *args, **kwargs)

    monkeypatch.setattr(LmeProblem, "__init__", counting)
    again = pickle.loads(blob)
    start = threading.Barrier(8)
    out: list[float] = []

    def use() -> None:
        start.wait()
        out.append(again.problem.objective(fit.theta, False))

    threads = [threading.Thread(target=use) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 1
    assert out == [fit.problem.objective(fit.theta, False)] * 8


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("reml", [True, False])
def test_dense_and_sparse_coupling_agree(kind: str, reml: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Small q1 q2 take P = Z1'Z2 dense, larger ones the pair sums: same criterion, gradient
    and Jacobian (the finite-difference test above runs the dense path on these sizes)."""
    pr = _problem(kind)
    theta = pr.start_theta() * 0.7 + 0.05
    monkeypatch.setattr("mmteach.lme_gradient.GRAD_DENSE_FILL", 0.0)  # dense however sparse P is
    a = derivatives(pr, theta, reml, jacobian=True)
    monkeypatch.setattr("mmteach.lme_gradient.GRAD_DENSE_P", 0)
    b = derivatives(pr, theta, reml, jacobian=True)
    n_eff = pr.n - pr.p if reml else pr.n
    assert b.objective(n_eff) == pytest.approx(a.objective(n_eff), rel=1e-12)
    np.testing.assert_allclose(b.gradient(n_eff), a.gradient(n_eff), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(b.dcinv_q, a.dcinv_q, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(b.b1, a.b1, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("formula", ["res ~ treatment + (treatment | midx) + (1 | cidx)",
                                     "res ~ treatment + (treatment | midx) + (treatment | cidx)"])
def test_cell_slope_fits_stay_on_the_gradient(formula: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The amplitude page's ML fits: L-BFGS-B stops at the cell variance 0 of the first
    (its derivative vanishes there); the restarts from inside run on the gradient too (the
    finite-difference Newton cost 300+ criteria, 0.4 s), and still reach the optimum the
    finite-difference Newton finds."""
    from mmteach.datasets import load_dataset
    from mmteach.lme import fit_lme
    from mmteach.lme_deviance import LmeProblem
    from mmteach.optim import projected_newton

    d = load_dataset("ca_amplitude")
    calls = []
    objective = LmeProblem.objective
    monkeypatch.setattr(LmeProblem, "objective", lambda self, t, reml: calls.append(1) or objective(self, t, reml))
    fit = fit_lme(d, formula, factors=["treatment"], reml=False, allow_unidentifiable=True)
    assert not calls
    lf = fit.extras["lmefit"]
    pr = lf.problem
    f = lambda t: objective(pr, t, False)  # noqa: E731
    x0 = np.where(pr.lower == 0.0, 0.5, 0.0)
    _x, fx, _ok = projected_newton(f, x0, f(x0), pr.lower)
    assert lf.converged
    assert lf.solution.objective <= fx + 1e-6


def test_quasi_newton_leaves_a_saddle_at_the_bound() -> None:
    """(treatment | midx) by ML on the amplitude data: L-BFGS-B overshoots the slope's
    diagonal to its bound 0, where its derivative vanishes (the criterion is even in it),
    from every start; the probe inside finds lme4's optimum.
    R: lmer(res ~ treatment + (treatment | midx), ca_amplitude, REML = FALSE)
    -> theta (0.41624786, 0.06763165, 0.07002006), deviance 4714.376."""
    from mmteach.datasets import load_dataset
    from mmteach.lme import fit_lme

    d = load_dataset("ca_amplitude")
    lf = fit_lme(d, "res ~ treatment + (treatment | midx)", factors=["treatment"], reml=False).extras["lmefit"]
    assert lf.solution.objective == pytest.approx(4714.376, abs=1e-3)
    np.testing.assert_allclose(lf.theta, [0.41624786, 0.06763165, 0.07002006], atol=1e-4)
