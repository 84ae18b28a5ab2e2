"""Newton's method with a negative-curvature escape, and finite-difference derivatives, for every fit.

Every mixed model here is fitted by minimising a smooth deviance over a few parameters
(``theta``, and ``beta`` for GLMMs). Where an analytic gradient exists
(:func:`mmteach.lme_gradient.derivatives`, :func:`mmteach.glmm_laplace.laplace_gradient`)
the fits use scipy's L-BFGS-B on it; everywhere else the same two tools serve:

* finite-difference gradients and Hessians: :func:`fd_derivatives` (central, batched; lme4's
  ``deriv12``), :func:`fd_derivatives_bounded` (one problem, one-sided near a bound) and
  :func:`richardson_derivatives` (array-valued functions, Richardson-extrapolated, as
  ``numDeriv`` in lmerTest);
* Newton steps that always go downhill and leave saddles: :func:`newton_step` (batched: the
  Hessian's eigenvalues replaced by their floored absolute values, with a least step along
  directions of negative curvature) driving :func:`newton_minimize` (a batch of unconstrained
  problems) and :func:`projected_newton` (one problem with lower bounds, as lme4's theta);
* step halving: :func:`backtrack`, the one line search of every Newton loop (the batched
  GLMM and simulation fits, the guarded GLMM Newton, the Bayesian mode, PIRLS start values).

Why the escape: the deviance of a mixed model is even in each column of ``theta``'s
Cholesky factor, so at ``theta = 0`` its gradient vanishes by symmetry; when the curvature
there is negative, ``theta = 0`` is a saddle or a maximum that a plain Newton method never
leaves.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

ESCAPE = 0.1  # least step along a direction of negative curvature (see newton_step)


def newton_step(g: np.ndarray, H: np.ndarray, escape: float = ESCAPE) -> tuple[np.ndarray, np.ndarray]:
    """Newton step ``-H^-1 g`` made safe for a batch, and whether each H is positive (semi)definite.

    ``g`` is (B, P), ``H`` (B, P, P). The eigenvalues of H are replaced by their (floored)
    absolute values, so every step goes downhill. Along a direction of negative curvature
    the step is at least ``escape`` long (``escape = 0`` gives the plain saddle-free Newton
    step). A non-finite ``g`` or ``H`` gives a zero step.

    Examples
    --------
    >>> step, posdef = newton_step(np.array([[1.0, 0.0]]), np.array([[[2.0, 0.0], [0.0, -1.0]]]))
    >>> step.round(3).tolist(), posdef.tolist()
    ([[-0.5, 0.1]], [False])
    """
    good = np.all(np.isfinite(H), axis=(1, 2)) & np.all(np.isfinite(g), axis=1)
    H = np.where(good[:, None, None], H, np.eye(H.shape[-1]))
    g = np.where(good[:, None], g, 0.0)
    ev, V = np.linalg.eigh(0.5 * (H + np.swapaxes(H, 1, 2)))
    scale = np.max(np.abs(ev), axis=1, keepdims=True)
    floor = np.maximum(1e-8 * scale, 1e-10)
    gv = np.einsum("bij,bi->bj", V, g)  # gradient in the eigenbasis
    coef = -gv / np.maximum(np.abs(ev), floor)
    neg = ev < -1e-8 * scale
    if escape > 0:
        esc = np.where(gv > 0, -1.0, 1.0) * np.maximum(np.abs(coef), escape)
        coef = np.where(neg, esc, coef)
    return np.einsum("bij,bj->bi", V, coef), ~neg.any(axis=1)


def backtrack(try_steps: Callable[[np.ndarray, np.ndarray], np.ndarray], t: np.ndarray | float = 1.0,
              *, halvings: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Step halving for a batch of line searches (one per problem), the one every fit uses.

    ``try_steps(rows, t)`` tries the problems ``rows`` at the fractions ``t`` of their steps,
    keeps the points it accepts (in the caller's state) and returns which rows it accepted;
    the others are tried again at half the fraction, at most ``halvings`` times. Returns
    ``(failed, t)``: the problems never accepted (no decrease possible at working precision)
    and each problem's last fraction.

    Examples
    --------
    >>> f = lambda z: (z - 1.0) ** 2
    >>> x, step = np.array([0.0, 0.0]), np.array([4.0, 1.0])  # the first overshoots
    >>> def try_steps(rows, t):
    ...     ok = f(x[rows] + t * step[rows]) < f(x[rows])
    ...     x[rows[ok]] += t[ok] * step[rows[ok]]
    ...     return ok
    >>> failed, t = backtrack(try_steps, np.ones(2))
    >>> x.tolist(), t.tolist(), failed.tolist()
    ([1.0, 1.0], [0.25, 1.0], [False, False])
    """
    t = np.array(np.broadcast_to(t, np.shape(t) or (1,)), dtype=float)
    pending = np.arange(t.size)
    for _ in range(halvings):
        if pending.size == 0:
            break
        ok = np.asarray(try_steps(pending, t[pending]), dtype=bool)
        pending = pending[~ok]
        t[pending] /= 2
    failed = np.zeros(t.size, dtype=bool)
    failed[pending] = True
    return failed, t


