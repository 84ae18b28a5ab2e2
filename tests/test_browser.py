"""Real-browser test: every page renders in headless Chromium without an error box.

Starts ``streamlit run app.py`` on a free localhost port, opens each page with Debian's
Chromium through playwright (never a downloaded browser), waits for the charts, and saves
screenshots (normal and presentation mode) to ``tests/screenshots/`` (git-ignored). Pages
are opened by URL with query parameters, as instructors share them; no page may show
Streamlit's "Page not found" dialog. The simulation page's run buttons are pressed (small
designs through the URL) and its results are screenshotted too.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from conftest import ROOT

CHROMIUM = "/usr/bin/chromium"
SHOTS = ROOT / "tests" / "screenshots"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
# (URL path, query parameters of a shared link, whether the page draws plotly charts)
PAGES = [("overview", "", False), ("frequency", "n1=200&estimation=ML", True),
         ("amplitude", "structure=lme.obj2", True), ("water-lick", "bins=6", True),
         ("your-data", "dataset=ca_amplitude", True)]
SIM_QUERY = "reps=40&k=8&n=6&t1reps=200&curvereps=50"  # small designs: quick runs
if (ROOT / "pages" / "6_simulation.py").is_file():
    PAGES.append(("simulation", SIM_QUERY, False))
if (ROOT / "pages" / "7_design.py").is_file():
    PAGES.append(("design", "reps=200", False))  # tables at once; charts wait for a click
NOT_FOUND = "Page not found"
# Presentation mode: every widget text an instructor needs to read must be projector-sized.
BIG_TEXT = {
    "slider label": '[data-testid="stSlider"] [data-testid="stWidgetLabel"] p',
    "slider value": '[data-testid="stSliderThumbValue"] p',
    "button": '[data-testid="stMain"] button[data-testid^="stBaseButton"] p',
    "radio option": '[data-testid="stRadioOption"] p',
    "select value": '[data-testid="stSelectbox"] input',
    "number input": '[data-testid="stNumberInput"] input',
    "table cell": '[data-testid="stTable"] td',
    "study choice": '[data-testid="stButtonGroup"] button p',
    "expander": '[data-testid="stExpander"] summary p',
}
MIN_PROJECTOR_PX = 20

pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(),
                       reason=f"{CHROMIUM} is not installed (apt-get install chromium)"),
]


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


def test_first_session_deep_link_has_no_page_not_found(server, browser):
    """The first session after the server starts is routed by file name (pages/ exists)
    until st.navigation has run once: a shared deep link must still open without "Page not
    found". Keep this the first browser test (the server is new: conftest.app_server)."""
    page, errors = _open(browser, server, "/simulation?reps=300")
    page.get_by_text("Run the Monte Carlo simulation").first.wait_for(timeout=120_000)
    _wait_idle(page)
    try:
        _check(page, errors)
        assert page.get_by_text(NOT_FOUND).count() == 0
        assert "/simulation" in page.url and "reps=300" in page.url
        # the shared sidebar of app.py is there: the page ran inside the router
        assert page.get_by_text("Presentation mode").count() >= 1
    finally:
        page.close()


def test_error_boxes_are_detected(server, browser):
    """Negative control: a formula that does not parse must show an error box."""
    page = browser.new_page()
    page.goto(f"{server}/your-data?mode=type+a+formula&formula=res+~+(1+%7C", timeout=60_000)
    page.wait_for_selector('[data-testid="stAlertContentError"]', timeout=120_000)
    text = page.locator('[data-testid="stAlertContentError"]').first.inner_text()
    page.close()
    assert "formula" in text.lower() or "(" in text


def _font_sizes(page) -> dict[str, list[float]]:
    """Computed font size (px) of every visible element of each BIG_TEXT kind."""
    return page.evaluate(
        """(kinds) => Object.fromEntries(Object.entries(kinds).map(([k, sel]) => [k,
             Array.from(document.querySelectorAll(sel))
               .filter(e => e.offsetParent !== null)
               .map(e => parseFloat(getComputedStyle(e).fontSize))]))""", BIG_TEXT)


