"""Sentences the pages state about results, computed from the fitted numbers on screen (never literal claims)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from mmteach.tables import fmt_p as _fmt_p
from mmteach.tables import is_missing

ALPHA = 0.05
BOOK_BF10 = 5.02  # the Bayes factor the book reports for its original water-lick data


def p_text(p: float) -> str:
    """A p-value as the tables print it, without the star ("0.33", "4.8e-6")."""
    return _fmt_p(p, alpha=0.0).replace("\u00a0", " ")


def p_eq(p: float) -> str:
    """ "p = 0.33", or "p < 2e-16" below what R prints."""
    text = p_text(p)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def num(x: float, digits: int = 3) -> str:
    """A number to ``digits`` significant digits ("-0.0780", "1.5")."""
    return "–" if is_missing(x) else f"{float(x):#.{digits}g}".rstrip(".")


def plural(word: str) -> str:
    """mouse -> mice, cell -> cells."""
    return {"mouse": "mice", "Mouse": "Mice"}.get(word, word + "s")


def _reason(text: str) -> str:
    """An engine message as a sentence of its own (capitalised, one final full stop)."""
    text = text.strip().rstrip(".")
    return text[:1].upper() + text[1:] + "." if text else ""


def _and(items: Sequence[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _row(long: pd.DataFrame, analysis: str, term: str) -> pd.Series | None:
    """The table row of one analysis and term, or None when it has no estimate."""
    # plain object arrays: pandas' Arrow-backed text compares and filters ~10x slower, and the
    # narrative functions look rows up dozens of times per rerun
    hit = np.flatnonzero((long["analysis"].to_numpy(dtype=object) == analysis)
                         & (long["term"].to_numpy(dtype=object) == term))
    if not hit.size or is_missing(long["estimate"].iat[hit[0]]):
        return None
    return long.iloc[hit[0]]


def _sig(row: pd.Series) -> bool:
    return not is_missing(row["p_value"]) and float(row["p_value"]) < ALPHA


def why_missing(data: pd.DataFrame, group: str, *, unit: str = "mouse", reason: str | None = None) -> str:
    """Why a fit is absent, in words: the engine's reason if given, else what the data lack."""
    if reason:
        return reason
    k = data[group].nunique() if group in data.columns and len(data) else 0
    if len(data) == 0:
        return f"every {unit} has 0 rows"
    if k < 2:
        return f"with one {unit} there is no {unit}-to-{unit} variation to estimate"
    if len(data) < 4:
        return f"{len(data)} row(s) are too few for the model's parameters"
    return "it could not be fitted (its message is shown above)"


# ---------------------------------------------------------------------------------------
# Example 2: which analysis calls the time effect significant, and which mouse drives it
# ---------------------------------------------------------------------------------------


def per_group_rows(long: pd.DataFrame, per_group: str, term: str,
                   levels: Sequence[Any]) -> dict[str, pd.Series | None]:
    """The per-group table rows ("<per_group> <level>") of one term, keyed by level (None: no estimate)."""
    names = {f"{per_group} {g}".strip(): str(g) for g in levels}
    return {names[a]: _row(long, a, term) for a in dict.fromkeys(long["analysis"]) if a in names}


def driver(data: pd.DataFrame, long: pd.DataFrame, *, group: str, per_group: str, pooled: str,
           term: str) -> tuple[str, float] | None:
    """The group that carries the pooled effect and its share of the rows (percent).

    It is the group with the largest share of rows among those whose own change is
    significant in the pooled change's direction; None when no group qualifies.
    """
    pool = _row(long, pooled, term)
    if pool is None or not len(data):
        return None
    share = data[group].astype(str).value_counts(normalize=True) * 100
    best = None
    for g, row in per_group_rows(long, per_group, term, data[group].unique()).items():
        if row is not None and _sig(row) and np.sign(row["estimate"]) == np.sign(pool["estimate"]):
            s = float(share.get(g, 0.0))
            if best is None or s > best[1]:
                best = (g, s)
    return best


