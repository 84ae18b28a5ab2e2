"""Partial pooling, the mouse-means analysis and SD profiles (issue 14 parts 1, 4, 5), against R:
tests/r/reference_pooling.R -> tests/reference/pooling.json (ranef(fit, condVar = TRUE),
lm on aggregate() means, confint(fit, method = "profile"))."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import DATA, load_reference
from mmteach.datasets import load_dataset
from mmteach.errors import DataError, ModelError
from mmteach.lm import fit_lm
from mmteach.lme import fit_lme
from mmteach.mouse_means import fit_mouse_means, is_balanced, mouse_means_sentence
from mmteach.pooling import partial_pooling
from mmteach.profile import profile_sd
from mmteach.subsample import subsample_per_group

REF = load_reference("pooling")
AMP = load_dataset("ca_amplitude")
FREQ = load_dataset("ca_frequency")
CASES = {
    "amp_ri": (AMP, "res ~ treatment + (1 | midx)", ["treatment"], True),
    "amp_rs": (AMP, "res ~ treatment + (1 + treatment | midx)", ["treatment"], True),
    "freq_ri_ml": (FREQ, "res ~ treatment_idx + (1 | midx)", ["treatment_idx", "midx"], False),
}


def _list(x):
    return x if isinstance(x, list) else [x]


@pytest.mark.parametrize("name", sorted(CASES))
def test_conditional_modes_and_sds_match_lme4(name):
    # R: ranef(fit, condVar = TRUE) and coef(fit) of a tightly converged lmer (common.R's TIGHT).
    # Tolerance 1e-6 absolute / relative: both sides are at the optimum (random slope: 1e-6
    # from the optimiser's last digits).
    d, f, fac, reml = CASES[name]
    pp = partial_pooling(fit_lme(d, f, factors=fac, reml=reml))
    ref = REF["ranef"][name]
    for j, term in enumerate(_list(ref["terms"])):
        t = pp.table[pp.table["term"] == term]
        assert t["level"].tolist() == _list(ref["levels"])
        np.testing.assert_allclose(t["ranef"], np.array(ref["modes"])[:, j], atol=1e-6)
        np.testing.assert_allclose(t["cond_sd"], np.array(ref["cond_sd"])[:, j], rtol=1e-5)
        np.testing.assert_allclose(t["lme"], np.array(ref["coef"])[:, j], atol=1e-6)


def test_random_intercept_mode_is_weight_times_own_deviation():
    pp = partial_pooling(fit_lme(AMP, "res ~ treatment + (1 | midx)", factors=["treatment"]))
    t = pp.table
    np.testing.assert_allclose(t["ranef"], t["weight"] * (t["own"] - t["population"]), rtol=1e-8)
    sb2, s2 = pp.covariance[0, 0], pp.sigma**2
    np.testing.assert_allclose(t["weight"], sb2 / (sb2 + s2 / t["n"]), rtol=1e-10)
    # complete pooling is the pooled LM's intercept
    assert pp.pooled[0] == pytest.approx(fit_lm(AMP, "res ~ treatment", factors=["treatment"])
                                         .coef("(Intercept)").estimate, rel=1e-10)
    # fewer cells, more shrinkage: the mouse with fewest cells has the smallest weight
    assert t.loc[t["n"].idxmin(), "weight"] == t["weight"].min()
    s = pp.sentence()
    lo = t.loc[t["weight"].idxmin()]
    assert f"Mouse {lo['level']} ({lo['n']} cells) keeps {lo['weight']:.0%}" in s


def test_fewer_cells_shrink_a_mouse_more():
    few = subsample_per_group(AMP, "midx", {1: 10}, seed=0)
    full = partial_pooling(fit_lme(AMP, "res ~ treatment + (1 | midx)", factors=["treatment"]))
    cut = partial_pooling(fit_lme(few, "res ~ treatment + (1 | midx)", factors=["treatment"]))
    w = lambda pp: pp.table.set_index("level").loc["1", "weight"]  # noqa: E731
    assert w(cut) < w(full) - 0.2


def test_pooling_refuses_models_it_cannot_draw():
    with pytest.raises(ModelError, match="one random-effects term"):
        partial_pooling(fit_lme(FREQ, "res ~ treatment_idx + (1 | midx) + (1 | midx:treatment_idx)",
                                factors=["treatment_idx", "midx"]))
    with pytest.raises(ModelError, match="mixed model"):
        partial_pooling(fit_lm(AMP, "res ~ treatment", factors=["treatment"]))


@pytest.mark.parametrize("name,data,cond", [("freq", FREQ, "treatment_idx"), ("amp", AMP, "treatment")])
def test_mouse_means_match_r(name, data, cond):
    # R: lm(res ~ condition + midx, data = aggregate(res ~ condition + midx, d, mean)); 1e-10.
    fit = fit_mouse_means(data, "res", cond, "midx")
    ref = REF["means"][name]
    t = fit.tidy()
    assert t["term"].tolist() == ref["terms"]
    np.testing.assert_allclose(t["estimate"], ref["estimate"], rtol=1e-10)
    np.testing.assert_allclose(t["std_error"], ref["se"], rtol=1e-10)
    np.testing.assert_allclose(t["p_value"], ref["p"], rtol=1e-8)
    assert t["df"].iloc[0] == ref["df"]


def test_means_equal_lme_when_balanced_and_sentence_says_so():
    rng = np.random.default_rng(4)
    mouse = np.repeat(np.arange(6), 10)
    cond = np.tile(np.repeat([1, 2], 5), 6)
    y = rng.normal(size=6)[mouse] + 0.5 * (cond == 2) + rng.normal(size=60)
    d = pd.DataFrame({"y": y, "cond": cond, "mouse": mouse})
    assert is_balanced(d, "cond", "mouse")
    mm = fit_mouse_means(d, "y", "cond", "mouse")
    lme = fit_lme(d, "y ~ cond + (1 | mouse)", factors=["cond", "mouse"])
    assert mm.coef("cond2").estimate == pytest.approx(lme.coef("cond2").estimate, rel=1e-8)
    s = mouse_means_sentence(mm, lme, d, "cond", "mouse", "cond2", "drug")
    assert "balanced" in s and "the estimates agree" in s
    un = FREQ
    s2 = mouse_means_sentence(fit_mouse_means(un, "res", "treatment_idx", "midx"),
                              fit_lme(un, "res ~ treatment_idx + (1 | midx)", factors=["treatment_idx", "midx"]),
                              un, "treatment_idx", "midx", "treatment_idx2", "48h")
    counts = pd.crosstab(un["midx"], un["treatment_idx"]).to_numpy()
    assert f"range from {counts.min()} to {counts.max()} (unbalanced)" in s2


def test_between_mouse_means_is_one_way_anova():
    d = pd.DataFrame({"y": [1.0, 1.2, 2.0, 2.2, 3.0, 3.4, 4.0, 4.4],
                      "g": ["a", "a", "b", "b", "c", "c", "d", "d"], "c": [1, 1, 1, 1, 2, 2, 2, 2]})
    fit = fit_mouse_means(d, "y", "c", "g")
    assert fit.coef("c2").estimate == pytest.approx((3.2 + 4.2) / 2 - (1.1 + 2.1) / 2)
    assert fit.coef("c2").df == 2
    with pytest.raises(DataError, match="column"):
        fit_mouse_means(d, "y", "nope", "g")


@pytest.mark.parametrize("name", ["amp_ri", "amp_ri_ml", "singular"])
def test_profile_interval_matches_confint(name):
    # R: confint(fit, method = "profile") (tight fit; the default fit gives the same to 1e-9).
    # lme4 profiles the ML deviance for REML fits too. Tolerance 1e-4 relative (R interpolates
    # zeta with a spline between profile points, mmteach solves for the end points).
    ref = REF["profile"][name]
    if name == "singular":
        d = pd.read_csv(DATA / "profile_singular.csv")
        fit = fit_lme(d, "y ~ x + (1 | mouse)", factors=["x", "mouse"])
        assert fit.singular == ref["singular"]
    else:
        fit = fit_lme(AMP, "res ~ treatment + (1 | midx)", factors=["treatment"], reml=ref["reml"])
    pr = profile_sd(fit)
    assert pr.conf_low == pytest.approx(ref["lower"][0], rel=1e-4, abs=1e-6)
    assert pr.conf_high == pytest.approx(ref["upper"][0], rel=1e-4)
    z = pr.table
    assert z["delta"].min() == pytest.approx(0.0, abs=1e-6)
    if name == "singular":
        assert pr.conf_low == 0.0
        assert "cannot tell an SD of 0" in pr.advice() and f"{pr.conf_high:.3g}" in pr.advice()
    else:
        assert "excludes 0" in pr.advice()


def test_figures_draw_every_mouse_and_the_interval():
    from mmteach.planner_figures import profile_plot, shrinkage_plane, shrinkage_plot

    pp = partial_pooling(fit_lme(AMP, "res ~ treatment + (1 | midx)", factors=["treatment"]))
    fig = shrinkage_plot(pp)
    assert len(fig.layout.annotations) == AMP["midx"].nunique()  # one arrow per mouse
    with pytest.raises(DataError, match="random slope"):
        shrinkage_plane(pp)
    rs = partial_pooling(fit_lme(AMP, "res ~ treatment + (1 + treatment | midx)", factors=["treatment"]))
    assert any("95%" in (tr.name or "") for tr in shrinkage_plane(rs).data)
    pr = profile_sd(fit_lme(AMP, "res ~ treatment + (1 | midx)", factors=["treatment"]))
    assert f"{pr.conf_high:.3g}" in profile_plot(pr).layout.annotations[0].text


def test_cli_pooling_and_profile(capsys):
    import json

    from mmteach.cli import main

    assert main(["fit", str(DATA / "profile_singular.csv"), "y ~ x + (1 | mouse)", "--factor", "x",
                 "--pooling", "--profile", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["profile"]["conf_low"] == 0.0
    assert out["profile"]["conf_high"] == pytest.approx(REF["profile"]["singular"]["upper"][0], rel=1e-4)
    assert all(r["weight"] == pytest.approx(0.0, abs=1e-6) for r in out["pooling"])  # SD 0: full pooling


def test_profile_with_two_variances_matches_confint():
    # R: confint(fit, method = "profile") for (1 | midx) + (1 | midx:treatment_idx), ML; each
    # profile point re-optimises the other SD and sigma. Tolerance 1e-4 relative.
    ref = REF["profile"]["freq_two"]
    fit = fit_lme(FREQ, "res ~ treatment_idx + (1 | midx) + (1 | midx:treatment_idx)",
                  factors=["treatment_idx", "midx"], reml=False)
    pr = profile_sd(fit, 0, points=3)
    assert pr.term == "midx:treatment_idx (Intercept)"
    assert pr.conf_low == pytest.approx(ref["lower"][0], rel=1e-4)
    assert pr.conf_high == pytest.approx(ref["upper"][0], rel=1e-4)


def test_a_fit_from_the_process_pool_draws_the_same_pooling_and_profile():
    """The app's fits arrive pickled from its pool workers (the problem without its set-up
    products, remade on first use): shrinkage and profile are those of the fit made here."""
    import pickle

    fit = fit_lme(AMP, "res ~ treatment + (1 + treatment | midx)", factors=["treatment"])
    again = pickle.loads(pickle.dumps(fit))
    pd.testing.assert_frame_equal(partial_pooling(again).table, partial_pooling(fit).table)
    one = fit_lme(AMP, "res ~ treatment + (1 | midx)", factors=["treatment"])
    a, b = profile_sd(one, points=5), profile_sd(pickle.loads(pickle.dumps(one)), points=5)
    assert (b.conf_low, b.conf_high) == (a.conf_low, a.conf_high)
    pd.testing.assert_frame_equal(b.table, a.table)
