"""Where a control change's time goes in the browser: a Chromium trace of a few changes, summarised.

The load test says how long a change takes until the page is drawn; this says what the
browser's main thread did meanwhile. One command::

    python tools/browser_trace.py --page amplitude --control "Mouse 5" --changes 3 --json trace.json

starts the app on 127.0.0.1 (or uses ``--url`` of a running one on loopback), lets the
instructor's first look warm it, opens the page in headless Chromium (Debian's, as the load
test), makes one untraced change, then traces ``--changes`` changes of the first control whose
label starts with ``--control`` (Chromium's devtools timeline, as the Performance panel
records it) and reports for each change, from the page's rerun request to the next one:

- ``busy_ms``: how long the renderer's main thread ran tasks (if it is about the whole
  change, the browser, not the server, is what the student waits for);
- ``by_category_ms``: that time as script, style and layout, paint, gc and other, and
  ``self_ms`` by timeline event (the twelve largest);
- ``tasks``: the tasks over 20 ms, when they started and how long they ran;
- ``received_ms``: when the page took in the server's first and last websocket messages.

Every loop is bounded; only 127.0.0.1 is contacted. ``--keep`` keeps the raw trace (it can
be opened in Chromium's Performance panel).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
import loadtest  # noqa: E402 - a sibling tool: its server, Chromium and student helpers

# the devtools timeline (the Performance panel's categories)
CATEGORIES = ["devtools.timeline", "disabled-by-default-devtools.timeline", "v8"]
LONG_TASK_MS = 20.0
# what each timeline event is, as the Performance panel's summary groups them
SCRIPT = ("FunctionCall", "v8.callFunction", "EvaluateScript", "v8.compile", "TimerFire", "FireAnimationFrame",
          "EventDispatch", "RunMicrotasks", "v8.run")
STYLE_LAYOUT = ("UpdateLayoutTree", "Layout", "RecalculateStyles")
PAINT = ("Paint", "PrePaint", "Layerize", "Commit", "UpdateLayer", "PaintImage", "RasterTask")


def category(name: str) -> str:
    """script, style and layout, paint, gc or other: the summary's group of a timeline event."""
    if name in SCRIPT:
        return "script"
    if name in STYLE_LAYOUT:
        return "style and layout"
    if name in PAINT:
        return "paint"
    if "GC" in name:  # MinorGC, MajorGC, V8.GC_...
        return "gc"
    return "other"


def main_thread(events: list[dict[str, Any]]) -> tuple[int, int]:
    """(pid, tid) of the page's main thread: the thread that ran layouts and script calls."""
    counts = Counter((e["pid"], e["tid"]) for e in events if e.get("name") in ("Layout", "FunctionCall"))
    if not counts:
        raise ValueError("the trace has no renderer main thread (no Layout or FunctionCall events)")
    return counts.most_common(1)[0][0]


def change_windows(events: list[dict[str, Any]], thread: tuple[int, int], end_us: float) -> list[tuple[float, float]]:
    """One window per change: from each websocket message the page sent (its rerun request)
    to the next one, the last to ``end_us``."""
    sends = sorted(e["ts"] for e in events if e.get("name") == "WebSocketSend" and (e["pid"], e["tid"]) == thread)
    return [(t, sends[i + 1] if i + 1 < len(sends) else end_us) for i, t in enumerate(sends)]


