"""Built-in data sets: calibration targets, reproducible build, original-format readers.

Targets come from ``shared/reference/published_results.md``. Where a target needs a mixed
model the value is R's, read from ``tests/reference/datasets.json`` (made by
``Rscript tests/r/reference_datasets.R`` on the committed CSVs); counts, pooled LMs,
correlations and summaries are recomputed here with pandas/numpy/statsmodels.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf

from conftest import DATA, ROOT, load_reference
from mmteach.datasets import (
    dataset_label,
    list_datasets,
    load_dataset,
    read_example2,
    read_example3,
    read_waterlick,
    resolve_data,
)
from mmteach.errors import DataError

NAMES = ("ca_frequency", "ca_amplitude", "water_lick")
RECON = "Reconstruction calibrated to the published results"
ORIGINAL_NAMES = {"ca_frequency": "Example2.txt", "ca_amplitude": "Example3.txt",
                  "water_lick": "waterlick_sim.txt"}


@pytest.fixture(scope="module")
def ref() -> dict:
    return load_reference("datasets")


@pytest.fixture(scope="module")
def freq() -> pd.DataFrame:
    return load_dataset("ca_frequency", original_dir=ROOT / "tests" / "no-originals")


@pytest.fixture(scope="module")
def amp() -> pd.DataFrame:
    return load_dataset("ca_amplitude", original_dir=ROOT / "tests" / "no-originals")


@pytest.fixture(scope="module")
def lick() -> pd.DataFrame:
    return load_dataset("water_lick", original_dir=ROOT / "tests" / "no-originals")


# ------------------------------------------------------------------ provenance of the JSON


@pytest.mark.parametrize("name", NAMES)
def test_reference_json_was_made_from_committed_csv(ref, name):
    digest = hashlib.sha256((ROOT / "datasets" / f"{name}.csv").read_bytes()).hexdigest()
    assert ref[name]["sha256"] == digest, (
        f"datasets/{name}.csv changed since tests/reference/datasets.json was made: rerun "
        "Rscript tests/r/reference_datasets.R"
    )


def test_build_script_rebuilds_the_committed_files(tmp_path):
    """python datasets/build_reconstructions.py OUT rebuilds all three files (~6 s).

    Same design, same labels, values within 1e-3. Not byte for byte on every machine: the
    frequency calibration is a least-squares solve with more parameters than the targets pin
    down, and which of the equally good points it stops at depends on the processor's BLAS
    kernels (here 2.8e-4 apart on another CPU; every published target is met at both, as the
    tests below check on the committed file)."""
    subprocess.run([sys.executable, str(ROOT / "datasets" / "build_reconstructions.py"),
                    str(tmp_path)], check=True, capture_output=True)
    for name in NAMES:
        built = pd.read_csv(tmp_path / f"{name}.csv")
        committed = pd.read_csv(ROOT / "datasets" / f"{name}.csv")
        assert list(built.columns) == list(committed.columns), name
        numeric = built.select_dtypes("number").columns
        pd.testing.assert_frame_equal(built.drop(columns=numeric), committed.drop(columns=numeric))
        np.testing.assert_allclose(built[numeric].to_numpy(float), committed[numeric].to_numpy(float), rtol=0,
                                   atol=1e-3, equal_nan=True, err_msg=name)


# ------------------------------------------------------------------ Example 2: ca_frequency

PUBLISHED_COUNTS = np.array([[81, 254, 88, 43], [206, 101, 210, 222],
                             [33, 18, 51, 207], [63, 52, 58, 37]])


def test_frequency_counts_exact(freq):
    counts = pd.crosstab(freq["midx"], freq["treatment_idx"]).to_numpy()
    np.testing.assert_array_equal(counts, PUBLISHED_COUNTS)
    assert list(freq.columns) == ["res", "treatment_idx", "midx", "time"]
    labels = freq.groupby("treatment_idx")["time"].unique().map(lambda v: tuple(v))
    assert labels.to_dict() == {1: ("24h",), 2: ("48h",), 3: ("72h",), 4: ("1wk",)}


def test_frequency_lm_matches_published(freq):
    # R: lm(res ~ treatment_idx) with treatment_idx a factor
    fit = smf.ols("res ~ C(treatment_idx)", data=freq).fit()
    est = np.array([0.714905, -0.078020, 0.009147, 0.049716])
    se = np.array([0.012337, 0.017011, 0.017189, 0.016332])
    np.testing.assert_allclose(fit.params.to_numpy(), est, atol=5e-4)  # 3 decimals
    np.testing.assert_allclose(fit.bse.to_numpy(), se, atol=5e-4)
    assert abs(np.sqrt(fit.scale) - 0.2414) < 0.002  # residual SE 0.2414


def test_frequency_lm_json_agrees_with_statsmodels(freq, ref):
    fit = smf.ols("res ~ C(treatment_idx)", data=freq).fit()
    np.testing.assert_allclose(fit.params.to_numpy(), ref["ca_frequency"]["lm"]["Estimate"],
                               rtol=1e-8, atol=1e-10)


# The slides' lmerTest table (published_results.md, Example 2).
SLIDES_EST = [0.699786009, -0.017490109, 0.009353984, 0.029448530]
SLIDES_SE = [0.03484986, 0.01726513, 0.01657856, 0.01656107]
SLIDES_DF = [4.901964, 1723.485832, 1720.292658, 1719.621372]
SLIDES_P = [0.311, 0.573, 0.076]  # slide summary table, treatments


def test_frequency_slides_table_is_the_ml_fit(ref):
    # R: lmerTest::lmer(res ~ treatment_idx + (1|midx), REML = FALSE), Satterthwaite df.
    # The slides print only the first line of the call; their intercept SE and df (0.0348 on
    # 4.90 df) come out with ML and not with REML (0.0397 on 3.5 df), so ML is the target.
    r = ref["ca_frequency"]["lmer_ml"]
    # The issue asks estimates and SEs within 0.003 and p within 0.02; the reconstruction is
    # calibrated to this fit and hits them far closer.
    np.testing.assert_allclose(r["Estimate"], SLIDES_EST, atol=1e-5)
    np.testing.assert_allclose(r["Std. Error"], SLIDES_SE, atol=1e-5)
    np.testing.assert_allclose(r["Pr(>|t|)"][1:], SLIDES_P, atol=0.001)
    # What tells ML from REML: the Satterthwaite df (REML gives 3.5 for the intercept)
    np.testing.assert_allclose(r["df"], SLIDES_DF, atol=0.01)


def test_frequency_lmer_reml_keeps_estimates(ref):
    # R: lmerTest::lmer(res ~ treatment_idx + (1|midx)), REML (lme4's default). Same fixed
    # effects and treatment SEs as the slides (within the 0.003 and 0.02); the
    # intercept SE is larger (0.0398) because REML's mouse variance (0.0057) exceeds ML's
    # (0.0042) with only 4 mice.
    r = ref["ca_frequency"]["lmer"]
    ml = ref["ca_frequency"]["lmer_ml"]
    np.testing.assert_allclose(r["Estimate"], SLIDES_EST, atol=0.003)
    np.testing.assert_allclose(r["Std. Error"][1:], SLIDES_SE[1:], atol=0.003)
    np.testing.assert_allclose(r["Pr(>|t|)"][1:], SLIDES_P, atol=0.02)
    assert r["Std. Error"][0] > ml["Std. Error"][0] + 0.003
    assert r["variance"][0] > ml["variance"][0]


@pytest.mark.parametrize("reml, key", [(True, "lmer"), (False, "lmer_ml")])
def test_frequency_mmteach_lme_matches_r(freq, ref, reml, key):
    # What the frequency page shows for either estimation method, against lmerTest
    from mmteach import fit_lme

    fit = fit_lme(freq, "res ~ treatment_idx + (1 | midx)", factors=["treatment_idx", "midx"],
                  reml=reml).tidy()
    r = ref["ca_frequency"][key]
    np.testing.assert_allclose(fit["estimate"], r["Estimate"], atol=1e-6)  # lme4 default fit
    np.testing.assert_allclose(fit["std_error"], r["Std. Error"], rtol=1e-4)
    np.testing.assert_allclose(fit["df"], r["df"], rtol=1e-3)  # Satterthwaite
    np.testing.assert_allclose(fit["p_value"], r["Pr(>|t|)"], rtol=1e-3, atol=1e-8)


def test_frequency_lme_ml_close_to_book(ref):
    # R: nlme::lme(res ~ treatment_idx, random = ~1|midx, method = "ML"); the book's
    # table (-0.011, 0.020, 0.025, SE 0.014) came from the original data, so only the
    # direction and size class are checked here.
    r = ref["ca_frequency"]["lme_ml"]
    est = np.array(r["Value"][1:])
    assert np.all(np.abs(est - np.array([-0.011, 0.020, 0.025])) < 0.012)
    assert r["p-value"][1] > 0.2 and r["p-value"][3] < 0.1
    assert 0.01 < r["overall_lrt_p"] < 0.1  # book: overall p about 0.04


def test_frequency_values_look_like_figure(freq):
    assert 0.1 <= freq["res"].min() < 0.2 and 1.4 < freq["res"].max() <= 1.46
    res = freq["res"]
    assert ((res - res.mean()) ** 3).mean() / res.std() ** 3 > 0.3  # right-skewed
    med = freq.groupby(["midx", "treatment_idx"])["res"].median().unstack().to_numpy()
    figure = np.array([[0.57, 0.58, 0.58, 0.65], [0.78, 0.72, 0.80, 0.72],
                       [0.65, 0.72, 0.70, 0.80], [0.62, 0.70, 0.70, 0.78]])
    assert np.max(np.abs(med - figure)) < 0.08
    # the lesson: mouse 2 drops at 48h
    assert med[1, 1] < med[1, 0] - 0.05


# ------------------------------------------------------------------ Example 3: ca_amplitude


def test_amplitude_design(amp):
    assert amp.shape == (1244, 4)
    assert list(amp.columns) == ["res", "treatment", "midx", "cidx"]
    assert amp["midx"].nunique() == 11 and amp["cidx"].nunique() == 622
    # every cell twice, once per treatment, and cidx unique across mice
    assert (amp.groupby("cidx")["treatment"].apply(sorted).map(tuple) == (1, 2)).all()
    assert (amp.groupby("cidx")["midx"].nunique() == 1).all()
    assert 0 < amp["res"].isna().sum() < 40
    cells = amp[amp["treatment"] == 1].groupby("midx").size()
    assert cells.nunique() > 5 and cells.max() <= 150 and cells.min() >= 20
    assert ((cells >= 60) & (cells <= 150)).sum() >= 4


def test_amplitude_pooled_lm_p(amp):
    # R: summary(lm(res ~ treatment, data = Ex3[!is.na(Ex3$res), ])) -> p 0.0036
    fit = smf.ols("res ~ treatment", data=amp.dropna()).fit()
    assert 0.002 <= fit.pvalues["treatment"] <= 0.006
    assert fit.params["treatment"] > 0


def test_amplitude_correlations(amp):
    wide = amp.pivot(index=["midx", "cidx"], columns="treatment", values="res").dropna()
    cors = wide.groupby(level="midx").apply(lambda w: w[1].corr(w[2])).to_numpy()
    assert abs(np.median(cors) - 0.45) < 0.01
    assert np.sum((cors >= 0.395) & (cors <= 0.515)) >= 9
    assert np.sum(cors < 0.2) == 1 and abs(cors.min() - 0.15) < 0.03


def test_amplitude_ranges(amp):
    base = amp.loc[amp["treatment"] == 1, "res"].dropna()
    after = amp.loc[amp["treatment"] == 2, "res"].dropna()
    assert base.min() >= 0 and 6.0 < base.max() <= 6.4
    assert after.min() >= 0 and 9.0 < after.max() <= 10.0
    assert after.std() > base.std()  # the 24h values spread more (cell random slope)


def test_amplitude_nested_lme(ref):
    # R: lme(res ~ treatment, random = ~1|midx/cidx, method = "ML"), t table p
    r = ref["ca_amplitude"]
    assert 5e-5 <= r["obj1"]["p-value"][1] <= 3e-4
    assert r["obj1"]["Std.Error"][1] < r["lm"]["Std. Error"][1]  # smaller SE than LM
    assert abs(r["obj1"]["Value"][1] - r["lm"]["Estimate"][1]) < 0.02  # similar estimate
    # R: list(midx = ~1, cidx = ~1) is the same model because cidx is unique
    assert r["obj2"]["loglik"] == pytest.approx(r["obj1"]["loglik"], abs=1e-6)
    assert 0.002 <= r["t_test_equal_var_p"] <= 0.006


def test_amplitude_random_effect_comparisons(ref):
    # R: anova(obj1, obj3), anova(obj1, obj4), anova(obj3, obj5), nlme ML fits
    r = ref["ca_amplitude"]
    p13, p14, p35 = (r[k]["p_value"] for k in ("anova_1_3", "anova_1_4", "anova_3_5"))
    assert p13 < 0.01
    assert p14 > p13 and r["anova_1_4"]["L_ratio"] > 0.01  # improves, but less
    assert p35 > 0.1


# ------------------------------------------------------------------ Example 4: water_lick


def test_waterlick_counts(lick):
    assert lick.shape == (512, 3) and list(lick.columns) == ["mouseID", "lick", "dff"]
    assert lick["lick"].sum() == 216 and set(lick["lick"]) == {0, 1}
    assert lick["mouseID"].nunique() == 8
    assert lick["mouseID"].sum() == 2318  # mean 4.527
    q = lick["mouseID"].quantile([0.25, 0.5, 0.75]).to_numpy()  # R type 7
    np.testing.assert_array_equal(q, [2, 4.5, 6])
    assert lick.groupby("mouseID").size().nunique() > 1


def test_waterlick_dff_summary(lick):
    q = lick["dff"].quantile([0, 0.25, 0.5, 0.75, 1]).to_numpy()
    np.testing.assert_allclose(q, [-8.838, 1.240, 4.702, 8.426, 20.456], atol=0.1)
    assert abs(lick["dff"].mean() - 4.810) < 0.1


def test_waterlick_glmer(ref):
    # R: glmer(lick ~ dff + (1|mouseID), family = binomial), Laplace
    g = ref["water_lick"]["glmer"]
    assert g["term"][1] == "dff"
    assert abs(g["Estimate"][1] - 0.06235) < 0.002
    assert abs(g["Std. Error"][1] - 0.01986) < 0.001
    assert ref["water_lick"]["lrt_p"] < 0.01


# ------------------------------------------------------------------ index and labels


def test_list_datasets_and_labels():
    table = list_datasets()
    assert set(table["name"]) == set(NAMES)
    for name in NAMES:
        assert dataset_label(name, original_dir=ROOT / "tests" / "no-originals") == RECON


@pytest.mark.parametrize("name", NAMES)
def test_builtin_attrs(name):
    df = load_dataset(name, original_dir=ROOT / "tests" / "no-originals")
    assert df.attrs["source_kind"] == "reconstruction"
    assert df.attrs["source_label"] == RECON


# ------------------------------------------------------------------ original formats


def test_read_example2_recodes_time():
    df = read_example2(DATA / "original_Example2.txt")
    assert set(df["treatment_idx"]) == {1, 2, 3, 4}
    raw = pd.read_csv(DATA / "original_Example2.txt")
    np.testing.assert_array_equal(df["treatment_idx"], raw["treatment_idx"] - 4)
    assert dict(zip(df["treatment_idx"], df["time"])) == {1: "24h", 2: "48h", 3: "72h",
                                                           4: "1wk"}


def test_read_example3_keeps_na():
    df = read_example3(DATA / "original_Example3.txt")
    assert df["res"].isna().sum() == 1 and len(df) == 18
    assert set(df["treatment"]) == {1, 2}


def test_read_waterlick_whitespace():
    df = read_waterlick(DATA / "original_waterlick_sim.txt")
    assert len(df) == 24 and df["lick"].isin([0, 1]).all()
    assert df["dff"].dtype == float


@pytest.mark.parametrize("name", NAMES)
def test_original_file_replaces_reconstruction(tmp_path, name):
    fixture = DATA / f"original_{ORIGINAL_NAMES[name]}"
    shutil.copy(fixture, tmp_path / ORIGINAL_NAMES[name])
    df = load_dataset(name, original_dir=tmp_path)
    assert df.attrs["source_kind"] == "original"
    assert df.attrs["source_label"] == "Original file"
    assert len(df) == len(fixture.read_text().splitlines()) - 1
    assert dataset_label(name, original_dir=tmp_path) == "Original file"


@pytest.mark.parametrize("name", NAMES)
def test_override_bytes(name):
    raw = (DATA / f"original_{ORIGINAL_NAMES[name]}").read_bytes()
    df = load_dataset(name, override=raw)
    assert df.attrs["source_label"] == "Original file"
    assert len(df) == raw.decode().count("\n") - 1


@pytest.mark.parametrize(
    ("reader", "text", "fragment"),
    [
        (read_example2, b"res,midx\n0.5,1\n", "no column 'treatment_idx'"),
        (read_example2, b"res,treatment_idx,midx\n0.5,1,1\n0.6,9,1\n", "5 = 24h"),
        (read_example2, b"res,treatment_idx,midx\nabc,5,1\n", "must be numeric"),
        (read_example3, b"res,treatment,midx,cidx\n1.0,3,1,1\n", "1 (baseline)"),
        (read_example3, b"res,treatment,midx,cidx\n1.0,1,,1\n", "cannot be missing"),
        (read_waterlick, b"mouseID lick dff\n1 2 0.5\n", "1 (correct) or 0"),
        (read_waterlick, b"mouse lick dff\n1 1 0.5\n", "no column 'mouseID'"),
        (read_waterlick, b"", "empty"),
    ],
)
def test_malformed_files_raise_teaching_error(reader, text, fragment):
    with pytest.raises(DataError, match=re.escape(fragment)):
        reader(text)


def test_malformed_original_in_folder_is_reported(tmp_path):
    (tmp_path / "Example2.txt").write_text("res,treatment_idx\n0.5,5\n")
    with pytest.raises(DataError, match="no column 'midx'"):
        load_dataset("ca_frequency", original_dir=tmp_path)


# ------------------------------------------------------------------ resolve_data (CLI)


def test_resolve_builtin_name():
    assert resolve_data("ca_amplitude").shape == (1244, 4)


@pytest.mark.parametrize(("suffix", "sep"), [(".csv", ","), (".tsv", "\t"), (".txt", " ")])
def test_resolve_path_formats(tmp_path, suffix, sep):
    path = tmp_path / f"mine{suffix}"
    path.write_text(sep.join(["y", "g"]) + "\n" + "\n".join(
        sep.join([str(i * 0.5), str(i % 3)]) for i in range(9)) + "\n")
    df = resolve_data(path)
    assert list(df.columns) == ["y", "g"] and len(df) == 9
    assert df["y"].sum() == pytest.approx(18.0)


def test_resolve_original_name_uses_reader(tmp_path):
    shutil.copy(DATA / "original_Example2.txt", tmp_path / "Example2.txt")
    df = resolve_data(str(tmp_path / "Example2.txt"))
    assert set(df["treatment_idx"]) == {1, 2, 3, 4}
    assert df.attrs["source_label"] == "Original file"


def test_resolve_missing_lists_builtin_names(tmp_path):
    with pytest.raises(DataError) as err:
        resolve_data(str(tmp_path / "nope.csv"))
    for name in NAMES:
        assert name in str(err.value)


def test_load_unknown_name():
    with pytest.raises(DataError, match="ca_frequency"):
        load_dataset("example2")
