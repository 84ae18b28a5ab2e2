"""Design planner: power and type I error of clustered designs by vectorised simulation, and their cost.

Two designs, both with every mouse contributing ``cells_per_mouse`` cells:

* ``"between"`` (as Example 1): each mouse belongs to one condition; condition ``c > 0`` is
  shifted by ``effect`` (in SDs of one cell, ``sqrt(total_var)``).  Analyses: the pooled
  ``lm(y ~ condition)`` F test (cells as independent), the ANOVA (t-test for two conditions)
  on mouse means, and ``lmerTest::lmer(y ~ condition + (1 | mouse))`` with Satterthwaite's F.
* ``"within"`` (as Examples 2 and 3): every mouse is seen under control and treatment, half
  its cells each; the treatment effect of a mouse is ``effect + s_mouse`` with
  ``s ~ N(0, slope_sd^2)`` (the treatment-by-mouse variance).  Analyses: the pooled two-sample
  t-test, the paired t-test on mouse means, the random-intercept LME and the random-slope LME
  ``lmer(y ~ treatment + (1 + treatment | mouse))``.

Every replicate is drawn from the exact distribution of its per-mouse sums (no cell-level
arrays), and all replicates of a design point are fitted at once by :mod:`mmteach.sim_reml`.
:func:`power_grid` runs many design points through joblib, locally or on a Dask cluster.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from mmteach.errors import DataError
from mmteach.icc import design_effect
from mmteach.results import clean_json
from mmteach.sim_reml import fit_intercept_batch, fit_slope_batch, means_anova, pooled_f_test
from mmteach.simulate import binomial_ci

__all__ = [
    "Design",
    "PowerResult",
    "CostPlan",
    "METHODS",
    "simulate_power",
    "analytic_power",
    "power_curve",
    "power_grid",
    "cost_plan",
    "fit_ri_within",
    "fit_slope_within",
    "misspec_reading",
]

Progress = Callable[[int, int], Any] | None

# Keys of the analyses and how they are shown.
METHODS = {
    "pooled_lm": "Pooled LM (cells as independent)",
    "mouse_means": "t-test / ANOVA on mouse means",
    "lme": "LME random intercept (Satterthwaite)",
    "lme_slope": "LME random intercept + treatment slope",
}
_BETWEEN = ("pooled_lm", "mouse_means", "lme")
_WITHIN = ("pooled_lm", "mouse_means", "lme", "lme_slope")
_CHUNK = 1000  # replicates per batch: bounds memory (replicates x mice arrays)


@dataclass(frozen=True)
class Design:
    """One experiment design.

    ``mice`` is mice per condition for ``"between"`` and mice in total for ``"within"``;
    ``icc`` is the share of a cell's variance ``total_var`` that lies between mice; ``effect``
    is the true difference (treatment minus control, or condition c minus condition 1) in SDs
    of one cell; ``slope_sd`` (within only) is the SD of that difference between mice, in the
    same units.
    """

    kind: str = "between"
    conditions: int = 2
    mice: int = 6
    cells_per_mouse: int = 20
    icc: float = 0.3
    effect: float = 0.5
    slope_sd: float = 0.0
    total_var: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in ("between", "within"):
            raise DataError(f"The design must be 'between' (each mouse in one condition) or "
                            f"'within' (every mouse sees every condition), not {self.kind!r}.")
        if self.kind == "within" and self.conditions != 2:
            raise DataError("The within-mouse design compares two conditions (control and "
                            "treatment); set conditions to 2.")
        if int(self.conditions) != self.conditions or self.conditions < 2:
            raise DataError("A design needs at least two conditions to compare.")
        need = 2 if self.kind == "between" else 3
        if int(self.mice) != self.mice or self.mice < need:
            raise DataError(f"Use at least {need} mice {'per condition' if need == 2 else ''}: "
                            "with fewer, the mouse-to-mouse variation cannot be estimated and "
                            "no analysis that respects the mice can test anything.")
        if int(self.cells_per_mouse) != self.cells_per_mouse or self.cells_per_mouse < 2:
            raise DataError("Use at least 2 cells per mouse (and an even number in the "
                            "within-mouse design, half under each condition).")
        if self.kind == "within" and self.cells_per_mouse < 4:
            raise DataError("The within-mouse design needs at least 4 cells per mouse: two "
                            "under each condition, so each mouse has its own noise estimate.")
        if not 0.0 <= self.icc < 1.0:
            raise DataError("The ICC must lie in [0, 1): it is the share of the variance that "
                            "lies between mice (1 would leave no cell-to-cell variation).")
        if self.slope_sd < 0 or self.total_var <= 0 or not math.isfinite(self.effect):
            raise DataError("The slope SD cannot be negative, the total variance must be "
                            "positive and the effect a finite number.")

    @classmethod
    def from_components(cls, var_mouse: float, var_cell: float, **fields: Any) -> Design:
        """A design from variance components instead of the ICC: ``total_var = var_mouse + var_cell``.

        ``effect`` (and ``slope_sd``) stay in SDs of one cell, ``sqrt(total_var)``.

        Examples
        --------
        >>> Design.from_components(0.5, 1.5, mice=4).icc
        0.25
        """
        if var_mouse < 0 or var_cell <= 0:
            raise DataError("The mouse variance cannot be negative and the cell (residual) variance "
                            "must be positive.")
        total = var_mouse + var_cell
        return cls(icc=var_mouse / total, total_var=total, **fields)

    @property
    def n_mice(self) -> int:
        """Mice in the whole experiment."""
        return int(self.mice) * (int(self.conditions) if self.kind == "between" else 1)

    @property
    def n_cells(self) -> int:
        """Cells in the whole experiment."""
        return self.n_mice * int(self.cells_per_mouse)

    @property
    def sd_mouse(self) -> float:
        return math.sqrt(self.icc * self.total_var)

    @property
    def sd_cell(self) -> float:
        return math.sqrt((1.0 - self.icc) * self.total_var)

    @property
    def design_effect(self) -> float:
        """1 + ICC (m - 1): how many cells of one mouse count as one independent cell."""
        return design_effect(self.icc, self.cells_per_mouse)

    @property
    def effective_n(self) -> float:
        """Cells in the experiment divided by the design effect."""
        return self.n_cells / self.design_effect

    def methods(self) -> tuple[str, ...]:
        return _BETWEEN if self.kind == "between" else _WITHIN

    def cost(self, cost_per_mouse: float, cost_per_cell: float) -> float:
        """Total cost: every mouse costs ``cost_per_mouse`` plus ``cost_per_cell`` per cell."""
        return self.n_mice * (cost_per_mouse + cost_per_cell * self.cells_per_mouse)


def analytic_power(design: Design, alpha: float = 0.05) -> float:
    """Exact power of the mouse-means t-test (two conditions) from the noncentral t.

    Between mice: ``t`` on ``2m - 2`` df with noncentrality ``d / sqrt(2 v / m)``,
    ``v = sigma_b^2 + sigma_e^2 / n`` the variance of one mouse mean.  Within mice: the paired
    t-test on ``m`` differences, ``v = slope_sd^2 + sigma_e^2 (1/n0 + 1/n1)`` on ``m - 1`` df.
    (R: ``power.t.test(n = m, delta = d, sd = sqrt(v), type = "two.sample"/"paired")``.)

    Examples
    --------
    >>> round(analytic_power(Design(mice=6, cells_per_mouse=10, icc=0.3, effect=1.0)), 4)
    0.7282
    """
    d = design
    if d.conditions != 2:
        raise DataError("The analytic power is for two conditions (a t-test); simulate for more.")
    if d.kind == "between":
        v = d.sd_mouse**2 + d.sd_cell**2 / d.cells_per_mouse
        df = 2 * d.mice - 2
        ncp = d.effect * math.sqrt(d.total_var) / math.sqrt(2.0 * v / d.mice)
    else:
        n0, n1 = _split(d.cells_per_mouse)
        v = (d.slope_sd**2) * d.total_var + d.sd_cell**2 * (1.0 / n0 + 1.0 / n1)
        df = d.mice - 1
        ncp = d.effect * math.sqrt(d.total_var) / math.sqrt(v / d.mice)
    tc = stats.t.ppf(1.0 - alpha / 2.0, df)
    return float(stats.nct.sf(tc, df, ncp) + stats.nct.cdf(-tc, df, ncp))


def _split(n: int) -> tuple[int, int]:
    """Cells under control and treatment (half each; the odd cell to treatment)."""
    return int(n) // 2, int(n) - int(n) // 2


@dataclass(frozen=True, eq=False)
class PowerResult:
    """Result of :func:`simulate_power`: p-values per method and replicate, and the design."""

    design: Design
    reps: int
    alpha: float
    seed: int
    p_values: dict[str, np.ndarray]
    singular: np.ndarray  # (R,) the LME (random slope if fitted, else intercept) is singular
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    ci_method: str = "Clopper-Pearson exact 95% interval"

    @property
    def rejection_rate(self) -> dict[str, float]:
        return {k: float((p < self.alpha).mean()) for k, p in self.p_values.items()}

    @property
    def singular_rate(self) -> float:
        return float(self.singular.mean())

    def tidy(self) -> pd.DataFrame:
        """One row per method: rejection rate (power, or type I error when effect = 0) and CI."""
        rows = []
        for key, p in self.p_values.items():
            k = int((p < self.alpha).sum())
            lo, hi = binomial_ci(k, self.reps)
            rows.append({"method": key, "label": METHODS[key], "rejections": k,
                         "rejection_rate": k / self.reps, "conf_low": float(lo),
                         "conf_high": float(hi)})
        return pd.DataFrame(rows)

    def glance(self) -> pd.DataFrame:
        """One row: the design, its design effect and effective n, singular-fit rate, reps."""
        d = self.design
        row = {**asdict(d), "n_mice": d.n_mice, "n_cells": d.n_cells,
               "design_effect": d.design_effect, "effective_n": d.effective_n,
               "singular_rate": self.singular_rate, "reps": self.reps, "alpha": self.alpha}
        return pd.DataFrame([row])

    @property
    def what(self) -> str:
        return "type I error" if self.design.effect == 0 else "power"

    def to_dict(self) -> dict[str, Any]:
        """JSON summary (``python -m mmteach simulate power --json``)."""
        t = self.tidy()
        d = self.design
        out = {
            "study": "power", "design": asdict(d), "reps": self.reps, "alpha": self.alpha,
            "seed": self.seed, "rate_is": self.what,
            "rejection_rate": dict(zip(t["method"], t["rejection_rate"])),
            "conf_low": dict(zip(t["method"], t["conf_low"])),
            "conf_high": dict(zip(t["method"], t["conf_high"])),
            "ci_method": self.ci_method, "methods": {k: METHODS[k] for k in t["method"]},
            "design_effect": d.design_effect, "effective_n": d.effective_n,
            "singular_rate": self.singular_rate,
        }
        if d.conditions == 2:
            out["analytic_mouse_means_power"] = analytic_power(d, self.alpha)
        return clean_json(out)

    def summary_text(self) -> str:
        """Readable summary for the CLI."""
        d = self.design
        per = "per condition" if d.kind == "between" else "in total"
        lines = [f"Design ({d.kind} mice): {d.conditions} conditions, {d.mice} mice {per}, "
                 f"{d.cells_per_mouse} cells per mouse, ICC {d.icc:g}, effect {d.effect:g} SD"
                 + (f", slope SD {d.slope_sd:g}" if d.kind == "within" else "")
                 + f"; {self.reps} replicates, seed {self.seed}, alpha {self.alpha:g}.", "",
                 f"{'method':<42}{self.what:>15}   95% CI"]
        for _, r in self.tidy().iterrows():
            lines.append(f"{r.label:<42}{r.rejection_rate:>15.3f}   [{r.conf_low:.3f}, {r.conf_high:.3f}]")
        lines += ["", f"Design effect 1 + ICC (m - 1) = {d.design_effect:.2f}; {d.n_cells} cells are "
                  f"worth about {d.effective_n:.1f} independent ones.",
                  f"LME fits on the boundary (singular): {self.singular_rate:.1%}."]
        if d.conditions == 2:
            lines.append(f"Analytic {self.what} of the mouse-means t-test: {analytic_power(d, self.alpha):.3f}.")
        return "\n".join(lines)

    def r_code(self) -> str:
        """An lme4 simulation loop in R for the same design (slow but independent)."""
        d = self.design
        if d.kind == "between":
            gen = (f"mouse <- factor(rep(1:{d.n_mice}, each = {d.cells_per_mouse}))\n"
                   f"cond <- factor(rep(rep(1:{d.conditions}, each = {d.mice}), each = {d.cells_per_mouse}))\n"
                   f"y <- {d.effect} * (cond != '1') + rnorm({d.n_mice}, 0, {d.sd_mouse:.6g})[mouse] + "
                   f"rnorm(length(mouse), 0, {d.sd_cell:.6g})\n"
                   "fit <- lmerTest::lmer(y ~ cond + (1 | mouse))\n"
                   "anova(fit)[['Pr(>F)']] < 0.05")
        else:
            n0, n1 = _split(d.cells_per_mouse)
            gen = (f"mouse <- factor(rep(1:{d.mice}, each = {d.cells_per_mouse}))\n"
                   f"x <- rep(c(rep(0, {n0}), rep(1, {n1})), {d.mice})\n"
                   f"s <- rnorm({d.mice}, 0, {d.slope_sd * math.sqrt(d.total_var):.6g})\n"
                   f"y <- ({d.effect * math.sqrt(d.total_var):.6g} + s[mouse]) * x + "
                   f"rnorm({d.mice}, 0, {d.sd_mouse:.6g})[mouse] + rnorm(length(x), 0, {d.sd_cell:.6g})\n"
                   "fit <- lmerTest::lmer(y ~ x + (1 + x | mouse))\n"
                   "summary(fit)$coefficients['x', 'Pr(>|t|)'] < 0.05")
        return (f"library(lmerTest)\nset.seed({self.seed})\nreject <- replicate({self.reps}, {{\n"
                + "\n".join("  " + ln for ln in gen.splitlines()) + "\n})\nmean(reject)")


def _between_batch(d: Design, m: int, rng: np.random.Generator) -> tuple[dict, np.ndarray, dict]:
    cond = np.repeat(np.arange(d.conditions), d.mice)
    n = float(d.cells_per_mouse)
    mu = np.where(cond > 0, d.effect * math.sqrt(d.total_var), 0.0)
    b = rng.standard_normal((m, cond.size)) * d.sd_mouse + mu
    S = n * b + math.sqrt(n) * d.sd_cell * rng.standard_normal((m, cond.size))
    Q = S * S / n + d.sd_cell**2 * rng.chisquare(n - 1.0, size=(m, cond.size))
    cells = np.full(cond.size, n)
    fit = fit_intercept_batch(cells, S, Q, cond)
    p = {"pooled_lm": pooled_f_test(cells, S, Q, cond)[2],
         "mouse_means": means_anova(cells, S, cond)[2],
         "lme": fit.p_value}
    return p, fit.singular, {"lme_ddf": fit.ddf}


def fit_ri_within(S0: np.ndarray, S1: np.ndarray, W: np.ndarray, n0: int, n1: int) -> tuple[np.ndarray, ...]:
    """REML random-intercept LME ``y ~ x + (1 | mouse)`` for a within-mouse 0/1 treatment.

    Every mouse has ``n0`` control and ``n1`` treated cells, so the design is the same for
    every mouse and REML has a closed form: with ``MSB`` the between-mouse and ``MSW`` the
    within-mouse mean square (after the treatment), ``sigma^2 = MSW`` when ``MSB > MSW`` and
    the pooled mean square on ``N - 2`` df on the boundary.  The treatment estimate is the
    within-mouse difference (it does not depend on the mouse variance in this design).
    ``S0, S1`` (R, K) are each mouse's sums under control and treatment, ``W`` (R, K) its
    within-condition sum of squares.  Returns estimate, SE, df (Satterthwaite's df equals the
    within-mouse df ``N - K - 1`` for an interior fit and ``N - 2`` on the boundary here) and
    the singular flag.
    """
    k = S0.shape[1]
    n = n0 + n1
    N = n * k
    d = S1 / n1 - S0 / n0  # per-mouse difference
    est = d.mean(-1)
    ssr = W.sum(-1) + (n0 * n1 / n) * ((d - est[:, None]) ** 2).sum(-1)
    # Mouse means adjusted for the treatment: equal design per mouse, so plain mouse sums.
    msum = (S0 + S1) / n
    ssb = n * ((msum - msum.mean(-1, keepdims=True)) ** 2).sum(-1)
    msw = ssr / (N - k - 1)
    msb = ssb / (k - 1)
    interior = msb > msw
    sig2 = np.where(interior, msw, (ssr + ssb) / (N - 2))
    se = np.sqrt(sig2 / (k * n0 * n1 / n))
    df = np.where(interior, N - k - 1.0, N - 2.0)
    return est, se, df, ~interior


def fit_slope_within(S0: np.ndarray, S1: np.ndarray, W: np.ndarray, n0: int,
                     n1: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """REML ``lmer(y ~ x + (1 + x | mouse))`` for a within-mouse 0/1 treatment, every mouse with
    ``n0`` control and ``n1`` treated cells: treatment estimate, SE, singular flag and lmerTest's
    Satterthwaite df.

    The two condition means of a mouse have covariance ``Psi = Sigma_m + sigma^2 diag(1/n0, 1/n1)``
    with ``Sigma_m`` unrestricted, and the within-condition sums of squares carry ``sigma^2``
    alone, so REML's optimum is ``Psi = S`` (the sample covariance of the mouse means) and
    ``sigma^2 = W / (N - 2K)`` whenever ``S - sigma^2 diag(1/n0, 1/n1)`` is positive definite:
    the estimate, SE and df (m - 1) are then the paired t-test's.  The other replicates (a boundary
    fit) go through the general batch fitter :func:`mmteach.sim_reml.fit_slope_batch`, and their
    Satterthwaite df are computed as lmerTest does.
    """
    r, k = S0.shape
    n = n0 + n1
    m0, m1 = S0 / n0, S1 / n1
    d = m1 - m0
    est = d.mean(-1)
    se = d.std(-1, ddof=1) / math.sqrt(k)
    c00 = m0.var(-1, ddof=1)
    c11 = m1.var(-1, ddof=1)
    c01 = ((m0 - m0.mean(-1, keepdims=True)) * (m1 - m1.mean(-1, keepdims=True))).sum(-1) / (k - 1)
    sig2 = W.sum(-1) / (n * k - 2 * k)
    a, b = c00 - sig2 / n0, c11 - sig2 / n1
    # interior with a margin, so a fit that would sit within lme4's singular tolerance of the
    # boundary is fitted by the general method and flagged the same way
    interior = (a > 1e-6 * sig2) & (a * b - c01 * c01 > 1e-6 * sig2 * sig2)
    sing = np.zeros(r, bool)
    df = np.full(r, k - 1.0)
    todo = np.flatnonzero(~interior)
    if todo.size:
        a_mat = np.array([[n, n1], [n1, n1]], float)
        A = np.broadcast_to(a_mat, (k, 2, 2))
        c = np.stack([S0[todo] + S1[todo], S1[todo]], -1)
        q = W[todo] + S0[todo] ** 2 / n0 + S1[todo] ** 2 / n1
        fit = fit_slope_batch(A, c, q, k * n)
        est[todo], se[todo], sing[todo] = fit.beta[:, 1], fit.se[:, 1], fit.singular
        df[todo] = _slope_satterthwaite(fit.theta, fit.sigma, a_mat, c, q, k * n)
    return est, se, sing, df


def _slope_reml(par: np.ndarray, a_mat: np.ndarray, csum: np.ndarray, ccsum: np.ndarray,
                ssum: np.ndarray, k: int, n_obs: int) -> tuple[np.ndarray, np.ndarray]:
    """Unprofiled REML deviance in lmerTest's ``(theta, sigma)`` and Var of the slope, every mouse
    with the same design ``A``: only the sums of ``c_i``, ``c_i c_i'`` and ``s_i`` enter."""
    l1, l2, l3, sig = (par[..., i] for i in range(4))
    lam = np.zeros(par.shape[:-1] + (2, 2))
    lam[..., 0, 0], lam[..., 1, 0], lam[..., 1, 1] = l1, l2, l3
    lt = np.swapaxes(lam, -1, -2)
    M = np.eye(2) + lt @ a_mat @ lam
    Minv = np.linalg.inv(M)
    G = a_mat @ lam @ Minv @ lt  # A Lambda M^-1 Lambda'
    P = k * (a_mat - G @ a_mat)
    qv = np.einsum("...ij,...j->...i", np.eye(2) - G, csum)
    H = lam @ Minv @ lt
    yy = ssum - np.einsum("...ij,...ij->...", H, ccsum)
    Pinv = np.linalg.inv(P)
    r2 = yy - np.einsum("...i,...ij,...j->...", qv, Pinv, qv)
    dev = (k * np.log(np.linalg.det(M)) + np.log(np.linalg.det(P)) + r2 / sig**2
           + (n_obs - 2) * np.log(2 * np.pi * sig**2))
    return dev, sig**2 * Pinv[..., 1, 1]


