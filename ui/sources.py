"""The data a page analyses: built-in examples, original-file uploads, and where they come from.

An uploaded original lives in one browser session's state. While it is in use the page's
link carries ``data=original`` (through ui/state.PageState.sync), so when the session is
lost (a server restart, a dropped connection) the next run can tell: it says the file is
gone and which data the page shows now, and the per-mouse controls the link set for the
original file go back to the defaults instead of being applied to other data.
"""

from __future__ import annotations

import re

import pandas as pd
import streamlit as st

from mmteach import budget
from mmteach.datasets import load_dataset
from mmteach.errors import MMTeachError
from ui import display

RECONSTRUCTION_LABEL = "Reconstruction calibrated to the published results"
ORIGINAL_LABEL = "Original file"
# The original file of each example, under the name it was published with.
ORIGINAL_FILES = {"ca_frequency": "Example2.txt", "ca_amplitude": "Example3.txt",
                  "water_lick": "waterlick_sim.txt"}
# The mouse column of each example: its pages draw a slider and a figure panel per mouse.
MOUSE_COLUMN = {"ca_frequency": "midx", "ca_amplitude": "midx", "water_lick": "mouseID"}


@st.cache_data(show_spinner=False, max_entries=64)
def load(name: str) -> pd.DataFrame:
    """A built-in data set (cached; the attrs keep its source label)."""
    return load_dataset(name)


@st.cache_data(show_spinner=False, max_entries=16)
def _load_original(name: str, raw: bytes, filename: str) -> pd.DataFrame:
    df = load_dataset(name, override=raw)
    df.attrs["source_file"] = filename
    return df


def _original_key(name: str) -> str:
    return f"_original.{name}"


def dataset(name: str) -> pd.DataFrame:
    """The data of example ``name``: the original file uploaded in this session if there
    is one (see :func:`original_file_picker`), else the built-in data."""
    stored = st.session_state.get(_original_key(name))
    if stored is not None:
        filename, raw = stored
        return _load_original(name, raw, filename)
    return load(name)


def source_label(df: pd.DataFrame) -> str:
    """"Original file (Example2.txt, uploaded)" or the reconstruction's label."""
    label = df.attrs.get("source_label", RECONSTRUCTION_LABEL)
    if df.attrs.get("source_file"):
        label = f"{label} ({df.attrs['source_file']}, uploaded)"
    return label


def _on_original_upload(name: str) -> None:
    up = st.session_state.get(f"_original_upload.{name}")
    st.session_state.pop(f"_original_error.{name}", None)
    st.session_state.pop(f"_original_gone.{name}", None)
    if up is None:  # the file was removed from the uploader: back to the built-in data
        st.session_state.pop(_original_key(name), None)
        return
    raw = up.getvalue()
    try:
        df = _load_original(name, raw, up.name)
    except MMTeachError as err:
        st.session_state[f"_original_error.{name}"] = (up.name, str(err))
        return
    mice = df[MOUSE_COLUMN[name]].nunique()
    if budget.skip_reason("per_group_plot", mice, len(df), label="x"):
        st.session_state[f"_original_error.{name}"] = (up.name, (
            f"This file has {mice:,} mice. The example pages draw a slider and a figure panel for "
            f"every mouse, so they take at most {budget.LIMITS['per_group_plot'].max_groups}; the "
            f"original {ORIGINAL_FILES[name]} has far fewer. To analyse these data, upload the file "
            "on the Your data page."))
        return
    st.session_state[_original_key(name)] = (up.name, raw)


def _back_to_reconstruction(name: str) -> None:
    st.session_state.pop(_original_key(name), None)
    st.session_state.pop(f"_original_error.{name}", None)
    st.session_state.pop(f"_original_upload.{name}", None)
    st.session_state.pop(f"_original_gone.{name}", None)


def original_file_picker(name: str) -> None:
    """An expander to upload the original file of example ``name``.

    The file is checked by the original-format reader; a good file replaces the built-in
    data on every page of this session (through :func:`dataset`), a malformed one gets the
    reader's message. A button goes back to the built-in data.
    """
    filename = ORIGINAL_FILES[name]
    stored = st.session_state.get(_original_key(name))
    try:
        where = source_label(dataset(name))
    except MMTeachError:
        where = RECONSTRUCTION_LABEL
    ask = "" if stored else f" (have the original {filename}?)"
    with st.expander(f"Data: {where}{ask}"):
        st.markdown(
            f"The built-in data are a *{RECONSTRUCTION_LABEL.lower()}*: they have the "
            f"published design and reproduce the published estimates, but the values are "
            f"simulated. If you have the original **{filename}** (format as published), "
            "upload it: every page then analyses it instead, until you go back or reload "
            "the browser tab (an upload lives in this browser session only)."
        )
        st.file_uploader(f"Original {filename}", type=["txt", "csv", "tsv"],
                         key=f"_original_upload.{name}", on_change=_on_original_upload,
                         args=(name,))
        if stored:
            st.button("Back to the reconstruction", key=f"_original_reset.{name}",
                      on_click=_back_to_reconstruction, args=(name,))
    error = st.session_state.get(f"_original_error.{name}")
    if error:
        display.error(f"The file {error[0]} was not used", error[1])


# Per-mouse controls are named n<mouse> on every example page (cells or trials per mouse).
_PER_MOUSE_PARAM = re.compile(r"n\d+\Z")


def _check_lost_original(name: str) -> None:
    """Notice an original file that this page's link says was in use but that this browser
    session does not hold (the server restarted or the session was lost)."""
    known = f"_original_known.{name}"
    if known not in st.session_state:  # the first run of this page in this session
        st.session_state[known] = True
        if st.query_params.get("data") == "original" and _original_key(name) not in st.session_state:
            st.session_state[f"_original_gone.{name}"] = True
            for key in [k for k in st.query_params if _PER_MOUSE_PARAM.match(k)]:
                del st.query_params[key]  # they were set for the lost file, not for these data
    if st.session_state.get(f"_original_gone.{name}"):
        st.warning(
            f"The original file {ORIGINAL_FILES[name]} you uploaded is no longer on the server "
            "(it restarted, or this browser lost its connection; uploads live in one browser "
            f"session only). This page now shows the {RECONSTRUCTION_LABEL.lower()}, with "
            "every mouse's data. Upload the file again to go back to it."
        )


def example_data(name: str) -> pd.DataFrame:
    """An example page's data set (the original file if one was uploaded, with the picker
    to upload one); a file that cannot be read stops the page with its message. Call it
    before the page's PageState: it marks the link of a page that shows an original file
    and tells when such a file has been lost."""
    _check_lost_original(name)
    original_file_picker(name)
    uses_original = _original_key(name) in st.session_state
    st.session_state["_url_extra"] = {"data": "original"} if uses_original else {}
    try:
        return dataset(name)
    except MMTeachError as err:
        display.error("These data cannot be analysed", err)
        st.stop()
        raise  # unreachable: st.stop() ends the run


def source_note(df: pd.DataFrame, name: str) -> None:
    """Say where the data come from, under the data and in the sidebar."""
    label = source_label(df)
    st.caption(f"Data: **{name}** — {label}.")
    st.sidebar.caption(f"Data on this page: {label}.")


def data_download(df: pd.DataFrame, key: str) -> None:
    """A CSV download of exactly the rows the page analyses."""
    st.download_button(
        f"Download the data shown ({len(df):,} rows, CSV)", df.to_csv(index=False).encode(),
        file_name=f"{key}.csv", mime="text/csv", key=f"dl_data_{key}",
    )
