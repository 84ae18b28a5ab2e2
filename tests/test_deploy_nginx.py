"""Two app replicas behind nginx (deploy/mmteach.conf) on loopback: sticky sessions, spread, closed metrics.

Starts two ``streamlit run app.py`` processes and Debian's nginx with the deployment's own
configuration (only the replica addresses, the listen address, the log and the cache paths
are rewritten for loopback), then checks that

- sessions without a cookie spread over both replicas, and every later request of a
  session (page, websocket) reaches the replica that served its first one;
- a real browser session keeps working across reruns through the balancer, on one replica;
- ``/_stcore/metrics`` is closed at the balancer (the replicas still answer it);
- Streamlit's JavaScript leaves the balancer gzipped (the replicas send it uncompressed), and
  the balancer serves it from its cache after the first request;
- the load test's capacity mode (``--demand``) reads the servers' CPU per change.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tools import loadtest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not loadtest.NGINX.exists(), reason="nginx is not installed (apt-get install nginx)")


@pytest.fixture(scope="module")
def balancer():
    # nginx's workers run as another user and write the static cache here: the directory is
    # left 0700, as tempfile makes it, so the static-file tests below check that the Balancer
    # opens it to them (it served every static file as a 500 before)
    with tempfile.TemporaryDirectory(prefix="mmteach-nginx-") as name:
        tmp = Path(name)
        # the deployment's own config (only the replica addresses, the listen address and the
        # log and cache paths rewritten for loopback: see loadtest.nginx_config); one pool worker each
        lb = loadtest.Balancer(2, tmp, {"MMTEACH_WORKERS": "1"})
        try:
            yield {"url": lb.url, "replicas": lb.ports, "log": tmp / "access.log", "pids": lb.pids}
        finally:
            lb.close()


def _get(url: str, cookie: str | None = None) -> tuple[int, str | None]:
    """Status and the route cookie set by the balancer (None when none was set)."""
    req = urllib.request.Request(url, headers={"Cookie": f"mmteach_route={cookie}"} if cookie else {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            status, header = r.status, " ".join(r.headers.get_all("Set-Cookie") or [])
    except urllib.error.HTTPError as err:
        status, header = err.code, " ".join(err.headers.get_all("Set-Cookie") or [])
    m = re.search(r"mmteach_route=([^;]+)", header)
    return status, m.group(1) if m else None


def _routes(log: Path) -> dict[str, set[str]]:
    """Replica addresses that served each route key, from the balancer's access log."""
    time.sleep(0.3)  # nginx writes a line when a request (or websocket) ends
    out: dict[str, set[str]] = {}
    for line in log.read_text().splitlines():
        m = re.search(r"route=(\S+) upstream=(\S+)", line)
        if m and m.group(2) != "-":
            out.setdefault(m.group(1), set()).add(m.group(2))
    return out


def test_metrics_closed_at_the_balancer(balancer):
    assert _get(balancer["url"] + "/_stcore/metrics")[0] == 404
    # the replica itself still has it: the 404 is the balancer's doing
    assert _get(f"http://127.0.0.1:{balancer['replicas'][0]}/_stcore/metrics")[0] == 200


def test_javascript_is_gzipped_at_the_balancer(balancer):
    import gzip

    page = urllib.request.urlopen(balancer["url"] + "/overview", timeout=30).read().decode()
    script = re.search(r'src="\.?/?(static/js/[^"]+\.js)"', page).group(1)
    asks = {"Accept-Encoding": "gzip"}
    with urllib.request.urlopen(urllib.request.Request(f"{balancer['url']}/{script}", headers=asks), timeout=30) as r:
        encoding, body = r.headers.get("Content-Encoding"), r.read()
    replica = f"http://127.0.0.1:{balancer['replicas'][0]}/{script}"
    with urllib.request.urlopen(urllib.request.Request(replica, headers=asks), timeout=30) as r:
        assert r.headers.get("Content-Encoding") is None  # what the balancer is for here
        plain = r.read()
    assert encoding == "gzip" and gzip.decompress(body) == plain
    assert len(body) < 0.5 * len(plain)


