"""Partial pooling, the mouse-means row and the singular-fit profile on the example pages (AppTest)."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest
from test_app_pages import open_page


def pooling_table(at: AppTest):
    for df in at.dataframe:
        if "shrinkage weight" in df.value.columns:
            return df.value
    raise AssertionError("no partial-pooling table on the page")


@pytest.mark.parametrize("page,term", [("pages/2_frequency.py", "48h"), ("pages/3_amplitude.py", "")])
def test_mouse_means_row_and_sentence(page, term):
    at = open_page(page)
    tables = [*at.dataframe, *at.table]
    shown = " ".join(str(v) for df in tables for v in df.value.to_numpy().ravel())
    shown += " ".join(str(c) for df in tables for c in [*df.value.columns, *df.value.index])
    assert "Mouse means" in shown
    assert any("The mouse means estimate" in c.value for c in at.caption)


def test_fewer_cells_shrink_a_mouse_more_on_the_page():
    at = open_page("pages/3_amplitude.py")
    before = pooling_table(at).set_index("midx").loc["1", "shrinkage weight"]
    at.slider(key="amp.n1").set_value(3).run()
    assert not at.exception, [e.value for e in at.exception]
    after = pooling_table(at).set_index("midx").loc["1", "shrinkage weight"]
    assert after < before - 0.1


def test_singular_fit_shows_its_profile():
    # 6 cells per mouse (seed 0): the frequency page's ML fit puts the mouse SD at 0
    at = open_page("pages/2_frequency.py", n1="6", n2="6", n3="6", n4="6")
    assert not at.exception, [e.value for e in at.exception]
    assert any("profile interval runs from 0" in m.value for m in at.markdown)
    assert any("profile" in e.label for e in at.expander)


def test_your_data_shows_the_means_row_and_pooling():
    at = open_page("pages/5_your-data.py", dataset="ca_frequency")
    assert not at.exception, [e.value for e in at.exception]
    tables = [*at.dataframe, *at.table]
    assert any("Mouse means" in " ".join(map(str, df.value.index)) for df in tables)
    assert any("shrinkage weight" in df.value.columns for df in tables)


def test_amplitude_random_slope_shows_the_plane():
    at = open_page("pages/3_amplitude.py", structure="lme.obj4")
    assert not at.exception, [e.value for e in at.exception]
    table = pooling_table(at)
    assert set(table["term"]) == {"(Intercept)", "treatment2"}
    assert any("(1 + treatment | midx)" in c.value for c in at.caption)
