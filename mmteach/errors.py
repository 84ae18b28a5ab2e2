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
            caret = " " * position + "^"
            message = f"{message}\n    {formula}\n    {caret}"
        super().__init__(message)
        self.formula = formula
        self.position = position


class DataError(MMTeachError):
    """Data that cannot be used: missing column, wrong type, too few groups, empty."""


class ModelError(MMTeachError):
    """A model that cannot be identified or fitted with these data."""
