"""Linear mixed models from a data frame and an lme4 formula: :func:`fit_lme`.

The numbers follow ``lmerTest::lmer`` (REML or ML; Satterthwaite or Kenward-Roger df) and,
for ``df_method="containment"``, ``nlme::lme``. The engine is :mod:`mmteach.lme_deviance`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from mmteach.dfmethods import containment_df, kenward_roger, satterthwaite_df, satterthwaite_info
from mmteach.errors import ModelError
from mmteach.formula import Formula, parse_formula
from mmteach.lme_deviance import Block, LmeFit, LmeProblem
from mmteach.model_frame import ModelFrame, build_model, check_group_levels
from mmteach.results import Correlation, FitResult, RanefRows, VarComp, coef_rows, r_data_prep

DF_METHODS = ("satterthwaite", "kenward-roger", "containment", "z")
_DF_ALIASES = {
    "satterthwaite": "satterthwaite", "satt": "satterthwaite",
    "kenward-roger": "kenward-roger", "kr": "kenward-roger", "kenward_roger": "kenward-roger",
    "containment": "containment", "nlme": "containment", "between-within": "containment",
    "z": "z", "wald": "z", "normal": "z",
}


# how a student asks for a model lme4 refuses, in the app and on the command line
ANYWAY = ("or have it fitted anyway, as nlme does (the \"fit anyway\" box in the app, "
          "--allow-unidentifiable on the command line)")


# The df methods a page offers, in lmerTest's order; Kenward-Roger is defined for REML only.
DF_METHODS: tuple[str, ...] = ("satterthwaite", "kenward-roger", "containment", "z")


def df_methods_for(reml: bool, methods: tuple[str, ...] = DF_METHODS) -> list[str]:
    """The df methods that apply to a REML (all) or an ML fit (all but Kenward-Roger, which
    lmerTest defines for REML fits only).

    >>> df_methods_for(False)
    ['satterthwaite', 'containment', 'z']
    """
    return [m for m in methods if reml or m != "kenward-roger"]


def normalise_df_method(df_method: str) -> str:
    """Canonical name of a df method ("satterthwaite", "kenward-roger", "containment", "z")."""
    key = str(df_method).strip().lower()
    if key not in _DF_ALIASES:
        raise ModelError(
            f"Unknown degrees-of-freedom method {df_method!r}. Choose one of "
            "'satterthwaite' (lmerTest's default), 'kenward-roger' (small samples), "
            "'containment' (nlme's rule) or 'z' (treat t as normal, only for many groups)."
        )
    return _DF_ALIASES[key]


def term_label(mf: ModelFrame, index: int) -> str:
    """lme4's label of random block ``index``, e.g. ``(treatment | cidx)``."""
    block = mf.blocks[index]
    rank = sum(1 for b in mf.blocks[:index] if b.group == block.group)
    same = [r for r in mf.formula.random if r.group_label == block.group]
    if rank < len(same):
        return f"({same[rank].label})"
    return f"({' + '.join(block.terms)} | {block.group})"


def overlapping_terms(mf: ModelFrame) -> list[list[int]]:
    """Groups of blocks of one grouping factor whose columns are linearly dependent.

    ``(f || g)`` with a factor ``f`` is such a case: lme4 expands it into
    ``(1 | g) + (0 + f | g)``, and the indicators of all levels of ``f`` add up to the
    intercept column, so the intercept variance and the level covariance trade off exactly.
    """
    out: list[list[int]] = []
    seen: set[int] = set()
    for i, b in enumerate(mf.blocks):
        if i in seen:
            continue
        same = [j for j, c in enumerate(mf.blocks) if j >= i and c.group == b.group
                and np.array_equal(c.codes, b.codes)]
        seen.update(same)
        if len(same) < 2:
            continue
        Z = np.column_stack([np.asarray(mf.blocks[j].Z, dtype=float) for j in same])
        if np.linalg.matrix_rank(Z) < Z.shape[1]:
            out.append(same)
    return out


def _overlap_text(mf: ModelFrame, ids: list[int]) -> str:
    return " + ".join(term_label(mf, j) for j in ids)


