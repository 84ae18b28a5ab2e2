"""In-process benchmarks: ``python -m mmteach bench [--json]``.

Each entry of :data:`BENCHMARKS` maps a name to a zero-argument callable that performs the
timed work once; :func:`run_benchmarks` reports the median wall time in seconds. A setup
step that should not be timed goes into a factory: an entry may be a callable returning the
callable to time (mark it with ``setup=True``). An entry with ``reports=True`` measures
itself: its callable runs once and returns the seconds to report (the browser and class
load tests, which time many page reruns in a separate program).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Benchmark:
    name: str
    make: Callable[[], Callable[[], object]]  # returns the function to time (setup untimed)
    repeat: int = 5
    reports: bool = False  # the callable returns the seconds to report (no warm-up, no timing)


def _registry() -> list[Benchmark]:
    """The benchmarks, imported lazily so ``bench`` only loads what it runs."""
    entries: list[Benchmark] = []
    # --- add entries below (one per line or small block), each owner its own -----------
    # lme (issue 2): one REML random-intercept fit + Satterthwaite df; goal <= 12 ms
    # (a quarter of lme4 + lmerTest's ~47 ms for the same fit and summary).
    def _lme_ca():
        from mmteach.datasets import load_dataset
        from mmteach.lme import fit_lme
        d = load_dataset("ca_frequency")
        return lambda: fit_lme(d, "res ~ treatment_idx + (1 | midx)", factors=["treatment_idx"])

    entries.append(Benchmark("lme_fit_ca_frequency", _lme_ca, repeat=20))

    # glmm (issue 4): 1,000-sample parametric bootstrap of dff on water_lick (PBmodcomp);
    # goal <= 10 s on 2 cores.
    def _glmm_boot():
        from mmteach.datasets import load_dataset
        from mmteach.glmm import compare_glmm
        d = load_dataset("water_lick")
        return lambda: compare_glmm(d, "lick ~ dff + (1 | mouseID)", "lick ~ 1 + (1 | mouseID)",
                                    family="binomial", factors=["mouseID"], bootstrap=1000,
                                    seed=1)

    entries.append(Benchmark("glmm_bootstrap_1000", _glmm_boot, repeat=1))

    # Bayes: what the water-lick page computes for its Bayesian row and Bayes factor, with
    # the random slope (the slowest structure it offers); a cold cache pays this once.
    def _bayes():
        from mmteach.bayes import bayes_factor, fit_bayes_glmm
        from mmteach.datasets import load_dataset
        d = load_dataset("water_lick")
        return lambda: bayes_factor(fit_bayes_glmm(d, "lick ~ dff + (1 + dff | mouseID)"),
                                    fit_bayes_glmm(d, "lick ~ 1 + (1 + dff | mouseID)"))

    entries.append(Benchmark("bayes_slope_with_bayes_factor", _bayes, repeat=3))

    # simulation (issue 6): 1,000 replicates each, goal <= 10 s on 2 cores.
    def _report():
        from mmteach.simulate import simulate_report
        return lambda: simulate_report(reps=1000, seed=1)

    def _typeI():
        from mmteach.simulate import simulate_type1
        return lambda: simulate_type1(reps=1000, seed=1)

    entries.append(Benchmark("montecarlo_report_1000", _report, repeat=3))
    entries.append(Benchmark("typeI_1000", _typeI, repeat=3))

    # sparse (issue 13): large designs, each goal <= a quarter of lme4/glmer's time for the
    # same fit (tools/bench_r.R times R on identical data; see the README).
    for name in SCALE_DESIGNS:
        entries.append(Benchmark(name, _scale_bench(name), repeat=3))

    # design planner (issue 14): 100 design points (10 mice x 10 cells per mouse, Example 1's
    # between-mouse layout) x 500 replicates, three analyses each; goal <= 10 s.
    def _power_grid():
        from mmteach.power import Design, power_grid
        pts = [Design(mice=m, cells_per_mouse=c, icc=0.3, effect=0.5) for m in range(3, 13)
               for c in (5, 10, 15, 20, 30, 40, 50, 75, 100, 200)]
        return lambda: power_grid(pts, reps=500, seed=1)

    entries.append(Benchmark("power_grid_100", _power_grid, repeat=1))

    # scale (issue 11): what a student feels. tools/loadtest.py starts the app and drives it
    # (mmteach never imports streamlit, so it runs as a separate program); goals: one student
    # in Chromium, slowest page's median change <= 0.5 s; 40 students (4 in Chromium) change
    # p95 <= 1.5 s and page open p95 <= 3 s (the Chromium students open their page from the
    # sidebar after the overview, as a class arrives: loadtest's --arrive; its report's
    # first_visit has the address-to-overview times beside it).
    entries.append(Benchmark("browser_rerun_max", lambda: lambda: _loadtest("sweep")["browser_rerun_max"],
                             repeat=1, reports=True))
    entries.append(Benchmark("class40_change_p95", lambda: lambda: _loadtest("class40")["change"]["p95"],
                             repeat=1, reports=True))
    entries.append(Benchmark("class40_open_p95", lambda: lambda: _loadtest("class40")["open"]["p95"],
                             repeat=1, reports=True))
    # what one control change costs the server (CPU s, all its processes), the example pages'
    # mean: with a change every ~4 s a core holds 4 / this many students
    entries.append(Benchmark("server_cpu_per_change", lambda: lambda: _loadtest("demand")["server_cpu_s_per_change"],
                             repeat=1, reports=True))

    return entries


# --------------------------------------------------------------------------------------
# large designs (issue 13): generated in-process with fixed seeds, the same data written to
# CSV for tools/bench_r.R by tools/bench_side_by_side.py
# --------------------------------------------------------------------------------------
SCALE_DESIGNS: dict[str, tuple[str, str]] = {
    # name: (formula, family: "gaussian" for lmer (REML), else glmer's family)
    "glmm_crossed_7584": ("y ~ x + (1 | subj) + (1 | item)", "binomial"),
    "lme_many_effects": ("y ~ x + (1 + x | g) + (1 | h) + (1 | k)", "gaussian"),
    "lme_crossed_50k": ("y ~ x + (1 | a) + (1 | b)", "gaussian"),
    "lme_cell_slopes_ca_amplitude": ("res ~ treatment + (1 | midx) + (treatment | cidx)", "gaussian"),
}


def scale_data(name: str) -> pd.DataFrame:
    """The data of one large benchmark design (fixed seed: identical on every call)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(13)
    if name == "glmm_crossed_7584":
        # 316 subjects x 24 items, fully crossed, one Bernoulli trial per pair
        subj, item = np.divmod(np.arange(316 * 24), 24)
        x = rng.normal(size=subj.size).round(4)
        eta = -0.3 + 0.5 * x + rng.normal(0, 0.9, 316)[subj] + rng.normal(0, 0.6, 24)[item]
        y = rng.binomial(1, 1 / (1 + np.exp(-eta)))
        return pd.DataFrame({"y": y, "x": x, "subj": [f"s{v}" for v in subj],
                             "item": [f"i{v}" for v in item]})
    if name == "lme_many_effects":
        # 600 groups with a correlated intercept and slope (1,200 effects) + 160 + 40 levels
        n = 1600
        g = np.concatenate([np.arange(600), rng.integers(0, 600, n - 600)])
        h, k = rng.integers(0, 160, n), rng.integers(0, 40, n)
        x = rng.normal(size=n).round(4)
        b = rng.multivariate_normal([0, 0], [[1.0, 0.3], [0.3, 0.5]], 600)
        y = (1 + 0.5 * x + b[g, 0] + b[g, 1] * x + rng.normal(0, 0.7, 160)[h]
             + rng.normal(0, 0.5, 40)[k] + rng.normal(size=n))
        return pd.DataFrame({"y": y.round(5), "x": x, "g": [f"g{v}" for v in g],
                             "h": [f"h{v}" for v in h], "k": [f"k{v}" for v in k]})
    if name == "lme_crossed_50k":
        n = 50_000
        a = np.concatenate([np.arange(2000), rng.integers(0, 2000, n - 2000)])
        b = np.concatenate([np.arange(500), rng.integers(0, 500, n - 500)])
        x = rng.normal(size=n).round(4)
        y = 2 + 0.3 * x + rng.normal(0, 0.8, 2000)[a] + rng.normal(0, 0.5, 500)[b] + rng.normal(size=n)
        return pd.DataFrame({"y": y.round(5), "x": x, "a": [f"a{v}" for v in a],
                             "b": [f"b{v}" for v in b]})
    if name == "lme_cell_slopes_ca_amplitude":
        from mmteach.datasets import load_dataset
        return load_dataset("ca_amplitude")
    raise KeyError(name)


