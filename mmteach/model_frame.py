"""Model frames: from a data frame and a formula to the matrices every fit uses.

The rules follow R's ``model.frame``/``model.matrix`` and lme4's ``mkReTrms``:

* rows with a missing value in any variable of the formula are dropped (``na.omit``);
* a variable is a factor when it is a grouping column, written ``factor(x)``, listed in
  ``factors``, or not numeric; factor levels are sorted (numbers numerically, text
  alphabetically) and unused levels are dropped;
* factors get treatment contrasts (the first level is the reference) where R would use
  contrasts, full indicator columns where R would (a factor in a term whose margin is absent);
* columns are named as R names them (``treatment_idx2``, ``factor(z)2``, ``x:a2``);
* columns that are linear combinations of earlier ones are dropped with a message, as lme4
  drops them ("fixed-effect model matrix is rank deficient");
* random-effect terms are ordered as lme4 orders them (more levels first, stable).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mmteach import validate
from mmteach.errors import DataError
from mmteach.formula import Formula, RandomTerm, Term, Variable, parse_formula


# duplicates: glmm_laplace.TermSpec mirrors these fields on purpose (the GLMM's own block, with its theta slice)
@dataclass(frozen=True)
class RandomBlock:
    """One lme4 random-effects term, e.g. ``(1 + Days | Subject)``."""

    group: str
    codes: np.ndarray
    levels: tuple[str, ...]
    terms: tuple[str, ...]
    Z: np.ndarray

    @property
    def n_levels(self) -> int:
        return len(self.levels)

    @property
    def n_terms(self) -> int:
        return len(self.terms)


@dataclass(frozen=True)
class ModelFrame:
    """Everything a fit needs; see docs/DEVELOPING.md."""

    formula: Formula
    data: pd.DataFrame
    y: np.ndarray
    trials: np.ndarray | None
    X: np.ndarray
    fixed_names: tuple[str, ...]
    term_labels: tuple[str, ...]
    assign: tuple[int, ...]
    blocks: tuple[RandomBlock, ...]
    n_dropped: int
    messages: tuple[str, ...] = ()
    aliased: tuple[str, ...] = ()  # fixed-effect columns dropped as linear combinations

    @property
    def n_obs(self) -> int:
        return int(self.y.shape[0])

    def varcorr_group_names(self) -> list[str]:
        """Group name per block as lme4's VarCorr data frame prints it: Subject, Subject.1, ..."""
        seen: dict[str, int] = {}
        out = []
        for b in self.blocks:
            count = seen.get(b.group, 0)
            out.append(b.group if count == 0 else f"{b.group}.{count}")
            seen[b.group] = count + 1
        return out

    def group_sizes(self) -> dict[str, int]:
        """Number of levels per grouping factor, lme4's 'groups' line."""
        out: dict[str, int] = {}
        for b in self.blocks:
            out.setdefault(b.group, b.n_levels)
        return out


def check_group_levels(mf: ModelFrame) -> None:
    """Refuse a grouping factor with fewer than 2 levels, as lme4 does for lmer and glmer.

    One mouse shows no mouse-to-mouse variation, so its variance cannot be estimated.
    """
    from mmteach.errors import ModelError

    for b in mf.blocks:
        if b.n_levels < 2:
            raise ModelError(
                f"The grouping factor '{b.group}' has only {b.n_levels} level in the rows "
                "used, so there is no group-to-group variation to estimate: a random effect "
                "needs at least 2 groups (and in practice 5 or more). Remove the term "
                f"(... | {b.group}) or use data with more groups."
            )


def format_level(value: object) -> str:
    """A factor level as R prints it (1 not 1.0; 15 significant digits)."""
    if isinstance(value, (bool, np.bool_)):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return str(int(v)) if v.is_integer() else f"{v:.15g}"
    return str(value)


# R sorts text with ICU collation (R's default wherever ICU is available, as on Linux with
# a UTF-8 locale, macOS and the R used for the reference values): punctuation and symbols,
# then digits, then letters; letter case only breaks ties, lower case first; accents
# count after the letters and before the case. "_" < "-" < "0" < "a" < "A" < "b".
_PUNCT_ORDER = " _-,;:!?.'\"()[]{}@*/\\&#%`^+<=>|~$"
_PUNCT_RANK = {c: i for i, c in enumerate(_PUNCT_ORDER)}


