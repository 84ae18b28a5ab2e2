"""Write the load test's reports into the README's "Hosting a workshop" section (its measured block).

    python tools/loadtest.py --sweep --json one-student.json
    python tools/loadtest.py --demand --json demand.json
    python tools/loadtest.py --students 40 --browsers 4 --duration 180 --json class40.json
    python tools/loadtest.py --students 40 --browsers 4 --duration 180 --replicas 2 --json class40-2.json
    python tools/hosting_report.py --sweep one-student.json --demand demand.json \
        --class class40.json --replicas class40-2.json --write README.md

Everything between the README's ``<!-- measured -->`` and ``<!-- /measured -->`` lines is
made from the reports (tables, the 40-student JSON abridged); the prose that reads them
stays by hand, below the block. Without ``--write`` the block is printed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- measured -->", "<!-- /measured -->"
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _s(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def _load(machine: dict[str, Any]) -> str:
    before, after = machine.get("loadavg_before", [None])[0], machine.get("loadavg_after", [None])[0]
    probe = machine.get("speed_probe_s")  # reports from before the probe have none
    return f"load average before/after {_s(before)}/{_s(after)}" + (
        f", speed probe {probe * 1000:.0f} ms" if probe is not None else "")


def sweep_block(r: dict[str, Any]) -> list[str]:
    out = [f"One student in Chromium, every control of every page changed {r['repeat']} times "
           f"(`--sweep`; {_load(r['machine'])}):", "",
           "| page | open (s) | change p50 (s) | change p95 (s) | change max (s) | server part p50, upper bound (s) |",
           "|---|---|---|---|---|---|"]
    server = r.get("server_part_median_by_page", {})
    for page, v in sorted(r["by_page"].items()):
        c = v["change"]
        out.append(f"| {page} | {_s(v['open']['p50'])} | {_s(c['p50'])} | {_s(c['p95'])} | {_s(c['max'])} "
                   f"| {_s(server.get(page))} |")
    c = r["change"]
    out += ["", f"All {c['n']} changes: p50 {_s(c['p50'])} s, p95 {_s(c['p95'])} s, max {_s(c['max'])} s. "
            f"`browser_rerun_max` (slowest page's median change) = **{_s(r['browser_rerun_max'])} s** "
            f"({r['slowest_page']}). Errors {r['errors']}, error boxes {r['error_boxes_shown']}."]
    slow = sorted(r.get("by_control_median", {}).items(), key=lambda kv: -kv[1])[:5]
    if slow:
        out.append("Slowest controls (median s): " + "; ".join(f"{k} {v:.2f}" for k, v in slow) + ".")
    return out


def class_block(r: dict[str, Any]) -> list[str]:
    m = r["machine"]
    n = m.get("replicas", 1)
    where = (f"{n} replicas behind nginx" if n > 1 else "1 process behind nginx" if m.get("nginx") else "1 process")
    if "workers_per_replica" in m:  # reports from before it was recorded say nothing
        w = m["workers_per_replica"]
        where += f" ({w} pool worker{'s' if w != 1 else ''} {'each' if n > 1 else 'in it'})"
    out = [f"{r['students']} students ({r['browsers']} in Chromium), {r['duration_s']:.0f} s, {where}; "
           f"{_load(m)}:", "", "| | n | p50 (s) | p95 (s) | max (s) |", "|---|---|---|---|---|"]
    rows = [("open", r["open"]), ("change", r["change"])]
    for kind in ("protocol", "chromium"):
        v = r["by_client"][kind]
        rows += [(f"{kind} open", v["open"]), (f"{kind} change", v["change"])]
    if r.get("first_visit", {}).get("n"):  # reports from before it was recorded say nothing
        rows.append(("chromium first visit", r["first_visit"]))
    for name, v in rows:
        if v["n"]:
            out.append(f"| {name} | {v['n']} | {_s(v['p50'])} | {_s(v['p95'])} | {_s(v['max'])} |")
    if r.get("arrive") == "overview":  # reports from before it was recorded: the page's own address
        out += ["", f"The Chromium students typed the app's address, read the overview for {r['read_s'][0]:g}-"
                f"{r['read_s'][1]:g} s and clicked their page in the sidebar: their open is that click to the page "
                "drawn; their first visit, the address to the overview drawn, is when their browser loads "
                "Streamlit's code (once a day per student)."]
    elif r.get("arrive") == "link":
        out += ["", "The Chromium students opened their page's own address: their open includes the browser "
                "loading Streamlit's code and plotly.js."]
    mem = [mb for _, mb in r["memory_mb"]]
    cpu = r["cpu"]
    growth = r["memory_growth_last_half"]
    traces = r.get("server_tracebacks", [])
    out += ["", f"Errors: {r['errors']}" + (f" ({'; '.join(r['error_examples'][:3])})" if r["errors"] else "")
            + f"; tracebacks in the server log: {len(traces)}. Server memory (RSS of all processes): "
            f"{mem[0]:.0f} MB at start, {max(mem):.0f} MB peak, growth over the last half "
            f"{100 * growth:.1f}%. CPU: the app used {cpu['server_cores_used']:.2f} cores, the load "
            f"generator (its {r['students'] - r['browsers']} protocol students and the Chromium students) "
            f"{cpu['load_generator_cores_used']:.2f} of the machine's {cpu['cores']}."]
    tail = r.get("change_tail")
    if tail:  # reports from before it was recorded say nothing
        n = sum(tail.values())
        out += ["", f"The slowest 5% of changes ({n}, at or above the p95) by client and page: "
                + ", ".join(f"{k.replace(' ', ', ')} {v}" for k, v in tail.items()) + "."]
    opens = r.get("chromium_opens")
    if opens:  # reports from before it was recorded say nothing
        # from the sidebar the websocket is already open: no first message to time
        clicked = all(o["first_message_s"] is None for o in opens)
        head = ("s after the click: " if clicked else "s after navigating: the websocket's first message, ")

        def parts(o: dict[str, Any]) -> str:
            first = "" if clicked else f"{o['first_message_s']:.2f}, "
            return (f"{o['page']} (arriving {o['at_s']:g} s into the class) {first}"
                    f"{o['script_finished_s']:.2f}, {o['drawn_s']:.2f}")

        out += ["", f"The Chromium opens in parts ({head}the page's script finished on the server, the charts "
                "drawn): " + "; ".join(parts(o) for o in opens) + "."]
    return out


def demand_block(r: dict[str, Any]) -> list[str]:
    out = ["What a control change costs the server (`--demand`, one protocol student per page, "
           "random changes):", "", "| page | changes | server CPU s per change (mean) | p50 | p95 |",
           "|---|---|---|---|---|"]
    for page, v in r["demand_by_page"].items():
        s = v["server_cpu_s_per_change"]
        out.append(f"| {page} | {v['changes']} | {_s(s['mean'])} | {_s(s['p50'])} | {_s(s['p95'])} |")
    think = sum(r["think_s"]) / 2
    out += ["", f"Mean over the pages: {r['server_cpu_s_per_change']:.3f} CPU s per change; at a change "
            f"every {r['think_s'][0]:g}-{r['think_s'][1]:g} s (mean {think:g} s) that is "
            f"{r['students_per_core_at_full_load']} students per core with the core fully busy."]
    return out


def abridged(r: dict[str, Any]) -> dict[str, Any]:
    keep = ("mode", "students", "browsers", "duration_s", "think_s", "open", "change", "errors",
            "error_boxes_shown", "server_tracebacks", "memory_growth_last_half", "cpu", "machine")
    out = {k: r[k] for k in keep if k in r}
    out["by_page (change)"] = {p: v["change"] for p, v in r["by_page"].items()}
    out["memory_mb (every 20 s)"] = r["memory_mb"][::10]
    return out


def targets_line(sweep: dict[str, Any], one: dict[str, Any], two: dict[str, Any] | None = None) -> str:
    """Issue 11's targets, each with its measured value and whether it holds (from the
    one-student sweep, the 40-student run on one process and, when given, the one on
    several replicas behind nginx)."""
    medians = [v["change"]["p50"] for v in sweep["by_page"].values() if v["change"]["n"]]
    checks = [
        ("one student, every page's median change <= 0.5 s", max(medians, default=None), 0.5),
        ("one student, worst change <= 1 s", sweep["change"]["max"], 1.0),
    ]
    # (where the class ran, or "" when there is one class run, and its report)
    classes = [("", one)] if two is None else [
        ("on 1 process", one), (f"on {two['machine'].get('replicas', 2)} replicas", two)]
    for where, run in classes:
        who = f"40 students {where}".rstrip()
        opened = "page open (from the sidebar)" if run.get("arrive") == "overview" else "page open"
        checks += [(f"{who}, change p95 <= 1.5 s", run["change"]["p95"], 1.5),
                   (f"{who}, {opened} p95 <= 3 s", run["open"]["p95"], 3.0)]
    parts = [f"{what}: {_s(got)} s, {'met' if got is not None and got <= limit else 'not met'}"
             for what, got, limit in checks]
    # not a target, said beside them: the first visits the sidebar opens come after
    visits = [f"{where or 'in class'} {_s(run['first_visit']['p95'])} s" for where, run in classes
              if run.get("first_visit", {}).get("n")]
    for where, run in classes:
        growth = run.get("memory_growth_last_half")
        if growth is not None:
            what = "memory growth over the last half < 10%" + (f" ({where})" if where else "")
            parts.append(f"{what}: {100 * growth:.1f}%, {'met' if growth < 0.10 else 'not met'}")
    errors = sweep["errors"] + sum(run["errors"] for _, run in classes)
    parts.append(f"zero errors: {errors}, {'met' if errors == 0 else 'not met'}")
    held = sum(p.endswith(", met") for p in parts)
    line = f"Issue 11's targets ({held} of {len(parts)} met): " + "; ".join(parts) + "."
    if visits:
        line += (" Not a target, beside them: the Chromium students' first visits (address to overview drawn) "
                 "took p95 " + ", ".join(visits) + ".")
    return line


def block(sweep: dict, demand: dict, one: dict, two: dict | None, commit: str, day: str) -> str:
    probes = [r["machine"]["speed_probe_s"] for r in (sweep, demand, one, two)
              if r and r.get("machine", {}).get("speed_probe_s") is not None]
    lo, hi = (f"{1000 * min(probes):.0f}", f"{1000 * max(probes):.0f}") if probes else ("", "")
    speed = (f" Its speed: `loadtest.speed_probe` took {lo if lo == hi else f'{lo}-{hi}'} ms "
             "before the runs (a machine half as fast takes twice as long)." if probes else "")
    lines = [START, f"**Measured on {day} (commit {commit}), on the 2-core development machine with "
             f"nothing else running.**{speed}", "", targets_line(sweep, one, two), ""]
    for part in (sweep_block(sweep), class_block(one), class_block(two) if two else [], demand_block(demand)):
        if part:
            lines += part + [""]
    lines += ["The 40-student run on one process, as its JSON report says (abridged: the full file "
              "also has both client kinds, every page's opens and memory every 2 s):", "", "```json",
              json.dumps(abridged(one), indent=1), "```", END]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sweep", required=True, type=Path)
    ap.add_argument("--demand", required=True, type=Path)
    ap.add_argument("--class", dest="one", required=True, type=Path, help="40 students, 1 process")
    ap.add_argument("--replicas", type=Path, help="40 students, 2 replicas")
    ap.add_argument("--commit", help="the measured commit (default: HEAD)")
    ap.add_argument("--day", help="e.g. '1 Dec 2026' (default: the 40-student report's file date)")
    ap.add_argument("--write", type=Path, help="the README whose measured block to replace")
    args = ap.parse_args(argv)
    read = lambda p: json.loads(p.read_text())  # noqa: E731
    commit = args.commit or subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                           capture_output=True, text=True, check=True).stdout.strip()
    if args.day:
        day = args.day
    else:
        import time

        t = time.gmtime(args.one.stat().st_mtime)
        day = f"{t.tm_mday} {MONTHS[t.tm_mon - 1]} {t.tm_year}"
    text = block(read(args.sweep), read(args.demand), read(args.one),
                 read(args.replicas) if args.replicas else None, commit, day)
    if args.write is None:
        print(text)
        return
    readme = args.write.read_text()
    if readme.count(START) != 1 or readme.count(END) != 1:
        raise SystemExit(f"{args.write} needs one {START} line and one {END} line")
    head, rest = readme.split(START)
    _, tail = rest.split(END)
    args.write.write_text(head + text + tail)


if __name__ == "__main__":
    main()