def _slope_satterthwaite(theta: np.ndarray, sigma: np.ndarray, a_mat: np.ndarray, c: np.ndarray,
                         q: np.ndarray, n_obs: int) -> np.ndarray:
    """lmerTest's Satterthwaite df of the slope: ``2 V^2 / (g' A g)`` with ``A = 2 H^-1`` from the
    Hessian of the REML deviance in ``(theta, sigma)`` and ``g`` the gradient of ``V = Var(slope)``
    (central differences, as numDeriv; ``H`` pseudo-inverted on the boundary as lmerTest does)."""
    k = c.shape[1]
    csum, ccsum, ssum = c.sum(1), np.einsum("rki,rkj->rij", c, c), q.sum(1)
    x = np.concatenate([theta, sigma[:, None]], -1)  # (R, 4)
    h = 1e-4 * np.maximum(np.abs(x), 1e-2)

    def f(pts):  # pts (..., R, 4)
        return _slope_reml(pts, a_mat, csum, ccsum, ssum, k, n_obs)

    f0, v0 = f(x)
    grad_v = np.empty_like(x)
    H = np.empty(x.shape + (4,))
    eye = np.eye(4)
    for i in range(4):
        ei = eye[i] * h[:, i, None]
        fp, vp = f(x + ei)
        fm, vm = f(x - ei)
        grad_v[:, i] = (vp - vm) / (2 * h[:, i])
        H[:, i, i] = (fp - 2 * f0 + fm) / h[:, i] ** 2
        for j in range(i):
            ej = eye[j] * h[:, j, None]
            pp, pm = f(x + ei + ej)[0], f(x + ei - ej)[0]
            mp, mm = f(x - ei + ej)[0], f(x - ei - ej)[0]
            H[:, i, j] = H[:, j, i] = (pp - pm - mp + mm) / (4 * h[:, i] * h[:, j])
    avar = 2.0 * np.linalg.pinv(H)
    with np.errstate(divide="ignore", invalid="ignore"):
        return 2.0 * v0**2 / np.einsum("ri,rij,rj->r", grad_v, avar, grad_v)


