"""Projector check in headless Chromium: every page at 1280x720 in presentation mode fits its tables,
collapses the sidebar, never breaks a control's label inside a word and shows no error box.

Uses the browser fixture of tests/test_browser.py (Debian's /usr/bin/chromium) and, after it, the same
app server (tests/conftest.py: ``server``), whose caches that module filled.
Screenshots go to tests/screenshots/ (git-ignored).
"""

from __future__ import annotations

import pytest
from test_browser import CHROMIUM, PAGES, ROOT, SHOTS, Tabs, _check, _wait_idle, browser

__all__ = ["browser"]  # the fixture re-used from test_browser (server: tests/conftest.py)

pytestmark = pytest.mark.skipif(not __import__("pathlib").Path(CHROMIUM).exists(),
                                reason=f"{CHROMIUM} is not installed")

# every table-like element and its own scrolling box
OVERFLOW_JS = """() => Array.from(document.querySelectorAll(
    '[data-testid="stTable"], [data-testid="stTable"] > div, [data-testid="stDataFrame"],'
    + ' [data-testid="stDataFrameResizable"], [data-testid="stMarkdownContainer"] table'))
  .filter(e => e.offsetParent !== null)
  .filter(e => e.scrollWidth > e.clientWidth + 1)
  .map(e => `${e.getAttribute('data-testid') || e.tagName}: ${e.scrollWidth} > ${e.clientWidth} px`
            + ` (${(e.innerText || '').slice(0, 60).replace(/\\n/g, ' ')})`)"""

# table cells whose text holds a line break (estimate over p in a stacked comparison table) but
# which the browser shows on one line: innerText follows the rendering, textContent the data
FLATTENED_JS = """() => {
  const cells = Array.from(document.querySelectorAll('[data-testid="stTable"] td'))
    .filter(td => td.offsetParent !== null && td.textContent.trim().includes('\\n'));
  return {stacked: cells.length,
          flattened: cells.filter(td => !td.innerText.trim().includes('\\n'))
                          .map(td => td.textContent.slice(0, 60))};
}"""
STACKED_PAGES = ("frequency", "your-data")  # their comparison table stacks estimate and p in a cell

# a word of a control's label split over two lines ("gaussia/n")
BROKEN_WORDS_JS = """() => {
  const out = [];
  const sel = '[data-testid="stRadioOption"] p, [data-testid="stCheckbox"] p, [data-testid="stWidgetLabel"] p,'
            + ' [data-testid="stMain"] button p';
  for (const el of document.querySelectorAll(sel)) {
    if (el.offsetParent === null) continue;
    const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      const re = /\\S+/g; let m;
      while ((m = re.exec(node.textContent)) !== null) {
        const range = document.createRange();
        range.setStart(node, m.index); range.setEnd(node, m.index + m[0].length);
        const tops = new Set(Array.from(range.getClientRects()).filter(r => r.width > 0)
                                  .map(r => Math.round(r.top)));
        if (tops.size > 1) out.push(m[0]);
      }
    }
  }
  return out;
}"""


# a control's label or option whose text runs past the right edge of its column (into the next one)
OVERRUN_JS = """() => Array.from(document.querySelectorAll(
    '[data-testid="stRadioOption"], [data-testid="stWidgetLabel"], [data-testid="stCheckbox"] label'))
  .filter(e => e.offsetParent !== null && e.closest('[data-testid="stColumn"]'))
  .map(e => {
    const edge = e.closest('[data-testid="stColumn"]').getBoundingClientRect().right;
    let right = 0;
    const walker = document.createTreeWalker(e, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      const range = document.createRange();
      range.selectNodeContents(node);
      for (const r of range.getClientRects()) right = Math.max(right, r.right);
    }
    return right > edge + 1 ? `${e.innerText.slice(0, 40)}: ${Math.round(right)} > ${Math.round(edge)} px` : null;
  })
  .filter(x => x)"""

def _url(path: str, query: str) -> str:
    return f"/{path}?" + "&".join(q for q in (query, "presentation=1") if q)


@pytest.fixture(scope="module")
def tabs(server, browser):
    """Each page opened at 1280x720 a few checks ahead of its own (see test_browser.Tabs)."""
    t = Tabs(browser, server, [_url(p, q) for p, q, _ in PAGES], viewport={"width": 1280, "height": 720})
    yield t
    t.close()


@pytest.mark.parametrize(("path", "query", "charts"), PAGES, ids=[p for p, _, _ in PAGES])
def test_presentation_mode_fits_a_projector(tabs, path, query, charts):
    SHOTS.mkdir(exist_ok=True)
    (SHOTS / ".gitignore").write_text("*\n")
    page, errors = tabs.take(_url(path, query))
    try:
        if charts:
            page.wait_for_selector(".js-plotly-plot .main-svg", timeout=180_000)
            page.get_by_text("Download the data shown").first.wait_for(timeout=180_000)
        _wait_idle(page)
        page.wait_for_timeout(1000)
        page.screenshot(path=str(SHOTS / f"{path}_projector_first_screen.png"))
        _check(page, errors)
        assert page.evaluate(OVERFLOW_JS) == []
        assert page.evaluate(BROKEN_WORDS_JS) == []
        assert page.evaluate(OVERRUN_JS) == []
        cells = page.evaluate(FLATTENED_JS)
        assert cells["flattened"] == [], "a stacked cell shows its lines run together"
        if path in STACKED_PAGES:
            assert cells["stacked"] > 0, "no stacked comparison table found"
        expanded = page.locator('[data-testid="stSidebar"][data-collapsed="false"]').count()
        assert expanded == 0, "the sidebar stays open in presentation mode"
    finally:
        page.close()


def test_overflow_check_detects_a_wide_table(server, browser):
    """Negative control: the overflow probe finds a table wider than its box."""
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    page.set_content('<div data-testid="stTable" style="width:200px;overflow:auto">'
                     '<table><tr><td style="white-space:nowrap">' + "x" * 400 + "</td></tr></table></div>")
    try:
        assert page.evaluate(OVERFLOW_JS)
    finally:
        page.close()


assert ROOT.is_dir()
