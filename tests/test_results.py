"""mmteach.results: coefficient tables (t and z tests, 95% CIs) and the R code every result carries."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from mmteach.results import coef_rows, r_data_prep


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