def _within_batch(d: Design, m: int, rng: np.random.Generator) -> tuple[dict, np.ndarray, dict]:
    k = d.mice
    n0, n1 = _split(d.cells_per_mouse)
    sd_tot = math.sqrt(d.total_var)
    b = rng.standard_normal((m, k)) * d.sd_mouse
    s = rng.standard_normal((m, k)) * d.slope_sd * sd_tot
    se_ = d.sd_cell
    S0 = n0 * b + math.sqrt(n0) * se_ * rng.standard_normal((m, k))
    S1 = n1 * (b + d.effect * sd_tot + s) + math.sqrt(n1) * se_ * rng.standard_normal((m, k))
    W0 = se_**2 * rng.chisquare(n0 - 1.0, size=(m, k))
    W1 = se_**2 * rng.chisquare(n1 - 1.0, size=(m, k))
    W = W0 + W1
    p: dict[str, np.ndarray] = {}
    # pooled two-sample t-test on all cells
    N0, N1 = n0 * k, n1 * k
    T0, T1 = S0.sum(-1), S1.sum(-1)
    q0 = (W0 + S0**2 / n0).sum(-1)
    q1 = (W1 + S1**2 / n1).sum(-1)
    ssw = q0 - T0**2 / N0 + q1 - T1**2 / N1
    diff = T1 / N1 - T0 / N0
    t = diff / np.sqrt(ssw / (N0 + N1 - 2) * (1.0 / N0 + 1.0 / N1))
    p["pooled_lm"] = 2.0 * stats.t.sf(np.abs(t), N0 + N1 - 2)
    # paired t-test on the mouse differences
    dm = S1 / n1 - S0 / n0
    t = dm.mean(-1) / (dm.std(-1, ddof=1) / math.sqrt(k))
    p["mouse_means"] = 2.0 * stats.t.sf(np.abs(t), k - 1)
    est, se, df, sing_ri = fit_ri_within(S0, S1, W, n0, n1)
    p["lme"] = 2.0 * stats.t.sf(np.abs(est / se), df)
    b1, se1, sing, df1 = fit_slope_within(S0, S1, W, n0, n1)
    p["lme_slope"] = 2.0 * stats.t.sf(np.abs(b1 / se1), df1)
    extras = {"ri_se": se, "ri_estimate": est, "slope_se": se1, "ri_singular": sing_ri}
    return p, sing, extras


