"""Streamlit's serialisation of a shared table, done once per table instead of on every rerun.

``st.dataframe`` of a pandas Styler converts, on every rerun of every session, the data to
Arrow bytes and the display text to a second Arrow table (``astype(str)`` of the whole frame,
then one ``iloc`` assignment per column; on pandas' Arrow-backed text that is the slow part).
For a table from :func:`ui.display.shared_table` both depend only on the cached Styler, which
nobody modifies: in a class of 36 load-test students the two were 8% of the server's script
time (py-spy, 1 Dec 2026). This module keeps the bytes of those tables.

It wraps two functions of Streamlit 1.67 (``requirements.txt`` pins it): the Arrow
serialisation, for frames registered here, and the display-values step, for translated
styles marked here. Everything else passes through unchanged, and ``tests/test_display.py``
checks that the messages are byte for byte those Streamlit makes itself and that the
wrapped names still exist (a Streamlit upgrade that renames them fails the test, not the app).
"""

from __future__ import annotations

import re
import threading
import weakref
from enum import Enum
from typing import Any

import pandas as pd
from streamlit import dataframe_util
from streamlit.elements.lib import pandas_styler_utils

# translated styles (the dict pandas' Styler._translate returns) carry their display bytes here
_DISPLAY_BYTES = "_mmteach_display_values"
_SHARED_STYLES = "_mmteach_shared"

_FRAMES: dict[int, tuple[weakref.ref, bytes | None]] = {}
_LOCK = threading.Lock()
_arrow_bytes = dataframe_util.convert_pandas_df_to_arrow_bytes
_display_values = pandas_styler_utils._marshall_display_values


def share_frame(df: Any) -> None:
    """Mark ``df`` (a shared Styler's data, never modified) so its Arrow bytes are made once."""
    with _LOCK:
        if len(_FRAMES) > 4096:  # forget frames that are gone
            for k in [k for k, (ref, _) in _FRAMES.items() if ref() is None]:
                del _FRAMES[k]
        hit = _FRAMES.get(id(df))
        if hit is None or hit[0]() is not df:
            _FRAMES[id(df)] = (weakref.ref(df), None)


def share_styles(styles: dict[str, Any]) -> dict[str, Any]:
    """Mark a shared Styler's translated styles so their display values are serialised once."""
    styles[_SHARED_STYLES] = True
    return styles


def _arrow_bytes_once(df: Any, *args: Any, **kwargs: Any) -> bytes:
    hit = _FRAMES.get(id(df))
    if args or kwargs or hit is None or hit[0]() is not df:
        return _arrow_bytes(df, *args, **kwargs)
    if hit[1] is None:
        data = _arrow_bytes(df)
        with _LOCK:
            _FRAMES[id(df)] = (hit[0], data)
        return data
    return hit[1]


_CELL = re.compile(r"row(\d+)_col(\d+)")


def _display_frame(df: pd.DataFrame, styles: dict[str, Any]) -> pd.DataFrame:
    """The frame of display text Streamlit's ``_use_display_values`` makes, built as lists.

    Streamlit writes the display text into ``df.astype(str)`` with one ``iloc`` assignment
    per column, which on Arrow-backed text costs ~1 ms a column; the same cells gathered in
    plain lists and made into columns once give the same frame (and the same bytes, checked
    in tests/test_shared_display.py) in a fraction of the time.
    """
    text = df.astype(str)
    columns = [text.iloc[:, j].tolist() for j in range(text.shape[1])]
    for row in styles.get("body", []):
        for cell in row:
            match = _CELL.match(cell.get("id") or "")
            if match:
                value = cell.get("display_value")
                columns[int(match[2])][int(match[1])] = str(value.value if isinstance(value, Enum) else value)
    out = pd.DataFrame({j: pd.array(values, dtype=text.dtypes.iloc[j]) for j, values in enumerate(columns)},
                       index=text.index)
    out.columns = text.columns
    return out


def _display_values_once(proto: Any, df: Any, styles: Any) -> None:
    if not (isinstance(styles, dict) and styles.get(_SHARED_STYLES)):
        _display_values(proto, df, styles)
        return
    data = styles.get(_DISPLAY_BYTES)
    if data is None:
        data = styles[_DISPLAY_BYTES] = _arrow_bytes(_display_frame(df, styles))
    proto.styler.display_values = data


def install() -> None:
    """Wrap Streamlit's two serialisation steps (idempotent)."""
    dataframe_util.convert_pandas_df_to_arrow_bytes = _arrow_bytes_once
    pandas_styler_utils._marshall_display_values = _display_values_once
