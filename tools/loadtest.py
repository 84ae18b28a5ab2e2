"""Load test of the running app as students feel it: page opens and control changes, timed to the drawn page.

One command (see README, "Hosting a workshop")::

    python tools/loadtest.py --students 40 --browsers 4 --duration 180 --json out.json

starts ``streamlit run app.py`` on 127.0.0.1 (a free port; or ``--url`` of a running server
on loopback), lets N students work for ``--duration`` seconds and writes a JSON report:
page-open and control-change latency (p50/p95/max, per page and overall), errors, and the
server's memory (RSS of the server process and its children, e.g. the process pool) over
time.

Students: ``--students - --browsers`` protocol clients speak Streamlit's own websocket
protocol (``BackMsg``/``ForwardMsg`` from ``streamlit.proto``): a rerun is finished when
the ``script_finished`` message arrives, so their times include the server's work and the
transfer of every element, but not the drawing. ``--browsers`` students are real headless
Chromium (Debian's /usr/bin/chromium through playwright; never a downloaded browser): their
times run from the click or key press until the script has finished, no element is stale
any more and every plotly chart has drawn (two animation frames after that). They arrive
as a class does (``--arrive overview``, the default): they type the app's address, read the
overview for ``--read`` seconds (the report's ``first_visit``: address to overview drawn, the
browser loading Streamlit's code) and click their page in the sidebar (their ``open``: click
to page drawn). ``--arrive link`` opens the page's own address instead (a link the instructor
shared): then ``open`` includes the browser loading Streamlit's code and plotly.js.

Each student opens one example page (spread evenly), then every ``--think`` seconds changes
a control of that page (sliders to one of five positions, presets, structure, estimation,
df method, bins, seeds...; never the run buttons of long computations, uploads or
downloads). Students pick among a few positions per control, as a class following the
lecture does ("try *balance mice*"), so some of their work is shared through the caches.

``--demand`` measures capacity instead: one protocol student per page makes ``--changes``
random changes, and the report gives the server's CPU seconds per change (all its processes)
and so how many students, changing a control every few seconds, a core holds.

``--sweep`` is the one-student benchmark instead: one Chromium session opens every page and
changes every control of it ``--repeat`` times; ``browser_rerun_max`` is the slowest page's
median change.

Every loop is bounded in count and time; only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync"]
EXAMPLE_PAGES = ("frequency", "amplitude", "water-lick", "your-data", "simulation")
# widgets a student does not "change" in the loop: long runs started on purpose, files
SKIP_LABEL_PREFIXES = ("Run ", "Run the", "Presentation mode")
SKIP_KINDS = {"file_uploader", "download_button", "plotly_chart", "camera_input", "chat_input"}
MAX_CHANGES_PER_STUDENT = 500  # a bound on each loop besides the clock
RERUN_TIMEOUT_S = 60.0


# ---------------------------------------------------------------------------------------
# statistics and the report
# ---------------------------------------------------------------------------------------
def summary(values: list[float]) -> dict[str, float | int | None]:
    """n, p50, p95, max and mean of latencies in seconds (None when there are none)."""
    if not values:
        return {"n": 0, "p50": None, "p95": None, "max": None, "mean": None}
    s = sorted(values)

    def q(p: float) -> float:  # nearest-rank percentile: an actual observed latency
        return s[min(len(s) - 1, max(0, int(round(p * len(s) + 0.5)) - 1))]

    return {"n": len(s), "p50": round(q(0.5), 4), "p95": round(q(0.95), 4), "max": round(s[-1], 4),
            "mean": round(statistics.fmean(s), 4)}


@dataclass
class Record:
    """Everything the students measured."""

    opens: list[tuple[str, str, float]] = field(default_factory=list)  # (client kind, page, s)
    changes: list[tuple[str, str, str, float]] = field(default_factory=list)  # (+ control)
    errors: list[str] = field(default_factory=list)
    error_boxes: int = 0  # st.error boxes the app showed on purpose (teaching messages)
    # what they said (page: its first words), to read whether each is a message a student should see
    error_box_texts: Counter = field(default_factory=Counter)
    memory: list[tuple[float, float]] = field(default_factory=list)  # (t s, RSS MB)
    # a Chromium open in parts: (page, its arrival in s after the class began (0 in a sweep), s to the websocket's first
    # message, s to the script's end on the server, s to the charts drawn)
    browser_opens: list[tuple[str, float, float, float, float]] = field(default_factory=list)
    first_visits: list[tuple[str, float]] = field(default_factory=list)  # (page, s) of Chromium's address to overview

    def report(self, meta: dict[str, Any]) -> dict[str, Any]:
        pages = sorted({p for _, p, _ in self.opens} | {p for _, p, _, _ in self.changes})
        out: dict[str, Any] = dict(meta)
        out["open"] = summary([t for _, _, t in self.opens])
        out["change"] = summary([t for _, _, _, t in self.changes])
        out["by_client"] = {
            kind: {"open": summary([t for k, _, t in self.opens if k == kind]),
                   "change": summary([t for k, _, _, t in self.changes if k == kind])}
            for kind in ("protocol", "chromium")}
        out["first_visit"] = summary([t for _, t in self.first_visits])
        out["by_page"] = {p: {"open": summary([t for _, q, t in self.opens if q == p]),
                              "change": summary([t for _, q, _, t in self.changes if q == p])}
                          for p in pages}
        # who makes the tail: the changes at or above the p95, counted by client and page
        p95 = out["change"]["p95"]
        tail = Counter(f"{k} {q}" for k, q, _, t in self.changes if p95 is not None and t >= p95)
        out["change_tail"] = dict(tail.most_common())
        out["slowest_changes"] = [[k, q, c[:40], round(t, 3)] for k, q, c, t in
                                  sorted(self.changes, key=lambda x: -x[3])[:15]]
        out["errors"] = len(self.errors)
        out["error_examples"] = self.errors[:10]
        out["error_boxes_shown"] = self.error_boxes
        out["error_box_messages"] = [[text, n] for text, n in self.error_box_texts.most_common(10)]
        out["chromium_opens"] = [{"page": p, "at_s": round(at, 1),
                                  "first_message_s": None if math.isnan(first) else round(first, 2),
                                  "script_finished_s": round(done, 2), "drawn_s": round(drawn, 2)}
                                 for p, at, first, done, drawn in self.browser_opens]
        out["memory_mb"] = [[round(t, 1), round(m, 1)] for t, m in self.memory]
        out["memory_growth_last_half"] = memory_growth(self.memory)
        return out


def memory_growth(samples: list[tuple[float, float]]) -> float | None:
    """Relative RSS growth over the last half of the run (peak of the last tenth over the
    RSS at half time): the "memory flat after warm-up" check."""
    if len(samples) < 4:
        return None
    t_end = samples[-1][0]
    half = [m for t, m in samples if t >= t_end / 2]
    start = half[0]
    end = max(m for t, m in samples if t >= 0.9 * t_end)
    return round(end / start - 1, 4)


# ---------------------------------------------------------------------------------------
# the server and its memory
# ---------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, extra_env: dict[str, str] | None = None, wait: bool = True,
                 log: Path | None = None) -> subprocess.Popen:
    """``streamlit run app.py`` on 127.0.0.1:port; returns once /_stcore/health answers
    (at once with ``wait=False``: then call :func:`wait_healthy`). The server's own output
    goes to ``log`` (for :func:`server_tracebacks`), or nowhere."""
    env = {**os.environ, "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
           "OPENBLAS_NUM_THREADS": "1", **(extra_env or {})}
    err = log.open("ab") if log is not None else subprocess.DEVNULL
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.port", str(port),
             "--server.address", "127.0.0.1", "--server.headless", "true",
             "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err)
    finally:
        if log is not None:
            err.close()  # the server holds its own copy of the file
    if wait:
        wait_healthy(f"http://127.0.0.1:{port}", proc)
    return proc


def wait_healthy(url: str, proc: subprocess.Popen | None = None, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the app exited with code {proc.returncode} before it answered")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer /_stcore/health within {timeout_s:.0f} s")


def server_tracebacks(logs: list[Path], most: int = 5, lines: int = 14) -> list[str]:
    """The ends of the first ``most`` tracebacks in the servers' logs: a student's page shows
    Streamlit's redacted "This app has encountered an error", the log says what it was."""
    found: list[str] = []
    for log in logs:
        try:
            text = log.read_text(errors="replace").splitlines()
        except OSError:
            continue
        for i, line in enumerate(text):
            if line.startswith("Traceback (most recent call last)") and len(found) < most:
                block = [line]
                for nxt in text[i + 1:]:
                    block.append(nxt)
                    if nxt and not nxt[0].isspace():  # the exception line ends the block
                        break
                found.append("\n".join(([block[0], "..."] if len(block) > lines else []) + block[-lines:]))
    return found


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