def frequency_notice(data: pd.DataFrame, long: pd.DataFrame, *, term: str, label: str, reference: str,
                     group: str, per_group: str, pooled: str, unit: str = "cells",
                     group_word: str = "mouse") -> str:
    """What the per-mouse panels show at ``label`` and which mouse the pooled data follow."""
    rows = per_group_rows(long, per_group, term, data[group].unique())
    drop = [g for g, r in rows.items() if r is not None and _sig(r) and r["estimate"] < 0]
    rise = [g for g, r in rows.items() if r is not None and _sig(r) and r["estimate"] > 0]
    flat = [g for g, r in rows.items() if r is not None and not _sig(r)]
    none = [g for g, r in rows.items() if r is None]
    words = []

    def mice(gs: list[str]) -> str:
        return f"{group_word} {gs[0]}" if len(gs) == 1 else f"{plural(group_word)} {_and(gs)}"

    if drop:
        words.append(f"{mice(drop)} drop{'s' if len(drop) == 1 else ''} significantly at {label}")
    if rise:
        words.append(f"{mice(rise)} rise{'s' if len(rise) == 1 else ''} significantly")
    if flat:
        words.append(f"{mice(flat)} show{'s' if len(flat) == 1 else ''} no significant change")
    text = (f"In the per-{group_word} panels, " + "; ".join(words) + f" (change from {reference}, "
            f"p < {ALPHA:g} in that {group_word}'s own fit)." if words else
            f"No {group_word} has enough {unit} for its own fit at {label}.")
    if none and words:
        text += f" {mice(none).capitalize()} cannot be compared at {label}: too few {unit}."
    d = driver(data, long, group=group, per_group=per_group, pooled=pooled, term=term)
    pool = _row(long, pooled, term)
    if d is not None and pool is not None:
        g, share = d
        text += (f" The pooled data follow {group_word} {g}: it contributes {share:.0f}% of the {unit} "
                 f"shown, and its change has the pooled change's sign.")
    elif pool is not None and _sig(pool):
        text += (f" The pooled {label} change is significant although no single {group_word}'s own "
                 "change in that direction is: the pooled comparison mixes differences between "
                 f"{group_word}s into the time effect.")
    elif pool is not None:
        text += f" The pooled {label} change is not significant either ({p_eq(pool['p_value'])})."
    return text


def frequency_reading(data: pd.DataFrame, long: pd.DataFrame, *, term: str, label: str, group: str,
                      pooled: str, fixed: str, mixed: str, per_group: str,
                      missing: Mapping[str, str] | None = None, unit: str = "cells",
                      group_word: str = "mouse") -> str:
    """The "read the table" paragraph: what each analysis says about ``label``, or why it is absent."""
    missing = dict(missing or {})
    n = len(data)
    out: list[str] = []
    pool = _row(long, pooled, term)
    fix = _row(long, fixed, term)
    lme = _row(long, mixed, term)
    if pool is None:
        why = (missing[pooled] if pooled in missing else
               f"{n} {unit} are too few" if n < 4 else f"no {unit} at {label}")
        out.append(f"The pooled LM has no {label} estimate. {_reason(why)}")
    elif _sig(pool):
        out.append(f"The pooled LM calls the {label} change significant ({p_eq(pool['p_value'])}) "
                   f"because it counts {n:,} {unit} as {n:,} independent replicates.")
    else:
        out.append(f"Pooling does not find the {label} change: with these {unit} the pooled p is "
                   f"{p_text(pool['p_value'])}.")
    if fix is not None:
        out.append(f"With each {group_word} as its own fixed level, the comparison is made within "
                   f"{plural(group_word)}: {num(fix['estimate'])}, {p_eq(fix['p_value'])} "
                   f"({'significant' if _sig(fix) else 'not significant'}).")
    if lme is not None:
        out.append(f"The LME's {label} change is {num(lme['estimate'])} ± {num(lme['std_error'])}, "
                   f"{p_eq(lme['p_value'])}: {'significant' if _sig(lme) else 'not significant'}.")
    else:
        why = why_missing(data, group, unit=group_word, reason=missing.get(mixed))
        out.append(f"No LME was fitted. {_reason(why)}")
    rows = per_group_rows(long, per_group, term, data[group].unique())
    sig = [g for g, r in rows.items() if r is not None and _sig(r)]
    fitted = [g for g, r in rows.items() if r is not None]
    if fitted:
        who = (f"{group_word} {sig[0]} only" if len(sig) == 1 and len(fitted) > 1 else
               f"{group_word} {sig[0]}" if len(sig) == 1 else
               f"{plural(group_word)} {_and(sig)}" if sig else f"no {group_word}")
        out.append(f"Per {group_word}, the {label} change is significant for {who}.")
    if pool is not None and lme is not None and _sig(pool) != _sig(lme):
        out.append("The analyses disagree because the pooled LM ignores that the "
                   f"{unit} of one {group_word} are alike."
                   if _sig(pool) else
                   f"Here the LME finds a change the pooled LM misses: comparing within {plural(group_word)} "
                   f"removes the {group_word}-to-{group_word} differences from the error.")
    elif pool is not None and lme is not None:
        out.append(f"Pooled LM and LME agree here ({'both' if _sig(pool) else 'neither'} significant).")
    return " ".join(out)


