"""Time mmteach and lme4/glmer on the same large designs, in one run (issue 13).

    .venv/bin/python tools/bench_side_by_side.py [--repeat 3] [NAME ...]

Writes the data of each design (``mmteach.bench.scale_data``, fixed seeds) to a temporary
CSV, runs ``Rscript tools/bench_r.R`` on it (lme4 / lmerTest / glmer, median of the
repeats after a warm-up), then ``mmteach.bench.run_benchmarks`` on the same design, one
design at a time so that both sides of a ratio see the same load on a shared machine, and
prints one JSON object: seconds per design for each side, the ratio mmteach / lme4 and the
load average (1 minute) before each design.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mmteach.bench import SCALE_DESIGNS, run_benchmarks, scale_data  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", default=list(SCALE_DESIGNS))
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    out = {}
    for name in args.names:
        load = os.getloadavg()[0]
        with tempfile.TemporaryDirectory() as tmp:
            scale_data(name).to_csv(Path(tmp) / f"{name}.csv", index=False)
            r = subprocess.run(["Rscript", str(ROOT / "tools/bench_r.R"), tmp, str(args.repeat)],
                               capture_output=True, text=True, check=True)
        rt = json.loads(r.stdout).get(name, {})
        py = run_benchmarks([name])[name]
        out[name] = {"mmteach": round(py, 3), "lme4": rt.get("lme4"),
                     "lmerTest": rt.get("lmerTest"),
                     "ratio_to_lme4": round(py / rt["lme4"], 3) if rt else None,
                     "load_before": round(load, 2)}
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