def _check(page, errors: list[str]) -> None:
    exceptions = page.locator('[data-testid="stException"]').all_inner_texts()
    alerts = page.locator('[data-testid="stAlertContentError"]').all_inner_texts()
    assert not exceptions, exceptions
    assert not alerts, alerts
    assert not errors, errors
    assert page.get_by_text(NOT_FOUND).count() == 0, f"{NOT_FOUND} dialog at {page.url}"


def _watch_not_found(page, errors: list[str]) -> None:
    """Record every "page not found" message the server sends: the dialog it opens can be
    closed again by a later message, so looking for the dialog alone could miss it."""
    from google.protobuf.message import DecodeError
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    def received(payload) -> None:
        if isinstance(payload, str):
            return
        msg = ForwardMsg()
        try:
            msg.ParseFromString(payload)
        except DecodeError:  # not a ForwardMsg frame
            return
        if msg.WhichOneof("type") == "page_not_found":
            errors.append(f"{NOT_FOUND} sent for {page.url}")

    page.on("websocket", lambda ws: ws.on("framereceived", received))


def _start(browser, server, url: str, viewport: dict[str, int] | None = None, init_script: str | None = None):
    """A new tab on ``url``, its page errors and "page not found" messages recorded from
    the start; returns once the document has loaded (the script may still be running).
    ``init_script`` runs in the tab before the page's own scripts."""
    page = browser.new_page(viewport=viewport or {"width": 1400, "height": 1000})
    if init_script:
        page.add_init_script(init_script)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    _watch_not_found(page, errors)
    page.goto(f"{server}{url}", wait_until="domcontentloaded", timeout=60_000)
    return page, errors


def _open(browser, server, url: str):
    page, errors = _start(browser, server, url)
    page.wait_for_selector('[data-testid="stMain"] h1', timeout=120_000)
    return page, errors


class Tabs:
    """The pages a module's parametrised test checks one by one, each opened in its own tab
    a few tests ahead of its check (``AHEAD``): the server and the browser render the next
    pages while the current one is waited for, measured and screenshotted, instead of every
    page's run and settling waits adding up. Every page is still its own fresh session on
    its own URL, checked exactly as when opened alone."""

    AHEAD = 4

    def __init__(self, browser, server, urls: list[str], viewport: dict[str, int] | None = None) -> None:
        self.browser, self.server, self.urls, self.viewport = browser, server, urls, viewport
        self.opened: dict[str, tuple] = {}
        self.taken: set[str] = set()

    def take(self, url: str):
        """The tab of ``url`` (opened now if it was not yet) and its error list; the next
        pages in the module's order are opened behind it."""
        i = self.urls.index(url)
        for u in [url, *self.urls[i + 1:i + 1 + self.AHEAD]]:
            if u not in self.opened and u not in self.taken:
                self.opened[u] = _start(self.browser, self.server, u, self.viewport)
        self.taken.add(url)
        page, errors = self.opened.pop(url)
        page.wait_for_selector('[data-testid="stMain"] h1', timeout=120_000)
        return page, errors

    def close(self) -> None:
        for page, _ in self.opened.values():
            page.close()


def _page_url(path: str, query: str, present: bool) -> str:
    query = "&".join(q for q in (query, "presentation=1" if present else "") if q)
    return f"/{path}" + (f"?{query}" if query else "")


@pytest.fixture(scope="module")
def tabs(server, browser):
    """test_page_renders' pages in its order (path, then normal and presentation)."""
    t = Tabs(browser, server, [_page_url(p, q, present) for p, q, _ in PAGES for present in (False, True)])
    yield t
    t.close()


