"""The command line, run as a student or instructor would (python -m mmteach ...)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import ROOT, SHARED, load_reference

LME = load_reference("lme")
EX1 = SHARED / "data" / "example1_pcreb.csv"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mmteach", *args], capture_output=True, text=True, cwd=ROOT, timeout=120
    )


def needs_example1() -> None:
    if not EX1.exists():
        pytest.skip(f"{EX1} is absent: the Example 1 checks need ../shared beside the repo")


@pytest.mark.parametrize(
    ("df_method", "key"), [("satterthwaite", "coef_satterthwaite"), ("kenward-roger", "coef_kenward_roger")]
)
def test_fit_json_reproduces_lmertest(df_method: str, key: str) -> None:
    needs_example1()
    ref = LME["cases"]["ex1_reml"]
    if key not in ref:
        pytest.skip(f"reference has no {key}")
    out = run("fit", str(EX1), "res ~ treatment_idx + (1|midx)", "--factor", "treatment_idx",
              "--df", df_method, "--json")
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["method"] == "REML" and got["groups"] == {"midx": 24} and got["n_obs"] == 1200
    for mine, r in zip(got["fixed"], ref[key]):
        # R: summary(lmerTest::lmer(res ~ treatment_idx + (1 | midx), d), ddf = ...)$coefficients
        assert mine["term"] == r["term"]
        assert mine["estimate"] == pytest.approx(r["estimate"], rel=1e-5)  # estimates 1e-5
        assert mine["std_error"] == pytest.approx(r["se"], rel=1e-4)  # SE 1e-4
        assert mine["df"] == pytest.approx(r["df"], rel=1e-2)  # df 1e-2
        assert mine["p_value"] == pytest.approx(r["p"], rel=1e-3)
    assert {v["group"] for v in got["random"]} == {"midx", "Residual"}


def test_compare_json_reproduces_anova() -> None:
    needs_example1()
    out = run("compare", str(EX1), "res ~ treatment_idx + (1|midx)", "res ~ 1 + (1|midx)",
              "--factor", "treatment_idx", "--json")
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    # R: anova(lmer(full), lmer(reduced)) (refitted by ML): Chisq 16.48011 on 4 df, p 0.002438
    assert got["chisq"] == pytest.approx(16.48011, abs=5e-6)
    assert got["df"] == 4
    assert got["p_value"] == pytest.approx(0.002438, abs=5e-7)


def test_bayes_fit_and_bayes_factor() -> None:
    ref = load_reference("bayes")["water_lick"]
    out = run("fit", "water_lick", "lick ~ dff + (1|mouseID)", "--family", "binomial",
              "--bayes", "--json")
    assert out.returncode == 0, out.stderr
    got = {c["term"]: c for c in json.loads(out.stdout)["fixed"]}
    # brms posterior mean of b_dff (4 x 20,000 draws); within 0.05 posterior SD
    assert abs(got["dff"]["estimate"] - ref["draws"]["b_dff"]["mean"]) < 0.05 * ref["draws"][
        "b_dff"]["sd"]
    out = run("compare", "water_lick", "lick ~ dff + (1|mouseID)", "lick ~ (1|mouseID)",
              "--family", "binomial", "--bayes", "--json")
    assert out.returncode == 0, out.stderr
    # brms::bayes_factor(fit1, fit0) by bridge sampling; log BF within 0.03
    assert abs(json.loads(out.stdout)["log_bf10"] - ref["log_bf10"]) < 0.03
    out = run("compare", "water_lick", "lick ~ dff + (1|mouseID)", "lick ~ (1|mouseID)", "--bayes")
    assert out.returncode == 2 and "--family" in out.stderr


def test_fit_text_output_on_builtin_dataset() -> None:
    out = run("fit", "ca_frequency", "res ~ treatment_idx + (1|midx)", "--factor", "treatment_idx")
    assert out.returncode == 0, out.stderr
    assert "Reconstruction calibrated to the published results" in out.stdout
    assert "treatment_idx2" in out.stdout and "lmerTest::lmer" in out.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("fit", "no_such_data", "y ~ x"), "neither a built-in data set"),
        (("fit", "ca_frequency", "res ~ nope + (1|midx)"), "not a column"),
        (("fit", "ca_frequency", "res ~ treatment_idx + (1|midx"), "close the random-effect term"),
        (("compare", "ca_frequency", "res ~ 1", "res ~ 1", "--bootstrap", "10"), "--family"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(args: tuple[str, ...], needle: str) -> None:
    out = run(*args)
    assert out.returncode == 2
    assert needle in out.stderr
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_datasets_lists_labels() -> None:
    out = run("datasets", "--json")
    names = {d["name"]: d for d in json.loads(out.stdout)["datasets"]}
    assert set(names) >= {"ca_frequency", "ca_amplitude", "water_lick"}
    assert all("Reconstruction" in d["label"] for d in names.values())


def test_simulate_report_json_keys() -> None:
    out = run("simulate", "report", "--reps", "30", "--seed", "3", "--redraw", "--json")
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    for key in ("avg_estimate", "avg_std_error", "true_std_error", "coverage"):
        assert set(got[key]) == {"(Intercept)", "X"}
    assert len(got["avg_sd"]) == 3
    # the true SE of the slope is near the report's 0.316 for its design (a new X draw per seed)
    assert 0.2 < got["true_std_error"]["X"] < 0.45


def test_simulate_type1_json_pooled_is_anticonservative() -> None:
    out = run("simulate", "typeI", "--reps", "200", "--json")
    assert out.returncode == 0, out.stderr
    rates = json.loads(out.stdout)["rejection_rate"]
    pooled = next(v for k, v in rates.items() if "pool" in k.lower())
    assert pooled > 0.9  # published: above 90% with Example 1's ICCs
