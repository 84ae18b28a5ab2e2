"""The Simulation page (pages/6_simulation.py) in Streamlit's AppTest."""

from __future__ import annotations

import numpy as np
import pytest
from streamlit import dataframe_util
from streamlit.testing.v1 import AppTest

from conftest import ROOT
from mmteach.simulate import simulate_report, simulate_type1

PAGE = "pages/6_simulation.py"


def open_page(**query: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.query_params.update(query)
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def table_with(at: AppTest, column: str):
    for df in at.dataframe:
        if column in df.value.columns:
            return df.value
    raise AssertionError(f"no table with column {column!r}")


def assert_no_blank_markers(at: AppTest) -> None:
    """Result tables show empty cells as "–", never None or nan."""
    for element in [*at.dataframe, *at.table]:
        styler = element.proto.arrow_data.styler
        shown = (dataframe_util.convert_arrow_bytes_to_pandas_df(styler.display_values)
                 if styler.display_values else element.value.astype(str))
        if element.type != "table":  # the grid prints a missing value as "None" anyway
            shown = shown.where(element.value.notna().to_numpy(), "None")
        cells = [str(c).strip() for c in shown.to_numpy().ravel()]
        assert not {"None", "nan", "NaN", "<NA>"} & set(cells), list(element.value.columns)


@pytest.fixture(scope="module")
def page() -> AppTest:
    # Small designs through the URL so the test stays quick; the page reads them as settings.
    return open_page(reps="40", k="8", n="6", t1reps="200")


def test_page_opens_without_results(page: AppTest) -> None:
    assert not page.dataframe  # nothing simulated before a run button is pressed
    labels = [b.label for b in page.button]
    assert "Run the Monte Carlo simulation" in labels
    assert page.slider(key="sim.k").value == 8  # the URL set the design
    assert any("100,000 rows" in c.value for c in page.caption)
    # what a run will do, from the URL's settings (no time: it depends on them and on the server)
    hint = next(i.value for i in page.info if "Run the Monte Carlo simulation" in i.value)
    assert "40 experiments of 8 classes with 6 rows each" in hint and "second" not in hint
    assert not any(ch.isdigit() for ch in page.title[0].value)  # no count the sliders could contradict


def test_run_report_shows_tables(page: AppTest) -> None:
    page.button(key="sim_run_report").click().run()
    assert not page.exception, [e.value for e in page.exception]
    fixed = table_with(page, "average estimate")
    want = simulate_report(n_classes=8, n_per_class=6, reps=40, seed=1, redraw_random_effects=True)
    np.testing.assert_allclose(fixed["average estimate"], want.estimates.mean(0).round(4))
    np.testing.assert_allclose(fixed["true SE"], want.true_se.round(4))
    sds = table_with(page, "average SD")
    assert list(sds["name"]) == ["Residual", "(Intercept)", "X"]
    assert_no_blank_markers(page)


def test_changed_setting_marks_results_stale(page: AppTest) -> None:
    page.slider(key="sim.k").set_value(9).run()
    assert not page.exception
    assert any("settings changed" in w.value for w in page.warning)


RUN_BUTTONS = {"report": "sim_run_report", "type1": "sim_run_type1", "misspec": "sim_run_misspec"}


@pytest.mark.parametrize("view", list(RUN_BUTTONS))
def test_url_view_renders_that_study_only(view: str) -> None:
    at = open_page(view=view)
    assert at.segmented_control(key="sim.view").value == view
    shown = {b.key for b in at.button} & set(RUN_BUTTONS.values())
    assert shown == {RUN_BUTTONS[view]}  # the other studies' controls are not drawn at all
    sliders = {s.key for s in at.slider}
    for study, key in (("report", "sim.k"), ("type1", "sim.cells"), ("misspec", "sim.ms_mice")):
        assert (key in sliders) == (study == view), key
    assert at.query_params["view"] == view


def test_choosing_a_view_writes_the_url_and_keeps_the_other_settings() -> None:
    at = open_page(k="8", view="report")
    at.segmented_control(key="sim.view").set_value("misspec").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.query_params["view"] == "misspec"
    assert at.query_params["k"] == "8"  # a study's settings survive while it is not shown
    assert [b.key for b in at.button if b.key in RUN_BUTTONS.values()] == ["sim_run_misspec"]
    at.segmented_control(key="sim.view").set_value("report").run()
    assert at.slider(key="sim.k").value == 8


def test_bad_view_in_the_url_falls_back_with_a_warning() -> None:
    at = open_page(view="everything")
    assert at.segmented_control(key="sim.view").value == "report"
    assert any("view" in w.value for w in at.warning)


def test_run_type1_shows_rates() -> None:
    page = open_page(view="type1", t1reps="200")
    page.button(key="sim_run_type1").click().run()
    assert not page.exception, [e.value for e in page.exception]
    rates = table_with(page, "type I error")
    want = simulate_type1(reps=200, seed=1, icc=tuple(round(v, 3) for v in
                                                       (0.62094868, 0.33006327, 0.01780304,
                                                        0.62810904, 0.53694579)))
    np.testing.assert_allclose(rates["type I error"], want.table()["rejection_rate"].round(4))
    assert rates["type I error"].iloc[0] > 0.9  # pooled
    assert_no_blank_markers(page)


def test_curve_runs() -> None:
    at = open_page(view="type1", curvereps="50")  # the replicates per point are a control (and in the URL)
    assert at.slider(key="sim.curvereps").value == 50
    at.radio(key="sim.over").set_value("cells_per_mouse").run()
    at.button(key="sim_run_curve").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error
    assert at.get("plotly_chart")


def test_report_redraws_by_default_and_draw_once_is_explained() -> None:
    at = open_page(reps="40", k="8", n="6")
    assert at.toggle(key="sim.redraw").value is True  # the question the report asks
    at.button(key="sim_run_report").click().run()
    assert any("redrawn per replicate" in i.value for i in at.info)
    at.toggle(key="sim.redraw").set_value(False).run()
    at.button(key="sim_run_report").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("drawn once" in w.value and "coverage" in w.value for w in at.warning)


def test_misspecification_view_runs() -> None:
    at = open_page(view="misspec", ms_reps="100", ms_mice="6", ms_cells="10")
    at.button(key="sim_run_misspec").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error
    assert any("random-intercept LME reports an average SE" in m.value for m in at.markdown)