def simulate_power(design: Design | None = None, *, reps: int = 500, alpha: float = 0.05,
                   seed: int = 1, progress: Progress = None, **kwargs: Any) -> PowerResult:
    """Rejection rate of every analysis for one design (power; type I error when effect = 0).

    Give a :class:`Design` or its fields as keywords (``mice=8, cells_per_mouse=10, ...``).

    Examples
    --------
    >>> res = simulate_power(mice=8, cells_per_mouse=10, icc=0.3, effect=0.0, reps=200)
    >>> res.rejection_rate["pooled_lm"] > res.rejection_rate["lme"]
    True
    """
    d = replace(design, **kwargs) if design is not None else Design(**kwargs)
    if int(reps) != reps or reps < 2:
        raise DataError(f"reps must be a whole number of replicates, at least 2 (got {reps!r}).")
    if not 0 < alpha < 1:
        raise DataError(f"alpha must lie between 0 and 1 (got {alpha}); 0.05 is usual.")
    reps = int(reps)
    rng = np.random.default_rng(np.random.SeedSequence(int(seed)))
    batch = _between_batch if d.kind == "between" else _within_batch
    parts: list[tuple[dict, np.ndarray, dict]] = []
    for lo in range(0, reps, _CHUNK):
        hi = min(lo + _CHUNK, reps)
        parts.append(batch(d, hi - lo, rng))
        if progress is not None:
            progress(hi, reps)
    keys = parts[0][0].keys()
    return PowerResult(
        design=d, reps=reps, alpha=float(alpha), seed=int(seed),
        p_values={k: np.concatenate([pp[0][k] for pp in parts]) for k in keys},
        singular=np.concatenate([pp[1] for pp in parts]),
        extras={k: np.concatenate([pp[2][k] for pp in parts]) for k in parts[0][2]},
    )


