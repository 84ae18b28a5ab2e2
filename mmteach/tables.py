"""Tables for display: numbers, p-values, "estimate ± SE" and df as reports print them, and
side-by-side comparisons of one term across analyses."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from mmteach.results import FitResult, PerGroupResult

NBSP = "\u00a0"  # no-break space: keeps "± 0.017" and "0.003 *" on one line in tables


def natural_levels(series: pd.Series) -> list[Any]:
    """Levels in natural order: numbers (also numbers written as text) first, by value.

    >>> natural_levels(pd.Series(["10", "2", "b", "a", None]))
    ['2', '10', 'a', 'b']
    """
    def key(v: Any) -> tuple:
        try:
            return (0, float(v), "")
        except (TypeError, ValueError):
            return (1, 0.0, str(v))

    return sorted(pd.unique(series.dropna()), key=key)



COMPARISON_COLUMNS = ("analysis", "term", "label", "estimate", "std_error", "df", "p_value",
                      "conf_low", "conf_high")


def comparison_rows(
    fits: Mapping[str, FitResult | PerGroupResult | pd.DataFrame], terms: Mapping[str, str],
) -> pd.DataFrame:
    """Long table of selected terms across analyses.

    ``fits`` maps an analysis name to a FitResult, or to a ``fit_per_group`` result (or its
    tidy DataFrame, rows with a ``group`` column: one analysis per group, named
    "<name> <group>").
    ``terms`` maps model term names (e.g. "treatment_idx2") to display labels ("48h").
    A term an analysis lacks (e.g. a mouse with no 48h cells) gives a row of NaNs.
    """
    rows: list[dict[str, Any]] = []
    numbers = COMPARISON_COLUMNS[3:]

    # rows as plain dicts: a .loc lookup per term and column, and a filter per group, on
    # pandas' Arrow-backed text cost ~10 ms per table, and the table is rebuilt on every change
    def add(analysis: str, records: list[dict[str, Any]]) -> None:
        by_term: dict[Any, dict[str, Any]] = {}
        for rec in records:
            by_term.setdefault(rec["term"], rec)
        for term, label in terms.items():
            row = {"analysis": analysis, "term": term, "label": label}
            hit = by_term.get(term)
            for col in numbers:
                row[col] = float(hit[col]) if hit is not None and col in hit else math.nan
            rows.append(row)

    for name, fit in fits.items():
        if isinstance(fit, FitResult):
            add(name, fit.tidy().to_dict("records"))
        else:
            fit = fit.tidy() if isinstance(fit, PerGroupResult) else fit
            by_group: dict[Any, list[dict[str, Any]]] = {}
            for rec in fit.to_dict("records"):
                by_group.setdefault(rec["group"], []).append(rec)
            # groups in natural order: mouse 2 before mouse 10
            for g in natural_levels(fit["group"]):
                add(f"{name} {g}".strip(), by_group.get(g, []))
    out = pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))
    numeric = list(COMPARISON_COLUMNS[3:])
    out[numeric] = out[numeric].astype(float)  # float even when empty, so concat stays float
    return out


def is_missing(x: Any) -> bool:
    """True for None, NaN and pandas NA."""
    if x is None:
        return True
    try:
        return bool(pd.isna(x))
    except (TypeError, ValueError):
        return False


def _sci(x: float, digits: int) -> str:
    """Scientific notation without a padded exponent: 4.8e-6, not 4.8e-06."""
    mantissa, exponent = f"{x:.{digits - 1}e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def fmt_num(x: float) -> str:
    """4 significant digits, "–" for missing; no exponent between 1e-4 and 1e6.

    >>> [fmt_num(v) for v in (0.0123456, 1719.62, 123456.7, 2.5e-7, float("nan"))]
    ['0.01235', '1720', '123457', '2.50e-7', '–']
    """
    if is_missing(x):
        return "–"
    x = float(x)
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    if x == 0:
        return "0"
    if 1e-4 <= abs(x) < 1e4:
        return f"{x:.4g}"
    if 1e4 <= abs(x) < 1e6:
        return f"{x:.0f}"
    return _sci(x, 3)


def fmt_est_se(estimate: float, std_error: float) -> str:
    """"estimate ± SE" with the SE to 3 significant digits and the estimate to the same
    decimal places, as results are reported ("-0.0780 ± 0.0170"). A narrow table breaks
    the line before the "±", never inside "± 0.0170" (a no-break space follows the ±).

    >>> [fmt_est_se(*v).replace(NBSP, " ") for v in ((-0.07802, 0.017011), (1.5, float("nan")),
    ...                                              (-0.00001, 0.0355))]
    ['-0.0780 ± 0.0170', '1.5 ± –', '0.0000 ± 0.0355']
    """
    if is_missing(estimate):
        return "–"
    se = float("nan") if is_missing(std_error) else float(std_error)
    if not math.isfinite(se) or se <= 0 or not 1e-6 <= se < 1e6:
        return f"{fmt_num(estimate)} ±{NBSP}{fmt_num(std_error)}"
    decimals = max(0, 2 - math.floor(math.log10(se)))
    shown = round(float(estimate), decimals) + 0.0  # + 0.0: no "-0.0000" for a tiny negative
    return f"{shown:.{decimals}f} ±{NBSP}{se:.{decimals}f}"


def fmt_df(x: float) -> str:
    """Degrees of freedom: ∞ for z tests, one decimal for Satterthwaite-type df."""
    if is_missing(x):
        return "–"
    if math.isinf(x):
        return "∞ (z)"
    return f"{x:.0f}" if float(x).is_integer() else f"{x:.1f}"


def fmt_p(p: float, alpha: float = 0.05) -> str:
    """p-value with 2 significant digits (4.8e-6 below 1e-4, "< 2e-16" as R prints);
    a star, joined by a no-break space so it never wraps alone, marks p < alpha.

    >>> [fmt_p(p).replace(NBSP, " ") for p in (0.3, 0.0024, 4.84e-6, 1e-20, float("nan"))]
    ['0.30', '0.0024 *', '4.8e-6 *', '< 2e-16 *', '–']
    >>> fmt_p(0.01) == "0.010" + NBSP + "*"
    True
    """
    if is_missing(p):
        return "–"
    p = float(p)
    if p < 2.2e-16:
        text = f"<{NBSP}2e-16"
    elif p >= 1e-4:
        text = f"{p:#.2g}"  # keeps a trailing zero: 0.30, not 0.3
    else:
        text = _sci(p, 2)
    return f"{text}{NBSP}*" if p < alpha else text


def display_value(x: Any) -> str:
    """How a table cell is shown: "–" for a missing value, floats by :func:`fmt_num`."""
    if is_missing(x):
        return "–"
    if isinstance(x, (bool, np.bool_)):
        return str(bool(x))
    if isinstance(x, (float, np.floating)):
        return fmt_num(float(x))
    return str(x)


def format_side_by_side(long: pd.DataFrame, *, alpha: float = 0.05) -> pd.DataFrame:
    """Wide display table: one row per analysis, per term "estimate ± SE", "df", "p"."""
    out = pd.DataFrame(index=pd.Index(list(dict.fromkeys(long["analysis"])), name="analysis"))
    for label in dict.fromkeys(long["label"]):
        sub = long[long["label"] == label].set_index("analysis")
        out[f"{label}: estimate ± SE"] = [
            fmt_est_se(sub.loc[a, "estimate"], sub.loc[a, "std_error"]) for a in out.index
        ]
        out[f"{label}: df"] = [fmt_df(sub.loc[a, "df"]) for a in out.index]
        out[f"{label}: p"] = [fmt_p(sub.loc[a, "p_value"], alpha) for a in out.index]
    return out