NGINX = Path("/usr/sbin/nginx")


def nginx_config(tmp: Path, listen: int, replicas: list[int]) -> Path:
    """deploy/mmteach.conf pointed at loopback replicas, in a main nginx.conf of its own."""
    conf = (ROOT / "deploy" / "mmteach.conf").read_text()
    servers = "\n    ".join(f"server 127.0.0.1:{p} max_fails=0;" for p in replicas)
    for old, new in (("server app:8501 max_fails=0;", servers), ("listen 80;", f"listen 127.0.0.1:{listen};"),
                     ("/var/log/nginx/mmteach.log", str(tmp / "access.log")),
                     ("/var/cache/mmteach-nginx", str(tmp / "static_cache"))):
        if old not in conf:
            raise ValueError(f"deploy/mmteach.conf no longer contains {old!r}")
        conf = conf.replace(old, new)
    (tmp / "mmteach.conf").write_text(conf)
    temps = " ".join(f"{k}_temp_path {tmp / k};" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    path = tmp / "nginx.conf"
    path.write_text(f"daemon off; worker_processes 1; pid {tmp / 'nginx.pid'}; error_log {tmp / 'error.log'};\n"
                    "events { worker_connections 1024; }\n"
                    f"http {{ {temps} include {tmp / 'mmteach.conf'}; }}\n")
    return path


class Balancer:
    """``n`` app replicas behind nginx (deploy/mmteach.conf) on loopback; ``pids`` for memory."""

    def __init__(self, n: int, tmp: Path, extra_env: dict[str, str] | None = None) -> None:
        # started as root, nginx's workers run as "nobody" and must reach its cache and temp
        # paths in ``tmp``: a 0700 directory (tempfile.mkdtemp's) left every static file failing
        tmp.chmod(tmp.stat().st_mode | 0o755)
        self.ports = [free_port() for _ in range(n)]
        self.logs = [tmp / f"app{i}.log" for i in range(n)]
        self.apps = [start_server(p, extra_env, wait=False, log=log) for p, log in zip(self.ports, self.logs)]
        self.port = free_port()
        conf = nginx_config(tmp, self.port, self.ports)
        check = subprocess.run([str(NGINX), "-t", "-p", str(tmp), "-c", str(conf)], capture_output=True, text=True)
        if check.returncode:
            self.close()
            raise RuntimeError(check.stderr)
        self.nginx = subprocess.Popen([str(NGINX), "-p", str(tmp), "-c", str(conf)], stderr=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{self.port}"
        try:
            for port, app in zip(self.ports, self.apps):
                wait_healthy(f"http://127.0.0.1:{port}", app)
            wait_healthy(self.url, None, timeout_s=30)
        except Exception:
            self.close()
            raise

    @property
    def pids(self) -> list[int]:
        return [a.pid for a in self.apps] + ([self.nginx.pid] if getattr(self, "nginx", None) else [])

    def close(self) -> None:
        if getattr(self, "nginx", None) is not None:
            self.nginx.terminate()
            self.nginx.wait(timeout=10)
        for app in self.apps:
            stop_server(app)


def _tree(pid: int) -> set[int]:
    """A process and all its descendants, from /proc."""
    parent: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            parent[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    tree = {pid}
    grew = True
    while grew:
        kids = {p for p, pp in parent.items() if pp in tree and p not in tree}
        tree |= kids
        grew = bool(kids)
    return tree


def tree_rss_mb(pid: int) -> float:
    """RSS of a process and all its descendants (MB), from /proc."""
    total_kb = 0
    for p in _tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total_kb += int(line.split()[1])
        except OSError:
            continue
    return total_kb / 1024


def cpu_s(pids: set[int]) -> float:
    """CPU seconds (user + system) used so far by these processes, including the children
    they have already reaped."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
        except (OSError, IndexError, ValueError):
            continue
    return total / tick


class CpuShare:
    """Who used the machine's cores during a run: the app (its processes, their pool workers
    and the balancer) and this load generator (its own process with the protocol students,
    and the Chromium and playwright processes it started). On a 2-core machine the simulated
    class's browsers compete with the server they measure; the report says how much."""

    def __init__(self, server_pids: list[int]) -> None:
        self.server_pids = server_pids
        self.t0 = time.monotonic()
        self.server0, self.me0 = self._now()

    def _now(self) -> tuple[float, float]:
        server = set().union(*(_tree(p) for p in self.server_pids)) if self.server_pids else set()
        return cpu_s(server), cpu_s(_tree(os.getpid()) - server)  # servers this tool started are its children

    def report(self) -> dict[str, Any]:
        wall = time.monotonic() - self.t0
        server, me = (now - then for now, then in zip(self._now(), (self.server0, self.me0), strict=True))
        return {"wall_s": round(wall, 1), "cores": os.cpu_count(),
                "server_cpu_s": round(server, 1) if self.server_pids else None,
                "load_generator_cpu_s": round(me, 1),
                "server_cores_used": round(server / wall, 2) if self.server_pids and wall else None,
                "load_generator_cores_used": round(me / wall, 2) if wall else None}


async def sample_memory(pids: list[int], rec: Record, t0: float, stop: asyncio.Event,
                        every_s: float = 2.0) -> None:
    if not pids:
        return
    while not stop.is_set():
        rec.memory.append((time.monotonic() - t0, sum(tree_rss_mb(pid) for pid in pids)))
        try:
            await asyncio.wait_for(stop.wait(), timeout=every_s)
        except TimeoutError:
            pass


# ---------------------------------------------------------------------------------------
# protocol students: Streamlit's websocket protocol
# ---------------------------------------------------------------------------------------
@dataclass
class Widget:
    """One widget as the last run drew it, and how to set it."""

    id: str
    kind: str
    label: str
    proto: Any  # the element's protobuf message


def _widget_value(w: Widget) -> tuple[str, Any]:
    """(WidgetState field, value) of a widget's current value, as the browser would send it."""
    e = w.proto
    if w.kind == "slider":
        if e.options:  # select_slider: formatted option strings
            idx = list(e.value if e.set_value else e.default)
            return "string_array_value", [e.options[int(i)] for i in idx]
        return "double_array_value", list(e.value if e.set_value else e.default)
    if w.kind in ("radio", "selectbox"):
        if e.set_value:
            return "string_value", e.raw_value
        return "string_value", e.options[e.default] if e.options else ""
    if w.kind == "number_input":
        return "double_value", e.value if e.set_value else e.default
    if w.kind == "checkbox":
        return "bool_value", e.value if e.set_value else e.default
    raise KeyError(w.kind)


def _new_value(w: Widget, rng: random.Random) -> tuple[str, Any] | None:
    """A different value a student could set, from a few positions per control."""
    e = w.proto
    field_name, current = _widget_value(w) if w.kind != "button" else ("trigger_value", None)
    if w.kind == "button":
        return "trigger_value", True
    if w.kind == "slider":
        if e.options:
            choices = [[o] for o in e.options if [o] != current]
            return (field_name, rng.choice(choices)) if choices else None
        lo, hi, step = e.min, e.max, e.step or 1.0
        positions = {round((lo + f * (hi - lo)) / step) * step for f in (0, 0.25, 0.5, 0.75, 1.0)}
        positions |= {min(hi, max(lo, current[0] + d * step)) for d in (-1, 1)}  # a nudge
        choices = sorted(p for p in positions if p != current[0])
        return (field_name, [rng.choice(choices)]) if choices else None
    if w.kind in ("radio", "selectbox"):
        choices = [o for o in e.options if o != current]
        return (field_name, rng.choice(choices)) if choices else None
    if w.kind == "number_input":
        lo = e.min if e.has_min else 0.0
        hi = e.max if e.has_max else lo + 10 * (e.step or 1)
        step = e.step or 1.0
        choices = [v for v in (current - step, current + step, lo) if lo <= v <= hi and v != current]
        return (field_name, rng.choice(choices)) if choices else None
    if w.kind == "checkbox":
        return field_name, not current
    return None


def changeable(w: Widget) -> bool:
    return (w.kind in ("slider", "radio", "selectbox", "number_input", "checkbox", "button")
            and not w.label.startswith(SKIP_LABEL_PREFIXES) and not getattr(w.proto, "disabled", False))


class ProtocolClient:
    """One browser tab's conversation with the server, without drawing anything."""

    def __init__(self, url: str, page: str, query: str = "", headers: dict[str, str] | None = None) -> None:
        self.ws_url = url.replace("http://", "ws://") + "/_stcore/stream"
        self.headers = headers or {}
        self.page = page
        self.query = query
        self.page_hash = ""
        self.widgets: dict[str, Widget] = {}
        self.states: dict[str, tuple[str, Any]] = {}
        self.ws: Any = None
        self.error_boxes = 0
        self.error_box_texts: Counter = Counter()
        self.exceptions: list[str] = []

    async def connect(self) -> None:
        import websockets

        self.ws = await websockets.connect(self.ws_url, subprotocols=["streamlit"], max_size=None,
                                           open_timeout=RERUN_TIMEOUT_S, ping_interval=None,
                                           additional_headers=self.headers)

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()

    async def rerun(self, trigger: tuple[str, str, Any] | None = None) -> float:
        """Send one rerun request (a changed widget, or none for the page open) and wait for
        its ``script_finished``; returns the seconds it took. Raises on a failed run."""
        from streamlit.proto.BackMsg_pb2 import BackMsg
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        msg = BackMsg()
        cs = msg.rerun_script
        cs.query_string = self.query
        cs.page_name = self.page
        cs.page_script_hash = self.page_hash
        states = dict(self.states)
        if trigger is not None:
            wid, fname, value = trigger
            states[wid] = (fname, value)
        for wid, (fname, value) in states.items():
            ws = cs.widget_states.widgets.add()
            ws.id = wid
            if fname in ("double_array_value", "string_array_value"):
                getattr(ws, fname).data.extend(value)
            else:
                setattr(ws, fname, value)
        seen: dict[str, Widget] = {}
        t0 = time.perf_counter()
        await self.ws.send(msg.SerializeToString())
        deadline = t0 + RERUN_TIMEOUT_S
        while True:
            raw = await asyncio.wait_for(self.ws.recv(), timeout=max(0.1, deadline - time.perf_counter()))
            f = ForwardMsg()
            f.ParseFromString(raw)
            kind = f.WhichOneof("type")
            if kind == "delta" and f.delta.WhichOneof("type") == "new_element":
                el = f.delta.new_element
                ek = el.WhichOneof("type")
                if ek == "exception":
                    self.exceptions.append(f"{self.page}: {el.exception.type}: {el.exception.message[:200]}")
                elif ek == "alert" and el.alert.format == 1:
                    self.error_boxes += 1
                    said = " ".join(el.alert.body.split())  # title and the start of the reason
                    self.error_box_texts[f"{self.page}: {said[:160]}"] += 1
                elif ek and ek not in SKIP_KINDS:
                    e = getattr(el, ek)
                    wid = getattr(e, "id", "") if hasattr(e, "id") else ""
                    if wid:
                        seen[wid] = Widget(wid, ek, getattr(e, "label", ""), e)
            elif kind == "navigation":
                for p in f.navigation.app_pages:
                    if p.url_pathname == self.page:
                        self.page_hash = p.page_script_hash
            elif kind == "page_info_changed":
                self.query = f.page_info_changed.query_string
            elif kind == "page_not_found":
                raise RuntimeError(f"page not found: {self.page}")
            elif kind == "script_finished":
                status = f.script_finished
                if status == ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                    continue  # superseded by our own next request: keep waiting
                if status == ForwardMsg.FINISHED_WITH_COMPILE_ERROR:
                    raise RuntimeError(f"{self.page}: compile error")
                break
        elapsed = time.perf_counter() - t0
        if status != ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY:
            self.widgets = seen  # a full run redraws every widget of the page
        else:
            self.widgets.update(seen)
        # the browser keeps the value of every widget on the page and sends them all
        self.states = {}
        for wid, w in self.widgets.items():
            if w.kind == "button":
                continue
            try:
                self.states[wid] = _widget_value(w)
            except (KeyError, IndexError):
                continue
        if trigger is not None and trigger[0] in self.states and trigger[1] != "trigger_value":
            self.states[trigger[0]] = (trigger[1], trigger[2])
        if self.exceptions:
            raise RuntimeError(self.exceptions.pop())
        return elapsed


async def protocol_student(url: str, page: str, rec: Record, end: float, think: tuple[float, float],
                           rng: random.Random, ramp_s: float) -> None:
    await asyncio.sleep(rng.uniform(0, ramp_s))
    client = ProtocolClient(url, page)
    try:
        await client.connect()
        rec.opens.append(("protocol", page, await client.rerun()))
    except Exception as err:  # noqa: BLE001 - every failure a student sees is an error
        rec.errors.append(f"protocol open {page}: {type(err).__name__}: {err}")
        await client.close()
        return
    try:
        for _ in range(MAX_CHANGES_PER_STUDENT):
            await asyncio.sleep(rng.uniform(*think))
            if time.monotonic() >= end:
                break
            options = [w for w in client.widgets.values() if changeable(w)]
            if not options:
                break
            w = rng.choice(options)
            new = _new_value(w, rng)
            if new is None:
                continue
            try:
                dt = await client.rerun((w.id, *new))
            except Exception as err:  # noqa: BLE001
                rec.errors.append(f"protocol change {page} {w.label!r}: {type(err).__name__}: {err}")
                break
            rec.changes.append(("protocol", page, w.label, dt))
    finally:
        rec.error_boxes += client.error_boxes
        rec.error_box_texts.update(client.error_box_texts)
        await client.close()


# ---------------------------------------------------------------------------------------
# Chromium students
# ---------------------------------------------------------------------------------------
# The kinds of control a Chromium student changes, found by Streamlit's data-testid.
BROWSER_CONTROLS = {
    "slider": '[data-testid="stMain"] [data-testid="stSlider"]',
    "radio": '[data-testid="stMain"] [data-testid="stRadio"]',
    "selectbox": '[data-testid="stMain"] [data-testid="stSelectbox"]',
    "number": '[data-testid="stMain"] [data-testid="stNumberInput"]',
    "checkbox": '[data-testid="stMain"] [data-testid="stCheckbox"]',
    "button": '[data-testid="stMain"] [data-testid="stButton"]',
}
DRAWN_JS = """() => {
  if (document.querySelector('[data-stale="true"]')) return false;
  if (document.querySelector('[data-testid="stSkeleton"]')) return false;
  const plots = document.querySelectorAll('[data-testid="stPlotlyChart"]');
  for (const p of plots) { if (!p.querySelector('.main-svg')) return false; }
  return true;
}"""
TWO_FRAMES_JS = "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"


def _parse(cls: Any, payload: Any) -> Any:
    """A websocket frame as a protobuf message of ``cls``, or None (text, or another kind)."""
    from google.protobuf.message import DecodeError

    if isinstance(payload, str):
        return None
    msg = cls()
    try:
        msg.ParseFromString(payload)
    except DecodeError:
        return None
    return msg


class BrowserStudent:
    """One Chromium tab; times an action until the rerun it starts is finished and drawn."""

    def __init__(self, browser: Any, url: str, page: str, query: str = "") -> None:
        self.browser = browser
        self.url = url
        self.page_name = page
        self.query = query
        self.finished = 0  # script_finished messages seen so far
        self.finished_at = 0.0  # perf_counter() when the last one arrived
        self.requested = 0  # rerun requests the page has sent
        self.last_server_s: float | None = None  # action to script_finished of the last change
        self.requested_at = 0.0  # perf_counter() when the last rerun request was sent
        self.last_request_s: float | None = None  # action to the rerun request of the last change
        self.errors: list[str] = []
        self.tab: Any = None
        self.first_frame_at = 0.0  # perf_counter() of the websocket's first message
        self.open_parts = (math.nan, math.nan)  # see open()

    def _frame(self, payload: Any) -> None:
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        msg = _parse(ForwardMsg, payload)
        kind = msg.WhichOneof("type") if msg is not None else None
        if not self.first_frame_at:
            self.first_frame_at = time.perf_counter()
        if kind == "script_finished" and msg.script_finished != ForwardMsg.FINISHED_EARLY_FOR_RERUN:
            self.finished += 1
            self.finished_at = time.perf_counter()
        elif kind == "page_not_found":
            self.errors.append(f"page not found: {self.page_name}")
        elif kind == "delta" and msg.delta.new_element.WhichOneof("type") == "exception":
            self.errors.append(f"{self.page_name}: exception {msg.delta.new_element.exception.message[:200]}")

    def _sent(self, payload: Any) -> None:
        from streamlit.proto.BackMsg_pb2 import BackMsg

        msg = _parse(BackMsg, payload)
        if msg is not None and msg.WhichOneof("type") == "rerun_script":
            self.requested += 1
            self.requested_at = time.perf_counter()

    async def _visit(self, path: str) -> float:
        """A new tab on ``path``: seconds from the navigation to the page drawn; ``open_parts``
        then holds the seconds to the websocket's first message and to the script's end."""
        ctx = await self.browser.new_context(viewport={"width": 1400, "height": 1000})
        self.tab = await ctx.new_page()
        self.tab.on("pageerror", lambda exc: self.errors.append(f"{self.page_name}: page error {exc}"))
        self.tab.on("websocket", lambda ws: (ws.on("framereceived", self._frame), ws.on("framesent", self._sent)))
        t0 = time.perf_counter()
        target = f"{self.url}/{path}" + (f"?{self.query}" if self.query else "")
        await self.tab.goto(target, wait_until="domcontentloaded", timeout=RERUN_TIMEOUT_S * 1000)
        await self._wait_drawn(0, t0)
        drawn = time.perf_counter() - t0
        self.open_parts = (self.first_frame_at - t0, self.finished_at - t0)
        return drawn

    async def open(self) -> float:
        """The page by its own address (a shared link): seconds until drawn (see ``_visit``)."""
        return await self._visit(self.page_name)

    async def land(self) -> float:
        """The app's address, as a student types it: seconds until the overview is drawn."""
        took = await self._visit("")
        # "/" forwards to /overview (app.py): the overview has drawn when its run is over
        while not self.tab.url.rstrip("/").endswith("/overview") and self.finished < 2:
            await self._wait_drawn(self.finished, time.perf_counter())
        return took

    async def go_to_page(self) -> float:
        """Click the page's link in the sidebar: seconds until the page is drawn;
        ``open_parts`` then holds (nan, seconds to the script's end on the server)."""
        link = self.tab.locator(f'[data-testid="stSidebarNav"] a[href$="/{self.page_name}"]')
        await link.wait_for(timeout=RERUN_TIMEOUT_S * 1000)
        before, requested = self.finished, self.requested
        t0 = time.perf_counter()
        await link.click()
        deadline = t0 + RERUN_TIMEOUT_S
        while self.requested <= requested and time.perf_counter() < deadline:
            await asyncio.sleep(0.01)
        await self._wait_drawn(before, t0)
        drawn = time.perf_counter() - t0
        self.open_parts = (math.nan, self.finished_at - t0)
        return drawn

    async def _wait_drawn(self, finished_before: int, t0: float) -> None:
        deadline = t0 + RERUN_TIMEOUT_S
        while self.finished <= finished_before:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"{self.page_name}: no script_finished within {RERUN_TIMEOUT_S:.0f} s")
            await asyncio.sleep(0.01)
        left = max(1.0, deadline - time.perf_counter()) * 1000
        await self.tab.wait_for_function(DRAWN_JS, timeout=left, polling="raf")
        await self.tab.evaluate(TWO_FRAMES_JS)
        if self.errors:
            raise RuntimeError(self.errors.pop())

    async def controls(self) -> list[tuple[str, int, str]]:
        """(kind, index, label) of every control a student may change on the page now."""
        out = []
        for kind, sel in BROWSER_CONTROLS.items():
            found = await self.tab.locator(sel).evaluate_all(
                "els => els.map(e => [(e.innerText || '').split('\\n')[0].trim(), e.offsetParent !== null])")
            for i, (label, visible) in enumerate(found):
                # a control in a tab the student has not opened is not there to change
                if not visible or (kind == "button" and label.startswith(SKIP_LABEL_PREFIXES)):
                    continue
                out.append((kind, i, label))
        return out

    async def change(self, kind: str, index: int, step: int) -> float | None:
        """Change one control (``step`` varies the direction/choice); seconds until drawn,
        or None when the control is gone or did not start a rerun."""
        loc = self.tab.locator(BROWSER_CONTROLS[kind]).nth(index)
        if not await loc.count() or not await loc.is_visible():
            return None
        if kind == "button" and await loc.locator("button").first.is_disabled():
            return None
        await loc.scroll_into_view_if_needed(timeout=10_000)
        before, requested = self.finished, self.requested
        t0 = time.perf_counter()
        if kind == "slider":
            thumb = loc.locator('input[type="range"]').first
            value, lo, hi = await thumb.evaluate("e => [Number(e.value), Number(e.min), Number(e.max)]")
            left = value > lo and (step % 2 == 0 or value >= hi)
            await thumb.focus()
            t0 = time.perf_counter()
            await thumb.press("ArrowLeft" if left else "ArrowRight")
        elif kind == "radio":
            options = loc.locator('[data-testid="stRadioOption"]')
            selected = await options.evaluate_all(
                "els => els.map(e => !!e.closest('[data-selected=\"true\"]'))")
            free = [i for i, sel in enumerate(selected) if not sel]
            if not free:
                return None
            t0 = time.perf_counter()
            await options.nth(free[step % len(free)]).click()
        elif kind == "selectbox":
            await loc.locator('button[aria-label="Open"], [role="combobox"]').first.click()
            opts = self.tab.locator('[role="option"]')
            await opts.first.wait_for(timeout=10_000)
            selected = await opts.evaluate_all(
                "els => els.map(e => e.getAttribute('aria-selected') === 'true')")
            free = [i for i, sel in enumerate(selected) if not sel]
            if not free:
                await self.tab.keyboard.press("Escape")
                return None
            t0 = time.perf_counter()
            await opts.nth(free[step % len(free)]).click()
        elif kind == "number":
            button = '[data-testid="stNumberInputStepDown"]' if step % 2 else '[data-testid="stNumberInputStepUp"]'
            b = loc.locator(button)
            if await b.is_disabled():
                b = loc.locator('[data-testid="stNumberInputStepUp"]')
            t0 = time.perf_counter()
            await b.click()
        elif kind == "checkbox":
            t0 = time.perf_counter()
            await loc.locator("label").first.click()
        elif kind == "button":
            t0 = time.perf_counter()
            await loc.locator("button").first.click()
        # a control that starts no rerun (e.g. a slider already at its end) is skipped
        wait_until = time.perf_counter() + 3.0
        while self.requested <= requested and time.perf_counter() < wait_until:
            await asyncio.sleep(0.01)
        if self.requested <= requested:
            return None
        await self._wait_drawn(before, t0)
        self.last_server_s = self.finished_at - t0
        self.last_request_s = self.requested_at - t0
        return time.perf_counter() - t0

    async def close(self) -> None:
        if self.tab is not None:
            await self.tab.context.close()


async def launch_chromium(pw: Any) -> Any:
    return await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


async def browser_student(browser: Any, url: str, page: str, rec: Record, end: float,
                          think: tuple[float, float], rng: random.Random, ramp_s: float,
                          read: tuple[float, float] | None = None) -> None:
    """A Chromium student: arrives through the overview (``read``: seconds spent on it) or,
    with ``read`` None, by the page's own address; then changes controls."""
    arrival = rng.uniform(0, ramp_s)
    await asyncio.sleep(arrival)
    student = BrowserStudent(browser, url, page)
    try:
        if read is None:
            took = await student.open()
        else:
            rec.first_visits.append((page, await student.land()))
            await asyncio.sleep(rng.uniform(*read))
            took = await student.go_to_page()
        rec.opens.append(("chromium", page, took))
        rec.browser_opens.append((page, arrival, *student.open_parts, took))
        for step in range(MAX_CHANGES_PER_STUDENT):
            await asyncio.sleep(rng.uniform(*think))
            if time.monotonic() >= end:
                break
            controls = await student.controls()
            if not controls:
                break
            kind, index, label = rng.choice(controls)
            dt = await student.change(kind, index, step)
            if dt is not None:
                rec.changes.append(("chromium", page, label, dt))
    except Exception as err:  # noqa: BLE001
        rec.errors.append(f"chromium {page}: {type(err).__name__}: {str(err)[:300]}")
    finally:
        await student.close()


# ---------------------------------------------------------------------------------------
# the two modes
# ---------------------------------------------------------------------------------------
async def run_class(url: str, pids: list[int], args: argparse.Namespace) -> dict[str, Any]:
    """N students (some in Chromium) working on the example pages for ``duration`` s."""
    rec = Record()
    rng = random.Random(args.seed)
    cpu = CpuShare(pids)
    t0 = time.monotonic()
    end = t0 + args.duration
    stop = asyncio.Event()
    mem = asyncio.create_task(sample_memory(pids, rec, t0, stop))
    pages = [p.strip() for p in args.pages.split(",") if p.strip()]
    think = (args.think_min, args.think_max)
    tasks = []
    browsers: list[Any] = []
    pw_cm = None
    if args.browsers:
        from playwright.async_api import async_playwright

        pw_cm = async_playwright()
        pw = await pw_cm.__aenter__()
        # one Chromium, a separate context (cookies, cache, websocket) per student: in class
        # each student's browser runs on their own laptop, so spend this machine's cores on
        # the server rather than on several browser processes
        browsers = [await launch_chromium(pw)]
    for i in range(args.students):
        page = pages[i % len(pages)]
        srng = random.Random(rng.random())
        if i < args.browsers:
            read = (args.read_min, args.read_max) if args.arrive == "overview" else None
            tasks.append(browser_student(browsers[0], url, page, rec, end, think, srng, args.ramp, read))
        else:
            tasks.append(protocol_student(url, page, rec, end, think, srng, args.ramp))
    try:
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=args.duration + 2 * RERUN_TIMEOUT_S + args.ramp)
    finally:
        stop.set()
        await mem
        # before the browsers close: a closed Chromium's processes are reaped by nobody this
        # tool waits for, so their CPU time would be lost from the load generator's share
        used = cpu.report()
        for b in browsers:
            await b.close()
        if pw_cm is not None:
            await pw_cm.__aexit__(None, None, None)
    return rec.report({"mode": "class", "students": args.students, "browsers": args.browsers,
                       "arrive": args.arrive, "read_s": [args.read_min, args.read_max],
                       "duration_s": args.duration, "think_s": list(think), "pages": pages,
                       "elapsed_s": round(time.monotonic() - t0, 1), "cpu": used})