def summarise_window(events: list[dict[str, Any]], thread: tuple[int, int], t0: float, t1: float) -> dict[str, Any]:
    """What the main thread did between ``t0`` and ``t1`` (trace microseconds).

    Complete events ("X") nest by time on one thread; an event's self time is its duration
    less that of the events directly inside it, so the kinds add up to ``busy_ms``.
    """
    spans = sorted((e for e in events if (e["pid"], e["tid"]) == thread and e.get("ph") == "X"
                    and "dur" in e and t0 <= e["ts"] < t1), key=lambda e: (e["ts"], -e["dur"]))
    self_us: Counter = Counter()
    open_ends: list[tuple[float, str]] = []  # (end, name) of the enclosing events
    tasks: list[tuple[float, float]] = []
    busy_us = 0.0
    for e in spans:
        start, dur = e["ts"], e["dur"]
        while open_ends and open_ends[-1][0] <= start:
            open_ends.pop()
        if open_ends:
            self_us[open_ends[-1][1]] -= dur
        else:  # a top-level task
            busy_us += dur
            tasks.append((start, dur))
        self_us[e["name"]] += dur
        open_ends.append((start + dur, e["name"]))
    received = sorted(e["ts"] for e in events if e.get("name") == "WebSocketReceive" and (e["pid"], e["tid"]) == thread
                      and t0 <= e["ts"] < t1)
    by_category: Counter = Counter()
    for name, us in self_us.items():
        by_category[category(name)] += us
    return {
        "busy_ms": round(busy_us / 1000, 1),
        "by_category_ms": {k: round(v / 1000, 1) for k, v in by_category.most_common() if v > 0},
        "self_ms": {k: round(v / 1000, 1) for k, v in self_us.most_common(12) if v > 0},
        "tasks": [[round((s - t0) / 1000), round(d / 1000)] for s, d in tasks if d / 1000 >= LONG_TASK_MS],
        "received_ms": [round((received[0] - t0) / 1000), round((received[-1] - t0) / 1000)] if received else None,
        "messages_received": len(received),
    }


def summarise(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """:func:`summarise_window` of every change in a trace."""
    thread = main_thread(events)
    end = max(e["ts"] + e.get("dur", 0) for e in events if "ts" in e)
    return [summarise_window(events, thread, t0, t1) for t0, t1 in change_windows(events, thread, end)]


async def trace_changes(url: str, page: str, control: str, changes: int, raw: Path) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await loadtest.launch_chromium(pw)
        student = loadtest.BrowserStudent(browser, url, page)
        try:
            opened = await student.open()
            found = [c for c in await student.controls() if c[2].startswith(control)]
            if not found:
                raise SystemExit(f"no control whose label starts with {control!r} on {page}")
            kind, index, label = found[0]
            await student.change(kind, index, 0)  # untraced: the page's first change loads chunks
            await browser.start_tracing(page=student.tab, path=str(raw), categories=CATEGORIES)
            seconds = []
            for step in range(1, changes + 1):
                dt = await student.change(kind, index, step)
                if dt is not None:
                    seconds.append(round(dt, 3))
            await browser.stop_tracing()
        finally:
            await student.close()
            await browser.close()
    return {"page": page, "control": label, "open_s": round(opened, 2), "change_s": seconds}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--page", default="amplitude")
    ap.add_argument("--control", default="Mouse 1", help="the first control whose label starts so")
    ap.add_argument("--changes", type=int, default=3)
    ap.add_argument("--url", help="a running app on 127.0.0.1 instead of starting one")
    ap.add_argument("--settle", type=float, default=45, help="seconds for the server's warm-up after the first look")
    ap.add_argument("--keep", help="keep the raw Chromium trace here")
    ap.add_argument("--json", help="write the summary here")
    args = ap.parse_args(argv)
    if not 1 <= args.changes <= 50:
        ap.error("--changes must be between 1 and 50")
    if not Path(loadtest.CHROMIUM).exists():
        ap.error(f"{loadtest.CHROMIUM} is not installed (apt-get install chromium)")
    proc = None
    with tempfile.TemporaryDirectory() as tmp:
        if args.url:
            if urlsplit(args.url).hostname not in ("127.0.0.1", "localhost"):
                ap.error("--url must be on 127.0.0.1")
            url = args.url.rstrip("/")
            loadtest.wait_healthy(url)
        else:
            port = loadtest.free_port()
            proc = loadtest.start_server(port, log=Path(tmp) / "app.log")
            url = f"http://127.0.0.1:{port}"
        try:
            if args.settle > 0:
                asyncio.run(loadtest._first_look(url))
                time.sleep(args.settle)
            raw = Path(args.keep) if args.keep else Path(tmp) / "trace.json"
            report = asyncio.run(trace_changes(url, args.page, args.control, args.changes, raw))
        finally:
            if proc is not None:
                loadtest.stop_server(proc)
        data = json.loads(raw.read_text())
    per_change = summarise(data["traceEvents"] if isinstance(data, dict) else data)
    report["changes"] = per_change
    if per_change:
        report["busy_ms_median"] = statistics.median(c["busy_ms"] for c in per_change)
    text = json.dumps(report, indent=1)
    if args.json:
        Path(args.json).write_text(text + "\n")
    print(text)
    return report


if __name__ == "__main__":
    main()
