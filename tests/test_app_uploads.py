"""The upload corpus through the Your-data page: the same table, roles and refusals as the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_app_pages import YOURS, errors, open_page

from mmteach.datasets import resolve_data
from mmteach.errors import DataError
from mmteach.reader import guess_roles

UPLOADS = Path(__file__).parent / "data" / "uploads"
EXPECTED = json.loads((UPLOADS / "expected.json").read_text())


@pytest.fixture(scope="module")
def yours():
    at = open_page(YOURS)
    at.radio(key="yours.source").set_value("upload").run()
    return at


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_file_on_the_page_matches_the_cli(yours, name):
    at = yours
    at.file_uploader(key="yours_upload").set_value((name, (UPLOADS / name).read_bytes(), "text/csv")).run()
    assert not at.exception, [e.value for e in at.exception]
    try:
        cli = resolve_data(UPLOADS / name)
    except DataError as err:
        shown = errors(at)
        assert len(shown) == 1 and shown[0].endswith(str(err)), shown  # one box, ending in the CLI's words
        return
    read = [c.value for c in at.caption if c.value.startswith("Read ")]
    assert read and read[0].startswith(f"Read {len(cli):,} rows and {cli.shape[1]} columns"), read
    roles = guess_roles(cli)
    assert at.selectbox(key="yours.response").value == roles.response
    assert (at.selectbox(key="yours.group").value or None) == roles.group
    assert at.radio(key="yours.family").value == roles.family
    assert list(at.multiselect(key="yours.predictors").value) == list(roles.predictors)
    if roles.group is None:
        assert any("Choose the grouping column" in e for e in errors(at)), errors(at)
    else:
        assert not errors(at), errors(at)
        assert any("comparison table" in b.label for b in at.get("download_button")), "no comparison table"
