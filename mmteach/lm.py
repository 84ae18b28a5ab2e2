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
from mmteach.formula import Formula, RandomTerm, Term, Variable, parse_formula, quote_name
from mmteach.model_frame import ModelFrame, aliased_message, build_model, factor_codes
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
    if rss <= 1e-20 * float(mf.y @ mf.y):
        raise DataError(
            "The predictors reproduce the response exactly (every residual is 0), so the "
            "standard errors would be 0 and every test meaningless. Check that the response is "
            "not computed from one of the predictors.")
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
    >>> d = pd.DataFrame({"y": [1.0, 2.5, 3, 4, 2, 3.5], "t": [1, 2, 1, 2, 1, 2], "m": [1, 1, 2, 2, 3, 3]})
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
    in_fixed = {v.name for t in parsed.fixed for v in t.variables}
    if len(groups) == 1 and parsed.intercept and groups[0] not in in_fixed:
        # the usual case, y ~ x + (1 | mouse): a sweep whose cost is linear in the mice
        result = _fit_within(data, parsed, new, groups[0], tuple(factors))
    else:
        result = fit_lm(data, new, factors=tuple(factors) + tuple(groups))
    return replace(result, model="lm_fixed_group", messages=tuple(notes) + result.messages)


def _fit_within(data: pd.DataFrame, parsed: Formula, full: Formula, group: str,
                factors: tuple[str, ...]) -> FitResult:
    """``lm(y ~ x + factor(g))`` without building the n x groups indicator columns.

    By Frisch-Waugh-Lovell the within-group slopes come from the group-centred columns;
    the group effects and the columns constant within groups (a mouse-level treatment)
    follow from the group means. Columns R would drop as aliased are found as R finds them:
    the fixed columns first, then each group indicator in level order if it lies in the
    span of those before it. Time and memory are O(n p^2 + groups p^2), not O(n groups^2).
    Same numbers as :func:`fit_lm` on the dense design (tested).
    """
    frame_formula = Formula(parsed.text, parsed.response, parsed.fixed, True,
                            (RandomTerm((), True, (group,)),))
    mf = build_model(data, frame_formula, factors=factors)
    W, y, codes = mf.X, mf.y, mf.blocks[0].codes
    n, p = W.shape
    levels = mf.blocks[0].levels
    G = len(levels)
    n_g = np.bincount(codes, minlength=G).astype(float)
    M = np.column_stack([np.bincount(codes, W[:, j], minlength=G) for j in range(p)]) / n_g[:, None]
    ybar = np.bincount(codes, y, minlength=G) / n_g
    Wt, yt = W - M[codes], y - ybar[codes]
    # within-group part: rank-truncated least squares on unit-length columns
    scale = np.linalg.norm(W, axis=0)
    U, sv, Vt = np.linalg.svd(Wt / scale, full_matrices=False)
    keep = sv > 1e-7 * max(1.0, sv[0] if sv.size else 1.0)
    Ur, Sr, Vr = U[:, keep], sv[keep], Vt[keep].T
    gamma = (Vr @ ((Ur.T @ yt) / Sr)) / scale
    Pg = (Vr / Sr) / scale[:, None]  # Var(gamma) = sigma^2 Pg Pg'
    N = Vt[~keep].T / scale[:, None]  # combinations of the columns constant within groups
    MN = M @ N  # their values per group (the intercept among them)
    r = MN.shape[1]
    dropped_levels = _aliased_levels(MN)
    if len(dropped_levels) != r - 1:  # a borderline rank the two tolerances read differently
        return fit_lm(data, full, factors=factors + (group,))
    rows_r = np.array([0, *dropped_levels], dtype=int)
    kept_levels = np.setdiff1d(np.arange(1, G), rows_r[1:])
    H = np.linalg.inv(MN[rows_r])
    z = ybar - M @ gamma
    t = H @ z[rows_r]
    beta = gamma + N @ t
    C = MN[kept_levels] @ H
    alpha = z[kept_levels] - C @ z[rows_r]
    p_total = p + len(kept_levels)
    if n <= p_total:
        raise DataError(
            f"A linear model with {p_total} coefficients needs more than {p_total} rows, but only "
            f"{n} remain. Add data or remove predictors.")
    resid = yt - Wt @ gamma
    rss = float(resid @ resid)
    if rss <= 1e-20 * float(y @ y):
        raise DataError(
            "The predictors and the groups reproduce the response exactly (every residual is 0), "
            "so the standard errors would be 0 and every test meaningless. Check that each group "
            "has more than one row and that the response is not computed from a predictor.")
    df = n - p_total
    sigma2 = rss / df
    Lb = np.eye(p) - N @ H @ M[rows_r]
    Vg = Pg @ Pg.T
    NH = N @ H
    V_beta = sigma2 * (Lb @ Vg @ Lb.T + (NH / n_g[rows_r]) @ NH.T)
    A = M[kept_levels] - C @ M[rows_r]
    var_alpha = sigma2 * (1 / n_g[kept_levels] + np.einsum("ij,jk,ik->i", A, Vg, A)
                          + (C**2) @ (1 / n_g[rows_r]))
    names = list(mf.fixed_names) + [f"{quote_name(group)}{levels[k]}" for k in kept_levels]
    est = np.concatenate([beta, alpha])
    se = np.sqrt(np.concatenate([np.diag(V_beta), var_alpha]))
    aliased = list(mf.aliased) + [f"{quote_name(group)}{levels[k]}" for k in dropped_levels]
    messages = [m for m in mf.messages if not m.startswith("The fixed-effect columns ")]
    if aliased:
        messages.append(aliased_message(aliased))
    if r and not np.isfinite(est).all():
        raise DataError("The mouse-as-fixed-effect model could not be solved with these data.")
    loglik = -0.5 * n * (math.log(2 * math.pi * rss / n) + 1)
    k = p_total + 1
    tss = float(np.sum((y - y.mean()) ** 2))
    extras: dict[str, object] = {"sigma": math.sqrt(sigma2), "vcov": V_beta, "residual_df": df,
                                 "r_squared": 1 - rss / tss}
    if p_total > 1:
        f = ((tss - rss) / (p_total - 1)) / sigma2
        extras.update(f_statistic=f, f_df=(p_total - 1, df), f_p_value=stats.f.sf(f, p_total - 1, df))
    factor_cols = [c for c in (*factors, group) if c in full.variables()]
    return FitResult(
        model="lm",
        formula=full.to_r(),
        method="OLS",
        df_method="residual",
        coefficients=coef_rows(names, est, se, df),
        n_obs=n,
        varcomps=(VarComp("Residual", "", sigma2, math.sqrt(sigma2)),),
        loglik=loglik,
        deviance=rss,
        aic=-2 * loglik + 2 * k,
        bic=-2 * loglik + math.log(n) * k,
        messages=tuple(messages),
        r_call=r_data_prep("d", list(dict.fromkeys(factor_cols)))
        + f"fit <- lm({full.to_r()}, data = d)\nsummary(fit)",
        extras=extras,
    )


