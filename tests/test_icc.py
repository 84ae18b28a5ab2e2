"""ICC (ICC::ICCbare), design effect and effective n against Example 1's published table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import EXAMPLE1
from mmteach.errors import DataError
from mmteach.icc import design_effect, effective_n, icc_oneway, icc_table

EX1 = EXAMPLE1

# published_results.md, Example 1: ICC::ICCbare(midx, res) per condition; M = cells / mice
PUBLISHED = {
    1: (7, 357, 0.62094868, 32.047434, 11.139737),
    2: (6, 309, 0.33006327, 17.668195, 17.489053),
    3: (3, 139, 0.01780304, 1.807071, 76.920039),
    4: (3, 150, 0.62810904, 31.777343, 4.720344),
    5: (5, 245, 0.53694579, 26.773398, 9.150874),
}


@pytest.fixture(scope="module")
def ex1():
    if not EX1.exists():
        pytest.skip("Example 1 data (../shared/data/example1_pcreb.csv) is not available")
    return pd.read_csv(EX1)


@pytest.mark.parametrize("cond", sorted(PUBLISHED))
def test_example1_icc_table(ex1, cond):
    mice, cells, icc, de, neff = PUBLISHED[cond]
    sub = ex1[ex1["treatment_idx"] == cond]
    assert sub["midx"].nunique() == mice and len(sub) == cells
    got = icc_oneway(sub["res"], sub["midx"])
    assert round(got, 8) == icc  # printed to 8 decimals
    assert round(design_effect(got, cells / mice), 6) == de
    assert round(effective_n(cells, got, cells / mice), 6) == neff


def test_icc_table_per_condition(ex1):
    tab = icc_table(ex1, "res", "midx", by="treatment_idx")
    assert tab["treatment_idx"].tolist() == [1, 2, 3, 4, 5]
    np.testing.assert_allclose(tab["icc"], [v[2] for v in PUBLISHED.values()], atol=5e-9)
    np.testing.assert_allclose(tab["design_effect"], [v[3] for v in PUBLISHED.values()], atol=5e-7)


def test_balanced_icc_equals_anova_formula():
    # balanced: ICC = (MSA - MSW) / (MSA + (k - 1) MSW)
    rng = np.random.default_rng(0)
    g = np.repeat(np.arange(5), 4)
    y = rng.normal(size=5)[g] + rng.normal(size=20)
    means = np.array([y[g == i].mean() for i in range(5)])
    msa = 4 * np.sum((means - y.mean()) ** 2) / 4
    msw = np.sum((y - means[g]) ** 2) / 15
    assert icc_oneway(y, g) == pytest.approx((msa - msw) / (msa + 3 * msw), rel=1e-12)


def test_icc_drops_missing_and_checks_input():
    assert icc_oneway([1.0, 1.1, np.nan, 3.0, 3.2], [1, 1, 1, 2, 2]) == pytest.approx(
        icc_oneway([1.0, 1.1, 3.0, 3.2], [1, 1, 2, 2]))
    with pytest.raises(DataError, match="two groups"):
        icc_oneway([1.0, 2.0], [1, 1])
    with pytest.raises(DataError, match="replicate"):
        icc_oneway([1.0, 2.0], [1, 2])
    with pytest.raises(DataError):
        design_effect(0.5, 0)


def test_design_effect_and_effective_n():
    assert design_effect(0.0, 50) == 1.0
    assert design_effect(1.0, 50) == 50.0
    assert effective_n(100, 1.0, 10) == pytest.approx(10.0)
