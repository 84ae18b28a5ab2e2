"""Validation before fitting and the linear-cost mouse-as-fixed-effect fit (issue 15).

Each test below failed before issue 15: the fit showed a traceback or a silently wrong number.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
import pytest

from mmteach.datasets import load_dataset
from mmteach.errors import DataError, FormulaError
from mmteach.formula import Formula, Term, Variable, parse_formula
from mmteach.lm import fit_fixed_group, fit_lm
from mmteach.lme import fit_lme
from mmteach.model_frame import build_model
from mmteach.validate import check_column_names


@pytest.fixture
def d() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    g = np.repeat(np.arange(6), 5)
    return pd.DataFrame({"y": rng.normal(size=30) + g * 0.3, "x": rng.normal(size=30), "g": g})


def test_constant_response_refused(d: pd.DataFrame) -> None:
    # before: LME intercept SE 3.9e-17 and p = 1.5e-89 with no message
    d["y"] = 2.0
    for fit in (fit_lme, fit_lm):
        with pytest.raises(DataError, match="same value .* in every row"):
            fit(d, "y ~ x + (1 | g)")


def test_infinite_predictor_refused(d: pd.DataFrame) -> None:
    # before: the CLI exited 0 with every estimate NaN; the page showed an SVD traceback
    d.loc[3, "x"] = np.inf
    with pytest.raises(DataError, match="infinite value .* row\\(s\\) 4"):
        fit_lm(d, "y ~ x")


@pytest.mark.parametrize("scale", [1e300, 1e-300])
def test_extreme_values_refused(d: pd.DataFrame, scale: float) -> None:
    # before: 1e-300 gave "math domain error" (log of RSS 0); 1e300 SE inf and p = 1.0
    d["y"] = d["y"] * scale
    with pytest.raises(DataError, match="other units"):
        fit_lm(d, "y ~ x")
    with pytest.raises(DataError, match="other units"):
        fit_lme(d, "y ~ x + (1 | g)")


def test_overflowing_id_refused() -> None:
    # before: a mouse id of 1e19 became mouse -9223372036854775808 (or merged with others)
    text = "y,x,m\n" + "\n".join(f"{i % 3 + 0.1 * i},{i % 2},{'1e19' if i < 6 else i // 6}" for i in range(30))
    data = pd.read_csv(io.StringIO(text))
    with pytest.raises(DataError, match="too large to keep every id distinct"):
        fit_lme(data, "y ~ x + (1 | m)")


def test_near_collinear_predictors_noted(d: pd.DataFrame) -> None:
    # before: x2 = 2 x1 (to 1e-6) gave x1 = -65,340 +- 427,000 with no warning
    d["x2"] = 2 * d["x"] + np.random.default_rng(1).normal(scale=1e-6, size=len(d))
    res = fit_lm(d, "y ~ x + x2")
    assert any("almost exact linear combinations" in m and "x2" in m for m in res.messages)
    assert not any("linear combinations" in m for m in fit_lm(d, "y ~ x").messages)


def test_constant_predictor_noted(d: pd.DataFrame) -> None:
    d["c"] = 3.0
    res = fit_lm(d, "y ~ x + c")
    assert any("'c'" not in m and "c has the same value (3.0)" in m for m in res.messages)


def test_duplicate_and_empty_names() -> None:
    with pytest.raises(DataError, match="appears 2 times"):
        check_column_names(["res", "midx", "res"])
    with pytest.raises(DataError, match="Column 3 of the header has no name"):
        check_column_names(["res", "midx", "Unnamed: 2"])
    data = pd.DataFrame([[1.0, 2.0, 1], [2.0, 1.0, 2], [3.0, 5.0, 1]], columns=["y", "y", "g"])
    with pytest.raises(DataError, match="2 columns named y"):
        build_model(data, "y ~ g")


def test_too_wide_design_refused_before_it_is_built() -> None:
    n = 30_000
    data = pd.DataFrame({"y": np.arange(n) % 7 + 0.5, "id": np.arange(n)})
    with pytest.raises(DataError, match="random-effect term"):
        build_model(data, "y ~ factor(id)")


def test_formula_errors_are_formula_errors(d: pd.DataFrame) -> None:
    # before: 1,000 nested parentheses around the grouping column raised RecursionError
    with pytest.raises(FormulaError, match="parentheses"):
        fit_lme(d, "y ~ x + (1 | " + "(" * 900 + "g" + ")" * 900 + ")")


def _dense(data: pd.DataFrame, formula: str, factors: list[str], group: str):
    p = parse_formula(formula, list(data.columns))
    full = Formula(p.text, p.response, (*p.fixed, Term((Variable(group),))), p.intercept, ())
    return fit_lm(data, full, factors=(*factors, group))


@pytest.mark.parametrize(("formula", "factors"), [
    ("y ~ x + b + (1|g)", ["b"]),              # b constant within mice: one mouse dropped
    ("y ~ x*w + b + bb + c + (1|g)", ["b", "w"]),
    ("y ~ bb + b + x:bb + (1|g)", ["b"]),
    ("y ~ b:x + (1|g)", ["b"]),
])
def test_fixed_group_sweep_matches_dense_design(formula: str, factors: list[str]) -> None:
    rng = np.random.default_rng(3)
    n = 300
    data = pd.DataFrame({"g": rng.integers(0, 40, n), "x": rng.normal(size=n), "w": rng.integers(0, 2, n)})
    data["b"], data["bb"] = data.g % 3, (data.g % 2) * 2.0
    data["c"] = data.g * 0.1 + rng.normal(size=n)
    data["y"] = data.x + data.b + rng.normal(size=n) + data.g * 0.05
    a, b = fit_fixed_group(data, formula, factors=factors), _dense(data, formula, factors, "g")
    ta, tb = a.tidy(), b.tidy()
    assert ta.term.tolist() == tb.term.tolist()
    cols = ["estimate", "std_error", "p_value", "conf_low"]
    np.testing.assert_allclose(ta[cols].to_numpy(float), tb[cols].to_numpy(float), rtol=1e-7, atol=1e-10)
    assert a.messages == b.messages
    assert a.loglik == pytest.approx(b.loglik) and a.extras["f_statistic"] == pytest.approx(b.extras["f_statistic"])


def test_fixed_group_on_example3_cells_matches_dense() -> None:
    # before: 622 cells as a fixed factor took ~20 s (dense n x 622 design, O(p^3) alias check)
    d3 = load_dataset("ca_amplitude")
    full = fit_fixed_group(d3, "res ~ treatment + (1|cidx)", factors=["treatment"])
    assert len(full.tidy()) == 623 and math.isfinite(full.tidy().p_value.sum())
    part = d3[d3.cidx.isin(sorted(d3.cidx.unique())[:150])]
    a = fit_fixed_group(part, "res ~ treatment + (1|cidx)", factors=["treatment"])
    b = _dense(part, "res ~ treatment + (1|cidx)", ["treatment"], "cidx")
    assert a.tidy().term.tolist() == b.tidy().term.tolist()
    np.testing.assert_allclose(a.tidy().std_error, b.tidy().std_error, rtol=1e-8)