async def run_sweep(url: str, pids: list[int], args: argparse.Namespace) -> dict[str, Any]:
    """One Chromium student: every control of every page, ``repeat`` times each."""
    from playwright.async_api import async_playwright

    rec = Record()
    cpu = CpuShare(pids)
    t0 = time.monotonic()
    stop = asyncio.Event()
    mem = asyncio.create_task(sample_memory(pids, rec, t0, stop))
    pages = [p.strip() for p in args.pages.split(",") if p.strip()]
    server_parts: list[tuple[str, str, float | None]] = []
    request_parts: list[tuple[str, str, float | None]] = []  # the browser's own delay before asking
    try:
        async with async_playwright() as pw:
            browser = await launch_chromium(pw)
            for page in pages:
                student = BrowserStudent(browser, url, page)
                try:
                    took = await student.open()
                    rec.opens.append(("chromium", page, took))
                    rec.browser_opens.append((page, 0.0, *student.open_parts, took))
                    controls = await student.controls()
                    if args.controls:  # only the controls whose label contains one of these
                        wanted = [w.strip() for w in args.controls.split(",") if w.strip()]
                        controls = [c for c in controls if any(w in c[2] for w in wanted)]
                    for kind, index, label in controls[:args.max_controls]:
                        for step in range(args.repeat):
                            dt = await student.change(kind, index, step)
                            if dt is not None:
                                rec.changes.append(("chromium", page, label, dt))
                                server_parts.append((page, label, student.last_server_s))
                                request_parts.append((page, label, student.last_request_s))
                except Exception as err:  # noqa: BLE001
                    rec.errors.append(f"chromium {page}: {type(err).__name__}: {str(err)[:300]}")
                finally:
                    await student.close()
            used = cpu.report()  # before the browser closes (see run_class)
            await browser.close()
    finally:
        stop.set()
        await mem
    out = rec.report({"mode": "sweep", "repeat": args.repeat, "pages": pages,
                      "elapsed_s": round(time.monotonic() - t0, 1), "cpu": used})
    medians = {p: v["change"]["p50"] for p, v in out["by_page"].items() if v["change"]["n"]}
    out["browser_rerun_max"] = max(medians.values()) if medians else None
    out["slowest_page"] = max(medians, key=medians.get) if medians else None
    by_control: dict[str, list[float]] = {}
    for _, page, label, dt in rec.changes:
        by_control.setdefault(f"{page}: {label}", []).append(dt)
    out["by_control_median"] = {k: round(statistics.median(v), 3) for k, v in sorted(by_control.items())}
    # the worst change of each control (often its first: a structure fitted for the first time)
    out["by_control_max"] = {k: round(max(v), 3) for k, v in sorted(by_control.items())}
    # where the time goes: from the action to the page's receipt of script_finished, the
    # rest is the browser applying the new elements and drawing the charts. An upper bound
    # on the server's part: Chromium reports a websocket frame from the page's main thread,
    # so a frame that arrives while the page draws is seen late (a cached amplitude rerun:
    # sent 0.11 s after the request, seen 0.78 s after it)
    server: dict[str, list[float]] = {}
    for page, _, dt in server_parts:
        if dt is not None:
            server.setdefault(page, []).append(dt)
    out["server_part_median_by_page"] = {p: round(statistics.median(v), 3) for p, v in sorted(server.items())}
    by_label: dict[str, list[float]] = {}
    for page, label, dt in server_parts:
        if dt is not None:
            by_label.setdefault(f"{page}: {label}", []).append(dt)
    out["server_part_median_by_control"] = {k: round(statistics.median(v), 3) for k, v in sorted(by_label.items())}
    # from the action to the moment the browser sent its rerun request (widgets such as
    # sliders wait before they send): the part of the change no server can shorten
    asked: dict[str, list[float]] = {}
    for page, label, dt in request_parts:
        if dt is not None:
            asked.setdefault(f"{page}: {label}", []).append(dt)
    out["request_delay_median_by_control"] = {k: round(statistics.median(v), 3) for k, v in sorted(asked.items())}
    return out


