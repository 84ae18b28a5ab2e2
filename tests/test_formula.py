"""The lme4 formula parser: structures, expansions and teaching errors."""

from __future__ import annotations

import pytest

from mmteach.errors import FormulaError
from mmteach.formula import parse_formula

COLS = ["res", "treatment_idx", "midx", "cidx", "treatment", "x", "z", "g", "h", "s", "f", "n", "Days", "Subject"]


@pytest.mark.parametrize(
    ("text", "fixed", "random"),
    [
        ("res ~ treatment_idx + (1|midx)", ["treatment_idx"], [("midx", (), True)]),
        ("res ~ x + factor(z)", ["x", "factor(z)"], []),
        ("res ~ x + (1|g/h)", ["x"], [("g", (), True), ("h:g", (), True)]),
        ("res ~ x + (1|g) + (1|h)", ["x"], [("g", (), True), ("h", (), True)]),
        ("res ~ x + (x|g)", ["x"], [("g", ("x",), True)]),
        ("res ~ x + (1 + x|g)", ["x"], [("g", ("x",), True)]),
        ("res ~ x + (0 + x|g)", ["x"], [("g", ("x",), False)]),
        ("res ~ x + (1|g) + (0 + x|g)", ["x"], [("g", (), True), ("g", ("x",), False)]),
        ("res ~ x + (x||g)", ["x"], [("g", (), True), ("g", ("x",), False)]),
        ("res ~ treatment + (1|midx) + (treatment|cidx)", ["treatment"],
         [("midx", (), True), ("cidx", ("treatment",), True)]),
        ("res ~ x*z", ["x", "z", "x:z"], []),
        ("res ~ x:z + x", ["x", "x:z"], []),
        ("res ~ x - 1", ["x"], []),
        ("res ~ `x`", ["x"], []),
    ],
)
def test_structures(text: str, fixed: list[str], random: list[tuple]) -> None:
    f = parse_formula(text, COLS)
    assert [t.label for t in f.fixed] == fixed
    assert [(r.group_label, tuple(t.label for t in r.terms), r.intercept) for r in f.random] == random


def test_intercept_flags() -> None:
    assert parse_formula("res ~ x", COLS).intercept
    assert not parse_formula("res ~ 0 + x", COLS).intercept
    assert not parse_formula("res ~ x - 1", COLS).intercept


@pytest.mark.parametrize(
    ("text", "kind", "second"),
    [("cbind(s, f) ~ x + (1|g)", "failures", "f"), ("cbind(s, n - s) ~ x + (1|g)", "total", "n")],
)
def test_cbind(text: str, kind: str, second: str) -> None:
    r = parse_formula(text, COLS).response
    assert r.kind == "cbind" and r.name == "s" and getattr(r, kind) == second


def test_round_trip_to_r() -> None:
    f = parse_formula("res~treatment_idx+(1|midx/cidx)", COLS)
    assert f.to_r() == "res ~ treatment_idx + (1 | midx) + (1 | cidx:midx)"
    assert parse_formula(f.to_r(), COLS).to_r() == f.to_r()


@pytest.mark.parametrize(
    ("text", "needle", "position"),
    [
        ("res ~ treatmnt_idx", "not a column", 6),
        ("res ~ x +", "ends with '+'", 9),
        ("res ~ x + (1|g", "close the random-effect term", 10),
        ("res ~ log(x)", "not supported", 6),
        ("res ~ x; import os", "cannot appear", 7),
        ("res ~ __import__('os')", "cannot appear", 17),
        ("res ~ x + (1 g)", "Expected", 13),
        ("cbind(s, n - f) ~ x", "successes column", 13),
        ("~ x", "response", 0),
        ("res x", "'~'", 5),
        ("res ~ 2", "1 or 0", 6),
    ],
)
def test_errors_point_at_the_problem(text: str, needle: str, position: int) -> None:
    with pytest.raises(FormulaError) as info:
        parse_formula(text, COLS)
    assert needle in str(info.value)
    assert info.value.position == position


def test_suggests_close_column_names() -> None:
    with pytest.raises(FormulaError, match="Did you mean 'treatment_idx'"):
        parse_formula("res ~ treatment_id", COLS)


def test_variables_and_grouping_columns() -> None:
    f = parse_formula("cbind(s, n - s) ~ x + (x|g/h)", COLS)
    assert f.variables() == ["s", "n", "x", "g", "h"]
    assert f.grouping_columns() == ["g", "h"]
