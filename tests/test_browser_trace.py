"""tools/browser_trace.py: the summary of a Chromium timeline, on a small made-up trace."""

from __future__ import annotations

import pytest

from tools import browser_trace as bt

MAIN, OTHER = (1, 10), (1, 11)


def ev(name, ts, dur=None, thread=MAIN, ph="X"):
    e = {"name": name, "ts": ts, "pid": thread[0], "tid": thread[1], "ph": ph}
    if dur is not None:
        e["dur"] = dur
    return e


def made_up_trace():
    """Two changes (a rerun request each); times in microseconds."""
    return [
        # change 1 at t = 0: a 50 ms task of script with a 10 ms layout inside, a 5 ms paint
        ev("WebSocketSend", 0, ph="I"),
        ev("WebSocketReceive", 2_000, ph="I"), ev("WebSocketReceive", 30_000, ph="I"),
        ev("RunTask", 1_000, 50_000),
        ev("FunctionCall", 1_000, 49_000),
        ev("Layout", 20_000, 10_000),
        ev("RunTask", 60_000, 5_000), ev("Paint", 60_000, 5_000),
        # another thread's work is not the page's
        ev("Layout", 1_000, 90_000, thread=OTHER), ev("FunctionCall", 1_000, 1_000, thread=OTHER),
        # change 2 at t = 100 ms: a 30 ms task, mostly garbage collection
        ev("WebSocketSend", 100_000, ph="I"),
        ev("RunTask", 110_000, 30_000), ev("V8.GC_SCAVENGER", 115_000, 20_000),
    ]


def test_main_thread_is_the_one_running_layouts_and_scripts():
    assert bt.main_thread(made_up_trace()) == MAIN
    with pytest.raises(ValueError, match="main thread"):
        bt.main_thread([ev("Paint", 0, 1)])


def test_each_change_runs_from_its_request_to_the_next():
    events = made_up_trace()
    assert bt.change_windows(events, MAIN, 200_000) == [(0, 100_000), (100_000, 200_000)]


def test_summary_adds_self_times_up_to_the_busy_time():
    first, second = bt.summarise(made_up_trace())
    assert first["busy_ms"] == 55.0  # two top-level tasks: 50 + 5 ms
    # FunctionCall 49 ms less the 10 ms layout inside it; RunTask 50 less its 49 ms call
    assert first["self_ms"] == {"FunctionCall": 39.0, "Layout": 10.0, "Paint": 5.0, "RunTask": 1.0}
    assert first["by_category_ms"] == {"script": 39.0, "style and layout": 10.0, "paint": 5.0, "other": 1.0}
    assert sum(first["self_ms"].values()) == first["busy_ms"]
    assert first["tasks"] == [[1, 50]]  # only the task over 20 ms
    assert first["received_ms"] == [2, 30] and first["messages_received"] == 2
    assert second["busy_ms"] == 30.0
    assert second["by_category_ms"] == {"gc": 20.0, "other": 10.0}
    assert second["received_ms"] is None


def test_event_categories():
    assert [bt.category(n) for n in ("v8.callFunction", "UpdateLayoutTree", "Layerize", "MinorGC", "RunTask")] == [
        "script", "style and layout", "paint", "gc", "other"]
