"""Type III F tests of every fixed term against lmerTest, including main effects that are
also part of an interaction (lmerTest's own type III contrasts, get_contrasts_type3).

References: tests/r/reference_ftest.R -> tests/reference/ftest.json, data tests/data/ftest_*.csv.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT
from conftest import case_factors as factors
from mmteach.compare import f_test

REF = json.loads((ROOT / "tests" / "reference" / "ftest.json").read_text())

CASES = [(k, m) for k in REF["cases"] for m in ("satterthwaite", "kenward_roger")]



@pytest.mark.parametrize("name,method", CASES)
def test_type3_f_test_matches_lmertest(name, method):
    # R: fit <- lmerTest::lmer(formula, data = d, REML = TRUE)
    #    anova(fit, type = 3, ddf = "Satterthwaite" | "Kenward-Roger")
    c = REF["cases"][name]
    d = pd.read_csv(ROOT / "tests" / "data" / c["data_file"])
    got = f_test(d, c["formula"], factors=factors(c), df_method=method.replace("_", "-"))
    ref = pd.DataFrame(c[f"anova_{method}"])
    assert got["term"].tolist() == ref["term"].tolist()
    assert got["num_df"].tolist() == ref["num_df"].tolist()
    # F: 1e-4 relative; den df: 1e-2; p: 1e-3
    np.testing.assert_allclose(got["F"], ref["F"], rtol=1e-4)
    np.testing.assert_allclose(got["den_df"], ref["den_df"], rtol=1e-2)
    np.testing.assert_allclose(got["p_value"], ref["p"], rtol=1e-3)


@pytest.mark.parametrize("name", list(REF["cases"]))
def test_single_term_matches_all_terms(name):
    # asking for one term gives the same row as the full table (same type III contrast)
    c = REF["cases"][name]
    d = pd.read_csv(ROOT / "tests" / "data" / c["data_file"])
    full = f_test(d, c["formula"], factors=factors(c))
    term = full["term"].iloc[0]
    one = f_test(d, c["formula"], term, factors=factors(c))
    np.testing.assert_allclose(one["F"].iloc[0], full["F"].iloc[0], rtol=1e-10)