# ---------------------------------------------------------------------------------------
# Estimability: terms confounded with the grouping factor, per-group rows without data
# ---------------------------------------------------------------------------------------


def _variable_of(term: str, variables: Sequence[str]) -> str | None:
    hits = [v for v in variables if term == v or term.startswith(v)]
    return max(hits, key=len) if hits else None


def estimability(long: pd.DataFrame, data: pd.DataFrame, *, group: str, variables: Sequence[str],
                 fixed: str | None, per_group: str | None, per_group_fit: pd.DataFrame | None = None,
                 group_word: str = "mouse") -> pd.DataFrame:
    """The comparison rows with a ``note`` column; rows that cannot be estimated lose their numbers.

    - ``fixed`` (group as a fixed effect): a variable constant within every group is confounded
      with the group, so its "effect" is one group minus another; it is not estimable.
    - ``per_group`` rows: a variable with one value inside a group cannot be estimated there;
      a group whose own fit failed keeps the engine's reason.
    - any other missing estimate is explained (a level without rows, a dropped column).
    """
    out = long.copy()
    out["note"] = ""
    numbers = ["estimate", "std_error", "df", "p_value", "conf_low", "conf_high"]
    g_str = data[group].astype(str) if group in data.columns else pd.Series(dtype=str)
    fit_notes: dict[str, str] = {}
    if per_group_fit is not None and "note" in per_group_fit.columns:
        for g, note in per_group_fit[["group", "note"]].astype(str).values:
            if note and note != "nan":
                fit_notes[g] = note
    per_names = ({f"{per_group} {g}".strip(): g for g in g_str.unique()} if per_group is not None else {})
    # each group's rows and each variable's values per group, computed once (not per table row)
    parts: dict[str, pd.DataFrame] | None = None
    constant_within: dict[str, bool] = {}
    notes: dict[Any, str] = {}
    for i, analysis, term, estimate in zip(out.index, out["analysis"], out["term"], out["estimate"], strict=True):
        var = _variable_of(str(term), variables)
        note = ""
        if var is not None and var in data.columns and fixed is not None and analysis == fixed:
            if var not in constant_within:
                within = data.groupby(g_str)[var].nunique(dropna=True)
                constant_within[var] = bool(len(within) and (within <= 1).all())
            if constant_within[var]:
                note = (f"{var} is constant within each {group_word}: with {group_word} as a fixed effect "
                        f"its effect cannot be estimated (it would be one {group_word} minus another).")
        g = per_names.get(str(analysis))
        if not note and g is not None:
            if parts is None:
                parts = {str(k): v for k, v in data.groupby(g_str, sort=False)}
            part = parts.get(g, data.iloc[:0])
            if g in fit_notes:
                note = fit_notes[g]
            elif var is not None and var in data.columns and part[var].nunique(dropna=True) < 2:
                note = f"{var} takes one value in {group_word} {g}: its effect cannot be estimated there."
            elif is_missing(estimate) and var is not None and var in data.columns:
                level = str(term)[len(var):]
                have = part[var].astype(str).unique() if len(part) else []
                note = (f"{group_word} {g} has no rows at {var} = {level}." if level and level not in have
                        else f"{group_word} {g} has too few rows to estimate this effect.")
        if not note and is_missing(estimate) and var is not None and var in data.columns:
            level = str(term)[len(var):]
            if level and level not in set(data[var].astype(str)):
                note = f"no rows at {var} = {level}."
            else:
                note = ("not estimable from these data: its column is a combination of other columns "
                        "and was dropped, as lme4 drops it.")
        if note:
            notes[i] = note
    if notes:  # one assignment for all blanked rows (each .loc assignment costs ~0.3 ms)
        rows = list(notes)
        out.loc[rows, numbers] = np.nan
        out.loc[rows, "note"] = list(notes.values())
    return out