def _grid_point(fields: dict[str, Any], reps: int, alpha: float, seed: int) -> pd.DataFrame:
    res = simulate_power(Design(**fields), reps=reps, alpha=alpha, seed=seed)
    t = res.tidy().drop(columns="rejections")
    for key, val in fields.items():
        t[key] = val
    d = res.design
    t["design_effect"] = d.design_effect
    t["effective_n"] = d.effective_n
    t["n_mice"] = d.n_mice
    t["singular_rate"] = res.singular_rate
    t["reps"] = reps
    return t


def power_grid(points: Sequence[Design | dict[str, Any]], *, reps: int = 500, alpha: float = 0.05,
               seed: int = 1, n_jobs: int = 1, dask: str | None = None) -> pd.DataFrame:
    """Rejection rates for many design points, in parallel.

    ``n_jobs > 1`` spreads the points over local processes with joblib; ``dask`` (a scheduler
    address such as ``tcp://10.0.0.5:8786``) runs the same joblib calls on a Dask cluster.
    Every point uses the same ``seed``, so neighbouring points share random numbers and the
    curves are smooth; the result does not depend on where it ran.

    Returns a long DataFrame: the design fields, ``method, label, rejection_rate, conf_low,
    conf_high, design_effect, effective_n, n_mice, singular_rate, reps``.
    """
    fields = [asdict(p) if isinstance(p, Design) else dict(p) for p in points]
    if not fields:
        raise DataError("The grid is empty: give at least one design point.")
    for f in fields:
        Design(**f)  # validate every point here, with a readable message, before any work
    if dask is None and n_jobs == 1:
        frames = [_grid_point(f, reps, alpha, seed) for f in fields]
    else:
        from joblib import Parallel, delayed, parallel_config

        calls = (delayed(_grid_point)(f, reps, alpha, seed) for f in fields)
        if dask is not None:
            try:
                from distributed import Client
            except ImportError as err:
                raise DataError("Running on a Dask cluster needs the packages dask and distributed "
                                "(pip install -r requirements-dev.txt); without --dask the grid "
                                "runs on this machine.") from err

            with Client(dask) as _client, parallel_config(backend="dask"):
                frames = Parallel()(calls)
        else:
            frames = Parallel(n_jobs=n_jobs)(calls)
    return pd.DataFrame(pd.concat(frames, ignore_index=True))


