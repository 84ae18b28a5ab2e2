"""Partial pooling: per mouse its own estimate, its LME conditional estimate, the pooled one, and the shrinkage.

For an LME with one grouping factor ``g`` and random terms ``Z`` (``(1 | g)`` or
``(1 + x | g)``), the conditional mode of mouse ``i`` is exactly a weighted version of what the
mouse alone says:

    own_i  = (Z_i'Z_i)^-1 Z_i'(y_i - X_i beta)             (the mouse's own fit, fixed effects held)
    b_i    = W_i own_i,   W_i = Sigma (Sigma + sigma^2 (Z_i'Z_i)^-1)^-1

With a random intercept only, ``W_i = sigma_b^2 / (sigma_b^2 + sigma^2 / n_i)``: a mouse with
few cells (small ``n_i``) is pulled further towards the population value.  The conditional
variance is lme4's ``ranef(fit, condVar = TRUE)``: ``sigma^2 Lambda_i (Lambda_i' Z_i'Z_i
Lambda_i + I)^-1 Lambda_i'`` (given beta, as lme4 reports it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mmteach.errors import ModelError
from mmteach.results import FitResult

__all__ = ["PoolingResult", "partial_pooling"]


@dataclass(frozen=True, eq=False)
class PoolingResult:
    """Per-mouse estimates of the random terms (see :func:`partial_pooling`).

    ``table`` has one row per mouse and term: ``group, level, term, n, own, lme, pooled,
    population, ranef, cond_sd, weight``; ``covariance`` is the fitted random-effect
    covariance ``Sigma`` (k x k) in the order of ``terms``.
    """

    group: str
    terms: tuple[str, ...]
    table: pd.DataFrame
    covariance: np.ndarray
    sigma: float
    population: np.ndarray  # fixed-effect values of the random terms (beta_Z)
    pooled: np.ndarray  # the pooled LM's values of the random terms (complete pooling)
    r_call: str

    def tidy(self) -> pd.DataFrame:
        return self.table

    def glance(self) -> pd.DataFrame:
        t = self.table[self.table["term"] == self.terms[0]]
        return pd.DataFrame([{"group": self.group, "levels": len(t), "terms": len(self.terms),
                              "sigma": self.sigma, "min_weight": float(t["weight"].min()),
                              "max_weight": float(t["weight"].max())}])

    def r_code(self) -> str:
        return self.r_call

    def sentence(self) -> str:
        """Which mouse is pulled most and why, computed from the table."""
        t = self.table[self.table["term"] == self.terms[0]].dropna(subset=["weight"])
        if t.empty:
            return "No mouse has enough cells for its own estimate."
        lo = t.loc[t["weight"].idxmin()]
        hi = t.loc[t["weight"].idxmax()]
        what = "intercept" if self.terms[0] == "(Intercept)" else self.terms[0]
        if self.covariance[0, 0] <= 1e-12:
            return ("The fitted mouse variance is zero, so every mouse is pulled all the way to the "
                    "population value (weight 0): the LME treats the mice as identical.")
        out = (f"Mouse {lo['level']} ({int(lo['n'])} cells) keeps {lo['weight']:.0%} of its own "
               f"{what} deviation and is pulled most towards the population; mouse {hi['level']} "
               f"({int(hi['n'])} cells) keeps {hi['weight']:.0%}.")
        if len(self.terms) == 1:
            out += (" The weight is σb² / (σb² + σ² / n): with "
                    f"σb = {math.sqrt(self.covariance[0, 0]):.3g} and σ = {self.sigma:.3g}, "
                    "fewer cells mean a smaller weight.")
        return out


# duplicates: its docstring repeats profile_sd's layout and doctest set-up on purpose: each doctest runs alone
def partial_pooling(fit: FitResult) -> PoolingResult:
    """Own, partially pooled and pooled estimates per mouse from an :func:`mmteach.lme.fit_lme` result.

    Needs an LME with exactly one random-effects term, e.g. ``(1 | midx)`` or
    ``(1 + treatment | midx)``.

    Examples
    --------
    >>> from mmteach.datasets import load_dataset
    >>> from mmteach.lme import fit_lme
    >>> d = load_dataset("ca_amplitude")
    >>> pp = partial_pooling(fit_lme(d, "res ~ treatment + (1 | midx)", factors=["treatment"]))
    >>> bool((pp.table["weight"].between(0, 1)).all())
    True
    """
    mf = fit.extras.get("model_frame") if fit.model == "lme" else None
    lf = fit.extras.get("lmefit")
    if mf is None or lf is None:
        raise ModelError("The partial-pooling view needs a linear mixed model (LME) fit; fit one "
                         "with a random effect per mouse first.")
    if len(mf.blocks) != 1:
        raise ModelError("The partial-pooling view shows models with one random-effects term per "
                         "mouse, such as (1 | mouse) or (1 + treatment | mouse); this model has "
                         f"{len(mf.blocks)} terms. Choose the random intercept (or intercept + "
                         "slope) structure to see the shrinkage.")
    block = mf.blocks[0]
    k = block.n_terms
    X, y = np.asarray(mf.X, float), np.asarray(mf.y, float)
    beta = np.asarray(lf.beta, float)
    names = list(mf.fixed_names)
    sigma = float(lf.sigma)
    T = lf.problem.block_T(lf.theta, 0)
    cov = sigma**2 * (T @ T.T)
    # the fixed-effect (population) value of each random term, and the pooled LM's
    pooled_beta = np.linalg.lstsq(X, y, rcond=None)[0]
    pos = [names.index(t) if t in names else -1 for t in block.terms]
    pop = np.array([beta[i] if i >= 0 else 0.0 for i in pos])
    pooled = np.array([pooled_beta[i] if i >= 0 else 0.0 for i in pos])
    resid = y - X @ beta
    Z = np.asarray(block.Z, float)
    codes = np.asarray(block.codes)
    modes = lf.ranef()[0]
    rows: list[dict[str, Any]] = []
    for li, lev in enumerate(block.levels):
        sel = codes == li
        Zi, ri = Z[sel], resid[sel]
        ztz = Zi.T @ Zi
        # lme4's condVar: sigma^2 T (T' Z'Z T + I)^-1 T'
        cvar = sigma**2 * T @ np.linalg.solve(T.T @ ztz @ T + np.eye(k), T.T)
        full_rank = np.linalg.matrix_rank(ztz) == k
        if full_rank:
            own = np.linalg.solve(ztz, Zi.T @ ri)
            W = cov @ np.linalg.inv(cov + sigma**2 * np.linalg.inv(ztz))
            weights = np.diag(W)
        else:  # e.g. a mouse seen under one condition only: it has no slope of its own
            own = np.full(k, np.nan)
            weights = np.full(k, np.nan)
        for j, term in enumerate(block.terms):
            rows.append({"group": block.group, "level": lev, "term": term, "n": int(sel.sum()),
                         "own": pop[j] + own[j], "lme": pop[j] + modes[li, j], "pooled": pooled[j],
                         "population": pop[j], "ranef": modes[li, j],
                         "cond_sd": math.sqrt(max(cvar[j, j], 0.0)), "weight": weights[j]})
    r_call = (fit.r_call.rstrip() + "\nranef(fit, condVar = TRUE)   # conditional modes; "
              "attr(, 'postVar') holds the conditional variances\ncoef(fit)   # fixed + conditional mode")
    return PoolingResult(group=block.group, terms=tuple(block.terms), table=pd.DataFrame(rows),
                         covariance=cov, sigma=sigma, population=pop, pooled=pooled, r_call=r_call)
