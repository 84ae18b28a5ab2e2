"""Likelihood-ratio ladders: which random effects a data set supports, one pair of models at a time."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from mmteach.compare import compare_models
from mmteach.errors import MMTeachError, ModelError

# The status of a comparison that lme4 refuses but nlme fits (see lrt_ladder).
REFUSED = "fitted as nlme does; lme4 refuses it"


@dataclass(frozen=True)
class Ladder:
    """The rows of a likelihood-ratio ladder and what the reader needs to know about them.

    ``table`` has one row per comparison: bigger, smaller, chisq, df, p, p (boundary 50:50),
    status ("fitted", :data:`REFUSED`, or "cannot be fitted"). ``refused`` names the models
    lme4 refuses; ``errors`` holds (comparison, message) of the rows that could not be fitted;
    ``boundary_notes`` the comparisons' notes on tests at the boundary, each once.
    """

    table: pd.DataFrame
    refused: tuple[str, ...]
    errors: tuple[tuple[str, str], ...]
    boundary_notes: tuple[str, ...]


def lrt_ladder(data: pd.DataFrame, formulas: Mapping[str, str], pairs: Sequence[tuple[str, str]], *,
               factors: Sequence[str] = (), unidentifiable_ok: Sequence[str] = ()) -> Ladder:
    """Compare each (bigger, smaller) pair of named models by an ML likelihood-ratio test.

    A pair that lme4 refuses because a model in ``unidentifiable_ok`` cannot be identified
    (e.g. a cell-level random slope with two measurements per cell) is compared as nlme
    does: its log-likelihood, and so the test, is well defined; only the split of the
    variances is not.

    Examples
    --------
    >>> from mmteach.datasets import load_dataset
    >>> d = load_dataset("ca_amplitude")
    >>> f = {"obj1": "res ~ treatment + (1 | midx/cidx)", "obj4": "res ~ treatment + (treatment | midx) + (1 | cidx)"}
    >>> lad = lrt_ladder(d, f, [("obj4", "obj1")], factors=["treatment"])
    >>> lad.table.loc[0, "status"], int(lad.table.loc[0, "df"])
    ('fitted', 2)
    """
    rows, refused, errors, notes = [], [], [], []
    for big, small in pairs:
        row: dict[str, object] = {"bigger": big, "smaller": small}
        try:
            try:
                cmp = compare_models(data, formulas[big], formulas[small], factors=factors)
                status = "fitted"
            except ModelError:
                if not ({big, small} & set(unidentifiable_ok)):
                    raise
                cmp = compare_models(data, formulas[big], formulas[small], factors=factors,
                                     allow_unidentifiable=True)
                status = REFUSED
                refused.extend(m for m in (big, small) if m in unidentifiable_ok and m not in refused)
            row.update({"chisq": cmp.chisq, "df": cmp.df, "p": cmp.p_value,
                        "p (boundary 50:50)": cmp.p_value_boundary, "status": status})
            if cmp.boundary_note and cmp.boundary_note not in notes:
                notes.append(cmp.boundary_note)
        except MMTeachError as err:
            row.update({"chisq": None, "df": None, "p": None, "p (boundary 50:50)": None,
                        "status": "cannot be fitted"})
            errors.append((f"{big} vs {small}", str(err)))
        rows.append(row)
    return Ladder(pd.DataFrame(rows), tuple(sorted(refused)), tuple(errors), tuple(notes))
