"""Every result sentence of pages 2-4 agrees with the numbers in the page's own tables, in every state."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from test_app_pages import AMP, FREQ, LICK, errors, open_page, shown_table

from mmteach.narrative import p_eq

NBSP = "\u00a0"


def _plain(text: str) -> str:
    """Text as read: Markdown escapes removed, no-break spaces as spaces."""
    return re.sub(r"\\(.)", r"\1", text).replace(NBSP, " ")


def sentence(at, lead: str) -> str | None:
    """The text of the markdown or info element that opens with ``lead`` (bold), without the lead."""
    for el in [*at.markdown, *at.info]:
        value = _plain(el.value)
        if value.startswith(f"**{lead}**"):
            return value[len(lead) + 5:]
    return None


def p_of(cell: str) -> str:
    """A table's p text without its star: "4.8e-6 *" -> "4.8e-6"."""
    return _plain(cell).replace("*", "").strip()


def est_se(cell: str) -> tuple[float, float]:
    est, se = _plain(cell).split("±")
    return float(est), float(se)


def states(page: str, mice: int) -> dict[str, dict[str, str] | str]:
    zero = {f"n{m}": "0" for m in range(2, mice + 1)}
    return {"as published": {}, "balance mice": "preset", "drop mouse 2": "preset",
            "one cell": {"n1": "1", **zero}, "one mouse left": zero,
            "all dropped": {"n1": "0", **zero}}


def open_state(page: str, key: str, state: str, how) -> object:
    at = open_page(page, **(how if isinstance(how, dict) else {}))
    if how == "preset":
        at.button(key=f"{key}_preset_{state}").click().run()
        assert not at.exception
    return at


# --- frequency ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("state", "how"), list(states(FREQ, 4).items()))
def test_frequency_sentences_follow_the_table(state, how):
    at = open_state(FREQ, "freq", state, how)
    read, notice = sentence(at, "Read the table:"), sentence(at, "Notice:")
    # the title stays the same in every state, so it claims nothing about the data (which
    # mouse the pooled data follow is the notice's to say, computed)
    assert "follow" not in at.title[0].value and "mouse" not in at.title[0].value.lower()
    if state == "all dropped":
        assert read is None and notice is None and any("0 cells" in w.value for w in at.warning)
        return
    assert read is not None and notice is not None
    table = shown_table(at, "48h: p")
    if "Pooled LM" in table.index:
        p = p_of(table.loc["Pooled LM", "48h: p"])
        starred = "*" in table.loc["Pooled LM", "48h: p"]
        assert (f"calls the 48h change significant (p = {p})" in read) == starred
        assert (f"the pooled p is {p}" in read) == (not starred)
    else:
        assert "The pooled LM has no 48h estimate" in read and "replicates" not in read
    lme = [a for a in table.index if a.startswith("LME")]
    if lme:
        assert f"p = {p_of(table.loc[lme[0], '48h: p'])}" in read
    else:
        assert "No LME was fitted" in read
    mice = {a.split()[-1]: table.loc[a, "48h: p"] for a in table.index if re.fullmatch(r"Mouse \d+", a)}
    fitted = {m: "*" in p for m, p in mice.items() if p_of(p) != "–"}
    if fitted:
        said = read.split("the 48h change is significant for ")[1].split(".")[0]
        assert set(re.findall(r"\d+", said)) == {m for m, s in fitted.items() if s}
    follow = re.search(r"follow mouse (\d+): it contributes (\d+)% of the cells", notice)
    if follow:
        counts = shown_table(at, "% of cells")
        share = counts.loc[counts.index.astype(str) == follow.group(1), "% of cells"].iloc[0]
        assert round(float(share)) == int(follow.group(2))
        assert fitted.get(follow.group(1)) is True
    if state == "as published":
        assert follow and follow.group(1) == "2"
    if state in ("balance mice", "drop mouse 2"):
        assert follow is None