async def run_demand(url: str, pids: list[int], args: argparse.Namespace) -> dict[str, Any]:
    """What a control change costs the server: one protocol student at a time per page makes
    ``--changes`` random changes (as the class's students do), and the server's CPU seconds
    (all its processes, pool workers included) are read before and after each. With the
    class's pace (a change every ``--think-min``..``--think-max`` s) that says how many
    students a core holds before changes queue."""
    if not pids:
        raise SystemExit("--demand reads the server's CPU time: let the tool start the app (no --url)")
    rec = Record()
    rng = random.Random(args.seed)
    pages = [p.strip() for p in args.pages.split(",") if p.strip()]
    server = set().union(*(_tree(p) for p in pids))
    per_page: dict[str, dict[str, Any]] = {}
    for page in pages:
        client = ProtocolClient(url, page)
        cpu: list[float] = []
        try:
            await client.connect()
            rec.opens.append(("protocol", page, await client.rerun()))
            for _ in range(min(args.changes, MAX_CHANGES_PER_STUDENT)):
                options = [w for w in client.widgets.values() if changeable(w)]
                new = _new_value(w := rng.choice(options), rng) if options else None
                if new is None:
                    continue
                before = cpu_s(server)
                dt = await client.rerun((w.id, *new))
                server = set().union(*(_tree(p) for p in pids))  # pool workers may be new
                cpu.append(cpu_s(server) - before)
                rec.changes.append(("protocol", page, w.label, dt))
        except Exception as err:  # noqa: BLE001 - a failed change is an error of the report
            rec.errors.append(f"demand {page}: {type(err).__name__}: {str(err)[:300]}")
        finally:
            rec.error_boxes += client.error_boxes
            rec.error_box_texts.update(client.error_box_texts)
            await client.close()
        per_page[page] = {"changes": len(cpu), "server_cpu_s_per_change": summary(cpu)}
    out = rec.report({"mode": "demand", "pages": pages, "think_s": [args.think_min, args.think_max]})
    means = [v["server_cpu_s_per_change"]["mean"] for v in per_page.values() if v["changes"]]
    out["demand_by_page"] = per_page
    if means:
        # a class spread evenly over the pages, each student changing a control every
        # mean-think seconds, keeps a core this busy per student
        per_change = statistics.fmean(means)
        think = (args.think_min + args.think_max) / 2
        out["server_cpu_s_per_change"] = round(per_change, 4)
        out["students_per_core_at_full_load"] = round(think / per_change, 1)
    return out


