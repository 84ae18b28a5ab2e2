"""Immutable result objects shared by every fit in mmteach.

A fit returns a :class:`FitResult`; a model comparison returns a :class:`Comparison`.
Both are frozen dataclasses; their tables come out as pandas DataFrames through
``tidy()``, ``glance()``, ``variance_components()`` and ``ranef()``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

TIDY_COLUMNS = (
    "term",
    "estimate",
    "std_error",
    "df",
    "statistic",
    "p_value",
    "conf_low",
    "conf_high",
)


@dataclass(frozen=True)
class Coef:
    """One row of a coefficient table (a fixed effect or a contrast)."""

    term: str
    estimate: float
    std_error: float
    df: float  # math.inf for z (Wald) tests
    statistic: float
    p_value: float
    conf_low: float
    conf_high: float


@dataclass(frozen=True)
class VarComp:
    """A variance component: ``group`` is the grouping factor or "Residual"."""

    group: str
    term: str
    variance: float
    sd: float


@dataclass(frozen=True)
class Correlation:
    """Correlation between two random effects of the same grouping term."""

    group: str
    term1: str
    term2: str
    corr: float


@dataclass(frozen=True)
class RanefValue:
    """A conditional mode (BLUP) of one random effect."""

    group: str
    level: str
    term: str
    value: float


def clean_json(x: Any) -> Any:
    """Make a value JSON friendly (NaN/inf to None, numpy scalars to Python)."""
    if isinstance(x, (np.floating, float)):
        x = float(x)
        return x if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    if isinstance(x, dict):
        return {k: clean_json(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [clean_json(v) for v in x]
    return x


@dataclass(frozen=True)
class FitResult:
    """The result of one model fit.

    Attributes
    ----------
    model : str
        "lm", "lme", "glmm", "glm", "gee", "bayes", "ttest", "per_group".
    formula : str
        The formula as given (or a description for tests).
    method : str
        "OLS", "REML", "ML", "Laplace", "AGQ(25)", "Bayes (nested Laplace)", ...
    df_method : str
        "residual", "satterthwaite", "kenward-roger", "containment", "z", "welch", ...
    """

    model: str
    formula: str
    method: str
    df_method: str
    coefficients: tuple[Coef, ...]
    n_obs: int
    varcomps: tuple[VarComp, ...] = ()
    correlations: tuple[Correlation, ...] = ()
    groups: tuple[tuple[str, int], ...] = ()
    loglik: float = math.nan
    reml_criterion: float = math.nan
    deviance: float = math.nan
    aic: float = math.nan
    bic: float = math.nan
    converged: bool = True
    singular: bool = False
    messages: tuple[str, ...] = ()
    r_call: str = ""
    ranef_values: tuple[RanefValue, ...] = ()
    # Model-specific extras (e.g. the fixed-effect covariance matrix); not shown in tables.
    extras: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    # --- tables -------------------------------------------------------------------------
    def tidy(self) -> pd.DataFrame:
        """One row per term: term, estimate, std_error, df, statistic, p_value, conf_low, conf_high."""
        rows = [asdict(c) for c in self.coefficients]
        return pd.DataFrame(rows, columns=list(TIDY_COLUMNS))

    def glance(self) -> pd.DataFrame:
        """One row: n_obs, groups, loglik, reml_criterion, deviance, aic, bic, converged, singular."""
        return pd.DataFrame(
            [
                {
                    "n_obs": self.n_obs,
                    "groups": ", ".join(f"{g}: {n}" for g, n in self.groups),
                    "loglik": self.loglik,
                    "reml_criterion": self.reml_criterion,
                    "deviance": self.deviance,
                    "aic": self.aic,
                    "bic": self.bic,
                    "converged": self.converged,
                    "singular": self.singular,
                }
            ]
        )

    def variance_components(self) -> pd.DataFrame:
        """group, term, variance, sd (residual last, as lme4's VarCorr prints)."""
        return pd.DataFrame(
            [asdict(v) for v in self.varcomps], columns=["group", "term", "variance", "sd"]
        )

    def ranef(self) -> pd.DataFrame:
        """Conditional modes of the random effects: group, level, term, value."""
        return pd.DataFrame(
            [asdict(v) for v in self.ranef_values], columns=["group", "level", "term", "value"]
        )

    def coef(self, term: str) -> Coef:
        """The coefficient row of ``term`` (KeyError if absent)."""
        for c in self.coefficients:
            if c.term == term:
                return c
        raise KeyError(term)

    def r_code(self) -> str:
        """The equivalent R call, to paste into R."""
        return self.r_call

    def to_dict(self) -> dict[str, Any]:
        """The JSON object printed by ``python -m mmteach fit --json``."""
        out = {
            "model": self.model,
            "formula": self.formula,
            "method": self.method,
            "df_method": self.df_method,
            "n_obs": self.n_obs,
            "groups": {g: n for g, n in self.groups},
            "fixed": [asdict(c) for c in self.coefficients],
            "random": [asdict(v) for v in self.varcomps],
            "correlations": [asdict(c) for c in self.correlations],
            "loglik": self.loglik,
            "reml_criterion": self.reml_criterion,
            "deviance": self.deviance,
            "aic": self.aic,
            "bic": self.bic,
            "converged": self.converged,
            "singular": self.singular,
            "messages": list(self.messages),
            "r_code": self.r_call,
        }
        return clean_json(out)


@dataclass(frozen=True)
class Comparison:
    """A test of a reduced model against a fuller one (LRT, optionally bootstrap)."""

    full: str
    reduced: str
    chisq: float
    df: int
    p_value: float
    loglik_full: float
    loglik_reduced: float
    aic_full: float = math.nan
    aic_reduced: float = math.nan
    bic_full: float = math.nan
    bic_reduced: float = math.nan
    # 50:50 chi-bar-square p-value when the test puts a variance on the boundary (else NaN).
    p_value_boundary: float = math.nan
    boundary_note: str = ""
    bootstrap_p_value: float = math.nan
    bootstrap_samples: int = 0
    bootstrap_failed: int = 0
    messages: tuple[str, ...] = ()
    r_call: str = ""

    def tidy(self) -> pd.DataFrame:
        """One row per model, as R's anova() prints it."""
        return pd.DataFrame(
            [
                {"model": self.reduced, "npar_loglik": self.loglik_reduced, "aic": self.aic_reduced,
                 "bic": self.bic_reduced, "chisq": math.nan, "df": math.nan, "p_value": math.nan},
                {"model": self.full, "npar_loglik": self.loglik_full, "aic": self.aic_full,
                 "bic": self.bic_full, "chisq": self.chisq, "df": self.df, "p_value": self.p_value},
            ]
        ).rename(columns={"npar_loglik": "loglik"})

    def r_code(self) -> str:
        return self.r_call

    def to_dict(self) -> dict[str, Any]:
        """The JSON object printed by ``python -m mmteach compare --json``."""
        out: dict[str, Any] = {
            "chisq": self.chisq,
            "df": self.df,
            "p_value": self.p_value,
            "loglik_full": self.loglik_full,
            "loglik_reduced": self.loglik_reduced,
        }
        if not math.isnan(self.p_value_boundary):
            out["p_value_boundary"] = self.p_value_boundary
            out["boundary_note"] = self.boundary_note
        if self.bootstrap_samples:
            out["bootstrap_p_value"] = self.bootstrap_p_value
            out["bootstrap_samples"] = self.bootstrap_samples
            out["bootstrap_failed"] = self.bootstrap_failed
        out["messages"] = list(self.messages)
        return clean_json(out)


@dataclass(frozen=True)
class BayesFactor:
    """A Bayes factor of a fuller model against a reduced one, from marginal likelihoods."""

    formula: str
    reduced: str
    log_ml1: float  # log p(y | formula)
    log_ml0: float  # log p(y | reduced)
    r_call: str = ""

    @property
    def log_bf10(self) -> float:
        return self.log_ml1 - self.log_ml0

    @property
    def bf10(self) -> float:
        """BF10 > 1 favours ``formula``; 1 / BF10 is the evidence for ``reduced``."""
        return math.exp(self.log_bf10)

    def tidy(self) -> pd.DataFrame:
        """One row per model: its formula and log marginal likelihood (reduced first)."""
        return pd.DataFrame([{"model": self.reduced, "log_marginal_likelihood": self.log_ml0},
                             {"model": self.formula, "log_marginal_likelihood": self.log_ml1}])

    def glance(self) -> pd.DataFrame:
        """One row: the two models, their log marginal likelihoods and BF10."""
        return pd.DataFrame([{"formula": self.formula, "reduced": self.reduced,
                              "log_ml_formula": self.log_ml1, "log_ml_reduced": self.log_ml0,
                              "bf10": self.bf10}])

    def r_code(self) -> str:
        return self.r_call