# --- amplitude ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("state", "how"), [(s, h) for s, h in states(AMP, 11).items() if s != "drop mouse 2"])
def test_amplitude_sentences_follow_the_tables(state, how):
    at = open_state(AMP, "amp", state, how)
    notice, read, ladder = (sentence(at, k) for k in ("Notice:", "Read the table:", "Read the ladder:"))
    if state == "all dropped":
        assert notice is None and read is None
        return
    r = pd.to_numeric(shown_table(at, "correlation")["correlation"], errors="coerce").dropna()
    if len(r):
        assert f"correlation of a cell's two values is {float(np.median(r)):.2f}" in notice
        assert "hardly cross" not in notice or "% of pairs" in notice
    else:
        assert notice.startswith("Too few cells")
    try:
        table = shown_table(at, "24h vs baseline: p")
    except AssertionError:  # no analysis could be fitted (one cell): no table, so no reading of it
        assert read is None and errors(at)
        return
    if {"Pooled LM", "Paired t-test"} <= set(table.index):
        _, se_pool = est_se(table.loc["Pooled LM", "24h vs baseline: estimate ± SE"])
        _, se_pair = est_se(table.loc["Paired t-test", "24h vs baseline: estimate ± SE"])
        m = re.search(r"SE is (\d+)% of the pooled LM's", read)
        assert m and abs(int(m.group(1)) - 100 * se_pair / se_pool) <= 1.5  # the table rounds the SEs
    lme = [a for a in table.index if a.startswith("LME")]
    assert ("No LME row" in read) == (not lme)
    if state in ("one cell", "one mouse left"):
        assert len(errors(at)) <= 1, errors(at)  # one box says why, not one per comparison
    lad = shown_table(at, "p (boundary 50:50)")
    for _, row in lad.iterrows():
        p = pd.to_numeric(pd.Series([row["p (boundary 50:50)"], row["p"]]), errors="coerce").dropna()
        if p.empty:
            assert f"{row['bigger']} vs {row['smaller']} could not be compared" in ladder
        else:
            assert f"({p_eq(p.iloc[0])})" in ladder


# --- water lick --------------------------------------------------------------------------------


@pytest.mark.parametrize(("state", "how"), [(s, h) for s, h in states(LICK, 8).items()
                                            if s in ("as published", "balance mice", "one mouse left",
                                                     "all dropped")])
def test_water_lick_sentences_follow_the_table(state, how):
    at = open_state(LICK, "lick", state, how)
    assert "drop mouse 2" not in [b.label for b in at.button]  # mouse 2 is not special here
    notice, read = sentence(at, "Notice:"), sentence(at, "Read the table:")
    if state == "all dropped":
        assert notice is None and read is None
        return
    table = shown_table(at, "odds change per 1% dF/F")
    glmm = [a for a in table.index if a.startswith("GLMM")]
    if glmm and "GEE (exchangeable)" in table.index:
        g, _ = est_se(table.loc[glmm[0], "estimate ± SE"])
        e, _ = est_se(table.loc["GEE (exchangeable)", "estimate ± SE"])
        m = re.search(r"is (\d+)% of the GLMM's", read)
        assert m and abs(int(m.group(1)) - 100 * e / g) <= 2  # the table rounds the estimates
        assert "flatter" in notice or "overlap" in notice
    else:
        assert "No GLMM row" in read and notice.startswith("No GLMM curves are drawn")
    if state == "one mouse left":
        assert len([e for e in errors(at) if "no mouse-to-mouse variation" in e]) == 1, errors(at)
    bf_line = next((_plain(m.value) for m in at.markdown if "BF10 = " in m.value), None)
    if bf_line is not None:
        bf = re.search(r"BF10 = \*\*([0-9.e+-]+)\*\*", bf_line).group(1)
        story = next(_plain(c.value) for c in at.caption if "Savage" in c.value)
        assert f"BF10 is {float(bf):#.3g}".rstrip(".") in story
    if glmm:
        assert any(c.value.startswith("One refit of both models took") for c in at.caption)


def test_agq_with_a_random_slope_switches_to_laplace():
    at = open_page(LICK, structure="random intercept + dF/F slope per mouse", method="AGQ (25 points)")
    assert not errors(at)
    assert any("uses the Laplace approximation" in c.value for c in at.caption)
    assert "GLMM (Laplace)" in shown_table(at, "odds change per 1% dF/F").index
