"""Smoke test: the app and every page run on the built-in data with no exception or error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "pages").glob("*.py"))


def _open(page: str, **query: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
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


def test_every_page_is_registered():
    text = (ROOT / "app.py").read_text()
    for page in PAGES:
        assert f'"{page}"' in text, f"{page} is not registered in app.py"


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


@pytest.mark.slow
def test_bench_page_rerun_runs_outside_the_repository_root(tmp_path):
    """``python -m mmteach bench page_rerun_max`` from any folder where mmteach is importable
    (here a link to it), not only from the repository root that holds ui_common.py."""
    (tmp_path / "mmteach").symlink_to(ROOT / "mmteach", target_is_directory=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, "-m", "mmteach", "bench", "page_rerun_max", "--json"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "page_rerun_max" in json.loads(proc.stdout)