def _aliased_levels(MN: np.ndarray) -> list[int]:
    """Group levels (1..G-1) whose indicator R drops as aliased, given the group-level values
    ``MN`` of the column combinations that are constant within groups (intercept included).

    Indicator k is aliased when some such combination is 0 for the reference level, non-zero
    at k and 0 at every later level: the pivots of an elimination from the last level back.
    """
    G, r = MN.shape
    if r <= 1:
        return []
    j0 = int(np.argmax(np.abs(MN[0])))
    others = [j for j in range(r) if j != j0]
    B0 = (MN[:, others] - np.outer(MN[:, j0], MN[0, others] / MN[0, j0])).T.copy()
    tol = 1e-8 * max(1.0, float(np.abs(B0).max()))
    pivots: list[int] = []
    remaining = list(range(B0.shape[0]))
    for col in range(G - 1, 0, -1):
        if not remaining:
            break
        i = max(remaining, key=lambda i: abs(B0[i, col]))
        if abs(B0[i, col]) <= tol:
            continue
        pivots.append(col)
        remaining.remove(i)
        for k in remaining:
            B0[k] -= B0[i] * (B0[k, col] / B0[i, col])
    return sorted(pivots)


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
    if sub.empty:
        raise DataError(f"The grouping column {group!r} has no values, so there are no groups to fit.")
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
