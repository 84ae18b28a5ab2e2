"""Monte Carlo studies: the mixed-effects report and the type I error of pooling.

Two simulations, both fitted with the batch REML fitters of :mod:`mmteach.sim_reml`:

* :func:`simulate_report` re-runs the Monte Carlo report (Bossier 2018): classes with a
  random intercept and a random slope, ``lmer(Y ~ 1 + X + (1 + X | class), REML = TRUE)``
  on every replicate, and compares the average estimates, standard errors and standard
  deviations with the truth.
* :func:`simulate_type1` simulates Example 1's design (24 mice in 5 conditions, 50 cells per
  mouse) with no condition effect and counts how often each analysis declares one:
  the pooled ``lm`` F test, a one-way ANOVA of the mouse means and the random-intercept LME
  (lmerTest's Satterthwaite F).  :func:`type1_curve` repeats it over a range of ICCs or
  cells per mouse.

Every function takes ``seed`` and is reproducible; ``progress(done, total)`` is called as
replicates finish (the Streamlit page drives a progress bar with it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from mmteach.errors import DataError
from mmteach.results import clean_json
from mmteach.sim_reml import (
    fit_intercept_batch,
    fit_slope_batch,
    means_anova,
    pooled_f_test,
    slope_true_vcov,
)

__all__ = [
    "ReportResult",
    "TypeIResult",
    "simulate_report",
    "simulate_type1",
    "type1_curve",
    "type1_curve_reading",
    "binomial_ci",
    "EXAMPLE1_ICC",
    "EXAMPLE1_MICE",
    "TYPE1_METHODS",
]

Progress = Callable[[int, int], Any] | None

TERMS = ("(Intercept)", "X")
SD_NAMES = ("Residual", "(Intercept)", "X")
# Example 1 (pCREB): mice per condition and ICC per condition (ICC::ICCbare).
EXAMPLE1_MICE = (7, 6, 3, 3, 5)
EXAMPLE1_ICC = (0.62094868, 0.33006327, 0.01780304, 0.62810904, 0.53694579)
# Keys of the type I methods and how they are shown.
TYPE1_METHODS = {
    "pooled_lm": "Pooled LM (cells as independent), F test",
    "mouse_means": "One-way ANOVA on mouse means",
    "lme": "LME random intercept, Satterthwaite F (lmerTest)",
}
# Elements simulated per chunk (replicates x rows); bounds memory for large designs.
_CHUNK_ELEMENTS = 2_000_000
_Z975 = float(stats.norm.ppf(0.975))


def binomial_ci(k: np.ndarray | int, n: int, level: float = 0.95) -> tuple[Any, Any]:
    """Clopper-Pearson (exact) confidence interval for a binomial proportion ``k / n``.

    Examples
    --------
    >>> lo, hi = binomial_ci(50, 1000)
    >>> round(float(lo), 4), round(float(hi), 4)
    (0.0373, 0.0654)
    """
    k = np.asarray(k, float)
    a = (1.0 - level) / 2.0
    with np.errstate(invalid="ignore"):
        lo = np.where(k > 0, stats.beta.ppf(a, k, n - k + 1), 0.0)
        hi = np.where(k < n, stats.beta.ppf(1.0 - a, k + 1, n - k), 1.0)
    return lo, hi


def _chunks(total: int, rows_per_rep: int, max_chunk: int = 250) -> list[tuple[int, int]]:
    size = max(1, min(max_chunk, _CHUNK_ELEMENTS // max(rows_per_rep, 1)))
    return [(a, min(a + size, total)) for a in range(0, total, size)]


def _check_reps(reps: int) -> int:
    if int(reps) != reps or reps < 1:
        raise DataError(f"reps must be a positive whole number of replicates (got {reps!r}).")
    return int(reps)


# =========================================================================================
# The Monte Carlo report
# =========================================================================================
@dataclass(frozen=True, eq=False)
class ReportResult:
    """Result of :func:`simulate_report`.

    Per-replicate arrays (first axis = replicate): ``estimates`` and ``std_errors`` (R, 2) in
    the order ``(Intercept), X``; ``sds`` (R, 3) for Residual, (Intercept), X; ``corr`` (R,);
    ``pooled_std_errors`` (R, 2) from ``lm(Y ~ X)``; ``covered`` (R, 2) whether the Wald z
    interval ``estimate +- 1.96 SE`` contains the true value.
    """

    design: dict[str, Any]
    reps: int
    seed: int
    true_beta: np.ndarray
    true_vcov: np.ndarray
    true_sd: np.ndarray
    estimates: np.ndarray
    std_errors: np.ndarray
    sds: np.ndarray
    corr: np.ndarray
    pooled_std_errors: np.ndarray
    covered: np.ndarray
    converged: np.ndarray
    singular: np.ndarray
    notes: tuple[str, ...] = ()
    coverage_method: str = "Wald z: estimate +- 1.96 SE (lme4 reports no df)"
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def true_se(self) -> np.ndarray:
        """True standard errors sqrt(diag((sum X_i' V_i^-1 X_i)^-1))."""
        return np.sqrt(np.diag(self.true_vcov))

    @property
    def coverage(self) -> np.ndarray:
        """Share of replicates whose 95% Wald z interval contains the true beta."""
        return self.covered.mean(0)

    def fixed_table(self) -> pd.DataFrame:
        """The report's fixed-effects table, plus the Monte Carlo SD and SE, LM SEs, coverage."""
        mc_sd = self.estimates.std(0, ddof=1) if self.reps > 1 else np.full(2, np.nan)
        return pd.DataFrame({
            "term": TERMS,
            "true_estimate": self.true_beta,
            "avg_estimate": self.estimates.mean(0),
            "mc_se_estimate": mc_sd / math.sqrt(self.reps),
            "true_std_error": self.true_se,
            "avg_std_error": self.std_errors.mean(0),
            "sd_of_estimates": mc_sd,
            "pooled_lm_avg_std_error": self.pooled_std_errors.mean(0),
            "coverage": self.coverage,
        })

    def sd_table(self) -> pd.DataFrame:
        """The report's random-effects table: average estimated SD against the true SD."""
        sd = self.sds.std(0, ddof=1) if self.reps > 1 else np.full(3, np.nan)
        return pd.DataFrame({
            "name": SD_NAMES,
            "true_sd": self.true_sd,
            "avg_sd": self.sds.mean(0),
            "mc_se_sd": sd / math.sqrt(self.reps),
        })

    def to_dict(self) -> dict[str, Any]:
        """JSON summary (``python -m mmteach simulate report --json``)."""
        ft, st = self.fixed_table(), self.sd_table()

        def by(table, key, col):
            return dict(zip(table[key], table[col]))

        out = {
            "study": "report",
            "design": self.design,
            "reps": self.reps,
            "seed": self.seed,
            "avg_estimate": by(ft, "term", "avg_estimate"),
            "true_estimate": by(ft, "term", "true_estimate"),
            "avg_std_error": by(ft, "term", "avg_std_error"),
            "true_std_error": by(ft, "term", "true_std_error"),
            "sd_of_estimates": by(ft, "term", "sd_of_estimates"),
            "pooled_lm_avg_std_error": by(ft, "term", "pooled_lm_avg_std_error"),
            "avg_sd": by(st, "name", "avg_sd"),
            "true_sd": by(st, "name", "true_sd"),
            "coverage": by(ft, "term", "coverage"),
            "coverage_method": self.coverage_method,
            "converged": int(self.converged.sum()),
            "singular": int(self.singular.sum()),
            "notes": list(self.notes),
        }
        return clean_json(out)

    def reading(self) -> str:
        """What this run shows, in words computed from its tables (the page's "Read it")."""
        ft = self.fixed_table().set_index("term")
        x = ft.loc["X"]
        cov = float(x["coverage"])
        out = [f"For the slope, the REML average SE is {x['avg_std_error']:.3g} against a true SE of "
               f"{x['true_std_error']:.3g}, and the estimates spread with SD {x['sd_of_estimates']:.3g}; "
               f"the pooled LM's average SE is {x['pooled_lm_avg_std_error']:.3g}, "
               f"{x['pooled_lm_avg_std_error'] / x['true_std_error']:.2g} times the truth, because it "
               "ignores that slopes vary between classes."]
        if self.design.get("redraw_random_effects", False):
            ok = abs(cov - 0.95) <= 2.6 * math.sqrt(0.95 * 0.05 / self.reps) + 0.005
            out.append(f"The 95% intervals cover the true slope in {cov:.1%} of the replicates"
                       + (", close to the nominal 95%." if ok else
                          "; with few classes the Wald z interval is a little too narrow."))
        else:
            shift = float(x["avg_estimate"] - x["true_estimate"])
            out.append(
                f"With the report's design (class effects drawn once) the estimates centre on "
                f"{x['avg_estimate']:.3g}, {shift:+.3g} from the true {x['true_estimate']:.3g}: the one "
                "draw of class slopes has its own average, which every replicate shares. Their SD "
                f"({x['sd_of_estimates']:.3g}) is the residual noise only, smaller than the SE "
                f"({x['avg_std_error']:.3g}), which also counts the spread of class slopes a new "
                f"experiment would bring; hence coverage {cov:.1%} instead of 95%. Redraw the random "
                "effects per replicate to ask the question the SE answers.")
        return " ".join(out)

    def summary_text(self) -> str:
        """Readable summary for the CLI."""
        ft, st = self.fixed_table(), self.sd_table()
        d = self.design
        lines = [
            f"Monte Carlo report: {self.reps} replicates, seed {self.seed}; "
            f"K = {d['n_classes']} classes x n = {d['n_per_class']} rows; "
            f"lmer(Y ~ 1 + X + (1 + X | class), REML = TRUE)",
            "",
            "Fixed effects      true   avg est   true SE    avg SE   SD(est)  LM avg SE  coverage",
        ]
        for _, r in ft.iterrows():
            lines.append(
                f"{r.term:<14}{r.true_estimate:>8.3f}{r.avg_estimate:>10.3f}"
                f"{r.true_std_error:>10.3f}{r.avg_std_error:>10.3f}{r.sd_of_estimates:>10.3f}"
                f"{r.pooled_lm_avg_std_error:>11.3f}{r.coverage:>10.3f}"
            )
        lines += ["", "Standard deviations  true  avg estimate"]
        for _, r in st.iterrows():
            lines.append(f"{r['name']:<18}{r.true_sd:>7.3f}{r.avg_sd:>13.3f}")
        lines += ["", f"Coverage: {self.coverage_method}.",
                  f"Converged: {int(self.converged.sum())}/{self.reps}; "
                  f"singular fits: {int(self.singular.sum())}."]
        lines += [f"Note: {n}" for n in self.notes]
        return "\n".join(lines)


def _report_notes(redraw: bool, n_per_class: int, n_classes: int) -> tuple[str, ...]:
    notes = [
        "The report's data loop repeats every class n = 50 times (for j in 1:NinClass around "
        "a draw of all 50 rows), so each of its fits used 100,000 rows instead of 2,000; this "
        f"simulation generates n = {n_per_class} rows per class ({n_classes * n_per_class} "
        "rows per replicate).",
        "The predictor X is drawn once and kept for all replicates, so the true SE "
        "(sum X_i' V_i^-1 X_i)^-1 is the same for every replicate.",
    ]
    if redraw:
        notes.append("The random effects are drawn anew for every replicate, so the spread of "
                     "the estimates is the full sampling variability the SE describes.")
    else:
        notes.append(
            "As in the report, the class random effects are drawn once and kept: replicates "
            "differ only in the residuals. The estimates then scatter around beta plus the "
            "fixed draw's average random effect, more tightly than the SE says, so coverage "
            "is not expected to be 95%; redraw the random effects for a proper coverage "
            "check.")
    return tuple(notes)


# duplicates: its docstring repeats simulate_type1's layout and doctest set-up on purpose: each doctest runs alone
def simulate_report(
    *,
    n_classes: int = 40,
    n_per_class: int = 50,
    beta: Sequence[float] = (5.0, 2.0),
    sd_b0: float = 1.0,
    sd_b1: float = 2.0,
    sigma_w: float = 1.0,
    x_low: float = 1,
    x_high: float = 20,
    reps: int = 1000,
    seed: int = 1,
    redraw_random_effects: bool = False,
    progress: Progress = None,
) -> ReportResult:
    """Re-run the Monte Carlo report: random intercept and slope, REML, ``reps`` replicates.

    ``Y_ij = (beta0 + b0_i) + (beta1 + b1_i) X_ij + e_ij`` with ``X ~ round(U(x_low, x_high))``
    drawn once, ``(b0, b1) ~ N(0, diag(sd_b0^2, sd_b1^2))`` and ``e ~ N(0, sigma_w^2)``;
    each replicate is fitted with ``lmer(Y ~ 1 + X + (1 + X | class), REML = TRUE)`` and with
    ``lm(Y ~ X)`` (for its standard errors).

    Parameters
    ----------
    n_classes, n_per_class : int
        K classes (clusters) of n rows each.
    beta : (float, float)
        True intercept and slope.
    sd_b0, sd_b1, sigma_w : float
        True SDs of the random intercept, the random slope and the residual.
    x_low, x_high : float
        Range of the uniform predictor before rounding.
    reps, seed : int
        Number of replicates and the random seed.
    redraw_random_effects : bool
        False (the report): the class effects are drawn once and kept; True: anew per replicate.
    progress : callable, optional
        ``progress(done, total)`` after each chunk of replicates.

    Returns
    -------
    ReportResult

    Examples
    --------
    >>> res = simulate_report(reps=20, seed=3)
    >>> res.estimates.shape, sorted(res.to_dict()["avg_estimate"])
    ((20, 2), ['(Intercept)', 'X'])
    """
    reps = _check_reps(reps)
    k, n = int(n_classes), int(n_per_class)
    if k < 3 or n < 3 or k != n_classes or n != n_per_class:
        raise DataError(
            "The random intercept and slope model needs at least 3 classes and at least 3 rows "
            "per class: with fewer, the class variances (2 per class) cannot be told apart "
            f"from the residual (got n_classes={n_classes}, n_per_class={n_per_class})."
        )
    if not x_high > x_low:
        raise DataError(f"x_high ({x_high}) must be larger than x_low ({x_low}); X needs a "
                        "spread for a slope to be estimable.")
    if min(sd_b0, sd_b1) < 0 or sigma_w <= 0:
        raise DataError("Standard deviations cannot be negative, and sigma_w must be positive "
                        "(a residual SD of 0 makes every class fit perfectly).")
    b = np.asarray(beta, float)
    if b.shape != (2,):
        raise DataError("beta must be two numbers: the intercept and the slope of X.")
    seeds = np.random.SeedSequence(int(seed)).spawn(3)
    rng_x, rng_u, rng_e = (np.random.default_rng(s) for s in seeds)
    x = np.round(rng_x.uniform(x_low, x_high, size=(k, n)))
    if np.any(x.max(1) == x.min(1)):
        raise DataError("A class drew the same X for every row, so its slope is not estimable; "
                        "widen the X range or use more rows per class.")
    A = np.empty((k, 2, 2))
    A[:, 0, 0] = n
    A[:, 0, 1] = A[:, 1, 0] = x.sum(1)
    A[:, 1, 1] = (x * x).sum(1)
    sd_u = np.array([sd_b0, sd_b1])
    u_fixed = rng_u.standard_normal((k, 2)) * sd_u
    true_vcov = slope_true_vcov(A, sd_b0, sd_b1, sigma_w)
    xtx_inv = np.linalg.inv(A.sum(0))
    out = {key: [] for key in ("beta", "se", "sds", "corr", "lm_se", "conv", "sing")}
    for lo, hi in _chunks(reps, k * n):
        m = hi - lo
        u = rng_u.standard_normal((m, k, 2)) * sd_u if redraw_random_effects else u_fixed[None]
        e = rng_e.standard_normal((m, k, n)) * sigma_w
        y = (b[0] + u[..., 0, None]) + (b[1] + u[..., 1, None]) * x + e  # (m, K, n)
        c = np.stack([y.sum(-1), (y * x).sum(-1)], -1)
        s = (y * y).sum(-1)
        fit = fit_slope_batch(A, c, s, k * n)
        out["beta"].append(fit.beta)
        out["se"].append(fit.se)
        out["sds"].append(np.stack([fit.sigma, fit.sd_intercept, fit.sd_slope], -1))
        out["corr"].append(fit.corr)
        out["conv"].append(fit.converged)
        out["sing"].append(fit.singular)
        # Pooled lm(Y ~ X): every row independent.
        xty = c.sum(1)
        bl = xty @ xtx_inv
        rss = s.sum(1) - (bl * xty).sum(-1)
        out["lm_se"].append(np.sqrt(rss[:, None] / (k * n - 2) * np.diag(xtx_inv)))
        if progress is not None:
            progress(hi, reps)
    est = np.concatenate(out["beta"])
    se = np.concatenate(out["se"])
    return ReportResult(
        design={"n_classes": k, "n_per_class": n, "beta": [float(v) for v in b],
                "sd_b0": float(sd_b0), "sd_b1": float(sd_b1), "sigma_w": float(sigma_w),
                "x_low": float(x_low), "x_high": float(x_high),
                "redraw_random_effects": bool(redraw_random_effects)},
        reps=reps,
        seed=int(seed),
        true_beta=b,
        true_vcov=true_vcov,
        true_sd=np.array([sigma_w, sd_b0, sd_b1], float),
        estimates=est,
        std_errors=se,
        sds=np.concatenate(out["sds"]),
        corr=np.concatenate(out["corr"]),
        pooled_std_errors=np.concatenate(out["lm_se"]),
        covered=np.abs(est - b) <= _Z975 * se,
        converged=np.concatenate(out["conv"]),
        singular=np.concatenate(out["sing"]),
        notes=_report_notes(bool(redraw_random_effects), n, k),
        extras={"x": x, "random_effects": None if redraw_random_effects else u_fixed},
    )


# =========================================================================================
# Type I error of pooling (Example 1's design, no true effect)
# =========================================================================================
@dataclass(frozen=True, eq=False)
class TypeIResult:
    """Result of :func:`simulate_type1`.

    ``p_values`` maps a method key of :data:`TYPE1_METHODS` to the (R,) p-values of the
    overall condition test; a replicate rejects when ``p < alpha``.
    """

    design: dict[str, Any]
    reps: int
    alpha: float
    seed: int
    p_values: dict[str, np.ndarray]
    lme_ddf: np.ndarray
    lme_singular: np.ndarray
    lme_converged: np.ndarray
    notes: tuple[str, ...] = ()
    ci_method: str = "Clopper-Pearson exact 95% interval"

    @property
    def rejections(self) -> dict[str, int]:
        """Number of replicates rejecting the (true) null of no condition effect."""
        return {k: int((p < self.alpha).sum()) for k, p in self.p_values.items()}

    def table(self) -> pd.DataFrame:
        """One row per method: rejection rate (type I error) and its 95% binomial CI."""
        rows = []
        for key, k in self.rejections.items():
            lo, hi = binomial_ci(k, self.reps)
            rows.append({"method": key, "label": TYPE1_METHODS[key], "rejections": k,
                         "rejection_rate": k / self.reps, "conf_low": float(lo),
                         "conf_high": float(hi)})
        return pd.DataFrame(rows)

    def to_dict(self) -> dict[str, Any]:
        """JSON summary (``python -m mmteach simulate typeI --json``)."""
        t = self.table()
        out = {
            "study": "typeI",
            "design": self.design,
            "reps": self.reps,
            "alpha": self.alpha,
            "seed": self.seed,
            "rejection_rate": dict(zip(t["method"], t["rejection_rate"])),
            "conf_low": dict(zip(t["method"], t["conf_low"])),
            "conf_high": dict(zip(t["method"], t["conf_high"])),
            "rejections": dict(zip(t["method"], t["rejections"])),
            "ci_method": self.ci_method,
            "methods": dict(TYPE1_METHODS),
            "lme_singular": int(self.lme_singular.sum()),
            "lme_median_ddf": float(np.median(self.lme_ddf)),
            "notes": list(self.notes),
        }
        return clean_json(out)

    def pvalue_reading(self) -> str:
        """Why a histogram is flat or bent, from the p-values themselves (the page's caption)."""
        parts = []
        for key, p in self.p_values.items():
            low, high = float((p < 0.1).mean()), float((p > 0.9).mean())
            short = TYPE1_METHODS[key].split(",")[0].split(" (")[0]
            if low > 0.13:
                parts.append(f"{short}: {low:.0%} of p-values below 0.1 (10% expected), too many "
                             "false positives")
            elif high > 0.13:
                reasons = []
                n_sing = int(self.lme_singular.sum())
                if key == "lme" and n_sing > 0.01 * self.reps:
                    reasons.append(f"{n_sing} fits put the mouse variance at 0 (boundary), where the "
                                   "test is conservative")
                if np.ptp(self.design["icc"]) > 0.05:
                    reasons.append("the conditions' ICCs differ, so their mouse means have different "
                                   "variances while the test assumes one")
                why = " and ".join(reasons) or "Monte Carlo noise or ties in the data"
                parts.append(f"{short}: {high:.0%} above 0.9 (10% expected): {why}")
            else:
                parts.append(f"{short}: {low:.0%} below 0.1 and {high:.0%} above 0.9, close to flat")
        return ("With no true effect a valid test gives evenly spread p-values (5% of data sets per "
                "bin, the dotted line). " + "; ".join(parts) + ".")

    def summary_text(self) -> str:
        """Readable summary for the CLI."""
        d = self.design
        lines = [
            f"Type I error study: {self.reps} replicates, seed {self.seed}, alpha = {self.alpha}; "
            f"mice per condition {tuple(d['mice_per_condition'])}, "
            f"{d['cells_per_mouse']} cells per mouse, ICC {tuple(d['icc'])}; no true effect.",
            "",
            f"{'method':<52}{'rejection rate':>15}   95% CI",
        ]
        for _, r in self.table().iterrows():
            lines.append(f"{r.label:<52}{r.rejection_rate:>15.3f}   "
                         f"[{r.conf_low:.3f}, {r.conf_high:.3f}]")
        lines += ["", f"CI: {self.ci_method}.",
                  f"LME fits on the boundary (mouse variance 0): {int(self.lme_singular.sum())}; "
                  f"median Satterthwaite ddf {float(np.median(self.lme_ddf)):.2f}."]
        lines += [f"Note: {n}" for n in self.notes]
        return "\n".join(lines)


def _type1_design(mice_per_condition, cells_per_mouse, icc, total_var):
    """Validate the design; return mice per condition, cells per mouse, condition codes, ICC."""
    mice = np.asarray(mice_per_condition, dtype=float).ravel()
    if mice.size < 2 or np.any(mice < 1) or np.any(mice != np.round(mice)):
        raise DataError("mice_per_condition must list a whole number >= 1 of mice for each of "
                        "at least two conditions, e.g. (7, 6, 3, 3, 5) as in Example 1.")
    mice = mice.astype(int)
    n_cond, n_mice = mice.size, int(mice.sum())
    if n_mice <= n_cond:
        raise DataError(f"{n_mice} mice in {n_cond} conditions leave no second mouse in any "
                        "condition, so mouse-to-mouse variation cannot be estimated; add mice.")
    cells = np.asarray(cells_per_mouse, dtype=float).ravel()
    if cells.size == 1:
        cells = np.repeat(cells, n_mice)
    if cells.size != n_mice or np.any(cells < 2) or np.any(cells != np.round(cells)):
        raise DataError("cells_per_mouse must be one whole number >= 2 (or one per mouse): "
                        "with a single cell per mouse the cell and mouse variances coincide.")
    icc_arr = np.asarray(icc, dtype=float).ravel()
    if icc_arr.size == 1:
        icc_arr = np.repeat(icc_arr, n_cond)
    if icc_arr.size != n_cond or np.any(icc_arr < 0) or np.any(icc_arr >= 1):
        raise DataError("icc must be one number in [0, 1) or one per condition: it is the share "
                        "of the variance that lies between mice (1 would leave no cell-to-cell "
                        "variation).")
    if not total_var > 0:
        raise DataError("total_var must be positive: it is the variance of one cell's value.")
    cond = np.repeat(np.arange(n_cond), mice)
    return mice, cells, cond, icc_arr


def _type1_notes(icc_arr, cells) -> tuple[str, ...]:
    m = float(np.mean(cells))
    deff = 1.0 + icc_arr * (m - 1.0)
    notes = [
        "Each mouse belongs to one condition and all conditions have the same mean, so every "
        "rejection is a false positive.",
        "Design effect 1 + ICC (m - 1) per condition with m = "
        f"{m:g} cells per mouse: {', '.join(f'{d:.1f}' for d in deff)}; pooling treats each "
        "condition's cells as that many times more informative than they are.",
        "Per-mouse sums are drawn from their exact distribution (S_j = n b_j + sum e, "
        "Q_j = S_j^2 / n + sigma_e^2 chi^2_(n-1)), which is the same as simulating every cell.",
    ]
    if np.ptp(icc_arr) > 0:
        notes.append("The ICC differs between conditions while the LME assumes one mouse "
                     "variance and one residual variance for all, so its rate can differ "
                     "slightly from alpha.")
    return tuple(notes)


# duplicates: its docstring repeats simulate_report's layout and doctest set-up on purpose: each doctest runs alone
def simulate_type1(
    *,
    mice_per_condition: Sequence[int] = EXAMPLE1_MICE,
    cells_per_mouse: int | Sequence[int] = 50,
    icc: float | Sequence[float] = EXAMPLE1_ICC,
    total_var: float = 1.0,
    reps: int = 1000,
    alpha: float = 0.05,
    seed: int = 1,
    progress: Progress = None,
) -> TypeIResult:
    """Type I error of three analyses of clustered data when no condition effect exists.

    Cell values are ``y = b_mouse + e`` with ``b ~ N(0, ICC_c total_var)`` and
    ``e ~ N(0, (1 - ICC_c) total_var)`` for a mouse in condition ``c``.  Each replicate tests
    the overall condition effect with

    * ``pooled_lm``: ``anova(lm(y ~ condition))``, every cell independent;
    * ``mouse_means``: ``anova(lm(mean ~ condition))`` on one mean per mouse;
    * ``lme``: ``anova(lmerTest::lmer(y ~ condition + (1 | mouse)))``, Satterthwaite F.

    Parameters
    ----------
    mice_per_condition : sequence of int
        Mice in each condition (Example 1: 7, 6, 3, 3, 5).
    cells_per_mouse : int or sequence of int
        Cells per mouse (one number, or one per mouse).
    icc : float or sequence of float
        Intra-class correlation, one for all conditions or one per condition.
    total_var : float
        Variance of one cell's value (mouse + residual).
    reps, alpha, seed : int, float, int
        Replicates, significance level, random seed.
    progress : callable, optional
        ``progress(done, total)`` after each chunk of replicates.

    Returns
    -------
    TypeIResult

    Examples
    --------
    >>> res = simulate_type1(reps=200, seed=2)
    >>> res.to_dict()["rejection_rate"]["pooled_lm"] > 0.8
    True
    """
    reps = _check_reps(reps)
    if not 0 < alpha < 1:
        raise DataError(f"alpha must lie between 0 and 1 (got {alpha}); 0.05 is usual.")
    mice, cells, cond, icc_arr = _type1_design(mice_per_condition, cells_per_mouse, icc,
                                               total_var)
    sd_b = np.sqrt(icc_arr * total_var)[cond]  # per mouse
    sd_e = np.sqrt((1.0 - icc_arr) * total_var)[cond]
    rng = np.random.default_rng(np.random.SeedSequence(int(seed)))
    p = {key: [] for key in TYPE1_METHODS}
    ddf, sing, conv = [], [], []
    for lo, hi in _chunks(reps, cond.size, max_chunk=500):
        m = hi - lo
        b = rng.standard_normal((m, cond.size)) * sd_b
        S = cells * b + np.sqrt(cells) * sd_e * rng.standard_normal((m, cond.size))
        Q = S * S / cells + sd_e**2 * rng.chisquare(cells - 1.0, size=(m, cond.size))
        p["pooled_lm"].append(pooled_f_test(cells, S, Q, cond)[2])
        p["mouse_means"].append(means_anova(cells, S, cond)[2])
        fit = fit_intercept_batch(cells, S, Q, cond)
        p["lme"].append(fit.p_value)
        ddf.append(fit.ddf)
        sing.append(fit.singular)
        conv.append(fit.converged)
        if progress is not None:
            progress(hi, reps)
    cells_out: int | list[int] = (int(cells[0]) if np.all(cells == cells[0])
                                  else [int(c) for c in cells])
    return TypeIResult(
        design={"mice_per_condition": [int(v) for v in mice], "cells_per_mouse": cells_out,
                "icc": [float(v) for v in icc_arr], "total_var": float(total_var)},
        reps=reps,
        alpha=float(alpha),
        seed=int(seed),
        p_values={k: np.concatenate(v) for k, v in p.items()},
        lme_ddf=np.concatenate(ddf),
        lme_singular=np.concatenate(sing),
        lme_converged=np.concatenate(conv),
        notes=_type1_notes(icc_arr, cells),
    )


def type1_curve(
    *,
    over: str = "icc",
    values: Sequence[float] = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7),
    reps: int = 500,
    seed: int = 1,
    progress: Progress = None,
    **design: Any,
) -> pd.DataFrame:
    """Type I error of each method as one design parameter varies.

    Parameters
    ----------
    over : {"icc", "cells_per_mouse"}
        The parameter on the x axis; ``icc`` sets one ICC for every condition.
    values : sequence
        Its values.
    reps, seed : int
        Replicates per point and the seed (the same seed at every point, so neighbouring
        points share their random numbers and the curve is smooth).
    progress : callable, optional
        ``progress(done, total)`` counted over all points.
    **design
        Other arguments of :func:`simulate_type1` (``mice_per_condition``, ``alpha``, ...).

    Returns
    -------
    pandas.DataFrame
        Long format: ``<over>, method, label, rejection_rate, conf_low, conf_high, reps``.

    Examples
    --------
    >>> df = type1_curve(over="icc", values=[0.0, 0.5], reps=100)
    >>> sorted(df.columns)[:3], len(df)
    (['conf_high', 'conf_low', 'icc'], 6)
    """
    if over not in ("icc", "cells_per_mouse"):
        raise DataError(f"type1_curve can vary 'icc' or 'cells_per_mouse', not {over!r}.")
    if over in design:
        raise DataError(f"Give the values of {over!r} through values=, not as a design option.")
    values = list(values)
    if not values:
        raise DataError("values is empty: give at least one value for the curve.")
    reps = _check_reps(reps)
    total = reps * len(values)
    frames = []
    for i, v in enumerate(values):
        def sub(done, _n, _i=i):
            if progress is not None:
                progress(_i * reps + done, total)

        res = simulate_type1(**{over: v}, reps=reps, seed=seed, progress=sub, **design)
        t = res.table()
        t.insert(0, over, v)
        t["reps"] = reps
        frames.append(t.drop(columns="rejections"))
    return pd.DataFrame(pd.concat(frames, ignore_index=True))


def type1_curve_reading(curve: pd.DataFrame) -> str:
    """What a type I curve shows, from its own end points (the page's "Read it")."""
    if curve.empty:
        raise DataError("The curve is empty: run it first.")
    over = curve.columns[0]
    name = {"icc": "ICC", "cells_per_mouse": "cells per mouse"}.get(over, over)
    rate = curve.pivot(index=over, columns="method", values="rejection_rate").sort_index()
    lo, hi = rate.index[0], rate.index[-1]
    pooled = rate["pooled_lm"]
    out = [f"Pooled LM: type I error {pooled.iloc[0]:.0%} at {name} {lo:g} and {pooled.iloc[-1]:.0%} "
           f"at {hi:g}."]
    if over == "icc" and lo == 0:
        out.append("With no clustering (ICC 0) pooling is fine; as soon as mice differ, its "
                   "false-positive rate climbs." if pooled.iloc[0] < 0.1 else "")
    elif over == "cells_per_mouse" and pooled.iloc[-1] > pooled.iloc[0]:
        out.append("More cells per mouse make pooling worse, not better: they add precision about "
                   "the mice already measured, not about new ones.")
    valid = [c for c in ("mouse_means", "lme") if c in rate]
    span = ", ".join(f"{TYPE1_METHODS[c].split(',')[0].split(' (')[0]} {rate[c].min():.0%}-{rate[c].max():.0%}"
                     for c in valid)
    out.append(f"Over the whole range: {span}.")
    return " ".join(o for o in out if o)
