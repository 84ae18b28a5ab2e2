"""Shared fixtures: paths to the repository, its test data and ../shared."""

from __future__ import annotations

import json
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


# The slowest modules, slowest first (measured with --durations): the two pytest-xdist workers
# take whole modules in this order (pyproject: --dist loadscope --no-loadscope-reorder), so a
# long module never starts last while the other worker sits idle. The rest keep their order.
SLOW_MODULES = ("test_browser.py", "test_browser_present.py", "test_app_pages.py", "test_deploy_nginx.py",
                "test_app_narrative.py", "test_fuzz.py", "test_lme_broad.py", "test_bootstrap.py",
                "test_datasets.py", "test_fuzz_app.py", "test_budget.py", "test_power.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(SLOW_MODULES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: order within a module kept