def power_curve(design: Design, over: str, values: Sequence[int], *, reps: int = 500,
                alpha: float = 0.05, seed: int = 1, n_jobs: int = 1) -> pd.DataFrame:
    """Rejection rates as ``mice`` or ``cells_per_mouse`` varies (other fields fixed)."""
    if over not in ("mice", "cells_per_mouse", "icc", "effect", "slope_sd"):
        raise DataError(f"A curve can vary mice, cells_per_mouse, icc, effect or slope_sd, not {over!r}.")
    pts = [replace(design, **{over: v}) for v in values]
    return power_grid(pts, reps=reps, alpha=alpha, seed=seed, n_jobs=n_jobs)


@dataclass(frozen=True, eq=False)
class CostPlan:
    """The cost model's answer over a grid of (mice, cells per mouse)."""

    grid: pd.DataFrame  # mice, cells_per_mouse, cost, power (of the chosen method), conf_low/high
    method: str
    target_power: float
    budget: float
    cheapest: dict[str, Any] | None  # cheapest design with power >= target
    best_in_budget: dict[str, Any] | None  # highest power with cost <= budget

    def tidy(self) -> pd.DataFrame:
        return self.grid

    def glance(self) -> pd.DataFrame:
        return pd.DataFrame([{"method": self.method, "target_power": self.target_power,
                              "budget": self.budget, "cheapest": self.cheapest,
                              "best_in_budget": self.best_in_budget}])

    def r_code(self) -> str:
        return ("# cost of a design: conditions x mice x (cost per mouse + cells x cost per cell)\n"
                "cost <- function(mice, cells) n_cond * mice * (cost_mouse + cells * cost_cell)")

    def sentence(self) -> str:
        """What the grid says, in words computed from it."""
        label = METHODS[self.method]
        out = []
        if self.cheapest is None:
            out.append(f"No design in the grid reaches {self.target_power:.0%} power with the "
                       f"{label}: widen the grid or expect a larger effect.")
        else:
            c = self.cheapest
            out.append(f"The cheapest design reaching {self.target_power:.0%} power ({label}) "
                       f"uses {c['mice']} mice with {c['cells_per_mouse']} cells each: cost "
                       f"{c['cost']:,.0f}, power {c['power']:.0%}.")
        if self.best_in_budget is None:
            out.append(f"No design in the grid fits a budget of {self.budget:,.0f}.")
        else:
            b = self.best_in_budget
            out.append(f"Within a budget of {self.budget:,.0f} the best design has {b['mice']} "
                       f"mice with {b['cells_per_mouse']} cells each (cost {b['cost']:,.0f}, "
                       f"power {b['power']:.0%}).")
        g = self.grid
        # the lesson: at the same cost, compare the design with most mice to the one with most cells
        if g["mice"].nunique() > 1 and g["cells_per_mouse"].nunique() > 1:
            few = g[g["mice"] == g["mice"].min()].sort_values("cells_per_mouse").iloc[-1]
            many = g[g["cells_per_mouse"] == g["cells_per_mouse"].min()].sort_values("mice").iloc[-1]
            out.append(f"{int(few.mice)} mice x {int(few.cells_per_mouse)} cells "
                       f"({int(few.mice * few.cells_per_mouse)} cells per condition) reach "
                       f"{few.power:.0%}; {int(many.mice)} mice x {int(many.cells_per_mouse)} "
                       f"cells ({int(many.mice * many.cells_per_mouse)} cells) reach {many.power:.0%}.")
        return " ".join(out)


