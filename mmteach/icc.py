"""Intraclass correlation, design effect and effective sample size.

The ICC is the share of the total variance that lies between clusters (mice). With ``m``
cells per mouse, the variance of a mean is inflated by the design effect
``1 + ICC (m - 1)`` compared with ``m`` independent cells, so ``n`` correlated cells carry
the information of only ``n / design effect`` independent ones.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from mmteach.errors import DataError


def icc_oneway(values: Sequence[float] | np.ndarray | pd.Series,
               groups: Sequence[object] | np.ndarray | pd.Series) -> float:
    """One-way ANOVA estimate of the ICC, as ``ICC::ICCbare(x = groups, y = values)``.

    ``ICC = s2_a / (s2_a + MSW)`` with ``s2_a = (MSA - MSW) / k`` and, for unequal group
    sizes ``n_i`` (a groups, N values), ``k = (N - sum(n_i^2) / N) / (a - 1)``. Rows with a
    missing value are dropped. The estimate can be negative when groups differ less than
    chance would make them.

    Parameters
    ----------
    values : array-like of float
    groups : array-like
        Cluster label per value (e.g. mouse id).

    Returns
    -------
    float

    Examples
    --------
    >>> icc_oneway([1.0, 1.2, 3.0, 3.1, 5.0, 5.3], ["a", "a", "b", "b", "c", "c"])  # doctest: +ELLIPSIS
    0.99...
    """
    y = pd.to_numeric(pd.Series(np.asarray(values)), errors="coerce")
    g = pd.Series(np.asarray(groups, dtype=object))
    if len(y) != len(g):
        raise DataError("values and groups must have the same length (one group label per value).")
    keep = y.notna() & g.notna()
    y, g = y[keep].astype(float), g[keep]
    codes, _ = pd.factorize(g)
    a = int(codes.max()) + 1 if codes.size else 0
    n = int(y.size)
    if a < 2:
        raise DataError("An ICC needs at least two groups (e.g. two mice): with one group there "
                        "is no between-group variance to compare with.")
    if n <= a:
        raise DataError("An ICC needs replicate values within groups (more values than groups): "
                        "otherwise within-group variance cannot be estimated.")
    sizes = np.bincount(codes, minlength=a).astype(float)
    sums = np.bincount(codes, weights=y.to_numpy(), minlength=a)
    means = sums / sizes
    grand = float(y.mean())
    ssb = float(np.sum(sizes * (means - grand) ** 2))
    ssw = float(np.sum((y.to_numpy() - means[codes]) ** 2))
    msa = ssb / (a - 1)
    msw = ssw / (n - a)
    # ICCbare uses the balanced k when every group has the same size; the formula below
    # reduces to it exactly in that case.
    k = (n - float(np.sum(sizes**2)) / n) / (a - 1)
    var_a = (msa - msw) / k
    return float(var_a / (var_a + msw))


def design_effect(icc: float, m: float) -> float:
    """Design effect ``1 + icc (m - 1)`` for clusters of (average) size ``m``.

    Examples
    --------
    >>> round(design_effect(0.62094868, 357 / 7), 4)  # Example 1, condition 1
    32.0474
    """
    if m < 1:
        raise DataError("The cluster size m must be at least 1 (cells per mouse).")
    return 1.0 + float(icc) * (float(m) - 1.0)


def effective_n(n: float, icc: float, m: float) -> float:
    """Effective sample size ``n / design_effect(icc, m)``.

    Examples
    --------
    >>> round(effective_n(357, 0.62094868, 51), 3)  # 357 cells worth about 11 independent ones
    11.14
    """
    return float(n) / design_effect(icc, m)


def icc_table(data: pd.DataFrame, value: str, group: str, by: str | None = None) -> pd.DataFrame:
    """ICC, design effect and effective n, overall or per level of ``by``.

    The cluster size is the mean number of values per group (``M = cells / mice``), which is
    how Example 1's published table is computed.

    Returns a DataFrame with columns ``by`` (if given), ``groups, n, icc, design_effect,
    effective_n``.

    Examples
    --------
    >>> d = pd.DataFrame({"y": [1.0, 1.2, 3.0, 3.1], "m": [1, 1, 2, 2]})
    >>> icc_table(d, "y", "m")[["groups", "n"]].values.tolist()
    [[2, 4]]
    """
    for col in [value, group] + ([by] if by else []):
        if col not in data.columns:
            raise DataError(f"There is no column '{col}' in the data.")
    parts = [(None, data)] if by is None else list(data.groupby(by, sort=True))
    rows = []
    for key, sub in parts:
        sub = sub[sub[value].notna() & sub[group].notna()]
        n = len(sub)
        a = sub[group].nunique()
        icc = icc_oneway(sub[value], sub[group])
        de = design_effect(icc, n / a)
        row = {"groups": int(a), "n": int(n), "icc": icc, "design_effect": de,
               "effective_n": n / de}
        if by is not None:
            row = {by: key, **row}
        rows.append(row)
    return pd.DataFrame(rows)
