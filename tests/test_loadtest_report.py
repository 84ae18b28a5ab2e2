"""The load test's report helpers: tracebacks read back from the servers' logs, the memory check."""

from __future__ import annotations

from pathlib import Path

from tools import loadtest

LOG = """\
2026-12-01 22:10:01.123 INFO an ordinary line
2026-12-01 22:10:02.456 Uncaught app execution
Traceback (most recent call last):
  File "/app/pages/4_water-lick.py", line 103, in _lick_curves
    binned = compute.derived(F.binned_proportions, sub)
  File "/app/mmteach/figures.py", line 552, in binned_proportions
    edges = np.linspace(sub[x].min(), sub[x].max(), int(bins) + 1)
ValueError: cannot convert float NaN to integer
2026-12-01 22:10:03.000 INFO after it
"""


def test_server_tracebacks_keep_where_and_what(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text(LOG + LOG.replace("ValueError: cannot", "KeyError: other"))
    found = loadtest.server_tracebacks([log, tmp_path / "missing.log"])
    assert len(found) == 2
    assert found[0].startswith("Traceback (most recent call last)")
    assert found[0].endswith("ValueError: cannot convert float NaN to integer")
    assert "figures.py\", line 552" in found[0]
    assert "INFO after it" not in found[0]
    assert found[1].endswith("KeyError: other convert float NaN to integer")
    # long tracebacks keep their last lines, and the count is bounded
    assert loadtest.server_tracebacks([log], most=1) == found[:1]
    short = loadtest.server_tracebacks([log], lines=2)[0].splitlines()
    assert short == ["Traceback (most recent call last):", "...",
                     "    edges = np.linspace(sub[x].min(), sub[x].max(), int(bins) + 1)",
                     "ValueError: cannot convert float NaN to integer"]


def test_server_tracebacks_of_a_clean_log_is_empty(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text("2026-12-01 INFO nothing went wrong\n")
    assert loadtest.server_tracebacks([log]) == []


def test_memory_growth_is_last_peak_over_half_time() -> None:
    flat = [(t, 500.0) for t in range(0, 181, 2)]
    assert loadtest.memory_growth(flat) == 0.0
    growing = [(t, 400.0 + t) for t in range(0, 181, 2)]
    # at half time (t = 90) 490 MB; peak of the last tenth (t >= 162): 580 MB
    assert loadtest.memory_growth(growing) == round(580 / 490 - 1, 4)
    assert loadtest.memory_growth(growing[:3]) is None
