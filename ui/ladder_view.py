"""Streamlit view of a ladder of likelihood-ratio tests between random-effects structures (lrt_ladder)."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import pandas as pd
import streamlit as st

from mmteach import figures as F
from mmteach import narrative as N
from mmteach.model_selection import lrt_ladder
from ui import compute, display, narrate

P_PLAIN = functools.partial(F.fmt_p, alpha=0.0)  # p-values without the 5% star


def _cell_code(text: str) -> str:
    """Code in a markdown table cell: its "|" would otherwise end the cell."""
    return "`" + text.replace("|", "\\|") + "`"


def show(data: pd.DataFrame, formulas: Mapping[str, str], steps: Sequence[tuple[str, str]], *,
         structures: Mapping[str, str], nlme: Mapping[str, str], group: str, factors: Sequence[str],
         unidentifiable_ok: Sequence[str], key: str, why_refused: str) -> None:
    """The section "Choosing the random effects": each (bigger, smaller) pair of ``steps`` tested by ML.

    ``structures`` and ``nlme`` give each model's random effects in lme4's and nlme's syntax;
    ``why_refused`` explains, for these data, why lme4 refuses the models it refuses.
    """
    st.subheader("Choosing the random effects: likelihood-ratio tests (ML)")
    st.markdown(
        "Each row tests whether the extra random effects of the bigger model improve the fit "
        "(both fitted by ML, as `anova()` does).\n\n"
        "| model | lme4 random effects | nlme |\n|---|---|---|\n"
        + "\n".join(f"| {m} | {_cell_code(structures[m])} | {_cell_code(nlme[m])} |"
                    for m in structures)
    )
    ladder = compute.call(lrt_ladder, data, dict(formulas), steps, factors=factors,
                          unidentifiable_ok=unidentifiable_ok)
    teach = display.too_few_groups(data[group].nunique())
    if teach and ladder.errors:  # the LME's box above says why; not one more box per comparison
        st.caption(f"No likelihood-ratio test: {teach}")
    for pair, err in ([] if teach else ladder.errors):
        st.error(f"{pair}: {err}")
    display.show_table(ladder.table, name="LRT ladder", key=key, hide_index=True,
                       formats={"chisq": "{:.2f}", "df": "{:.0f}", "p": P_PLAIN,
                                "p (boundary 50:50)": P_PLAIN})
    narrate.say(compute.derived(N.ladder_reading, ladder.table), lead="Read the ladder:")
    if ladder.refused:
        st.caption(f"**Why lme4 refuses {' and '.join(sorted(ladder.refused))}:** {why_refused}")
    st.caption(
        "A variance tested at zero sits on the **boundary** of its range, so the chi-square "
        "p-value is conservative (too large); the 50:50 mixture p-value corrects it where one "
        "variance is tested (– where no simple mixture applies), and the book uses alpha = 0.1 "
        "as a rule of thumb."
    )
    if ladder.boundary_notes:
        with st.expander("More on tests at the boundary"):
            for note in ladder.boundary_notes:
                st.markdown(note)
