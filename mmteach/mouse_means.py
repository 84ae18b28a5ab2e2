"""The summary-statistics analysis: one mean per mouse (and condition), then a t-test / ANOVA on those means.

Within-mouse designs (every mouse seen under several conditions, Examples 2 and 3) average each
mouse's cells per condition and fit ``lm(mean ~ condition + mouse)`` on the means: the
repeated-measures ANOVA (for two conditions, the paired t-test).  Between-mouse designs (each
mouse in one condition) fit ``lm(mean ~ condition)``: the t-test / one-way ANOVA of the mouse
means.  :func:`mouse_means_sentence` says, from the numbers, when this equals the LME.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from mmteach.errors import DataError
from mmteach.formula import quote_name
from mmteach.lm import fit_lm
from mmteach.results import FitResult

__all__ = ["mouse_means_table", "fit_mouse_means", "mouse_means_sentence", "is_balanced"]


def _check(data: pd.DataFrame, cols: Sequence[str]) -> None:
    missing = [c for c in cols if c not in data.columns]
    if missing:
        raise DataError(f"There is no column {missing[0]!r} in the data, so the mouse means cannot "
                        "be formed; choose the response, condition and mouse columns.")


def mouse_means_table(data: pd.DataFrame, response: str, condition: str, group: str) -> pd.DataFrame:
    """One row per mouse and condition: the mean response and the number of cells averaged."""
    _check(data, (response, condition, group))
    d = data[[response, condition, group]].dropna()
    if d.empty:
        raise DataError("No rows are left after dropping missing values, so there are no means.")
    out = (d.groupby([group, condition], sort=True, observed=True)[response]
           .agg(["mean", "size"]).reset_index())
    return out.rename(columns={"mean": response, "size": "cells"})


def _within(data: pd.DataFrame, condition: str, group: str) -> bool:
    """True when some mouse is seen under more than one condition."""
    return bool((data.groupby(group, observed=True)[condition].nunique() > 1).any())


def fit_mouse_means(data: pd.DataFrame, response: str, condition: str, group: str) -> FitResult:
    """Summary-statistics analysis on per-mouse means (the condition effects, as ``lm`` contrasts).

    Within-mouse: ``lm(mean ~ condition + mouse)`` on the mouse x condition means (repeated-
    measures ANOVA; the paired t-test for two conditions).  Between-mouse:
    ``lm(mean ~ condition)`` on one mean per mouse (t-test / one-way ANOVA).  The condition and
    mouse columns are treated as factors.

    Examples
    --------
    >>> from mmteach.datasets import load_dataset
    >>> fit = fit_mouse_means(load_dataset("ca_amplitude"), "res", "treatment", "midx")
    >>> fit.coef("treatment2").df                     # 11 mice: paired t on 10 df
    10.0
    """
    means = mouse_means_table(data, response, condition, group)
    if means[condition].nunique() < 2:
        raise DataError("Only one condition is left, so the mouse means have nothing to compare.")
    within = _within(data, condition, group)
    # names quoted (backticks where needed): any column name, e.g. "amplitude (µV)", round-trips
    y, x, g = quote_name(response), quote_name(condition), quote_name(group)
    formula = f"{y} ~ {x} + {g}" if within else f"{y} ~ {x}"
    fit = fit_lm(means, formula, factors=[condition, group] if within else [condition])
    if not np.isfinite(fit.extras.get("residual_df", np.nan)) or fit.extras["residual_df"] < 1:
        raise DataError("There are too few mice to test the mouse means: every mean is fitted "
                        "exactly, so no variation is left to judge the condition effect. Add mice.")
    how = ("means per mouse and condition, lm(mean ~ condition + mouse): repeated-measures ANOVA"
           if within else "one mean per mouse, lm(mean ~ condition): t-test / one-way ANOVA")
    r = (f"m <- aggregate({y} ~ {x} + {g}, data = d, FUN = mean)\n"
         f"m${x} <- factor(m${x}); m${g} <- factor(m${g})\n"
         f"fit <- lm({formula}, data = m)\nsummary(fit)")
    return FitResult(
        model="mouse_means", formula=formula, method="OLS on mouse means", df_method="residual",
        coefficients=tuple(c for c in fit.coefficients if not c.term.startswith(group)),
        n_obs=len(means), varcomps=fit.varcomps, loglik=fit.loglik, deviance=fit.deviance,
        aic=fit.aic, bic=fit.bic, messages=(f"Summary statistics: {how}.",), r_call=r,
        extras={**fit.extras, "means": means, "within": within},
    )


def _counts(data: pd.DataFrame, group: str, condition: str) -> np.ndarray:
    """Rows per mouse and condition: ``pd.crosstab(data[group], data[condition])``'s values
    (rows with a missing label left out), from two factorizations and one bincount instead
    of crosstab's pivot (~6 ms, twice in every data state's sentence)."""
    g, _ = pd.factorize(data[group], sort=True)
    c, levels = pd.factorize(data[condition], sort=True)
    ok = (g >= 0) & (c >= 0)
    if not ok.all():  # crosstab keeps only the levels of complete rows
        g, _ = pd.factorize(data[group][ok], sort=True)
        c, levels = pd.factorize(data[condition][ok], sort=True)
    n_c = len(levels)
    return np.bincount(g * n_c + c, minlength=(g.max(initial=-1) + 1) * n_c).reshape(-1, n_c)


def is_balanced(data: pd.DataFrame, condition: str, group: str) -> bool:
    """Every mouse has the same number of cells under every condition it is seen in (and, within
    mice, is seen under every condition)."""
    counts = _counts(data, group, condition)
    if _within(data, condition, group):
        return bool((counts == counts[0, 0]).all())
    nz = counts[counts > 0]
    return bool(nz.size and (nz == nz[0]).all())


def mouse_means_sentence(means_fit: FitResult, lme_fit: FitResult | None, data: pd.DataFrame,
                         condition: str, group: str, term: str, term_label: str = "") -> str:
    """When the mouse-means analysis equals the LME, computed from the data and the two fits."""
    label = term_label or term
    try:
        mm = means_fit.coef(term)
    except (KeyError, ValueError):
        return f"The mouse means give no {label} estimate (that condition has no means)."
    balanced = is_balanced(data, condition, group)
    counts = _counts(data, group, condition)
    lo, hi = int(counts[counts > 0].min()), int(counts.max())
    head = (f"The mouse means estimate {label} as {mm.estimate:.3g} (SE {mm.std_error:.3g}, "
            f"p {mm.p_value:.2g}).")
    if lme_fit is None:
        return head + " No LME was fitted to compare with."
    try:
        lm_ = lme_fit.coef(term)
    except (KeyError, ValueError):
        return head + " The LME has no estimate for this term to compare with."
    same_est = abs(lm_.estimate - mm.estimate) <= 1e-6 * max(1.0, abs(mm.estimate))
    comp = (f" The LME gives {lm_.estimate:.3g} (SE {lm_.std_error:.3g}, p {lm_.p_value:.2g}).")
    if balanced:
        why = (f"Every mouse has {hi} cells under every condition (balanced), so each mouse "
               "mean carries the same weight and " +
               ("the estimates agree" if same_est else
                f"the estimates would agree for the random-intercept model; here they differ by "
                f"{abs(lm_.estimate - mm.estimate):.2g} because the LME's random-effects structure "
                "weighs the mice differently") +
               "; the SEs agree only when the LME also lets the condition effect vary between "
               "mice (the means analysis uses the mouse-by-condition spread as its error).")
    else:
        empty = int((counts == 0).sum()) if _within(data, condition, group) else 0
        gaps = (f"; {empty} of {counts.size} mouse-condition combinations have no cells, so those "
                "mice compare only the conditions they have" if empty else "")
        cells = "cell" if lo == 1 else "cells"
        why = (f"Cells per mouse and condition range from {lo} to {hi} (unbalanced{gaps}): the mean of "
               f"{lo} {cells} counts as much as the mean of {hi} in the means analysis, while the LME "
               f"weighs each mouse by how much its cells say, so the two differ by "
               f"{abs(lm_.estimate - mm.estimate):.2g} in the estimate.")
    return head + comp + " " + why
