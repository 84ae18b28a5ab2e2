"""One reader for uploaded tables (app and CLI): encodings, delimiters, decimal commas, and column roles guessed."""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd

from mmteach.errors import DataError
from mmteach.formula import quote_name

MAX_MB = 20
# one field may be as long as the whole file (the csv module stops at 128 kB with an error)
csv.field_size_limit(int(MAX_MB * 2**20))
NA_VALUES = ["NA", ".", "", "NaN", "nan", "N/A", "n/a", "#N/A", "NULL", "null", "missing"]
SEPARATORS = {",": "comma", ";": "semicolon", "\t": "tab", "|": "vertical bar"}
_DECIMAL_COMMA = re.compile(r"^\s*[-+]?\d+,\d+(?:[eE][-+]?\d+)?\s*$")
_NUMBER_COMMA = re.compile(r"(?<![\d.])[-+]?\d+,\d+(?![\d.])")
# names of a column that identifies the animal (mouse, rat, subject, ...)
_GROUP_NAME = re.compile(
    r"(^|[^a-z])(mouse|mice|animal|subject|subj|rat|monkey|fish|participant|patient|individual|"
    r"donor|litter|cage|m?idx|mouseid|animalid|id)([^a-z]|$)|^(mouse|animal|subject|rat)",
    re.IGNORECASE)
# names of a column that identifies a unit inside the animal (never the response)
_ID_NAME = re.compile(r"(^|[^a-z])(id|idx|index|cell|cidx|neuron|roi|trial|row|unit|n)([^a-z]|$)|id$",
                      re.IGNORECASE)
_RESPONSE_NAME = re.compile(
    r"^(res|resp|response|y|outcome|value|amplitude|amp|freq|frequency|rate|score|lick|correct|"
    r"success|hit|signal|measurement|dv)([^a-z]|$)", re.IGNORECASE)
_FACTOR_NAME = re.compile(r"(treat|time|condition|cond|group|genotype|sex|day|session|phase|dose|"
                          r"drug|stage|period|arm)", re.IGNORECASE)

Source = str | Path | bytes | IO[bytes]


def _raw_bytes(source: Source, name: str) -> bytes:
    if isinstance(source, bytes):
        return source
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise DataError(f"There is no file {str(path)!r}. Check the path (it is relative to the "
                            "folder you started the program from).")
        return path.read_bytes()
    if hasattr(source, "read"):
        data = source.read()
        if hasattr(source, "seek"):
            source.seek(0)  # leave an uploaded buffer readable for the caller
        if isinstance(data, str):
            return data.encode("utf-8")
        return bytes(data)
    raise DataError(f"{name} cannot be read from a {type(source).__name__}; give a file path or "
                    "the bytes of an uploaded file.")