def notes_by_analysis(marked: pd.DataFrame) -> dict[str, str]:
    """One "why no estimate" text per analysis (distinct notes joined), for a table's note column."""
    out: dict[str, str] = {}
    for a, notes in marked[marked["note"] != ""].groupby("analysis", sort=False)["note"]:
        out[str(a)] = " ".join(dict.fromkeys(notes))
    return out


# ---------------------------------------------------------------------------------------
# Example 3: do the per-cell lines cross, what pairing buys, the LRT ladder's reading
# ---------------------------------------------------------------------------------------


def crossing_share(data: pd.DataFrame, response: str, time: str, unit: str, group: str,
                   before: Any = 1, after: Any = 2) -> tuple[float, int]:
    """Share of pairs of units (within a group) whose order swaps between the two times, and the pairs counted.

    0 means the per-unit lines never cross (each unit keeps its rank), 0.5 what independent
    measurements give.
    """
    d = data[data[time].isin([before, after])]
    # pivot_table's mean without its overhead (half the cost of this notice)
    wide = d.groupby([group, unit, time])[response].mean().unstack(time).dropna()
    if before not in wide.columns or after not in wide.columns:
        return math.nan, 0
    swapped = 0
    pairs = 0
    for _, part in wide.groupby(level=0):
        a, b = part[before].to_numpy(), part[after].to_numpy()
        upper = np.triu_indices(len(a), k=1)
        # a pair swaps order when its differences at the two times have opposite signs
        prod = (np.subtract.outer(a, a) * np.subtract.outer(b, b))[upper]
        swapped += int((prod < 0).sum())
        pairs += len(prod)
    return (swapped / pairs if pairs else math.nan), pairs


def crossing_notice(data: pd.DataFrame, corr: pd.DataFrame, *, response: str, time: str, unit: str,
                    group: str, unit_word: str = "cell", group_word: str = "mouse") -> str:
    """What the spaghetti and before/after plots show, computed: how often lines cross, the correlation."""
    share, pairs = crossing_share(data, response, time, unit, group)
    r = corr["correlation"].dropna()
    if not pairs or r.empty:
        return (f"Too few {unit_word}s with both measurements in any {group_word} to tell whether a "
                f"{unit_word}'s two values go together (a correlation needs 3 {unit_word}s in a {group_word}).")
    how = ("hardly cross" if share < 0.15 else "cross now and then" if share < 0.3 else
           "cross often" if share < 0.45 else "cross about as often as unrelated values would")
    med = float(r.median())
    text = (f"Within each {group_word}, the lines of the {unit_word}s {how}: {100 * share:.0f}% of pairs of "
            f"{unit_word}s swap order between the two times (50% would mean no relation). The median "
            f"within-{group_word} correlation of a {unit_word}'s two values is {med:.2f}")
    if med > 0.1:
        text += (f": they are positively correlated, so analyses that treat the {len(data):,} values as "
                 "independent waste the pairing; the LME and the paired t-test use it.")
    elif med < -0.1:
        text += (": they are negatively correlated, so pairing makes the difference vary more, not less; "
                 "the paired SE is larger than the unpaired one.")
    else:
        text += ": about zero, so pairing gains little here."
    return text


