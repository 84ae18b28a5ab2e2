"""Odds-ratio comparison tables: the analyses of a binary outcome side by side, on the odds scale."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from mmteach.tables import fmt_df, fmt_est_se, fmt_p


def percent_change_in_odds(estimate: float, low: float, high: float) -> tuple[float, float, float]:
    """100 (exp(b) - 1) and its interval ends, as on the slides (+6.4% per 1% dF/F).

    >>> [round(v, 1) for v in percent_change_in_odds(0.06235, 0.02342, 0.10128)]
    [6.4, 2.4, 10.7]
    """
    return tuple(100 * (math.exp(v) - 1) for v in (estimate, low, high))  # type: ignore[return-value]


def odds_comparison_table(long: pd.DataFrame, *, credible: Sequence[bool],
                          on_log_odds: Sequence[bool]) -> pd.DataFrame:
    """One row per analysis: estimate ± SE, df, p and the change in odds with its interval.

    ``long`` has one row per analysis (columns analysis, estimate, std_error, df, p_value,
    conf_low, conf_high). Rows marked ``credible`` (a Bayesian fit) use their own credible
    interval; the others the Wald interval b -+ 1.96 SE, as the slides do. Rows not
    ``on_log_odds`` (e.g. a t-test on differences of proportions) get no odds change.
    """
    credible_arr = np.asarray(credible, dtype=bool)
    low = np.where(credible_arr, long["conf_low"], long["estimate"] - 1.96 * long["std_error"])
    high = np.where(credible_arr, long["conf_high"], long["estimate"] + 1.96 * long["std_error"])
    odds = []
    for est, lo, hi, ok in zip(long["estimate"], low, high, on_log_odds, strict=True):
        if not ok or any(math.isnan(v) for v in (est, lo, hi)):
            odds.append("–")
            continue
        c, c_lo, c_hi = percent_change_in_odds(est, lo, hi)
        odds.append(f"{c:+.1f}% ({c_lo:+.1f}% to {c_hi:+.1f}%)")
    return pd.DataFrame({
        "analysis": long["analysis"].to_numpy(),
        "estimate ± SE": [fmt_est_se(e, s) for e, s in zip(long["estimate"], long["std_error"], strict=True)],
        "df": [fmt_df(d) for d in long["df"]],
        "p": [fmt_p(p) for p in long["p_value"]],
        "odds change per unit": odds,
    }).set_index("analysis")
