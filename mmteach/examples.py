"""The lecture's examples: each one's data set, variables and the models the lecture fits to it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Example:
    """One lecture example: its data set and the candidate random-effect structures.

    ``structures`` maps a structure's name to its lme4 random-effects terms; ``nlme`` to the
    same model in nlme's syntax where the lecture shows it; ``ladder`` lists the (bigger,
    smaller) pairs the lecture compares by likelihood-ratio tests; ``terms`` maps the R
    names of the fixed effects the pages report to their labels.

    >>> CA_AMPLITUDE.formula("lme.obj1")
    'res ~ treatment + (1 | midx/cidx)'
    """

    dataset: str
    response: str
    fixed: str
    group: str
    factors: tuple[str, ...]
    terms: Mapping[str, str]
    structures: Mapping[str, str]
    nlme: Mapping[str, str] = field(default_factory=dict)
    ladder: tuple[tuple[str, str], ...] = ()
    unit: str | None = None

    def formula(self, structure: str) -> str:
        """The lme4 formula of the named structure."""
        return f"{self.response} ~ {self.fixed} + {self.structures[structure]}"

    def unidentifiable(self) -> list[str]:
        """Structures lme4 refuses on the full design: a random slope per unit measured only
        twice (its 2x2 covariance cannot pin down four variance parameters)."""
        if self.unit is None:
            return []
        return [name for name, terms in self.structures.items() if f"| {self.unit})" in terms
                and f"({self.fixed} | {self.unit})" in terms]


CA_FREQUENCY = Example(
    dataset="ca_frequency", response="res", fixed="treatment_idx", group="midx",
    factors=("treatment_idx", "midx"),
    terms={"treatment_idx2": "48h", "treatment_idx3": "72h", "treatment_idx4": "1wk"},
    structures={
        "random intercept per mouse": "(1 | midx)",
        "random intercept + time effect per mouse": "(1 + treatment_idx | midx)",
        "random intercept per mouse and per mouse x time": "(1 | midx) + (1 | midx:treatment_idx)",
    },
)

CA_AMPLITUDE = Example(
    dataset="ca_amplitude", response="res", fixed="treatment", group="midx", unit="cidx",
    factors=("treatment",), terms={"treatment2": "24h vs baseline"},
    structures={
        "lme.obj1": "(1 | midx/cidx)",
        "lme.obj2": "(1 | midx) + (1 | cidx)",
        "lme.obj3": "(1 | midx) + (treatment | cidx)",
        "lme.obj4": "(treatment | midx) + (1 | cidx)",
        "lme.obj5": "(treatment | midx) + (treatment | cidx)",
    },
    nlme={
        "lme.obj1": "random = ~1 | midx/cidx",
        "lme.obj2": "random = list(midx = ~1, cidx = ~1)",
        "lme.obj3": "random = list(midx = ~1, cidx = ~treatment)",
        "lme.obj4": "random = list(midx = ~treatment, cidx = ~1)",
        "lme.obj5": "random = list(midx = ~treatment, cidx = ~treatment)",
    },
    ladder=(("lme.obj3", "lme.obj1"), ("lme.obj4", "lme.obj1"), ("lme.obj5", "lme.obj3"),
            ("lme.obj5", "lme.obj4")),
)

WATER_LICK = Example(
    dataset="water_lick", response="lick", fixed="dff", group="mouseID", factors=(),
    terms={"dff": "dF/F"},
    structures={
        "random intercept per mouse": "(1 | mouseID)",
        "random intercept + dF/F slope per mouse": "(1 + dff | mouseID)",
    },
)
