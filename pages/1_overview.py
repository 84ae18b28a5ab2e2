"""Overview: the four models of the lecture, what pooling is, and a map of the pages."""

from __future__ import annotations

import streamlit as st

from mmteach import narrative as N
from mmteach.errors import MMTeachError
from mmteach.examples import CA_AMPLITUDE, CA_FREQUENCY, WATER_LICK, Example
from mmteach.subsample import units_per_group
from ui import compute, display, router, sources

router.run_under_router()

st.title("Many cells, few mice: why pooling misleads")
st.markdown(
    "A typical experiment records hundreds of neurons from a handful of mice. The cells of "
    "one mouse share its genes, its surgery, its imaging window and its day: they are "
    "**not independent**. Treating every cell as an independent replicate (*pooling*) "
    "pretends we have hundreds of animals when we have four."
)

left, right = display.columns(2)
with left:
    st.subheader("LM: the linear model")
    st.latex(r"\begin{gathered} Y = X\beta + \epsilon \\ \epsilon \sim N(0, \sigma^2 I) \end{gathered}")
    st.markdown(
        "A linear predictor $X\\beta$ and errors that have mean 0, a common variance and "
        "are **independent**. t-tests and ANOVA are LMs."
    )
    st.subheader("GLM: generalized linear model")
    st.latex(r"g\big(E(Y \mid X)\big) = X\beta")
    st.markdown(
        "A linear predictor, a **link** $g$ (e.g. the logit for a yes/no outcome) and a "
        "distribution for $Y$ (e.g. Bernoulli). Observations are still independent."
    )
with right:
    st.subheader("LME: linear mixed-effects model")
    # two lines: on one, the equation overflowed its column on a 1280-pixel screen
    st.latex(r"\begin{gathered} Y = X\beta + Z u + \epsilon \\ "
             r"u \sim N(0, G),\quad \epsilon \sim N(0, \sigma^2 I) \end{gathered}")
    st.markdown(
        "Fixed effects $X\\beta$ (the treatment), **random effects** $Zu$ (each mouse's "
        "own offset, e.g. $G = \\sigma_b^2 I$) and errors independent of $u$. Cells of the "
        "same mouse share $u$, so they are correlated."
    )
    st.subheader("GLMM: generalized linear mixed model")
    st.latex(r"\begin{gathered} g\big(E(Y \mid X, u)\big) = X\beta + Z u \\ u \sim N(0, G) \end{gathered}")
    st.markdown(
        "A GLM with random effects: for binary trials from a few mice, e.g. whether a lick "
        "was correct given the neuronal activity."
    )

st.header("What pooling does wrong")
# computed from each example's data (the original file instead, if this session loaded it)
def _counts(ex: Example) -> dict | None:
    """Units (cells, or rows: trials) per mouse of an example's data."""
    try:
        return compute.here(units_per_group, sources.dataset(ex.dataset), ex.group, ex.unit)
    except MMTeachError:  # an original file that cannot be read: its page says why
        return None


freq_counts, amp_counts, lick_counts = (_counts(ex) for ex in (CA_FREQUENCY, CA_AMPLITUDE, WATER_LICK))
example_share = N.largest_share(freq_counts, example="Example 2") if freq_counts else ""


def _size(counts: dict | None, units: str) -> str:
    return f"{sum(counts.values()):,} {units} of {len(counts)} mice" if counts else f"{units} of a few mice"


st.markdown(
    "- **Too small standard errors.** Cells of a mouse are alike, so 700 cells of one mouse "
    "carry far less information than 700 mice. The design effect $1 + \\rho (m - 1)$ "
    "(intra-class correlation $\\rho$, $m$ cells per mouse) says how much: with "
    "$\\rho = 0.3$ and 100 cells per mouse, the variance is 31 times larger than pooling "
    "assumes. p-values come out far too small: a pooled test on data with no real effect "
    "can be 'significant' more than 90% of the time.\n"
    "- **Weighting by cell count.** The mouse that gave the most cells dominates the pooled "
    f"result. {example_share} The frequency page shows what that does to its p-values.\n"
    "- **Ignoring pairing.** When each cell is measured twice, pooling throws away the "
    "within-cell correlation and can *lose* power (Example 3).\n\n"
    "A mixed model keeps every cell, but lets the mice differ: the treatment effect is "
    "judged against the variation **between mice**, with the right degrees of freedom."
)

st.header("The pages")
st.markdown(
    "| page | data | what to notice |\n"
    "|---|---|---|\n"
    f"| **Ca++ frequency** | PV cells, {_size(freq_counts, 'cells')}, 24h-1wk after ketamine "
    "(Example 2) | whether the pooled change follows the mouse with the most cells, and what "
    "the LME finds. Move the cells-per-mouse sliders and watch the pooled p-value. |\n"
    f"| **Ca++ amplitude** | {_size(amp_counts, 'cells')}, each at baseline and 24h (Example 3) | "
    "two levels of clustering (cells in mice, measurements in cells); what pairing does to the SE; "
    "choosing the random effects. |\n"
    f"| **Water lick** | {_size(lick_counts, 'trials')}, correct lick yes/no vs dF/F (Example 4) | "
    "a GLMM for a binary outcome; odds ratios; LRT and parametric bootstrap. |\n"
    "| **Your data** | upload a CSV/TSV or pick a built-in set | the same comparison on any "
    "clustered data set. |\n"
    "| **Simulation** | simulated data | how often pooling finds an effect that is not "
    "there; whether the mixed model recovers the truth. |\n"
    "| **Plan an experiment** | the design you plan | how many mice and cells a study needs "
    "for the power you want, and what each costs. |"
)

st.header("Where the data come from")
st.markdown(
    "The examples are those of Yu, Guindani, Grieco, Chen, Holmes & Xu (2022), *Beyond t "
    "test and ANOVA: applications of mixed-effects models for more rigorous statistical "
    "analysis in neuroscience research*, Neuron 110(1):21-35 "
    "(https://doi.org/10.1016/j.neuron.2021.10.030), and of the companion book "
    "https://yu-zhaoxia.github.io/MM_in_Neuroscience/.\n\n"
    f"The original files of Examples 2-4 are no longer public. The built-in data sets are "
    f"labelled **{sources.RECONSTRUCTION_LABEL}**: they have the published design (the exact "
    "cell counts per mouse and time point, the same columns) and reproduce the published "
    "estimates, but the individual values are simulated. If you have the original files "
    "(`Example2.txt`, `Example3.txt`, `waterlick_sim.txt`), upload each on its example "
    "page (the *Data source* box at the top): it then replaces the reconstruction on "
    "every page, and the pages say which one they show."
)
st.caption("R code equivalent to every fit is shown on each page, so you can check it in R.")
