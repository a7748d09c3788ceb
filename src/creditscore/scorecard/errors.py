"""The scorecard library's errors: plain exceptions (no gRPC), each naming the fields
at fault, so that a service, the command line or a notebook can report them as it
reports anything else. A service maps them to INVALID_ARGUMENT with the violations.

The tree (every one a ``ValueError``)::

    InputError          here: input the library cannot use, with its violations
    ├── TrainingError   here: training input or settings that cannot give a scorecard
    └── TabularError    tabular.py: a CSV table that cannot be used as asked
    ScorecardError      model.py: an artifact that is not a valid scorecard
    UnknownFeatureError model.py: feature names a scorecard does not know
    FeatureValueError   model.py: a value a feature cannot take
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["InputError", "Problem", "TrainingError", "raise_problems"]


@dataclass(frozen=True)
class Problem:
    """One field at fault and what is wrong with it."""

    field: str
    description: str


class InputError(ValueError):
    """Input the library cannot use: ``message``, every ``violations`` entry, and an
    UPPER_SNAKE ``reason``."""

    reason = "INVALID_INPUT"

    def __init__(self, message: str, violations: Sequence[Problem] = (), *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.violations = tuple(violations)
        if reason is not None:
            self.reason = reason

    def __str__(self) -> str:
        return self.message


class TrainingError(InputError):
    """Training input that cannot give a scorecard (malformed columns or outcomes,
    bad settings, no informative feature); one violation per bad field. A
    ``ValueError``, as every ``InputError``."""

    reason = "TRAINING_INPUT_INVALID"


def raise_problems(problems: Sequence[Problem]) -> None:
    """Raises one ``TrainingError`` naming every problem; nothing when there is none."""
    if problems:
        detail = "; ".join(f"{p.field}: {p.description}" for p in problems)
        raise TrainingError(f"cannot train: {detail}", problems)