async def _first_look(url: str) -> None:
    client = ProtocolClient(url, "overview")
    await client.connect()
    try:
        await client.rerun()
    finally:
        await client.close()


async def _instructor_browser(url: str, page: str = "frequency") -> None:
    """The instructor's own browser opens a page with charts once through the balancer, as
    before any class: nginx then holds Streamlit's JavaScript and plotly.js in its static
    cache (kept for 30 days on disk in a deployment), so the students' browsers are not the
    ones that fill it. A load test starts each run with an empty cache directory."""
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await launch_chromium(pw)
        student = BrowserStudent(browser, url, page)
        try:
            await student.open()
        finally:
            await student.close()
            await browser.close()


def speed_probe(rounds: int = 5) -> float:
    """Seconds one core takes for a fixed piece of work, best of ``rounds``: Python bytecode,
    small numpy calls and JSON, the mix of a page script and a fit.

    The same virtual machine kind ran the same pages 1.5-2x slower on one day than on
    another, so a report's times mean little without it: a run with twice the probe's time was on a
    machine half as fast."""
    import numpy as np  # the load generator's own numpy, not the app's

    rng = np.random.default_rng(0)
    a = rng.normal(size=(40, 40))
    m = a @ a.T + 40 * np.eye(40)
    words = {str(i): i for i in range(20_000)}
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        total = 0
        for i in range(150_000):
            total += i % 7
        for j in range(300):
            np.linalg.solve(m, a[:, j % 40])
        json.loads(json.dumps(words))
        best = min(best, time.perf_counter() - t0)
    return round(best, 4)