def pairing_reading(long: pd.DataFrame, *, term: str, pooled: str, paired: str, mixed: str | None,
                    missing: Mapping[str, str] | None = None) -> str:
    """The amplitude "read the table" paragraph: estimates agree or not, which SE is smaller and by how much."""
    rows = {a: _row(long, a, term) for a in dict.fromkeys(long["analysis"])}
    have = {a: r for a, r in rows.items() if r is not None}
    if not have:
        return "No analysis could estimate the change from these data."
    est = [float(r["estimate"]) for r in have.values()]
    out = [f"The {len(have)} analyses estimate the change between {num(min(est))} and {num(max(est))}."
           if num(min(est)) != num(max(est)) else
           f"{'All' if len(have) > 1 else 'The'} {len(have)} analyses estimate the change as {num(est[0])}."]
    pool, pair = have.get(pooled), have.get(paired)
    if pool is not None and pair is not None and pool["std_error"] > 0:
        ratio = float(pair["std_error"] / pool["std_error"])
        out.append(f"The paired t-test's SE is {100 * ratio:.0f}% of the pooled LM's "
                   f"({num(pair['std_error'])} vs {num(pool['std_error'])}): "
                   + ("the two values of a cell are positively correlated, so their difference varies "
                      "less than two unrelated values." if ratio < 1 else
                      "pairing does not shrink the SE here, because a cell's two values are not "
                      "positively correlated."))
    lme = have.get(mixed) if mixed else None
    if mixed and lme is None:
        reason = (missing or {}).get(mixed, "it could not be fitted from these data")
        out.append(f"No LME row: {reason.strip().rstrip('.')}.")
    elif lme is not None:
        out.append(f"The LME gives {num(lme['estimate'])} ± {num(lme['std_error'])} "
                   f"({p_eq(lme['p_value'])}).")
    out.append("Rigour is not a hunt for the smallest p-value: the LME is right because it matches "
               "the design (cells in mice), not because its p is smaller.")
    return " ".join(out)


def ladder_reading(ladder: pd.DataFrame, *, alpha: float = ALPHA, book_alpha: float = 0.1) -> str:
    """The reading of an LRT ladder (columns bigger, smaller, p, p (boundary 50:50)) from its p-values."""
    out = []
    for _, row in ladder.iterrows():
        p = row.get("p (boundary 50:50)")
        if is_missing(p):
            p = row.get("p")
        if is_missing(p):
            out.append(f"{row['bigger']} vs {row['smaller']} could not be compared.")
            continue
        p = float(p)
        verdict = (f"improves on {row['smaller']} clearly" if p < alpha else
                   f"improves on {row['smaller']} only by the book's alpha = {book_alpha:g} rule" if p < book_alpha
                   else f"adds little over {row['smaller']}")
        out.append(f"{row['bigger']} {verdict} ({p_eq(p)}).")
    return " ".join(out) if out else "No comparison could be made."


# ---------------------------------------------------------------------------------------
# Example 4: population vs typical-mouse curve, the Bayes factor, bootstrap time
# ---------------------------------------------------------------------------------------