def collation_key(text: str) -> tuple:
    """Sort key of a text level as R orders ``factor()`` levels (ICU root collation).

    Examples
    --------
    >>> sorted(["B-1", "mouse2", "Ma", "b_1", "ma", "mouse10", "mA"], key=collation_key)
    ['b_1', 'B-1', 'ma', 'mA', 'Ma', 'mouse10', 'mouse2']
    """
    primary: list[tuple] = []
    secondary: list[tuple[int, ...]] = []
    tertiary: list[int] = []
    for ch in unicodedata.normalize("NFD", text):
        if unicodedata.combining(ch) and primary:
            secondary[-1] = secondary[-1] + (ord(ch),)
            continue
        weight, upper = _char_weight(ch)
        primary.append(weight)
        secondary.append(())
        tertiary.append(upper)
    return tuple(primary), tuple(secondary), tuple(tertiary), text


def _char_weight(ch: str) -> tuple[tuple, int]:
    """Primary weight and case (1 upper) of one character (no combining mark)."""
    if ch in _PUNCT_RANK:
        weight: tuple = (1, _PUNCT_RANK[ch])
    elif ch.isspace():
        weight = (0, ord(ch))
    elif ch.isdecimal():
        weight = (3, unicodedata.decimal(ch))
    elif ch.isalpha():
        weight = (4, ch.casefold())
    else:
        weight = (2, ord(ch))  # other symbols: after ASCII punctuation, before digits
    return weight, 1 if ch.isupper() else 0


# Level names are almost always ASCII, and collation_key's per-character work cost 2 us a
# level (1.2 ms of a 600-level factor's 2.8 ms). For ASCII text its key reduces to two
# translated strings: each character's primary weight (class, value) mapped to one code
# point in the same order (class * 256 + value), and its case. Equal primaries mean equal
# lengths, so the (empty) accents never decide, and the orders agree.
def _ascii_code(ch: str) -> str:
    (cls, val), _upper = _char_weight(ch)
    return chr(cls * 256 + (ord(val) if isinstance(val, str) else val))


_ASCII_PRIMARY = {i: _ascii_code(chr(i)) for i in range(128)}
_ASCII_CASE = {i: str(_char_weight(chr(i))[1]) for i in range(128)}


def ascii_collation_key(text: str) -> tuple[str, str, str]:
    """:func:`collation_key` for ASCII text, ordering ASCII texts the same way, faster.

    >>> words = ["B-1", "mouse2", "Ma", "b_1", "ma", "mouse10", "mA", "a b", "a\tb", "x~"]
    >>> sorted(words, key=ascii_collation_key) == sorted(words, key=collation_key)
    True
    """
    return text.translate(_ASCII_PRIMARY), text.translate(_ASCII_CASE), text


