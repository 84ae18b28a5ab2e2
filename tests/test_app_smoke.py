"""Smoke test: the app and every page run on the built-in data with no exception or error."""

from __future__ import annotations

import ast
import os
import subprocess
import sys

import pytest
from streamlit.testing.v1 import AppTest

from conftest import ROOT


def _registered_pages() -> list[str]:
    """The page files in app.py's own PAGES list (read from its source, not run)."""
    tree = ast.parse((ROOT / "app.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "PAGES":
            return [entry[0] for entry in ast.literal_eval(node.value)]
    raise AssertionError("app.py has no PAGES list")


PAGES = _registered_pages()


def _open(page: str, **query: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=900)
    at.query_params.update(query)
    at.run()
    if page != "app.py":
        at.switch_page(page).run()
    return at


@pytest.mark.parametrize("page", ["app.py", *PAGES])
def test_page_runs_without_error(page):
    at = _open(page)
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert at.title, "every page starts with a title"


def test_every_page_file_is_registered():
    files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "pages").glob("*.py"))
    assert sorted(PAGES) == files, "app.py's PAGES and the files in pages/ differ"


def test_presentation_mode_from_url_and_toggle():
    at = _open("pages/2_frequency.py", presentation="1")
    assert at.sidebar.toggle[0].value is True
    assert any("font-size" in h.value for h in at.get("html"))
    # tables become HTML tables (they scale with the CSS), charts one per row
    assert at.table, "presentation mode shows st.table"
    assert at.query_params.get("presentation") == "1"
    at.sidebar.toggle[0].set_value(False).run()
    assert not any("font-size" in h.value for h in at.get("html"))
    assert "presentation" not in at.query_params


def test_engine_never_imports_streamlit():
    """Importing every engine module (the CLI and benchmarks included) loads no Streamlit
    and no UI module, whatever the working folder (the engine must run without the app)."""
    code = ("import importlib, pkgutil, sys, mmteach\n"
            "for m in pkgutil.iter_modules(mmteach.__path__):\n"
            "    importlib.import_module('mmteach.' + m.name)\n"
            "bad = sorted(n for n in sys.modules if n.split('.')[0] in ('streamlit', 'ui'))\n"
            "print(bad)\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "[]", proc.stdout