def curves_notice(curves: pd.DataFrame | None, *, sd: float | None = None, why: str | None = None,
                  group_word: str = "mouse") -> str:
    """Which curve is flatter, population average or typical mouse, from the curves drawn."""
    if curves is None or curves.empty:
        return f"No GLMM curves are drawn: {(why or 'the GLMM could not be fitted').strip().rstrip('.')}."
    pop = curves[curves["curve"] == "population average"].sort_values("x")
    typ = curves[curves["curve"] == "typical mouse"].sort_values("x")
    rise_pop = float(pop["p"].iloc[-1] - pop["p"].iloc[0])
    rise_typ = float(typ["p"].iloc[-1] - typ["p"].iloc[0])
    gap = float(np.max(np.abs(pop["p"].to_numpy() - typ["p"].to_numpy())))
    sd_text = f" (the {group_word} SD is {num(sd, 2)} on the log-odds scale)" if sd is not None else ""
    mice = plural(group_word)
    if gap < 0.01:
        return (f"The bold population curve and the dashed typical-{group_word} curve overlap (they differ "
                f"by at most {gap:.3f} in probability): the {mice} differ little{sd_text}, so averaging "
                "over them hardly flattens the curve.")
    flatter = "population curve" if abs(rise_pop) < abs(rise_typ) else f"typical-{group_word} curve"
    how = "only slightly flatter" if abs(abs(rise_typ) - abs(rise_pop)) < 0.05 else "flatter"
    return (f"Across the dF/F range the bold population curve changes by {rise_pop:+.2f} in probability, "
            f"the dashed typical-{group_word} curve by {rise_typ:+.2f}: the {flatter} is {how}, because "
            f"averaging a logistic curve over {mice} who differ{sd_text} pulls it towards the middle.")


def _normal_bf10(b: float, se: float, prior_sd: Any) -> Any:
    """BF10 of slope b (normal likelihood, SE se) under a normal(0, prior_sd) prior vs slope 0
    (``prior_sd`` may be an array: one call for a whole grid, since scipy.stats costs ~0.2 ms
    a call and the story scans 400 priors on every rerun)."""
    out = stats.norm.pdf(b, 0, np.hypot(se, prior_sd)) / stats.norm.pdf(b, 0, se)
    return float(out) if np.ndim(out) == 0 else out


def bayes_story(bf10: float, *, prior_sd: float, post_mean: float, post_sd: float,
                book_bf10: float | None = BOOK_BF10) -> str:
    """The Bayes factor's story with its numbers: Savage–Dickey densities and the prior SD the book's value needs."""
    prior0 = float(stats.norm.pdf(0, 0, prior_sd))
    post0 = float(stats.norm.pdf(0, post_mean, post_sd))
    sd_ratio = prior0 / post0 if post0 > 0 else math.inf
    # the likelihood of the slope, recovered from the posterior: precisions add
    prec_lik = 1 / post_sd**2 - 1 / prior_sd**2
    text = (f"By the Savage–Dickey ratio, the prior density of the slope at 0 ({num(prior0)}) over its "
            f"posterior density at 0 ({num(post0)}) gives BF10 ≈ {num(sd_ratio)}; the computed (bridge "
            f"sampling) BF10 is {num(bf10)}"
            + ("." if 0.7 < sd_ratio / bf10 < 1.4 else ": the normal approximation is rough here."))
    if prec_lik <= 0:
        return text
    se = 1 / math.sqrt(prec_lik)
    b = post_mean / post_sd**2 * se**2
    grid = np.geomspace(1e-3, 1e3, 400)
    bfs = _normal_bf10(b, se, grid)
    best = int(np.argmax(bfs))
    text += (f" A wider prior lowers BF10 (prior SD {num(grid[-1], 2)} gives {num(bfs[-1], 2)}); no normal prior "
             f"gives more than {num(bfs[best])} (prior SD near {num(grid[best], 2)}).")
    if book_bf10 is not None:
        if bfs[best] < book_bf10:
            text += f" The book's {book_bf10:g} cannot come from these data with any normal prior on the slope."
        else:
            above = np.flatnonzero(bfs >= book_bf10)
            text += (f" The book's {book_bf10:g} would need a prior SD between {num(grid[above[0]], 2)} and "
                     f"{num(grid[above[-1]], 2)} on these data; its stated prior SD of 10 gives "
                     f"{num(_normal_bf10(b, se, 10.0), 2)}.")
    return text


