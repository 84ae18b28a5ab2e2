"""Explain a singular fit: the deviance profile over one random-effect SD, its likelihood interval, what to do.

lme4's ``profile(fit)`` fixes one standard deviation ``s`` of a random term at a grid of values,
re-minimises the deviance over everything else (the other variance parameters, the residual
SD and the fixed effects) and reports ``zeta(s) = sign(s - s_hat) sqrt(dev(s) - dev(s_hat))``.
The 95% profile interval (``confint(fit, method = "profile")``) is where ``|zeta| <= 1.96``.
When the estimate is 0 (a singular fit), the profile shows how flat the deviance is above it:
the data cannot tell 0 from the upper end of the interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, stats

from mmteach.errors import ModelError
from mmteach.lme_gradient import LOG_2PI
from mmteach.results import FitResult

__all__ = ["SDProfile", "profile_sd", "scalar_terms"]


def scalar_terms(fit: FitResult) -> list[tuple[int, str]]:
    """(block index, label) of the random terms with one SD (e.g. ``(1 | midx)``), which can be profiled."""
    mf = fit.extras.get("model_frame")
    if mf is None or fit.model != "lme":
        return []
    names = mf.varcorr_group_names()
    return [(i, f"{names[i]} {b.terms[0]}") for i, b in enumerate(mf.blocks) if b.n_terms == 1]


@dataclass(frozen=True, eq=False)
class SDProfile:
    """Profile of the deviance over one random-effect SD.

    ``table``: ``sd, deviance, delta, zeta`` (``delta = dev - min dev``); ``conf_low`` and
    ``conf_high`` the profile interval at ``level``; ``estimate`` the fitted SD.
    """

    term: str
    estimate: float
    conf_low: float
    conf_high: float
    level: float
    table: pd.DataFrame
    singular: bool
    n_groups: int
    r_call: str

    def tidy(self) -> pd.DataFrame:
        return self.table

    def glance(self) -> pd.DataFrame:
        return pd.DataFrame([{"term": self.term, "estimate": self.estimate, "conf_low": self.conf_low,
                              "conf_high": self.conf_high, "level": self.level,
                              "criterion": "ML (as lme4's profile)"}])

    def r_code(self) -> str:
        return self.r_call

    def advice(self) -> str:
        """What the profile says and what to do, in a student's words, from the numbers."""
        pct = f"{self.level:.0%}"
        if self.conf_low <= 0.0:
            est = "0" if self.estimate < 1e-6 * max(self.conf_high, 1e-300) else f"{self.estimate:.3g}"
            where = (f"The {self.term} SD is estimated as {est}, and its {pct} profile interval runs "
                     f"from 0 to {self.conf_high:.3g}: the data cannot tell an SD of 0 (no variation "
                     f"between these groups) from any SD up to {self.conf_high:.3g}, because the "
                     "deviance rises by less than the critical "
                     f"{stats.chi2.ppf(self.level, 1):.2f} over that whole range.")
            todo = (f" With only {self.n_groups} groups there is little information about this "
                    "variance. What to do: report the fixed effects (they are still valid); drop "
                    "this term if the simpler model answers your question (compare the two with a "
                    "likelihood-ratio test), or collect more groups (mice) to estimate it; do not "
                    "read the zero as proof that the groups are identical.")
            return where + todo
        return (f"The {self.term} SD is {self.estimate:.3g} with {pct} profile interval "
                f"[{self.conf_low:.3g}, {self.conf_high:.3g}]; the interval excludes 0, so the data "
                "show real variation between these groups and the term should stay in the model.")


def _ml_deviance(problem, theta: np.ndarray, sigma: float) -> float:
    """ML deviance at ``theta`` and an explicit residual SD ``sigma`` (beta profiled out)."""
    ldL2, _ldRX2, pwrss, _beta, _ = problem.parts(theta)
    return ldL2 + pwrss / sigma**2 + problem.n * (LOG_2PI + math.log(sigma**2))


