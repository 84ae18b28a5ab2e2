"""Tests of mmteach.subsample: reproducible, nested subsampling of cells per mouse."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mmteach.errors import DataError
from mmteach.subsample import (
    cell_counts,
    preset_counts,
    subsample_per_group,
    units_per_group,
)


@pytest.fixture()
def cells() -> pd.DataFrame:
    # mouse m has 10*m cells, one row per cell, two time points
    rows = []
    for m in (1, 2, 3):
        for c in range(10 * m):
            rows.append({"midx": m, "time": 1 + c % 2, "res": float(100 * m + c)})
    return pd.DataFrame(rows)


@pytest.fixture()
def paired() -> pd.DataFrame:
    # each cell measured twice (as Example 3); cidx unique across mice
    rows = []
    cid = 0
    for m in (1, 2):
        for _ in range(6 * m):
            cid += 1
            for t in (1, 2):
                rows.append({"midx": m, "cidx": cid, "treatment": t, "res": cid + 0.1 * t})
    return pd.DataFrame(rows)


def test_counts_are_respected(cells):
    out = subsample_per_group(cells, "midx", {1: 3, 2: 0, 3: 25})
    assert units_per_group(out, "midx") == {1: 3, 3: 25}


def test_missing_level_and_overlarge_count_keep_all(cells):
    out = subsample_per_group(cells, "midx", {1: 500})
    assert len(out) == len(cells)
    pd.testing.assert_frame_equal(out, cells)


def test_same_seed_same_rows_and_other_seed_other_rows(cells):
    a = subsample_per_group(cells, "midx", {3: 5}, seed=0)
    b = subsample_per_group(cells, "midx", {3: 5}, seed=0)
    c = subsample_per_group(cells, "midx", {3: 5}, seed=1)
    pd.testing.assert_frame_equal(a, b)
    assert set(a.index) != set(c.index)


def test_draws_are_nested(cells):
    small = subsample_per_group(cells, "midx", {3: 4}, seed=7)
    big = subsample_per_group(cells, "midx", {3: 9}, seed=7)
    assert set(small.index) < set(big.index)


def test_other_mice_do_not_change_a_mouse_draw(cells):
    a = subsample_per_group(cells, "midx", {1: 2, 3: 5}, seed=3)
    b = subsample_per_group(cells, "midx", {1: 8, 3: 5}, seed=3)
    assert set(a[a.midx == 3].index) == set(b[b.midx == 3].index)


def test_string_keys_match_integer_levels(cells):
    out = subsample_per_group(cells, "midx", {"2": 1})
    assert units_per_group(out, "midx")[2] == 1


def test_unit_keeps_both_rows_of_a_cell(paired):
    out = subsample_per_group(paired, "midx", {1: 2, 2: 5}, unit="cidx")
    assert units_per_group(out, "midx", "cidx") == {1: 2, 2: 5}
    assert (out.groupby("cidx").size() == 2).all()


def test_bad_count_and_column(cells):
    with pytest.raises(DataError, match="whole number"):
        subsample_per_group(cells, "midx", {1: -1})
    with pytest.raises(DataError, match="no column"):
        subsample_per_group(cells, "mouse", {1: 1})


def test_presets(cells, paired):
    assert preset_counts(cells, "midx", "as published") == {1: 10, 2: 20, 3: 30}
    assert preset_counts(cells, "midx", "balance mice") == {1: 10, 2: 10, 3: 10}
    assert preset_counts(cells, "midx", "drop mouse 2") == {1: 10, 2: 0, 3: 30}
    assert preset_counts(paired, "midx", "balance mice", unit="cidx") == {1: 6, 2: 6}
    with pytest.raises(DataError, match="Unknown preset"):
        preset_counts(cells, "midx", "everything")


def test_cell_counts_table(cells):
    tab = cell_counts(cells, "midx", "time")
    assert list(tab.index) == ["1", "2", "3", "Total"]
    assert tab.loc["Total", "Total"] == 60
    assert tab.loc["3", "Total"] == 30
    assert tab.loc["3", "% of cells"] == pytest.approx(50.0)
    assert tab.loc["Total", "1"] + tab.loc["Total", "2"] == 60
    np.testing.assert_allclose(tab["% of cells"].iloc[:-1].sum(), 100.0, atol=0.2)


def test_cell_counts_with_unit(paired):
    tab = cell_counts(paired, "midx", "treatment", unit="cidx")
    assert tab.loc["2", "1"] == 12
    assert tab.loc["Total", "2"] == 18
