"""Comparing nested mixed models: the likelihood-ratio test, its parametric bootstrap, and F tests of fixed terms.

* :func:`likelihood_ratio_test` and :func:`parametric_bootstrap_lrt`: the one LRT (with the
  chi-bar-square boundary p-value when a variance is tested) and the one parametric bootstrap
  (both p-value conventions), for LMEs and GLMMs alike;
* :func:`compare_models`: ``anova(reduced, full)`` as lme4 does it (REML fits are refitted by
  ML first) for LMEs (GLMMs: :func:`mmteach.glmm.compare_glmm`).
* :func:`f_test`: type III F test of a fixed term with Satterthwaite or Kenward-Roger
  denominator df (``anova(fit, ddf = ...)`` in lmerTest).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from mmteach.dfmethods import kenward_roger, satterthwaite_f
from mmteach.errors import ModelError
from mmteach.formula import Formula, parse_formula
from mmteach.lme import fit_frame, normalise_df_method
from mmteach.lme_deviance import LmeFit, LmeProblem
from mmteach.model_frame import ColumnCoder, ModelFrame, build_model
from mmteach.results import Comparison, r_data_prep

BOUNDARY_NOTE = (
    "The reduced model sets a variance to zero, which is the edge of its allowed range; the "
    "usual chi-square reference then makes the LRT p-value conservative (too large). With one "
    "variance tested (together with its covariances) the null distribution is a 50:50 mixture "
    "of chi-square with df and df - 1 degrees of freedom (Self & Liang 1987; Stram & Lee "
    "1994), which gives the smaller boundary p-value."
)

BOOTSTRAP_NOTE = (
    "Two bootstrap p-values: pbkrtest::PBmodcomp's leaves out simulated LRTs that are 0 or "
    "below, (1 + #{LRT* > LRT}) / (1 + #{LRT* > 0}); the other counts every draw, "
    "(1 + #{LRT* >= LRT}) / (1 + draws). They differ when a variance is tested: the null "
    "distribution of the LRT then has a point mass at 0 (about half the draws give the extra "
    "variance an estimate of exactly 0, so both models fit equally well), which counting every "
    "draw keeps and PBmodcomp drops, so PBmodcomp's p is larger, up to about twice."
)

# A simulated LRT below this counts as 0 for PBmodcomp's rule: a boundary refit reproduces
# the reduced model's likelihood only to the optimiser's precision, either side of 0.
LRT_ZERO = 1e-6


def ml_fit(mf: ModelFrame, allow_unidentifiable: bool) -> tuple[float, int, LmeFit | None]:
    """(ML log-likelihood, number of parameters, engine fit or None for a plain LM)."""
    if not mf.blocks:
        n, p = mf.X.shape
        beta, *_ = np.linalg.lstsq(mf.X, mf.y, rcond=None)
        rss = float(np.sum((mf.y - mf.X @ beta) ** 2))
        return -0.5 * n * (math.log(2 * math.pi * rss / n) + 1), p + 1, None
    fit = fit_frame(mf, reml=False, allow_unidentifiable=allow_unidentifiable)
    return fit.loglik, fit.n_par, fit


def grouping_key(codes: np.ndarray) -> bytes:
    """What a grouping factor is, whatever its name: the partition of the rows into its levels.

    ``a:b`` and ``b:a`` (and ``b`` alone when its labels are already unique within ``a``, as
    cell ids within mice) split the rows the same way, so they are the same grouping.

    Examples
    --------
    >>> grouping_key(np.array([2, 2, 0, 1])) == grouping_key(np.array([5, 5, 7, 3]))
    True
    """
    codes = np.asarray(codes)
    _, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
    order = np.empty(first.size, dtype=np.int64)
    order[np.argsort(first, kind="stable")] = np.arange(first.size)  # levels by first appearance
    return order[inverse.ravel()].tobytes()


def variance_keys(mf: ModelFrame) -> set[tuple[bytes, frozenset[str]]]:
    """The random-effect variances of a model, each as (grouping, term variables as a set).

    Structure, not names: ``(1 | a/b)``, ``(1 | a) + (1 | b:a)`` and ``(1 | a) + (1 | a:b)`` hold
    the same variances (the grouping is the partition of the rows, :func:`grouping_key`), so
    comparing two models gives the same test however they are spelled.

    Examples
    --------
    >>> import pandas as pd
    >>> from mmteach.model_frame import build_model
    >>> d = pd.DataFrame({"y": range(8), "a": list("aabbccdd"), "b": list("xyxyxyxy")})
    >>> variance_keys(build_model(d, "y ~ 1 + (1 | a/b)")) == variance_keys(
    ...     build_model(d, "y ~ 1 + (1 | a) + (1 | b:a)"))
    True
    """
    return {(grouping_key(b.codes), frozenset(t.split(":"))) for b in mf.blocks for t in b.terms}


def boundary_p_value(chisq: float, df: int) -> float:
    """50:50 chi-bar-square p-value ``0.5 P(chi2_df > x) + 0.5 P(chi2_{df-1} > x)``.

    This is the null distribution of the LRT when the reduced model drops exactly one
    random-effect variance (plus that effect's covariances with the others that remain), the
    fixed effects being the same; chi2_0 is a point mass at 0.

    Examples
    --------
    >>> round(boundary_p_value(2.706, 1), 3)  # half of the usual 0.1
    0.05
    """
    x = max(float(chisq), 0.0)
    upper = float(stats.chi2.sf(x, df))
    lower = float(stats.chi2.sf(x, df - 1)) if df > 1 else (1.0 if x <= 0 else 0.0)
    return 0.5 * upper + 0.5 * lower


def bootstrap_p_values(lrt_star: np.ndarray, observed: float) -> tuple[float, float, int]:
    """Both bootstrap p-values of an observed LRT: ``(all draws, PBmodcomp's, #positive)``.

    All draws: ``(1 + #{LRT* >= LRT}) / (1 + n)``. PBmodcomp's (pbkrtest's
    ``PBcompute_p_values``): ``(1 + #{LRT* > LRT}) / (1 + #{LRT* > 0})``, where LRT* below
    :data:`LRT_ZERO` count as 0. See :data:`BOOTSTRAP_NOTE` for why they differ.

    Examples
    --------
    >>> bootstrap_p_values(np.array([0.0, 0.0, 0.0, 3.0, 0.5]), 1.0)
    (0.3333333333333333, 0.6666666666666666, 2)
    """
    ref = np.asarray(lrt_star, dtype=float)
    if ref.size == 0:
        return math.nan, math.nan, 0
    pos = ref[ref > LRT_ZERO]
    p_all = float((1 + np.sum(ref >= observed)) / (1 + ref.size))
    p_pb = float((1 + np.sum(pos > observed)) / (1 + pos.size))
    return p_all, p_pb, int(pos.size)


def parametric_bootstrap_lrt(
    simulate: Callable[[int, np.random.Generator], np.ndarray],
    refit: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    nsim: int,
    *,
    seed: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    chunk: int = 1,
    responses: np.ndarray | None = None,
) -> tuple[np.ndarray, int]:
    """The parametric bootstrap of an LRT (pbkrtest's ``PBrefdist``), for LMEs and GLMMs alike.

    ``simulate(b, rng)`` returns ``b`` responses (b, n) simulated from the reduced fit and
    ``refit(Y)`` the LRT of each refitted pair and whether both refits worked. Work goes in
    chunks of ``chunk`` samples (``progress(done, nsim)`` after each); ``responses`` (nsim, n)
    replaces the simulation, e.g. with R's ``simulate()`` draws. Returns ``(lrt_star,
    n_failed)``; failed refits are left out of ``lrt_star``.

    Examples
    --------
    >>> sim = lambda b, rng: rng.normal(size=(b, 5))
    >>> refit = lambda Y: (Y[:, 0] ** 2, Y[:, 1] > -3)
    >>> lrt, failed = parametric_bootstrap_lrt(sim, refit, 10, seed=1, chunk=4)
    >>> len(lrt) + failed
    10
    """
    rng = np.random.default_rng(seed)
    out: list[np.ndarray] = []
    failed = 0
    done = 0
    while done < nsim:
        b = min(max(int(chunk), 1), nsim - done)
        Y = simulate(b, rng) if responses is None else np.asarray(responses, dtype=float)[done:done + b]
        lrt, ok = refit(Y)
        ok = np.asarray(ok, dtype=bool) & np.isfinite(lrt)
        failed += int(np.sum(~ok))
        out.append(np.asarray(lrt, dtype=float)[ok])
        done += b
        if progress is not None:
            progress(done, nsim)
    return (np.concatenate(out) if out else np.empty(0)), failed


def likelihood_ratio_test(
    mf_full: ModelFrame,
    mf_reduced: ModelFrame,
    fit_full: tuple[float, int],
    fit_reduced: tuple[float, int],
    *,
    r_call: str,
    messages: Sequence[str] = (),
    bootstrap: Callable[[float], tuple[np.ndarray, int]] | None = None,
    clip_at_zero: bool = False,
) -> Comparison:
    """``anova(full, reduced)`` from two ML fits ``(loglik, number of parameters)``: the one LRT.

    The chi-square p-value on the difference in parameter counts; the 50:50 chi-bar-square p
    when the reduced model drops exactly one random-effect variance (decided from the
    variances as sets of grouping factors and terms, :func:`variance_keys`) and keeps the
    fixed effects; with ``bootstrap`` (the observed LRT -> ``(lrt_star, n_failed)``) both
    bootstrap p-values (:func:`bootstrap_p_values`).
    """
    (ll1, k1), (ll0, k0) = fit_full, fit_reduced
    df = k1 - k0
    if df <= 0:
        raise ModelError(
            f"The 'full' model has {k1} parameters and the 'reduced' one {k0}: the full model "
            "must have more parameters, and the reduced model must be a special case of it "
            "(nested), for a likelihood-ratio test to make sense; swap them if they are the "
            "wrong way round."
        )
    chisq = 2.0 * (ll1 - ll0)
    if clip_at_zero:
        chisq = max(chisq, 0.0)
    p = float(stats.chi2.sf(max(chisq, 0.0), df))
    dropped = variance_keys(mf_full) - variance_keys(mf_reduced)
    same_fixed = tuple(mf_full.fixed_names) == tuple(mf_reduced.fixed_names)
    p_b = math.nan
    note = ""
    if dropped:
        note = BOUNDARY_NOTE
        if len(dropped) == 1 and same_fixed:
            p_b = boundary_p_value(chisq, df)
        else:
            note += (" Here more than one variance (or also fixed effects) changes, so no "
                     "simple mixture applies: read the p-value as an upper bound, or use the "
                     "parametric bootstrap.")
    msgs = list(messages)
    boot_all, boot_pb, n_ok, n_pos, n_fail, boot_note = math.nan, math.nan, 0, 0, 0, ""
    if bootstrap is not None:
        lrt_star, n_fail = bootstrap(chisq)
        n_ok = int(lrt_star.size)
        boot_all, boot_pb, n_pos = bootstrap_p_values(lrt_star, chisq)
        boot_note = BOOTSTRAP_NOTE
        msgs.append(
            f"Parametric bootstrap: {n_ok + n_fail} samples simulated from the reduced model; "
            f"{n_ok} refits worked ({n_fail} failed), {n_pos} of them gave a positive LRT."
        )
    return Comparison(
        full=mf_full.formula.to_r(), reduced=mf_reduced.formula.to_r(), chisq=chisq, df=int(df),
        p_value=p, loglik_full=ll1, loglik_reduced=ll0,
        aic_full=-2 * ll1 + 2 * k1, aic_reduced=-2 * ll0 + 2 * k0,
        bic_full=-2 * ll1 + k1 * math.log(mf_full.n_obs),
        bic_reduced=-2 * ll0 + k0 * math.log(mf_reduced.n_obs),
        p_value_boundary=p_b, boundary_note=note,
        bootstrap_p_value=boot_all, bootstrap_p_value_pbmodcomp=boot_pb,
        bootstrap_samples=n_ok, bootstrap_positive=n_pos, bootstrap_failed=n_fail,
        bootstrap_note=boot_note, messages=tuple(msgs), r_call=r_call,
    )


# duplicates: its docstring repeats fit_slope_batch's layout and doctest set-up on purpose: each doctest runs alone
def compare_models(
    data: pd.DataFrame,
    full: str | Formula,
    reduced: str | Formula,
    *,
    factors: Sequence[str] = (),
    family: str | None = None,
    bootstrap: int = 0,
    seed: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    allow_unidentifiable: bool = False,
    bootstrap_responses: np.ndarray | None = None,
) -> Comparison:
    """Likelihood-ratio test of a reduced model against a fuller one (lme4's ``anova``).

    Both models are fitted by maximum likelihood (lme4 refits REML fits by ML before
    comparing, since REML likelihoods of models with different fixed effects are not
    comparable). If the reduced model drops exactly one random-effect variance and keeps the
    fixed effects, ``p_value_boundary`` gives the 50:50 chi-bar-square p-value (see
    :func:`boundary_p_value`); whenever variances are dropped, ``boundary_note`` explains
    why the plain p-value is conservative. The reduced model may have no random term (then
    it is the pooled linear model, as ``anova(lmer_fit, lm_fit)``).

    Parameters
    ----------
    data : DataFrame
    full, reduced : str
        lme4 formulas; the reduced one must be nested in the full one.
    factors : sequence of str
        Numeric columns to treat as factors.
    family : str, optional
        A GLMM family ("binomial", "poisson"): the comparison is done by
        ``mmteach.glmm.compare_glmm``.
    bootstrap : int
        Number of parametric bootstrap samples simulated from the reduced model (0: none).
    seed : int, optional
    progress : callable, optional
        Called as ``progress(done, total)`` during the bootstrap.
    allow_unidentifiable : bool
        Passed to the fits (see :func:`mmteach.lme.fit_lme`).
    bootstrap_responses : array (bootstrap, n), optional
        Responses to refit instead of simulating them (for example R's ``simulate()`` draws).

    Returns
    -------
    Comparison

    Examples
    --------
    >>> rng = np.random.default_rng(5)
    >>> m = np.repeat(np.arange(8), 10)
    >>> d = pd.DataFrame({"m": m, "x": rng.normal(size=80)})
    >>> d["y"] = d.x + rng.normal(size=8)[m] + rng.normal(size=80)
    >>> cmp = compare_models(d, "y ~ x + (1 | m)", "y ~ 1 + (1 | m)")
    >>> cmp.df, cmp.p_value < 0.05
    (1, True)
    """
    if family is not None:
        from mmteach import glmm  # lazy: the GLMM engine is heavier and owned separately

        return glmm.compare_glmm(data, full, reduced, family=family, factors=factors,
                                 bootstrap=bootstrap, seed=seed, progress=progress)
    cols = [str(c) for c in data.columns]
    f_full = parse_formula(full, cols) if isinstance(full, str) else full
    f_red = parse_formula(reduced, cols) if isinstance(reduced, str) else reduced
    # one row set for both models, as anova() requires
    used = list(dict.fromkeys(f_full.variables() + f_red.variables()))
    rows = data.dropna(subset=used) if used else data
    mf1 = build_model(rows, f_full, factors=factors)
    mf0 = build_model(rows, f_red, factors=factors)
    if not mf1.blocks:
        raise ModelError("The full model has no random-effects term; compare linear models "
                         "with an F test instead.")
    return lrt_of_fits(mf1, mf0, ml_fit(mf1, allow_unidentifiable), ml_fit(mf0, allow_unidentifiable),
                       factors=[f for f in factors if f in used], bootstrap=bootstrap, seed=seed,
                       progress=progress, bootstrap_responses=bootstrap_responses)


def lrt_of_fits(
    mf1: ModelFrame,
    mf0: ModelFrame,
    ml1: tuple[float, int, LmeFit | None],
    ml0: tuple[float, int, LmeFit | None],
    *,
    factors: Sequence[str] = (),
    bootstrap: int = 0,
    seed: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    bootstrap_responses: np.ndarray | None = None,
) -> Comparison:
    """:func:`compare_models` on two frames already fitted by :func:`ml_fit` (a ladder of
    comparisons fits each model once)."""
    (ll1, k1, fit1), (ll0, k0, fit0) = ml1, ml0
    f_full, f_red = mf1.formula, mf0.formula
    messages: list[str] = []
    for fit, label in ((fit1, "full"), (fit0, "reduced")):
        if fit is not None and fit.singular:
            messages.append(f"The {label} model's ML fit is singular (a variance at zero).")
        if fit is not None and not fit.converged:
            messages.append(f"The {label} model's ML fit did not converge cleanly.")
    r_call = (r_data_prep("d", factors)
              + f"fit1 <- lme4::lmer({f_full.to_r()}, data = d, REML = FALSE)\n"
              + (f"fit0 <- lme4::lmer({f_red.to_r()}, data = d, REML = FALSE)\n" if mf0.blocks
                 else f"fit0 <- lm({f_red.to_r()}, data = d)\n")
              + "anova(fit1, fit0)")
    boot = None
    if bootstrap and bootstrap > 0:
        r_call += f"\npbkrtest::PBmodcomp(fit1, fit0, nsim = {int(bootstrap)})"

        def boot(_observed: float) -> tuple[np.ndarray, int]:
            return parametric_bootstrap_lrt(
                lambda b, rng: np.stack([_simulate(mf0, fit0, rng) for _ in range(b)]),
                lambda Y: _lme_refit_lrt(mf1, mf0, Y), int(bootstrap), seed=seed,
                progress=progress, responses=bootstrap_responses)

    return likelihood_ratio_test(mf1, mf0, (ll1, k1), (ll0, k0), r_call=r_call,
                                 messages=messages, bootstrap=boot)


def _simulate(mf: ModelFrame, fit: LmeFit | None, rng: np.random.Generator) -> np.ndarray:
    """One response vector simulated from an ML fit (``simulate()`` on the reduced model)."""
    n = mf.n_obs
    if fit is None:
        beta, *_ = np.linalg.lstsq(mf.X, mf.y, rcond=None)
        rss = float(np.sum((mf.y - mf.X @ beta) ** 2))
        return mf.X @ beta + rng.normal(scale=math.sqrt(rss / n), size=n)
    y = mf.X @ fit.beta + rng.normal(scale=fit.sigma, size=n)
    for i, b in enumerate(mf.blocks):
        T = fit.problem.block_T(fit.theta, i)
        u = rng.normal(size=(b.n_levels, b.n_terms)) @ T.T * fit.sigma
        y = y + np.einsum("nk,nk->n", np.asarray(b.Z, dtype=float), u[np.asarray(b.codes)])
    return y


def _ml_loglik(mf: ModelFrame, y: np.ndarray, theta0: np.ndarray | None) -> float:
    if not mf.blocks:
        beta, *_ = np.linalg.lstsq(mf.X, y, rcond=None)
        rss = float(np.sum((y - mf.X @ beta) ** 2))
        n = y.size
        return -0.5 * n * (math.log(2 * math.pi * rss / n) + 1)
    from mmteach.lme import problem_from_frame

    base = problem_from_frame(mf)
    pr = LmeProblem(y, base.X, base.blocks)
    return pr.fit(reml=False, theta0=theta0).loglik


def _lme_refit_lrt(mf1: ModelFrame, mf0: ModelFrame, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """LRT of each simulated response (rows of Y) from ML refits of both models."""
    lrt = np.full(len(Y), np.nan)
    for i, y in enumerate(Y):
        try:
            lrt[i] = 2 * (_ml_loglik(mf1, y, None) - _ml_loglik(mf0, y, None))
        except (np.linalg.LinAlgError, ValueError, FloatingPointError):
            pass
    return lrt, np.isfinite(lrt)


def _zapsmall(x: np.ndarray, digits: int = 7) -> np.ndarray:
    """R's ``zapsmall``: round to ``digits`` significant digits of the largest entry."""
    finite = np.abs(x[np.isfinite(x)])
    mx = float(finite.max()) if finite.size else 0.0
    d = max(0, digits - math.ceil(math.log10(mx))) if mx > 0 else digits
    return np.round(x, d)


def _contains(mf: ModelFrame, coder: ColumnCoder) -> dict[int, list[int]]:
    """lmerTest's ``containment``: for each term, the terms that contain it (SAS rule).

    F2 contains F1 when F2 has every variable of F1 and more, and both involve the same
    numeric covariates; so ``f`` is not contained in ``f:x`` but ``x`` is.
    """
    fixed = mf.formula.fixed
    keys = [t.key() for t in fixed]
    numerics = [frozenset((v.name, v.as_factor) for v in t.variables if not coder.is_factor(v))
                for t in fixed]
    return {k: [j for j in range(len(fixed))
                if keys[k] < keys[j] and numerics[k] == numerics[j]]
            for k in range(len(fixed))}


def _type3_contrasts(mf: ModelFrame, factors: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """Type III contrast matrices of every fixed term, as lmerTest's ``get_contrasts_type3``.

    X is in treatment coding, so lmerTest's ``extract_contrasts_type3`` applies directly:
    express the over-parametrised design (every factor fully indicator-coded within each
    term) in the columns of X, ``L = t(ginv(X) rdX)``; orthogonalise the columns of L that
    belong to a term against those of the terms containing it (highest order first); the
    contrast of a term is then its columns of L, read at the rows named as X's columns.
    """
    fixed = mf.formula.fixed
    coder = ColumnCoder(mf.data, set(factors) | set(mf.formula.grouping_columns()))
    rd_names: list[str] = []
    rd_cols: list[np.ndarray] = []
    if mf.formula.intercept:
        rd_names.append("(Intercept)")
        rd_cols.append(np.ones(mf.n_obs))
    for term in fixed:
        for name, col in coder.term_columns(term, set()):
            rd_names.append(name)
            rd_cols.append(col)
    rdX = np.column_stack(rd_cols)
    X = mf.X
    L = _zapsmall(np.linalg.lstsq(X, rdX, rcond=None)[0].T)  # (q, p)
    assign = np.asarray(mf.assign)
    cols_of = {k: np.flatnonzero(assign == k + 1) for k in range(len(fixed))}
    contained_in = _contains(mf, coder)
    orders = [len(t.variables) for t in fixed]
    for k in sorted(range(len(fixed)), key=lambda i: -orders[i]):  # stable, as R's order()
        if not contained_in[k] or not cols_of[k].size:
            continue
        others = np.concatenate([cols_of[j] for j in contained_in[k]])
        if not others.size:
            continue
        A, B = L[:, others], L[:, cols_of[k]]
        coef = np.linalg.lstsq(A, B, rcond=None)[0]
        L[:, cols_of[k]] = _zapsmall(B - A @ coef)
    index = {n: i for i, n in enumerate(rd_names)}
    missing = [n for n in mf.fixed_names if n not in index]
    if missing:
        raise ModelError("Type III contrasts could not be matched to the columns "
                         f"{', '.join(missing)} of the model matrix.")
    L = L[[index[n] for n in mf.fixed_names]]  # (p, p)
    out = {}
    for k, t in enumerate(fixed):
        Lk = L[:, cols_of[k]].T
        out[t.label] = Lk[np.sum(np.abs(Lk), axis=1) > 1e-8]
    return out


def _term_L(mf: ModelFrame, term: str, type3: dict[str, np.ndarray] | None = None,
            factors: Sequence[str] = ()) -> np.ndarray:
    labels = list(mf.term_labels)
    if term not in labels:
        raise ModelError(f"'{term}' is not a fixed term of this model; the terms are: "
                         f"{', '.join(labels) or '(none)'}.")
    k = labels.index(term) + 1
    cols = [j for j, a in enumerate(mf.assign) if a == k]
    if not cols:
        raise ModelError(f"All columns of '{term}' were dropped as linear combinations of others.")
    if len(labels) <= 1:
        # lmerTest falls back to type I contrasts for a one-term model: rows of the unit
        # upper-triangular Doolittle factor of X'X. The Satterthwaite ddf of a multi-df F
        # depends on this basis, so follow it exactly.
        C = np.linalg.cholesky(mf.X.T @ mf.X)
        U = (C / np.diag(C)).T
        return U[cols]
    type3 = _type3_contrasts(mf, factors) if type3 is None else type3
    return type3[term]


def f_test(
    data: pd.DataFrame,
    formula: str | Formula,
    term: str | None = None,
    *,
    factors: Sequence[str] = (),
    df_method: str = "satterthwaite",
    reml: bool = True,
    allow_unidentifiable: bool = False,
) -> pd.DataFrame:
    """Type III F test of fixed terms, as lmerTest's ``anova(fit, type = 3, ddf = ...)``.

    Each term is tested with lmerTest's type III contrast (see :func:`_type3_contrasts`),
    so a main effect that is also part of an interaction is tested too: a factor ``a`` in
    ``a * b`` is averaged over the levels of ``b`` (equal weights); a covariate ``x`` in ``a * x``
    is the slope averaged over the levels of ``a``; a factor ``a`` in ``a * x`` (SAS containment: terms
    with different covariates do not contain each other) is the effect of ``a`` at ``x = 0``.

    Parameters
    ----------
    data : DataFrame
    formula : str
    term : str, optional
        The term label (e.g. ``"treatment_idx"``); all terms when omitted.
    factors : sequence of str
    df_method : {"satterthwaite", "kenward-roger"}
    reml : bool
    allow_unidentifiable : bool
        Passed to the fit (see :func:`mmteach.lme.fit_lme`).

    Returns
    -------
    DataFrame with columns ``term, F, num_df, den_df, p_value``.

    Examples
    --------
    >>> rng = np.random.default_rng(6)
    >>> m = np.repeat(np.arange(9), 10)
    >>> d = pd.DataFrame({"m": m, "g": m % 3})
    >>> d["y"] = d.g + rng.normal(size=9)[m] + rng.normal(size=90)
    >>> f_test(d, "y ~ g + (1 | m)", "g", factors=["g"])[["term", "num_df"]].values.tolist()
    [['g', 2]]
    """
    method = normalise_df_method(df_method)
    if method not in ("satterthwaite", "kenward-roger"):
        raise ModelError("F tests are available with 'satterthwaite' or 'kenward-roger' df.")
    if isinstance(formula, str):
        formula = parse_formula(formula, [str(c) for c in data.columns])
    mf = build_model(data, formula, factors=factors)
    if method == "kenward-roger" and not reml:
        raise ModelError("Kenward-Roger F tests need a REML fit (reml=True).")
    fit = fit_frame(mf, reml=reml, allow_unidentifiable=allow_unidentifiable)
    terms = list(mf.term_labels) if term is None else [term]
    kr = kenward_roger(fit) if method == "kenward-roger" else None
    rows = []
    info = None
    type3 = _type3_contrasts(mf, factors) if len(mf.term_labels) > 1 else None
    for t in terms:
        L = _term_L(mf, t, type3)
        if kr is not None:
            F, q, ddf = kr.f_test(L, fit.beta)
        else:
            if info is None:
                from mmteach.dfmethods import satterthwaite_info

                info = satterthwaite_info(fit)
            F, q, ddf = satterthwaite_f(fit, L, info)
        rows.append({"term": t, "F": float(F), "num_df": int(q), "den_df": float(ddf),
                     "p_value": float(stats.f.sf(F, q, ddf))})
    return pd.DataFrame(rows, columns=["term", "F", "num_df", "den_df", "p_value"])
