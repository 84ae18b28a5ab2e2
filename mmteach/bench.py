"""In-process benchmarks: ``python -m mmteach bench [--json]``.

Each entry of :data:`BENCHMARKS` maps a name to a zero-argument callable that performs the
timed work once; :func:`run_benchmarks` reports the median wall time in seconds. A setup
step that should not be timed goes into a factory: an entry may be a callable returning the
callable to time (mark it with ``setup=True``).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Benchmark:
    name: str
    make: Callable[[], Callable[[], object]]  # returns the function to time (setup untimed)
    repeat: int = 5


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

    # design planner (issue 14): 100 design points (10 mice x 10 cells per mouse, Example 1's
    # between-mouse layout) x 500 replicates, three analyses each; goal <= 10 s.
    def _power_grid():
        from mmteach.power import Design, power_grid
        pts = [Design(mice=m, cells_per_mouse=c, icc=0.3, effect=0.5) for m in range(3, 13)
               for c in (5, 10, 15, 20, 30, 40, 50, 75, 100, 200)]
        return lambda: power_grid(pts, reps=500, seed=1)

    entries.append(Benchmark("power_grid_100", _power_grid, repeat=1))

    return entries


def run_benchmarks(names: list[str] | None = None) -> dict[str, float]:
    """Run the benchmarks (all, or those named) and return median seconds per name."""
    out: dict[str, float] = {}
    for bench in _registry():
        if names and bench.name not in names:
            continue
        fn = bench.make()
        fn()  # warm-up: imports, caches, JIT-free but first-touch costs
        times = []
        for _ in range(bench.repeat):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        out[bench.name] = statistics.median(times)
    return out
