"""The Your-data page's upload and column choice: one reader (mmteach.reader) and guessed, changeable roles."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import streamlit as st

from mmteach.reader import MAX_MB, Roles, guess_roles, read_table
from ui import narrate
from ui.state import PageState

FAMILIES = ("gaussian", "binomial")


@st.cache_data(show_spinner=False, max_entries=16)
def read_upload(raw: bytes, name: str) -> pd.DataFrame:
    """An uploaded file through the same reader as the CLI (cached on its bytes)."""
    return read_table(raw, name, max_mb=MAX_MB)


@st.cache_data(show_spinner=False, max_entries=16)
def roles_of(df: pd.DataFrame) -> Roles:
    return guess_roles(df)


@dataclass(frozen=True)
class Choice:
    """The columns the student picked (or kept from the suggestion)."""

    response: str
    predictors: tuple[str, ...]
    group: str | None
    factors: tuple[str, ...]
    family: str


def reset_on_new_data(ps: PageState, df: pd.DataFrame, token: str) -> Roles:
    """Fill the column controls with the guessed roles whenever the data change (a new file, another set).

    Call before the column widgets are drawn. Returns the guess, so the page can show its reasons.
    """
    roles = roles_of(df)
    key = f"_{ps.page}.columns_token"
    columns = [str(c) for c in df.columns]
    stale = st.session_state.get(key) != token or ps["response"] not in columns
    if stale:
        ps.set("response", roles.response or columns[0])
        ps.set("predictors", list(roles.predictors))
        ps.set("group", roles.group or "")
        ps.set("factors", list(roles.factors))
        ps.set("family", roles.family)
    st.session_state[key] = token
    for name in ("predictors", "factors"):
        ps.set(name, [c for c in ps[name] if c in columns])
    if ps["group"] not in columns:
        ps.set("group", "")
    return roles


def column_widgets(ps: PageState, df: pd.DataFrame, roles: Roles) -> None:
    """Response, predictors, grouping and family, pre-filled with the guess and always changeable."""
    columns = [str(c) for c in df.columns]
    a, b = st.columns([1, 1])
    a.selectbox("Response", columns, key=ps.key("response"))
    b.multiselect("Predictors", columns, key=ps.key("predictors"))
    c, d = st.columns([1, 1])
    c.selectbox("Grouping (animal)", [""] + columns, key=ps.key("group"),
                format_func=lambda v: v or "— choose the column naming the animal —")
    d.radio("Family", FAMILIES, key=ps.key("family"), horizontal=True)
    with st.expander("Why these columns were suggested"):
        for reason in roles.reasons:
            st.markdown("- " + narrate.plain(reason))


def read_notes(df: pd.DataFrame) -> None:
    """How the file was read (encoding, delimiter, decimal commas), in one caption."""
    notes = df.attrs.get("read_notes")
    if notes:
        st.caption(narrate.plain(f"Read {len(df):,} rows and {df.shape[1]} columns: {'; '.join(notes)}."))
