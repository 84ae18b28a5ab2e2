"""AppTest timing of one page rerun after a control change (in-process; not what a browser feels)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# (page, widget kind, widget key, two values to flip between); every value is warmed first
RERUN_BENCH_CONTROLS: tuple[tuple[str, str, str, tuple[Any, Any]], ...] = (
    ("pages/2_frequency.py", "radio", "freq.estimation", ("ML", "REML")),
    ("pages/3_amplitude.py", "radio", "amp.estimation", ("REML", "ML")),
    ("pages/4_water-lick.py", "slider", "lick.bins", (6, 5)),
    ("pages/5_your-data.py", "selectbox", "yours.dataset", ("water_lick", "ca_frequency")),
)


def make_page_rerun_bench() -> Callable[[], float]:
    """Set up ``page_rerun_max`` for ``mmteach.bench``: the timed call reruns the slowest page.

    Untimed setup: open every page in AppTest on the built-in data, flip its control to both
    values (so the caches are warm for unchanged inputs) and time one flip per page; the
    returned callable flips the control of the slowest page once and reruns it.
    """
    import time
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    app = Path(__file__).resolve().parent.parent / "app.py"
    apps = []
    for page, kind, key, values in RERUN_BENCH_CONTROLS:
        at = AppTest.from_file(str(app), default_timeout=600).run()
        at.switch_page(page).run()
        state = {"i": 0}

        def flip(at: AppTest = at, kind: str = kind, key: str = key,
                 values: tuple[Any, Any] = values, state: dict = state) -> None:
            getattr(at, kind)(key=key).set_value(values[state["i"] % 2]).run()
            state["i"] += 1
            if at.exception:
                raise RuntimeError(f"{key}: {at.exception[0].value}")

        flip()
        flip()  # both values warm
        t0 = time.perf_counter()
        flip()
        apps.append((time.perf_counter() - t0, flip))
    return max(apps, key=lambda item: item[0])[1]
