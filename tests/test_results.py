"""mmteach.results: coefficient tables (t and z tests, 95% CIs) and the R code every result carries."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from mmteach.results import RanefRows, RanefValue, coef_rows, r_data_prep


def test_coef_rows_t_and_z():
    rows = coef_rows(["a", "b"], np.array([1.5, -0.2]), np.array([0.5, 0.4]), [10.0, math.inf])
    a, b = rows
    assert a.statistic == pytest.approx(3.0)
    assert a.p_value == pytest.approx(2 * stats.t.sf(3.0, 10))
    assert a.conf_low == pytest.approx(1.5 - stats.t.ppf(0.975, 10) * 0.5)
    assert b.p_value == pytest.approx(2 * stats.norm.sf(0.5))  # df = inf: a z test
    assert b.conf_high == pytest.approx(-0.2 + 1.959964 * 0.4, rel=1e-6)
    assert math.isnan(coef_rows(["c"], np.array([1.0]), np.array([0.0]), 5)[0].statistic)


def test_r_data_prep():
    assert r_data_prep("d", []) == ""
    assert r_data_prep("wl", ["mouseID"]) == "wl$mouseID <- factor(wl$mouseID)\n"


def test_coef_rows_match_scipy_stats_exactly():
    """The special functions give the distribution objects' numbers to the bit."""
    beta = np.array([1.5, -0.2, 3.0, 0.0])
    se = np.array([0.5, 0.4, 0.7, 0.1])
    df = np.array([2.3, 41.0, 1e5, 7.0])
    for row, b, s, d in zip(coef_rows(list("abcd"), beta, se, df), beta, se, df):
        assert row.p_value == 2 * stats.t.sf(abs(b / s), d)
        assert row.conf_high == b + stats.t.ppf(0.975, d) * s


def test_ranef_rows_are_the_tuple_they_stand_for():
    import pickle

    vals = np.array([[1.0, -2.0], [0.5, 0.25]])
    rows = RanefRows([("cidx", ("1", "2"), ("(Intercept)", "treatment"), vals),
                      ("midx", ("7",), ("(Intercept)",), [[3.0]])])
    vals[0, 0] = 99.0  # the caller's array is copied
    expected = (RanefValue("cidx", "1", "(Intercept)", 1.0), RanefValue("cidx", "1", "treatment", -2.0),
                RanefValue("cidx", "2", "(Intercept)", 0.5), RanefValue("cidx", "2", "treatment", 0.25),
                RanefValue("midx", "7", "(Intercept)", 3.0))
    assert len(rows) == 5
    assert rows == expected and expected == rows and hash(rows) == hash(expected)
    assert rows[1] == expected[1] and list(rows) == list(expected)
    assert pickle.loads(pickle.dumps(rows)) == expected
