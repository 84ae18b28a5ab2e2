"""Model frames: missing values, factor coding, nested and crossed grouping, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mmteach.errors import DataError
from mmteach.model_frame import build_model, format_level


@pytest.fixture()
def nested() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    rows = []
    for m in range(1, 4):
        for c in range(1, 5):  # cell ids repeat across mice on purpose
            for t in (1, 2):
                rows.append({"res": rng.normal(), "treatment": t, "midx": m, "cidx": c})
    d = pd.DataFrame(rows)
    d.loc[5, "res"] = np.nan
    return d


def test_missing_rows_dropped_and_counted(nested: pd.DataFrame) -> None:
    mf = build_model(nested, "res ~ treatment + (1|midx/cidx)")
    assert mf.n_obs == len(nested) - 1 and mf.n_dropped == 1


def test_nested_grouping_as_lme4(nested: pd.DataFrame) -> None:
    # (1|midx/cidx) == (1|midx) + (1|cidx:midx): 12 distinct cells although cidx repeats
    mf = build_model(nested, "res ~ treatment + (1|midx/cidx)")
    assert [(b.group, b.n_levels) for b in mf.blocks] == [("cidx:midx", 12), ("midx", 3)]
    assert mf.group_sizes() == {"cidx:midx": 12, "midx": 3}
    inner = mf.blocks[0]
    assert inner.levels[0] == "1:1"
    # rows of the same (cell, mouse) share a code, others do not
    key = mf.data["cidx"].astype(str) + ":" + mf.data["midx"].astype(str)
    for code in range(inner.n_levels):
        assert key[inner.codes == code].nunique() == 1


def test_crossed_and_slopes(nested: pd.DataFrame) -> None:
    mf = build_model(nested, "res ~ treatment + (treatment|midx) + (1|cidx)", factors=["treatment"])
    by_group = {b.group: b.terms for b in mf.blocks}
    assert by_group == {"midx": ("(Intercept)", "treatment2"), "cidx": ("(Intercept)",)}
    assert mf.fixed_names == ("(Intercept)", "treatment2")


def test_numeric_levels_print_like_r() -> None:
    assert format_level(2.0) == "2" and format_level(2.5) == "2.5" and format_level(True) == "TRUE"


def test_rank_deficient_columns_dropped_with_message() -> None:
    d = pd.DataFrame({"y": [1.0, 2, 3, 4, 5, 7], "cond": [1, 1, 1, 2, 2, 2], "m": [1, 1, 2, 3, 3, 4]})
    mf = build_model(d, "y ~ factor(cond) + factor(m)")
    assert "factor(m)4" not in mf.fixed_names
    assert any("linear combinations" in m for m in mf.messages)


@pytest.mark.parametrize(
    ("formula", "factors", "needle"),
    [
        ("res ~ treatment", ["nope"], "not in the data"),
        ("res ~ treatment", [], "no rows"),
    ],
)
def test_bad_input(formula: str, factors: list[str], needle: str, nested: pd.DataFrame) -> None:
    data = nested if needle != "no rows" else nested.iloc[0:0]
    with pytest.raises(DataError, match=needle):
        build_model(data, formula, factors=factors)


def test_text_response_is_refused(nested: pd.DataFrame) -> None:
    d = nested.assign(res=["a"] * len(nested))
    with pytest.raises(DataError, match="must be numeric"):
        build_model(d, "res ~ treatment")


def test_all_rows_missing(nested: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="nothing left to fit"):
        build_model(nested.assign(res=np.nan), "res ~ treatment")