def check_identifiable(mf: ModelFrame, allow_unidentifiable: bool = False) -> None:
    """lme4's checks on the random-effects structure, with a teaching message.

    * every grouping factor needs at least 2 levels (one mouse cannot show mouse-to-mouse
      variation);
    * fewer levels than observations (otherwise the group effect is the residual);
    * more observations than random effects for each term (lme4's check.nobs.vs.nRE).

    The last two are skipped when ``allow_unidentifiable`` is true, as nlme fits such models.
    """
    n = mf.n_obs
    check_group_levels(mf)
    if allow_unidentifiable:
        return
    for ids in overlapping_terms(mf):
        g = mf.blocks[ids[0]].group
        raise ModelError(
            f"The random-effects terms {_overlap_text(mf, ids)} for '{g}' overlap: the columns "
            "of one are a combination of the columns of another. This happens with a double "
            "bar and a factor: lme4 expands (f || g) into (1 | g) + (0 + f | g), and for a "
            "factor f the indicators of all its levels add up to the intercept. The "
            "intercept variance then cannot be told apart from the part common to all the "
            "level variances: the likelihood is flat along a ridge and the variance "
            "components are arbitrary (lme4 fits it with convergence warnings, and its "
            "numbers depend on where its optimiser stops). Use (0 + f | g) for one variance "
            "per level with their correlations, or (1 | g) + (1 | g:f) for a group variance "
            "plus a level-within-group variance; " + ANYWAY + " (the fixed effects and the "
            "log-likelihood are still meaningful)."
        )
    for i, b in enumerate(mf.blocks):
        if b.n_levels >= n:
            raise ModelError(
                f"The grouping factor '{b.group}' has {b.n_levels} levels for {n} "
                "observations: every group has a single row, so a group effect cannot be "
                "told apart from the residual error (lme4 refuses this: 'number of levels of "
                "each grouping factor must be < number of observations'). Group by a "
                "coarser unit, " + ANYWAY + "."
            )
        n_re = b.n_levels * b.n_terms
        if n <= n_re:
            raise ModelError(
                f"number of observations (={n}) <= number of random effects (={n_re}) for term "
                f"{term_label(mf, i)}; the random-effects parameters and the residual variance "
                "(or scale parameter) are probably unidentifiable. This is lme4's refusal: "
                f"each level of '{b.group}' has on average {n / b.n_levels:.3g} rows, and with "
                "two measurements per cell the 2x2 covariance of a cell's pair gives three "
                "numbers, which cannot identify four parameters (a cell intercept variance, a "
                "cell slope variance, their covariance and a residual variance). Drop the "
                "random slope for this factor, " + ANYWAY + " (the likelihood is then flat along a ridge: the "
                "log-likelihood is fine, the split of the variances is arbitrary)."
            )




def _r_formula(mf: ModelFrame) -> str:
    return mf.formula.to_r()


def _r_call(mf: ModelFrame, factors: Sequence[str], reml: bool, df_method: str) -> str:
    prep = r_data_prep("d", [f for f in factors if f in mf.formula.variables()])
    if df_method == "containment":
        # nlme nests the grouping factors in the order given, outermost (fewest levels)
        # first; a slash-nested factor such as cidx:midx is named by its innermost column
        groups: dict[str, list] = {}
        sizes: dict[str, int] = {}
        n_levels = mf.group_sizes()
        for r in mf.formula.random:
            groups.setdefault(r.group[0], []).append(r)
            sizes[r.group[0]] = max(sizes.get(r.group[0], 0), n_levels.get(r.group_label, 0))
        order = sorted(groups, key=lambda g: sizes[g])

        def spec(terms: list) -> str:
            if len(terms) == 1:
                return "~ " + terms[0].label.split("|")[0].strip()
            # uncorrelated terms, (x || g): nlme's diagonal covariance
            effects = [t.label for r in terms for t in r.terms]
            if not any(r.intercept for r in terms):
                effects = ["0"] + effects
            return f"pdDiag(~ {' + '.join(effects) or '1'})"

        if len(order) == 1 and len(groups[order[0]]) == 1:
            rnd = f"{spec(groups[order[0]])} | {order[0]}"
        else:
            rnd = "list(" + ", ".join(f"{g} = {spec(groups[g])}" for g in order) + ")"
        fixed = f"{mf.formula.response.label} ~ {mf.formula.fixed_rhs()}"
        meth = "REML" if reml else "ML"
        return (prep + f"fit <- nlme::lme({fixed}, random = {rnd}, data = d, method = \"{meth}\")\n"
                "summary(fit)")
    call = f"fit <- lmerTest::lmer({_r_formula(mf)}, data = d, REML = {'TRUE' if reml else 'FALSE'})\n"
    if df_method == "kenward-roger":
        return prep + call + 'summary(fit, ddf = "Kenward-Roger")'
    if df_method == "z":
        return prep + call + "summary(fit)  # use the t values as z (normal) statistics"
    return prep + call + "summary(fit)"


