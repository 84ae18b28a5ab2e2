"""Real-browser test: every page renders in headless Chromium without an error box.

Starts ``streamlit run app.py`` on a free localhost port, opens each page with Debian's
Chromium through playwright (never a downloaded browser), waits for the charts, and saves
screenshots (normal and presentation mode) to ``tests/screenshots/`` (git-ignored).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
SHOTS = ROOT / "tests" / "screenshots"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
# (URL path, whether the page draws plotly charts)
PAGES = [("overview", False), ("frequency", True), ("amplitude", True),
         ("water-lick", True), ("your-data", True)]
if (ROOT / "pages" / "6_Simulation.py").is_file():
    PAGES.append(("simulation", False))

pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(),
                       reason=f"{CHROMIUM} is not installed (apt-get install chromium)"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    port = _free_port()
    env = {**os.environ, "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"),
         "--server.port", str(port), "--server.address", "127.0.0.1",
         "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("streamlit did not start within 60 s")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _wait_idle(page, timeout_s: float = 180) -> None:
    """Wait until the script run is over (no 'running' status widget for a moment)."""
    deadline = time.monotonic() + timeout_s
    quiet = 0
    while time.monotonic() < deadline:
        running = page.locator('[data-testid="stStatusWidget"]').count()
        quiet = quiet + 1 if not running else 0
        if quiet >= 4:
            return
        page.wait_for_timeout(500)
    pytest.fail("the page was still running after 180 s")


def _screenshot(page, name: str) -> None:
    """Whole page: Streamlit scrolls inside its main block, so grow the viewport to it."""
    height = page.evaluate(
        "() => Math.max(...Array.from(document.querySelectorAll("
        "'[data-testid=\"stMain\"], [data-testid=\"stMainBlockContainer\"]'),"
        " e => e.scrollHeight), 1000)")
    page.set_viewport_size({"width": 1400, "height": min(int(height) + 100, 14000)})
    page.wait_for_timeout(1500)  # plotly re-lays out on resize
    page.screenshot(path=str(SHOTS / name), full_page=True)


def test_error_boxes_are_detected(server, browser):
    """Negative control: a formula that does not parse must show an error box."""
    page = browser.new_page()
    page.goto(f"{server}/your-data?mode=type+a+formula&formula=res+~+(1+%7C", timeout=60_000)
    page.wait_for_selector('[data-testid="stAlertContentError"]', timeout=120_000)
    text = page.locator('[data-testid="stAlertContentError"]').first.inner_text()
    page.close()
    assert "formula" in text.lower() or "(" in text


@pytest.mark.parametrize("present", [False, True], ids=["normal", "presentation"])
@pytest.mark.parametrize(("path", "charts"), PAGES, ids=[p for p, _ in PAGES])
def test_page_renders(server, browser, path, charts, present):
    SHOTS.mkdir(exist_ok=True)
    (SHOTS / ".gitignore").write_text("*\n")
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    url = f"{server}/{path}" + ("?presentation=1" if present else "")
    page.goto(url, wait_until="domcontentloaded", timeout=60_000)
    page.wait_for_selector('[data-testid="stMain"] h1', timeout=120_000)
    if charts:
        page.wait_for_selector(".js-plotly-plot .main-svg", timeout=180_000)
        # the last element of every chart page: the script has run to the end
        page.get_by_text("Download the data shown").first.wait_for(timeout=180_000)
    _wait_idle(page)
    page.wait_for_timeout(1000)  # let plotly finish its layout
    _screenshot(page, f"{path}_{'presentation' if present else 'normal'}.png")
    exceptions = page.locator('[data-testid="stException"]').all_inner_texts()
    alerts = page.locator('[data-testid="stAlertContentError"]').all_inner_texts()
    page.close()
    assert not exceptions, exceptions
    assert not alerts, alerts
    assert not errors, errors