def factor_codes(values: pd.Series) -> tuple[np.ndarray, tuple[str, ...]]:
    """Integer codes and sorted level labels of a column treated as a factor."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        cats = [c for c in values.cat.categories if (values == c).any()]
        labels = tuple(format_level(c) for c in cats)
        return _codes(values, cats), labels
    if isinstance(values.dtype, np.dtype) and values.dtype.kind in "iu":
        # integer levels (mouse and cell numbers; no missing values in a numpy integer
        # column): numpy sorts and prints them as R does
        levels, codes = np.unique(values.to_numpy(), return_inverse=True)
        return codes.astype(np.intp), tuple(map(str, levels.tolist()))  # as astype(str), 1.5x faster
    # pandas' hash table gives each row the position of its value among the uniques (in
    # order of appearance, as pd.unique); the sorted levels are then a permutation of those
    found = pd.unique(values)
    first, again = pd.factorize(values)
    if len(again) != len(found) or (first.size and first.min() < 0):
        first = None  # missing values: the general look-up below
    # the same elements as iterating over it, in a plain list: iterating over an Arrow
    # string array cost 0.7 us an element
    uniques = list(found) if isinstance(found, np.ndarray) else np.asarray(found, dtype=object).tolist()
    pos = range(len(uniques))
    if all(isinstance(u, str) for u in uniques):
        key = ascii_collation_key if all(u.isascii() for u in uniques) else collation_key
        order = sorted(pos, key=lambda i: key(uniques[i]))
    else:
        try:
            order = sorted(pos, key=uniques.__getitem__)
        except TypeError:  # mixed types: sort by their text
            order = sorted(pos, key=lambda i: collation_key(str(uniques[i])))
    ordered = [uniques[i] for i in order]
    labels_list = [format_level(u) for u in ordered]
    if len(set(labels_list)) < len(labels_list):  # e.g. 1 and 1.0 in an object column
        labels_list = [str(u) for u in ordered]
    if first is None:
        return _codes(values, ordered), tuple(labels_list)
    rank = np.empty(len(order), dtype=np.intp)
    rank[order] = np.arange(len(order))
    return rank[first], tuple(labels_list)


def _codes(values: pd.Series, ordered: Sequence[object]) -> np.ndarray:
    """Position of each value in ``ordered``: pandas' hash table (C speed: a Python loop took
    ~0.2 s on 50,000 rows), or a Python dict where pandas cannot (e.g. 1 and 1.0 both levels)."""
    try:
        codes = pd.Index(list(ordered), dtype=object).get_indexer(values.astype(object))
        if len(codes) == len(values) and (codes >= 0).all():
            return codes.astype(np.intp)
    except (TypeError, ValueError, pd.errors.InvalidIndexError):
        pass
    lookup = {u: i for i, u in enumerate(ordered)}
    return np.array([lookup[v] for v in values], dtype=np.intp)


def _is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


class ColumnCoder:
    """Codes the variables of one data frame (shared by fixed and random parts)."""

    def __init__(self, data: pd.DataFrame, factor_names: set[str]) -> None:
        self.data = data
        self.factor_names = factor_names
        self._cache: dict[str, tuple[np.ndarray, tuple[str, ...]]] = {}
        self._numeric: dict[str, bool] = {}  # asked several times a column (pandas' type checks)

    def is_factor(self, v: Variable) -> bool:
        if v.as_factor or v.name in self.factor_names:
            return True
        if v.name not in self._numeric:
            self._numeric[v.name] = _is_numeric(self.data[v.name])
        return not self._numeric[v.name]

    def codes(self, name: str) -> tuple[np.ndarray, tuple[str, ...]]:
        if name not in self._cache:
            self._cache[name] = factor_codes(self.data[name])
        return self._cache[name]

    def variable_columns(
        self, v: Variable, contrasts: bool
    ) -> list[tuple[str, np.ndarray]]:
        """Columns for one variable: numeric as is; a factor by contrasts or indicators."""
        if not self.is_factor(v):
            return [(v.label, self.data[v.name].to_numpy(dtype=float))]
        codes, levels = self.codes(v.name)
        start = 1 if contrasts else 0
        return [
            (f"{v.label}{levels[k]}", (codes == k).astype(float))
            for k in range(start, len(levels))
        ]

    def term_width(self, term: Term) -> int:
        """How many columns a term can have at most (known before any is built)."""
        width = 1
        for v in term.variables:
            width *= len(self.codes(v.name)[1]) if self.is_factor(v) else 1
        return width

    def term_columns(
        self, term: Term, present: set[frozenset[tuple[str, bool]]]
    ) -> list[tuple[str, np.ndarray]]:
        """Columns of a term; R's rule: factor F uses contrasts iff term minus F is present."""
        per_var = []
        for v in term.variables:
            margin = term.key() - {(v.name, v.as_factor)}
            contrasts = (not self.is_factor(v)) or (margin in present)
            per_var.append(self.variable_columns(v, contrasts))
        cols: list[tuple[str, np.ndarray]] = [("", np.ones(len(self.data)))]
        for var_cols in per_var:  # first variable varies fastest, as in R
            cols = [
                (f"{n1}:{n2}" if n1 else n2, c1 * c2)
                for n2, c2 in var_cols
                for n1, c1 in cols
            ]
        return cols


def _drop_aliased(
    columns: list[tuple[str, np.ndarray, int]],
) -> tuple[list[tuple[str, np.ndarray, int]], list[str]]:
    """Drop columns that are linear combinations of the earlier ones (as lme4 does)."""
    kept: list[tuple[str, np.ndarray, int]] = []
    dropped: list[str] = []
    n = columns[0][1].shape[0] if columns else 0
    # The basis is orthonormal (Gram-Schmidt, applied twice for accuracy), so each column's
    # projection costs n x k, not a least-squares solve: linear in the columns kept so far.
    basis = np.empty((n, len(columns)))
    k = 0
    for name, col, a in columns:
        if not np.any(col):
            dropped.append(name)
            continue
        resid = col
        for _ in range(2):
            if k:
                resid = resid - basis[:, :k] @ (basis[:, :k].T @ resid)
        if np.linalg.norm(resid) <= 1e-7 * max(np.linalg.norm(col), 1.0):
            dropped.append(name)
            continue
        kept.append((name, col, a))
        basis[:, k] = resid / np.linalg.norm(resid)
        k += 1
    return kept, dropped


