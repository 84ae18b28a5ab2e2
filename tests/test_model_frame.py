"""Model frames: missing values, factor coding, nested and crossed grouping, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mmteach.errors import DataError
from mmteach.model_frame import (
    ascii_collation_key,
    build_model,
    collation_key,
    factor_codes,
    format_level,
)


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


def _factor_codes_by_dict(values: pd.Series) -> tuple[list[int], tuple[str, ...]]:
    """factor_codes the slow way (sorted uniques, a dict per row), to compare with."""
    uniques = list(pd.unique(values))
    if all(isinstance(u, str) for u in uniques):
        ordered = sorted(uniques, key=collation_key)
    else:
        try:
            ordered = sorted(uniques)
        except TypeError:
            ordered = sorted(uniques, key=lambda u: collation_key(str(u)))
    labels = [format_level(u) for u in ordered]
    if len(set(labels)) < len(labels):
        labels = [str(u) for u in ordered]
    lookup = {u: i for i, u in enumerate(ordered)}
    return [lookup[v] for v in values], tuple(labels)


@pytest.mark.parametrize("kind", ["ascii", "arrow", "accents", "int", "uint", "float", "bool", "mixed"])
def test_factor_codes_match_sorted_levels(kind: str) -> None:
    rng = np.random.default_rng(7)
    chars = np.array(list(" _-.,0129aAbBzZ~\t"))
    words = ["".join(rng.choice(chars, size=rng.integers(1, 5))) for _ in range(60)]
    values = {
        "ascii": pd.Series(rng.choice(words, 300), dtype=object),
        "arrow": pd.Series(rng.choice(words, 300)).astype("string[pyarrow]"),
        "accents": pd.Series(rng.choice(words + ["é", "e", "É", "ß", "ss"], 300), dtype=object),
        "int": pd.Series(rng.integers(-50, 50, 300)),
        "uint": pd.Series(rng.integers(0, 50, 300).astype(np.uint16)),
        "float": pd.Series(rng.choice([0.5, 1.0, 2.0, -3.25, 1e-20], 300)),
        "bool": pd.Series(rng.random(300) < 0.3),
        "mixed": pd.Series(rng.choice(np.array(["a", 1, 2.5, "B"], dtype=object), 300)),
    }[kind]
    codes, labels = factor_codes(values)
    want_codes, want_labels = _factor_codes_by_dict(values)
    assert labels == want_labels
    assert codes.tolist() == want_codes


def test_ascii_collation_key_orders_as_collation_key() -> None:
    rng = np.random.default_rng(3)
    alphabet = [chr(i) for i in range(128)]
    words = ["".join(rng.choice(alphabet, size=rng.integers(0, 6))) for _ in range(2000)]
    words += ["a", "A", "a ", "a_", "a-", "a0", "ab", "aB", "Ab", "AB"]
    assert sorted(words, key=ascii_collation_key) == sorted(words, key=collation_key)