def test_static_files_are_kept_by_the_balancer(balancer):
    """Streamlit's hashed JavaScript is asked of a replica once, then served by nginx itself:
    a class opening the app at once does not queue ~130 files each behind the busy app."""
    page = urllib.request.urlopen(balancer["url"] + "/overview", timeout=30).read().decode()
    script = re.findall(r'src="\.?/?(static/js/[^"]+\.js)"', page)[-1]
    statuses, bodies = [], []
    for _ in range(3):
        with urllib.request.urlopen(f"{balancer['url']}/{script}", timeout=30) as r:
            statuses.append(r.headers.get("X-Cache-Status"))
            bodies.append(r.read())
    with urllib.request.urlopen(f"http://127.0.0.1:{balancer['replicas'][0]}/{script}", timeout=30) as r:
        plain = r.read()
    assert statuses[0] in ("MISS", "HIT")  # HIT: an earlier test's page open fetched it already
    assert statuses[1:] == ["HIT", "HIT"]
    assert all(body == plain for body in bodies)
    time.sleep(0.3)  # nginx writes a line when a request ends
    lines = [line for line in balancer["log"].read_text().splitlines() if f"GET /{script} " in line]
    assert len(lines) >= 3 and all("upstream=- " in line for line in lines[-2:]), lines[-3:]


def test_sessions_spread_and_stick(balancer):
    url = balancer["url"]
    cookies = [_get(url + "/_stcore/health")[1] for _ in range(16)]
    assert all(cookies) and len(set(cookies)) == 16, "every new visitor gets its own route cookie"
    assert _get(url + "/_stcore/health", cookies[0])[1] is None, "a known visitor keeps its cookie"
    served = _routes(balancer["log"])
    replicas = {next(iter(served[c])) for c in cookies}
    assert len(replicas) == 2, f"16 new sessions all went to {replicas}"
    # a later session of one cookie per replica: page, then its websocket, then a rerun
    for replica in replicas:
        cookie = next(c for c in cookies if served[c] == {replica})
        for _ in range(3):
            assert _get(url + "/overview", cookie)[0] == 200

        async def session(cookie: str = cookie) -> None:
            client = loadtest.ProtocolClient(url, "overview", headers={"Cookie": f"mmteach_route={cookie}"})
            await client.connect()
            try:
                await client.rerun()
                toggle = next(w for w in client.widgets.values() if w.label == "Presentation mode")
                await client.rerun((toggle.id, "bool_value", True))
            finally:
                await client.close()

        asyncio.run(session())
        assert _routes(balancer["log"])[cookie] == {replica}


@pytest.mark.skipif(not Path(loadtest.CHROMIUM).exists(), reason="chromium is not installed")
def test_browser_session_keeps_working_through_the_balancer(balancer):
    pytest.importorskip("playwright")

    async def browse() -> tuple[str, int]:
        from playwright.async_api import async_playwright

        async with async_playwright() as pw:
            browser = await loadtest.launch_chromium(pw)
            student = loadtest.BrowserStudent(browser, balancer["url"], "overview")
            try:
                await student.open()
                # the sidebar toggle, by keyboard: the projector layout may move it out of view
                toggle = student.tab.get_by_role("switch", name="Presentation mode")
                for _ in range(4):  # presentation mode on, off, on, off: four reruns
                    before = student.finished
                    await toggle.focus()
                    await toggle.press("Space")
                    await student._wait_drawn(before, time.perf_counter())
                assert await student.tab.locator('[data-testid="stException"]').count() == 0
                cookies = await student.tab.context.cookies()
                route = next(c["value"] for c in cookies if c["name"] == "mmteach_route")
                return route, student.finished
            finally:
                await student.close()
                await browser.close()

    route, finished = asyncio.run(browse())
    assert finished >= 5, "the page open and four reruns each finished"
    served = _routes(balancer["log"])
    assert len(served[route]) == 1, f"one browser session was served by {served[route]}"


def test_demand_mode_reads_the_servers_cpu_per_change(balancer):
    """The load test's capacity mode: a few random changes on one page, each with the CPU it
    cost the servers (their processes' own clocks, so it cannot be zero for a rerun)."""
    args = argparse.Namespace(seed=3, pages="frequency", changes=3, think_min=2.0, think_max=6.0)
    report = asyncio.run(loadtest.run_demand(balancer["url"], balancer["pids"], args))
    assert report["errors"] == 0, report["error_examples"]
    # every error box the students saw is listed by what it said (up to ten kinds)
    said = report["error_box_messages"]
    assert all(text.startswith("frequency: ") and n > 0 for text, n in said)
    if len(said) < 10:
        assert sum(n for _, n in said) == report["error_boxes_shown"]
    page = report["demand_by_page"]["frequency"]
    assert page["changes"] == 3
    assert page["server_cpu_s_per_change"]["mean"] > 0
    assert report["students_per_core_at_full_load"] == pytest.approx(
        4.0 / report["server_cpu_s_per_change"], rel=0.01, abs=0.051)  # reported to 0.1