def decode(raw: bytes, name: str = "The file") -> tuple[str, str]:
    """The text of a file and the name of its encoding (UTF-8 with or without BOM, UTF-16, cp1252)."""
    if raw[:4] == b"PK\x03\x04" or raw[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1":
        raise DataError(f"{name} is a spreadsheet workbook (Excel), not a text table. In Excel "
                        "choose File > Save As > CSV (comma delimited) and upload that file.")
    if raw.startswith(codecs.BOM_UTF8):
        return raw[3:].decode("utf-8", errors="replace"), "UTF-8 with BOM"
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return raw.decode("utf-16", errors="replace"), "UTF-16"
    sample = raw[:2000]
    if sample and sample.count(b"\x00") > len(sample) // 4:
        # UTF-16 without a byte-order mark: every other byte of ASCII text is zero
        enc = "utf-16-le" if sample[1::2].count(b"\x00") > sample[0::2].count(b"\x00") else "utf-16-be"
        return raw.decode(enc, errors="replace"), "UTF-16"
    if b"\x00" in sample:
        raise DataError(f"{name} does not look like a text table (it holds binary data). Upload a "
                        "CSV or TSV file with a header row.")
    try:
        return raw.decode("utf-8"), "UTF-8"
    except UnicodeDecodeError:
        # Excel on Windows saves "CSV" in cp1252 (µ, °, ä); latin-1 never fails as a last resort
        try:
            return raw.decode("cp1252"), "Windows (cp1252)"
        except UnicodeDecodeError:
            return raw.decode("latin-1"), "Latin-1"


def _field_counts(lines: list[str], sep: str) -> list[int]:
    return [len(row) for row in csv.reader(lines, delimiter=sep)]


def sniff_separator(lines: list[str]) -> str | None:
    """The delimiter that splits the first lines into the same number (> 1) of fields; None = whitespace."""
    best: tuple[int, int, str] | None = None
    for sep in SEPARATORS:
        counts = _field_counts(lines, sep)
        if not counts:
            continue
        mode = max(set(counts), key=counts.count)
        # the header may lack the row-name column's name (R's write.table): one field fewer
        if mode < 2 or counts[0] not in (mode, mode - 1):
            continue
        score = (counts.count(mode), mode, sep)
        if best is None or score[:2] > best[:2]:
            best = score
    if best is not None and best[0] >= max(1, len(lines) // 2):
        return best[2]
    return None


def _drop_empty(df: pd.DataFrame) -> pd.DataFrame:
    empty_cols = [c for c in df.columns if df[c].isna().all() and (str(c).startswith("Unnamed") or
                                                                     not str(c).strip())]
    df = df.drop(columns=empty_cols)
    return df.dropna(how="all").reset_index(drop=True)


def _is_text(s: pd.Series) -> bool:
    return s.dtype == object or pd.api.types.is_string_dtype(s)


def _decimal_comma_columns(df: pd.DataFrame) -> list[str]:
    """Text columns whose every value is a number written with a decimal comma (e.g. "2,753")."""
    out = []
    for c in df.columns:
        if _is_text(df[c]):
            vals = df[c].dropna().astype(str)
            if len(vals) and vals.map(lambda v: bool(_DECIMAL_COMMA.match(v))).all():
                out.append(c)
    return out


def read_table(source: Source, name: str | None = None, *, max_mb: float = MAX_MB) -> pd.DataFrame:
    """Read a CSV/TSV/semicolon/whitespace table from a path, bytes or an uploaded buffer.

    Handles UTF-8 (with or without BOM), UTF-16 and Windows cp1252 text; comma, semicolon,
    tab, vertical-bar or whitespace delimiters; decimal commas; Excel's ``sep=;`` first line;
    trailing empty columns and rows; R's row-name column. ``df.attrs["read_notes"]`` lists
    what was detected, in words. Every failure is a DataError that says what to fix.
    """
    if name is None:
        name = Path(source).name if isinstance(source, (str, Path)) else getattr(source, "name", "the file")
    what = f"The file {name}"
    raw = _raw_bytes(source, what)
    if len(raw) > max_mb * 1024 * 1024:
        raise DataError(f"{what} is {len(raw) / 2**20:.1f} MB; the limit is {max_mb:g} MB. Upload a "
                        "smaller extract (e.g. fewer columns or rows).")
    text, encoding = decode(raw, what)
    text = text.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff")
    lines = [ln for ln in text.split("\n") if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise DataError(f"{what} is empty; it needs a header row and one row per observation.")
    notes = [f"encoding {encoding}"]
    sep: str | None
    m = re.fullmatch(r'\s*"?sep=(.)"?\s*', lines[0])
    if m:  # Excel's hint line names the delimiter
        sep = m.group(1)
        lines = lines[1:]
        notes.append("Excel 'sep=' line skipped")
        if not lines:
            raise DataError(f"{what} has no header row after its 'sep=' line.")
    else:
        sep = sniff_separator(lines[:50])
    header = next(csv.reader([lines[0]], delimiter=sep)) if sep else lines[0].split()
    header = [h.strip().strip('"') for h in header]
    while header and not header[-1]:
        header.pop()
    named = [h for h in header if h]
    dups = sorted({h for h in named if named.count(h) > 1})
    if dups:
        raise DataError(f"{what} has more than one column named {', '.join(map(repr, dups))}. Give "
                        "every column its own name in the header row, then upload it again.")
    body = "\n".join(lines)
    decimal = "."
    if sep in (";", "\t", None, "|") and len(_NUMBER_COMMA.findall(body[:20000])) > 0 \
            and not re.search(r"\d\.\d", body[:20000].split("\n", 1)[-1]):
        decimal = ","  # "2,753" with semicolons or tabs: a European decimal comma
    rows = (list(csv.reader(lines, delimiter=sep)) if sep else  # whitespace: quoted names may hold spaces
            [[f for f in r if f] for r in csv.reader([ln.strip().replace("\t", " ") for ln in lines],
                                                       delimiter=" ", skipinitialspace=True)])
    counts = [len(r) for r in rows[:50]]
    # R's write.table: the header has no name for the row-name column, every row one field more
    row_names = len(counts) > 1 and all(c == counts[0] + 1 for c in counts[1:])
    if not row_names:
        for i, r in enumerate(rows[1:], start=2):
            if len(r) > len(rows[0]) and any(f.strip() for f in r[len(rows[0]):]):
                raise DataError(f"{what} could not be read as a table: line {i} has {len(r)} fields but the "
                                f"header row has {len(rows[0])}. Every line needs the same number of fields "
                                "as the header; fix that line (a stray separator?) and upload it again.")
    try:
        df = pd.read_csv(io.StringIO(body), sep=sep if sep else r"\s+", decimal=decimal,
                         na_values=NA_VALUES, keep_default_na=True, skipinitialspace=bool(sep),
                         engine="c", index_col=0 if row_names else False)
        if row_names:
            df = df.reset_index(drop=True)
            notes.append("row-name column dropped")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, csv.Error) as err:
        # pandas' own words ("Error tokenizing data. C error: ...") mean nothing to a student
        text = str(err)
        line = re.search(r"(?:line|row) (\d+)", text)
        where = f" (near line {line.group(1)})" if line else ""
        detail = ('a quote mark (") is not closed' if "EOF inside string" in text or "quot" in text.lower()
                  else "a line does not split into the header's columns")
        raise DataError(f"{what} could not be read as a table{where}: {detail}. Every line should have the same "
                        "number of fields as the header row; save it as CSV with one row per "
                        "observation.") from err
    df.columns = [str(c).strip().strip('"') for c in df.columns]
    first = str(df.columns[0])
    if (first.startswith("Unnamed") or first in ("X", "")) and df.shape[1] > 1:
        df = df.drop(columns=df.columns[0])  # R's write.csv row names
        notes.append("row-name column dropped")
    ncols = df.shape[1]
    df = _drop_empty(df)
    if df.shape[1] < ncols:
        notes.append(f"{ncols - df.shape[1]} empty column(s) dropped")
    unnamed = [c for c in df.columns if c.startswith("Unnamed")]
    if unnamed:
        df = df.rename(columns={c: f"column{list(df.columns).index(c) + 1}" for c in unnamed})
        notes.append("columns without a header named column1, column2, ...")
    for c in df.columns:
        if _is_text(df[c]):
            df[c] = df[c].map(lambda v: v.strip() if isinstance(v, str) else v).replace("", np.nan)
    fixed = _decimal_comma_columns(df)
    for c in fixed:
        df[c] = pd.to_numeric(df[c].str.replace(",", ".", regex=False))
    for c in df.columns:  # numbers left as text by a stray NA spelling (e.g. "-")
        if _is_text(df[c]):
            num = pd.to_numeric(df[c], errors="coerce")
            if num.notna().sum() >= 0.95 * df[c].notna().sum() > 0 and df[c].notna().sum() > 2:
                df[c] = num
    if decimal == "," or fixed:
        notes.append("decimal commas")
    notes.insert(1, f"{SEPARATORS.get(sep, 'whitespace') if sep else 'whitespace'}-separated")
    if df.shape[1] < 2 or len(df) < 2:
        raise DataError(f"{what} was read as {df.shape[1]} column(s) and {len(df)} row(s); it needs a "
                        "header row, a response column and a column naming the animal, with one row "
                        "per observation. Check that the columns are separated by commas, semicolons "
                        "or tabs.")
    df.attrs["read_notes"] = notes
    df.attrs["source_kind"] = "user"
    df.attrs["source_label"] = f"Your file {name}"
    df.attrs["dataset"] = Path(str(name)).stem
    return df


# ---------------------------------------------------------------------------------------
# Column roles
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Roles:
    """Suggested model columns for a table, with the reason for each choice in words."""

    response: str | None
    group: str | None
    predictors: tuple[str, ...]
    factors: tuple[str, ...]
    family: str
    reasons: tuple[str, ...] = field(default_factory=tuple)

    def formula(self) -> str | None:
        """The lme4 formula of these roles (None without a response or a group)."""
        if self.response is None or self.group is None:
            return None
        rhs = " + ".join(quote(p) for p in self.predictors) or "1"
        return f"{quote(self.response)} ~ {rhs} + (1 | {quote(self.group)})"


def quote(name: str) -> str:
    """A column name as a formula may hold it (backticks around names that are not plain,
    with a backtick or backslash inside escaped; see :func:`mmteach.formula.quote_name`)."""
    return quote_name(name)


def _is_binary(s: pd.Series) -> bool:
    num = pd.to_numeric(s, errors="coerce").dropna()
    return len(num) > 0 and set(np.unique(num)) <= {0, 1} and num.nunique() == 2


def _nested_in(df: pd.DataFrame, inner: str, outer: str) -> bool:
    """True when each level of ``inner`` sits within one level of ``outer`` (a cell in a mouse)."""
    return bool((df.groupby(inner, dropna=True)[outer].nunique() <= 1).all())


def group_score(df: pd.DataFrame, col: str) -> float:
    """How much a column looks like the animal: few levels, many rows each, an animal-like name."""
    s = df[col].dropna()
    k = s.nunique()
    n = len(s)
    if k < 2 or n == 0 or k > n / 2:
        return -np.inf  # one level, or about one row per level: not a grouping factor
    if pd.api.types.is_float_dtype(s) and not np.allclose(s, np.round(s)):
        return -np.inf  # measurements, not labels
    score = 0.0
    if _GROUP_NAME.search(col):
        score += 4
    if re.search(r"(cell|neuron|roi|trial|time|treat|cond|dose|day)", col, re.IGNORECASE):
        score -= 3
    score += min(3.0, np.log2(n / k) / 2)  # many rows per level
    score -= 0.5 if k < 3 else 0.0
    return score


def guess_roles(df: pd.DataFrame) -> Roles:
    """Suggest response, grouping column, predictors, factors and family for a table.

    The grouping column has few levels with many rows each and a name like mouse, animal,
    subject or id; the response is numeric and not an identifier; a 0/1 response suggests
    the binomial family. The reasons say why, so the page can show them next to the choices.
    """
    cols = [str(c) for c in df.columns]
    reasons: list[str] = []
    scores = {c: group_score(df, c) for c in cols}
    group = max(cols, key=lambda c: scores[c])
    if scores[group] == -np.inf or (scores[group] < 2.5 and not _GROUP_NAME.search(group)):
        group = None
        reasons.append("No column looks like the animal (a name like mouse, animal or subject with "
                       "several rows per level): choose the grouping column yourself.")
    else:
        reasons.append(f"Grouping: {group!r} has {df[group].nunique()} levels with about "
                       f"{len(df) / max(df[group].nunique(), 1):.0f} rows each.")
    numeric = [c for c in cols if c != group and pd.api.types.is_numeric_dtype(df[c])]
    nested = {c for c in cols if c != group and group is not None and df[c].nunique() > 2
              and _ID_NAME.search(c) and _nested_in(df, c, group)}

    def response_score(c: str) -> float:
        s = df[c].dropna()
        k = s.nunique()
        score = 0.0
        if _RESPONSE_NAME.search(c):
            score += 4
        if _ID_NAME.search(c) or c in nested:
            score -= 4
        if _is_binary(s):
            score += 1
        elif k <= 8:
            score -= 2  # a code such as 1..4 for time points is a predictor
        elif pd.api.types.is_float_dtype(s):
            score += 1
        if _FACTOR_NAME.search(c):
            score -= 1  # a dose or a time is set by the design, not measured
        if pd.api.types.is_integer_dtype(s) and k > 0.9 * len(s):
            score -= 3  # a running number
        return score

    response = max(numeric, key=response_score) if numeric else None
    if response is None:
        reasons.append("No numeric column to model: the response must be a number in every row.")
    else:
        reasons.append(f"Response: {response!r} is numeric" +
                       (" and holds only 0 and 1" if _is_binary(df[response]) else "") + ".")
    family = "binomial" if response is not None and _is_binary(df[response]) else "gaussian"
    if family == "binomial":
        reasons.append("Family: binomial, because the response is 0/1 (a yes/no outcome).")
    rest = [c for c in cols if c not in (group, response) and c not in nested]
    # a label column that only repeats a numeric code (time "24h" for treatment_idx 1) is left out
    rest = [c for c in rest if not any(o != c and df.groupby(o)[c].nunique().max() <= 1 and
                                       df[o].nunique() == df[c].nunique() and
                                       pd.api.types.is_numeric_dtype(df[o]) and
                                       not pd.api.types.is_numeric_dtype(df[c]) for o in rest)]
    predictors = tuple(c for c in rest if df[c].nunique() >= 2)
    factors = tuple(c for c in predictors if not pd.api.types.is_numeric_dtype(df[c]) or
                    (df[c].nunique() <= 8 and _FACTOR_NAME.search(c) is not None))
    if nested:
        reasons.append(f"Left out {', '.join(map(repr, sorted(nested)))}: it names units inside each "
                       f"{group}, not a predictor.")
    if factors:
        reasons.append(f"Categorical: {', '.join(map(repr, factors))} (codes or labels, not amounts).")
    return Roles(response, group, predictors, factors, family, tuple(reasons))


def usable_rows(df: pd.DataFrame, response: str, predictors: Sequence[str], group: str | None,
                family: str) -> tuple[pd.DataFrame, list[str]]:
    """The rows a model of these columns can use, and notes in words; DataError says what to change.

    Refuses a missing grouping column (never groups by another column silently), a grouping
    column with about one row per level, a non-numeric response (with a hint when the values
    use decimal commas) and a binomial model of a response that is not 0/1.
    """
    if group is None or group == "":
        raise DataError("Choose the grouping column: the column that names the animal (mouse, subject). "
                        "No column was picked for you because none looks like one.")
    cols = [response, *predictors, group]
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise DataError(f"No column {', '.join(map(repr, missing))} in the data; the columns are "
                        f"{', '.join(map(str, df.columns))}.")
    if response in predictors:
        raise DataError(f"The response {response!r} cannot also be a predictor: remove it from the predictors.")
    if group in (response, *predictors):
        raise DataError(f"The grouping column {group!r} cannot also be the response or a predictor: choose "
                        "the column that names the animal as grouping only.")
    y = pd.to_numeric(df[response], errors="coerce")
    bad = y.isna() & df[response].notna()
    if bad.any():
        example = df.loc[bad, response].iloc[0]
        hint = (" It looks like a decimal comma: save the file with decimal points, or as a semicolon-"
                "separated CSV." if isinstance(example, str) and _DECIMAL_COMMA.match(example) else "")
        raise DataError(f"The response {response!r} has non-numeric values (e.g. {example!r}); it must be a "
                        f"number in every row.{hint} Choose a numeric column as the response.")
    if family == "binomial" and not set(np.unique(y.dropna())) <= {0, 1}:
        shown = sorted(set(np.unique(y.dropna())) - {0, 1})[:3]
        raise DataError(f"A binomial model needs a 0/1 response, but {response!r} has values such as "
                        f"{', '.join(f'{v:g}' for v in shown)}. Choose the gaussian family or recode the "
                        "outcome as 0/1.")
    used = df[cols].dropna()
    notes = []
    if len(used) < len(df):
        notes.append(f"{len(df) - len(used)} row(s) with missing values in {', '.join(cols)} are left out "
                     "(as R's na.omit does).")
    if used.empty:
        raise DataError("No row has values in all the chosen columns: choose other columns.")
    k = used[group].nunique()
    if k < 2:
        raise DataError(f"The grouping column {group!r} has {k} level; a mixed model needs at least 2 "
                        "groups (better 5 or more).")
    if k > len(used) / 2:
        raise DataError(f"The grouping column {group!r} has {k} levels for {len(used)} rows, so most "
                        "groups hold a single row: it names rows, not animals. Choose the column that "
                        "names the animal (several rows per animal).")
    if family == "gaussian" and set(np.unique(y.dropna())) <= {0, 1}:
        notes.append(f"{response!r} holds only 0 and 1: a yes/no outcome is modelled with the binomial "
                     "family (a gaussian model of it gives probabilities outside 0-1).")
    return used, notes