def scale_fit(name: str, df_method: str = "satterthwaite") -> Callable[[], object]:
    """The fit of one large design, ready to time (its data made here, untimed).

    ``df_method`` applies to the LME designs (``fit_lme``'s; ``"z"`` is the fit and its
    tables without the Satterthwaite df, the counterpart of a bare ``lme4::lmer``)."""
    formula, family = SCALE_DESIGNS[name]
    d = scale_data(name)
    if family == "gaussian":
        from mmteach.lme import fit_lme
        # 622 cells x 2 effects = 1,244 = the rows: lme4 needs check.nobs.vs.nRE = "ignore"
        loose = name == "lme_cell_slopes_ca_amplitude"
        return lambda: fit_lme(d, formula, allow_unidentifiable=loose, df_method=df_method)
    from mmteach.glmm import fit_glmm
    return lambda: fit_glmm(d, formula, family=family)


def _scale_bench(name: str) -> Callable[[], Callable[[], object]]:
    return lambda: scale_fit(name)

LOADTEST_ARGS = {
    "sweep": ["--sweep", "--repeat", "3"],
    "class40": ["--students", "40", "--browsers", "4", "--duration", "180"],
    "demand": ["--demand", "--changes", "40"],
}
_LOADTEST_REPORTS: dict[str, dict] = {}


def _loadtest(mode: str) -> dict:
    """The JSON report of one ``tools/loadtest.py`` run (once per mode and process: the two
    class entries read the same run)."""
    if mode not in _LOADTEST_REPORTS:
        from pathlib import Path

        tool = Path(__file__).resolve().parent.parent / "tools" / "loadtest.py"
        if not tool.is_file():
            raise FileNotFoundError(f"{tool} is missing: the load test runs from a source checkout")
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "report.json"
            subprocess.run([sys.executable, str(tool), *LOADTEST_ARGS[mode], "--json", str(out)],
                           check=True, stdout=subprocess.DEVNULL, timeout=1800)
            _LOADTEST_REPORTS[mode] = json.loads(out.read_text())
    return _LOADTEST_REPORTS[mode]


def run_benchmarks(names: list[str] | None = None) -> dict[str, float]:
    """Run the benchmarks (all, or those named) and return median seconds per name."""
    out: dict[str, float] = {}
    for bench in _registry():
        if names and bench.name not in names:
            continue
        fn = bench.make()
        if bench.reports:
            out[bench.name] = float(fn())
            continue
        fn()  # warm-up: imports, caches, JIT-free but first-touch costs
        times = []
        for _ in range(bench.repeat):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        out[bench.name] = statistics.median(times)
    return out
