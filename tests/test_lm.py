"""Pooled LMs, model matrices and t-tests against R (tests/r/reference_lm.R)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import DATA, load_reference
from mmteach.errors import DataError
from mmteach.lm import fit_fixed_group, fit_lm, fit_per_group, t_test
from mmteach.model_frame import build_model

REF = load_reference("lm")


@pytest.fixture(scope="module")
def design_data() -> pd.DataFrame:
    return pd.read_csv(DATA / "lm_design.csv")


@pytest.mark.parametrize("case", REF["lm"], ids=lambda c: c["formula"])
def test_lm_matches_r(design_data: pd.DataFrame, case: dict) -> None:
    # R: fit <- lm(formula, data = d) with d$t <- factor(d$t); summary(fit)$coefficients
    fit = fit_lm(design_data, case["formula"], factors=["t"])
    tidy = fit.tidy().set_index("term")
    terms = case["term"] if isinstance(case["term"], list) else [case["term"]]
    assert list(tidy.index) == terms  # aliased columns dropped, names as R prints them
    for key in ("estimate", "std_error", "statistic"):
        want = np.atleast_1d(case[key])
        np.testing.assert_allclose(tidy[key].to_numpy(), want, rtol=1e-6, atol=1e-10)  # rtol 1e-6
    np.testing.assert_allclose(tidy["p_value"].to_numpy(), np.atleast_1d(case["p_value"]), rtol=1e-5)
    assert tidy["df"].iloc[0] == case["df"]  # residual df, exact
    assert fit.extras["sigma"] == pytest.approx(case["sigma"], rel=1e-8)  # summary(fit)$sigma
    assert fit.loglik == pytest.approx(case["loglik"], rel=1e-8)  # logLik(fit)
    assert fit.aic == pytest.approx(case["aic"], rel=1e-8)  # AIC(fit)
    assert fit.bic == pytest.approx(case["bic"], rel=1e-8)  # BIC(fit)


@pytest.mark.parametrize("case", REF["lm"], ids=lambda c: c["formula"])
def test_model_matrix_names_match_r(design_data: pd.DataFrame, case: dict) -> None:
    # R: colnames(model.matrix(fit)), including columns lm reports as NA (aliased)
    mf = build_model(design_data, case["formula"], factors=["t"])
    names = case["model_matrix_names"]
    names = names if isinstance(names, list) else [names]
    assert set(mf.fixed_names) <= set(names)
    assert [n for n in names if n in mf.fixed_names] == list(mf.fixed_names)


@pytest.mark.parametrize("kind", ["pooled", "welch", "paired"])
def test_t_tests_match_r(design_data: pd.DataFrame, kind: str) -> None:
    ref = REF["ttest"][kind]
    fit = t_test(design_data, "y", "period", kind=kind, pair="pair" if kind == "paired" else None)
    row = fit.coef("period2")
    if kind == "paired":
        # R: t.test(y.2, y.1, paired = TRUE): estimate = mean difference (2 - 1)
        assert row.estimate == pytest.approx(ref["estimate"], rel=1e-8)
        assert row.statistic == pytest.approx(ref["statistic"], rel=1e-8)
        assert (row.conf_low, row.conf_high) == pytest.approx((ref["conf_low"], ref["conf_high"]), rel=1e-8)
    else:
        # R: t.test(y ~ period): estimate = (mean1, mean2), statistic for mean1 - mean2
        assert row.estimate == pytest.approx(ref["estimate"][1] - ref["estimate"][0], rel=1e-8)
        assert row.statistic == pytest.approx(-ref["statistic"], rel=1e-8)
        assert (row.conf_low, row.conf_high) == pytest.approx((-ref["conf_high"], -ref["conf_low"]), rel=1e-8)
    assert row.df == pytest.approx(ref["df"], rel=1e-8)
    assert row.p_value == pytest.approx(ref["p_value"], rel=1e-6)


def test_example1_lm_published(example1: pd.DataFrame) -> None:
    # published_results.md, lm(res ~ treatment_idx): printed digits
    fit = fit_lm(example1, "res ~ treatment_idx", factors=["treatment_idx"])
    published = {
        "(Intercept)": (1.0261907, 0.03997259, 25.672363, 4.064778e-116),
        "treatment_idx2": (0.7828564, 0.05868406, 13.340189, 6.040147e-38),
        "treatment_idx3": (0.8135287, 0.07550847, 10.774006, 6.760583e-26),
        "treatment_idx4": (0.1605790, 0.07348870, 2.185084, 2.907634e-02),
        "treatment_idx5": (-0.3604732, 0.06265813, -5.753015, 1.112796e-08),
    }
    for term, (est, se, t, p) in published.items():
        row = fit.coef(term)
        assert row.estimate == pytest.approx(est, abs=5e-8)
        assert row.std_error == pytest.approx(se, abs=5e-9)
        assert row.statistic == pytest.approx(t, abs=5e-7)
        assert row.p_value == pytest.approx(p, rel=1e-6)
    assert fit.extras["sigma"] == pytest.approx(0.7553, abs=5e-5)  # residual SE 0.7553
    assert fit.extras["f_statistic"] == pytest.approx(108.1, abs=0.05)  # F = 108.1 on 4, 1195
    assert fit.extras["f_df"] == (4, 1195)


def test_fixed_group_and_per_group(design_data: pd.DataFrame) -> None:
    fixed = fit_fixed_group(design_data, "y ~ x + (1|g)")
    assert [t for t in fixed.tidy().term] == ["(Intercept)", "x"] + [f"g{k}" for k in range(2, 7)]
    # Same as lm(y ~ x + factor(g)) written out by hand
    direct = fit_lm(design_data, "y ~ x + factor(g)")
    np.testing.assert_allclose(fixed.tidy().estimate, direct.tidy().estimate, rtol=1e-10)
    per = fit_per_group(design_data, "y ~ x", "g")
    assert sorted(per.group.unique()) == [str(k) for k in range(1, 7)]
    one = fit_lm(design_data[design_data.g == 3], "y ~ x").coef("x").estimate
    assert per[(per.group == "3") & (per.term == "x")].estimate.item() == pytest.approx(one)


def test_per_group_reports_unfittable_groups() -> None:
    # (y is not exactly x: a perfect fit is refused, since its standard errors are 0)
    d = pd.DataFrame({"y": [1.0, 2.2, 2.9, 4, 5], "x": [1.0, 2, 3, 4, 5], "m": [1, 1, 1, 2, 3]})
    per = fit_per_group(d, "y ~ x", "m")
    notes = per.groupby("group").note.first()
    assert notes["1"] == "" and "needs more than" in notes["2"]


def test_bad_input_messages(design_data: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="exactly two groups"):
        t_test(design_data, "y", "a")
    with pytest.raises(DataError, match="must be numeric"):
        fit_lm(design_data, "a ~ x")
    with pytest.raises(DataError, match="needs more than"):
        fit_lm(design_data.head(2), "y ~ x + a")
