"""A parser for lme4 model formulas (no ``eval``).

Grammar (the subset of R's formula language that lme4, glmer and this app use)::

    formula   := response "~" rhs
    response  := NAME | "cbind(" NAME "," NAME ")" | "cbind(" NAME "," NAME "-" NAME ")"
    rhs       := item (("+" | "-") item)*
    item      := "1" | "0" | "(" random ")" | product
    random    := rterms ("|" | "||") group
    rterms    := ritem ("+" ritem)*          ritem := "1" | "0" | product
    group     := gpart ("/" gpart)*        gpart := gatom (":" gatom)*
    gatom     := NAME | "(" gpart ")"
    product   := atom ((":" | "*") atom)*
    atom      := NAME | "factor(" NAME ")" | "as.factor(" NAME ")" | "`any name`"

Only column names of the data are accepted as variables; everything else gets a
:class:`~mmteach.errors.FormulaError` that points at the offending character. Any column
name can be written between backticks (`` `amplitude (µV)` ``, `` `a+b` ``; a backtick or
backslash inside is escaped with a backslash, as R deparses it); :func:`quote_name` writes
a name so that it parses back to itself.

The work is bounded before anything is expanded: at most ``MAX_CHARS`` characters,
``MAX_DEPTH`` nested parentheses, ``MAX_STAR`` factors in one ``a*b*...`` product and
``MAX_TERMS`` expanded terms (a product of k distinct factors has 2**k - 1 terms, so it is
counted before it is built), so no formula can take the server's time or memory.

Examples
--------
>>> f = parse_formula("res ~ treatment_idx + (1|midx)", ["res", "treatment_idx", "midx"])
>>> [t.label for t in f.fixed], [r.label for r in f.random]
(['treatment_idx'], ['1 | midx'])
>>> parse_formula("y ~ x + (1|g/h)", ["y", "x", "g", "h"]).random_labels()
['1 | g', '1 | h:g']
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from mmteach.errors import FormulaError

# Limits on the work one formula may ask for (see the module docstring).
MAX_CHARS = 2000
MAX_DEPTH = 20
MAX_STAR = 10
MAX_TERMS = 256

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<bq>`(?:[^`\\]|\\.)*`)
  | (?P<name>(?:[^\W\d]|\.)[\w.]*)
  | (?P<number>\d+(?:\.\d*)?)
  | (?P<op>\|\||[~+\-*:/|(),^])
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class Token:
    kind: str  # "name", "number", "op", "end"
    text: str
    pos: int


def tokenize(text: str) -> list[Token]:
    """Split a formula into tokens; unknown characters raise FormulaError."""
    tokens: list[Token] = []
    pos = 0
    depth = 0
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if m is None:
            char = repr(text[pos]) if text[pos].isprintable() else \
                f"'?' (an invisible character, Unicode U+{ord(text[pos]):04X})"
            raise FormulaError(
                f"The character {char} cannot appear in a model formula. Use column "
                "names, +, :, *, /, |, parentheses, 1 and 0 (and cbind(...) on the left).",
                text,
                pos,
            )
        kind = m.lastgroup or ""
        if kind != "ws":
            value = m.group()
            if kind == "bq":
                kind, value = "name", re.sub(r"\\(.)", r"\1", value[1:-1])
                if not value:
                    raise FormulaError("Empty backticks `` name no column; put the column's name "
                                       "between them, e.g. `amplitude (µV)`.", text, pos)
            elif kind == "op" and value == "(":
                depth += 1
                if depth > MAX_DEPTH:
                    raise FormulaError(
                        f"The formula nests parentheses more than {MAX_DEPTH} deep. A model "
                        "formula needs one level for a random term such as (1 | mouse); remove "
                        "the extra parentheses.", text, pos)
            elif kind == "op" and value == ")":
                depth -= 1
            tokens.append(Token(kind, value, pos))
        pos = m.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


# R's reserved words cannot be bare names in a formula.
_RESERVED = frozenset(
    "if else repeat while function for next break TRUE FALSE NULL Inf NaN NA NA_integer_ "
    "NA_real_ NA_character_ NA_complex_ in".split()
)
_SYNTACTIC_RE = re.compile(r"(?:[A-Za-z]|\.(?![0-9]))[A-Za-z0-9._]*\Z")


def quote_name(name: str) -> str:
    """A column name as it must be written in a formula: bare if R would accept it, else in
    backticks (with backticks and backslashes inside escaped), so it parses back to itself.

    Examples
    --------
    >>> [quote_name(n) for n in ["res", "a+b", "amplitude (µV)", "2nd", "if", "x`y"]]
    ['res', '`a+b`', '`amplitude (µV)`', '`2nd`', '`if`', '`x\\\\`y`']
    """
    name = str(name)
    if _SYNTACTIC_RE.match(name) and name not in _RESERVED:
        return name
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def printable(text: str) -> str:
    """``text`` with invisible and control characters written as their code points, so a
    message never carries a NUL or a bidi override into the page.

    >>> printable("r" + chr(0) + "es")
    'r<U+0000>es'
    """
    return "".join(ch if ch.isprintable() else f"<U+{ord(ch):04X}>" for ch in text)


@dataclass(frozen=True)
class Variable:
    """A variable in a term; ``as_factor`` when written as factor(x) or as.factor(x)."""

    name: str
    as_factor: bool = False
    pos: int = 0

    @property
    def label(self) -> str:
        name = quote_name(self.name)
        return f"factor({name})" if self.as_factor else name


@dataclass(frozen=True)
class Term:
    """A fixed-effect term: one variable or an interaction (a:b)."""

    variables: tuple[Variable, ...]

    @property
    def label(self) -> str:
        return ":".join(v.label for v in self.variables)

    def key(self) -> frozenset[tuple[str, bool]]:
        return frozenset((v.name, v.as_factor) for v in self.variables)


@dataclass(frozen=True)
class RandomTerm:
    """One lme4 random-effects term ``(terms | group)``.

    ``group`` is a tuple of column names whose interaction is the grouping factor
    (``("midx",)`` or ``("cidx", "midx")`` for ``cidx:midx``).
    """

    terms: tuple[Term, ...]
    intercept: bool
    group: tuple[str, ...]
    pos: int = 0
    nested_label: str = ""  # lme4's name when it differs from "c:b:a", e.g. "c:(b:a)"

    @property
    def group_label(self) -> str:
        return self.nested_label or ":".join(quote_name(g) for g in self.group)

    @property
    def label(self) -> str:
        parts = ["1" if self.intercept else "0"] + [t.label for t in self.terms]
        if self.intercept and self.terms:
            parts = parts[1:]
        return f"{' + '.join(parts)} | {self.group_label}"


@dataclass(frozen=True)
class Response:
    """The left-hand side: a column, or cbind(successes, failures | total - successes)."""

    kind: str  # "column" or "cbind"
    name: str  # the column (or the successes column for cbind)
    failures: str | None = None  # cbind(s, f)
    total: str | None = None  # cbind(s, n - s)

    @property
    def label(self) -> str:
        name = quote_name(self.name)
        if self.kind == "column":
            return name
        second = quote_name(self.failures) if self.failures else f"{quote_name(self.total or '')} - {name}"
        return f"cbind({name}, {second})"

    def columns(self) -> tuple[str, ...]:
        return tuple(c for c in (self.name, self.failures, self.total) if c)


@dataclass(frozen=True)
class Formula:
    """A parsed model formula."""

    text: str
    response: Response
    fixed: tuple[Term, ...]
    intercept: bool
    random: tuple[RandomTerm, ...] = field(default=())

    @property
    def has_random(self) -> bool:
        return bool(self.random)

    def random_labels(self) -> list[str]:
        return [r.label for r in self.random]

    def variables(self) -> list[str]:
        """Every column the formula uses, in order of appearance, without repeats."""
        names: list[str] = list(self.response.columns())
        for t in self.fixed:
            names += [v.name for v in t.variables]
        for r in self.random:
            for t in r.terms:
                names += [v.name for v in t.variables]
            names += list(r.group)
        return list(dict.fromkeys(names))

    def grouping_columns(self) -> list[str]:
        return list(dict.fromkeys(g for r in self.random for g in r.group))

    def fixed_rhs(self) -> str:
        """The fixed part of the right-hand side as R would print it."""
        parts = [t.label for t in self.fixed]
        if not self.intercept:
            parts = ["0"] + parts
        return " + ".join(parts) if parts else "1"

    def to_r(self) -> str:
        """The formula in canonical lme4 syntax."""
        rhs = self.fixed_rhs()
        for r in self.random:
            rhs += f" + ({r.label})"
        return f"{self.response.label} ~ {rhs}"

    def without_random(self) -> Formula:
        """The same fixed part with no random terms (the pooled model)."""
        return Formula(self.text, self.response, self.fixed, self.intercept, ())


class _Parser:
    def __init__(self, text: str, columns: Sequence[str] | None) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.columns = None if columns is None else list(columns)

    # -- helpers -------------------------------------------------------------------------
    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def error(self, message: str, pos: int | None = None) -> FormulaError:
        return FormulaError(message, self.text, self.tok.pos if pos is None else pos)

    def accept(self, text: str) -> Token | None:
        if self.tok.kind == "op" and self.tok.text == text:
            tok = self.tok
            self.i += 1
            return tok
        return None

    def expect(self, text: str, what: str) -> Token:
        tok = self.accept(text)
        if tok is None:
            found = self.tok.text or "the end of the formula"
            raise self.error(f"Expected {what} here but found {found!r}.")
        return tok

    def column(self, tok: Token) -> str:
        if self.columns is not None and tok.text not in self.columns:
            close = _close_matches(tok.text, self.columns)
            hint = f" Did you mean {close}?" if close else ""
            shown = ", ".join(printable(quote_name(c)) for c in self.columns[:20])
            if len(self.columns) > 20:
                shown += f" and {len(self.columns) - 20} more"
            raise FormulaError(
                f"{printable(quote_name(tok.text))} is not a column of the data.{hint} Available columns: "
                f"{shown}.",
                self.text,
                tok.pos,
            )
        return tok.text

    def name(self, what: str) -> Token:
        tok = self.tok
        if tok.kind != "name":
            found = tok.text or "the end of the formula"
            raise self.error(f"Expected {what} (a column name) but found {found!r}.")
        self.i += 1
        return tok

    # -- grammar -------------------------------------------------------------------------
    def parse(self) -> Formula:
        if self.tok.kind == "op" and self.tok.text == "~":
            raise self.error("The formula needs a response on the left of '~', e.g. 'res ~ ...'.")
        response = self.response()
        self.expect("~", "'~' between the response and the predictors")
        fixed: list[Term] = []
        random: list[RandomTerm] = []
        intercept = True
        sign = "+"
        while True:
            if self.tok.kind == "end":
                if not fixed and not random:
                    raise self.error("The right-hand side of '~' is empty; write at least '1'.")
                break
            tok = self.tok
            if tok.kind == "number":
                self.i += 1
                if tok.text in ("1", "0"):
                    keep = (tok.text == "1") == (sign == "+")
                    intercept = keep
                else:
                    raise self.error(
                        f"A number ({tok.text}) can only be 1 or 0 here (intercept on or off).",
                        tok.pos,
                    )
            elif tok.kind == "op" and tok.text == "(":
                if sign == "-":
                    raise self.error("Random-effect terms cannot be removed with '-'.")
                random += self.random_term()
            elif tok.kind == "op" and tok.text == ".":
                raise self.error("'.' (all other columns) is not supported; name the columns.")
            else:
                terms = self.product()
                if sign == "+":
                    for t in terms:
                        if t.key() not in {f.key() for f in fixed}:
                            fixed.append(t)
                else:
                    keys = {t.key() for t in terms}
                    fixed = [f for f in fixed if f.key() not in keys]
            if self.tok.kind == "end":
                break
            if self.accept("+"):
                sign = "+"
            elif self.accept("-"):
                sign = "-"
            else:
                raise self.error(
                    f"Expected '+' between terms but found {self.tok.text!r}. Terms are joined "
                    "with '+', interactions written a:b or a*b."
                )
            if self.tok.kind == "end":
                raise self.error(f"The formula ends with '{sign}': a term is missing after it.")
        as_response = frozenset({(response.name, False)})
        if response.kind == "column" and any(t.key() == as_response for t in fixed):
            raise self.error(f"The response {response.name!r} cannot also be a predictor.", 0)
        # R orders terms by interaction order (main effects first), stably.
        fixed.sort(key=lambda t: len(t.variables))
        return Formula(self.text, response, tuple(fixed), intercept, tuple(random))

    def response(self) -> Response:
        tok = self.name("the response")
        if tok.text == "cbind" and self.accept("("):
            s = self.column(self.name("the successes column in cbind(successes, failures)"))
            self.expect(",", "',' in cbind(successes, failures)")
            second = self.name("the failures column, or 'total - successes'")
            if self.accept("-"):
                again = self.name("the successes column after '-'")
                if again.text != s:
                    raise self.error(
                        f"In cbind(s, n - s) the column after '-' must be the successes column {s!r}.",
                        again.pos,
                    )
                self.expect(")", "')' to close cbind(...)")
                return Response("cbind", s, total=self.column(second))
            self.expect(")", "')' to close cbind(...)")
            return Response("cbind", s, failures=self.column(second))
        if self.tok.kind == "op" and self.tok.text == "(":
            raise self.error(
                f"Functions of the response such as {tok.text}(...) are not supported; make a "
                "new column instead (e.g. a log-transformed one) and use its name."
            )
        return Response("column", self.column(tok))

    def atom(self) -> Variable:
        tok = self.name("a predictor")
        if tok.text in ("factor", "as.factor") and self.accept("("):
            inner = self.name("a column inside factor(...)")
            self.expect(")", "')' to close factor(...)")
            return Variable(self.column(inner), True, inner.pos)
        if self.tok.kind == "op" and self.tok.text == "(":
            raise self.error(
                f"The function {tok.text}(...) is not supported in formulas (only factor()). "
                "Transform the column in your data instead.",
                tok.pos,
            )
        if self.tok.kind == "op" and self.tok.text == "^":
            raise self.error("'^' (powers of terms) is not supported; write the interactions out.")
        return Variable(self.column(tok), False, tok.pos)

    def product(self) -> list[Term]:
        """atom (':' | '*' atom)*, expanded: a*b -> a, b, a:b.

        The number of terms is known before any is built (2**k - 1 for k distinct factors),
        so a long product is refused at once; the expansion then costs time linear in the
        terms it writes.
        """
        start = self.tok.pos
        groups: list[list[Variable]] = [[self.atom()]]  # factors of a '*' product
        while True:
            if self.accept(":"):
                groups[-1].append(self.atom())
            elif self.accept("*"):
                groups.append([self.atom()])
                if len(groups) > MAX_STAR:
                    raise self.error(
                        f"This product multiplies more than {MAX_STAR} terms with '*'. a*b*c "
                        "stands for every main effect and every interaction among them "
                        "(2^k - 1 terms for k factors), far more than any experiment can "
                        "estimate. Write the few interactions you mean with ':' instead, "
                        "e.g. a + b + a:b.", start)
            else:
                break
        # x*x is x: repeated factors add no terms (as in R), so they are merged first.
        unique: list[tuple[Variable, ...]] = []
        seen_factors: set[frozenset[tuple[str, bool]]] = set()
        for g in groups:
            vs = _unique_vars(g)  # x:x is x
            key = frozenset((v.name, v.as_factor) for v in vs)
            if key not in seen_factors:
                seen_factors.add(key)
                unique.append(vs)
        n = len(unique)
        if 2**n - 1 > MAX_TERMS:
            raise self.error(
                f"This product expands to {2**n - 1} terms, more than the {MAX_TERMS} a model "
                "here may have. Write the interactions you mean with ':'.", start)
        # Expand a*b*c into all non-empty sub-products, main effects first.
        terms: list[Term] = []
        done: set[frozenset[tuple[str, bool]]] = set()
        for size in range(1, n + 1):
            for subset in itertools.combinations(range(n), size):
                term = Term(_unique_vars([v for j in subset for v in unique[j]]))
                if term.key() not in done:
                    done.add(term.key())
                    terms.append(term)
        return terms

    def random_term(self) -> list[RandomTerm]:
        open_tok = self.expect("(", "'('")
        intercept = True
        terms: list[Term] = []
        while True:
            tok = self.tok
            if tok.kind == "number":
                self.i += 1
                if tok.text not in ("0", "1"):
                    raise self.error("Only 1 or 0 can stand as a number in a random term.", tok.pos)
                intercept = tok.text == "1"
            elif tok.kind == "name":
                for t in self.product():
                    if t.key() not in {u.key() for u in terms}:
                        terms.append(t)
            else:
                raise self.error(
                    "A random-effect term looks like (1 | mouse) or (1 + x | mouse): expected "
                    f"1, 0 or a column before '|' but found {tok.text or 'the end'!r}."
                )
            if self.accept("+"):
                continue
            if self.accept("-"):
                tok = self.tok
                if tok.kind == "number" and tok.text == "1":
                    self.i += 1
                    intercept = False
                    if self.accept("+"):
                        continue
                else:
                    raise self.error("Inside a random term only '- 1' can be subtracted.")
            break
        if self.accept("||"):
            double = True
        elif self.accept("|"):
            double = False
        else:
            raise self.error(
                "A parenthesis on the right of '~' must be a random-effect term with '|', e.g. "
                "(1 | midx). Expected '|' here."
            )
        group = self.group()
        close = self.accept(")")
        if close is None:
            raise self.error(
                "Expected ')' to close the random-effect term that opens here.", open_tok.pos
            )
        if not intercept and not terms:
            raise self.error("This random term has no effects: (0 | g) is empty.", open_tok.pos)
        out: list[RandomTerm] = []
        for g, glabel in group:
            nl = glabel if glabel != ":".join(quote_name(n) for n in g) else ""
            if double:
                # (1 + x || g) == (1 | g) + (0 + x | g): uncorrelated effects. As in lme4, a
                # factor x keeps one indicator per level in (0 + x | g), all correlated.
                if intercept:
                    out.append(RandomTerm((), True, g, open_tok.pos, nl))
                out += [RandomTerm((t,), False, g, open_tok.pos, nl) for t in terms]
            else:
                out.append(RandomTerm(tuple(terms), intercept, g, open_tok.pos, nl))
        return out

    def group(self) -> list[tuple[tuple[str, ...], str]]:
        """gpart ("/" gpart)*; g/h expands to g and h:g as lme4 does.

        Returns (columns, label) per grouping factor; lme4 names the factors of a/b/c
        "a", "b:a" and "c:(b:a)" (R's deparse of its nested interaction calls), and a name
        written with parentheses, such as c:(b:a), is read back as the same factor.
        """
        first = self.tok
        if first.kind == "name" and first.text in ("factor", "as.factor") and \
                self.tokens[self.i + 1].text == "(":
            raise self.error("Grouping columns are always treated as factors; drop factor(...).")
        chain: list[tuple[list[str], str]] = [self.group_part()]
        while self.accept("/"):
            chain.append(self.group_part())
        # a/b/c -> a, b:a, c:b:a; lme4 names the nested factor "b:a" (inner first) and the
        # next one "c:(b:a)".
        groups: list[tuple[tuple[str, ...], str]] = []
        acc: list[str] = []
        label = ""
        for names, here in chain:
            if not acc:
                label = here
            else:
                label = f"{here}:({label})" if ":" in label else f"{here}:{label}"
            acc = names + acc
            groups.append((tuple(acc), label))
        return groups

    def group_part(self) -> tuple[list[str], str]:
        """gatom (":" gatom)*, gatom := NAME | "(" gatom (":" gatom)* ")"."""
        names: list[str] = []
        labels: list[str] = []
        while True:
            if self.tok.kind == "op" and self.tok.text == "(":
                open_tok = self.tok
                self.i += 1
                inner, label = self.group_part()
                if self.accept(")") is None:
                    raise self.error("Expected ')' to close the grouping factor that opens here.",
                                     open_tok.pos)
                names += inner
                labels.append(f"({label})")
            else:
                names.append(self.column(self.name("the grouping column after '|'")))
                labels.append(quote_name(names[-1]))
            if not self.accept(":"):
                break
        return names, ":".join(labels)


def _unique_vars(variables: Sequence[Variable]) -> tuple[Variable, ...]:
    """The variables of a term without repeats (x and factor(x) are different variables)."""
    seen: set[tuple[str, bool]] = set()
    out = []
    for v in variables:
        if (v.name, v.as_factor) not in seen:
            seen.add((v.name, v.as_factor))
            out.append(v)
    return tuple(out)


def _close_matches(word: str, options: Iterable[str]) -> str:
    import difflib

    found = difflib.get_close_matches(word, list(options), n=2, cutoff=0.6)
    if not found:
        lower = {o.lower(): o for o in options}
        if word.lower() in lower:
            found = [lower[word.lower()]]
    return " or ".join(repr(f) for f in found)


def parse_formula(text: str, columns: Sequence[str] | None = None) -> Formula:
    """Parse an lme4 formula.

    Parameters
    ----------
    text : str
        The formula, e.g. ``"res ~ treatment_idx + (1 | midx)"``.
    columns : sequence of str, optional
        The data's column names. When given, every variable must be one of them.

    Returns
    -------
    Formula

    Raises
    ------
    FormulaError
        With a message pointing at the offending part.

    Examples
    --------
    >>> f = parse_formula("cbind(s, n - s) ~ period + (1 | herd)", ["s", "n", "period", "herd"])
    >>> f.response.label, f.to_r()
    ('cbind(s, n - s)', 'cbind(s, n - s) ~ period + (1 | herd)')
    """
    if not isinstance(text, str) or not text.strip():
        raise FormulaError("The formula is empty. Write one like 'res ~ treatment + (1 | mouse)'.")
    if len(text) > MAX_CHARS:
        raise FormulaError(
            f"The formula is {len(text):,} characters long; a model formula here may have at most "
            f"{MAX_CHARS:,}. Name the few predictors you mean (long column names can be shortened "
            "in the file).")
    if "~" not in text:
        raise FormulaError(
            "A formula needs '~' between the response and the predictors, e.g. "
            "'res ~ treatment + (1 | mouse)'.",
            text,
            len(text),
        )
    return _parse(text, None if columns is None else tuple(columns))


@lru_cache(maxsize=256)
def _parse(text: str, columns: tuple[str, ...] | None) -> Formula:
    # a Formula is immutable: the app and the benchmarks refit the same few formulas, whose
    # parse cost 0.15-0.2 ms a fit (errors are raised anew each time, not cached)
    return _Parser(text, columns).parse()
