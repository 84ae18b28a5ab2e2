"""The load test's report helpers: tracebacks read back from the servers' logs, the memory check."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

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


def _summary(n: int, p50: float, p95: float, mx: float) -> dict:
    return {"n": n, "p50": p50, "p95": p95, "max": mx, "mean": p50}


def _reports() -> tuple[dict, dict, dict]:
    machine = {"cpus": 2, "loadavg_before": [0.5, 0, 0], "loadavg_after": [3.25, 0, 0], "replicas": 1}
    sweep = {"mode": "sweep", "repeat": 3, "machine": machine, "errors": 0, "error_boxes_shown": 2,
             "by_page": {"amplitude": {"open": _summary(1, 3.5, 3.5, 3.5), "change": _summary(9, 0.66, 1.0, 1.1)},
                         "frequency": {"open": _summary(1, 3.1, 3.1, 3.1), "change": _summary(9, 0.38, 0.6, 0.7)}},
             "change": _summary(18, 0.43, 1.02, 1.1), "browser_rerun_max": 0.66, "slowest_page": "amplitude",
             "server_part_median_by_page": {"amplitude": 0.28},
             "by_control_median": {"amplitude: Mouse 1 (of 130)": 0.94, "frequency: Structure": 0.31}}
    one = {"mode": "class", "students": 40, "browsers": 4, "duration_s": 180.0, "think_s": [2.0, 6.0],
           "machine": machine, "open": _summary(40, 0.3, 19.1, 23.7), "change": _summary(1077, 1.34, 6.46, 13.7),
           "by_client": {"protocol": {"open": _summary(36, 0.2, 6.0, 6.0), "change": _summary(997, 1.2, 6.3, 13.7)},
                         "chromium": {"open": _summary(4, 19.1, 23.7, 23.7), "change": _summary(80, 3.1, 8.2, 12.6)}},
           "by_page": {"amplitude": {"open": _summary(8, 1, 2, 3), "change": _summary(179, 3.8, 7.9, 13.7)}},
           "errors": 1, "error_examples": ["protocol change water-lick: boom"], "error_boxes_shown": 88,
           "server_tracebacks": ["Traceback ...\nValueError: x"], "memory_growth_last_half": 0.1135,
           "memory_mb": [[2.0 * i, 800.0 + i] for i in range(91)],
           "cpu": {"wall_s": 188.3, "cores": 2, "server_cores_used": 1.11, "load_generator_cores_used": 0.63},
           "chromium_opens": [{"page": "water-lick", "at_s": 11.9, "first_message_s": 2.44,
                               "script_finished_s": 3.78, "drawn_s": 10.94}]}
    demand = {"mode": "demand", "think_s": [2.0, 6.0], "server_cpu_s_per_change": 0.145,
              "students_per_core_at_full_load": 27.6,
              "demand_by_page": {"frequency": {"changes": 40, "server_cpu_s_per_change": _summary(40, 0.11, 0.2, 0.3)}}}
    return sweep, one, demand


def test_hosting_report_writes_every_number_between_the_readme_markers(tmp_path: Path) -> None:
    import json

    from tools import hosting_report as hr

    sweep, one, demand = _reports()
    files = {}
    for name, report in (("sweep", sweep), ("one", one), ("demand", demand)):
        files[name] = tmp_path / f"{name}.json"
        files[name].write_text(json.dumps(report))
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{hr.START}\nold numbers\n{hr.END}\nprose by hand\n")
    hr.main(["--sweep", str(files["sweep"]), "--demand", str(files["demand"]), "--class", str(files["one"]),
             "--commit", "abc1234", "--day", "2 Dec 2026", "--write", str(readme)])
    text = readme.read_text()
    assert text.startswith("intro\n<!-- measured -->\n**Measured on 2 Dec 2026 (commit abc1234)")
    assert text.endswith("<!-- /measured -->\nprose by hand\n") and "old numbers" not in text
    assert ("one student, every page's median change <= 0.5 s: 0.66 s, not met; "
            "one student, worst change <= 1 s: ") in text
    assert "memory growth over the last half < 10%: 11.3%, not met; zero errors: 1, not met." in text
    assert "| amplitude | 3.50 | 0.66 | 1.00 | 1.10 | 0.28 |" in text
    assert "| frequency | 3.10 | 0.38 | 0.60 | 0.70 | - |" in text
    assert "`browser_rerun_max` (slowest page's median change) = **0.66 s** (amplitude)" in text
    assert "amplitude: Mouse 1 (of 130) 0.94; frequency: Structure 0.31." in text
    assert "| chromium open | 4 | 19.10 | 23.70 | 23.70 |" in text
    assert "Errors: 1 (protocol change water-lick: boom); tracebacks in the server log: 1." in text
    assert "800 MB at start, 890 MB peak, growth over the last half 11.3%" in text
    assert ("script finished on the server, the charts drawn): water-lick (arriving 11.9 s into the class) "
            "2.44, 3.78, 10.94.") in text
    assert "| frequency | 40 | 0.11 | 0.11 | 0.20 |" in text
    assert "0.145 CPU s per change" in text and "27.6 students per core" in text
    shown = json.loads(text.split("```json\n")[1].split("\n```")[0])
    assert shown["memory_mb (every 20 s)"][:2] == [[0.0, 800.0], [20.0, 810.0]]
    assert shown["by_page (change)"]["amplitude"]["p95"] == 7.9
    # a README without the markers is refused, not overwritten
    readme.write_text("no markers\n")
    with pytest.raises(SystemExit):
        hr.main(["--sweep", str(files["sweep"]), "--demand", str(files["demand"]), "--class", str(files["one"]),
                 "--commit", "x", "--day", "d", "--write", str(readme)])
    assert readme.read_text() == "no markers\n"


def test_targets_line_says_met_only_for_the_targets_the_numbers_meet() -> None:
    from tools import hosting_report as hr

    sweep, one, _ = _reports()
    fast = {**sweep, "by_page": {p: {**v, "change": {**v["change"], "p50": 0.4}} for p, v in sweep["by_page"].items()},
            "change": {**sweep["change"], "max": 0.9}, "errors": 0}
    calm = {**one, "change": {**one["change"], "p95": 1.2}, "open": {**one["open"], "p95": 2.5},
            "memory_growth_last_half": 0.04, "errors": 0}
    line = hr.targets_line(fast, calm)
    assert line.startswith("Issue 11's targets (6 of 6 met): ") and "not met" not in line
    assert "40 students, change p95 <= 1.5 s: 1.20 s, met" in line
    line = hr.targets_line(fast, {**calm, "open": {**calm["open"], "p95": 3.01}})
    assert line.startswith("Issue 11's targets (5 of 6 met): ")
    assert "40 students, page open p95 <= 3 s: 3.01 s, not met" in line


def test_class_block_says_where_the_students_were_served() -> None:
    from tools import hosting_report as hr

    _, one, _ = _reports()
    heads = []
    for machine in ({"replicas": 1}, {"replicas": 1, "nginx": True}, {"replicas": 2, "nginx": True}):
        report = {**one, "machine": {**one["machine"], **machine}}
        heads.append(hr.class_block(report)[0])
    assert [h.split(", 180 s, ")[1].split(";")[0] for h in heads] == [
        "1 process", "1 process behind nginx", "2 replicas behind nginx"]
    # the pool's size, when the report has it
    sized = [hr.class_block({**one, "machine": {**one["machine"], **m}})[0].split(", 180 s, ")[1].split(";")[0]
             for m in ({"replicas": 2, "nginx": True, "workers_per_replica": 1},
                       {"replicas": 1, "workers_per_replica": 2})]
    assert sized == ["2 replicas behind nginx (1 pool worker each)", "1 process (2 pool workers in it)"]


def test_reports_say_how_fast_the_machine_was() -> None:
    from tools import hosting_report as hr

    info = loadtest.machine()
    assert isinstance(info["speed_probe_s"], float) and info["speed_probe_s"] > 0
    sweep, one, demand = _reports()
    # reports from before the probe: nothing said about the speed
    assert "speed probe" not in hr.class_block(one)[0]
    assert "Its speed" not in hr.block(sweep, demand, one, None, "abc", "d")
    probed = {**one, "machine": {**one["machine"], "speed_probe_s": 0.0512}}
    assert hr.class_block(probed)[0].endswith("load average before/after 0.50/3.25, speed probe 51 ms:")
    head = hr.block({**sweep, "machine": {**sweep["machine"], "speed_probe_s": 0.0395}}, demand, probed, None,
                    "abc", "d").split("\n")[1]
    assert head.endswith("`loadtest.speed_probe` took 40-51 ms before the runs (a machine half as fast "
                         "takes twice as long).")


def test_targets_line_checks_each_class_run_it_is_given() -> None:
    from tools import hosting_report as hr

    sweep, one, _ = _reports()
    fast = {**sweep, "change": {**sweep["change"], "max": 0.9}, "errors": 0}
    slow = {**one, "errors": 0, "memory_growth_last_half": 0.05}
    spread = {**slow, "machine": {**slow["machine"], "replicas": 2}, "change": {**slow["change"], "p95": 1.4},
              "open": {**slow["open"], "p95": 2.9}}
    line = hr.targets_line(fast, slow, spread)
    assert "40 students on 1 process, change p95 <= 1.5 s: 6.46 s, not met" in line
    assert "40 students on 2 replicas, change p95 <= 1.5 s: 1.40 s, met" in line
    assert "40 students on 2 replicas, page open p95 <= 3 s: 2.90 s, met" in line
    assert "memory growth over the last half < 10% (on 2 replicas): 5.0%, met" in line
    # medians 0.66 (not met), worst 0.9 (met), 1 process 0 of 2, 2 replicas 2 of 2, memory 2, errors 1
    assert line.startswith("Issue 11's targets (6 of 9 met): ")
    assert "zero errors: 0, met" in hr.targets_line(fast, slow, spread)
    assert "zero errors: 3, not met" in hr.targets_line(fast, slow, {**spread, "errors": 3})


def test_class_block_names_who_makes_the_slowest_changes() -> None:
    from tools import hosting_report as hr

    _, one, _ = _reports()
    assert not any("slowest 5%" in line for line in hr.class_block(one))
    text = "\n".join(hr.class_block({**one, "change_tail": {"protocol water-lick": 30, "chromium amplitude": 4}}))
    assert ("The slowest 5% of changes (34, at or above the p95) by client and page: "
            "protocol, water-lick 30, chromium, amplitude 4.") in text


def test_record_reports_the_tail_of_the_changes() -> None:
    rec = loadtest.Record()
    rec.changes = [("protocol", "frequency", "Mouse 1", round(0.1 * i, 1)) for i in range(1, 40)]
    rec.changes.append(("chromium", "water-lick", "Seed", 9.0))
    out = rec.report({})
    assert out["change"]["p95"] == 3.8  # the nearest rank of 40: the 38th
    assert out["change_tail"] == {"protocol frequency": 2, "chromium water-lick": 1}
    assert out["slowest_changes"][0] == ["chromium", "water-lick", "Seed", 9.0]
    assert len(out["slowest_changes"]) == 15


def test_one_speed_for_runs_on_a_machine_of_one_speed() -> None:
    from tools import hosting_report as hr

    sweep, one, demand = _reports()
    fast = {"machine": {**one["machine"], "speed_probe_s": 0.0141}}
    head = hr.block({**sweep, **fast}, demand, {**one, **fast}, None, "abc", "d").split("\n")[1]
    assert "`loadtest.speed_probe` took 14 ms before the runs" in head


def test_record_reports_first_visits_and_sidebar_opens() -> None:
    rec = loadtest.Record()
    rec.opens = [("chromium", "frequency", 1.2), ("protocol", "frequency", 0.2)]
    rec.first_visits = [("frequency", 2.5), ("water-lick", 4.0)]
    rec.browser_opens = [("frequency", 3.1, math.nan, 0.4, 1.2)]
    out = rec.report({})
    assert out["first_visit"]["n"] == 2 and out["first_visit"]["max"] == 4.0
    assert out["open"]["n"] == 2 and out["open"]["max"] == 1.2  # first visits are not page opens
    assert out["chromium_opens"] == [{"page": "frequency", "at_s": 3.1, "first_message_s": None,
                                      "script_finished_s": 0.4, "drawn_s": 1.2}]


def test_class_block_and_targets_say_how_chromium_students_arrived() -> None:
    from tools import hosting_report as hr

    sweep, one, _ = _reports()
    assert not any("typed the app's address" in line for line in hr.class_block(one))
    via = {**one, "arrive": "overview", "read_s": [3.0, 10.0], "first_visit": _summary(4, 2.1, 4.4, 4.4),
           "chromium_opens": [{"page": "water-lick", "at_s": 11.9, "first_message_s": None,
                               "script_finished_s": 0.61, "drawn_s": 1.35}]}
    text = "\n".join(hr.class_block(via))
    assert "read the overview for 3-10 s and clicked their page in the sidebar" in text
    assert "| chromium first visit | 4 | 2.10 | 4.40 | 4.40 |" in text
    assert ("(s after the click: the page's script finished on the server, the charts drawn): "
            "water-lick (arriving 11.9 s into the class) 0.61, 1.35.") in text
    line = hr.targets_line(sweep, via)
    assert "40 students, page open (from the sidebar) p95 <= 3 s: 19.10 s, not met" in line
    assert line.endswith("first visits (address to overview drawn) took p95 in class 4.40 s.")
    linked = "\n".join(hr.class_block({**one, "arrive": "link"}))
    assert "opened their page's own address" in linked
