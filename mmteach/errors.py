"""Errors with teaching messages.

Every exception raised for bad user input or an unfittable model is an ``MMTeachError``.
Its message is a full sentence a student can act on: what is wrong, why it matters, and
what to try. Pages show ``str(error)`` as is; the CLI prints it on one line.
"""

from __future__ import annotations


class MMTeachError(ValueError):
    """Base class of every error mmteach raises on purpose."""


class FormulaError(MMTeachError):
    """A formula that does not parse or names something that is not a column.

    ``position`` is the 0-based character offset of the offending part (or None) so a page
    can underline it.
    """

    def __init__(self, message: str, formula: str = "", position: int | None = None) -> None:
        if formula and position is not None:
            # Show at most ~70 characters around the offending place, on one line, so a long
            # or multi-line formula does not make a long message.
            start = max(0, min(position - 35, len(formula) - 70))
            # invisible characters (tabs, control codes, direction marks) as "?" keep the caret aligned
            shown = "".join(c if c.isprintable() else "?" for c in formula[start:start + 70])
            lead = "..." if start > 0 else ""
            tail = "..." if start + 70 < len(formula) else ""
            caret = " " * (len(lead) + position - start) + "^"
            message = f"{message}\n    {lead}{shown}{tail}\n    {caret}"
        super().__init__(message)
        self.formula = formula
        self.position = position


class DataError(MMTeachError):
    """Data that cannot be used: missing column, wrong type, too few groups, empty."""


class ModelError(MMTeachError):
    """A model that cannot be identified or fitted with these data."""
