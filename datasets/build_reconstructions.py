"""Build the calibrated reconstructions of Examples 2, 3 and 4 (Yu et al. 2022).

The original files of these examples are not available, so this script makes data sets
that reproduce the published numbers (``shared/reference/published_results.md``) and look
like the published figures. It is pure Python (numpy, pandas, scipy): R is only used
afterwards, by ``tests/r/reference_datasets.R``, to confirm the targets.

Deterministic: every random draw comes from ``numpy.random.default_rng`` with a fixed seed,
and floats are written with a fixed number of decimals, so rerunning gives byte-identical
CSV files.

Usage::

    python datasets/build_reconstructions.py [OUTPUT_DIR]

``OUTPUT_DIR`` defaults to the folder of this script.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

SEED_FREQUENCY = 20220102
SEED_AMPLITUDE = 20220103
SEED_WATERLICK = 20220104

# ---------------------------------------------------------------------------------------
# Example 2: Ca++ event frequency, 4 mice x 4 time points
# ---------------------------------------------------------------------------------------

# Cells per mouse (rows) and time point (columns 24h, 48h, 72h, 1wk); must hold exactly.
FREQ_COUNTS = np.array(
    [
        [81, 254, 88, 43],
        [206, 101, 210, 222],
        [33, 18, 51, 207],
        [63, 52, 58, 37],
    ]
)
FREQ_TIME_LABELS = ("24h", "48h", "72h", "1wk")
# lm(res ~ treatment_idx): pooled time means are intercept + coefficient.
FREQ_LM_COEF = np.array([0.714905, -0.078020, 0.009147, 0.049716])
FREQ_LM_SIGMA = 0.2414
# lmerTest::lmer(res ~ treatment_idx + (1|midx), REML = FALSE) (slides). The slides show only
# the call's first line; their intercept SE and Satterthwaite df (0.0348 on 4.90 df) are the
# ML fit's: REML cannot get below ~0.0396 once the other targets hold.
FREQ_LME_COEF = np.array([0.699786009, -0.017490109, 0.009353984, 0.029448530])
FREQ_LME_SE = np.array([0.03484986, 0.01726513, 0.01657856, 0.01656107])
# Per-mouse medians read off the figure (only a weak pull; the targets above dominate).
FREQ_FIG_MEDIANS = np.array(
    [
        [0.57, 0.58, 0.58, 0.65],
        [0.78, 0.72, 0.80, 0.72],
        [0.65, 0.72, 0.70, 0.80],
        [0.62, 0.70, 0.70, 0.78],
    ]
)
FREQ_LOW, FREQ_HIGH = 0.1, 1.45


def _design_frequency() -> tuple[np.ndarray, np.ndarray]:
    """Mouse and time index (0-based) of every cell, mouse-major order."""
    mouse, time = [], []
    for m in range(4):
        for t in range(4):
            mouse += [m] * FREQ_COUNTS[m, t]
            time += [t] * FREQ_COUNTS[m, t]
    return np.array(mouse), np.array(time)


def random_intercept_fit(
    y: np.ndarray, X: np.ndarray, group: np.ndarray, *, reml: bool = True
) -> tuple[np.ndarray, np.ndarray, float, float]:
    """REML or ML fit of ``y ~ X + (1|group)``; returns beta, SE, sigma_b^2, sigma_e^2.

    Uses V_g^-1 = (I - c_g J) / sigma_e^2 with c_g = gamma / (1 + n_g gamma), so only
    per-group sums are needed; the profiled criterion is minimised over
    log(gamma) = log(sigma_b^2 / sigma_e^2). Same estimator as ``lme4::lmer``.
    """
    n, p = X.shape
    groups = np.unique(group)
    xtx, xty, yty = X.T @ X, X.T @ y, y @ y
    sx = np.array([X[group == g].sum(axis=0) for g in groups])
    sy = np.array([y[group == g].sum() for g in groups])
    ng = np.array([(group == g).sum() for g in groups])

    def pieces(log_gamma: float):
        gamma = np.exp(log_gamma)
        c = gamma / (1 + ng * gamma)
        a = xtx - (sx.T * c) @ sx
        b = xty - (sx.T * c) @ sy
        q = yty - (c * sy) @ sy
        beta = np.linalg.solve(a, b)
        rss = q - b @ beta
        return gamma, a, beta, rss

    dof = n - p if reml else n

    def crit(log_gamma: float) -> float:
        gamma, a, _, rss = pieces(log_gamma)
        return dof * np.log(rss) + np.log1p(ng * gamma).sum() + (np.linalg.slogdet(a)[1] if reml else 0.0)

    best = optimize.minimize_scalar(crit, bounds=(-15.0, 5.0), method="bounded",
                                    options={"xatol": 1e-10})
    gamma, a, beta, rss = pieces(best.x)
    sigma2 = rss / dof
    se = np.sqrt(np.diag(np.linalg.inv(a)) * sigma2)
    return beta, se, gamma * sigma2, sigma2


def _skewed_noise(rng: np.random.Generator, size: int) -> np.ndarray:
    """Right-skewed noise with a few high outliers, like Ca++ event frequencies."""
    body = rng.gamma(shape=6.0, scale=1.0, size=size)
    body = (body - 6.0) / np.sqrt(6.0)
    body = np.clip(body, -2.2, 3.0)
    outlier = rng.random(size) < 0.015
    body[outlier] = rng.uniform(2.6, 3.6, size=outlier.sum())
    return body


def _standardise_within(e: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """Mean 0 and variance 1 within each mouse x time cell, so cell means are exact."""
    out = e.astype(float).copy()
    for c in np.unique(cell):
        idx = cell == c
        v = out[idx] - out[idx].mean()
        sd = v.std()
        out[idx] = v / sd if sd > 0 else v
    return out


def _frequency_targets(mu: np.ndarray, s: float, e: np.ndarray, mouse, time, X) -> np.ndarray:
    """Scaled differences between the fitted quantities and the published ones."""
    cell = mouse * 4 + time
    y = mu[cell] + s * e
    pooled = np.array([y[time == t].mean() for t in range(4)])
    lm_coef = np.r_[pooled[0], pooled[1:] - pooled[0]]
    resid = y - pooled[time]
    sigma = np.sqrt(resid @ resid / (len(y) - 4))
    beta, se, _, _ = random_intercept_fit(y, X, mouse, reml=False)
    return np.r_[
        (lm_coef - FREQ_LM_COEF) / 2e-4,
        (sigma - FREQ_LM_SIGMA) / 2e-4,
        (beta - FREQ_LME_COEF) / 2e-4,
        (se - FREQ_LME_SE) / 1e-4,
        (mu - FREQ_FIG_MEDIANS.ravel()) / 5.0,
    ]


def build_ca_frequency() -> pd.DataFrame:
    """Example 2 reconstruction: columns res, treatment_idx (1..4), midx (1..4), time."""
    rng = np.random.default_rng(SEED_FREQUENCY)
    mouse, time = _design_frequency()
    cell = mouse * 4 + time
    X = np.column_stack([np.ones(len(time))] + [(time == t).astype(float) for t in (1, 2, 3)])
    e = _standardise_within(_skewed_noise(rng, len(time)), cell)
    # With noise standardised within cells, the LM and ML fits depend only on the cell
    # means and the noise scale (cell sums and total sum of squares), so one least-squares
    # solve for those 17 numbers hits the targets whatever the noise shape is.
    fit = optimize.least_squares(
        lambda p: _frequency_targets(p[:16], p[16], e, mouse, time, X),
        np.r_[FREQ_FIG_MEDIANS.ravel(), 0.22], method="trf", xtol=1e-14, ftol=1e-14,
        max_nfev=5000,
    )
    params = fit.x
    for _ in range(8):
        # Clip to the observed range and re-standardise, so the final values stay inside.
        y = np.clip(params[cell] + params[16] * e, FREQ_LOW, FREQ_HIGH)
        e = _standardise_within(y, cell)
    y = params[cell] + params[16] * e
    # Random order within mouse so the file does not look sorted by time.
    order = np.lexsort((rng.random(len(y)), mouse))
    return pd.DataFrame(
        {
            "res": y[order],
            "treatment_idx": time[order] + 1,
            "midx": mouse[order] + 1,
            "time": np.array(FREQ_TIME_LABELS)[time[order]],
        }
    )


# ---------------------------------------------------------------------------------------
# Example 3: Ca++ event integrated amplitude, baseline vs 24h, 11 mice x 622 cells
# ---------------------------------------------------------------------------------------

# Cells per mouse: the four mice of the figures (A-D) have 60-150 cells, the rest fewer.
AMP_CELLS = np.array([130, 85, 62, 128, 30, 25, 40, 35, 28, 33, 26])
# Within-mouse baseline-24h correlations: median 0.45, most 0.40-0.51, one near 0.15.
AMP_CORR = np.array([0.40, 0.43, 0.44, 0.45, 0.45, 0.46, 0.47, 0.49, 0.51, 0.15, 0.42])
AMP_LM_P = 0.0036  # pooled lm(res ~ treatment) p-value
AMP_N_MISSING = 14  # rows with res = NA (one of the two measurements of a cell)
AMP_BASE_SD, AMP_AFTER_SD = 1.35, 1.95  # after-treatment values spread more (figure)
AMP_BASE_MAX, AMP_AFTER_MAX = 6.3, 9.6


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1])


def _after_values(x: np.ndarray, z_noise: np.ndarray, mean: float, r: float) -> np.ndarray:
    """24h values with correlation ``r`` to baseline ``x`` before clipping (right-skewed)."""
    zx = (x - x.mean()) / x.std()
    # Part of the noise orthogonal to baseline, so the correlation is set by r alone.
    zn = z_noise - z_noise.mean()
    zn = zn - (zn @ zx) / (zx @ zx) * zx
    zn = zn / zn.std()
    y = mean + AMP_AFTER_SD * (r * zx + np.sqrt(1 - r**2) * zn)
    return np.clip(y, 0.02, AMP_AFTER_MAX)


def _pooled_lm_p(base: np.ndarray, after: np.ndarray) -> float:
    """p-value of the treatment effect in lm(res ~ treatment) on the non-missing rows."""
    b, a = base[~np.isnan(base)], after[~np.isnan(after)]
    res = stats.ttest_ind(a, b, equal_var=True)  # identical to the pooled LM t test
    return float(res.pvalue)


def build_ca_amplitude() -> pd.DataFrame:
    """Example 3 reconstruction: columns res, treatment (1, 2), midx (1..11), cidx."""
    rng = np.random.default_rng(SEED_AMPLITUDE)
    n_mice = len(AMP_CELLS)
    mouse_base = 3.0 + 0.8 * rng.standard_normal(n_mice)
    # Mice respond slightly differently to ketamine (small mouse-level random slope).
    mouse_change = 0.26 * rng.standard_normal(n_mice)
    # Missing values: a few cells lost one of their two measurements (chosen first, so the
    # correlations below are those of the complete pairs, as a student would compute them).
    n_cells = AMP_CELLS.sum()
    miss = rng.choice(2 * n_cells, size=AMP_N_MISSING, replace=False)
    complete = np.ones(n_cells, bool)
    complete[miss % n_cells] = False
    start = np.r_[0, np.cumsum(AMP_CELLS)]
    bases, afters, mids = [], [], []
    for m in range(n_mice):
        n = AMP_CELLS[m]
        ok = complete[start[m]:start[m + 1]]
        # Baseline amplitudes: broad, bounded below by 0 and above by about 6.3.
        x = mouse_base[m] + AMP_BASE_SD * rng.standard_normal(n)
        x = np.clip(x, 0.05 + 0.3 * rng.random(n), AMP_BASE_MAX - 0.4 * rng.random(n))
        z = rng.gamma(5.0, 1.0, size=n)  # right skew: a few large 24h values
        target = AMP_CORR[m]
        mean = mouse_base[m] + mouse_change[m]
        # Clipping lowers the correlation a little: solve for the input r that gives it.
        r_in = optimize.brentq(
            lambda r, x=x, z=z, ok=ok, mean=mean, target=target: _corr(
                x[ok], _after_values(x, z, mean, r)[ok]) - target,
            -0.2, 0.95, xtol=1e-12,
        )
        bases.append(x)
        afters.append(_after_values(x, z, mean, r_in))
        mids.append(np.full(n, m + 1))
    base, after, midx = np.concatenate(bases), np.concatenate(afters), np.concatenate(mids)
    base[miss[miss < n_cells]] = np.nan
    after[miss[miss >= n_cells] - n_cells] = np.nan
    # Shift all 24h values by one constant so the pooled LM p-value is the published one
    # (a constant shift leaves the within-mouse correlations unchanged).
    shift = optimize.brentq(lambda d: _pooled_lm_p(base, after + d) - AMP_LM_P, 0.0, 1.0,
                            xtol=1e-12)
    after = after + shift
    cidx = np.arange(1, n_cells + 1)
    out = pd.DataFrame(
        {
            "res": np.r_[base, after],
            "treatment": np.r_[np.ones(n_cells, int), np.full(n_cells, 2)],
            "midx": np.r_[midx, midx],
            "cidx": np.r_[cidx, cidx],
        }
    )
    return out.sort_values(["midx", "cidx", "treatment"], kind="stable").reset_index(drop=True)


# ---------------------------------------------------------------------------------------
# Example 4: water-lick task, 8 mice, 512 trials, binary outcome
# ---------------------------------------------------------------------------------------

LICK_N, LICK_CORRECT = 512, 216
# Trials per mouse: mouseID summary min 1, Q1 2, median 4.5, mean 4.527 (sum 2318), Q3 6.
LICK_TRIALS = np.array([60, 70, 58, 68, 59, 71, 57, 69])
# dff five-number summary and mean (%).
LICK_DFF_Q = np.array([-8.838, 1.240, 4.702, 8.426, 20.456])
LICK_DFF_MEAN = 4.810
# glmer(lick ~ dff + (1|mouseID), binomial): dff estimate and SE.
LICK_BETA, LICK_SE = 0.06235, 0.01986


def _dff_values(rng: np.random.Generator, mouse: np.ndarray) -> np.ndarray:
    """dF/F per trial with exactly the published quartiles (type 7) and close to its mean."""
    n = len(mouse)
    raw = 0.3 * rng.standard_normal(8)[mouse] + rng.standard_normal(n)
    raw = raw + 0.15 * rng.standard_normal(n) ** 2  # a longer right tail, as max - Q3 shows
    # Monotone piecewise-linear map sending the sample quartiles to the published ones.
    q_raw = np.quantile(raw, [0, 0.25, 0.5, 0.75, 1])
    dff = np.interp(raw, q_raw, LICK_DFF_Q)
    # R's type 7 quartiles interpolate between order statistics 128/129, 256/257 and
    # 384/385 (1-based): give both members of each pair the published value, so
    # summary(dff) prints exactly the published numbers.
    order = np.argsort(dff, kind="stable")
    for pair, value in (((127, 128), LICK_DFF_Q[1]), ((255, 256), LICK_DFF_Q[2]),
                        ((383, 384), LICK_DFF_Q[3])):
        dff[order[list(pair)]] = value
    lo, hi = LICK_DFF_Q[1], LICK_DFF_Q[3]
    # Match the mean without moving the quartiles: bend the values strictly inside
    # (Q1, median) and (median, Q3) with a power that keeps the segment ends fixed.
    inner = (dff > lo) & (dff < hi)

    def bent(k: float) -> np.ndarray:
        out = dff.copy()
        med = LICK_DFF_Q[2]
        for a, b, sel in ((lo, med, inner & (dff < med)), (med, hi, inner & (dff > med))):
            u = (out[sel] - a) / (b - a)
            out[sel] = a + (b - a) * u ** np.exp(k)
        return out

    k = optimize.brentq(lambda k: bent(k).mean() - LICK_DFF_MEAN, -2.0, 2.0, xtol=1e-12)
    return bent(k)


def _laplace_negloglik(params: np.ndarray, y, x, mouse, n_mice: int) -> float:
    """Minus the Laplace log-likelihood of a random-intercept logistic model (lme4 nAGQ=1)."""
    b0, b1, log_sd = params
    sd2 = np.exp(2 * log_sd)
    eta0 = b0 + b1 * x
    u = np.zeros(n_mice)
    for _ in range(30):  # Newton steps for the conditional modes
        p = special.expit(eta0 + u[mouse])
        grad = np.bincount(mouse, y - p, n_mice) - u / sd2
        hess = np.bincount(mouse, p * (1 - p), n_mice) + 1 / sd2
        step = grad / hess
        u += step
        if np.max(np.abs(step)) < 1e-12:
            break
    eta = eta0 + u[mouse]
    p = special.expit(eta)
    w = np.bincount(mouse, p * (1 - p), n_mice)
    ll = np.sum(y * eta - np.logaddexp(0, eta)) - np.sum(u**2) / (2 * sd2)
    return float(-(ll - 0.5 * np.sum(np.log1p(sd2 * w))))


def fit_logistic_ri(y: np.ndarray, x: np.ndarray, mouse: np.ndarray) -> tuple[float, float]:
    """Laplace fit of ``glmer(y ~ x + (1|mouse), binomial)``; returns slope and its SE.

    The SE comes from a numerical Hessian of the Laplace deviance in (beta, log sd), as
    lme4 does by default (``use.hessian = TRUE``).
    """
    n_mice = int(mouse.max()) + 1
    f = lambda p: _laplace_negloglik(p, y, x, mouse, n_mice)  # noqa: E731
    best = optimize.minimize(f, np.array([-0.3, 0.05, -0.5]), method="BFGS",
                             options={"gtol": 1e-9})
    h = np.empty((3, 3))
    steps = np.array([1e-3, 1e-4, 1e-3])
    for i in range(3):
        for j in range(3):
            ei, ej = np.eye(3)[i] * steps[i], np.eye(3)[j] * steps[j]
            h[i, j] = (f(best.x + ei + ej) - f(best.x + ei - ej) - f(best.x - ei + ej)
                       + f(best.x - ei - ej)) / (4 * steps[i] * steps[j])
    cov = np.linalg.inv(h)
    return float(best.x[1]), float(np.sqrt(cov[1, 1]))


def build_water_lick() -> pd.DataFrame:
    """Example 4 reconstruction: columns mouseID (1..8), lick (0/1), dff."""
    rng = np.random.default_rng(SEED_WATERLICK)
    mouse = np.repeat(np.arange(8), LICK_TRIALS)
    dff = _dff_values(rng, mouse)
    mouse_effect = 0.5 * np.array([-1.1, 0.9, -0.4, 0.5, -0.9, 1.0, 0.1, -0.2])
    latent_noise = rng.logistic(size=LICK_N)

    def licks(slope: float) -> np.ndarray:
        # Exactly 216 correct trials: the 216 largest latent values.
        latent = mouse_effect[mouse] + slope * dff + latent_noise
        out = np.zeros(LICK_N, int)
        out[np.argsort(-latent, kind="stable")[:LICK_CORRECT]] = 1
        return out

    # The fitted slope is a step function of the generating slope: scan a grid and keep
    # the generating slope whose fit is nearest the published estimate and SE.
    best = None
    for slope in np.linspace(0.03, 0.10, 141):
        b, se = fit_logistic_ri(licks(slope).astype(float), dff, mouse)
        score = ((b - LICK_BETA) / 0.002) ** 2 + ((se - LICK_SE) / 0.001) ** 2
        if best is None or score < best[0]:
            best = (score, slope)
    lick = licks(best[1])
    return pd.DataFrame({"mouseID": mouse + 1, "lick": lick, "dff": dff})


# ---------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------

BUILDERS = {
    "ca_frequency": build_ca_frequency,
    "ca_amplitude": build_ca_amplitude,
    "water_lick": build_water_lick,
}


def write_csv(df: pd.DataFrame, path: Path) -> None:
    """Write with fixed float formatting and Unix line endings (byte-identical reruns)."""
    df.to_csv(path, index=False, float_format="%.6f", lineterminator="\n", na_rep="NA")


def main(argv: list[str] | None = None) -> int:
    """Build every reconstruction into the output folder (default: this folder)."""
    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0]) if argv else Path(__file__).resolve().parent
    out.mkdir(parents=True, exist_ok=True)
    for name, build in BUILDERS.items():
        write_csv(build(), out / f"{name}.csv")
        print(f"wrote {out / (name + '.csv')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
