"""Streamlit side of the computed text: result sentences and comparison tables with estimability notes."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import pandas as pd
import streamlit as st

from mmteach import narrative as N
from mmteach import tables as F
from ui import compute, display
from ui.state import presenting

_MARKDOWN = re.compile(r"([\\`*_{}\[\]<>#|~$])")


def plain(text: str) -> str:
    """Text shown as it is: Markdown's special characters escaped (column names may hold them)."""
    return _MARKDOWN.sub(r"\\\1", text)


def say(text: str, *, lead: str | None = None, box: str | None = None) -> None:
    """A computed sentence; ``lead`` is a bold opening ("Read the table:"), ``box`` "info" frames it."""
    body = (f"**{lead}** " if lead else "") + plain(text)
    if box == "info":
        st.info(body)
    else:
        st.markdown(body)


def stacked(long: pd.DataFrame, *, alpha: float = 0.05) -> pd.DataFrame:
    """One column per term, estimate ± SE over its p-value (a projector-wide table); df left out."""
    out = pd.DataFrame(index=pd.Index(list(dict.fromkeys(long["analysis"])), name="analysis"))
    for label in dict.fromkeys(long["label"]):
        sub = long[long["label"] == label].set_index("analysis")
        out[str(label)] = [
            "–" if F.is_missing(sub.loc[a, "estimate"]) else
            f"{F.fmt_est_se(sub.loc[a, 'estimate'], sub.loc[a, 'std_error'])}\np\u00a0=\u00a0"
            f"{F.fmt_p(sub.loc[a, 'p_value'], alpha)}" for a in out.index]
    return out


def comparison_table(long: pd.DataFrame, data: pd.DataFrame, *, key: str, group: str,
                     variables: Sequence[str], fixed: str | None, per_group: str | None,
                     per_group_fit: pd.DataFrame | None = None, group_word: str = "mouse") -> pd.DataFrame:
    """The side-by-side table with rows that cannot be estimated blanked and told why; returns the marked rows.

    In presentation mode estimate and p are stacked in one cell per term so the table fits
    a 1280 px projector.
    """
    marked = compute.derived(N.estimability, long, data, group=group, variables=tuple(variables), fixed=fixed,
                             per_group=per_group, per_group_fit=per_group_fit, group_word=group_word)
    table = compute.derived(stacked if presenting() else F.format_side_by_side, marked)
    notes = compute.derived(N.notes_by_analysis, marked)
    if notes:
        table["why no estimate"] = [notes.get(a, "") for a in table.index]
    display.show_table(table, name="comparison table", key=key)
    return marked


def missing_reasons(analyses: Any) -> dict[str, str]:
    """The reason each failed fit of a ``compute.Analyses`` gave, keyed by its label."""
    out: dict[str, str] = {}
    for msg in getattr(analyses, "errors", []):
        label, _, reason = str(msg).lstrip("*").partition(":")
        out[label.strip()] = reason.split("Detail:")[-1].strip(" *\n")
    return out
