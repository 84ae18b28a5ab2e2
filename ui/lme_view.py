"""Streamlit view of an LME asked for by structure: the fit beside a page's analyses, or why it is refused."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import streamlit as st

from mmteach.errors import MMTeachError, ModelError
from mmteach.lme import fit_lme
from ui import compute, display


def fit_or_refuse(analyses: compute.Analyses, label: str, formula: str, *, structure: str, group: str,
                  factors: Sequence[str], reml: bool, df_method: str, anyway: bool = False,
                  r_note: str = "", py_call: str = "") -> tuple[Any, dict[str, str]]:
    """Fit ``formula`` into ``analyses`` under ``label``; returns the fit (None when refused) and
    ``{label: why}`` for the reading of the table when it is missing.

    ``anyway`` fits a structure lme4 refuses as unidentifiable, as nlme does; without it such a
    refusal is a warning that says how to see nlme's numbers, not an error. ``r_note`` follows the
    fit's R code (e.g. the nlme call), ``py_call`` is the mmteach call shown.
    """
    data = analyses.data
    kwargs: dict[str, Any] = {"factors": factors, "reml": reml, "df_method": df_method}
    if anyway:
        kwargs["allow_unidentifiable"] = True
    try:
        lme = compute.call(fit_lme, data, formula, **kwargs)
    except MMTeachError as err:
        teach = display.too_few_groups(data[group].nunique())
        if teach:
            display.error(f"LME {structure}: {teach}", f"Detail: {err}")
        elif isinstance(err, ModelError) and not anyway:
            st.warning(f"**{structure} cannot be estimated from these data.** {err}")
            st.caption("Tick *fit anyway, as nlme does* to see what nlme reports: the numbers "
                       "exist, but the variances are not separately determined by the data.")
        else:
            display.error(f"LME {structure}", err)
        return None, {label: teach or f"{structure} cannot be fitted to these data (the message above says why)"}
    analyses.fits[label] = lme
    analyses.code[label] = (lme.r_code() + r_note, py_call)
    return lme, {}