def machine() -> dict[str, Any]:
    """What else the machine was doing (load averages before the run), its cores and its speed
    (:func:`speed_probe`, taken before the app starts)."""
    return {"cpus": os.cpu_count(), "loadavg_before": [round(x, 2) for x in os.getloadavg()],
            "speed_probe_s": speed_probe()}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--students", type=int, default=40)
    ap.add_argument("--browsers", type=int, default=4, help="how many students are real Chromium")
    ap.add_argument("--duration", type=float, default=180, help="seconds of control changes")
    ap.add_argument("--ramp", type=float, default=20, help="students arrive over this many seconds")
    ap.add_argument("--think-min", type=float, default=2.0)
    ap.add_argument("--think-max", type=float, default=6.0)
    ap.add_argument("--arrive", choices=("overview", "link"), default="overview",
                    help="how Chromium students arrive: the app's address, then their page in the sidebar "
                         "(overview), or their page's own address (link)")
    ap.add_argument("--read-min", type=float, default=3.0, help="seconds a student reads the overview (least)")
    ap.add_argument("--read-max", type=float, default=10.0, help="... (most)")
    ap.add_argument("--pages", default=",".join(EXAMPLE_PAGES))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--sweep", action="store_true", help="one Chromium student, every control")
    ap.add_argument("--demand", action="store_true",
                    help="the server's CPU seconds per control change, page by page (one protocol student)")
    ap.add_argument("--changes", type=int, default=40, help="--demand: random changes per page")
    ap.add_argument("--repeat", type=int, default=3, help="--sweep: changes per control")
    ap.add_argument("--max-controls", type=int, default=60, help="--sweep: controls per page")
    ap.add_argument("--controls", default="",
                    help="--sweep: only controls whose label contains one of these (comma-separated)")
    ap.add_argument("--url", help="a running app on 127.0.0.1 instead of starting one")
    ap.add_argument("--replicas", type=int, default=1,
                    help="app processes behind nginx (deploy/mmteach.conf) on loopback; 1: no balancer")
    ap.add_argument("--workers", type=int, default=0,
                    help="pool workers per app process behind nginx (0: the cores shared out among the replicas)")
    ap.add_argument("--nginx", action="store_true",
                    help="nginx in front of a single app process too (as the README advises for a lecture hall)")
    ap.add_argument("--settle", type=float, default=60,
                    help="seconds between the instructor's first look at the app (which starts the "
                         "server's warm-up of every page) and the class arriving; 0: no first look")
    ap.add_argument("--json", help="write the report here")
    args = ap.parse_args(argv)
    if not 0 <= args.browsers <= args.students and not (args.sweep or args.demand):
        ap.error("--browsers must be between 0 and --students")
    if args.browsers and not args.demand and not Path(CHROMIUM).exists():
        ap.error(f"{CHROMIUM} is not installed (apt-get install chromium)")
    info = machine()
    proc = balancer = None
    # the servers' logs (tracebacks behind a redacted error on a page) live here during the run
    tmp = tempfile.TemporaryDirectory()
    Path(tmp.name).chmod(0o755)
    logs: list[Path] = []
    t_start = time.monotonic()
    workers = 0
    if args.url:
        if urlsplit(args.url).hostname not in ("127.0.0.1", "localhost"):
            ap.error("--url must be on 127.0.0.1: this tool never loads another machine")
        url, pids = args.url.rstrip("/"), []
        wait_healthy(url)
    elif args.replicas > 1 or args.nginx:
        # by default the cores are shared out: each replica's process pool gets its share
        # (a compose deployment's containers each see every core: --workers to match it)
        workers = args.workers or max(1, (os.cpu_count() or 1) // args.replicas)
        balancer = Balancer(args.replicas, Path(tmp.name), {"MMTEACH_WORKERS": str(workers)})
        url, pids, logs = balancer.url, balancer.pids, balancer.logs
    else:
        port = free_port()
        logs = [Path(tmp.name) / "app.log"]
        proc = start_server(port, log=logs[0])
        url, pids = f"http://127.0.0.1:{port}", [proc.pid]
    info["server_start_s"] = round(time.monotonic() - t_start, 2)
    info["replicas"] = args.replicas
    info["workers_per_replica"] = workers if balancer is not None else int(
        os.environ.get("MMTEACH_WORKERS", os.cpu_count() or 1))
    info["nginx"] = balancer is not None
    run: Callable[..., Any] = run_sweep if args.sweep else run_demand if args.demand else run_class
    try:
        if args.settle > 0:
            # the instructor opens the app once after starting it (on every replica); each
            # server then opens every page in the background (ui/warm.py)
            for port in (balancer.ports if balancer else [None]):
                asyncio.run(_first_look(url if port is None else f"http://127.0.0.1:{port}"))
            if balancer is not None and args.browsers and not args.demand:
                asyncio.run(_instructor_browser(url))
            time.sleep(args.settle)
        report = asyncio.run(run(url, pids, args))
    finally:
        if proc is not None:
            stop_server(proc)
        if balancer is not None:
            balancer.close()
        tracebacks = server_tracebacks(logs)
        tmp.cleanup()
    report["server_tracebacks"] = tracebacks
    report["settle_s"] = args.settle
    # whether an instructor's browser had filled nginx's static cache before the class came
    report["static_cache_warmed"] = bool(balancer is not None and args.browsers and not args.demand
                                         and args.settle > 0)
    report["machine"] = {**info, "loadavg_after": [round(x, 2) for x in os.getloadavg()]}
    text = json.dumps(report, indent=1)
    if args.json:
        Path(args.json).write_text(text + "\n")
    short = {k: report.get(k) for k in ("open", "first_visit", "change", "errors", "memory_growth_last_half", "cpu",
                                        "server_cpu_s_per_change", "students_per_core_at_full_load",
                                        "browser_rerun_max", "slowest_page", "server_tracebacks", "machine")}
    print(json.dumps(short, indent=1))
    return report


if __name__ == "__main__":
    main()
