"""What runs in the process pool's workers (ui/compute.py's pool): no Streamlit here, so a worker never imports it.

A worker imports this module to run the calls the server sends it (the fork server preloads
it). Importing ``ui.compute`` instead pulled in Streamlit and the app's helpers, for nothing
a fit uses: each warmed-up worker held 250 MB (proportional share 171 MB), now 210 MB (112 MB),
and a fresh pool's first two calls took 2.1-2.2 s, now 1.6-1.7 s (3 Dec 2026, alternated twice,
on a machine whose speed probe took 20-40 ms).
"""

from __future__ import annotations

import os
import pickle
import time
from collections.abc import Callable
from typing import Any

import pandas as pd

from mmteach import budget
from mmteach.errors import MMTeachError

# The workers run at a lower priority (a higher nice value) than the server process: that one
# process draws every student's page under one interpreter lock, while a fit is work for one
# student. When a class asks for more than the cores can give, the pages that need no new fit
# (cached states, the simulation and your-data pages) then stay quick instead of queueing for
# the CPU behind the fits. 40 students on 2 cores, back to back: change p50 1.5 and 1.8 s
# with it, 4.8 and 5.6 s without (the simulation page 0.3 s against 1.2 and 2.7 s); the pages
# waiting for fits as before (p95 18 and 20 s against 21 and 18 s). One student: the same.
WORKER_NICE = int(os.environ.get("MMTEACH_WORKER_NICE", 5))


def use_python_strings() -> None:
    """Keep text columns as Python strings (pandas' ``str`` dtype, its "python" storage)
    instead of Arrow arrays: the same values, missing values and dtype name, but the small
    tables a page builds on every rerun (``set_index("term")``, look-ups, concatenations)
    no longer convert Arrow text to Python objects on each step, which was ~15% of the
    server's samples in a class (py-spy, 3 Dec 2026). The server's CPU per control change
    (``--demand``, alternated twice): 0.079 and 0.074 s with Arrow, 0.073 and 0.064 s
    without. Called by app.py (the server) and by each pool worker as it starts."""
    pd.set_option("mode.string_storage", "python")


def start_worker() -> None:
    """A new worker: pandas' first text and group-by operations map their memory (Arrow's
    allocator reserves address space on first use, over the worker's limit if it comes
    later: every cell count failed with "needed more memory" in a fresh install), then the
    limit of :func:`mmteach.budget.limit_memory` counts from there. Text is then kept as
    Python strings, as in the server (:func:`use_python_strings`)."""
    text = pd.Series(["a", "b", "a"], dtype="str")
    pd.DataFrame({"g": text, "x": [1.0, 2.0, 3.0]}).groupby("g")["x"].agg(["sum", "size"]).unstack()
    use_python_strings()
    budget.limit_memory()
    os.nice(WORKER_NICE)  # see WORKER_NICE


def run_packed(fn: Callable[..., Any], data: pd.DataFrame, args: tuple, kwargs: dict) -> tuple[bytes, float]:
    """The call, its result or teaching error pickled, and its run time."""
    t0 = time.perf_counter()
    try:
        # a time budget in a worker (mmteach.budget; a no-op in the server's threads)
        out: tuple[bool, Any] = (True, budget.call(fn, data, *args, **kwargs))
    except MMTeachError as err:
        out = (False, (type(err).__name__, str(err)))
    return pickle.dumps(out, protocol=pickle.HIGHEST_PROTOCOL), time.perf_counter() - t0


def run_reporting(fn: Callable[..., Any], path: str, args: tuple, kwargs: dict) -> bytes:
    """``fn(*args, progress=..., **kwargs)`` writing "done total" to ``path``."""
    last = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.monotonic()
        # a few writes a second are plenty; none once the session stopped waiting
        if (now - last[0] > 0.1 or done >= total) and os.path.exists(path):
            last[0] = now
            tmp = f"{path}.tmp"
            with open(tmp, "w") as f:
                f.write(f"{done} {total}")
            os.replace(tmp, path)

    try:
        out: tuple[bool, Any] = (True, fn(*args, progress=progress, **kwargs))
    except MMTeachError as err:
        out = (False, (type(err).__name__, str(err)))
    return pickle.dumps(out, protocol=pickle.HIGHEST_PROTOCOL)
