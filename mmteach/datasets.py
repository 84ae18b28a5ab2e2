"""Example data sets: the built-in reconstructions and readers for the original files.

The original files of Examples 2-4 of Yu et al. (2022) are not shipped. The built-in data
are *reconstructions calibrated to the published results* (see ``datasets/README.md``).
Whoever has an original file can put it in ``datasets/original/`` under its original name
(``Example2.txt``, ``Example3.txt``, ``waterlick_sim.txt``) or pass it as ``override=``;
it then replaces the reconstruction, and the label says "Original file".

Every returned DataFrame carries ``df.attrs["source_kind"]`` ("reconstruction" or
"original") and ``df.attrs["source_label"]`` (the text a page shows next to the data).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd

from mmteach import validate
from mmteach.errors import DataError

DATASETS_DIR = Path(__file__).resolve().parent.parent / "datasets"
ORIGINAL_LABEL = "Original file"
TIME_LABELS = {1: "24h", 2: "48h", 3: "72h", 4: "1wk"}

# What a reader accepts: a path, raw bytes (an upload), or an open text/binary buffer.
Source = str | Path | bytes | IO[str] | IO[bytes]


@lru_cache(maxsize=1)
def _index_text() -> str:
    # Cached as text (immutable), parsed fresh on every call so callers cannot mutate it.
    path = DATASETS_DIR / "index.json"
    if not path.exists():
        raise DataError(
            f"The data set index {path} is missing, so the built-in examples cannot be "
            "found. Restore datasets/index.json from the repository."
        )
    return path.read_text(encoding="utf-8")


def _index() -> dict:
    return json.loads(_index_text())


def _unknown_name(name: str) -> DataError:
    names = ", ".join(sorted(_index()))
    return DataError(
        f"There is no built-in data set called {name!r}. The built-in data sets are: "
        f"{names}. To use your own data, give the path of a CSV, TSV or "
        "whitespace-separated file with a header row."
    )


def list_datasets() -> pd.DataFrame:
    """List the built-in data sets.

    Returns
    -------
    pandas.DataFrame
        One row per data set with columns ``name, title, description, kind, label,
        columns, source, original_file``. ``kind`` and ``label`` describe what
        ``load_dataset`` returns now (an original file in ``datasets/original/`` wins).

    Examples
    --------
    >>> from mmteach.datasets import list_datasets
    >>> sorted(list_datasets()["name"])
    ['ca_amplitude', 'ca_frequency', 'water_lick']
    """
    rows = []
    for name, meta in _index().items():
        original = DATASETS_DIR / "original" / meta["original_file"]
        kind = "original" if original.exists() else meta["kind"]
        rows.append(
            {
                "name": name,
                "title": meta["title"],
                "description": meta["description"],
                "kind": kind,
                "label": ORIGINAL_LABEL if kind == "original" else meta["label"],
                "columns": ", ".join(c["name"] for c in meta["columns"]),
                "source": meta["source"],
                "original_file": meta["original_file"],
            }
        )
    return pd.DataFrame(rows)


def dataset_info(name: str) -> dict:
    """Metadata of one built-in data set from ``datasets/index.json``.

    Examples
    --------
    >>> from mmteach.datasets import dataset_info
    >>> dataset_info("water_lick")["formula"]
    'lick ~ dff + (1|mouseID)'
    """
    index = _index()
    if name not in index:
        raise _unknown_name(name)
    return index[name]


def dataset_label(name: str, *, original_dir: str | Path | None = None) -> str:
    """The label to show next to a built-in data set.

    Parameters
    ----------
    name : str
        Built-in name, e.g. ``"ca_frequency"``.
    original_dir : path, optional
        Where original files are looked for (default ``datasets/original``).

    Returns
    -------
    str
        ``"Original file"`` when the original file is present there, otherwise
        ``"Reconstruction calibrated to the published results"``.

    Examples
    --------
    >>> from mmteach.datasets import dataset_label
    >>> dataset_label("ca_frequency", original_dir="/nonexistent")
    'Reconstruction calibrated to the published results'
    """
    meta = dataset_info(name)
    folder = Path(original_dir) if original_dir is not None else DATASETS_DIR / "original"
    if (folder / meta["original_file"]).exists():
        return ORIGINAL_LABEL
    return meta["label"]


# ---------------------------------------------------------------------------------------
# Reading text tables
# ---------------------------------------------------------------------------------------


def _as_text(source: Source, what: str) -> str:
    """Text of a path, bytes or buffer, with a teaching error when it cannot be read."""
    if isinstance(source, bytes):
        data = source
    elif isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise DataError(
                f"The file {str(path)!r} for {what} does not exist. Check the path (it is "
                "relative to the folder you started the program from)."
            )
        data = path.read_bytes()
    elif hasattr(source, "read"):
        data = source.read()
        if hasattr(source, "seek"):
            source.seek(0)  # leave an uploaded buffer readable for the caller
    else:
        raise DataError(
            f"Cannot read {what} from a {type(source).__name__}; give a file path, the "
            "bytes of an uploaded file or an open file."
        )
    if isinstance(data, bytes):
        try:
            if data.startswith((b"\xff\xfe", b"\xfe\xff")):  # a UTF-16 text (Excel's "Unicode text")
                data = data.decode("utf-16")
            else:
                data = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            data = data.decode("latin-1")
    if "\x00" in data:
        raise DataError(
            f"The file given for {what} is not a text table (it holds binary bytes, e.g. from a "
            "spreadsheet or an image). Save it as CSV (comma separated values) and upload that."
        )
    if not data.strip():
        raise DataError(f"The file given for {what} is empty; it needs a header row and data.")
    return data


def _read_table(text: str, sep: str | None, what: str) -> pd.DataFrame:
    """Parse a text table; ``sep=None`` means runs of whitespace."""
    try:
        if sep is None:
            df = pd.read_csv(io.StringIO(text), sep=r"\s+", na_values=["NA", "."])
        else:
            df = pd.read_csv(io.StringIO(text), sep=sep, na_values=["NA", "."],
                             skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        # pandas' own wording ("Error tokenizing data. C error: ...") means nothing to a student
        line = re.search(r"line (\d+)", str(err))
        where = f" (line {line.group(1)})" if line else ""
        raise DataError(
            f"{what} could not be read as a table{where}: a line has more fields than the "
            "header, or a quote mark (\") is not closed. It should have a header row and the "
            "same number of fields on every line."
        ) from err
    # R's write.csv/write.table add a row-name column ("", "X" or "Unnamed: 0"): drop it.
    first = str(df.columns[0])
    header = _header_names(text, sep)
    if first.startswith("Unnamed") or first == "X":
        df = df.drop(columns=df.columns[0])
        header = header[1:]
    # pandas renames a repeated name to "x.1" and an empty one to "Unnamed: 3": refuse both
    validate.check_column_names(header)
    df.columns = [str(c).strip().strip('"') for c in df.columns]
    return df


def _header_names(text: str, sep: str | None) -> list[str]:
    """The column names as written in the header line (before pandas renames any)."""
    line = next((ln for ln in text.splitlines() if ln.strip()), "")
    if sep is None:
        return line.split()
    return [c.strip() for c in next(csv.reader([line], delimiter=sep, skipinitialspace=True), [])]


def _require_columns(df: pd.DataFrame, needed: tuple[str, ...], what: str) -> None:
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise DataError(
            f"{what} has no column {', '.join(repr(c) for c in missing)}. It needs the "
            f"columns {', '.join(needed)} (found: {', '.join(map(str, df.columns))}). "
            "Check the header row and the separator."
        )
    if df.dropna(how="all").empty:
        raise DataError(
            f"{what} has a header row but no data rows, so there is nothing to analyse. "
            "Check that you picked the complete file."
        )


def _numeric(df: pd.DataFrame, col: str, what: str, *, allow_na: bool) -> pd.Series:
    """Column as numbers; non-numeric entries are reported with their row."""
    values = pd.to_numeric(df[col], errors="coerce")
    bad = values.isna() & df[col].notna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"Column {col!r} of {what} must be numeric, but row {row + 1} holds "
            f"{df[col].iloc[row]!r}. Fix or remove that entry (write NA for a missing "
            "value)."
        )
    if not allow_na and values.isna().any():
        row = int(np.flatnonzero(values.isna().to_numpy())[0])
        raise DataError(
            f"Column {col!r} of {what} has a missing value in row {row + 1}; this column "
            "identifies the design and cannot be missing."
        )
    big = ~np.isfinite(values) & values.notna() | (values.abs() > validate.MAX_ABS)
    if big.any():
        row = int(np.flatnonzero(big.to_numpy())[0])
        value = "an infinite value" if np.isinf(values.iloc[row]) else f"{values.iloc[row]:g}"
        raise DataError(
            f"Column {col!r} of {what} holds {value} in row {row + 1}, a number too large for "
            "any analysis to use. Correct that entry."
        )
    return values


def _integer_codes(values: pd.Series, col: str, what: str) -> pd.Series:
    if not np.allclose(values, np.round(values)):
        raise DataError(
            f"Column {col!r} of {what} must hold whole-number codes, but it has "
            f"{values[values != np.round(values)].iloc[0]!r}."
        )
    if (values.abs() > validate.MAX_EXACT_ID).any():
        raise DataError(
            f"Column {col!r} of {what} holds codes as large as {values.abs().max():.3g}, too large "
            "to keep every code distinct (different animals could merge). Use small whole numbers."
        )
    return values.round().astype("int64")


def _tag(df: pd.DataFrame, kind: str, label: str, name: str) -> pd.DataFrame:
    df.attrs["source_kind"] = kind
    df.attrs["source_label"] = label
    df.attrs["dataset"] = name
    return df


# ---------------------------------------------------------------------------------------
# Original-format readers
# ---------------------------------------------------------------------------------------


def read_example2(path_or_buffer: Source) -> pd.DataFrame:
    """Read ``Example2.txt`` (Ca++ event frequency) in its original format.

    The original is comma separated with a header ``res, treatment_idx, midx`` and codes
    the time points 5 to 8. As in the published analysis, 4 is subtracted so that
    1 = 24h is the reference level; a ``time`` label column is added.

    Parameters
    ----------
    path_or_buffer : path, bytes or file object
        The file, e.g. an upload's bytes.

    Returns
    -------
    pandas.DataFrame
        Columns ``res, treatment_idx (1..4), midx, time``.

    Raises
    ------
    DataError
        Missing columns, non-numeric values or time codes other than 5-8.

    Examples
    --------
    >>> from mmteach.datasets import read_example2
    >>> df = read_example2(b"res,treatment_idx,midx\\n0.5,5,1\\n0.7,6,1\\n")
    >>> df["time"].tolist()
    ['24h', '48h']
    """
    what = "the Example 2 file"
    df = _read_table(_as_text(path_or_buffer, what), ",", what)
    _require_columns(df, ("res", "treatment_idx", "midx"), what)
    res = _numeric(df, "res", what, allow_na=True)
    code = _integer_codes(_numeric(df, "treatment_idx", what, allow_na=False),
                          "treatment_idx", what)
    midx = _integer_codes(_numeric(df, "midx", what, allow_na=False), "midx", what)
    codes = set(code.unique())
    if codes <= {5, 6, 7, 8}:
        code = code - 4
    elif not codes <= {1, 2, 3, 4}:
        raise DataError(
            f"Column 'treatment_idx' of {what} should code the time points 5 = 24h, "
            f"6 = 48h, 7 = 72h, 8 = 1 week (or 1-4 once recoded), but it holds "
            f"{sorted(int(c) for c in codes)}. Is this the right file?"
        )
    out = pd.DataFrame({"res": res.astype(float), "treatment_idx": code, "midx": midx})
    out["time"] = out["treatment_idx"].map(TIME_LABELS)
    return out


def read_example3(path_or_buffer: Source) -> pd.DataFrame:
    """Read ``Example3.txt`` (Ca++ event amplitude) in its original format.

    Comma separated, header ``res, treatment, midx, cidx``; missing amplitudes are
    written ``NA`` and kept as NaN (the analysis drops those rows).

    Returns
    -------
    pandas.DataFrame
        Columns ``res, treatment (1 = baseline, 2 = 24h), midx, cidx``.

    Raises
    ------
    DataError
        Missing columns, non-numeric values, or treatment codes other than 1 and 2.

    Examples
    --------
    >>> from mmteach.datasets import read_example3
    >>> df = read_example3(b"res,treatment,midx,cidx\\n2.1,1,1,1\\nNA,2,1,1\\n")
    >>> int(df["res"].isna().sum())
    1
    """
    what = "the Example 3 file"
    df = _read_table(_as_text(path_or_buffer, what), ",", what)
    _require_columns(df, ("res", "treatment", "midx", "cidx"), what)
    out = pd.DataFrame({"res": _numeric(df, "res", what, allow_na=True).astype(float)})
    for col in ("treatment", "midx", "cidx"):
        out[col] = _integer_codes(_numeric(df, col, what, allow_na=False), col, what)
    codes = set(out["treatment"].unique())
    if not codes <= {1, 2}:
        raise DataError(
            f"Column 'treatment' of {what} should be 1 (baseline) or 2 (24h after "
            f"ketamine), but it holds {sorted(int(c) for c in codes)}."
        )
    return out


def read_waterlick(path_or_buffer: Source) -> pd.DataFrame:
    """Read ``waterlick_sim.txt`` (water-lick task) in its original format.

    Whitespace separated with a header ``mouseID lick dff``.

    Returns
    -------
    pandas.DataFrame
        Columns ``mouseID, lick (0/1), dff``.

    Raises
    ------
    DataError
        Missing columns, non-numeric values, or a ``lick`` that is not 0/1.

    Examples
    --------
    >>> from mmteach.datasets import read_waterlick
    >>> df = read_waterlick(b"mouseID lick dff\\n1 0 2.5\\n1 1 7.25\\n")
    >>> df["lick"].tolist()
    [0, 1]
    """
    what = "the water-lick file"
    df = _read_table(_as_text(path_or_buffer, what), None, what)
    _require_columns(df, ("mouseID", "lick", "dff"), what)
    out = pd.DataFrame()
    out["mouseID"] = _integer_codes(_numeric(df, "mouseID", what, allow_na=False),
                                    "mouseID", what)
    lick = _numeric(df, "lick", what, allow_na=False)
    if not set(lick.unique()) <= {0, 1}:
        raise DataError(
            f"Column 'lick' of {what} must be 1 (correct) or 0 (wrong) for every trial, "
            f"but it holds {sorted(lick.unique().tolist())[:6]}. A logistic GLMM models "
            "a yes/no outcome."
        )
    out["lick"] = lick.astype("int64")
    out["dff"] = _numeric(df, "dff", what, allow_na=True).astype(float)
    return out


READERS: dict[str, Callable[[Source], pd.DataFrame]] = {
    "ca_frequency": read_example2,
    "ca_amplitude": read_example3,
    "water_lick": read_waterlick,
}


# ---------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------


def _read_builtin_csv(name: str) -> pd.DataFrame:
    path = DATASETS_DIR / f"{name}.csv"
    if not path.exists():
        raise DataError(
            f"The built-in file {path} is missing. Rebuild it with "
            "`python datasets/build_reconstructions.py`."
        )
    df = pd.read_csv(path, na_values=["NA"])
    if name == "ca_frequency":
        df["time"] = df["time"].astype(str)
    return df


def load_dataset(
    name: str,
    *,
    override: Source | None = None,
    original_dir: str | Path | None = None,
) -> pd.DataFrame:
    """Load a built-in data set (the original file if there is one).

    Parameters
    ----------
    name : str
        ``"ca_frequency"``, ``"ca_amplitude"`` or ``"water_lick"`` (see
        :func:`list_datasets`).
    override : path, bytes or file object, optional
        An original-format file to use instead (e.g. the bytes of an upload in the app).
    original_dir : path, optional
        Folder searched for the original file under its original name (``Example2.txt``,
        ``Example3.txt``, ``waterlick_sim.txt``); default ``datasets/original``.

    Returns
    -------
    pandas.DataFrame
        The data, with ``attrs["source_kind"]`` ("original" or "reconstruction") and
        ``attrs["source_label"]``.

    Raises
    ------
    DataError
        Unknown name, or an original file that is malformed.

    Examples
    --------
    >>> from mmteach.datasets import load_dataset
    >>> df = load_dataset("ca_frequency", original_dir="/nonexistent")
    >>> len(df), df.attrs["source_label"]
    (1724, 'Reconstruction calibrated to the published results')
    """
    meta = dataset_info(name)
    reader = READERS[name]
    if override is not None:
        return _tag(reader(override), "original", ORIGINAL_LABEL, name)
    folder = Path(original_dir) if original_dir is not None else DATASETS_DIR / "original"
    original = folder / meta["original_file"]
    if original.is_file():
        return _tag(reader(original), "original", ORIGINAL_LABEL, name)
    return _tag(_read_builtin_csv(name), meta["kind"], meta["label"], name)


def resolve_data(name_or_path: str | Path) -> pd.DataFrame:
    """A built-in data set by name, or a data file by path (the CLI's DATA argument).

    Files named like an original (``Example2.txt`` ...) go through that reader; other
    files go through :func:`mmteach.reader.read_table`, the reader of the app's upload page
    (encodings, delimiters and decimal commas sniffed).

    Raises
    ------
    DataError
        Neither a built-in name nor an existing file; the message lists the built-in names.

    Examples
    --------
    >>> from mmteach.datasets import resolve_data
    >>> resolve_data("water_lick").shape
    (512, 3)
    """
    text = str(name_or_path)
    index = _index()
    if text in index:
        return load_dataset(text)
    path = Path(text)
    if not path.is_file():
        names = ", ".join(sorted(index))
        raise DataError(
            f"{text!r} is neither a built-in data set nor an existing file. Built-in data "
            f"sets: {names}. Otherwise give the path of a CSV, TSV or whitespace-separated "
            "file with a header row."
        )
    for name, meta in index.items():
        if path.name == meta["original_file"]:
            return _tag(READERS[name](path), "original", ORIGINAL_LABEL, name)
    from mmteach.reader import read_table  # the same reader as the app's upload page

    return read_table(path, path.name)
