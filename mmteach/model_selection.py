"""Likelihood-ratio ladders: which random effects a data set supports, one pair of models at a time."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from mmteach.compare import lrt_of_fits, ml_fit
from mmteach.errors import MMTeachError, ModelError
from mmteach.formula import parse_formula
from mmteach.model_frame import build_model

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
    # Each model is fitted by ML once (a ladder names a model in several comparisons) on one
    # row set, as anova() requires.
    cols = [str(c) for c in data.columns]
    rows: list[dict[str, object]] = []
    refused: list[str] = []
    errors: list[tuple[str, str]] = []
    notes: list[str] = []
    fits: dict[str, tuple | MMTeachError] = {}
    try:
        parsed = {m: parse_formula(formulas[m], cols) for m in dict.fromkeys(m for p in pairs for m in p)}
        used = list(dict.fromkeys(v for f in parsed.values() for v in f.variables()))
        frame_rows = data.dropna(subset=used) if used else data
        frames = {m: build_model(frame_rows, f, factors=factors) for m, f in parsed.items()}
    except MMTeachError as err:
        frames = {}
        fits = dict.fromkeys(dict.fromkeys(m for p in pairs for m in p), err)
    for m, mf in frames.items():
        try:
            fits[m] = ml_fit(mf, False)
        except ModelError as err:
            if m not in unidentifiable_ok:
                fits[m] = err
                continue
            try:
                # lme4 refuses it; its log-likelihood is still well defined (only the split
                # of the variances is not), so compare as nlme does
                fits[m] = ml_fit(mf, True)
                refused.append(m)
            except MMTeachError as err2:
                fits[m] = err2
        except MMTeachError as err:
            fits[m] = err
    for big, small in pairs:
        row: dict[str, object] = {"bigger": big, "smaller": small}
        failed = next((fits[m] for m in (big, small) if isinstance(fits[m], MMTeachError)), None)
        try:
            if failed is not None:
                raise failed
            if not frames[big].blocks:
                raise ModelError("The bigger model has no random-effects term; compare linear models "
                                 "with an F test instead.")
            cmp = lrt_of_fits(frames[big], frames[small], fits[big], fits[small],
                              factors=[f for f in factors if f in used])
            status = REFUSED if {big, small} & set(refused) else "fitted"
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
