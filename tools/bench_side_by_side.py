"""Time mmteach and lme4/glmer on the same large designs, in one run (issue 13).

    .venv/bin/python tools/bench_side_by_side.py [--repeat 3] [--rounds 1] [NAME ...]

Writes the data of each design (``mmteach.bench.scale_data``, fixed seeds) to a temporary
CSV, runs ``Rscript tools/bench_r.R`` on it (lme4 / lmerTest / glmer, median of the
repeats after a warm-up), then times the benchmark's own fit (``mmteach.bench.scale_fit``,
what ``python -m mmteach bench`` times) on the same design with the same warm-up and
repeats, one design at a time so that both sides of a ratio see the same load on a shared
machine; with ``--rounds N`` it alternates the two sides N times per design and reports
medians and the median of the rounds' ratios (``ratio_to_lme4_by_round`` lists them). It
prints one JSON object per design:

* ``mmteach``, ``lme4``, ``ratio_to_lme4``: the benchmark as ``python -m mmteach bench``
  times it (``fit_lme`` with Satterthwaite df, as the app fits) against the bare lme4 fit
  (issue 13's goal: at most a quarter);
* for the LME designs, the like-for-like pairs: ``mmteach_no_df`` (``fit_lme`` with
  ``df_method="z"``: the fit and its tables, no df) against ``lme4`` (``ratio_no_df_to_lme4``),
  and ``mmteach`` against ``lmerTest`` (``lmerTest::lmer`` + ``summary()``, Satterthwaite df:
  ``ratio_to_lmerTest``);
* ``loglik_diff`` and ``max_fixef_diff``: mmteach minus R on the same data (a check that
  both sides fit the same model to the same optimum);
* ``load_before``: the load average (1 minute) before the design.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mmteach.bench import SCALE_DESIGNS, scale_data, scale_fit  # noqa: E402


def _median_seconds(fn, repeat: int) -> float:
    """Median wall time of ``fn`` after a warm-up, as ``run_benchmarks`` times."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", default=list(SCALE_DESIGNS))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=1,
                    help="alternate the R and the mmteach timing this many times per design")
    args = ap.parse_args()
    out = {}
    for name in args.names:
        load = os.getloadavg()[0]
        lme = SCALE_DESIGNS[name][1] == "gaussian"
        rounds = []
        with tempfile.TemporaryDirectory() as tmp:
            scale_data(name).to_csv(Path(tmp) / f"{name}.csv", index=False)
            # R, then mmteach, then R again...: this virtual machine's speed drifts by up to a
            # half over minutes, so each ratio is taken from one round's neighbouring timings
            for _ in range(args.rounds):
                r = subprocess.run(["Rscript", str(ROOT / "tools/bench_r.R"), tmp, str(args.repeat)],
                                   capture_output=True, text=True, check=True)
                rt = json.loads(r.stdout).get(name, {})
                py = _median_seconds(scale_fit(name), args.repeat)
                no_df = _median_seconds(scale_fit(name, "z"), args.repeat) if lme else None
                rounds.append((rt, py, no_df))
        rt = rounds[-1][0]

        def med(values: list) -> float | None:
            values = [v for v in values if v is not None]
            return statistics.median(values) if values else None

        py, no_df = med([x[1] for x in rounds]), med([x[2] for x in rounds])
        lme4, lmertest = med([x[0].get("lme4") for x in rounds]), med([x[0].get("lmerTest") for x in rounds])
        ratios = [_ratio(x[1], x[0].get("lme4")) for x in rounds]
        res = scale_fit(name)()
        fixef = dict(zip(res.tidy()["term"], res.tidy()["estimate"]))
        diffs = [abs(fixef[k] - v) for k, v in rt.get("fixef", {}).items() if k in fixef]
        out[name] = {"mmteach": round(py, 3), "lme4": lme4, "lmerTest": lmertest,
                     "ratio_to_lme4": med(ratios),
                     "ratio_to_lme4_by_round": ratios,
                     "mmteach_no_df": round(no_df, 3) if no_df is not None else None,
                     "ratio_no_df_to_lme4": med([_ratio(x[2], x[0].get("lme4")) for x in rounds]),
                     "ratio_to_lmerTest": (med([_ratio(x[1], x[0].get("lmerTest")) for x in rounds])
                                           if lme else None),
                     "loglik_diff": (float(f"{res.loglik - rt['loglik']:.3g}")
                                     if "loglik" in rt else None),
                     "max_fixef_diff": float(f"{max(diffs):.3g}") if diffs else None,
                     "load_before": round(load, 2)}
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
