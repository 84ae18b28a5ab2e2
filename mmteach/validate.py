"""Checks on the data before any fit: names, values, ids, constant and near-collinear columns, size.

Each check either raises a :class:`~mmteach.errors.DataError` whose message says what is
wrong in the student's data, why a model cannot use it and what to do, or returns a note
that the fit carries in its messages. Nothing is changed silently: a value is never
replaced, a column never renamed or swapped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from mmteach.errors import DataError
from mmteach.formula import quote_name

# Numbers outside [1e-100, 1e100] in size make sums of squares overflow or underflow to 0
# (1e300 squared is inf; 1e-300 squared is 0), so a fit would show inf or NaN.
MAX_ABS = 1e100
MIN_ABS = 1e-100
# Integers above 2**53 cannot all be stored exactly as floating-point numbers: two mouse
# ids such as 10000000000000000001 and 10000000000000000002 become the same number.
MAX_EXACT_ID = 2.0**53
# Condition number of the centred, unit-length predictor columns above which estimates
# and standard errors of the columns involved mean little (1 - r is about 2e-8 for two).
MAX_CONDITION = 1e4
# Cells of the fixed-effect model matrix (rows x columns) one analysis may build:
# 20 million doubles are 160 MB, and the work grows with rows x columns^2.
MAX_DESIGN_CELLS = 20_000_000
MAX_FIXED_COLUMNS = 1000


def _shown(name: object) -> str:
    return quote_name(str(name))


def check_column_names(names: Sequence[object]) -> None:
    """Refuse a header with duplicate or empty column names (a model could pick the wrong one).

    Examples
    --------
    >>> check_column_names(["res", "midx"])
    >>> check_column_names(["res", "res"])
    Traceback (most recent call last):
    ...
    mmteach.errors.DataError: The column name res appears 2 times in the header...
    """
    text = [str(n).strip() for n in names]
    dup = [(n, k) for n, k in Counter(text).items() if k > 1 and n]
    if dup:
        name, k = dup[0]
        raise DataError(
            f"The column name {_shown(name)} appears {k} times in the header, so it is not "
            "clear which column a model should use. Give every column its own name in the "
            "file and upload it again.")
    empty = [i + 1 for i, n in enumerate(text) if not n or n.startswith("Unnamed: ")]
    if empty:
        raise DataError(
            f"Column {empty[0]} of the header has no name (often an extra separator at the "
            "end of each line). Name it, or delete it, in the file and upload it again.")


def check_used_names(data: pd.DataFrame, used: Iterable[str]) -> None:
    """Refuse a formula that uses a column name the data hold more than once."""
    counts = Counter(str(c) for c in data.columns)
    for name in used:
        if counts.get(name, 0) > 1:
            raise DataError(
                f"The data have {counts[name]} columns named {_shown(name)}, so it is not clear "
                "which one the formula means. Rename one of them and try again.")


def _row_numbers(mask: np.ndarray) -> str:
    rows = np.flatnonzero(mask)[:3] + 1
    more = " and more" if mask.sum() > 3 else ""
    return ", ".join(str(r) for r in rows) + more


def check_values(frame: pd.DataFrame, numeric: Iterable[str], ids: Iterable[str]) -> None:
    """Refuse infinite or extreme numbers in the numeric columns a model uses, and id columns
    whose numbers are too large to be stored exactly."""
    for name in numeric:
        col = frame[name]
        if not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
            continue
        v = col.to_numpy(dtype=float)
        bad = ~np.isfinite(v)
        if bad.any():
            raise DataError(
                f"The column {_shown(name)} holds an infinite value in row(s) "
                f"{_row_numbers(bad)} of the rows used. A model cannot use an infinite "
                "measurement: correct or remove those rows.")
        size = np.abs(v)
        if size.max() > MAX_ABS:
            raise DataError(
                f"The column {_shown(name)} holds values as large as {size.max():.3g}; sums of "
                "squares of such numbers overflow, so no estimate would be trustworthy. Express "
                "it in other units (e.g. divide by a power of ten) and try again.")
        if 0 < size.max() < MIN_ABS:
            raise DataError(
                f"Every value of {_shown(name)} is smaller than {MIN_ABS:g} in size (the largest "
                f"is {size.max():.3g}); their squares underflow to 0, so no estimate would be "
                "trustworthy. Express it in other units (e.g. multiply by a power of ten).")
    for name in ids:
        col = frame[name]
        if pd.api.types.is_float_dtype(col):
            v = col.to_numpy(dtype=float)
            big = np.abs(v) > MAX_EXACT_ID
            if big.any():
                raise DataError(
                    f"The id column {_shown(name)} holds numbers as large as {np.abs(v).max():.3g}, "
                    "too large to keep every id distinct (different animals could merge into one). "
                    "Store such ids as text, e.g. write 'm' before each number, and try again.")


def check_response(y: np.ndarray, trials: np.ndarray | None, label: str) -> None:
    """Refuse a response with no variation: there is nothing for a model to explain, and a
    fit would report standard errors near 0 and p-values near 0 that mean nothing."""
    if y.size < 2:  # too few rows: the fit's own check says how many it needs
        return
    if trials is None:
        if np.ptp(y) == 0:
            raise DataError(
                f"The response {label} has the same value ({y[0]:.6g}) in every row used, so "
                "there is no variation for a model to explain (a fit would report standard "
                "errors near 0 and meaningless p-values). Check that you picked the response "
                "column you meant.")
        return
    if np.all(y == 0) or np.all(y == trials):
        which = "no successes" if np.all(y == 0) else "only successes"
        raise DataError(
            f"The response {label} has {which} in every row, so there is no variation to model "
            "(the estimates would run off to infinity). Check the columns of cbind(...).")


def check_design_size(n_rows: int, n_columns: int) -> None:
    """Refuse a fixed-effect model matrix too large to build in one request."""
    if n_columns > MAX_FIXED_COLUMNS or n_rows * n_columns > MAX_DESIGN_CELLS:
        raise DataError(
            f"The fixed part of this model has {n_columns:,} columns for {n_rows:,} rows, more "
            "than one analysis here may build. A predictor with very many categories (often "
            "an animal or cell id) belongs in a random-effect term such as (1 | id), not among "
            "the fixed effects.")


def predictor_notes(X: np.ndarray, names: Sequence[str], has_intercept: bool) -> list[str]:
    """Notes on near-collinear columns of a model matrix (exact copies are dropped elsewhere).

    Measured by the condition number of the columns centred (when there is an intercept)
    and scaled to unit length; the columns most involved are named.
    """
    cols = [j for j, n in enumerate(names) if n != "(Intercept)"]
    if len(cols) < 2 or X.shape[0] <= len(cols) or X.shape[0] * len(cols) ** 2 > 5e8:
        return []
    Z = X[:, cols]
    if has_intercept:
        Z = Z - Z.mean(axis=0)
    norms = np.linalg.norm(Z, axis=0)
    if np.any(norms == 0):
        return []
    _, s, vt = np.linalg.svd(Z / norms, full_matrices=False)
    cond = s[0] / s[-1] if s[-1] > 0 else np.inf
    if not cond > MAX_CONDITION:
        return []
    weight = np.abs(vt[-1])
    involved = [names[cols[j]] for j in np.argsort(-weight) if weight[j] > 0.1][:4]
    return [
        f"The predictors {', '.join(involved)} are almost exact linear combinations of each "
        f"other (condition number {cond:.2g}): the data cannot tell their effects apart, so "
        "their separate estimates and standard errors are unreliable. Keep one of them, or "
        "combine them."
    ]


def constant_notes(frame: pd.DataFrame, numeric: Iterable[str]) -> list[str]:
    """Notes on numeric predictors with one value in every row used (no effect to estimate)."""
    out = []
    for name in numeric:
        v = frame[name]
        if pd.api.types.is_numeric_dtype(v) and len(v) and v.nunique() == 1:
            out.append(
                f"The predictor {_shown(name)} has the same value ({v.iloc[0]}) in every row "
                "used, so its effect cannot be estimated from these data.")
    return out