# duplicates: its docstring repeats partial_pooling's layout and doctest set-up on purpose: each doctest runs alone
def profile_sd(fit: FitResult, block: int | None = None, *, level: float = 0.95,
               points: int = 15) -> SDProfile:
    """Profile the deviance over the SD of one scalar random term of an LME fit.

    ``block`` picks the term (index into the model's random terms; default: the first scalar
    term that is at zero, else the first scalar term).  As lme4's ``profile()``, the criterion
    is the ML deviance (a REML fit is refitted by ML), so ``estimate`` is the ML SD.

    Examples
    --------
    >>> from mmteach.datasets import load_dataset
    >>> from mmteach.lme import fit_lme
    >>> d = load_dataset("ca_amplitude")
    >>> pr = profile_sd(fit_lme(d, "res ~ treatment + (1 | midx)", factors=["treatment"]))
    >>> bool(pr.conf_low < pr.estimate < pr.conf_high)
    True
    """
    lf = fit.extras.get("lmefit")
    terms = scalar_terms(fit)
    if lf is None or not terms:
        raise ModelError("A profile needs a linear mixed model with a random term that has one "
                         "standard deviation, such as (1 | mouse); this fit has none.")
    problem = lf.problem
    if block is None:
        zero = [i for i, _ in terms if lf.theta[problem.theta_slices[i]][0] < 1e-4]  # singular first
        block = zero[0] if zero else terms[0][0]
    label = dict(terms).get(block)
    if label is None:
        raise ModelError("That random term has more than one SD (an intercept and a slope); the "
                         "profile here is for terms with one SD, such as (1 | mouse).")
    # lme4's profile() works on the ML deviance even for a REML fit (its interval is the same
    # for both), so a REML fit is refitted by ML first.
    ml = problem.fit(reml=False, theta0=lf.theta) if lf.reml else lf
    j = problem.theta_slices[block].start
    theta_hat = np.asarray(ml.theta, float)
    sigma_hat = float(ml.sigma)
    dev_min = _ml_deviance(problem, theta_hat, sigma_hat)
    s_hat = sigma_hat * theta_hat[j]
    others = [i for i in range(theta_hat.size) if i != j]
    lower = np.asarray(problem.lower, float)

    warm = {"x": np.concatenate([[math.log(sigma_hat)], theta_hat[others]])}

    def dev_at(s: float) -> float:
        """Minimise over log sigma and the other thetas with SD_j = s held fixed."""
        def f(par: np.ndarray) -> float:
            sig = math.exp(par[0])
            th = theta_hat.copy()
            th[others] = par[1:]
            th[j] = s / sig
            try:
                return _ml_deviance(problem, th, sig)
            except np.linalg.LinAlgError:
                return np.inf
        if not others:  # one SD in the model: a one-dimensional search over log sigma
            c = warm["x"][0]
            res = optimize.minimize_scalar(lambda v: f(np.array([v])), bracket=(c - 0.1, c + 0.1),
                                           options={"xtol": 1e-10})
            warm["x"] = np.array([res.x])
            return float(res.fun)
        # warm start from the neighbouring grid point: consecutive SDs have nearby optima
        bounds = [(None, None)] + [(lo if np.isfinite(lo) else None, None) for lo in lower[others]]
        res = optimize.minimize(f, warm["x"], method="L-BFGS-B", bounds=bounds,
                                options={"ftol": 1e-11, "gtol": 1e-6, "maxiter": 500})
        warm["x"] = np.asarray(res.x, float)
        return float(res.fun)

    crit = stats.chi2.ppf(level, 1)

    def excess(s: float) -> float:
        return dev_at(s) - dev_min - crit

    # upper end: grow s until the deviance has risen by the critical value
    hi = max(s_hat, 0.05 * sigma_hat) * 2.0
    while excess(hi) < 0 and hi < 1e4 * (sigma_hat + s_hat):
        hi *= 2.0
    upper = optimize.brentq(excess, s_hat, hi, xtol=1e-6 * hi) if excess(hi) > 0 else math.inf
    lower_end = 0.0
    if s_hat > 0 and excess(0.0) > 0:
        lower_end = optimize.brentq(excess, 0.0, s_hat, xtol=1e-6 * max(s_hat, 1e-12))
    top = upper if math.isfinite(upper) else hi
    grid = np.unique(np.concatenate([np.linspace(0.0, top * 1.3, points), [s_hat]]))
    dev = np.array([dev_at(float(s)) for s in grid])
    delta = np.maximum(dev - dev_min, 0.0)
    zeta = np.sign(grid - s_hat) * np.sqrt(delta)
    table = pd.DataFrame({"sd": grid, "deviance": dev, "delta": delta, "zeta": zeta})
    mf = fit.extras["model_frame"]
    n_groups = mf.blocks[block].n_levels
    r_call = (fit.r_call.rstrip() + "\npr <- profile(fit)\n"
              "lattice::xyplot(pr)   # zeta against each SD\n"
              f"confint(pr, level = {level})   # = confint(fit, method = \"profile\")")
    return SDProfile(term=label, estimate=s_hat, conf_low=lower_end, conf_high=upper, level=level,
                     table=table, singular=bool(fit.singular), n_groups=n_groups,
                     r_call=r_call)