def cost_plan(design: Design, *, mice: Sequence[int], cells: Sequence[int], cost_per_mouse: float,
              cost_per_cell: float, budget: float, target_power: float = 0.8,
              method: str = "lme", reps: int = 300, alpha: float = 0.05, seed: int = 1,
              n_jobs: int = 1) -> CostPlan:
    """Power of ``method`` and cost over a grid of mice x cells; cheapest and best-in-budget designs."""
    if method not in design.methods():
        raise DataError(f"The method {method!r} is not fitted in a {design.kind}-mouse design; "
                        f"choose one of {', '.join(design.methods())}.")
    if cost_per_mouse < 0 or cost_per_cell < 0 or budget <= 0:
        raise DataError("Costs cannot be negative and the budget must be positive.")
    pts = [replace(design, mice=int(m), cells_per_mouse=int(c)) for m in mice for c in cells]
    g = power_grid(pts, reps=reps, alpha=alpha, seed=seed, n_jobs=n_jobs)
    g = g[g["method"] == method].reset_index(drop=True)
    g = g.rename(columns={"rejection_rate": "power"})
    g["cost"] = [replace(design, mice=int(m), cells_per_mouse=int(c)).cost(cost_per_mouse, cost_per_cell)
                 for m, c in zip(g["mice"], g["cells_per_mouse"])]
    keep = ["mice", "cells_per_mouse", "cost", "power", "conf_low", "conf_high", "design_effect",
            "effective_n", "singular_rate"]
    g = g[keep]
    ok = g[g["power"] >= target_power]
    cheapest = ok.sort_values(["cost", "power"], ascending=[True, False]).iloc[0].to_dict() if len(ok) else None
    inb = g[g["cost"] <= budget]
    best = inb.sort_values(["power", "cost"], ascending=[False, True]).iloc[0].to_dict() if len(inb) else None
    for rec in (cheapest, best):
        if rec is not None:
            rec["mice"], rec["cells_per_mouse"] = int(rec["mice"]), int(rec["cells_per_mouse"])
    return CostPlan(grid=g, method=method, target_power=float(target_power), budget=float(budget),
                    cheapest=cheapest, best_in_budget=best)