def problem_from_frame(mf: ModelFrame) -> LmeProblem:
    """The matrices of a model frame as an :class:`~mmteach.lme_deviance.LmeProblem`."""
    blocks = [Block(np.asarray(b.codes), b.n_levels, np.asarray(b.Z, dtype=float), b.group)
              for b in mf.blocks]
    return LmeProblem(mf.y, mf.X, blocks)


def fit_frame(mf: ModelFrame, *, reml: bool = True, allow_unidentifiable: bool = False) -> LmeFit:
    """Fit a model frame's LME after lme4's identifiability checks (no df, no tables)."""
    if not mf.blocks:
        raise ModelError(
            "The formula has no random-effects term such as (1 | mouse), so this is an "
            "ordinary linear model: add the term for the unit the measurements cluster in, "
            "or fit it as a linear model."
        )
    check_identifiable(mf, allow_unidentifiable)
    if mf.X.shape[1] >= mf.n_obs:
        raise ModelError(
            f"There are {mf.X.shape[1]} fixed-effect coefficients for {mf.n_obs} rows; "
            "a mixed model needs more rows than coefficients."
        )
    return problem_from_frame(mf).fit(reml=reml)


def fit_lme(
    data: pd.DataFrame,
    formula: str | Formula,
    *,
    factors: Sequence[str] = (),
    reml: bool = True,
    df_method: str = "satterthwaite",
    allow_unidentifiable: bool = False,
) -> FitResult:
    """Fit a linear mixed model as ``lmerTest::lmer`` (or ``nlme::lme`` for containment df).

    Parameters
    ----------
    data : DataFrame
    formula : str
        lme4 syntax, e.g. ``"res ~ treatment_idx + (1 | midx)"``.
    factors : sequence of str
        Numeric columns to treat as factors (``treatment_idx``).
    reml : bool
        REML (default, as lmer) or maximum likelihood (needed to compare fixed effects).
    df_method : str
        "satterthwaite" (lmerTest's default), "kenward-roger" (pbkrtest; REML only; standard
        errors from the adjusted covariance), "containment" (nlme) or "z".
    allow_unidentifiable : bool
        Fit models lme4 refuses (more random effects than observations for a term).

    Returns
    -------
    FitResult
        ``extras`` holds ``vcov``, ``theta``, ``sigma``, ``lmefit`` (the engine's result) and
        ``model_frame``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> mouse = np.repeat(np.arange(6), 20)
    >>> d = pd.DataFrame({"mouse": mouse, "trt": (mouse % 2) + 1,
    ...                   "y": rng.normal(size=6)[mouse] + rng.normal(size=120)})
    >>> fit = fit_lme(d, "y ~ trt + (1 | mouse)", factors=["trt"])
    >>> fit.tidy()["term"].tolist()
    ['(Intercept)', 'trt2']
    >>> round(fit.coef("trt2").df, 1)  # 6 mice, 2 groups of mice: about 4 df
    4.0
    """
    method = normalise_df_method(df_method)
    if isinstance(formula, str):
        formula = parse_formula(formula, [str(c) for c in data.columns])
    mf = build_model(data, formula, factors=factors)
    if method == "kenward-roger" and not reml:
        raise ModelError(
            "The Kenward-Roger method is defined for REML fits only (lmerTest refuses it for "
            "ML fits). Fit with reml=True, or use Satterthwaite df with an ML fit."
        )
    fit = fit_frame(mf, reml=reml, allow_unidentifiable=allow_unidentifiable)
    return result_from_fit(mf, fit, factors=factors, df_method=method,
                           allow_unidentifiable=allow_unidentifiable)