def _check_columns(data: pd.DataFrame, names: Iterable[str], what: str) -> None:
    missing = [n for n in names if n not in data.columns]
    if missing:
        raise DataError(
            f"The {what} {', '.join(repr(m) for m in missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not in the data. Columns are: "
            f"{', '.join(map(str, data.columns))}."
        )


def _response(data: pd.DataFrame, formula: Formula) -> tuple[np.ndarray, np.ndarray | None]:
    resp = formula.response
    for name in resp.columns():
        col = data[name]
        if pd.api.types.is_bool_dtype(col):
            continue
        if not _is_numeric(col):
            example = next((v for v in col if not _looks_numeric(v)), col.iloc[0])
            raise DataError(
                f"The response column {name!r} must be numeric, but it holds text such as "
                f"{example!r}. Pick a numeric column as the response, or fix the file."
            )
    y = data[resp.name].to_numpy(dtype=float)
    if resp.kind == "column":
        return y, None
    if resp.failures:
        trials = y + data[resp.failures].to_numpy(dtype=float)
    else:
        trials = data[resp.total].to_numpy(dtype=float)
    if np.any(y < 0) or np.any(trials < y) or np.any(trials <= 0):
        raise DataError(
            f"In {resp.label} successes must be between 0 and the number of trials, and every "
            "row needs at least one trial."
        )
    return y, trials


def _looks_numeric(v: object) -> bool:
    try:
        float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return True


def build_model(
    data: pd.DataFrame,
    formula: str | Formula,
    factors: Sequence[str] = (),
) -> ModelFrame:
    """Build y, X and the random-effect blocks of a formula on a data frame.

    Parameters
    ----------
    data : DataFrame
    formula : str or Formula
        lme4 syntax, e.g. ``"res ~ treatment_idx + (1 | midx)"``.
    factors : sequence of str
        Columns to treat as factors even though they are numeric (``--factor``).

    Returns
    -------
    ModelFrame

    Examples
    --------
    >>> d = pd.DataFrame({"y": [1.0, 2, 3, 4], "t": [1, 2, 1, 2], "m": [1, 1, 2, 2]})
    >>> mf = build_model(d, "y ~ t + (1 | m)", factors=["t"])
    >>> mf.fixed_names, mf.blocks[0].group, mf.blocks[0].levels
    (('(Intercept)', 't2'), 'm', ('1', '2'))
    """
    if not isinstance(data, pd.DataFrame):
        raise DataError("The data must be a table (a pandas DataFrame).")
    if not all(isinstance(c, str) for c in data.columns):
        data = data.rename(columns=str)
    if data.attrs:
        # pandas deep-copies a frame's attrs (the data sets' source notes) into every column
        # it hands out: ~20 column reads here made that 0.4 ms of a 1.5 ms build
        data = data.copy(deep=False)
        data.attrs = {}
    if isinstance(formula, str):
        formula = parse_formula(formula, list(data.columns))
    _check_columns(data, formula.variables(), "column")
    _check_columns(data, factors, "factor column")
    used = formula.variables()
    validate.check_used_names(data, [*used, *factors])
    if len(data) == 0:
        raise DataError("The data have no rows.")
    # column by column: a sub-frame and its row-wise reduction cost 0.4 ms on 1,244 rows
    complete = np.ones(len(data), dtype=bool)
    for c in used:
        # on the numpy array: Series.notna cost 50 us a column
        arr = data[c].to_numpy()
        if arr.dtype.kind == "f":
            complete &= ~np.isnan(arr)
        elif arr.dtype.kind not in "iub":  # numpy integers and booleans hold no missing value
            complete &= pd.notna(arr)
    n_dropped = int((~complete).sum())
    if n_dropped:  # take and a fresh RangeIndex: 0.14 ms where .loc and reset_index took 0.2
        frame = data.take(np.flatnonzero(complete))
        frame.index = pd.RangeIndex(len(frame))
    else:
        frame = data.reset_index(drop=True)
    if len(frame) == 0:
        raise DataError(
            "Every row has a missing value in one of the columns "
            f"{', '.join(used)}; there is nothing left to fit."
        )
    factor_names = set(factors) | set(formula.grouping_columns())
    coder = ColumnCoder(frame, factor_names)
    ids = [c for c in used if c in factor_names]
    validate.check_values(frame, [c for c in used if c not in ids], ids)
    y, trials = _response(frame, formula)
    validate.check_response(y, trials, formula.response.label)
    predictors = [c for c in used if c not in formula.response.columns() and c not in formula.grouping_columns()]

    # --- fixed effects ---------------------------------------------------------------
    present: set[frozenset[tuple[str, bool]]] = {t.key() for t in formula.fixed}
    if formula.intercept:
        present.add(frozenset())
    columns: list[tuple[str, np.ndarray, int]] = []
    if formula.intercept:
        columns.append(("(Intercept)", np.ones(len(frame)), 0))
    validate.check_design_size(len(frame), int(formula.intercept)
                               + sum(coder.term_width(t) for t in formula.fixed))
    for r in formula.random:
        validate.check_design_size(len(frame), 1 + sum(coder.term_width(t) for t in r.terms))
    for k, term in enumerate(formula.fixed, start=1):
        for name, col in coder.term_columns(term, present):
            columns.append((name, col, k))
        if len(term.variables) == 1 and coder.is_factor(term.variables[0]):
            present.add(frozenset())  # a fully coded factor spans the intercept, as in R
    messages = validate.constant_notes(frame, predictors)
    kept, dropped = _drop_aliased(columns)
    if dropped:
        messages.append(aliased_message(dropped))
    X = (
        np.column_stack([c for _, c, _ in kept])
        if kept
        else np.zeros((len(frame), 0))
    )
    messages += validate.predictor_notes(X, [n for n, _, _ in kept], formula.intercept)

    # --- random effects --------------------------------------------------------------
    blocks = [_random_block(coder, frame, r) for r in formula.random]
    rank = _findbars_rank(formula.random)
    order = sorted(range(len(blocks)), key=lambda i: (-blocks[i].n_levels, rank[i]))
    blocks = [blocks[i] for i in order]

    return ModelFrame(
        formula=formula,
        data=frame,
        y=y,
        trials=trials,
        X=X,
        fixed_names=tuple(n for n, _, _ in kept),
        term_labels=tuple(t.label for t in formula.fixed),
        assign=tuple(a for _, _, a in kept),
        blocks=tuple(blocks),
        n_dropped=n_dropped,
        messages=tuple(messages),
        aliased=tuple(dropped),
    )


