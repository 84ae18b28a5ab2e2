"""Result sentences computed from real fits of the built-in data, in the states students create."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mmteach import figures as F
from mmteach import narrative as N
from mmteach.bayes import bayes_factor, fit_bayes_glmm
from mmteach.datasets import load_dataset
from mmteach.errors import MMTeachError
from mmteach.glmm import fit_glmm
from mmteach.lm import fit_fixed_group, fit_lm, fit_per_group, t_test
from mmteach.lme import fit_lme
from mmteach.marginal import fit_gee, fit_glm
from mmteach.reader import read_table
from mmteach.subsample import preset_counts, subsample_per_group, units_per_group

TERMS = {"treatment_idx2": "48h", "treatment_idx3": "72h", "treatment_idx4": "1wk"}
FREQ = load_dataset("ca_frequency")
FULL = units_per_group(FREQ, "midx")
STATES = {
    "as published": dict(FULL),
    "balance mice": preset_counts(FREQ, "midx", "balance mice"),
    "drop mouse 2": preset_counts(FREQ, "midx", "drop mouse 2"),
    "one cell": {m: int(m == 1) for m in FULL},
    "one mouse left": {m: (n if m == 1 else 0) for m, n in FULL.items()},
    "all dropped": {m: 0 for m in FULL},
}
KW = {"term": "treatment_idx2", "label": "48h", "group": "midx", "pooled": "Pooled LM",
      "per_group": "Mouse"}


def _freq_state(state: str):
    sub = subsample_per_group(FREQ, "midx", STATES[state], seed=0)
    fits, missing = {}, {}
    if sub.empty:  # the page stops with "every mouse has 0 cells" before fitting
        return sub, fits, {"LME": N.why_missing(sub, "midx")}, pd.DataFrame(columns=F.COMPARISON_COLUMNS)
    runs = [("Pooled LM", fit_lm, ("res ~ treatment_idx",), {"factors": ("treatment_idx",)}),
            ("Mouse as fixed effect", fit_fixed_group, ("res ~ treatment_idx + (1 | midx)",),
             {"factors": ("treatment_idx", "midx")}),
            ("LME", fit_lme, ("res ~ treatment_idx + (1 | midx)",),
             {"factors": ("treatment_idx", "midx"), "reml": False}),
            ("Mouse", fit_per_group, ("res ~ treatment_idx", "midx"), {"factors": ("treatment_idx",)})]
    for label, fn, args, kw in runs:
        try:
            fits[label] = fn(sub, *args, **kw)
        except MMTeachError as err:
            missing[label] = str(err)
    long = F.comparison_rows(fits, TERMS) if fits else pd.DataFrame(columns=F.COMPARISON_COLUMNS)
    return sub, fits, missing, long


@pytest.fixture(scope="module", params=list(STATES))
def freq(request):
    return request.param, *_freq_state(request.param)


def _reading(sub, long, missing):
    return N.frequency_reading(sub, long, fixed="Mouse as fixed effect", mixed="LME", missing=missing,
                               **{k: v for k, v in KW.items()})


def test_reading_agrees_with_the_table(freq):
    state, sub, fits, missing, long = freq
    text = _reading(sub, long, missing)
    pool = long[(long["analysis"] == "Pooled LM") & (long["term"] == "treatment_idx2")]
    if not pool.empty and not math.isnan(pool["estimate"].iloc[0]):
        p = float(pool["p_value"].iloc[0])
        assert f"p = {N.p_text(p)}" in text or f"pooled p is {N.p_text(p)}" in text
        assert ("calls the 48h change significant" in text) == (p < 0.05)
        assert ("Pooling does not find" in text) == (p >= 0.05)
    else:
        assert "independent replicates" not in text  # the "1 cells as 1 replicates" defect
    if "LME" in fits:
        lme = long[(long["analysis"] == "LME") & (long["term"] == "treatment_idx2")].iloc[0]
        assert f"p = {N.p_text(lme['p_value'])}" in text
        assert "No LME was fitted" not in text
    else:
        assert "No LME was fitted" in text and "LME's 48h change" not in text


def test_published_state_names_mouse_2_and_its_share(freq):
    state, sub, fits, missing, long = freq
    text = N.frequency_notice(sub, long, reference="24h", **KW)
    d = N.driver(sub, long, group="midx", per_group="Mouse", pooled="Pooled LM", term="treatment_idx2")
    if state == "as published":
        share = 100 * float((sub["midx"] == 2).mean())
        assert d == ("2", pytest.approx(share))
        assert f"follow mouse 2: it contributes {share:.0f}% of the cells" in text
        assert "mouse 2 drops significantly at 48h" in text
        assert "significant for mouse 2 only" in _reading(sub, long, missing)
    elif state in ("balance mice", "drop mouse 2"):
        assert d is None and "follow mouse" not in text
        assert "Pooling does not find the 48h change" in _reading(sub, long, missing)


def test_balanced_mice_story_matches_the_issue():
    sub, fits, missing, long = _freq_state("balance mice")
    p = float(long.query("analysis == 'Pooled LM' and term == 'treatment_idx2'")["p_value"].iloc[0])
    assert p > 0.05
    assert f"with these cells the pooled p is {N.p_text(p)}" in _reading(sub, long, missing)


def test_one_cell_and_one_mouse_say_why_there_is_no_lme():
    sub, fits, missing, long = _freq_state("one mouse left")
    assert "LME" not in fits and "Pooled LM" in fits
    text = _reading(sub, long, missing)
    assert "No LME was fitted. The grouping factor 'midx' has only 1 level" in text
    sub, fits, missing, long = _freq_state("one cell")
    text = _reading(sub, long, missing)
    assert "has no 48h estimate" in text and "replicates" not in text and ". ." not in text
    assert "groups.." not in text and "predictors.." not in text
    assert N.frequency_notice(sub, long, reference="24h", **KW) == "No mouse has enough cells for its own fit at 48h."


def test_all_dropped_says_why():
    sub, fits, missing, long = _freq_state("all dropped")
    assert sub.empty and not fits
    assert N.why_missing(sub, "midx") == "every mouse has 0 rows"


# --- estimability -----------------------------------------------------------------------------


def test_between_mouse_design_shows_no_fixed_effect_estimate():
    df = read_table("tests/data/uploads/21_between_mouse_design.csv")
    f = "amplitude ~ condition + (1 | mouse)"
    fits = {"Pooled LM": fit_lm(df, f), "mouse as fixed effect": fit_fixed_group(df, f), "LME": fit_lme(df, f),
            "mouse": fit_per_group(df, f, "mouse")}
    long = F.comparison_rows(fits, {"conditionvehicle": "vehicle"})
    # the engine returns a number (one mouse minus another): the defect the note must hide
    assert not math.isnan(long.query("analysis == 'mouse as fixed effect'")["estimate"].iloc[0])
    marked = N.estimability(long, df, group="mouse", variables=["condition"], fixed="mouse as fixed effect",
                            per_group="mouse", per_group_fit=fits["mouse"])
    row = marked.query("analysis == 'mouse as fixed effect'").iloc[0]
    assert math.isnan(row["estimate"]) and math.isnan(row["p_value"])
    assert row["note"].startswith("condition is constant within each mouse")
    assert not math.isnan(marked.query("analysis == 'LME'")["estimate"].iloc[0])
    notes = N.notes_by_analysis(marked)
    assert set(notes) == {"mouse as fixed effect"} | {f"mouse M{m}" for m in range(1, 7)}
    assert notes["mouse M1"] == "condition takes one value in mouse M1: its effect cannot be estimated there."


def test_within_mouse_design_keeps_every_estimate():
    sub, fits, missing, long = _freq_state("as published")
    marked = N.estimability(long, sub, group="midx", variables=["treatment_idx"], fixed="Mouse as fixed effect",
                            per_group="Mouse", per_group_fit=fits["Mouse"])
    assert (marked["note"] == "").all()
    pd.testing.assert_series_equal(marked["estimate"], long["estimate"])


def test_per_group_row_without_a_level_says_so():
    # mouse 1 keeps only its 24h and 72h cells: no 48h estimate, and the row says why
    d = FREQ[(FREQ["midx"] != 1) | FREQ["treatment_idx"].isin([1, 3])]
    fits = {"Mouse": fit_per_group(d, "res ~ treatment_idx", "midx", factors=("treatment_idx",))}
    long = F.comparison_rows(fits, TERMS)
    marked = N.estimability(long, d, group="midx", variables=["treatment_idx"], fixed=None, per_group="Mouse",
                            per_group_fit=fits["Mouse"])
    row = marked.query("analysis == 'Mouse 1' and term == 'treatment_idx2'").iloc[0]
    assert row["note"] == "mouse 1 has no rows at treatment_idx = 2."


# --- amplitude ---------------------------------------------------------------------------------

AMP = load_dataset("ca_amplitude")


def _brute_crossing(data):
    wide = data.pivot_table(index=["midx", "cidx"], columns="treatment", values="res").dropna()
    swaps = pairs = 0
    for _, part in wide.groupby(level=0):
        for (a1, a2), (b1, b2) in itertools.combinations(part[[1, 2]].to_numpy(), 2):
            swaps += (a1 - b1) * (a2 - b2) < 0
            pairs += 1
    return swaps / pairs


def test_crossing_share_counts_swapped_pairs():
    sub = subsample_per_group(AMP, "midx", {m: 12 for m in units_per_group(AMP, "midx", "cidx")}, seed=3,
                              unit="cidx")
    share, _ = N.crossing_share(sub, "res", "treatment", "cidx", "midx")
    assert share == pytest.approx(_brute_crossing(sub))


def test_crossing_notice_on_the_full_data_says_they_cross():
    corr = F.per_group_correlation(AMP, "res", "treatment", "cidx", "midx")
    share, _ = N.crossing_share(AMP, "res", "treatment", "cidx", "midx")
    text = N.crossing_notice(AMP, corr, response="res", time="treatment", unit="cidx", group="midx")
    assert "hardly cross" not in text and f"{100 * share:.0f}% of pairs" in text
    assert f"{corr['correlation'].median():.2f}" in text
    two = AMP[AMP["cidx"].isin(AMP["cidx"].unique()[:2])]
    assert N.crossing_notice(two, F.per_group_correlation(two, "res", "treatment", "cidx", "midx"),
                             response="res", time="treatment", unit="cidx", group="midx").startswith("Too few")


def test_pairing_reading_uses_the_table():
    fits = {"Pooled LM": fit_lm(AMP, "res ~ treatment", factors=("treatment",)),
            "Paired t-test": t_test(AMP, "res", "treatment", kind="paired", pair="cidx")}
    long = F.comparison_rows(fits, {"treatment2": "24h"})
    text = N.pairing_reading(long, term="treatment2", pooled="Pooled LM", paired="Paired t-test", mixed="LME",
                             missing={"LME": "the checkbox is off"})
    ratio = fits["Paired t-test"].coef("treatment2").std_error / fits["Pooled LM"].coef("treatment2").std_error
    assert f"SE is {100 * ratio:.0f}% of the pooled LM's" in text
    assert "No LME row: the checkbox is off." in text


def test_ladder_reading_follows_the_p_values():
    ladder = pd.DataFrame([{"bigger": "obj3", "smaller": "obj1", "p": 0.001, "p (boundary 50:50)": np.nan},
                           {"bigger": "obj4", "smaller": "obj1", "p": 0.16, "p (boundary 50:50)": 0.08},
                           {"bigger": "obj5", "smaller": "obj3", "p": 0.6, "p (boundary 50:50)": np.nan},
                           {"bigger": "obj5", "smaller": "obj4", "p": np.nan, "p (boundary 50:50)": np.nan}])
    text = N.ladder_reading(ladder)
    assert "obj3 improves on obj1 clearly (p = 0.0010)" in text
    assert "obj4 improves on obj1 only by the book's alpha = 0.1 rule (p = 0.080)" in text
    assert "obj5 adds little over obj3 (p = 0.60)" in text
    assert "obj5 vs obj4 could not be compared" in text


# --- water lick -------------------------------------------------------------------------------

LICK = load_dataset("water_lick")


@pytest.fixture(scope="module")
def glmm():
    return fit_glmm(LICK, "lick ~ dff + (1 | mouseID)", family="binomial", factors=("mouseID",))


def _curves(g, sd):
    t = g.tidy().set_index("term")
    re = g.ranef()
    grid = np.linspace(LICK["dff"].min(), LICK["dff"].max(), 60)
    return F.glmm_curves(t.loc["(Intercept)", "estimate"], t.loc["dff", "estimate"],
                         dict(zip(re["level"], re["value"], strict=True)), sd, grid)


def test_curves_notice_overlap_or_flatter(glmm):
    sd = float(glmm.variance_components()["sd"].iloc[0])
    text = N.curves_notice(_curves(glmm, sd), sd=sd)
    assert "population curve is" in text and "flatter" in text
    assert "overlap" in N.curves_notice(_curves(glmm, 0.02), sd=0.02)
    assert "only slightly" not in N.curves_notice(_curves(glmm, 3.0), sd=3.0)
    assert N.curves_notice(None, why="a random slope is fitted").endswith("a random slope is fitted.")


@pytest.mark.parametrize("prior_sd", [10.0, 0.5])
def test_bayes_story_numbers(prior_sd):
    b1 = fit_bayes_glmm(LICK, "lick ~ dff + (1 | mouseID)", b_prior_sd=prior_sd)
    b0 = fit_bayes_glmm(LICK, "lick ~ 1 + (1 | mouseID)", b_prior_sd=prior_sd)
    bf = bayes_factor(b1, b0).bf10
    slope = b1.tidy().set_index("term").loc["dff"]
    text = N.bayes_story(bf, prior_sd=prior_sd, post_mean=slope["estimate"], post_sd=slope["std_error"])
    assert f"({N.num(stats.norm.pdf(0, 0, prior_sd))}) over its posterior" in text
    assert f"BF10 is {N.num(bf)}" in text
    sd_ratio = stats.norm.pdf(0, 0, prior_sd) / stats.norm.pdf(0, slope["estimate"], slope["std_error"])
    assert sd_ratio == pytest.approx(bf, rel=0.3)  # the approximation the sentence relies on
    assert "The book's 5.02 would need a prior SD between" in text


def test_bootstrap_time_from_a_measured_time():
    assert N.bootstrap_time(0.075, 1000) == ("One refit of both models took 0.075 s here, so 1,000 samples "
                                             "take about 75 s.")
    assert N.bootstrap_time(0.2, 1000).endswith("about 3 min.")


def test_lick_reading_computes_the_ratio(glmm):
    fits = {"Pooled GLM": fit_glm(LICK, "lick ~ dff", family="binomial"),
            "GEE": fit_gee(LICK, "lick ~ dff", "mouseID", family="binomial"), "GLMM": glmm}
    long = F.comparison_rows(fits, {"dff": "dF/F"})
    text = N.lick_reading(long, glmm="GLMM", gee="GEE", pooled="Pooled GLM", n_trials=len(LICK))
    ratio = fits["GEE"].coef("dff").estimate / glmm.coef("dff").estimate
    assert f"is {100 * ratio:.0f}% of the GLMM's" in text
    assert "all 512 trials" in text
    text = N.lick_reading(long, glmm=None, gee="GEE", pooled="Pooled GLM", n_trials=len(LICK),
                          why_no_glmm="with one mouse there is no mouse-to-mouse variation")
    assert text.startswith("No GLMM row: with one mouse")
    assert "GLMM coefficient" not in text  # no definition of a row the table does not have


def test_bootstrap_reading_has_no_markdown_and_compares():
    text = N.bootstrap_reading(0.012, 1000, 0, 0.0024)
    assert "*" not in text  # the literal ** of the old line
    assert text == ("Parametric bootstrap p = 0.012 from 1,000 samples (0 failed fits). It is larger than "
                    "the LRT's large-sample p (0.0024).")
    assert "at most 1/(200 + 1)" in N.bootstrap_reading(1 / 201, 200, 3, 1e-5)
    assert "about the same as" in N.bootstrap_reading(0.05, 100, 1, 0.048)
