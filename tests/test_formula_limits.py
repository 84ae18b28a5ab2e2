"""Formula limits, backtick quoting and property-based tests of the parser (issue 15)."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmteach.errors import FormulaError
from mmteach.formula import MAX_CHARS, MAX_DEPTH, parse_formula, quote_name

COLS = ["y", "x", "g", "h"] + [f"x{i}" for i in range(40)]


def _refused(text: str, columns: list[str] = COLS) -> tuple[str, float]:
    t0 = time.perf_counter()
    with pytest.raises(FormulaError) as info:
        parse_formula(text, columns)
    return str(info.value), time.perf_counter() - t0


@pytest.mark.parametrize("text", ["y ~ " + "*".join(["x"] * 30),
                                  "y ~ " + "*".join(f"x{i}" for i in range(30)),
                                  "y ~ x + (" + "*".join(f"x{i}" for i in range(30)) + " | g)"])
def test_long_products_refused_at_once(text: str) -> None:
    # before: 18 factors took 4.7 s and 85 MB, 20 factors 41 s (the expansion was built first)
    message, seconds = _refused(text)
    assert seconds < 0.1 and "more than" in message and len(message) < 600


def test_product_expansion_is_counted_before_it_is_built() -> None:
    message, seconds = _refused("y ~ " + "*".join(f"x{i}" for i in range(9)))
    assert "511 terms" in message and seconds < 0.1
    f = parse_formula("y ~ " + "*".join(f"x{i}" for i in range(8)), COLS)
    assert len(f.fixed) == 255 and f.fixed[-1].label == ":".join(f"x{i}" for i in range(8))


def test_repeated_factors_merge_as_in_r() -> None:
    assert [t.label for t in parse_formula("y ~ x*x*g", COLS).fixed] == ["x", "g", "x:g"]
    assert [t.label for t in parse_formula("y ~ x:x", COLS).fixed] == ["x"]


def test_deep_nesting_is_a_formula_error_not_a_recursion_error() -> None:
    # before: 1,000 nested parentheses raised RecursionError (a traceback in the app and CLI)
    for text in ["y ~ " + "(" * 500 + "x" + ")" * 500,
                 "y ~ x + (1 | " + "(" * 900 + "g" + ")" * 900 + ")",
                 "y ~ x + (1 | " + "(" * (MAX_DEPTH + 1) + "g" + ")" * (MAX_DEPTH + 1) + ")"]:
        message, _ = _refused(text)
        assert "parenthes" in message


def test_long_formula_message_is_short() -> None:
    # before: a 100 kB formula gave a ~200 kB message repeating it with a caret line
    message, _ = _refused("y ~ " + "x + " * 30_000 + "x")
    assert f"{MAX_CHARS:,}" in message and len(message) < 300
    message, _ = _refused("y ~ x + " + "x + " * 400 + "nope")
    assert len(message) < 600 and "nope" in message and "..." in message


def test_unknown_column_lists_only_some_columns() -> None:
    cols = ["y"] + [f"c{i}" for i in range(5000)]
    message, _ = _refused("y ~ zz", cols)
    assert "4981 more" in message and len(message) < 800


@pytest.mark.parametrize("name", ["a+b", "amplitude (µV)", "(1|x)", "y~", "2nd", "if", "x`y",
                                  "back\\slash", "**bold** [click](http://e.invalid)", "mouse id",
                                  "é", "a:b", "..1"])
def test_any_column_name_round_trips_through_quote_name(name: str) -> None:
    cols = [name, "resp", "grp"]
    text = f"resp ~ {quote_name(name)} + (1 | grp)"
    f = parse_formula(text, cols)
    assert f.variables() == ["resp", name, "grp"]
    assert parse_formula(f.to_r(), cols).to_r() == f.to_r()
    g = parse_formula(f"{quote_name(name)} ~ resp + (1 | {quote_name(name)}:grp)", cols)
    assert g.response.name == name and g.random[0].group == (name, "grp")


def test_empty_backticks_refused() -> None:
    message, _ = _refused("y ~ `` + x")
    assert "Empty backticks" in message


_names = st.text(min_size=1, max_size=12)


@settings(max_examples=150, deadline=None)
@given(st.lists(_names, min_size=3, max_size=6, unique=True))
def test_property_quoted_names_parse_back(names: list[str]) -> None:
    resp, *preds, grp = names
    text = f"{quote_name(resp)} ~ {' + '.join(quote_name(p) for p in preds)} + (1 | {quote_name(grp)})"
    f = parse_formula(text, names)
    assert f.response.name == resp and [t.variables[0].name for t in f.fixed] == preds
    assert f.grouping_columns() == [grp]
    assert parse_formula(f.to_r(), names).to_r() == f.to_r()


_alphabet = st.sampled_from(list("xyg~+-*:/|()01 `^,.\\é") + ["||", "factor(", "cbind("])


@settings(max_examples=250, deadline=None)
@given(st.lists(_alphabet, max_size=60).map("".join))
def test_property_any_text_parses_or_is_a_formula_error(text: str) -> None:
    t0 = time.perf_counter()
    try:
        f = parse_formula(text, ["x", "y", "g"])
    except FormulaError as err:
        assert "Traceback" not in str(err) and len(str(err)) < 1000
    else:
        assert parse_formula(f.to_r(), ["x", "y", "g"]).to_r() == f.to_r()
    assert time.perf_counter() - t0 < 0.5


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 8), st.integers(0, 2))
def test_property_product_has_2k_minus_1_terms(k: int, repeats: int) -> None:
    factors = [f"x{i}" for i in range(k)]
    written = (factors + factors[:repeats])[:10]
    f = parse_formula("y ~ " + "*".join(written), COLS)
    assert len(f.fixed) == 2 ** len(set(written)) - 1
