"""mmteach.optim: finite-difference derivatives and the Newton steps every fit uses."""

from __future__ import annotations

import numpy as np
import pytest

from mmteach.optim import (
    fd_derivatives,
    fd_derivatives_bounded,
    newton_minimize,
    newton_step,
    projected_newton,
    richardson_derivatives,
)


def _f(z):
    """A smooth non-quadratic function of (..., 2) points with known derivatives."""
    return np.exp(0.3 * z[..., 0]) * z[..., 1] ** 2 + np.sin(z[..., 0] * z[..., 1])


def _grad_hess(x):
    a, b = x
    e = np.exp(0.3 * a)
    c, s = np.cos(a * b), np.sin(a * b)
    g = [0.3 * e * b * b + b * c, 2 * e * b + a * c]
    H = [[0.09 * e * b * b - b * b * s, 0.6 * e * b + c - a * b * s],
         [0.6 * e * b + c - a * b * s, 2 * e - a * a * s]]
    return np.array(g), np.array(H)


@pytest.mark.parametrize("exact_cross", [True, False])
def test_fd_derivatives_match_analytic_and_stacked_equals_looped(exact_cross):
    x = np.array([[0.4, -1.2], [1.0, 0.5]])
    fx, g, H = fd_derivatives(_f, x, None, 1e-4, exact_cross=exact_cross)
    fx2, g2, H2 = fd_derivatives(_f, x, _f(x), np.full(x.shape, 1e-4), exact_cross=exact_cross,
                                 stacked=True)
    np.testing.assert_array_equal(g, g2)
    np.testing.assert_array_equal(H, H2)
    np.testing.assert_allclose(fx, _f(x))
    for b in range(2):
        ga, Ha = _grad_hess(x[b])
        np.testing.assert_allclose(g[b], ga, atol=1e-7)
        np.testing.assert_allclose(H[b], Ha, atol=1e-5 if exact_cross else 1e-3)


def test_newton_step_is_downhill_and_escapes_a_saddle():
    H = np.array([[[4.0, 0.0], [0.0, -2.0]]])
    # at a saddle with zero gradient the escape still moves along the negative direction
    step, posdef = newton_step(np.zeros((1, 2)), H)
    assert not posdef[0]
    assert step[0, 0] == 0.0 and abs(step[0, 1]) == pytest.approx(0.1)
    # escape = 0 is the saddle-free step -|H|^-1 g, always downhill
    g = np.array([[1.0, 1.0]])
    step0, _ = newton_step(g, H, escape=0.0)
    np.testing.assert_allclose(step0[0], [-0.25, -0.5])
    assert float(g[0] @ step0[0]) < 0
    # a positive definite Hessian gives the plain Newton step
    Hp = np.array([[[2.0, 1.0], [1.0, 3.0]]])
    step1, posdef1 = newton_step(g, Hp)
    np.testing.assert_allclose(step1[0], -np.linalg.solve(Hp[0], g[0]))
    assert posdef1[0]
    # non-finite input: no step at all rather than NaNs
    bad, _ = newton_step(np.array([[np.nan, 1.0]]), Hp)
    np.testing.assert_array_equal(bad, 0.0)


def test_newton_minimize_batch_leaves_the_saddle_at_zero():
    """f(t, b) = t^4 - t^2 + (b - 1)^2 has a saddle at t = 0 (zero gradient): both starts,
    one exactly on it, end at a minimum t = +-1/sqrt(2)."""

    def fun(z, keep=False, rows=None):
        return z[..., 0] ** 4 - z[..., 0] ** 2 + (z[..., 1] - 1.0) ** 2

    x, f, conv, _ = newton_minimize(fun, np.array([[0.0, 0.0], [2.0, 3.0]]))
    assert conv.all()
    np.testing.assert_allclose(np.abs(x[:, 0]), 1 / np.sqrt(2), atol=1e-6)
    np.testing.assert_allclose(x[:, 1], 1.0, atol=1e-6)
    np.testing.assert_allclose(f, -0.25, atol=1e-10)


def test_newton_minimize_max_step_keeps_off_a_clipped_plateau():
    """f = log(1 + e^x) - x/5 (minimum at x = log 1/4), clipped to x >= -5 as the Bayesian
    mode search clips theta. From x = 4 the curvature is slight and a full Newton step
    leaps to x ~ -40, onto the plateau, where f (1.007) is lower than at the start and flat:
    the search stops there. Steps of at most 1 walk down to the minimum (f = 0.5)."""

    def fun(z, keep=False, rows=None):
        x = np.maximum(z[..., 0], -5.0)
        return np.logaddexp(0.0, x) - 0.2 * x

    x_free, f_free, _, _ = newton_minimize(fun, np.array([[4.0]]), stacked=True)
    assert x_free[0, 0] < -5 and f_free[0] > 1.0  # the failure max_step prevents
    x, f, conv, _ = newton_minimize(fun, np.array([[4.0]]), stacked=True, max_step=1.0)
    assert conv[0]
    assert x[0, 0] == pytest.approx(np.log(0.25), abs=1e-6)
    assert f[0] == pytest.approx(np.log(1.25) - 0.2 * np.log(0.25), abs=1e-10)


def test_projected_newton_bound_and_interior():
    lower = np.array([0.0, -np.inf])

    def f(z):
        return float((z[0] + 0.5) ** 2 + (z[1] - 2.0) ** 2 + 0.1 * z[0] * z[1])

    x, fx, ok = projected_newton(f, np.array([1.0, 0.0]), f(np.array([1.0, 0.0])), lower)
    assert ok and x[0] == 0.0  # the optimum sits on the bound
    assert x[1] == pytest.approx(2.0, abs=1e-6)
    g, _ = fd_derivatives_bounded(f, x, fx, lower)
    assert g[0] > 0  # the gradient pushes into the bound: a boundary optimum
    assert g[1] == pytest.approx(0.0, abs=1e-6)


def test_richardson_derivatives_of_a_vector_function():
    x = np.array([0.4, -1.2])
    f0, g, H = richardson_derivatives(lambda z: np.array([_f(z), 2 * _f(z)]), x, np.array([1e-2, 1e-2]))
    ga, Ha = _grad_hess(x)
    np.testing.assert_allclose([gi[0] for gi in g], ga, atol=1e-8)
    np.testing.assert_allclose([[H[i][j][1] for j in range(2)] for i in range(2)], 2 * Ha, atol=1e-7)