@pytest.mark.parametrize("present", [False, True], ids=["normal", "presentation"])
@pytest.mark.parametrize(("path", "query", "charts"), PAGES, ids=[p for p, _, _ in PAGES])
def test_page_renders(tabs, path, query, charts, present):
    SHOTS.mkdir(exist_ok=True)
    (SHOTS / ".gitignore").write_text("*\n")
    page, errors = tabs.take(_page_url(path, query, present))
    query = "&".join(q for q in (query, "presentation=1" if present else "") if q)
    if charts:
        page.wait_for_selector(".js-plotly-plot .main-svg", timeout=180_000)
        # the last element of every chart page: the script has run to the end
        page.get_by_text("Download the data shown").first.wait_for(timeout=180_000)
    _wait_idle(page)
    page.wait_for_timeout(1000)  # let plotly finish its layout
    _screenshot(page, f"{path}_{'presentation' if present else 'normal'}.png")
    sizes = _font_sizes(page)
    try:
        _check(page, errors)
        # the link's settings reached the page (it ran the page asked for, with its query)
        for pair in (query.split("&") if query else []):
            assert pair in page.url, (pair, page.url)
        if present:
            small = {k: v for k, v in sizes.items() if v and min(v) < MIN_PROJECTOR_PX}
            assert not small, f"text too small for a projector (px): {small}"
            if path == "frequency":  # the selectors find what they measure
                missing = set(BIG_TEXT) - {"study choice"} - {k for k, v in sizes.items() if v}
                assert not missing, missing
    finally:
        page.close()


def test_root_url_opens_the_overview(server, browser):
    """"/" forwards to /overview (keeping ?presentation=1) without a "Page not found"."""
    page, errors = _open(browser, server, "/?presentation=1")
    page.wait_for_url("**/overview?presentation=1", timeout=60_000)
    _wait_idle(page)
    try:
        _check(page, errors)
        assert page.locator('[data-testid="stMain"] h1').first.inner_text().startswith("Many cells")
    finally:
        page.close()


# each displayed equation's width against the width of the column it sits in
EQUATION_WIDTHS_JS = """() => Array.from(document.querySelectorAll('.katex-display')).map(e => {
  const box = e.closest('[data-testid="stColumn"]') || e.closest('[data-testid="stMain"]');
  return [e.innerText.slice(0, 20), e.scrollWidth, box.clientWidth];
})"""


def test_overview_equations_fit_their_columns_on_a_laptop(server, browser):
    """At 1280x720 (a laptop, the sidebar open) every model's equation is whole in its
    column: the LME's on one line was 411 px in a 394-px column, cut at its right edge."""
    page, errors = _start(browser, server, "/overview", viewport={"width": 1280, "height": 720})
    try:
        page.wait_for_selector(".katex-display", timeout=120_000)
        _wait_idle(page)
        widths = page.evaluate(EQUATION_WIDTHS_JS)
        assert len(widths) == 4, widths  # LM, GLM, LME, GLMM
        assert [w for w in widths if w[1] > w[2]] == [], widths
        _check(page, errors)
    finally:
        page.close()


def test_overview_loads_the_chart_library_ahead(server, browser):
    """The overview draws no chart, yet the browser has imported plotly.js by the time the
    student has read it (ui.display.preload_chart_library), so the first chart page they
    move to does not wait for it; the import adds nothing visible to the sidebar."""
    page, errors = _open(browser, server, "/overview")
    _wait_idle(page)
    try:
        page.wait_for_function("() => ['loaded', 'failed'].includes(window.__mmteachPlotly)", timeout=30_000)
        assert page.evaluate("() => window.__mmteachPlotly") == "loaded"
        assert page.locator('[data-testid="stPlotlyChart"]').count() == 0
        loaded = page.evaluate("() => performance.getEntriesByType('resource').map(e => e.name)"
                               ".filter(n => n.includes('/static/js/PlotlyChart.'))")
        assert len(loaded) == 1, loaded  # fetched once, under the name the page's charts import
        heights = page.evaluate(
            "() => Array.from(document.querySelectorAll('[data-testid=\"stSidebar\"] [data-testid=\"stHtml\"]'))"
            ".map(e => e.getBoundingClientRect().height)")
        assert heights and max(heights) == 0, heights
        # moving to a chart page finds the library loaded: charts draw, with no page error
        page.locator('[data-testid="stSidebarNav"] a[href$="/frequency"]').click()
        page.wait_for_selector(".js-plotly-plot .main-svg", timeout=120_000)
        _check(page, errors)
    finally:
        page.close()


