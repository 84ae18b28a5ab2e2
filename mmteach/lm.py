"""Pooled linear models and t-tests: the analyses that ignore the clustering.

These are the "wrong analyses" of the lecture (they treat every cell as independent) and
the slides' honest alternatives (mouse as a fixed effect, separate fits per mouse).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pandas as pd
from scipy import stats

from mmteach.errors import DataError
from mmteach.formula import Formula, Term, Variable, parse_formula
from mmteach.model_frame import ModelFrame, build_model, factor_codes
from mmteach.results import FitResult, PerGroupResult, VarComp, coef_rows, r_data_prep


def _as_formula(data: pd.DataFrame, formula: str | Formula) -> Formula:
    if isinstance(formula, Formula):
        return formula
    return parse_formula(formula, [str(c) for c in data.columns])


def ols(mf: ModelFrame) -> dict[str, object]:
    """Ordinary least squares on a model frame: beta, vcov, sigma, residual df."""
    X, y = mf.X, mf.y
    n, p = X.shape
    if n <= p:
        raise DataError(
            f"A linear model with {p} coefficients needs more than {p} rows, but only {n} "
            "remain. Add data or remove predictors."
        )
    q, r = np.linalg.qr(X)
    beta = np.linalg.solve(r, q.T @ y)
    resid = y - X @ beta
    df = n - p
    sigma2 = float(resid @ resid) / df
    rinv = np.linalg.inv(r)
    vcov = sigma2 * (rinv @ rinv.T)
    return {"beta": beta, "vcov": vcov, "sigma": math.sqrt(sigma2), "df": df, "resid": resid}


def fit_lm(
    data: pd.DataFrame, formula: str | Formula, *, factors: Sequence[str] = ()
) -> FitResult:
    """Fit a pooled linear model by ordinary least squares, as R's ``lm``.

    Random-effect terms in the formula are ignored: this is the pooled analysis that treats
    every row as independent.

    Parameters
    ----------
    data : DataFrame
    formula : str
        e.g. ``"res ~ treatment_idx"``.
    factors : sequence of str
        Numeric columns to treat as factors.

    Returns
    -------
    FitResult
        ``extras`` holds ``sigma`` (residual SE), ``r_squared``, ``f_statistic``,
        ``f_df`` and ``f_p_value``.

    Examples
    --------
    >>> d = pd.DataFrame({"y": [1.0, 2.1, 2.9, 4.2, 5.1], "x": [1, 2, 3, 4, 5]})
    >>> round(fit_lm(d, "y ~ x").coef("x").estimate, 3)
    1.03
    """
    parsed = _as_formula(data, formula)
    pooled = parsed.without_random()
    messages: list[str] = []
    if parsed.has_random:
        messages.append(
            "The random-effect terms were left out: this linear model pools all rows as if "
            "they were independent."
        )
    mf = build_model(data, pooled, factors=factors)
    messages += mf.messages
    fit = ols(mf)
    beta, vcov, sigma, df = fit["beta"], fit["vcov"], fit["sigma"], fit["df"]
    se = np.sqrt(np.diag(vcov))  # type: ignore[call-overload]
    n, p = mf.X.shape
    resid = fit["resid"]
    rss = float(resid @ resid)  # type: ignore[operator]
    loglik = -0.5 * n * (math.log(2 * math.pi * rss / n) + 1)
    k = p + 1
    extras: dict[str, object] = {"sigma": sigma, "vcov": vcov, "residual_df": df}
    has_int = "(Intercept)" in mf.fixed_names
    tss = float(np.sum((mf.y - mf.y.mean()) ** 2)) if has_int else float(mf.y @ mf.y)
    if tss > 0:
        extras["r_squared"] = 1 - rss / tss
        df_model = p - 1 if has_int else p
        if df_model > 0:
            f = ((tss - rss) / df_model) / (rss / df)  # type: ignore[operator]
            extras.update(f_statistic=f, f_df=(df_model, df), f_p_value=stats.f.sf(f, df_model, df))
    factor_cols = [c for c in factors if c in pooled.variables()]
    r_call = r_data_prep("d", factor_cols) + f"fit <- lm({pooled.to_r()}, data = d)\nsummary(fit)"
    return FitResult(
        model="lm",
        formula=pooled.to_r(),
        method="OLS",
        df_method="residual",
        coefficients=coef_rows(mf.fixed_names, beta, se, df),  # type: ignore[arg-type]
        n_obs=n,
        varcomps=(VarComp("Residual", "", sigma**2, sigma),),  # type: ignore[operator]
        loglik=loglik,
        deviance=rss,
        aic=-2 * loglik + 2 * k,
        bic=-2 * loglik + math.log(n) * k,
        messages=tuple(messages),
        r_call=r_call,
        extras=extras,
    )


def fit_fixed_group(
    data: pd.DataFrame, formula: str | Formula, *, factors: Sequence[str] = ()
) -> FitResult:
    """Mouse as a fixed effect: each random intercept ``(1 | g)`` becomes a fixed factor ``g``.

    The slides' alternative for few animals. Random slopes are dropped (noted in messages).

    Examples
    --------
    >>> d = pd.DataFrame({"y": [1.0, 2, 3, 4, 2, 3], "t": [1, 2, 1, 2, 1, 2], "m": [1, 1, 2, 2, 3, 3]})
    >>> fit_fixed_group(d, "y ~ t + (1 | m)", factors=["t"]).tidy().term.tolist()
    ['(Intercept)', 't2', 'm2', 'm3']
    """
    parsed = _as_formula(data, formula)
    groups: list[str] = []
    notes: list[str] = []
    for r in parsed.random:
        if len(r.group) == 1 and r.group[0] not in groups:
            groups.append(r.group[0])
        if r.terms:
            notes.append(f"The random slopes in ({r.label}) are not part of this fixed-effect model.")
        if len(r.group) > 1:
            notes.append(f"The nested grouping {r.group_label} is not turned into fixed effects.")
    have = {t.key() for t in parsed.fixed}
    fixed = list(parsed.fixed) + [
        Term((Variable(g),)) for g in groups if frozenset({(g, False)}) not in have
    ]
    new = Formula(parsed.text, parsed.response, tuple(fixed), parsed.intercept, ())
    result = fit_lm(data, new, factors=tuple(factors) + tuple(groups))
    r_call = result.r_call
    return replace(
        result,
        model="lm_fixed_group",
        messages=tuple(notes) + result.messages,
        r_call=r_call,
    )


def fit_per_group(
    data: pd.DataFrame, formula: str | Formula, group: str, *, factors: Sequence[str] = ()
) -> pd.DataFrame:
    """Separate pooled fits within each level of ``group`` (one LM per mouse).

    Returns a :class:`~mmteach.results.PerGroupResult`: its ``tidy()`` has the rows of every
    fit with a ``group`` column first and a ``note`` column that says why a mouse could not
    be fitted (too few cells, a level missing), if so.

    Examples
    --------
    >>> d = pd.DataFrame({"y": [1.0, 2, 3, 4, 2, 3, 5, 4], "t": [1, 2, 1, 2] * 2, "m": [1] * 4 + [2] * 4})
    >>> fit_per_group(d, "y ~ t", "m", factors=["t"])[["group", "term"]].values.tolist()
    [['1', '(Intercept)'], ['1', 't2'], ['2', '(Intercept)'], ['2', 't2']]
    """
    from mmteach.errors import MMTeachError

    if group not in data.columns:
        raise DataError(f"The grouping column {group!r} is not in the data.")
    parsed = _as_formula(data, formula).without_random()
    sub = data[data[group].notna()]
    codes, levels = factor_codes(sub[group])
    fits: list[tuple[str, FitResult | None, str]] = []
    for k, level in enumerate(levels):
        part = sub[codes == k]
        try:
            fits.append((level, fit_lm(part, parsed, factors=factors), ""))
        except MMTeachError as err:
            fits.append((level, None, str(err)))
    used = [f for f in factors if f in parsed.variables()]
    r_call = (r_data_prep("d", used)
              + f"fits <- by(d, d${group}, function(s) lm({parsed.to_r()}, data = s))\nlapply(fits, summary)")
    return PerGroupResult(formula=parsed.to_r(), group=group, fits=tuple(fits), r_call=r_call).tidy()


def t_test(
    data: pd.DataFrame,
    response: str,
    group: str,
    *,
    kind: str = "pooled",
    pair: str | None = None,
) -> FitResult:
    """Two-sample (pooled or Welch) or paired t-test between the two levels of ``group``.

    The estimate is mean(level 2) - mean(level 1), the same sign as the LM coefficient
    (R's ``t.test(y ~ g)`` prints level 1 minus level 2; the p-value is the same).

    Parameters
    ----------
    kind : {"pooled", "welch", "paired"}
    pair : str, optional
        For ``kind="paired"``, the column identifying the pairs (e.g. the cell id).

    Examples
    --------
    >>> d = pd.DataFrame({"y": [1.0, 2, 3, 2, 3, 5], "g": [1, 1, 1, 2, 2, 2], "c": [1, 2, 3, 1, 2, 3]})
    >>> round(t_test(d, "y", "g", kind="paired", pair="c").coef("g2").estimate, 3)
    1.333
    """
    for col in (response, group) + ((pair,) if pair else ()):
        if col not in data.columns:
            raise DataError(f"The column {col!r} is not in the data.")
    if kind not in ("pooled", "welch", "paired"):
        raise DataError(f"Unknown t-test kind {kind!r}; use pooled, welch or paired.")
    cols = [response, group] + ([pair] if pair else [])
    d = data[cols].dropna()
    if not pd.api.types.is_numeric_dtype(d[response]):
        raise DataError(f"The response {response!r} must be numeric for a t-test.")
    codes, levels = factor_codes(d[group])
    if len(levels) != 2:
        raise DataError(
            f"A t-test compares exactly two groups, but {group!r} has {len(levels)} levels "
            f"({', '.join(levels[:6])})."
        )
    term = f"{group}{levels[1]}"
    y = d[response].to_numpy(dtype=float)
    a, b = y[codes == 0], y[codes == 1]
    if kind == "paired":
        if pair is None:
            raise DataError("A paired t-test needs the column that identifies the pairs (e.g. cidx).")
        wide = d.assign(_lvl=codes).pivot_table(index=pair, columns="_lvl", values=response, aggfunc="mean")
        wide = wide.dropna()
        if len(wide) < 2:
            raise DataError("A paired t-test needs at least two complete pairs.")
        diff = (wide[1] - wide[0]).to_numpy()
        est, se, df = diff.mean(), diff.std(ddof=1) / math.sqrt(len(diff)), len(diff) - 1
        r_call = f"t.test(res2, res1, paired = TRUE)  # the two measurements of each {pair}"
        n_obs = 2 * len(diff)
    else:
        if len(a) < 2 or len(b) < 2:
            raise DataError("Each group needs at least two values for a t-test.")
        est = b.mean() - a.mean()
        va, vb = a.var(ddof=1), b.var(ddof=1)
        if kind == "pooled":
            df = len(a) + len(b) - 2
            sp2 = ((len(a) - 1) * va + (len(b) - 1) * vb) / df
            se = math.sqrt(sp2 * (1 / len(a) + 1 / len(b)))
            r_call = f"t.test({response} ~ {group}, data = d, var.equal = TRUE)"
        else:
            se = math.sqrt(va / len(a) + vb / len(b))
            df = (va / len(a) + vb / len(b)) ** 2 / (
                (va / len(a)) ** 2 / (len(a) - 1) + (vb / len(b)) ** 2 / (len(b) - 1)
            )
            r_call = f"t.test({response} ~ {group}, data = d)  # Welch"
        n_obs = len(a) + len(b)
    if se == 0:
        raise DataError("All differences are identical; the t statistic is undefined.")
    return FitResult(
        model="ttest",
        formula=f"{response} ~ {group}",
        method={"pooled": "two-sample t (equal variances)", "welch": "Welch two-sample t",
                "paired": "paired t"}[kind],
        df_method="welch" if kind == "welch" else "residual",
        coefficients=coef_rows([term], np.array([est]), np.array([se]), df),
        n_obs=n_obs,
        messages=("Estimate = mean of level 2 minus mean of level 1 (R's t.test prints level 1 minus level 2).",),
        r_call=r_call,
    )
