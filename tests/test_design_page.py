"""The design planner page (pages/7_design.py) in Streamlit's AppTest."""

from __future__ import annotations

import numpy as np
from test_app_pages import open_page

from mmteach.power import Design, simulate_power


def test_rates_table_matches_engine_and_cost_plan_runs():
    at = open_page("pages/7_design.py", reps="200", mice="4", cells="10", effect="0")
    assert not at.error
    table = next(d.value for d in at.dataframe if "type I error" in d.value.columns)
    want = simulate_power(Design(mice=4, cells_per_mouse=10, effect=0.0), reps=200, seed=1)
    np.testing.assert_allclose(table["type I error"], want.tidy()["rejection_rate"])
    assert any("rejects in" in m.value for m in at.markdown)
    at.button(key="design_run_cost").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("cheapest design" in m.value or "No design in the grid" in m.value for m in at.markdown)
    grid = next(d.value for d in at.dataframe if "cost" in d.value.columns)
    assert list(grid.columns) == ["mice", "cells per mouse", "cost", "power", "95% CI low", "95% CI high"]


def test_within_design_has_the_slope_model():
    at = open_page("pages/7_design.py", kind="within", reps="100", mice="6", cells="10", slope_sd="0.4", effect="0")
    table = next(d.value for d in at.dataframe if "type I error" in d.value.columns)
    assert "LME random intercept + treatment slope" in set(table["analysis"])
