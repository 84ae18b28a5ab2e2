"""The upload reader on the corpus of real-world file shapes: the same table from the app's reader and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmteach.cli import main
from mmteach.datasets import load_dataset, resolve_data
from mmteach.errors import DataError
from mmteach.reader import guess_roles, read_table

UPLOADS = Path(__file__).parent / "data" / "uploads"
EXPECTED = json.loads((UPLOADS / "expected.json").read_text())
PLAIN = read_table(UPLOADS / "01_plain_comma.csv")


def test_corpus_is_large_and_committed():
    assert len(EXPECTED) >= 30
    assert all((UPLOADS / name).is_file() for name in EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_file_reads_as_expected(name):
    exp = EXPECTED[name]
    if "error" in exp:
        with pytest.raises(DataError, match=exp["error"].replace("(", r"\(").replace(")", r"\)")):
            read_table(UPLOADS / name)
        return
    df = read_table(UPLOADS / name)
    roles = guess_roles(df)
    assert len(df) == exp["rows"]
    assert list(df.columns) == exp["columns"]
    assert (roles.group, roles.response, roles.family) == (exp["group"], exp["response"], exp["family"])


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_cli_reads_the_same_table(name, capsys):
    """resolve_data (the CLI's reader) and the upload reader give the same frame or the same words."""
    path = UPLOADS / name
    try:
        app = read_table(path.read_bytes(), name)
    except DataError as err:
        with pytest.raises(DataError) as cli_err:
            resolve_data(path)
        assert str(cli_err.value) == str(err)
        assert main(["read", str(path)]) == 2
        assert "Traceback" not in capsys.readouterr().err
        return
    pd.testing.assert_frame_equal(resolve_data(path), app)
    assert main(["read", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    roles = guess_roles(app)
    assert (out["rows"], out["columns"], out["group"], out["response"]) == (
        len(app), list(app.columns), roles.group, roles.response)


SAME_TABLE = [n for n, e in EXPECTED.items() if e.get("columns") == EXPECTED["01_plain_comma.csv"]["columns"]
              and "error" not in e]


@pytest.mark.parametrize("name", SAME_TABLE)
def test_every_shape_of_the_table_gives_the_same_numbers(name):
    df = read_table(UPLOADS / name)
    assert df["mouse"].astype(str).str.lstrip("M").tolist() == PLAIN["mouse"].str.lstrip("M").tolist()
    assert pd.api.types.is_float_dtype(df["amplitude"])
    ok = df["amplitude"].notna()
    assert ok.sum() >= len(df) - 2  # the NA-spelling files blank one or two values
    np.testing.assert_allclose(df.loc[ok, "amplitude"], PLAIN.loc[ok, "amplitude"])
    assert df["depth_um"].tolist() == PLAIN["depth_um"].tolist()


def test_cp1252_header_is_decoded():
    df = read_table(UPLOADS / "05_cp1252_micro_sign.csv")
    assert "amplitude (µV)" in df.columns
    assert "Windows (cp1252)" in df.attrs["read_notes"][0]


def test_decimal_comma_is_noted_and_parsed():
    df = read_table(UPLOADS / "06_semicolon_decimal_comma.csv")
    assert "decimal commas" in df.attrs["read_notes"]
    assert df["amplitude"].sum() == pytest.approx(PLAIN["amplitude"].sum())


def test_quoted_decimal_commas_in_a_comma_file():
    raw = b'mouse,y\n1,"2,5"\n1,"3,25"\n2,"1,0"\n2,"4,5"\n'
    assert read_table(raw, "q.csv")["y"].tolist() == [2.5, 3.25, 1.0, 4.5]


def test_builtin_roles():
    freq = guess_roles(load_dataset("ca_frequency"))
    assert (freq.response, freq.group, freq.predictors, freq.factors) == (
        "res", "midx", ("treatment_idx",), ("treatment_idx",))
    amp = guess_roles(load_dataset("ca_amplitude"))
    assert (amp.response, amp.group, amp.predictors) == ("res", "midx", ("treatment",))
    lick = guess_roles(load_dataset("water_lick"))
    assert (lick.response, lick.group, lick.family, lick.formula()) == (
        "lick", "mouseID", "binomial", "lick ~ dff + (1 | mouseID)")


def test_the_issue_file_guesses_mouse_and_amplitude():
    """mouse, cell, condition, amplitude, depth_um: not the last column as group, not mouse as predictor."""
    roles = guess_roles(PLAIN)
    assert roles.group == "mouse" and roles.response == "amplitude"
    assert "mouse" not in roles.predictors and "cell" not in roles.predictors
    assert roles.formula() == "amplitude ~ condition + depth_um + (1 | mouse)"


def test_no_animal_column_is_said_not_guessed():
    roles = guess_roles(read_table(UPLOADS / "20_no_grouping_column.csv"))
    assert roles.group is None and roles.formula() is None
    assert "choose the grouping column yourself" in roles.reasons[0]


def test_names_with_spaces_are_quoted_in_the_formula():
    roles = guess_roles(read_table(UPLOADS / "28_spaces_and_units.csv"))
    assert roles.formula().startswith("`Amplitude (dF/F)` ~ ") and roles.formula().endswith("(1 | `Mouse ID`)")


@pytest.mark.parametrize("raw", [b"\xff\xfe\x00", b"\x00\x01\x02binary", b"a\n", b",,,\n,,,\n", b'"a,b\n1,2\n',
                                 "a;b\n1;2\n".encode("utf-16"), b"sep=;\n"])
def test_odd_bytes_give_words_not_tracebacks(raw):
    try:
        df = read_table(raw, "odd.csv")
    except DataError as err:
        assert "odd.csv" in str(err) or "file" in str(err)
    else:
        assert df.shape[1] >= 2


# --- usable rows: the checks before fitting ------------------------------------------------------

from mmteach.reader import usable_rows  # noqa: E402


def test_usable_rows_refuse_with_words():
    with pytest.raises(DataError, match="Choose the grouping column"):
        usable_rows(PLAIN, "amplitude", ["condition"], None, "gaussian")
    with pytest.raises(DataError, match="it names rows, not animals"):
        usable_rows(read_table(UPLOADS / "30_row_number_first.csv"), "amplitude", ["condition"], "row", "gaussian")
    with pytest.raises(DataError, match="binomial model needs a 0/1 response"):
        usable_rows(PLAIN, "amplitude", ["condition"], "mouse", "binomial")
    raw = read_table(b"mouse;y\n1;2,5\n1;x\n2;3,5\n2;1,5\n", "c.csv")  # one text cell keeps commas
    assert raw["y"].dtype == object or pd.api.types.is_string_dtype(raw["y"])
    with pytest.raises(DataError, match="decimal comma"):
        usable_rows(raw, "y", [], "mouse", "gaussian")


def test_usable_rows_notes():
    lick = read_table(UPLOADS / "18_binary_response.csv")
    used, notes = usable_rows(lick, "lick", ["dff"], "mouseID", "gaussian")
    assert len(used) == 160 and "binomial" in notes[0]
    na = read_table(UPLOADS / "17_na_spellings.csv")
    used, notes = usable_rows(na, "amplitude", ["condition"], "mouse", "gaussian")
    assert len(used) == 70 and notes[0].startswith("2 row(s) with missing values")


def test_mangled_files_give_a_table_or_words():
    """Truncated, spliced and byte-flipped versions of the corpus: a DataFrame or a DataError, never another error."""
    rng = np.random.default_rng(12)
    sources = [(UPLOADS / n).read_bytes() for n in sorted(EXPECTED) if not n.endswith(".xlsx")]
    for i in range(120):
        raw = bytearray(sources[i % len(sources)])
        how = i % 4
        if how == 0 and raw:
            raw = raw[: int(rng.integers(0, len(raw)))]
        elif how == 1 and raw:
            for _ in range(5):
                raw[int(rng.integers(0, len(raw)))] = int(rng.integers(0, 256))
        elif how == 2:
            raw = raw + bytes(rng.choice(list(b',;\t"\n\r 0123456789.'), size=40).tolist())
        else:
            raw = raw.replace(b",", bytes([int(rng.choice(list(b';\t|" ')))]))
        try:
            df = read_table(bytes(raw), f"mangled{i}.csv")
        except DataError:
            continue
        assert df.shape[1] >= 2 and len(df) >= 2
        guess_roles(df)  # never raises on a table the reader returned


FITTABLE = [n for n, e in sorted(EXPECTED.items()) if "error" not in e and e["group"] is not None]


@pytest.mark.parametrize("name", FITTABLE)
def test_cli_fits_the_suggested_model(name, capsys):
    """The suggested formula of every readable corpus file fits from the command line (or says why)."""
    roles = guess_roles(read_table(UPLOADS / name))
    args = ["fit", str(UPLOADS / name), roles.formula(), "--json"]
    args += [a for f in roles.factors for a in ("--factor", f)]
    if roles.family == "binomial":
        args += ["--family", "binomial"]
    rc = main(args)
    out, err = capsys.readouterr()
    assert rc == 0, err
    used, _ = usable_rows(read_table(UPLOADS / name), roles.response, roles.predictors, roles.group, roles.family)
    assert json.loads(out)["n_obs"] == len(used)
