"""Shared fixtures: paths to the repository, its test data and ../shared."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
REFERENCE = ROOT / "tests" / "reference"
DATA = ROOT / "tests" / "data"


def load_reference(name: str) -> dict:
    """The JSON written by tests/r/reference_<name>.R."""
    return json.loads((REFERENCE / f"{name}.json").read_text())


EXAMPLE1 = SHARED / "data" / "example1_pcreb.csv"


def load_case_data(data_file: str, subset: str | None = None) -> pd.DataFrame:
    """The data of an R reference case: a file in tests/data, or "EXAMPLE1" (../shared),
    skipping the test with the reason when ../shared is absent; ``subset`` is a query."""
    if data_file == "EXAMPLE1":
        if not EXAMPLE1.exists():
            pytest.skip(f"{EXAMPLE1} is absent: the Example 1 checks need ../shared beside the repo")
        d = pd.read_csv(EXAMPLE1)
    else:
        d = pd.read_csv(DATA / data_file)
    return d.query(subset).reset_index(drop=True) if subset else d


def case_factors(case: dict) -> list[str]:
    """The ``factors`` of a reference case (jsonlite writes a one-element list as a string)."""
    f = case.get("factors") or []
    return [f] if isinstance(f, str) else list(f)


@pytest.fixture(scope="session")
def example1() -> pd.DataFrame:
    """Example 1 (real pCREB data) from ../shared; tests skip when it is absent."""
    path = EXAMPLE1
    if not path.exists():
        pytest.skip(f"{path} is absent: the Example 1 checks need ../shared beside the repo")
    return pd.read_csv(path)


# How the two pytest-xdist workers share the work (pyproject: -n 2 --dist loadscope
# --no-loadscope-reorder; the scheduler below): each group below, and every other module, goes
# whole to one worker (module-scoped AppTest sessions, servers and browsers are made once, and
# tests that build on an earlier test's session stay in order), groups and slow modules first
# (measured with --durations), so none starts last while the other worker sits idle.
# - "browser": the two real-browser modules share one streamlit server (app_server below);
# - "apptest": the AppTest page modules share the fits and figures of ui.compute's cache,
#   which lives in the worker's process, as they did when the suite ran in one process.
GROUPS = {"test_browser.py": "browser", "test_browser_present.py": "browser",
          **dict.fromkeys(("test_app_pages.py", "test_app_narrative.py", "test_fuzz_app.py", "test_app_uploads.py",
                           "test_app_smoke.py", "test_simulate_page.py", "test_pooling_view.py",
                           "test_design_page.py"), "apptest")}
SLOW_MODULES = ("test_browser.py", "test_browser_present.py", "test_app_pages.py", "test_app_narrative.py",
                "test_fuzz_app.py", "test_app_uploads.py", "test_app_smoke.py", "test_simulate_page.py",
                "test_pooling_view.py", "test_design_page.py", "test_deploy_nginx.py", "test_fuzz.py",
                "test_lme_broad.py", "test_bootstrap.py", "test_power.py", "test_reader.py", "test_datasets.py",
                "test_budget.py")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """xdist's loadscope with GROUPS as scopes (its own xdist_group marks do not reach the
    scheduler under pytest 9: xdist 3.8 renames items through an attribute pytest 9 no
    longer reads)."""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ModuleGroups(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return GROUPS.get(path.rsplit("/", 1)[-1], path)

    return ModuleGroups(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(SLOW_MODULES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: order within a module kept


# --- the app server of the browser tests ------------------------------------------------------
# tests/test_browser.py and tests/test_browser_present.py run on one `streamlit run app.py`
# (one xdist group, see above): the projector checks find the fits and figures the first module
# computed, and the server stops after the last browser test, not at the end of the session.
BROWSER_MODULES = ("test_browser.py", "test_browser_present.py")
_APP_SERVER: dict[str, object] = {}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def app_server(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The URL of the browser tests' streamlit server, started at the first call."""
    if "url" in _APP_SERVER:
        return _APP_SERVER["url"]
    port = _free_port()
    env = {**os.environ, "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    log = tmp_path_factory.mktemp("app_server") / "stderr.log"  # a file: a pipe nobody reads can fill
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"),
             "--server.port", str(port), "--server.address", "127.0.0.1",
             "--server.headless", "true", "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err,
        )
    _APP_SERVER["proc"] = proc
    url = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.5)
    else:
        stop_app_server()
        pytest.fail("streamlit did not start within 60 s")
    _APP_SERVER["url"] = url
    return url


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The browser tests' app server (defined here, not in a test module: the hooks below
    and the fixture must see one ``_APP_SERVER``; a test module's ``from conftest import``
    loads a second copy of this file)."""
    return app_server(tmp_path_factory)


def stop_app_server() -> None:
    proc = _APP_SERVER.pop("proc", None)
    _APP_SERVER.pop("url", None)
    if proc is not None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    if item.path.name in BROWSER_MODULES and (nextitem is None or nextitem.path.name not in BROWSER_MODULES):
        stop_app_server()


def pytest_sessionfinish() -> None:
    stop_app_server()


@pytest.fixture(autouse=True)
def _pandas_text_storage():
    """An app test runs app.py, which keeps text as Python strings for the whole process
    (ui.pool_worker.use_python_strings): put pandas' default back after each test, so that every
    other test sees it whatever ran before (a joblib worker, say, always starts with it).
    The default, not the value before the test: a module-scoped fixture may run app.py first."""
    yield
    pd.reset_option("mode.string_storage")
