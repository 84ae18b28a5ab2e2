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
