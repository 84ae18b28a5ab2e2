"""The command line, run as a student or instructor would (python -m mmteach ...).

The commands run in-process through :func:`mmteach.cli.main` (a subprocess costs a second of
imports each); one smoke test runs the real ``python -m mmteach``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

import pytest

from conftest import EXAMPLE1, ROOT, load_reference
from mmteach.cli import main

LME = load_reference("lme")
EX1 = EXAMPLE1


@pytest.fixture()
def run(capsys, monkeypatch):
    """``run(*args)`` -> (returncode, stdout, stderr) of ``python -m mmteach *args``, in-process."""
    monkeypatch.chdir(ROOT)

    def call(*args: str) -> SimpleNamespace:
        try:
            code = main(list(args))
        except SystemExit as exit_:  # argparse's own errors
            code = exit_.code
        out = capsys.readouterr()
        return SimpleNamespace(returncode=code, stdout=out.out, stderr=out.err)

    return call


def test_module_entry_point_smoke() -> None:
    """The real ``python -m mmteach`` in a subprocess (the others call main() in-process)."""
    ok = subprocess.run([sys.executable, "-m", "mmteach", "datasets", "--json"], capture_output=True,
                        text=True, cwd=ROOT, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "ca_frequency" in {d["name"] for d in json.loads(ok.stdout)["datasets"]}


def needs_example1() -> None:
    if not EX1.exists():
        pytest.skip(f"{EX1} is absent: the Example 1 checks need ../shared beside the repo")


@pytest.mark.parametrize(
    ("df_method", "key"), [("satterthwaite", "coef_satterthwaite"), ("kenward-roger", "coef_kenward_roger")]
)
def test_fit_json_reproduces_lmertest(df_method: str, key: str, run) -> None:
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


def test_compare_json_reproduces_anova(run) -> None:
    needs_example1()
    out = run("compare", str(EX1), "res ~ treatment_idx + (1|midx)", "res ~ 1 + (1|midx)",
              "--factor", "treatment_idx", "--json")
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    # R: anova(lmer(full), lmer(reduced)) (refitted by ML): Chisq 16.48011 on 4 df, p 0.002438
    assert got["chisq"] == pytest.approx(16.48011, abs=5e-6)
    assert got["df"] == 4
    assert got["p_value"] == pytest.approx(0.002438, abs=5e-7)


def test_bayes_fit_and_bayes_factor(run, tmp_path) -> None:
    """--bayes reaches fit_bayes_glmm and bayes_factor (their brms checks are in test_bayes.py),
    on a small file so the fits take a moment."""
    import numpy as np
    import pandas as pd

    from mmteach.bayes import bayes_factor, fit_bayes_glmm

    rng = np.random.default_rng(11)
    g = np.repeat(np.arange(6), 25)
    x = rng.normal(size=g.size)
    d = pd.DataFrame({"y": rng.binomial(1, 1 / (1 + np.exp(-(0.8 * x + rng.normal(0, 0.7, 6)[g])))),
                      "x": x, "g": g})
    path = tmp_path / "small.csv"
    d.to_csv(path, index=False)
    out = run("fit", str(path), "y ~ x + (1|g)", "--family", "binomial", "--bayes", "--json")
    assert out.returncode == 0, out.stderr
    got = {c["term"]: c for c in json.loads(out.stdout)["fixed"]}
    fit1 = fit_bayes_glmm(d, "y ~ x + (1 | g)", family="binomial")
    assert got["x"]["estimate"] == pytest.approx(fit1.coef("x").estimate, rel=1e-9)
    out = run("compare", str(path), "y ~ x + (1|g)", "y ~ (1|g)", "--family", "binomial", "--bayes", "--json")
    assert out.returncode == 0, out.stderr
    fit0 = fit_bayes_glmm(d, "y ~ 1 + (1 | g)", family="binomial")
    assert json.loads(out.stdout)["log_bf10"] == pytest.approx(bayes_factor(fit1, fit0).log_bf10, rel=1e-9)
    out = run("compare", str(path), "y ~ x + (1|g)", "y ~ (1|g)", "--bayes")
    assert out.returncode == 2 and "--family" in out.stderr


def test_fit_text_output_on_builtin_dataset(run) -> None:
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
def test_bad_input_is_one_line_and_nonzero(args: tuple[str, ...], needle: str, run) -> None:
    out = run(*args)
    assert out.returncode == 2
    assert needle in out.stderr
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_datasets_lists_labels(run) -> None:
    out = run("datasets", "--json")
    names = {d["name"]: d for d in json.loads(out.stdout)["datasets"]}
    assert set(names) >= {"ca_frequency", "ca_amplitude", "water_lick"}
    assert all("Reconstruction" in d["label"] for d in names.values())


def test_simulate_report_json_keys(run) -> None:
    out = run("simulate", "report", "--reps", "30", "--seed", "3", "--redraw", "--json")
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    for key in ("avg_estimate", "avg_std_error", "true_std_error", "coverage"):
        assert set(got[key]) == {"(Intercept)", "X"}
    assert len(got["avg_sd"]) == 3
    # the true SE of the slope is near the report's 0.316 for its design (a new X draw per seed)
    assert 0.2 < got["true_std_error"]["X"] < 0.45


def test_simulate_type1_json_pooled_is_anticonservative(run) -> None:
    out = run("simulate", "typeI", "--reps", "200", "--json")
    assert out.returncode == 0, out.stderr
    rates = json.loads(out.stdout)["rejection_rate"]
    pooled = next(v for k, v in rates.items() if "pool" in k.lower())
    assert pooled > 0.9  # published: above 90% with Example 1's ICCs


def test_compare_bootstrap_json_has_both_conventions(run) -> None:
    from conftest import DATA
    from mmteach.glmm import compare_glmm

    path = DATA / "glmm_pb.csv"
    out = run("compare", str(path), "y ~ x + (1|g)", "y ~ 1 + (1|g)", "--family", "binomial",
              "--bootstrap", "30", "--seed", "4", "--json")
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    import pandas as pd

    cmp = compare_glmm(pd.read_csv(path), "y ~ x + (1|g)", "y ~ 1 + (1|g)", family="binomial", bootstrap=30,
                       seed=4)
    assert got["bootstrap_p_value"] == pytest.approx(cmp.bootstrap_p_value)
    assert got["bootstrap_p_value_pbmodcomp"] == pytest.approx(cmp.bootstrap_p_value_pbmodcomp)
    assert got["bootstrap_positive"] <= got["bootstrap_samples"] == cmp.bootstrap_samples
    assert "PBmodcomp" in got["bootstrap_note"]
    text = run("compare", str(path), "y ~ x + (1|g)", "y ~ 1 + (1|g)", "--family", "binomial",
               "--bootstrap", "30", "--seed", "4").stdout
    assert "PBmodcomp's convention" in text