def bootstrap_time(seconds_per_sample: float, n: int) -> str:
    """How long ``n`` bootstrap samples take, from a measured time per sample."""
    secs = seconds_per_sample * n
    when = (f"{secs:.0f} s" if secs < 90 else f"{secs / 60:.0f} min")
    return (f"One refit of both models took {seconds_per_sample:.3f} s here, so {n:,} samples take "
            f"about {when}.")


def lick_reading(long: pd.DataFrame, *, glmm: str | None, gee: str, pooled: str, n_trials: int,
                 sd: float | None = None, term: str = "dff", why_no_glmm: str | None = None) -> str:
    """The water-lick "read the table" paragraph: conditional vs population-averaged slopes, computed."""
    g = _row(long, glmm, term) if glmm else None
    e = _row(long, gee, term)
    p = _row(long, pooled, term)
    if g is None:  # no GLMM in the table: say why, not what its coefficient would mean
        out = [f"No GLMM row: {(why_no_glmm or 'it could not be fitted').strip().rstrip('.')}."]
    else:
        out = ["A GLMM coefficient is conditional on the mouse: among typical mice, one more % dF/F "
               "multiplies the odds of a correct lick by exp(b)."]
    if g is not None and e is not None and abs(float(g["estimate"])) > 0:
        ratio = float(e["estimate"]) / float(g["estimate"])
        out.append(f"The GEE's population-averaged slope ({num(e['estimate'])}) is {100 * ratio:.0f}% of the "
                   f"GLMM's ({num(g['estimate'])})"
                   + (f"; the mouse SD is {num(sd, 2)} on the log-odds scale" if sd is not None else "")
                   + (": the mice differ little, so the two are close." if abs(ratio - 1) < 0.05 else
                      ": the logit link pulls the averaged effect towards zero when mice differ."
                      if ratio < 1 else "."))
    if p is not None:
        out.append(f"The pooled GLM's SE ({num(p['std_error'])}) treats all {n_trials:,} trials as independent.")
    return " ".join(out)


def bootstrap_reading(boot_p: float, samples: int, failed: int, lrt_p: float | None) -> str:
    """The parametric bootstrap's result beside the LRT's large-sample p, compared in words."""
    text = (f"Parametric bootstrap {p_eq(boot_p)} from {samples:,} samples "
            f"({failed:,} failed fit{'s' if failed != 1 else ''}).")
    if samples and boot_p <= 1 / (samples + 1) + 1e-12:
        text += f" No simulated statistic reached the observed one: p is at most 1/({samples:,} + 1)."
    if lrt_p is not None and not is_missing(lrt_p):
        rel = ("larger than" if boot_p > lrt_p * 1.1 else "smaller than" if boot_p < lrt_p / 1.1 else
               "about the same as")
        text += f" It is {rel} the LRT's large-sample p ({p_text(lrt_p)})."
    return text


def largest_share(counts: Mapping[Any, int], *, example: str, unit: str = "cells") -> str:
    """What weighting by cell count does in one example, from its counts per mouse.

    Examples
    --------
    >>> print(largest_share({1: 466, 2: 739, 3: 309, 4: 210}, example="Example 2"))  # doctest: +NORMALIZE_WHITESPACE
    In Example 2 mouse 2 contributes 43% of the cells (four mice would give 25% each), so the
    pooled result leans on that one mouse.
    >>> print(largest_share({1: 210, 2: 210}, example="Example 2"))
    In Example 2 every mouse contributes 50% of the cells: no mouse outweighs the others.
    """
    total = sum(counts.values())
    if total == 0 or not counts:
        return f"{example} has no {unit}."
    top, n = max(counts.items(), key=lambda kv: kv[1])
    share, even = n / total, 1 / len(counts)
    if round(100 * share) == round(100 * even):
        return f"In {example} every mouse contributes {even:.0%} of the {unit}: no mouse outweighs the others."
    words = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight", 9: "nine", 10: "ten"}
    return (f"In {example} mouse {top} contributes {share:.0%} of the {unit} ({words.get(len(counts), len(counts))} "
            f"mice would give {even:.0%} each), so the pooled result leans on that one mouse.")