def test_chart_library_waits_while_the_student_works(server, browser):
    """The plotly.js import (one long task on the browser's main thread) does not start while
    the student types or clicks: only after a quiet second (ui.display.PRELOAD_QUIET_MS), so a
    control changed on a page without charts is not held up by it."""
    from ui.display import PRELOAD_QUIET_MS

    # a key every 0.3 s from before the app's first script until the test says stop
    typing = ("window.__typing = setInterval(() => window.dispatchEvent("
              "new KeyboardEvent('keydown', {key: 'Shift'})), 300);")
    page, errors = _start(browser, server, "/overview", init_script=typing)
    try:
        page.wait_for_selector('[data-testid="stMain"] h1', timeout=120_000)
        page.wait_for_function("() => window.__mmteachPlotly !== undefined", timeout=60_000)
        for _ in range(6):  # 3 s of typing on an idle page: still waiting
            page.wait_for_timeout(500)
            assert page.evaluate("() => window.__mmteachPlotly") == "waiting"
        stopped = page.evaluate("() => { clearInterval(window.__typing); return performance.now(); }")
        page.wait_for_function("() => ['loaded', 'failed'].includes(window.__mmteachPlotly)", timeout=30_000)
        assert page.evaluate("() => window.__mmteachPlotly") == "loaded"
        started = page.evaluate("() => window.__mmteachPlotlyStarted")
        # the last key may have come up to 0.3 s before "stopped"
        assert started - stopped >= PRELOAD_QUIET_MS * 0.7, (started, stopped)
        _check(page, errors)
    finally:
        page.close()


@pytest.mark.skipif(not (ROOT / "pages" / "6_simulation.py").is_file(),
                    reason="no simulation page in this build")
@pytest.mark.parametrize("present", [False, True], ids=["normal", "presentation"])
def test_simulation_results_render(server, browser, present):
    """Press every run button (small designs from the URL) and wait for the result charts."""
    query = SIM_QUERY + ("&presentation=1" if present else "")
    page, errors = _open(browser, server, f"/simulation?{query}")
    mode = "presentation" if present else "normal"
    try:
        _wait_idle(page)
        page.get_by_role("button", name="Run the Monte Carlo simulation").click()
        page.get_by_text("Standard deviations: average estimate vs the truth").wait_for(
            timeout=180_000)
        _wait_idle(page)
        page.wait_for_selector(".js-plotly-plot .main-svg", timeout=60_000)
        assert page.locator(".js-plotly-plot").count() >= 3  # the three histogram rows
        page.wait_for_timeout(1000)
        _screenshot(page, f"simulation_report_{mode}.png")
        _check(page, errors)

        page.get_by_role("radio", name="Type I error of pooling").click()
        page.wait_for_url("**view=type1**", timeout=60_000)  # the study chosen is in the link
        page.get_by_role("button", name="Run the type I error study").click()
        page.get_by_text("How often each analysis finds an effect").wait_for(timeout=180_000)
        _wait_idle(page)
        page.get_by_role("button", name="Run the curve").click()
        page.get_by_text("With no clustering (ICC 0) pooling is fine").wait_for(timeout=300_000)
        _wait_idle(page)
        # bars, p-values, curve: the report's histograms are no longer drawn
        assert page.locator(".js-plotly-plot").count() == 3
        page.wait_for_timeout(1000)
        _screenshot(page, f"simulation_typeI_{mode}.png")
        _check(page, errors)
    finally:
        page.close()