def result_from_fit(mf: ModelFrame, fit: LmeFit, *, factors: Sequence[str] = (),
                    df_method: str = "satterthwaite",
                    allow_unidentifiable: bool = False) -> FitResult:
    """Tables, messages and R code of an engine fit."""
    p = mf.X.shape[1]
    n = mf.n_obs
    eye = np.eye(p)
    se = np.sqrt(np.diag(fit.vcov))
    extras: dict[str, Any] = {}
    if df_method == "satterthwaite":
        info = satterthwaite_info(fit)
        df = satterthwaite_df(fit, eye, info)
        extras["satterthwaite"] = info
    elif df_method == "kenward-roger":
        kr = kenward_roger(fit)
        df = kr.df(eye)
        se = kr.se(eye)
        extras["kenward_roger"] = kr
        extras["vcov_adjusted"] = kr.phi_adj
    elif df_method == "containment":
        groups = sorted((b for b in mf.blocks), key=lambda b: b.n_levels)
        seen: list[np.ndarray] = []
        for b in groups:
            if not any(np.array_equal(b.codes, s) for s in seen):
                seen.append(np.asarray(b.codes))
        df, _ = containment_df(mf.X, mf.assign, seen)
        if not fit.reml:
            # nlme scales the ML covariance of beta by n / (n - p) (its varFix)
            se = se * math.sqrt(n / (n - p))
    else:
        df = np.full(p, math.inf)
    coefs = coef_rows(mf.fixed_names, fit.beta, se, df)

    names = mf.varcorr_group_names()
    varcomps: list[VarComp] = []
    cors: list[Correlation] = []
    for i, b in enumerate(mf.blocks):
        C = fit.covariance(i)
        for j, t in enumerate(b.terms):
            varcomps.append(VarComp(names[i], t, float(C[j, j]), math.sqrt(max(C[j, j], 0.0))))
        for j in range(b.n_terms):
            for k in range(j + 1, b.n_terms):
                den = math.sqrt(C[j, j] * C[k, k])
                cors.append(Correlation(names[i], b.terms[j], b.terms[k],
                                        float(C[j, k] / den) if den > 0 else math.nan))
    varcomps.append(VarComp("Residual", "", fit.sigma**2, fit.sigma))
    # the rows are made when read (RanefRows): 1 ms on 1,244 cell effects
    ranefs = RanefRows([(b.group, b.levels, b.terms, vals) for b, vals in zip(mf.blocks, fit.ranef())])

    messages = list(mf.messages)
    if mf.n_dropped:
        messages.append(f"{mf.n_dropped} rows with missing values were dropped (as R's na.omit).")
    if fit.singular:
        zero = [f"{v.group} {v.term}" for v in varcomps[:-1] if v.sd < 1e-4 * max(fit.sigma, 1e-300)]
        what = ", ".join(zero) if zero else "a random-effect variance or correlation"
        messages.append(
            f"Singular fit (boundary): the estimate for {what} is at or near zero (or a "
            "correlation at +-1). The data show no detectable variation there beyond the "
            "residual noise; the fixed effects are still valid, but consider the simpler model "
            "without that term, and do not read the zero as proof that the variance is zero."
        )
    if not fit.converged:
        messages.append(
            "The optimiser did not converge cleanly (the gradient at the estimate is not "
            f"small: {fit.grad_max:.2g}). Check that the model is not too complex for the "
            "data (too many random slopes for few groups), rescale predictors with very "
            "different scales, and compare with a simpler random-effects structure."
        )
    if allow_unidentifiable:
        for ids in overlapping_terms(mf):
            messages.append(
                f"The terms {_overlap_text(mf, ids)} overlap (their columns are linearly "
                "dependent, as in (f || g) with a factor f); they were fitted anyway. The "
                "log-likelihood and the fixed effects are meaningful, the split of the variance "
                "between these terms is not identified."
            )
        for i, b in enumerate(mf.blocks):
            if n <= b.n_levels * b.n_terms:
                messages.append(
                    f"The term {term_label(mf, i)} has as many random effects as observations "
                    "or more; it was fitted anyway (as nlme does). The log-likelihood is "
                    "meaningful, but the split between its variances and the residual is not "
                    "identified."
                )

    loglik = fit.loglik
    n_par = fit.n_par
    bic_n = (n - p) if (df_method == "containment" and fit.reml) else n  # nlme's REML BIC
    extras.update(vcov=fit.vcov, theta=fit.theta, sigma=fit.sigma, lmefit=fit, model_frame=mf)
    return FitResult(
        model="lme",
        formula=_r_formula(mf),
        method="REML" if fit.reml else "ML",
        df_method=df_method,
        coefficients=coefs,
        n_obs=n,
        varcomps=tuple(varcomps),
        correlations=tuple(cors),
        groups=tuple(mf.group_sizes().items()),
        loglik=loglik,
        reml_criterion=fit.solution.objective if fit.reml else math.nan,
        deviance=fit.deviance_ml,
        aic=-2 * loglik + 2 * n_par,
        bic=-2 * loglik + n_par * math.log(bic_n),
        converged=fit.converged,
        singular=fit.singular,
        messages=tuple(messages),
        r_call=_r_call(mf, factors, fit.reml, df_method),
        ranef_values=ranefs,
        extras=extras,
    )