def fd_derivatives(fun: Callable[[np.ndarray], np.ndarray], x: np.ndarray, fx: np.ndarray | None = None,
                   delta: float | np.ndarray = 1e-4, *, exact_cross: bool = True, stacked: bool = False
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Central finite-difference gradient and Hessian of a batch of functions, as lme4's ``deriv12``.

    ``x`` has shape (B, P) and ``fun`` maps (..., B, P) points to (..., B) values; ``delta`` is
    one step or a step per coordinate (B, P). Returns ``(f(x) (B,), g (B, P), H (B, P, P))``;
    ``fx`` saves the evaluation at ``x`` when known. With ``exact_cross=False`` the
    off-diagonal terms use one extra evaluation each instead of four (error O(delta) instead
    of O(delta^2)): good enough to steer Newton steps, not for standard errors. With
    ``stacked=True`` every point of the stencil goes to ``fun`` in one call (shape
    (points, B, P)), which is faster when ``fun`` is a cheap vectorised formula.

    Examples
    --------
    >>> f = lambda z: (z[..., 0] - 1) ** 2 + z[..., 0] * z[..., 1] + 3 * z[..., 1] ** 2
    >>> fx, g, H = fd_derivatives(f, np.array([[0.0, 0.0]]), stacked=True)
    >>> g.round(6).tolist(), H.round(4).tolist()
    ([[-2.0, 0.0]], [[[2.0, 1.0], [1.0, 6.0]]])
    """
    B, P = x.shape
    h = np.broadcast_to(np.asarray(delta, dtype=float), (B, P))

    def unit(j: int) -> np.ndarray:
        e = np.zeros((B, P))
        e[:, j] = h[:, j]
        return e

    # the stencil: 0, +-e_j, then for each pair i < j the corners (+e_i +e_j, +e_i -e_j, ...)
    pairs = [(i, j) for j in range(P) for i in range(j)]
    corners = ((1, 1), (1, -1), (-1, 1), (-1, -1)) if exact_cross else ((1, 1),)
    pts = [x] if fx is None else []
    for j in range(P):
        pts += [x + unit(j), x - unit(j)]
    pts += [x + si * unit(i) + sj * unit(j) for i, j in pairs for si, sj in corners]
    vals = fun(np.stack(pts)) if stacked else [fun(p) for p in pts]
    if fx is None:
        fx, vals = vals[0], vals[1:]
    g = np.empty((B, P))
    H = np.empty((B, P, P))
    fp, fm = vals[0:2 * P:2], vals[1:2 * P:2]
    for j in range(P):
        H[:, j, j] = (fp[j] - 2 * fx + fm[j]) / h[:, j] ** 2
        g[:, j] = (fp[j] - fm[j]) / (2 * h[:, j])
    k = 2 * P
    for i, j in pairs:
        if exact_cross:
            pp, pm, mp, mm = vals[k: k + 4]
            H[:, i, j] = H[:, j, i] = (pp - pm - mp + mm) / (4 * h[:, i] * h[:, j])
        else:
            H[:, i, j] = H[:, j, i] = (vals[k] - fp[i] - fp[j] + fx) / (h[:, i] * h[:, j])
        k += len(corners)
    return np.asarray(fx), g, H


def newton_minimize(fun, x0: np.ndarray, *, maxit: int = 60, tol: float = 1e-10,
                    delta: float = 1e-4, stacked: bool = False, max_step: float = np.inf
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Damped Newton with finite-difference derivatives, on a batch of problems.

    ``fun(x, keep=False, rows=None)`` returns the values of the (B, P) points ``x`` (with
    ``rows``: of those batch members only); ``keep=True`` lets it keep warm starts of an inner
    optimisation at the accepted points. Returns ``(x, f, converged, iterations)``. Each step
    is :func:`newton_step`, halved until the value decreases; problems that have converged
    cost nothing more. With ``stacked=True`` the finite-difference stencil goes to ``fun`` in
    one call of shape (points, B, P) (see :func:`fd_derivatives`): for a ``fun`` that
    evaluates many points in one batch, such as the Bayesian GLMM's Laplace fits.
    ``max_step`` caps each step's largest coordinate: where the curvature is slight far from
    the optimum a Newton step can otherwise leap onto a plateau (e.g. of a clipped function).

    Examples
    --------
    >>> f = lambda z, keep=False, rows=None: np.sum((z - 2.0) ** 2, axis=-1) + z[..., 0] ** 4
    >>> x, fx, conv, it = newton_minimize(f, np.zeros((1, 2)))
    >>> bool(conv[0]), round(float(x[0, 1]), 6)
    (True, 2.0)
    """
    x = np.array(x0, dtype=float)
    f = fun(x, keep=True)
    B, P = x.shape
    conv = np.zeros(B, dtype=bool)
    it = 0
    for _ in range(maxit):
        it += 1
        act = ~conv
        if not act.any():
            break
        xa, fa = x[act], f[act]
        idx = np.flatnonzero(act)

        def evaluate(z: np.ndarray, rows: np.ndarray = idx) -> np.ndarray:
            # only the problems still running: converged ones cost nothing more
            return fun(z, rows=rows)

        _, g, H = fd_derivatives(evaluate, xa, fa, delta, exact_cross=False, stacked=stacked)
        H = np.where(np.isfinite(H), H, 0.0)
        # downhill even where H is indefinite, and off a saddle at theta = 0 (an even
        # function of theta has zero gradient there: a bootstrap refit started from a
        # singular fit would never leave it)
        step, posdef = newton_step(g, H)
        decrement = -np.einsum("bi,bi->b", g, step)
        longest = np.max(np.abs(step), axis=1)
        step = step * np.minimum(1.0, max_step / np.maximum(longest, 1e-300))[:, None]
        fnew = fa.copy()
        xnew = xa.copy()

        def try_steps(rows: np.ndarray, t: np.ndarray, xa: np.ndarray = xa, fa: np.ndarray = fa,
                      step: np.ndarray = step, idx: np.ndarray = idx, xnew: np.ndarray = xnew,
                      fnew: np.ndarray = fnew) -> np.ndarray:
            cand = xa[rows] + t[:, None] * step[rows]
            fc = evaluate(cand, idx[rows])
            good = fc <= fa[rows] + 1e-12 * np.abs(fa[rows])
            xnew[rows[good]], fnew[rows[good]] = cand[good], fc[good]
            return good

        failed, t = backtrack(try_steps, np.ones(len(xa)))
        done = ((decrement < tol) | (np.abs(fa - fnew) < tol * (1 + np.abs(fa))) & (
            np.max(np.abs(t[:, None] * step), axis=1) < 1e-7)) & posdef
        done |= failed  # no decrease possible: at the optimum to working precision
        x[act], f[act] = xnew, fnew
        fun(x[act], keep=True, rows=idx)  # warm-start the inner optimisation at the new point
        conv[idx[done]] = True
    return x, f, conv, it


def fd_derivatives_bounded(f: Callable[[np.ndarray], float], x: np.ndarray, fx: float, lower: np.ndarray
                           ) -> tuple[np.ndarray, np.ndarray]:
    """Gradient and Hessian of one function by central differences; forward where a bound is too close.

    Steps are ``1e-4 max(|x_i|, 0.01)``; cross terms use the two diagonal corners (2
    evaluations per pair, O(h^2) like the 4-point rule).

    Examples
    --------
    >>> g, H = fd_derivatives_bounded(lambda z: float(z @ z + z[0] * z[1]), np.array([0.0, 1.0]), 1.0,
    ...                               np.array([0.0, -np.inf]))
    >>> g.round(6).tolist(), H.round(4).tolist()
    ([1.0, 2.0], [[2.0, 1.0], [1.0, 2.0]])
    """
    m = x.size
    h = np.array([1e-4 * max(abs(v), 1e-2) for v in x])
    # near a bound shift the stencil inside the feasible region (f is smooth there)
    fwd = x - 2 * h < lower
    g = np.zeros(m)
    H = np.zeros((m, m))
    fp = np.zeros(m)
    fm = np.zeros(m)
    for i in range(m):
        e = np.zeros(m)
        e[i] = h[i]
        if fwd[i]:
            f1, f2 = f(x + e), f(x + 2 * e)
            g[i] = (-3 * fx + 4 * f1 - f2) / (2 * h[i])
            H[i, i] = (fx - 2 * f1 + f2) / h[i] ** 2
            fp[i] = f1
        else:
            fp[i], fm[i] = f(x + e), f(x - e)
            g[i] = (fp[i] - fm[i]) / (2 * h[i])
            H[i, i] = (fp[i] - 2 * fx + fm[i]) / h[i] ** 2
    for i in range(m):
        for j in range(i + 1, m):
            ei = np.zeros(m)
            ej = np.zeros(m)
            ei[i] = h[i]
            ej[j] = h[j]
            if fwd[i] or fwd[j]:
                v = (f(x + ei + ej) - fp[i] - fp[j] + fx) / (h[i] * h[j])
            else:  # along the diagonals: 2 evaluations per pair, O(h^2) like the 4-point rule
                v = (f(x + ei + ej) + f(x - ei - ej) - fp[i] - fm[i] - fp[j] - fm[j] + 2 * fx) / (
                    2 * h[i] * h[j])
            H[i, j] = H[j, i] = v
    return g, H


def projected_newton(f: Callable[[np.ndarray], float], x: np.ndarray, fx: float, lower: np.ndarray,
                     max_iter: int = 200) -> tuple[np.ndarray, float, bool]:
    """Projected modified-Newton iterations for one problem with lower bounds; returns (x, f(x), converged).

    A coordinate sitting on its bound joins the free set when the gradient or the curvature
    says moving inside lowers f (at a zero diagonal of T the gradient is exactly 0 by
    symmetry, so the curvature decides); negative curvature is followed explicitly so the
    iteration does not stall on a saddle.

    Examples
    --------
    >>> x, fx, ok = projected_newton(lambda z: float((z[0] + 1) ** 2 + (z[1] - 1) ** 2),
    ...                              np.array([1.0, 0.0]), 5.0, np.array([0.0, -np.inf]))
    >>> x.round(6).tolist(), ok
    ([0.0, 1.0], True)
    """
    x = np.maximum(np.asarray(x, dtype=float), lower)
    stalled = 0
    for _ in range(max_iter):
        g, H = fd_derivatives_bounded(f, x, fx, lower)
        at_bound = x <= lower + 1e-12
        dH = np.diag(H)
        keep = ~at_bound | (g < -1e-8 * max(1.0, abs(fx))) | (dH < 0)
        idx = np.flatnonzero(keep)
        if idx.size == 0:
            return x, fx, True
        gi = g[idx]
        Hi = H[np.ix_(idx, idx)]
        w, V = np.linalg.eigh(Hi)
        scale = max(1.0, float(np.max(np.abs(w))))
        neg = w < -1e-8 * scale
        wa = np.maximum(np.abs(w), 1e-10 * scale)  # descent direction even off convexity
        step = -(V @ ((V.T @ gi) / wa))
        if neg.any():
            v = V[:, int(np.argmin(w))]
            # go along the most negative curvature, into the feasible side and downhill
            sgn = -1.0 if float(v @ gi) > 0 else 1.0
            if np.any(at_bound[idx] & (sgn * v < 0)) and not np.any(at_bound[idx] & (sgn * v > 0)):
                sgn = -sgn
            step = step + sgn * v * 0.1 * max(1.0, float(np.linalg.norm(x[idx])))
        pred = -0.5 * float(gi @ step)
        if not neg.any() and pred < 1e-13 * max(1.0, abs(fx)) and np.max(np.abs(step)) < 1e-7:
            return x, fx, True
        t = 1.0
        moved = False
        # fraction to the boundary: one step may shrink a bounded coordinate (a diagonal
        # of T) tenfold but not jump onto its bound unless it is already small; a first
        # long Newton step would otherwise pin the wrong variance to zero, a local optimum
        floor = lower.copy()
        shrink = np.isfinite(lower) & (x - lower > 1e-3)
        floor[shrink] = lower[shrink] + 0.1 * (x[shrink] - lower[shrink])
        for _ls in range(40):
            xn = x.copy()
            xn[idx] = x[idx] + t * step
            xn = np.maximum(xn, floor)
            fn = f(xn)
            if fn < fx:
                # steps that gain less than 1e-10 of the criterion twice in a row creep
                # along a flat ridge (a near-zero variance): that is the noise floor
                stalled = stalled + 1 if fx - fn < 1e-10 * max(1.0, abs(fx)) else 0
                x, fx = xn, fn
                moved = True
                break
            t *= 0.5
        if not moved or stalled >= 2:
            # no decrease possible along the Newton direction: we are at the noise floor
            return x, fx, bool(np.max(np.abs(gi)) < 1e-3)
    return x, fx, False


def richardson_derivatives(fun: Callable[[np.ndarray], object], x: np.ndarray, h: np.ndarray):
    """First and second derivatives of a (possibly array valued) function of one point x.

    Central differences at steps h and h/2 combined by one Richardson extrapolation, so the
    truncation error is O(h^4); numDeriv (used by lmerTest) does the same with more steps.
    Returns (f(x), [df/dx_i], [[d2f/dx_i dx_j]]).

    Examples
    --------
    >>> f0, g, H = richardson_derivatives(lambda z: np.exp(z[0]) * z[1], np.array([0.0, 2.0]),
    ...                                   np.array([0.01, 0.01]))
    >>> round(float(g[0]), 8), round(float(H[0][1]), 8)
    (2.0, 1.0)
    """
    m = x.size
    f0 = fun(x)
    cache: dict[tuple, object] = {}

    def at(delta: tuple) -> object:
        if delta not in cache:
            cache[delta] = fun(x + np.array(delta))
        return cache[delta]

    grads = []
    hess = [[None] * m for _ in range(m)]
    for i in range(m):
        est1 = []
        est2 = []
        for s in (1.0, 0.5):
            hi = h[i] * s
            e = [0.0] * m
            e[i] = hi
            fp = at(tuple(e))
            e[i] = -hi
            fm = at(tuple(e))
            est1.append((np.asarray(fp) - np.asarray(fm)) / (2 * hi))
            est2.append((np.asarray(fp) - 2 * np.asarray(f0) + np.asarray(fm)) / hi**2)
        grads.append((4 * est1[1] - est1[0]) / 3)
        hess[i][i] = (4 * est2[1] - est2[0]) / 3
    for i in range(m):
        for j in range(i + 1, m):
            est = []
            for s in (1.0, 0.5):
                hi, hj = h[i] * s, h[j] * s
                vals = []
                for si, sj in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
                    e = [0.0] * m
                    e[i] = si * hi
                    e[j] = sj * hj
                    vals.append(np.asarray(at(tuple(e))))
                est.append((vals[0] - vals[1] - vals[2] + vals[3]) / (4 * hi * hj))
            hess[i][j] = hess[j][i] = (4 * est[1] - est[0]) / 3
    return f0, grads, hess
