"""The Your-data page's upload and column choice: one reader, guessed and changeable roles, the model they make."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import streamlit as st

from mmteach.errors import DataError, MMTeachError
from mmteach.formula import parse_formula
from mmteach.reader import MAX_MB, Roles, guess_roles, quote, read_table, usable_rows
from ui import display, narrate
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


def model_rows(ps: PageState, df: pd.DataFrame) -> tuple[str, str, list[str], str, pd.DataFrame]:
    """The model the controls describe: ``(formula, response, predictors, group, rows used)``.

    Stops the page with a hint when no formula is typed yet, or with the teaching message when
    the model cannot be fitted to these columns; warns about the rows left out.
    """
    columns = [str(c) for c in df.columns]
    try:
        if ps["mode"] == "choose columns":
            response, predictors, group = ps["response"], list(ps["predictors"]), ps["group"] or None
            rhs = " + ".join(map(quote, predictors)) if predictors else "1"
            formula = f"{quote(response)} ~ {rhs} + (1 | {quote(group or '?')})"
        else:
            formula = ps["formula"].strip()
            if not formula:
                st.info("Type a formula, e.g. `res ~ treatment_idx + (1 | midx)`.")
                st.stop()
            parsed = parse_formula(formula, columns)
            if not parsed.grouping_columns():
                raise DataError("The formula has no random-effects term such as (1 | mouse): "
                                "add one naming the column of the animal.")
            response = parsed.response.columns()[0]
            group = parsed.grouping_columns()[0]
            # every grouping the engine accepts (a/b, (1|a) + (1|b)): the other grouping columns
            # are kept in the rows used; the first one is the animal of the plots and per-animal fits
            predictors = [v for v in parsed.variables() if v not in (response, group)]
        used, notes = usable_rows(df, response, predictors, group, ps["family"])
        for note in notes:
            display.note(note, kind="warning")
    except MMTeachError as err:
        display.error("This model cannot be fitted", err)
        st.stop()
    return formula, response, predictors, group, used
