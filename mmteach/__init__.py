"""mmteach: why pooling clustered data misleads, and what mixed-effects models do instead.

The engine of the mmteach app: formula parsing, data sets, linear models, linear and
generalised linear mixed models (checked against R's lme4, lmerTest, nlme and pbkrtest),
simulation, and plotly figure builders. It never imports streamlit.

Public functions are importable from the top level and loaded on first use::

    >>> import mmteach
    >>> mmteach.parse_formula("res ~ treatment_idx + (1 | midx)").to_r()
    'res ~ treatment_idx + (1 | midx)'
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# name -> module; loaded lazily so that importing mmteach stays fast and each part can be
# used on its own.
_EXPORTS = {
    "parse_formula": "mmteach.formula",
    "build_model": "mmteach.model_frame",
    "fit_lm": "mmteach.lm",
    "t_test": "mmteach.lm",
    "fit_fixed_group": "mmteach.lm",
    "fit_per_group": "mmteach.lm",
    "fit_lme": "mmteach.lme",
    "compare_models": "mmteach.compare",
    "f_test": "mmteach.compare",
    "satterthwaite_df": "mmteach.dfmethods",
    "kenward_roger": "mmteach.dfmethods",
    "containment_df": "mmteach.dfmethods",
    "icc_oneway": "mmteach.icc",
    "design_effect": "mmteach.icc",
    "effective_n": "mmteach.icc",
    "fit_glmm": "mmteach.glmm",
    "compare_glmm": "mmteach.glmm",
    "odds_ratio_table": "mmteach.glmm",
    "fit_glm": "mmteach.marginal",
    "fit_gee": "mmteach.marginal",
    "proportion_t_test": "mmteach.marginal",
    "fit_bayes_glmm": "mmteach.bayes",
    "bayes_factor": "mmteach.bayes",
    "load_dataset": "mmteach.datasets",
    "list_datasets": "mmteach.datasets",
    "dataset_label": "mmteach.datasets",
    "resolve_data": "mmteach.datasets",
    "simulate_report": "mmteach.simulate",
    "simulate_type1": "mmteach.simulate",
    "type1_curve": "mmteach.simulate",
    "MMTeachError": "mmteach.errors",
    "FormulaError": "mmteach.errors",
    "DataError": "mmteach.errors",
    "ModelError": "mmteach.errors",
    "FitResult": "mmteach.results",
    "Comparison": "mmteach.results",
    "PerGroupResult": "mmteach.results",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mmteach' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