def misspec_reading(result: PowerResult) -> str:
    """What the random-intercept-only model's SE misses in a within-mouse design, from a run.

    Compares its average SE with the SD of its estimates over the replicates and with the true
    SE ``sqrt((slope_sd^2 + sigma^2 (1/n0 + 1/n1)) / m)`` of the treatment effect.
    """
    d = result.design
    if d.kind != "within":
        raise DataError("The misspecification reading is for the within-mouse design (a "
                        "treatment seen in every mouse).")
    n0, n1 = _split(d.cells_per_mouse)
    true_se = math.sqrt((d.slope_sd**2 * d.total_var + d.sd_cell**2 * (1 / n0 + 1 / n1)) / d.mice)
    ri_se = float(result.extras["ri_se"].mean())
    sd_est = float(result.extras["ri_estimate"].std(ddof=1))
    rs_se = float(np.nanmean(result.extras["slope_se"]))
    r = result.rejection_rate
    text = (f"With a treatment-effect SD of {d.slope_sd:g} between mice, the random-intercept LME "
            f"reports an average SE of {ri_se:.3g}, while its estimates actually vary with SD "
            f"{sd_est:.3g} (true SE {true_se:.3g}); ")
    if d.slope_sd > 0:
        text += (f"its SE only counts the cell-to-cell noise, {ri_se / true_se:.0%} of the truth, "
                 "because it assumes every mouse responds the same. ")
    else:
        text += "with no treatment-by-mouse variance there is nothing for it to miss. "
    text += (f"It rejects a true null in {r['lme']:.1%} of the experiments; the model with the "
             f"random slope (average SE {rs_se:.3g}) in {r['lme_slope']:.1%}, the pooled LM in "
             f"{r['pooled_lm']:.1%} (nominal {result.alpha:g}).")
    return text
