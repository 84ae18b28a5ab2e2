"""The simulation page's sentences (issue 12 item 4) follow the numbers of the run."""

from __future__ import annotations

import re

from mmteach.simulate import simulate_report, simulate_type1


def _num(text: str, after: str) -> float:
    return float(re.search(re.escape(after) + r" ([-0-9.]+)", text).group(1))


def test_report_reading_states_its_own_numbers_and_the_draw_once_reason():
    once = simulate_report(reps=200, seed=2)
    x = once.fixed_table().set_index("term").loc["X"]
    text = once.reading()
    assert _num(text, "REML average SE is") == float(f"{x['avg_std_error']:.3g}")
    assert "drawn once" in text and f"coverage {x['coverage']:.1%}" in text
    redraw = simulate_report(reps=200, seed=2, redraw_random_effects=True)
    assert "drawn once" not in redraw.reading()
    assert f"{redraw.coverage[1]:.1%}" in redraw.reading()


def test_pvalue_reading_names_the_bent_histograms():
    t1 = simulate_type1(reps=600, seed=3)
    text = t1.pvalue_reading()
    share = float((t1.p_values["pooled_lm"] < 0.1).mean())
    assert f"Pooled LM: {share:.0%} of p-values below 0.1" in text
    flat = simulate_type1(reps=600, seed=3, icc=0.3, mice_per_condition=(4, 4), cells_per_mouse=10)
    assert "ICCs differ" not in flat.pvalue_reading()
