"""Subsample cells per mouse, reproducibly, to show how the cell counts drive a pooled fit.

The pages let a student change how many cells each mouse contributes. Cells are drawn with
a fixed seed and a *nested* order: each mouse's cells are shuffled once, and asking for k
cells keeps the first k of that shuffle. Moving a slider up therefore only adds cells, so
the change in an estimate is due to the added cells, not to a fresh random draw.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from mmteach.errors import DataError

PRESETS: tuple[str, ...] = ("as published", "balance mice", "drop mouse 2")


def _check_columns(data: pd.DataFrame, *cols: str | None) -> None:
    missing = [c for c in cols if c is not None and c not in data.columns]
    if missing:
        raise DataError(
            f"The data have no column {', '.join(map(repr, missing))}; the columns are "
            f"{', '.join(map(str, data.columns))}. Pick one of those."
        )


def _level_key(level: Any) -> str:
    """Levels are matched by their text so 2, 2.0 and "2" name the same mouse."""
    if isinstance(level, float) and level.is_integer():
        level = int(level)
    return str(level)


def units_per_group(data: pd.DataFrame, group: str, unit: str | None = None) -> dict[Any, int]:
    """How many units (rows, or distinct ``unit`` values such as cells) each group has.

    Groups are returned in sorted order.
    """
    _check_columns(data, group, unit)
    if unit is None:
        counts = data.groupby(group, sort=True, observed=True).size()
    else:
        counts = data.groupby(group, sort=True, observed=True)[unit].nunique()
    return {lvl: int(n) for lvl, n in counts.items()}


def _shuffled_units(units: np.ndarray, seed: int, level: Any) -> np.ndarray:
    # One stream per (seed, level): a mouse's order does not depend on the other mice.
    level_hash = zlib.crc32(_level_key(level).encode())
    rng = np.random.default_rng([int(seed), level_hash])
    return units[rng.permutation(len(units))]


def subsample_per_group(
    data: pd.DataFrame,
    group: str,
    counts: Mapping[Any, int],
    seed: int = 0,
    *,
    unit: str | None = None,
) -> pd.DataFrame:
    """Keep ``counts[level]`` units of each level of ``group``, drawn with a fixed seed.

    Parameters
    ----------
    data : DataFrame
        One row per observation.
    group : str
        The grouping column (the mouse).
    counts : mapping level -> int
        How many units to keep for each level. A level not in ``counts`` keeps all its
        units; a count above what the level has keeps all; 0 drops the level.
    seed : int
        The draws are nested: for a fixed seed, k units are a subset of k + 1 units.
    unit : str, optional
        A column naming the sampling unit (the cell) when a unit has several rows, e.g.
        ``cidx`` for a cell measured at baseline and 24h; all rows of a kept unit are kept.

    Returns
    -------
    DataFrame
        The kept rows in their original order (original index kept).
    """
    _check_columns(data, group, unit)
    wanted = {_level_key(k): v for k, v in counts.items()}
    for key, n in wanted.items():
        if n is None or int(n) != n or n < 0:
            raise DataError(
                f"The number of cells to keep for {group} {key} is {n!r}; it must be a whole "
                "number of 0 or more."
            )
    keep = np.zeros(len(data), dtype=bool)
    values = data[group].to_numpy()
    for level in pd.unique(values):
        if pd.isna(level):
            continue
        rows = np.flatnonzero(values == level)
        n = wanted.get(_level_key(level))
        if n is None:
            keep[rows] = True
            continue
        if unit is None:
            chosen = _shuffled_units(rows, seed, level)[: int(n)]
            keep[chosen] = True
        else:
            unit_values = data[unit].to_numpy()[rows]
            units = pd.unique(unit_values)
            chosen_units = _shuffled_units(np.asarray(units), seed, level)[: int(n)]
            keep[rows[np.isin(unit_values, chosen_units)]] = True
    return data.loc[keep]


def preset_counts(
    data: pd.DataFrame, group: str, preset: str, *, unit: str | None = None
) -> dict[Any, int]:
    """The per-level counts of a named preset.

    - "as published": every unit of every level;
    - "balance mice": every level keeps as many units as the smallest level has;
    - "drop mouse 2": level 2 keeps none, the others keep all.
    """
    full = units_per_group(data, group, unit)
    if preset == "as published":
        return dict(full)
    if preset == "balance mice":
        smallest = min(full.values()) if full else 0
        return {lvl: smallest for lvl in full}
    if preset == "drop mouse 2":
        return {lvl: (0 if _level_key(lvl) == "2" else n) for lvl, n in full.items()}
    raise DataError(
        f"Unknown preset {preset!r}; choose one of {', '.join(map(repr, PRESETS))}."
    )


def cell_counts(
    data: pd.DataFrame, group: str, column: str, *, unit: str | None = None
) -> pd.DataFrame:
    """Cross table of units per ``group`` x ``column`` with totals and row percentages.

    Rows are the groups plus "Total"; columns are the levels of ``column``, "Total" and
    "% of cells" (each group's share of all units, the number that explains why the pooled
    data follow the biggest mouse).
    """
    _check_columns(data, group, column, unit)
    if unit is None:
        table = pd.crosstab(data[group], data[column])
    else:
        table = data.groupby([group, column], observed=True)[unit].nunique().unstack(fill_value=0)
    table = table.astype(int)
    table["Total"] = table.sum(axis=1)
    grand = int(table["Total"].sum())
    total_row = table.sum(axis=0).to_frame().T
    total_row.index = ["Total"]
    out = pd.concat([table, total_row])
    out["% of cells"] = (100.0 * out["Total"] / grand).round(1) if grand else 0.0
    out.index = [str(i) for i in out.index]
    out.index.name = group
    out.columns = [str(c) for c in out.columns]
    return out
