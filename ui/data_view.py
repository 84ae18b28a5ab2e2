"""Streamlit view of the Your-data rows in figures: all groups pooled beside one panel per group."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import streamlit as st

from mmteach import figures as F
from mmteach.errors import MMTeachError
from ui import compute, display


def group_figures(used: pd.DataFrame, response: str, first: str | None, group: str, *,
                  factors: Sequence[str], family: str) -> None:
    """The figures of ``response`` against the first predictor, pooled and by ``group``
    (none without a predictor, or beyond the budget's groups, with a note saying so)."""
    n_groups = used[group].nunique()
    left, right = display.columns(2)
    try:
        display.check_plottable(used, group)
        if first is not None and display.skipped("per_group_plot", n_groups, len(used), unit=f"{group} levels",
                                                 label=f"The figure by {group}", plural=False):
            pass
        elif first is not None and (first in factors or not pd.api.types.is_numeric_dtype(used[first])):
            few = n_groups <= 4  # beside the pooled plot; more groups get the full width
            with left if few else st.container():
                display.show_fig(compute.fig(F.pooled_boxplot, used, response, first, title="All groups pooled"))
            with right if few else st.container():
                display.show_fig(compute.fig(F.per_mouse_boxplot, used, response, first, group,
                                             cols=2 if few else 4, group_name=group, unit="rows"))
        elif first is not None and family == "binomial":
            with left:
                display.show_fig(F.lick_proportion_curves(
                    F.binned_proportions(used, response, first, group), x_title=first,
                    y_title=f"proportion {response} = 1", group_name=group))
        elif first is not None:
            with left:
                display.show_fig(compute.fig(F.group_scatter, used, response, first, group, group_name=group))
    except MMTeachError as err:
        display.error("These data cannot be drawn", err)
