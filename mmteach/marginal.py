"""Alternatives to the GLMM on the same binary or count data, in FitResult form.

* :func:`fit_glm` - the pooled GLM that ignores the mice (what *not* to do: its standard
  errors treat every trial as independent).
* :func:`fit_gee` - a GEE with an exchangeable working correlation and robust (sandwich)
  standard errors: a population-averaged effect that accounts for clustering.
* :func:`proportion_t_test` - the naive-but-honest route: reduce each mouse to one number
  and run a t-test across mice.

The Bayesian GLMM is in :mod:`mmteach.bayes`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from mmteach.errors import DataError, ModelError
from mmteach.families import check_family, check_response, family_r
from mmteach.formula import Formula, parse_formula
from mmteach.model_frame import ModelFrame, build_model
from mmteach.results import Coef, FitResult, r_data_prep


def _formula(data: pd.DataFrame, formula: str | Formula) -> Formula:
    if isinstance(formula, Formula):
        return formula
    return parse_formula(formula, [str(c) for c in data.columns])


def _sm_family(family: str, link: str):
    import statsmodels.api as sm

    if family == "binomial":
        lk = sm.families.links.Probit() if link == "probit" else sm.families.links.Logit()
        return sm.families.Binomial(link=lk)
    return sm.families.Poisson()


def _endog(mf: ModelFrame, family: str) -> np.ndarray:
    y, trials = check_response(mf, family)
    if family == "binomial" and mf.trials is not None:
        return np.column_stack([y, trials - y])  # statsmodels' (successes, failures)
    return y


def _coefs(names, est, se, df=math.inf) -> tuple[Coef, ...]:
    out = []
    crit = stats.norm.ppf(0.975) if math.isinf(df) else stats.t.ppf(0.975, df)
    for n, b, s in zip(names, est, se):
        z = b / s if s > 0 else math.nan
        p = 2 * (stats.norm.sf(abs(z)) if math.isinf(df) else stats.t.sf(abs(z), df))
        out.append(Coef(n, float(b), float(s), df, float(z), float(p), float(b - crit * s),
                        float(b + crit * s)))
    return tuple(out)


def fit_glm(
    data: pd.DataFrame,
    formula: str | Formula,
    *,
    family: str = "binomial",
    link: str | None = None,
    factors: Sequence[str] = (),
) -> FitResult:
    """Pooled GLM (``glm(...)``): the random-effect terms of the formula are dropped.

    Every trial is treated as independent, so with many trials from few mice the
    standard errors are too small; shown for contrast with the GLMM.

    Examples
    --------
    >>> d = pd.DataFrame({"y": [0, 1, 1, 0, 1, 1], "x": [1., 2, 3, 1, 2, 5],
    ...                   "g": list("aabbcc")})
    >>> fit_glm(d, "y ~ x + (1 | g)").r_call.splitlines()[0]
    'fit <- glm(y ~ x, data = d, family = binomial)'
    """
    import statsmodels.api as sm

    fam, lk = check_family(family, link)
    f = _formula(data, formula).without_random()
    mf = build_model(data, f, factors=factors)
    endog = _endog(mf, fam)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = sm.GLM(endog, mf.X, family=_sm_family(fam, lk)).fit()
    k = mf.X.shape[1]
    ll = float(res.llf)
    n = mf.n_obs
    prep = r_data_prep("d", [c for c in factors if c in f.variables()])
    return FitResult(
        model="glm", formula=mf.formula.text, method="ML (IRLS)", df_method="z",
        coefficients=_coefs(mf.fixed_names, res.params, res.bse), n_obs=n,
        loglik=ll, deviance=float(res.deviance), aic=-2 * ll + 2 * k,
        bic=-2 * ll + math.log(n) * k, converged=bool(res.converged),
        messages=("This pooled GLM treats every row as independent and ignores which "
                  "mouse it came from; its standard errors are too small when rows from "
                  "the same mouse are correlated.",),
        r_call=prep + f"fit <- glm({f.to_r()}, data = d, family = {family_r(fam, lk)})\n"
                      "summary(fit)",
        extras={"vcov": np.asarray(res.cov_params())},
    )


def fit_gee(
    data: pd.DataFrame,
    formula: str | Formula,
    group: str,
    *,
    family: str = "binomial",
    link: str | None = None,
    factors: Sequence[str] = (),
) -> FitResult:
    """GEE with an exchangeable working correlation and robust SEs (``geepack::geeglm``).

    The coefficients are population-averaged (marginal) effects: for a logit link they are
    smaller in size than the GLMM's subject-specific effects. Random-effect terms of the
    formula are ignored; ``group`` names the cluster (e.g. the mouse).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> d = pd.DataFrame({"y": rng.integers(0, 2, 60), "x": rng.normal(size=60),
    ...                   "g": np.repeat(list("abcdef"), 10)})
    >>> fit_gee(d, "y ~ x", "g").method
    'GEE (exchangeable)'
    """
    import statsmodels.api as sm

    fam, lk = check_family(family, link)
    f = _formula(data, formula).without_random()
    if group not in data.columns:
        raise DataError(f"The cluster column '{group}' is not in the data; name the column "
                        "that identifies the mouse (or other cluster).")
    mf = build_model(data, f, factors=factors)
    groups = mf.data[group].astype(str).to_numpy()
    ng = len(np.unique(groups))
    if ng < 2:
        raise DataError("A GEE needs several clusters (mice); this data set has only one.")
    endog = _endog(mf, fam)
    if endog.ndim == 2:
        raise ModelError("fit_gee takes a 0/1 or count response; expand cbind() data to one "
                         "row per trial first.")
    # geepack orders observations by cluster; statsmodels only needs the labels.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = sm.GEE(endog, mf.X, groups=groups, family=_sm_family(fam, lk),
                       cov_struct=sm.cov_struct.Exchangeable())
        # geepack's moment estimators divide by N, not N - p (ddof_scale=0 reproduces
        # geeglm's alpha, estimates and SEs to ~1e-9)
        res = model.fit(ddof_scale=0, ctol=1e-10, maxiter=200)
    alpha = float(model.cov_struct.dep_params)
    prep = r_data_prep("d", [c for c in factors if c in f.variables()])
    msgs = (
        f"Population-averaged (marginal) effects with a working exchangeable correlation "
        f"(alpha = {alpha:.3f}) and robust sandwich SEs from {ng} clusters. With few "
        "clusters robust SEs are too small; treat p-values with caution.",
    )
    return FitResult(
        model="gee", formula=mf.formula.text, method="GEE (exchangeable)", df_method="z",
        coefficients=_coefs(mf.fixed_names, res.params, res.bse), n_obs=mf.n_obs,
        groups=((group, ng),), converged=True, messages=msgs,
        r_call=prep + f"d <- d[order(d${group}), ]\n"
                      f"fit <- geepack::geeglm({f.to_r()}, id = {group}, data = d, "
                      f"family = {family_r(fam, lk)}, corstr = \"exchangeable\")\n"
                      "summary(fit)",
        # geeglm's estimated scale (Pearson chi-square / N); statsmodels fixes it at 1 for
        # binomial and Poisson, which the robust SEs do not use
        extras={"alpha": alpha, "scale": float(np.sum(np.asarray(res.resid_pearson) ** 2) / mf.n_obs),
                "vcov": np.asarray(res.cov_params())},
    )


def proportion_t_test(
    data: pd.DataFrame,
    response: str,
    group: str,
    predictor: str,
) -> FitResult:
    """Paired t-test across mice of per-mouse proportions in high vs low predictor trials.

    For each mouse, trials are split at that mouse's median of ``predictor`` (e.g. dF/F):
    the proportion of ``response == 1`` among trials above the median minus the proportion
    among the others is one number per mouse. A one-sample t-test of these differences
    (df = mice - 1) asks whether the response is more frequent in high-activity trials. It
    ignores trial-level detail but is honest about the sample size: one value per mouse.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> d = pd.DataFrame({"lick": rng.integers(0, 2, 80), "dff": rng.normal(size=80),
    ...                   "m": np.repeat(list("abcd"), 20)})
    >>> proportion_t_test(d, "lick", "m", "dff").coefficients[0].df
    3.0
    """
    for c in (response, group, predictor):
        if c not in data.columns:
            raise DataError(f"The column '{c}' is not in the data.")
    d = data[[response, group, predictor]].dropna()
    y = pd.to_numeric(d[response], errors="coerce")
    if not y.isin([0, 1]).all():
        raise DataError(f"The per-mouse proportion test needs a 0/1 response; '{response}' "
                        "has other values. Code success as 1 and failure as 0.")
    x = pd.to_numeric(d[predictor], errors="coerce")
    if x.isna().any():
        raise DataError(f"The predictor '{predictor}' must be numeric.")
    rows, skipped = [], []
    for g, idx in d.groupby(group, sort=True).groups.items():
        xv, yv = x.loc[idx].to_numpy(), y.loc[idx].to_numpy()
        high = xv > np.median(xv)
        if high.all() or (~high).all():
            skipped.append(str(g))
            continue
        rows.append({"group": str(g), "n": len(xv), "p_high": yv[high].mean(),
                     "p_low": yv[~high].mean()})
    per = pd.DataFrame(rows, columns=["group", "n", "p_high", "p_low"])
    if len(per) < 2:
        raise DataError("At least two mice with trials on both sides of their median are "
                        "needed for a t-test across mice.")
    diff = (per["p_high"] - per["p_low"]).to_numpy()
    m = len(diff)
    est, se = float(diff.mean()), float(diff.std(ddof=1) / math.sqrt(m))
    coef = _coefs(["p_high - p_low"], [est], [se], df=float(m - 1))
    msgs = [f"One value per mouse ({m} mice): the t-test has {m - 1} df, however many "
            "trials each mouse did."]
    if skipped:
        msgs.append(f"Mice without trials on both sides of their median were left out: "
                    f"{', '.join(skipped)}.")
    r_call = (f"p <- do.call(rbind, lapply(split(d, d${group}), function(s) {{\n"
              f"  hi <- s${predictor} > median(s${predictor})\n"
              f"  c(high = mean(s${response}[hi]), low = mean(s${response}[!hi]))}}))\n"
              "t.test(p[, \"high\"], p[, \"low\"], paired = TRUE)")
    return FitResult(
        model="ttest", formula=f"{response} ~ {predictor} | {group}",
        method="paired t-test of per-mouse proportions", df_method="residual",
        coefficients=coef, n_obs=int(len(d)), groups=((group, m),), messages=tuple(msgs),
        r_call=r_call, extras={"per_group": per},
    )