def aliased_message(dropped: Sequence[str]) -> str:
    """The note on fixed-effect columns dropped as linear combinations of earlier ones."""
    shown = ", ".join(dropped[:12]) + (f" and {len(dropped) - 12} more" if len(dropped) > 12 else "")
    return (
        f"The fixed-effect columns {shown} are linear combinations of other "
        "columns (for example a mouse-level covariate together with mouse as a fixed "
        "factor) and were dropped, as lme4 drops them."
    )


def _findbars_rank(random: Sequence[RandomTerm]) -> list[int]:
    """Position of each random term in lme4's ``findbars`` order (ties in levels keep it).

    The parser lists ``(x || a/b)`` as 1|a, 0+x|a, 1|b:a, 0+x|b:a; lme4 expands the double
    bar first and then the slash, innermost factor first: 1|b:a, 1|a, 0+x|b:a, 0+x|a.
    """
    keys = []
    for i, r in enumerate(random):
        same = [q for q in random[:i] if q.pos == r.pos and q.group == r.group]
        keys.append((r.pos, len(same), -len(r.group), i))
    order = sorted(range(len(random)), key=lambda i: keys[i])
    rank = [0] * len(random)
    for k, i in enumerate(order):
        rank[i] = k
    return rank


def _random_block(coder: ColumnCoder, frame: pd.DataFrame, r: RandomTerm) -> RandomBlock:
    if len(r.group) == 1:
        codes, levels = coder.codes(r.group[0])
    else:
        parts = [coder.codes(g) for g in r.group]
        # Combined level per row; R's factor(c:b:a) varies the first factor slowest.
        keys = list(zip(*[c for c, _ in parts]))
        uniq = sorted(set(keys))
        lookup = {k: i for i, k in enumerate(uniq)}
        codes = np.array([lookup[k] for k in keys], dtype=np.intp)
        levels = tuple(":".join(parts[j][1][k[j]] for j in range(len(k))) for k in uniq)
    present: set[frozenset[tuple[str, bool]]] = {t.key() for t in r.terms}
    cols: list[tuple[str, np.ndarray]] = []
    if r.intercept:
        present.add(frozenset())
        cols.append(("(Intercept)", np.ones(len(frame))))
    for term in r.terms:
        cols += coder.term_columns(term, present)
        if len(term.variables) == 1 and coder.is_factor(term.variables[0]):
            present.add(frozenset())
    return RandomBlock(
        group=r.group_label,
        codes=codes,
        levels=tuple(levels),
        terms=tuple(n for n, _ in cols),
        Z=np.column_stack([c for _, c in cols]),
    )
