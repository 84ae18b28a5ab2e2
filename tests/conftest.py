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


@pytest.fixture(scope="session")
def example1() -> pd.DataFrame:
    """Example 1 (real pCREB data) from ../shared; tests skip when it is absent."""
    path = SHARED / "data" / "example1_pcreb.csv"
    if not path.exists():
        pytest.skip(f"{path} is absent: the Example 1 checks need ../shared beside the repo")
    return pd.read_csv(path)
