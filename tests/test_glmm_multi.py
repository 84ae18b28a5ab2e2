"""GLMMs with several random-effects terms (issue 13) against lme4::glmer.

Reference values from tests/r/reference_glmm_multi.R (key per case; R call in ``r_call``
and in the comments below). Tolerances as tests/test_glmm.py: against glmer converged
tightly (``glmerControl(tolPwrss = 1e-12, optimizer = c("bobyqa", "bobyqa"),
optCtrl = list(rhoend = 1e-10))``), estimates and loglik to 1e-4 (relative), SEs of the
fixed effects to 1e-3; against glmer's defaults the looser 5e-3 / 2e-2 / 1e-5.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmteach import glmm_laplace as core
from mmteach.errors import ModelError
from mmteach.glmm import fit_glmm

ROOT = Path(__file__).resolve().parents[1]
REF = json.loads((ROOT / "tests/reference/glmm_multi.json").read_text())

# lme4::glmer(TICKS ~ YEAR + HEIGHT + (1 | BROOD) + (1 | LOCATION), data = grouseticks,
#             family = poisson)   -- the crash of issue 13 (uncentred height)
# lme4::glmer(TICKS ~ YEAR + cHEIGHT + (1 | BROOD) + (1 | LOCATION), ..., family = poisson)
# lme4::glmer(count ~ x + (1 | site/plot), family = poisson)
# lme4::glmer(cbind(s, n - s) ~ x + (1 | subj) + (1 | item), family = binomial)
# lme4::glmer(y ~ x + (1 | school) + (1 | class) + (1 | rater), family = binomial)
# lme4::glmer(count ~ x + (1 | a) + (1 | b), family = poisson)   (singular: var(b) = 0)
# lme4::glmer(cbind(s, n - s) ~ x + (1 + x | g) + (1 | h), family = binomial)
CASES = [k for k in REF if k != "versions"]

_FITS: dict[str, object] = {}


def _data(key: str) -> pd.DataFrame:
    return pd.read_csv(ROOT / "tests/data" / REF[key]["data"])


def _fit(key: str):
    if key not in _FITS:
        ref = REF[key]
        _FITS[key] = fit_glmm(_data(key), ref["formula"], family=ref["family"],
                              factors=ref["factors"])
    return _FITS[key]


@pytest.mark.parametrize("key", CASES)
def test_matches_tight_glmer(key):
    ref = REF[key]["tight"]
    fit = _fit(key)
    td = fit.tidy().set_index("term")
    # at a boundary (a variance of 0) lme4's deriv12 takes one-sided differences in that
    # theta, mmteach central ones across 0 (the deviance is even there): SEs differ by ~4e-3
    se_tol = 5e-3 if ref["singular"] else 1e-3
    for term, value in ref["fixef"].items():
        assert td.loc[term, "estimate"] == pytest.approx(value, rel=1e-4, abs=1e-6)
        assert td.loc[term, "std_error"] == pytest.approx(ref["se"][term], rel=se_tol)
    assert fit.loglik == pytest.approx(ref["loglik"], rel=1e-4)
    assert fit.loglik == pytest.approx(ref["loglik"], abs=1e-4)
    np.testing.assert_allclose(np.abs(fit.extras["theta"]), ref["theta"], rtol=1e-3, atol=1e-3)
    assert fit.singular == ref["singular"]
    vc = fit.variance_components()
    for row in ref["varcorr"]:
        if row["var2"]:
            continue  # correlations: see test_slope_plus_intercept_correlation
        hit = vc[(vc.group == row["grp"]) & (vc.term == row["var1"])]
        assert hit["sd"].iloc[0] == pytest.approx(row["sdcor"], rel=1e-3, abs=1e-4)


@pytest.mark.parametrize("key", CASES)
def test_close_to_default_glmer(key):
    ref = REF[key]
    fit = _fit(key)
    td = fit.tidy().set_index("term")
    # glmer's default fit of the uncentred height stops early (its own convergence warning):
    # its Hessian, hence its SEs, are not those of the optimum
    stopped = any("converge" in w for w in ref["warnings"])
    for term, value in ref["fixef"].items():
        assert td.loc[term, "estimate"] == pytest.approx(value, rel=5e-3, abs=1e-4)
        if not stopped:
            assert td.loc[term, "std_error"] == pytest.approx(ref["se"][term], rel=2e-2)
    assert fit.loglik == pytest.approx(ref["loglik"], rel=1e-5)
    # mmteach never stops at a worse optimum than glmer's default
    assert fit.loglik >= ref["loglik"] - 1e-5


@pytest.mark.parametrize("key", CASES)
def test_convergence_flag_as_glmer(key):
    """Converged unless glmer's tight fit also reports a convergence warning (the
    uncentred height: large gradient on the raw scale, 'Rescale variables?')."""
    fit = _fit(key)
    glmer_failed = any("converge" in w for w in REF[key]["tight"]["warnings"])
    if not glmer_failed:
        assert fit.converged
    else:
        assert any("converge" in m.lower() for m in fit.messages) or not fit.converged


def test_slope_plus_intercept_correlation():
    ref = REF["binom_slope_plus"]["tight"]
    fit = _fit("binom_slope_plus")
    cor = [r for r in ref["varcorr"] if r["var2"]][0]["sdcor"]
    assert fit.correlations[0].corr == pytest.approx(cor, abs=1e-3)


def test_nested_slash_matches_explicit_terms():
    """(1 | site/plot) is (1 | site) + (1 | site:plot): same deviance and estimates."""
    d = _data("pois_nested")
    a = _fit("pois_nested")
    b = fit_glmm(d, "count ~ x + (1 | site) + (1 | site:plot)", family="poisson")
    assert b.loglik == pytest.approx(a.loglik, abs=1e-8)


def test_breakdown_is_a_teaching_error(monkeypatch):
    """A numerical failure inside the fit becomes a ModelError that says what to try."""
    d = _data("pois_nested")
    spec = core.make_spec(np.column_stack([np.ones(len(d)), d["x"].to_numpy()]), _blocks(d),
                          family="poisson")

    def singular(*args, **kwargs):
        raise np.linalg.LinAlgError("Singular matrix")

    monkeypatch.setattr(core, "pirls_general", singular)
    with pytest.raises(ModelError, match="broke down numerically.*centring predictors"):
        core.fit_core(spec, d["count"].to_numpy(float))


def test_bad_start_recovers():
    """A start where the likelihood is not finite (theta = NaN) does not end the fit."""
    d = _data("pois_nested")
    spec = core.make_spec(np.column_stack([np.ones(len(d)), d["x"].to_numpy()]), _blocks(d),
                          family="poisson")
    cf = core.fit_core(spec, d["count"].to_numpy(float),
                       start=(np.array([np.nan, 1.0]), np.array([0.0, 0.0])))
    assert -0.5 * cf.deviance == pytest.approx(REF["pois_nested"]["tight"]["loglik"], abs=1e-4)


def _blocks(d: pd.DataFrame):
    from mmteach.formula import parse_formula
    from mmteach.model_frame import build_model
    return build_model(d, parse_formula("count ~ x + (1 | site/plot)", list(d.columns))).blocks


@pytest.mark.parametrize("key", CASES)
def test_cli_fit_prints_no_traceback(key, tmp_path, capsys):
    from mmteach.cli import main

    ref = REF[key]
    path = tmp_path / "d.csv"
    _data(key).to_csv(path, index=False)
    args = ["fit", str(path), ref["formula"], "--family", ref["family"], "--json"]
    for f in ref["factors"]:
        args += ["--factor", f]
    code = main(args)
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    assert code == 0, out.err
    got = json.loads(out.out)
    assert got["loglik"] == pytest.approx(REF[key]["tight"]["loglik"], abs=1e-4)


@pytest.mark.parametrize("schur", [True, False])
@pytest.mark.parametrize("family", ["binomial", "poisson"])
def test_laplace_gradient_matches_finite_differences(family, schur, monkeypatch):
    """mmteach.glmm_laplace.laplace_gradient (analytic, at the PIRLS modes) against central
    differences of the Laplace deviance, for a random slope crossed with an intercept
    (A^-1 through the Schur complement of the first term, or a dense inverse)."""
    from mmteach import glmm_laplace as gl

    if not schur:
        monkeypatch.setattr(gl, "SCHUR_Q2", 0)
    from mmteach.families import Response
    from mmteach.glmm import _prepare

    rng = np.random.default_rng(3)
    n = 600
    g, h, x = rng.integers(0, 30, n), rng.integers(0, 8, n), rng.normal(size=n)
    eta = 0.3 + 0.4 * x + rng.normal(0, 0.8, 30)[g] * (1 + 0.5 * x) + rng.normal(0, 0.5, 8)[h]
    y = rng.poisson(np.exp(eta)) if family == "poisson" else rng.binomial(1, 1 / (1 + np.exp(-eta)))
    d = pd.DataFrame({"y": y, "x": x, "g": g.astype(str), "h": h.astype(str)})
    _mf, _fam, _lk, yy, spec, _nagq = _prepare(d, "y ~ x + (1 + x | g) + (1 | h)", family, None, 1, [])
    resp = Response.make(yy, spec.trials, spec.family)
    th = spec.theta_start() * 0.7 + rng.uniform(-0.2, 0.2, spec.n_theta)
    be = gl.glm_start(spec, yy) + 0.05

    def dev(z):
        return gl.pirls_general(spec, resp, z[: spec.n_theta], z[spec.n_theta:], np.zeros(spec.q))

    x0 = np.concatenate([th, be])
    _d0, u, _ = dev(x0)
    grad = gl.laplace_gradient(spec, resp, th, be, u)
    for i in range(x0.size):
        e = np.zeros_like(x0)
        e[i] = 1e-5
        fd = (dev(x0 + e)[0] - dev(x0 - e)[0]) / 2e-5
        assert grad[i] == pytest.approx(fd, rel=1e-6, abs=1e-5)
